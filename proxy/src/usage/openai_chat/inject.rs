//! Asks a streamed chat completion for its usage: OpenAI sends usage in a
//! stream only when the request sets `stream_options.include_usage`.
//!
//! The body has been checked and read once already ([`crate::body::parse_fields`]:
//! valid JSON, `stream`, how often `stream_options` is given); here only the
//! small `stream_options` value is parsed, and the body is changed by splicing
//! a few bytes at positions found by a small scanner over the known-valid JSON,
//! so a multi-MiB body is neither parsed again nor re-serialized and its other
//! members stay byte for byte. Whenever the scanner is unsure (an escaped
//! member name, `stream_options` given twice), the body is left alone.

use serde::Deserialize;

use super::super::json::{member, skip_ws, splice, Member};
use crate::body::RequestFields;

const STREAM_OPTIONS: &[u8] = b"\"stream_options\"";
const INCLUDE_USAGE: &[u8] = b"\"include_usage\"";

/// The member of `stream_options` that decides whether to ask.
#[derive(Deserialize)]
struct StreamOptions {
    include_usage: Option<bool>,
}

/// If `body`, a chat-completions request read as `request`, has `"stream": true` and does not
/// already ask for `stream_options.include_usage: true`, returns the body rewritten to ask for it
/// (other members unchanged); else None. `body` may differ from what `request` was read from only
/// in its `model` value (a `provider/model` name rewritten). Must be cheap for multi-MiB bodies
/// and must never produce invalid JSON.
pub fn inject_include_usage(body: &[u8], request: &RequestFields<'_>) -> Option<Vec<u8>> {
    if request.stream != Some(true) || request.stream_options_repeated {
        return None;
    }
    let top = skip_ws(body, 0);
    let options = member(body, top, STREAM_OPTIONS)?;
    if let Member::At(options) = &options {
        let asked = serde_json::from_slice::<Option<StreamOptions>>(&body[options.clone()]).ok()?;
        if asked.and_then(|o| o.include_usage) == Some(true) {
            return None;
        }
    }
    match options {
        // `"stream": true` is a member, so the object is not empty.
        Member::Absent => Some(splice(
            body,
            top + 1..top + 1,
            b"\"stream_options\":{\"include_usage\":true},",
        )),
        Member::At(options) => match body[options.start] {
            b'n' => Some(splice(body, options, b"{\"include_usage\":true}")),
            b'{' => match member(body, options.start, INCLUDE_USAGE)? {
                Member::At(include) => Some(splice(body, include, b"true")),
                Member::Absent => {
                    let inside = options.start + 1;
                    let empty = body.get(skip_ws(body, inside)) == Some(&b'}');
                    let member: &[u8] = if empty {
                        b"\"include_usage\":true"
                    } else {
                        b"\"include_usage\":true,"
                    };
                    Some(splice(body, inside..inside, member))
                }
            },
            _ => None,
        },
    }
}
