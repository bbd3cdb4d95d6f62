//! Members of a JSON object found and replaced in place: a request body is rewritten by splicing
//! a few bytes, never re-serialized, so a multi-MiB body costs one scan and one copy and every
//! other byte (numbers, spacing, member order) stays as the client sent it.

use std::borrow::Cow;
use std::ops::Range;

use super::{skip_ws, string_end, value_end};

/// One change to a body: the bytes at a range (empty to insert), and what goes in their place.
pub(crate) type Edit = (Range<usize>, Cow<'static, [u8]>);

/// `body` with every edit made, in one copy however many there are. The edits' ranges are of
/// `body` as it is, and do not overlap.
pub(crate) fn splice(body: &[u8], edits: &mut [Edit]) -> Vec<u8> {
    edits.sort_by_key(|(range, _)| (range.start, range.end));
    let removed: usize = edits.iter().map(|(range, _)| range.len()).sum();
    let added: usize = edits.iter().map(|(_, with)| with.len()).sum();
    let mut out = Vec::with_capacity(body.len() - removed + added);
    let mut copied = 0;
    for (range, with) in edits.iter() {
        out.extend_from_slice(&body[copied..range.start]);
        out.extend_from_slice(with);
        copied = range.end;
    }
    out.extend_from_slice(&body[copied..]);
    out
}

/// Where an object's member is.
pub(crate) enum Member {
    /// The object has no such member.
    Absent,
    /// The member's value.
    At(Range<usize>),
}

/// In valid JSON, the member `key` (quoted) of the object whose `{` is at
/// `open`; None when unsure (not an object, or an escaped member name that
/// might be `key`).
pub(crate) fn member(json: &[u8], open: usize, key: &[u8]) -> Option<Member> {
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
