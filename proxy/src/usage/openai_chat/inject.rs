//! Asks a streamed chat completion for its usage: OpenAI sends usage in a
//! stream only when the request sets `stream_options.include_usage`.
//!
//! The body is checked with serde (which also proves it valid JSON), then
//! changed by splicing a few bytes at positions found by a small scanner
//! over the now known-valid JSON, so a multi-MiB body is never
//! re-serialized and its other members stay byte for byte. Whenever the
//! scanner is unsure (an escaped member name), the body is left alone.

use serde::Deserialize;

use super::super::json::{member, skip_ws, splice, Member};

const STREAM_OPTIONS: &[u8] = b"\"stream_options\"";
const INCLUDE_USAGE: &[u8] = b"\"include_usage\"";

/// The members of a chat request that decide whether to ask.
#[derive(Deserialize)]
struct Request {
    stream: Option<bool>,
    stream_options: Option<StreamOptions>,
}

#[derive(Deserialize)]
struct StreamOptions {
    include_usage: Option<bool>,
}

/// If `body` is a chat-completions request with `"stream": true` and it does not already ask for `stream_options.include_usage: true`, returns the body rewritten to ask for it (other members unchanged); else None. Must be cheap for multi-MiB bodies (splice, do not re-serialize the whole thing when avoidable) and must never produce invalid JSON.
pub fn inject_include_usage(body: &[u8]) -> Option<Vec<u8>> {
    let request = serde_json::from_slice::<Request>(body).ok()?;
    let asked = request.stream_options.and_then(|o| o.include_usage);
    if request.stream != Some(true) || asked == Some(true) {
        return None;
    }
    let top = skip_ws(body, 0);
    match member(body, top, STREAM_OPTIONS)? {
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
