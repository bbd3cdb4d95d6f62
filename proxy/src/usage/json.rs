//! Cheap looks into JSON bytes, and the small wire shapes the dialects share.
//!
//! The scans here decide whether an event is worth deserializing and
//! approximate how much text it carries, without parsing it. They look for a
//! quoted name followed by `:`. Inside a JSON string every `"` is escaped, so
//! text that merely mentions `"usage":` never matches; a match is a member
//! name at some depth, and the events that pass are then parsed for real.

use std::borrow::Cow;
use std::sync::LazyLock;

use memchr::memchr2;
use memchr::memmem::Finder;
use serde::Deserialize;

use super::extractor::Seen;
use super::Usage;

mod member;
pub(crate) use member::{member, splice, Edit, Member};

/// A member name to look for, quoted (`"usage"`), with its searcher built once.
pub(super) type Key = LazyLock<Finder<'static>>;

/// Several member names to look for.
pub(super) type Keys = LazyLock<Vec<Finder<'static>>>;

/// A [`Key`] for a name given with its quotes: `key!(b"\"usage\"")`.
macro_rules! key {
    ($quoted:literal) => {
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new($quoted))
    };
}

/// [`Keys`] for names given with their quotes.
macro_rules! keys {
    ($($quoted:literal),+ $(,)?) => {
        std::sync::LazyLock::new(|| vec![$(memchr::memmem::Finder::new($quoted)),+])
    };
}
pub(super) use {key, keys};

/// Offsets of the values of every member named `key`, at any depth.
pub(super) fn values<'a>(
    data: &'a [u8],
    key: &'a Finder<'static>,
) -> impl Iterator<Item = usize> + 'a {
    key.find_iter(data).filter_map(move |at| {
        let colon = skip_ws(data, at + key.needle().len());
        if data.get(colon) != Some(&b':') {
            return None;
        }
        let value = skip_ws(data, colon + 1);
        (value < data.len()).then_some(value)
    })
}

/// True when some member named `key` holds an object.
pub(super) fn has_object(data: &[u8], key: &Finder<'static>) -> bool {
    values(data, key).any(|at| data[at] == b'{')
}

/// True when some member named `key` holds an empty array.
pub(super) fn has_empty_array(data: &[u8], key: &Finder<'static>) -> bool {
    values(data, key).any(|at| data[at] == b'[' && data.get(skip_ws(data, at + 1)) == Some(&b']'))
}

/// Total escaped length of the string values of the members named by `keys`.
pub(super) fn text_len(data: &[u8], keys: &[Finder<'static>]) -> u64 {
    let strings = keys.iter().flat_map(|key| values(data, key));
    strings
        .filter(|&at| data[at] == b'"')
        .filter_map(|at| string_end(data, at).map(|end| (end - at - 2) as u64))
        .sum()
}

/// The deepest nesting [`text_within`] follows; deeper text is not counted.
const MAX_DEPTH: usize = 32;

/// Total escaped length of the string values of members named in `names`
/// (unquoted) anywhere inside the object or array that opens at `at`: a walk
/// over that value alone, for events whose text sits in one small object
/// (a chat chunk's `delta`). Stops quietly at malformed bytes.
pub(super) fn text_within(data: &[u8], at: usize, names: &[&[u8]]) -> u64 {
    let mut total = 0;
    walk(data, at, names, 0, &mut total);
    total
}

/// Walks the value at `at`, adding text lengths to `total`; the offset after it.
fn walk(data: &[u8], at: usize, names: &[&[u8]], depth: usize, total: &mut u64) -> Option<usize> {
    let close = match *data.get(at)? {
        b'{' => b'}',
        b'[' => b']',
        b'"' => return string_end(data, at),
        _ => return value_end(data, at),
    };
    if depth >= MAX_DEPTH {
        return None;
    }
    let mut i = skip_ws(data, at + 1);
    if data.get(i) == Some(&close) {
        return Some(i + 1);
    }
    loop {
        let mut text = false;
        if close == b'}' {
            let name_end = string_end(data, i).filter(|_| data[i] == b'"')?;
            text = names.contains(&&data[i + 1..name_end - 1]);
            i = skip_ws(data, name_end);
            if data.get(i) != Some(&b':') {
                return None;
            }
            i = skip_ws(data, i + 1);
        }
        let end = walk(data, i, names, depth + 1, total)?;
        if text && data[i] == b'"' {
            *total += (end - i - 2) as u64;
        }
        i = skip_ws(data, end);
        match data.get(i) {
            Some(b',') => i = skip_ws(data, i + 1),
            Some(&b) if b == close => return Some(i + 1),
            _ => return None,
        }
    }
}

/// The values of every member named in `names` (unquoted), at any depth,
/// in document order: `(n, at)` for a member named `names[n]` whose value
/// starts at `at`. One pass over the colons finds them all, where a search
/// per name would pass over the bytes once per name. A colon ends a member
/// name, or lies inside a string; there it cannot follow a quoted name
/// (the string's own quotes are escaped), so [`values`]' rule holds.
pub(super) fn named_values<'a>(
    data: &'a [u8],
    names: &'a [&'a [u8]],
) -> impl Iterator<Item = (usize, usize)> + 'a {
    memchr::memchr_iter(b':', data).filter_map(move |colon| {
        let quote = data[..colon]
            .iter()
            .rposition(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
            .filter(|&q| data[q] == b'"')?;
        let n = names.iter().position(|name| {
            quote
                .checked_sub(name.len() + 1)
                .is_some_and(|open| data[open] == b'"' && &data[open + 1..quote] == *name)
        })?;
        let value = skip_ws(data, colon + 1);
        (value < data.len()).then_some((n, value))
    })
}

/// Bytes of a string looked at eight at a time before a vector search: most
/// strings the scans meet are member names or short values, where the call
/// into the vector search costs more than the look.
const SHORT: usize = 32;
/// A one in every byte of a word.
const ONES: u64 = u64::from_le_bytes([1; 8]);

/// The offset of the first `"` or `\` in `bytes`.
fn quote_or_backslash(bytes: &[u8]) -> Option<usize> {
    // The bytes of `word` that are zero, as their top bit; exact for the
    // first zero byte, which is the only one read.
    let zeros = |word: u64| word.wrapping_sub(ONES) & !word & (ONES << 7);
    let mut at = 0;
    while at < SHORT {
        let Some(chunk) = bytes.get(at..at + 8) else {
            break;
        };
        let mut word = [0; 8];
        word.copy_from_slice(chunk);
        let word = u64::from_le_bytes(word);
        let hits = zeros(word ^ (ONES * u64::from(b'"'))) | zeros(word ^ (ONES * u64::from(b'\\')));
        if hits != 0 {
            return Some(at + hits.trailing_zeros() as usize / 8);
        }
        at += 8;
    }
    memchr2(b'"', b'\\', &bytes[at..]).map(|hit| at + hit)
}

/// The offset just past the string that opens at `open` (a `"`), if it ends.
pub(crate) fn string_end(data: &[u8], open: usize) -> Option<usize> {
    let mut at = open + 1;
    loop {
        let hit = at + quote_or_backslash(data.get(at..)?)?;
        if data[hit] == b'"' {
            return Some(hit + 1);
        }
        at = hit + 2;
    }
}

/// What [`integers`] read of an object.
#[derive(Debug, PartialEq)]
pub(super) struct Integers<const N: usize> {
    /// Each name's value; None when absent or `null`.
    pub(super) values: [Option<u64>; N],
    /// Where each value read (`Some` above) starts.
    pub(super) starts: [usize; N],
    /// The offset just past the object.
    pub(super) end: usize,
}

/// The unsigned integers held by the members named in `names` (unquoted)
/// at the top level of the object that opens at `at` (a Gemini
/// `usageMetadata`): a walk over that one object instead of a serde parse.
/// None, as serde would refuse it, when the object is malformed or a named
/// member holds anything but a u64 or `null` (`null` reads as absent). A
/// name given twice: the last one counts.
pub(super) fn integers<const N: usize>(
    data: &[u8],
    at: usize,
    names: [&[u8]; N],
) -> Option<Integers<N>> {
    let mut read = Integers {
        values: [None; N],
        starts: [0; N],
        end: 0,
    };
    if data.get(at) != Some(&b'{') {
        return None;
    }
    let mut i = skip_ws(data, at + 1);
    if data.get(i) == Some(&b'}') {
        read.end = i + 1;
        return Some(read);
    }
    loop {
        let name_end = string_end(data, i).filter(|_| data[i] == b'"')?;
        let slot = names.iter().position(|&n| n == &data[i + 1..name_end - 1]);
        i = skip_ws(data, name_end);
        if data.get(i) != Some(&b':') {
            return None;
        }
        i = skip_ws(data, i + 1);
        let end = match slot {
            Some(slot) => {
                let digits = data[i..].iter().take_while(|b| b.is_ascii_digit()).count();
                let end = if digits > 0 {
                    i + digits
                } else {
                    value_end(data, i)?
                };
                read.values[slot] = unsigned(&data[i..end])?;
                read.starts[slot] = i;
                end
            }
            None => value_end(data, i)?,
        };
        i = skip_ws(data, end);
        match data.get(i) {
            Some(b',') => i = skip_ws(data, i + 1),
            Some(b'}') => {
                read.end = i + 1;
                return Some(read);
            }
            _ => return None,
        }
    }
}

/// A JSON value that is a u64 (`Some(Some(n))`) or `null` (`Some(None)`).
pub(super) fn unsigned(value: &[u8]) -> Option<Option<u64>> {
    if value == b"null" {
        return Some(None);
    }
    if value.is_empty() || (value[0] == b'0' && value.len() > 1) {
        return None;
    }
    value
        .iter()
        .try_fold(0u64, |n, &b| {
            let digit = b.checked_sub(b'0').filter(|d| *d <= 9)?;
            n.checked_mul(10)?.checked_add(u64::from(digit))
        })
        .map(Some)
}

/// In valid JSON, the offset just past the value that starts at `at`.
pub(crate) fn value_end(json: &[u8], at: usize) -> Option<usize> {
    match *json.get(at)? {
        b'"' => string_end(json, at),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut i = at;
            while let Some(&byte) = json.get(i) {
                match byte {
                    b'"' => {
                        i = string_end(json, i)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth = depth.checked_sub(1)?;
                        if depth == 0 {
                            return Some(i + 1);
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
            None
        }
        _ => {
            let rest = &json[at..];
            let len = rest
                .iter()
                .position(|b| matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r'));
            Some(at + len.unwrap_or(rest.len()))
        }
    }
}

/// The first offset at or after `at` that is not JSON whitespace.
pub(crate) fn skip_ws(data: &[u8], at: usize) -> usize {
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
    // Providers put `type` first: read it straight when it is there, unescaped.
    let at = skip_ws(data, 0);
    if let Some(rest) = data[at..].strip_prefix(b"{\"type\":\"") {
        let kind = rest
            .iter()
            .position(|&b| b == b'"' || b == b'\\')
            .filter(|&end| rest[end] == b'"')
            .and_then(|end| std::str::from_utf8(&rest[..end]).ok());
        if let Some(kind) = kind {
            return Cow::Borrowed(kind);
        }
    }
    let typed = serde_json::from_slice::<Typed<'_>>(data).ok();
    typed.and_then(|t| t.kind).unwrap_or_default()
}

/// What a dialect's body, chunk or response object reports: the model that answered, the
/// dialect's own usage object `U` and an error. One shape for every dialect that sends these
/// three side by side; only the usage type differs.
#[derive(Deserialize)]
#[serde(bound(deserialize = "U: Deserialize<'de>"))]
pub(super) struct Reported<'a, U> {
    #[serde(borrow)]
    pub(super) model: Option<Cow<'a, str>>,
    pub(super) usage: Option<U>,
    #[serde(borrow)]
    pub(super) error: Option<WireError<'a>>,
}

impl<U> Reported<'_, U> {
    /// Tells `seen` the model and the error, and hands the usage, if any, to `take_usage`.
    pub(super) fn tell(self, seen: &mut Seen, take_usage: impl FnOnce(&mut Seen, U)) {
        seen.model(self.model);
        if let Some(usage) = self.usage {
            take_usage(seen, usage);
        }
        seen.error(self.error.map(|e| e.short()));
    }
}

impl<U: Into<Usage>> Reported<'_, U> {
    /// Tells `seen` everything, the usage as the request's final figures.
    pub(super) fn tell_final(self, seen: &mut Seen) {
        self.tell(seen, |seen, usage| seen.final_report(usage.into()));
    }
}

/// An error object as providers send it: OpenAI `{"type","code",…}`,
/// Anthropic `{"type":"overloaded_error",…}`, Responses `{"code",…}`,
/// Gemini `{"code":500,"status":"INTERNAL",…}`.
#[derive(Debug, Deserialize)]
pub(super) struct WireError<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    status: Option<Cow<'a, str>>,
    code: Option<serde_json::Value>,
}

/// The longest error string kept: it names a kind of error, not its story.
const MAX_ERROR_LEN: usize = 64;

impl WireError<'_> {
    /// Its `type` (unless that is just "error"), else its `status`, else
    /// its `code`, else "error"; at most [`MAX_ERROR_LEN`] bytes.
    pub(super) fn short(&self) -> String {
        let kind = self
            .kind
            .as_deref()
            .filter(|k| !k.is_empty() && *k != "error")
            .or(self.status.as_deref().filter(|s| !s.is_empty()));
        let code = match &self.code {
            Some(serde_json::Value::String(code)) => Some(code.clone()),
            Some(serde_json::Value::Number(code)) => Some(code.to_string()),
            _ => None,
        };
        shorten(kind.map(str::to_owned).or(code))
    }
}

/// `error` (or "error" when there is none), cut to at most [`MAX_ERROR_LEN`] bytes.
pub(super) fn shorten(error: Option<String>) -> String {
    let mut short = error.unwrap_or_else(|| "error".to_owned());
    if short.len() > MAX_ERROR_LEN {
        let cut = (0..=MAX_ERROR_LEN)
            .rev()
            .find(|&i| short.is_char_boundary(i));
        short.truncate(cut.unwrap_or(0));
    }
    short
}
