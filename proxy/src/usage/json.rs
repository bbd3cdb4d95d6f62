//! Cheap looks into JSON bytes, and the small wire shapes the dialects share.
//!
//! The scans here decide whether an event is worth deserializing and
//! approximate how much text it carries, without parsing it. They look for a
//! quoted key followed by `:`; inside a JSON string every `"` is escaped, so
//! a match is a real member name (or, harmlessly, a string value that happens
//! to be the key and is followed by `:` in an object key position).

use std::borrow::Cow;

use memchr::{memchr2, memmem};
use serde::Deserialize;

/// Offsets of the values of every member named `key` (given with its quotes,
/// e.g. `b"\"usage\""`), at any depth.
pub(super) fn values<'a>(data: &'a [u8], key: &'a [u8]) -> impl Iterator<Item = usize> + 'a {
    memmem::find_iter(data, key).filter_map(move |at| {
        let colon = skip_ws(data, at + key.len());
        if data.get(colon) != Some(&b':') {
            return None;
        }
        let value = skip_ws(data, colon + 1);
        (value < data.len()).then_some(value)
    })
}

/// True when some member named `key` holds an object.
pub(super) fn has_object(data: &[u8], key: &[u8]) -> bool {
    values(data, key).any(|at| data[at] == b'{')
}

/// True when some member named `key` holds an empty array.
pub(super) fn has_empty_array(data: &[u8], key: &[u8]) -> bool {
    values(data, key).any(|at| data[at] == b'[' && data.get(skip_ws(data, at + 1)) == Some(&b']'))
}

/// Total escaped length of the string values of the members named by `keys`.
pub(super) fn text_len(data: &[u8], keys: &[&[u8]]) -> u64 {
    let strings = keys.iter().flat_map(|key| values(data, key));
    strings
        .filter(|&at| data[at] == b'"')
        .filter_map(|at| string_end(data, at).map(|end| (end - at - 2) as u64))
        .sum()
}

/// The offset just past the string that opens at `open` (a `"`), if it ends.
pub(super) fn string_end(data: &[u8], open: usize) -> Option<usize> {
    let mut at = open + 1;
    loop {
        let hit = at + memchr2(b'"', b'\\', data.get(at..)?)?;
        if data[hit] == b'"' {
            return Some(hit + 1);
        }
        at = hit + 2;
    }
}

/// The first offset at or after `at` that is not JSON whitespace.
pub(super) fn skip_ws(data: &[u8], at: usize) -> usize {
    let rest = data.get(at..).unwrap_or_default();
    at + rest
        .iter()
        .take_while(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        .count()
}

/// The event's name or, when the stream gave it none, the `type` of its data.
pub(super) fn event_kind<'a>(event: &'a str, data: &'a [u8]) -> Cow<'a, str> {
    #[derive(Deserialize)]
    struct Typed<'a> {
        #[serde(rename = "type", borrow)]
        kind: Option<Cow<'a, str>>,
    }
    if !event.is_empty() {
        return Cow::Borrowed(event);
    }
    let typed = serde_json::from_slice::<Typed<'_>>(data).ok();
    typed.and_then(|t| t.kind).unwrap_or_default()
}

/// An error object as providers send it: OpenAI `{"type","code",…}`,
/// Anthropic `{"type":"overloaded_error",…}`, Responses `{"code",…}`.
#[derive(Debug, Deserialize)]
pub(super) struct WireError<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<Cow<'a, str>>,
    code: Option<serde_json::Value>,
}

impl WireError<'_> {
    /// The most specific of its `type` and `code` ("error" when it has neither).
    pub(super) fn short(&self) -> String {
        let kind = self
            .kind
            .as_deref()
            .filter(|k| !k.is_empty() && *k != "error");
        let code = match &self.code {
            Some(serde_json::Value::String(code)) => Some(code.clone()),
            Some(serde_json::Value::Number(code)) => Some(code.to_string()),
            _ => None,
        };
        kind.map(str::to_owned)
            .or(code)
            .unwrap_or_else(|| "error".to_owned())
    }
}
