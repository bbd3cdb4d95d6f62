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
//!
//! The scan can be fed a body as it arrives ([`TopLevelScan`]), so that a large body is mostly
//! checked before its last piece is in: on the benchmark's 1 MiB prompt, read 64 KiB at a time,
//! what is left after the last piece takes about 0.1 µs instead of the whole 33 µs.

use std::borrow::Cow;
use std::ops::Range;

mod step;
mod text;

use step::Scan;

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
    /// The value of `previous_response_id` (Responses): the stored response a call continues.
    pub previous_response_id: Option<Range<usize>>,
    /// The value of `conversation` (Responses): the conversation a call continues.
    pub conversation: Option<Range<usize>>,
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

/// Checks that a body is one JSON object (whitespace around it allowed) and finds its top-level
/// `model` and `stream`. A member name spelled with escapes counts as the name it spells, and
/// either member given twice is refused (a proxy reading one and a provider the other would
/// meter and grant one model and serve another).
///
/// The body may still be arriving: [`advance`](Self::advance) goes as far as the bytes so far
/// allow, so a large body is mostly checked while the rest of it is on its way (and while what
/// arrived is still in the cache), and [`finish`](Self::finish) checks what is left once the
/// body is whole. Fed in any number of steps, the scan gives exactly what it gives for the whole
/// body at once, faults at the same offsets included.
#[derive(Debug, Default)]
pub struct TopLevelScan {
    state: State,
    /// The first fault found while the body arrived, reported by `finish`.
    fault: Option<Malformed>,
    /// Set once a step that is not string text (a number, a run of whitespace) was left
    /// unfinished over more than [`RESCAN_LIMIT`] bytes: such a step starts over each time, so
    /// the rest is left to `finish` rather than scanned again and again.
    deferred: bool,
}

/// The most bytes of an unfinished step [`TopLevelScan::advance`] scans again.
const RESCAN_LIMIT: usize = 64 * 1024;

/// Where a scan stands between two steps.
#[derive(Debug)]
struct State {
    /// Where the next step starts.
    at: usize,
    next: Next,
    /// Containers open; 1 inside the top-level object.
    depth: usize,
    /// Bit `d` set: the container at depth `d + 1` is an object.
    objects: u128,
    /// The top-level member whose value is being read, and where that value starts.
    member: Option<Which>,
    value_start: usize,
    found: TopLevel,
    /// A string cut off where the bytes so far end: where it opens, and how far its text is
    /// checked.
    unfinished: Option<(usize, usize)>,
}

impl Default for State {
    fn default() -> Self {
        Self {
            at: 0,
            next: Next::Object,
            depth: 0,
            objects: 0,
            member: None,
            value_start: 0,
            found: TopLevel::default(),
            unfinished: None,
        }
    }
}

/// Why a scan stopped short.
enum Halt {
    Malformed(Malformed),
    /// The bytes so far end inside a step.
    NeedMore,
}

impl TopLevelScan {
    /// Scans on through `so_far`, the body's first bytes (all of them that arrived, each call
    /// with at least those of the last).
    pub fn advance(&mut self, so_far: &[u8]) {
        if self.fault.is_some() || self.deferred {
            return;
        }
        match self.run::<false>(so_far) {
            Ok(()) | Err(Halt::NeedMore) => {}
            Err(Halt::Malformed(fault)) => self.fault = Some(fault),
        }
        let checked = self.state.unfinished.map_or(0, |(_, checked)| checked);
        self.deferred = so_far.len() - self.state.at.max(checked) > RESCAN_LIMIT;
    }

    /// Scans the rest of the whole `body`: its top-level members, or its first fault.
    pub fn finish(mut self, body: &[u8]) -> Result<TopLevel, Malformed> {
        if let Some(fault) = self.fault {
            return Err(fault);
        }
        match self.run::<true>(body) {
            Ok(()) => Ok(self.state.found),
            Err(Halt::Malformed(fault)) => Err(fault),
            // Not reached: with the whole body there is nothing more to wait for.
            Err(Halt::NeedMore) => Err(Malformed {
                why: "unexpected end",
                at: body.len(),
            }),
        }
    }

    /// The scan proper, from where the last call stopped. A step the bytes end inside is taken
    /// again from its start by the next call, but for a string's text, which is checked once.
    fn run<const COMPLETE: bool>(&mut self, data: &[u8]) -> Result<(), Halt> {
        let State {
            at,
            mut next,
            mut depth,
            mut objects,
            mut member,
            mut value_start,
            mut found,
            unfinished,
        } = std::mem::take(&mut self.state);
        let mut scan = Scan::<COMPLETE> {
            data,
            at,
            unfinished,
        };
        let halt = loop {
            scan.skip_ws();
            let step = scan.at;
            let Some(byte) = scan.peek() else {
                match next {
                    Next::End if COMPLETE => break Ok(()),
                    Next::Object => break Err(scan.need("expected a JSON object")),
                    _ => break Err(scan.need("unexpected end")),
                }
            };
            let stepped = match next {
                Next::End => Err(scan.fail("trailing characters")),
                Next::Object if byte != b'{' => Err(scan.fail("expected a JSON object")),
                Next::Object => {
                    scan.at += 1;
                    (depth, objects, next) = (1, 1, Next::NameOrEnd);
                    continue;
                }
                Next::Value | Next::ValueOrEnd => {
                    if depth == 1 {
                        value_start = scan.at;
                    }
                    match byte {
                        b']' if next == Next::ValueOrEnd => {
                            scan.at += 1;
                            depth -= 1;
                            Ok(())
                        }
                        b'{' | b'[' => {
                            scan.at += 1;
                            depth += 1;
                            if depth > MAX_DEPTH {
                                break Err(scan.fail("nested too deep (recursion limit)"));
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
                        b'"' => scan.string(),
                        b't' => scan.literal(b"true"),
                        b'f' => scan.literal(b"false"),
                        b'n' => scan.literal(b"null"),
                        b'-' | b'0'..=b'9' => scan.number(),
                        _ => Err(scan.fail("expected a value")),
                    }
                }
                Next::Name | Next::NameOrEnd if byte == b'}' && next == Next::NameOrEnd => {
                    scan.at += 1;
                    depth -= 1;
                    Ok(())
                }
                Next::Name | Next::NameOrEnd => {
                    if byte != b'"' {
                        break Err(scan.fail("expected a member name"));
                    }
                    let name = scan.at;
                    if let Err(halt) = scan.string() {
                        break Err(scan.stop(halt, step));
                    }
                    let read = match depth {
                        1 => match top_member(&data[name..scan.at], name, &found) {
                            Ok(read) => Some(read),
                            Err(fault) => break Err(Halt::Malformed(fault)),
                        },
                        _ => None,
                    };
                    scan.skip_ws();
                    if scan.peek() != Some(b':') {
                        let halt = scan.need("expected `:`");
                        break Err(scan.stop(halt, step));
                    }
                    scan.at += 1;
                    if let Some((which, counted)) = read {
                        member = which;
                        found.stream_options += usize::from(counted);
                    }
                    next = Next::Value;
                    continue;
                }
                Next::CommaOrEnd => {
                    let in_object = objects & (1u128 << (depth - 1)) != 0;
                    match (byte, in_object) {
                        (b',', true) => next = Next::Name,
                        (b',', false) => next = Next::Value,
                        (b'}', true) | (b']', false) => depth -= 1,
                        _ => break Err(scan.fail("expected `,` or the container's end")),
                    }
                    scan.at += 1;
                    if byte == b',' {
                        continue;
                    }
                    Ok(())
                }
            };
            if let Err(halt) = stepped {
                break Err(scan.stop(halt, step));
            }
            // A value just ended: a scalar, or the container closed above.
            if depth == 0 {
                next = Next::End;
                continue;
            }
            if depth == 1 {
                if let Some(which) = member.take() {
                    *found.slot(which) = Some(value_start..scan.at);
                }
            }
            next = Next::CommaOrEnd;
        };
        self.state = State {
            at: scan.at,
            next,
            depth,
            objects,
            member,
            value_start,
            found,
            unfinished: scan.unfinished,
        };
        halt
    }
}

/// What the scan expects next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    /// The top-level object's `{`.
    Object,
    Value,
    /// A value, or `]` right after `[`.
    ValueOrEnd,
    Name,
    /// A member name, or `}` right after `{`.
    NameOrEnd,
    CommaOrEnd,
    /// Nothing but whitespace: the top-level object is closed.
    End,
}

/// The top-level members tailmeter reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Which {
    Model,
    Stream,
    PreviousResponseId,
    Conversation,
    /// Spelled without escapes; may be given more than once (counted, not refused).
    StreamOptions,
}

/// Which top-level member the quoted name at `at` is (`None`: one tailmeter does not read), and
/// whether it is a `stream_options`, in any spelling. A second `model`, `stream`,
/// `previous_response_id` or `conversation` is refused: which one a provider takes is not
/// tailmeter's to guess.
fn top_member(
    quoted: &[u8],
    at: usize,
    found: &TopLevel,
) -> Result<(Option<Which>, bool), Malformed> {
    let decoded = decoded(quoted).ok_or(Malformed {
        why: "a member name that cannot be decoded",
        at,
    })?;
    let read = match &*decoded {
        b"model" => (Some(Which::Model), false),
        b"stream" => (Some(Which::Stream), false),
        b"previous_response_id" => (Some(Which::PreviousResponseId), false),
        b"conversation" => (Some(Which::Conversation), false),
        b"stream_options" => {
            let plain = matches!(decoded, Cow::Borrowed(_));
            (plain.then_some(Which::StreamOptions), true)
        }
        _ => (None, false),
    };
    let taken = match read.0 {
        Some(Which::Model) => found.model.is_some(),
        Some(Which::Stream) => found.stream.is_some(),
        Some(Which::PreviousResponseId) => found.previous_response_id.is_some(),
        Some(Which::Conversation) => found.conversation.is_some(),
        _ => false,
    };
    if taken {
        return Err(Malformed {
            why: "a duplicate member `model`, `stream`, `previous_response_id` or `conversation`",
            at,
        });
    }
    Ok(read)
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
            Which::PreviousResponseId => &mut self.previous_response_id,
            Which::Conversation => &mut self.conversation,
            Which::StreamOptions => &mut self.stream_options_plain,
        }
    }
}

#[cfg(test)]
mod tests;
