//! An incremental reader of a streamed JSON array: Gemini's
//! `streamGenerateContent` without `alt=sse` answers one JSON array whose
//! elements (whole responses) arrive in pieces. The reader hands out each
//! top-level element as soon as its last byte arrives.
//!
//! It tracks only what it must to find element boundaries: nesting depth,
//! and whether it is inside a string (and after a backslash there). Memory
//! is bounded: an element larger than `max_element` is skipped and counted,
//! never buffered past the limit. An element lying whole in one chunk is
//! handed out as a slice of it, without a copy. Bytes that are not a JSON
//! array are ignored (the reader only promises not to panic on them).

#[cfg(test)]
mod tests;

use memchr::memchr2;

/// A buffer grown past this by one large element is released once it is done.
const KEEP_CAPACITY: usize = 64 * 1024;

/// Incremental reader of the elements of a top-level JSON array.
#[derive(Debug)]
pub struct ArrayReader {
    max_element: usize,
    /// Nesting depth: 1 inside the top-level array, 2+ inside an element.
    depth: usize,
    in_string: bool,
    escaped: bool,
    /// An element began in an earlier chunk: its bytes so far (unless skipping).
    element: Vec<u8>,
    in_element: bool,
    /// The current element is over the limit: its bytes are dropped.
    skipping: bool,
    /// Bytes of the current element so far.
    element_len: usize,
    oversized: u64,
}

impl ArrayReader {
    /// A reader that skips elements larger than `max_element` bytes.
    pub fn new(max_element: usize) -> Self {
        ArrayReader {
            max_element,
            depth: 0,
            in_string: false,
            escaped: false,
            element: Vec::new(),
            in_element: false,
            skipping: false,
            element_len: 0,
            oversized: 0,
        }
    }

    /// Elements skipped for being larger than `max_element`.
    pub fn oversized_elements(&self) -> u64 {
        self.oversized
    }

    /// Feed bytes; calls `on_element` with every object or array element
    /// of the top-level array they complete (scalar elements are skipped).
    pub fn feed(&mut self, chunk: &[u8], mut on_element: impl FnMut(&[u8])) {
        // Where the current element starts in this chunk, if it began here.
        let mut start = None;
        let mut i = 0;
        while i < chunk.len() {
            if self.in_string {
                i = self.skip_string(chunk, i);
                continue;
            }
            // Outside strings only quotes, brackets and braces matter.
            let Some(at) = next_structural(chunk, i) else {
                break;
            };
            i = at + 1;
            match chunk[at] {
                b'"' => self.in_string = true,
                b'{' | b'[' => {
                    if self.depth == 1 {
                        self.begin(&mut start, at);
                    }
                    self.depth += 1;
                }
                _ => {
                    self.depth = self.depth.saturating_sub(1);
                    if self.depth == 1 && self.in_element {
                        self.end(chunk, start.take(), i, &mut on_element);
                    }
                }
            }
        }
        if self.in_element {
            self.keep(&chunk[start.unwrap_or(0)..]);
        }
    }

    /// The reader is past a string's opening quote at `i`: skips to its end
    /// (or the chunk's), returning the offset after what it consumed.
    fn skip_string(&mut self, chunk: &[u8], mut i: usize) -> usize {
        if self.escaped {
            self.escaped = false;
            i += 1;
        }
        match chunk.get(i..).and_then(|rest| memchr2(b'"', b'\\', rest)) {
            None => chunk.len(),
            Some(hit) => {
                let at = i + hit;
                if chunk[at] == b'\\' {
                    self.escaped = true;
                    at + 1
                } else {
                    self.in_string = false;
                    at + 1
                }
            }
        }
    }

    /// An element starts at `at` of the current chunk.
    fn begin(&mut self, start: &mut Option<usize>, at: usize) {
        self.in_element = true;
        self.skipping = false;
        self.element_len = 0;
        self.element.clear();
        *start = Some(at);
    }

    /// The element ended just before `end` of `chunk`.
    fn end(
        &mut self,
        chunk: &[u8],
        start: Option<usize>,
        end: usize,
        on_element: &mut impl FnMut(&[u8]),
    ) {
        self.in_element = false;
        match start {
            Some(from) if end - from <= self.max_element => on_element(&chunk[from..end]),
            Some(_) => self.oversized += 1,
            None => {
                self.keep(&chunk[..end]);
                if self.skipping {
                    self.oversized += 1;
                } else {
                    on_element(&self.element);
                }
                self.element.clear();
                if self.element.capacity() > KEEP_CAPACITY {
                    self.element = Vec::new();
                }
            }
        }
        self.skipping = false;
    }

    /// Keeps bytes of an element that continues in a later chunk, within the limit.
    fn keep(&mut self, bytes: &[u8]) {
        self.element_len += bytes.len();
        if self.skipping {
            return;
        }
        if self.element_len > self.max_element {
            self.skipping = true;
            self.element = Vec::new();
        } else {
            self.element.extend_from_slice(bytes);
        }
    }
}

/// The offset of the next `"`, `{`, `}`, `[` or `]` at or after `from`.
fn next_structural(chunk: &[u8], from: usize) -> Option<usize> {
    chunk[from..]
        .iter()
        .position(|b| matches!(b, b'"' | b'{' | b'}' | b'[' | b']'))
        .map(|at| from + at)
}
