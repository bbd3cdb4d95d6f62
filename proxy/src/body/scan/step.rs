//! The steps of the scan: a string, a number, a literal, each taken from a position in the
//! bytes so far, and the faults or the need for more bytes they stop at.

use memchr::memchr2;

use super::text;
use super::{Halt, Malformed};

/// A position in the bytes so far; `COMPLETE` when they are the whole body.
pub(super) struct Scan<'a, const COMPLETE: bool> {
    pub(super) data: &'a [u8],
    pub(super) at: usize,
    /// See [`super::State::unfinished`].
    pub(super) unfinished: Option<(usize, usize)>,
}

impl<const COMPLETE: bool> Scan<'_, COMPLETE> {
    pub(super) fn peek(&self) -> Option<u8> {
        self.data.get(self.at).copied()
    }

    pub(super) fn fail(&self, why: &'static str) -> Halt {
        Halt::Malformed(Malformed { why, at: self.at })
    }

    /// A fault here, unless the bytes so far end here and more are to come.
    pub(super) fn need(&self, why: &'static str) -> Halt {
        if !COMPLETE && self.at >= self.data.len() {
            return Halt::NeedMore;
        }
        self.fail(why)
    }

    /// Ends the scan on `halt`: when only more bytes are needed, the step begun at `step` is
    /// taken again from its start by the next call.
    pub(super) fn stop(&mut self, halt: Halt, step: usize) -> Halt {
        if let Halt::NeedMore = halt {
            self.at = step;
        }
        halt
    }

    pub(super) fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\n' | b'\t' | b'\r')) {
            self.at += 1;
        }
    }

    /// Steps over the string opening here, from where its text was checked up to if the last
    /// call stopped inside it.
    pub(super) fn string(&mut self) -> Result<(), Halt> {
        let open = self.at;
        self.at = match self.unfinished.take() {
            Some((opened, checked)) if opened == open => checked,
            _ => open + 1,
        };
        loop {
            let rest = &self.data[self.at..];
            let Some(hit) = memchr2(b'"', b'\\', rest) else {
                let good = self.text(rest, COMPLETE)?;
                if COMPLETE {
                    self.at = self.data.len();
                    return Err(self.fail("unterminated string"));
                }
                self.unfinished = Some((open, self.at + good));
                return Err(Halt::NeedMore);
            };
            self.text(&rest[..hit], true)?;
            self.at += hit + 1;
            if rest[hit] == b'"' {
                return Ok(());
            }
            if let Err(halt) = self.escape() {
                if let Halt::NeedMore = halt {
                    self.unfinished = Some((open, self.at - 1));
                }
                return Err(halt);
            }
        }
    }

    /// Checks the string text starting here ([`text::checked`]).
    fn text(&self, text: &[u8], complete: bool) -> Result<usize, Halt> {
        text::checked(text, complete).map_err(|(offset, why)| {
            Halt::Malformed(Malformed {
                why,
                at: self.at + offset,
            })
        })
    }

    /// Steps over the escape whose backslash was just passed.
    fn escape(&mut self) -> Result<(), Halt> {
        match self.peek() {
            Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => self.at += 1,
            Some(b'u') => {
                let digits = &self.data[self.at + 1..];
                let hex = digits.iter().take(4).all(u8::is_ascii_hexdigit);
                if !COMPLETE && hex && digits.len() < 4 {
                    return Err(Halt::NeedMore);
                }
                if !hex || digits.len() < 4 {
                    return Err(self.fail("an invalid \\u escape"));
                }
                self.at += 5;
            }
            None => return Err(self.need("an invalid escape")),
            Some(_) => return Err(self.fail("an invalid escape")),
        }
        Ok(())
    }

    pub(super) fn literal(&mut self, word: &[u8]) -> Result<(), Halt> {
        let rest = &self.data[self.at..];
        if rest.starts_with(word) {
            self.at += word.len();
            return Ok(());
        }
        if !COMPLETE && word.starts_with(rest) {
            return Err(Halt::NeedMore);
        }
        Err(self.fail("an invalid literal"))
    }

    /// Steps over a number: `-`? (`0` | [1-9][0-9]*) (`.` [0-9]+)? ([eE] [+-]? [0-9]+)?
    pub(super) fn number(&mut self) -> Result<(), Halt> {
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        match self.peek() {
            Some(b'0') => self.at += 1,
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(self.need("an invalid number")),
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
        // The number may go on in the bytes still to come.
        if !COMPLETE && self.at == self.data.len() {
            return Err(Halt::NeedMore);
        }
        Ok(())
    }

    fn digits(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.at += 1;
        }
    }

    fn some_digits(&mut self) -> Result<(), Halt> {
        if !self.peek().is_some_and(|b| b.is_ascii_digit()) {
            return Err(self.need("an invalid number"));
        }
        self.digits();
        Ok(())
    }
}
