//! An incremental Server-Sent Events reader (the WHATWG parsing rules), fed
//! with response chunks exactly as they arrive.
//!
//! Chunk boundaries fall anywhere (inside a line, between the CR and LF of a
//! CRLF), so the reader carries a partial line and a pending CR between
//! chunks. Memory is bounded: an event whose lines add up to more than
//! `max_event_bytes` is skipped and counted, never buffered past the limit.
//! When a whole event lies inside one chunk and has a single `data:` line,
//! its data is handed out as a slice of the chunk, without a copy; when it also
//! has the usual shape (an optional `event:` line, one `data:` line, a blank
//! line), it is read in one step instead of line by line.
//!
//! Departure from the standard, on purpose: [`SseReader::finish`] dispatches
//! an event whose closing blank line never came (a usage report at the very
//! end of a cut stream is still usage).

#[cfg(test)]
mod tests;

use std::ops::Range;

use memchr::{memchr, memchr2};

/// Buffers grown past this by one large event are released once it is done.
const KEEP_CAPACITY: usize = 64 * 1024;

/// Splits bytes into lines ended by CRLF, LF or CR, remembering a CR that
/// ended the previous chunk (its LF may start the next one).
#[derive(Debug, Default)]
pub(super) struct Lines {
    after_cr: bool,
}

impl Lines {
    /// Call first for each chunk: 1 when the chunk opens with the LF of a CRLF
    /// whose CR ended the previous chunk (that byte is skipped), else 0.
    pub(super) fn skip_lf(&mut self, chunk: &[u8]) -> usize {
        let Some(&first) = chunk.first() else {
            return 0;
        };
        let skip = self.after_cr && first == b'\n';
        self.after_cr = false;
        usize::from(skip)
    }

    /// The next line in `chunk[from..]`: the end of its content and the start
    /// of the line after it; None when no line ends in the chunk.
    pub(super) fn next(&mut self, chunk: &[u8], from: usize) -> Option<(usize, usize)> {
        // A blank line (the end of an event) is every third line or so: seen without a search.
        if chunk.get(from) == Some(&b'\n') {
            return Some((from, from + 1));
        }
        let end = from + memchr2(b'\n', b'\r', chunk.get(from..)?)?;
        if chunk[end] == b'\n' {
            return Some((end, end + 1));
        }
        match chunk.get(end + 1) {
            Some(b'\n') => Some((end, end + 2)),
            Some(_) => Some((end, end + 1)),
            None => {
                self.after_cr = true;
                Some((end, end + 1))
            }
        }
    }
}

/// Where the pending event's data is.
#[derive(Debug, Clone)]
enum Data {
    /// No `data:` line yet: nothing to dispatch.
    None,
    /// One `data:` value, in the chunk being fed (only during `feed`).
    Chunk(Range<usize>),
    /// In `SseReader::data`.
    Buf,
}

/// Incremental Server-Sent Events reader.
#[derive(Debug)]
pub struct SseReader {
    max_event_bytes: usize,
    lines: Lines,
    /// A line begun in an earlier chunk (its bytes are dropped once the event is oversized).
    line: Vec<u8>,
    in_line: bool,
    /// Before the first line: a UTF-8 byte order mark is stripped from it.
    first_line: bool,
    event: Vec<u8>,
    data: Vec<u8>,
    data_at: Data,
    /// Bytes of the pending event's lines so far, one per line terminator.
    event_bytes: usize,
    /// The pending event is over the limit: its lines are ignored until it ends.
    skipping: bool,
    oversized: u64,
}

impl SseReader {
    /// A reader that skips events larger than `max_event_bytes`.
    pub fn new(max_event_bytes: usize) -> Self {
        SseReader {
            max_event_bytes,
            lines: Lines::default(),
            line: Vec::new(),
            in_line: false,
            first_line: true,
            event: Vec::new(),
            data: Vec::new(),
            data_at: Data::None,
            event_bytes: 0,
            skipping: false,
            oversized: 0,
        }
    }

    /// How many events were skipped for being larger than `max_event_bytes`.
    pub fn oversized_events(&self) -> u64 {
        self.oversized
    }

    /// Feed bytes; calls `on_event(event_name, data)` for every event completed by them.
    pub fn feed(&mut self, chunk: &[u8], mut on_event: impl FnMut(&str, &[u8])) {
        let mut pos = self.lines.skip_lf(chunk);
        if self.in_line {
            let Some((end, next)) = self.lines.next(chunk, pos) else {
                self.carry(&chunk[pos..]);
                return;
            };
            self.carry(&chunk[pos..end]);
            self.end_carried_line(&mut on_event);
            pos = next;
        }
        loop {
            if let Some(event) = self.plain_event(chunk, pos) {
                let name = std::str::from_utf8(&chunk[event.name]).unwrap_or_default();
                on_event(name, &chunk[event.data]);
                pos = event.next;
                continue;
            }
            let Some((end, next)) = self.lines.next(chunk, pos) else {
                break;
            };
            self.on_line(chunk, pos..end, true, &mut on_event);
            pos = next;
        }
        if pos < chunk.len() {
            self.in_line = true;
            self.carry(&chunk[pos..]);
        }
        if let Data::Chunk(range) = &self.data_at {
            self.data.clear();
            self.data.extend_from_slice(&chunk[range.clone()]);
            self.data_at = Data::Buf;
        }
    }

    /// End of stream: dispatch a pending event that was not terminated by a blank line.
    pub fn finish(&mut self, mut on_event: impl FnMut(&str, &[u8])) {
        if self.in_line {
            self.end_carried_line(&mut on_event);
        }
        self.dispatch(&[], &mut on_event);
        self.lines = Lines::default();
        self.first_line = true;
    }

    /// The event at `chunk[from..]` when it has the shape nearly every provider event has,
    /// `event: NAME` (optional), `data: DATA` and a blank line, all in the chunk, ended by LF or
    /// CRLF, and no event is pending: it is read in one step, with what `on_line` would make of
    /// it. Anything else (comments, several data lines, a lone CR, an event over the limit or
    /// cut by the chunk's end) is None and goes line by line.
    fn plain_event(&self, chunk: &[u8], from: usize) -> Option<PlainEvent> {
        if self.first_line || self.skipping || self.event_bytes != 0 {
            return None;
        }
        // What `on_line` counts against the limit: each line's content and one byte for its end.
        let mut event_bytes = 0;
        let mut at = from;
        let mut name = from..from;
        if chunk[at..].starts_with(b"event: ") {
            let (end, next) = plain_line_end(chunk, at)?;
            name = at + b"event: ".len()..end;
            event_bytes += end - at + 1;
            at = next;
        }
        if !chunk[at..].starts_with(b"data: ") {
            return None;
        }
        let (end, next) = plain_line_end(chunk, at)?;
        let data = at + b"data: ".len()..end;
        event_bytes += end - at + 1;
        let blank = match &chunk[next..] {
            [b'\n', ..] => 1,
            [b'\r', b'\n', ..] => 2,
            _ => return None,
        };
        (event_bytes <= self.max_event_bytes).then_some(PlainEvent {
            name,
            data,
            next: next + blank,
        })
    }

    /// Keeps the start of a line that ends in a later chunk, within the limit.
    fn carry(&mut self, bytes: &[u8]) {
        if self.skipping {
            return;
        }
        if self.event_bytes + self.line.len() + bytes.len() > self.max_event_bytes {
            self.skip_event();
        } else {
            self.line.extend_from_slice(bytes);
        }
    }

    /// The carried line has ended: process it.
    fn end_carried_line(&mut self, on_event: &mut impl FnMut(&str, &[u8])) {
        self.in_line = false;
        if self.skipping {
            // Its bytes were dropped; it still belongs to the oversized event.
            self.first_line = false;
            return;
        }
        let line = std::mem::take(&mut self.line);
        self.on_line(&line, 0..line.len(), false, on_event);
        self.line = line;
        self.line.clear();
        release_if_large(&mut self.line);
    }

    /// One line: `buf[range]` is its content. `in_chunk` says `buf` is the
    /// chunk being fed, whose data may be borrowed until the feed ends.
    fn on_line(
        &mut self,
        buf: &[u8],
        mut range: Range<usize>,
        in_chunk: bool,
        on_event: &mut impl FnMut(&str, &[u8]),
    ) {
        if std::mem::take(&mut self.first_line) && buf[range.clone()].starts_with(b"\xEF\xBB\xBF") {
            range.start += 3;
        }
        if range.is_empty() {
            self.dispatch(buf, on_event);
            return;
        }
        self.event_bytes += range.len() + 1;
        if self.skipping {
            return;
        }
        if self.event_bytes > self.max_event_bytes {
            self.skip_event();
            return;
        }
        let line = &buf[range.clone()];
        if line[0] == b':' {
            return;
        }
        let (field, value) = match colon(line) {
            Some(colon) => {
                let space = usize::from(line.get(colon + 1) == Some(&b' '));
                (&line[..colon], range.start + colon + 1 + space..range.end)
            }
            None => (line, range.end..range.end),
        };
        match field {
            b"data" => self.push_data(buf, value, in_chunk),
            b"event" => {
                self.event.clear();
                self.event.extend_from_slice(&buf[value]);
            }
            _ => {}
        }
    }

    /// Appends one `data:` value to the pending event's data.
    fn push_data(&mut self, buf: &[u8], value: Range<usize>, in_chunk: bool) {
        match std::mem::replace(&mut self.data_at, Data::Buf) {
            Data::None if in_chunk => self.data_at = Data::Chunk(value),
            Data::None => self.data.extend_from_slice(&buf[value]),
            Data::Chunk(first) => {
                // A second data line: both are in `buf`, the chunk being fed.
                self.data.clear();
                self.data.extend_from_slice(&buf[first]);
                self.data.push(b'\n');
                self.data.extend_from_slice(&buf[value]);
            }
            Data::Buf => {
                self.data.push(b'\n');
                self.data.extend_from_slice(&buf[value]);
            }
        }
    }

    /// A blank line (or the end of the stream): hands out the pending event, if any, and starts the next.
    fn dispatch(&mut self, buf: &[u8], on_event: &mut impl FnMut(&str, &[u8])) {
        if self.skipping {
            self.oversized += 1;
        } else {
            let name = std::str::from_utf8(&self.event).unwrap_or_default();
            match &self.data_at {
                Data::None => {}
                Data::Chunk(range) => on_event(name, &buf[range.clone()]),
                Data::Buf => on_event(name, &self.data),
            }
        }
        self.event.clear();
        self.data.clear();
        release_if_large(&mut self.data);
        self.data_at = Data::None;
        self.event_bytes = 0;
        self.skipping = false;
    }

    /// The pending event is over the limit: drop what it holds and ignore the rest of it.
    fn skip_event(&mut self) {
        self.skipping = true;
        self.data.clear();
        self.data_at = Data::None;
        self.line.clear();
        release_if_large(&mut self.data);
        release_if_large(&mut self.line);
    }
}

/// An event [`SseReader::plain_event`] read: where its name and data are in the chunk, and
/// where the next line starts.
struct PlainEvent {
    name: Range<usize>,
    data: Range<usize>,
    next: usize,
}

/// The end of the line at `chunk[from..]` and the start of the next, when it ends in the chunk
/// with LF or CRLF (a lone CR, or a CR last in the chunk, is left to [`Lines`]).
fn plain_line_end(chunk: &[u8], from: usize) -> Option<(usize, usize)> {
    let end = from + memchr2(b'\n', b'\r', &chunk[from..])?;
    match &chunk[end..] {
        [b'\n', ..] => Some((end, end + 1)),
        [b'\r', b'\n', ..] => Some((end, end + 2)),
        _ => None,
    }
}

/// Where a line's field name ends: its first `:`. Field names are short
/// (`data`, `event`), so the first bytes are looked at one by one before a
/// vector search of the rest, whose call costs more on a line this short.
fn colon(line: &[u8]) -> Option<usize> {
    const FIELD: usize = 8;
    match line.iter().take(FIELD).position(|&b| b == b':') {
        Some(at) => Some(at),
        None => memchr(b':', line.get(FIELD..)?).map(|at| at + FIELD),
    }
}

/// Frees a buffer one large event grew, so a long stream does not keep it.
fn release_if_large(buf: &mut Vec<u8>) {
    if buf.capacity() > KEEP_CAPACITY {
        *buf = Vec::new();
    }
}
