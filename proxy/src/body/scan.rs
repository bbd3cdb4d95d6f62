//! One pass over a JSON request body: is it a well-formed JSON object, nested at most
//! [`MAX_DEPTH`] deep, and where are its top-level `model` and `stream` values?
//!
//! This replaces a serde parse of the whole body, whose skipping of the fields tailmeter does not
//! read went a byte at a time: 136 µs for the benchmark's 1 MiB prompt against 29 µs here
//! (release build; tests/bench/RESULTS.md, optimization log 64). It accepts exactly what serde_json accepts for a
//! JSON object (RFC 8259: no control characters in strings, only the defined escapes, numbers
//! without leading zeros, no trailing commas), which the differential test below holds it to.
//! Long strings are stepped over with a search for their closing quote and a check of the span
//! for control characters, both many bytes at a time. The same check finds whether a span holds
//! anything but ASCII, and only such a span is validated as UTF-8: outside strings the scan
//! accepts ASCII alone, so a body it accepts is UTF-8 without a pass of its own over the body.

use std::borrow::Cow;
use std::ops::Range;

use memchr::memchr2;

/// Deepest nesting of arrays and objects accepted: serde_json's own recursion limit, which the
/// `include_usage` rewrite and the input estimate parse under.
pub const MAX_DEPTH: usize = 128;

/// Where the top-level members tailmeter reads hold their values (the value's bytes, as sent).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct TopLevel {
    /// The value of `model`.
    pub model: Option<Range<usize>>,
    /// The value of `stream`.
    pub stream: Option<Range<usize>>,
    /// How many times `stream_options` is given (in any spelling): it is read in place by the
    /// `include_usage` rewrite, which must not pick one of several.
    pub stream_options: usize,
    /// The value of a `stream_options` whose name is spelled without escapes (the last one).
    pub stream_options_plain: Option<Range<usize>>,
}

/// Why a body is not a JSON object tailmeter can read, and where it stopped.
#[derive(Debug, PartialEq, Eq)]
pub struct Malformed {
    /// What was wrong.
    pub why: &'static str,
    /// The byte offset it was found at.
    pub at: usize,
}

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at byte {}", self.why, self.at)
    }
}

/// Checks that `body` is one JSON object (whitespace around it allowed) and finds its top-level
/// `model` and `stream`. A member name spelled with escapes counts as the name it spells, and
/// either member given twice is refused (a proxy reading one and a provider the other would
/// meter and grant one model and serve another).
pub fn top_level(body: &[u8]) -> Result<TopLevel, Malformed> {
    let mut scan = Scan { data: body, at: 0 };
    scan.skip_ws();
    if scan.peek() != Some(b'{') {
        return Err(scan.fail("expected a JSON object"));
    }
    let mut found = TopLevel::default();
    // Bit `d` set: the container at depth `d` (1 is the top-level object) is an object.
    let mut objects: u128 = 0;
    let mut depth = 0usize;
    // The top-level member whose value is being read, and where that value starts.
    let mut member: Option<Which> = None;
    let mut value_start = 0;
    let mut next = Next::Value;
    loop {
        scan.skip_ws();
        let byte = scan.peek().ok_or_else(|| scan.fail("unexpected end"))?;
        match next {
            Next::Value | Next::ValueOrEnd => {
                if depth == 1 {
                    value_start = scan.at;
                }
                match byte {
                    b']' if next == Next::ValueOrEnd => {
                        scan.at += 1;
                        depth -= 1;
                    }
                    b'{' | b'[' => {
                        scan.at += 1;
                        depth += 1;
                        if depth > MAX_DEPTH {
                            return Err(scan.fail("nested too deep (recursion limit)"));
                        }
                        let bit = 1u128 << (depth - 1);
                        if byte == b'{' {
                            objects |= bit;
                            next = Next::NameOrEnd;
                        } else {
                            objects &= !bit;
                            next = Next::ValueOrEnd;
                        }
                        continue;
                    }
                    b'"' => scan.string()?,
                    b't' => scan.literal(b"true")?,
                    b'f' => scan.literal(b"false")?,
                    b'n' => scan.literal(b"null")?,
                    b'-' | b'0'..=b'9' => scan.number()?,
                    _ => return Err(scan.fail("expected a value")),
                }
            }
            Next::Name | Next::NameOrEnd => {
                if byte == b'}' && next == Next::NameOrEnd {
                    scan.at += 1;
                    depth -= 1;
                } else {
                    if byte != b'"' {
                        return Err(scan.fail("expected a member name"));
                    }
                    let name = scan.at;
                    scan.string()?;
                    if depth == 1 {
                        let decoded = decoded(&body[name..scan.at]).ok_or(Malformed {
                            why: "a member name that cannot be decoded",
                            at: name,
                        })?;
                        member = match &*decoded {
                            b"model" => Some(Which::Model),
                            b"stream" => Some(Which::Stream),
                            b"stream_options" => {
                                found.stream_options += 1;
                                matches!(decoded, Cow::Borrowed(_)).then_some(Which::StreamOptions)
                            }
                            _ => None,
                        };
                        let taken = member.is_some_and(|which| {
                            which != Which::StreamOptions && found.slot(which).is_some()
                        });
                        if taken {
                            return Err(Malformed {
                                why: "a duplicate member `model` or `stream`",
                                at: name,
                            });
                        }
                    }
                    scan.skip_ws();
                    if scan.peek() != Some(b':') {
                        return Err(scan.fail("expected `:`"));
                    }
                    scan.at += 1;
                    next = Next::Value;
                    continue;
                }
            }
            Next::CommaOrEnd => {
                let in_object = objects & (1u128 << (depth - 1)) != 0;
                scan.at += 1;
                match (byte, in_object) {
                    (b',', true) => next = Next::Name,
                    (b',', false) => next = Next::Value,
                    (b'}', true) | (b']', false) => depth -= 1,
                    _ => {
                        scan.at -= 1;
                        return Err(scan.fail("expected `,` or the container's end"));
                    }
                }
                if byte == b',' {
                    continue;
                }
            }
        }
        // A value just ended: a scalar, or the container closed above.
        if depth == 0 {
            scan.skip_ws();
            if scan.at != body.len() {
                return Err(scan.fail("trailing characters"));
            }
            return Ok(found);
        }
        if depth == 1 {
            if let Some(which) = member.take() {
                *found.slot(which) = Some(value_start..scan.at);
            }
        }
        next = Next::CommaOrEnd;
    }
}

/// What the scan expects next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    Value,
    /// A value, or `]` right after `[`.
    ValueOrEnd,
    Name,
    /// A member name, or `}` right after `{`.
    NameOrEnd,
    CommaOrEnd,
}

/// The top-level members tailmeter reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Which {
    Model,
    Stream,
    /// Spelled without escapes; may be given more than once (counted, not refused).
    StreamOptions,
}

/// The name a quoted member name (as sent, escapes and all) spells; `None` when its escapes do
/// not decode (a lone surrogate), which serde refused too.
fn decoded(quoted: &[u8]) -> Option<Cow<'_, [u8]>> {
    let plain = &quoted[1..quoted.len() - 1];
    if !plain.contains(&b'\\') {
        return Some(Cow::Borrowed(plain));
    }
    let name = serde_json::from_slice::<String>(quoted).ok()?;
    Some(Cow::Owned(name.into_bytes()))
}

impl TopLevel {
    fn slot(&mut self, which: Which) -> &mut Option<Range<usize>> {
        match which {
            Which::Model => &mut self.model,
            Which::Stream => &mut self.stream,
            Which::StreamOptions => &mut self.stream_options_plain,
        }
    }
}

/// A position in the body.
struct Scan<'a> {
    data: &'a [u8],
    at: usize,
}

impl Scan<'_> {
    fn peek(&self) -> Option<u8> {
        self.data.get(self.at).copied()
    }

    fn fail(&self, why: &'static str) -> Malformed {
        Malformed { why, at: self.at }
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\n' | b'\t' | b'\r')) {
            self.at += 1;
        }
    }

    /// Steps over the string opening here.
    fn string(&mut self) -> Result<(), Malformed> {
        self.at += 1;
        loop {
            let rest = &self.data[self.at..];
            let Some(hit) = memchr2(b'"', b'\\', rest) else {
                self.at = self.data.len();
                return Err(self.fail("unterminated string"));
            };
            if let Some((offset, why)) = text_fault(&rest[..hit]) {
                self.at += offset;
                return Err(self.fail(why));
            }
            self.at += hit + 1;
            if rest[hit] == b'"' {
                return Ok(());
            }
            self.escape()?;
        }
    }

    /// Steps over the escape whose backslash was just passed.
    fn escape(&mut self) -> Result<(), Malformed> {
        match self.peek() {
            Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => self.at += 1,
            Some(b'u') => {
                let digits = self.data.get(self.at + 1..self.at + 5);
                if !digits.is_some_and(|d| d.iter().all(u8::is_ascii_hexdigit)) {
                    return Err(self.fail("an invalid \\u escape"));
                }
                self.at += 5;
            }
            _ => return Err(self.fail("an invalid escape")),
        }
        Ok(())
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), Malformed> {
        if !self.data[self.at..].starts_with(word) {
            return Err(self.fail("an invalid literal"));
        }
        self.at += word.len();
        Ok(())
    }

    /// Steps over a number: `-`? (`0` | [1-9][0-9]*) (`.` [0-9]+)? ([eE] [+-]? [0-9]+)?
    fn number(&mut self) -> Result<(), Malformed> {
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        match self.peek() {
            Some(b'0') => self.at += 1,
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(self.fail("an invalid number")),
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            self.some_digits()?;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.at += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.at += 1;
            }
            self.some_digits()?;
        }
        Ok(())
    }

    fn digits(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.at += 1;
        }
    }

    fn some_digits(&mut self) -> Result<(), Malformed> {
        if !self.peek().is_some_and(|b| b.is_ascii_digit()) {
            return Err(self.fail("an invalid number"));
        }
        self.digits();
        Ok(())
    }
}

/// Where string text between quotes and escapes may not be taken as it is, and why: the first
/// byte below 0x20 (which JSON strings may not hold unescaped), else the first byte that does not
/// start valid UTF-8. Each block's lowest byte and the union of its bits are found by reductions
/// the compiler vectorizes; a control character is looked for byte by byte only in a block that
/// has one, and the text is validated as UTF-8 only when some byte has its high bit set. A span
/// ends at an ASCII byte (`"` or `\`), so a character never straddles two spans.
fn text_fault(bytes: &[u8]) -> Option<(usize, &'static str)> {
    const BLOCK: usize = 256;
    let mut start = 0;
    let mut bits = 0u8;
    for block in bytes.chunks(BLOCK) {
        let (low, or) = block
            .iter()
            .fold((u8::MAX, 0u8), |(low, or), &b| (low.min(b), or | b));
        if low < 0x20 {
            let control = block.iter().position(|&b| b < 0x20).map(|i| start + i);
            return control.map(|at| (at, "a control character in a string"));
        }
        bits |= or;
        start += block.len();
    }
    if bits < 0x80 || simdutf8::basic::from_utf8(bytes).is_ok() {
        return None;
    }
    let valid = std::str::from_utf8(bytes).map_or_else(|e| e.valid_up_to(), |_| bytes.len());
    Some((valid, "text that is not UTF-8"))
}

#[cfg(test)]
mod tests;
