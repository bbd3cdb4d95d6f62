//! A JSON object too large to keep whole (a body of images as base64, of thousands of
//! embeddings), read as it passes: each top-level member is kept while it is small and dropped
//! once it grows past a bound, so the members a dialect reads (`usage`, `model`, `error`, `id`)
//! come through in bounded memory, and the kept members make one small object to parse.
//!
//! Only the structure is followed (strings, their escapes, nesting); the kept object is checked
//! by the dialect's parse like any body.

/// How far the object has been read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Before its `{` (whitespace skipped).
    Start,
    /// Inside it.
    Members,
    /// Its `}` was read (what follows is ignored).
    Done,
    /// Not an object, or nested past what is followed.
    Invalid,
}

/// Deepest nesting followed; a body nested deeper is not read.
const MAX_DEPTH: usize = 128;

/// A top-level JSON object read as it passes, keeping its small members.
#[derive(Debug)]
pub struct LargeObject {
    phase: Phase,
    /// `{` and the members kept so far, comma-separated.
    kept: Vec<u8>,
    /// The member being read (its name, `:` and value as sent), unless it is being dropped.
    member: Vec<u8>,
    /// The member being read grew past `member_limit`: the rest of it is passed over.
    dropping: bool,
    /// Nesting depth: 1 inside the object itself.
    depth: usize,
    in_string: bool,
    escaped: bool,
    member_limit: usize,
}

impl LargeObject {
    /// A reader keeping each member of at most `member_limit` bytes.
    pub fn new(member_limit: usize) -> Self {
        LargeObject {
            phase: Phase::Start,
            kept: Vec::new(),
            member: Vec::new(),
            dropping: false,
            depth: 0,
            in_string: false,
            escaped: false,
            member_limit,
        }
    }

    /// Reads the next piece of the body.
    pub fn feed(&mut self, chunk: &[u8]) {
        let mut at = 0;
        while at < chunk.len() {
            match self.phase {
                Phase::Done | Phase::Invalid => return,
                Phase::Start => {
                    let byte = chunk[at];
                    at += 1;
                    if byte == b'{' {
                        self.kept.push(b'{');
                        self.depth = 1;
                        self.phase = Phase::Members;
                    } else if !byte.is_ascii_whitespace() {
                        self.phase = Phase::Invalid;
                    }
                }
                Phase::Members if self.in_string => at = self.string(chunk, at),
                Phase::Members => {
                    let byte = chunk[at];
                    at += 1;
                    self.structure(byte);
                }
            }
        }
    }

    /// The kept members as one object, when the body was one whole object; None when it was
    /// not (not an object, cut short, nested too deep).
    pub fn finish(&self) -> Option<&[u8]> {
        (self.phase == Phase::Done).then_some(&self.kept[..])
    }

    /// Inside a string from `at`: up to and including its closing quote, or the whole chunk.
    fn string(&mut self, chunk: &[u8], mut at: usize) -> usize {
        if self.escaped {
            self.escaped = false;
            self.keep(&chunk[at..at + 1]);
            return at + 1;
        }
        let rest = &chunk[at..];
        let Some(special) = memchr::memchr2(b'"', b'\\', rest) else {
            self.keep(rest);
            return chunk.len();
        };
        self.keep(&rest[..=special]);
        at += special + 1;
        match rest[special] {
            b'"' => self.in_string = false,
            _ => self.escaped = true,
        }
        at
    }

    /// One byte outside strings.
    fn structure(&mut self, byte: u8) {
        match byte {
            b'"' => self.in_string = true,
            b'{' | b'[' => {
                self.depth += 1;
                if self.depth > MAX_DEPTH {
                    self.phase = Phase::Invalid;
                    return;
                }
            }
            b'}' | b']' if self.depth == 1 => {
                self.end_member();
                self.kept.push(b'}');
                self.phase = if byte == b'}' {
                    Phase::Done
                } else {
                    Phase::Invalid
                };
                return;
            }
            b'}' | b']' => self.depth -= 1,
            b',' if self.depth == 1 => {
                self.end_member();
                return;
            }
            _ if self.depth == 1 && self.member.is_empty() && byte.is_ascii_whitespace() => {
                return;
            }
            _ => {}
        }
        self.keep(&[byte]);
    }

    /// Adds bytes to the member being read, or drops it once it is past the limit.
    fn keep(&mut self, bytes: &[u8]) {
        if self.dropping {
            return;
        }
        if self.member.len() + bytes.len() > self.member_limit {
            self.dropping = true;
            self.member = Vec::new();
            return;
        }
        self.member.extend_from_slice(bytes);
    }

    /// The member being read is over: kept unless it was dropped.
    fn end_member(&mut self) {
        if !self.dropping && !self.member.is_empty() {
            if self.kept.len() > 1 {
                self.kept.push(b',');
            }
            self.kept.extend_from_slice(&self.member);
        }
        self.member.clear();
        self.dropping = false;
    }
}

#[cfg(test)]
mod tests;
