//! Asks a streamed chat completion for its usage: OpenAI sends usage in a
//! stream only when the request sets `stream_options.include_usage`.
//!
//! The body is checked with serde (which also proves it valid JSON), then
//! changed by splicing a few bytes at positions found by a small scanner
//! over the now known-valid JSON, so a multi-MiB body is never
//! re-serialized and its other members stay byte for byte. Whenever the
//! scanner is unsure (an escaped member name), the body is left alone.

use std::ops::Range;

use serde::Deserialize;

use super::super::json::{skip_ws, string_end, value_end};

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

/// `body` with `range` replaced by `with`.
fn splice(body: &[u8], range: Range<usize>, with: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() - range.len() + with.len());
    out.extend_from_slice(&body[..range.start]);
    out.extend_from_slice(with);
    out.extend_from_slice(&body[range.end..]);
    out
}

/// Where an object's member is.
enum Member {
    /// The object has no such member.
    Absent,
    /// The member's value.
    At(Range<usize>),
}

/// In valid JSON, the member `key` (quoted) of the object whose `{` is at
/// `open`; None when unsure (not an object, or an escaped member name that
/// might be `key`).
fn member(json: &[u8], open: usize, key: &[u8]) -> Option<Member> {
    if json.get(open) != Some(&b'{') {
        return None;
    }
    let mut at = skip_ws(json, open + 1);
    if json.get(at) == Some(&b'}') {
        return Some(Member::Absent);
    }
    loop {
        if json.get(at) != Some(&b'"') {
            return None;
        }
        let name_end = string_end(json, at)?;
        let name = &json[at..name_end];
        if name.contains(&b'\\') {
            return None;
        }
        let colon = skip_ws(json, name_end);
        if json.get(colon) != Some(&b':') {
            return None;
        }
        let value = skip_ws(json, colon + 1);
        let value_end = value_end(json, value)?;
        if name == key {
            return Some(Member::At(value..value_end));
        }
        let after = skip_ws(json, value_end);
        match json.get(after)? {
            b',' => at = skip_ws(json, after + 1),
            b'}' => return Some(Member::Absent),
            _ => return None,
        }
    }
}
