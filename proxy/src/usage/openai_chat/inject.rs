//! Asks a streamed chat completion for its usage: OpenAI sends usage in a
//! stream only when the request sets `stream_options.include_usage`.
//!
//! The body has been checked and read once already ([`crate::body::parse_fields`]:
//! valid JSON, `stream`, where `stream_options` is); here only the small
//! `stream_options` value is looked into, and the answer is an [`Edit`] of a few
//! bytes that the proxy makes together with any other, in one copy: a multi-MiB
//! body is neither parsed again nor re-serialized, and its other members stay
//! byte for byte. Whenever the reading is unsure (`stream_options` given twice,
//! or named with escapes, or an escaped name inside it), the body is left alone.

use std::borrow::Cow;

use serde::Deserialize;

use super::super::json::{member, skip_ws, Edit, Member};
use crate::body::{RequestFields, StreamOptionsAt};

const INCLUDE_USAGE: &[u8] = b"\"include_usage\"";

/// The member of `stream_options` that decides whether to ask.
#[derive(Deserialize)]
struct StreamOptions {
    include_usage: Option<bool>,
}

/// If `body`, a chat-completions request read as `request`, has `"stream": true` and does not
/// already ask for `stream_options.include_usage: true`, the edit that makes it ask (other
/// members unchanged); else None. Must be cheap for multi-MiB bodies and must never produce
/// invalid JSON.
pub fn include_usage_edit(body: &[u8], request: &RequestFields<'_>) -> Option<Edit> {
    if request.stream != Some(true) {
        return None;
    }
    let options = match &request.stream_options {
        StreamOptionsAt::Unsure => return None,
        // `"stream": true` is a member, so the object is not empty.
        StreamOptionsAt::Absent => {
            let inside = skip_ws(body, 0) + 1;
            let member = b"\"stream_options\":{\"include_usage\":true},";
            return Some((inside..inside, Cow::Borrowed(member)));
        }
        StreamOptionsAt::At(options) => options.clone(),
    };
    let asked = serde_json::from_slice::<Option<StreamOptions>>(&body[options.clone()]).ok()?;
    if asked.and_then(|o| o.include_usage) == Some(true) {
        return None;
    }
    match body[options.start] {
        b'n' => Some((options, Cow::Borrowed(b"{\"include_usage\":true}"))),
        b'{' => match member(body, options.start, INCLUDE_USAGE)? {
            Member::At(include) => Some((include, Cow::Borrowed(b"true"))),
            Member::Absent => {
                let inside = options.start + 1;
                let empty = body.get(skip_ws(body, inside)) == Some(&b'}');
                let member: &'static [u8] = if empty {
                    b"\"include_usage\":true"
                } else {
                    b"\"include_usage\":true,"
                };
                Some((inside..inside, Cow::Borrowed(member)))
            }
        },
        _ => None,
    }
}
