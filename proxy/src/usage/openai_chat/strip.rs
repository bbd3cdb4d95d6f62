//! Takes back out of a chat stream what the proxy's own
//! `stream_options.include_usage` added, so the client sees the stream it
//! asked for: the usage-only chunk (`"choices":[]` with a usage object,
//! its whole event) and the `"usage":null` member of every other chunk.
//!
//! Works on raw event bytes: complete events are filtered straight out of
//! the chunk; only an incomplete trailing event is held back until its end
//! arrives, and one larger than [`MAX_HELD`] is passed on unfiltered instead
//! (the chunks this filter changes are small).

use super::super::json;
use super::super::sse::Lines;
use super::{CHOICES, USAGE};

/// The most an incomplete event is held back; past it, that event passes through unfiltered.
const MAX_HELD: usize = 256 * 1024;

/// What became of the last byte filtered.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Last {
    /// Part of an event not yet complete.
    #[default]
    Open,
    /// It ended an event that was sent on.
    Kept,
    /// It ended an event that was removed.
    Dropped,
}

/// Removes what the proxy's own `include_usage` added, so the client sees the stream it asked for:
/// the usage-only chunk (`"choices":[]` with a usage object) and the `"usage":null` member of every other chunk.
#[derive(Debug, Default)]
pub struct IncludeUsageStripper {
    lines: Lines,
    /// The incomplete trailing event's bytes.
    held: Vec<u8>,
    /// A line began in an earlier chunk and has not ended.
    line_open: bool,
    /// The current event outgrew `MAX_HELD`: it is passed on as it comes.
    passthrough: bool,
    last: Last,
}

impl IncludeUsageStripper {
    /// A filter at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends to `out` the bytes to send downstream for this input chunk. It may hold back an incomplete trailing event until its end arrives, nothing more.
    pub fn filter(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        let mut pos = self.lines.skip_lf(chunk);
        // The LF of a split CRLF shares the fate of the CR before it.
        let mut start = match self.last {
            Last::Kept => {
                out.extend_from_slice(&chunk[..pos]);
                pos
            }
            Last::Dropped => pos,
            Last::Open => 0,
        };
        while let Some((end, next)) = self.lines.next(chunk, pos) {
            let blank = end == pos && !self.line_open;
            self.line_open = false;
            if blank {
                self.end_event(&chunk[start..next], out);
                start = next;
            }
            pos = next;
        }
        if pos < chunk.len() {
            self.line_open = true;
        }
        if start < chunk.len() {
            self.hold(&chunk[start..], out);
        }
    }

    /// End of stream: append whatever is held back.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        let held = std::mem::take(&mut self.held);
        if self.passthrough {
            out.extend_from_slice(&held);
        } else if !held.is_empty() {
            self.emit(&held, out);
        }
        *self = Self::default();
    }

    /// Keeps the start of an event that ends in a later chunk.
    fn hold(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        self.last = Last::Open;
        if self.passthrough {
            out.extend_from_slice(bytes);
        } else if self.held.len() + bytes.len() > MAX_HELD {
            out.extend_from_slice(&self.held);
            out.extend_from_slice(bytes);
            self.held.clear();
            self.passthrough = true;
        } else {
            self.held.extend_from_slice(bytes);
        }
    }

    /// `bytes` complete the current event (up to and including its blank line).
    fn end_event(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        if std::mem::take(&mut self.passthrough) {
            out.extend_from_slice(bytes);
            self.last = Last::Kept;
        } else if self.held.is_empty() {
            self.emit(bytes, out);
        } else {
            let mut event = std::mem::take(&mut self.held);
            event.extend_from_slice(bytes);
            self.emit(&event, out);
            event.clear();
            self.held = event;
        }
    }

    /// Sends on one whole event, filtered.
    fn emit(&mut self, event: &[u8], out: &mut Vec<u8>) {
        if json::has_empty_array(event, &CHOICES) && json::has_object(event, &USAGE) {
            self.last = Last::Dropped;
        } else {
            self.last = Last::Kept;
            remove_null_usage(event, out);
        }
    }
}

/// Copies `event` to `out` without its `"usage":null` members (and the comma that joined each).
fn remove_null_usage(event: &[u8], out: &mut Vec<u8>) {
    let mut copied = 0;
    for at in USAGE.find_iter(event) {
        if at < copied {
            continue;
        }
        if let Some(cut) = null_member(event, copied, at) {
            out.extend_from_slice(&event[copied..cut.start]);
            copied = cut.end;
        }
    }
    out.extend_from_slice(&event[copied..]);
}

/// The bytes to cut for the member `"usage": null` whose key starts at
/// `key`: it with the comma before it (not before `floor`, where the bytes
/// still to copy start), or else the comma after it.
fn null_member(event: &[u8], floor: usize, key: usize) -> Option<std::ops::Range<usize>> {
    let colon = json::skip_ws(event, key + USAGE.needle().len());
    if event.get(colon) != Some(&b':') {
        return None;
    }
    let value = json::skip_ws(event, colon + 1);
    let end = value + 4;
    let is_null = event.get(value..end) == Some(b"null")
        && !event.get(end).is_some_and(|b| b.is_ascii_alphanumeric());
    if !is_null {
        return None;
    }
    let before = event[floor..key]
        .iter()
        .rposition(|b| !b.is_ascii_whitespace());
    if let Some(comma) = before.map(|b| floor + b).filter(|&b| event[b] == b',') {
        return Some(comma..end);
    }
    let after = json::skip_ws(event, end);
    (event.get(after) == Some(&b',')).then_some(key..after + 1)
}
