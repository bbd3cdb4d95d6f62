//! An incremental decoder for AWS event-stream framing
//! (`application/vnd.amazon.eventstream`), the binary framing of Bedrock's
//! streaming responses, fed with response chunks exactly as they arrive.
//!
//! A frame is `[total_len u32][headers_len u32][prelude_crc u32][headers]
//! [payload][message_crc u32]`, big-endian; the prelude CRC32 covers the first
//! 8 bytes, the message CRC32 everything before it. Both are checked:
//! - a frame whose message CRC fails is dropped and counted (its length was
//!   vouched for by the prelude CRC, so the next frame is still found);
//! - a prelude that fails its CRC, or gives impossible lengths, means the
//!   framing is lost: nothing more of the stream is decoded.
//!
//! Memory is bounded: a frame larger than `max_frame` is skipped (counted, not
//! buffered). A frame lying whole in one chunk is decoded in place, without a copy.

#[cfg(test)]
mod tests;

/// Bytes of the prelude: total length, headers length, prelude CRC.
const PRELUDE: usize = 12;
/// The smallest frame: a prelude and a message CRC.
const MIN_FRAME: usize = PRELUDE + 4;
/// A buffer grown past this by one large frame is released once it is done.
const KEEP_CAPACITY: usize = 64 * 1024;

/// What a frame is, from its `:message-type` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// `event`: named by `:event-type`.
    Event,
    /// `exception`: named by `:exception-type` (e.g. `modelStreamErrorException`).
    Exception,
    /// `error`: named by `:error-code`.
    Error,
}

/// One decoded frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// Event, exception or error.
    pub kind: FrameKind,
    /// The event type, exception type or error code.
    pub name: &'a str,
    /// The payload (JSON for Bedrock).
    pub payload: &'a [u8],
}

/// Incremental event-stream decoder.
#[derive(Debug)]
pub struct EventStreamDecoder {
    max_frame: usize,
    /// The frame being assembled across chunks (its prelude first).
    buf: Vec<u8>,
    /// Bytes of an oversized frame still to skip.
    skip: usize,
    /// The framing is lost: nothing more is decoded.
    broken: bool,
    oversized: u64,
    corrupt: u64,
}

impl EventStreamDecoder {
    /// A decoder that skips frames larger than `max_frame` bytes.
    pub fn new(max_frame: usize) -> Self {
        EventStreamDecoder {
            max_frame: max_frame.max(MIN_FRAME),
            buf: Vec::new(),
            skip: 0,
            broken: false,
            oversized: 0,
            corrupt: 0,
        }
    }

    /// Frames skipped for being larger than `max_frame`.
    pub fn oversized_frames(&self) -> u64 {
        self.oversized
    }

    /// Frames dropped for a bad message CRC or unreadable headers.
    pub fn corrupt_frames(&self) -> u64 {
        self.corrupt
    }

    /// True once a bad prelude was met: the rest of the stream is not decoded.
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// Feed bytes; calls `on_frame` for every frame they complete.
    pub fn feed(&mut self, mut data: &[u8], mut on_frame: impl FnMut(&Frame<'_>)) {
        while !data.is_empty() && !self.broken {
            if self.skip > 0 {
                let n = self.skip.min(data.len());
                self.skip -= n;
                data = &data[n..];
                continue;
            }
            if self.buf.is_empty() {
                match prelude(data) {
                    Err(Lost) => {
                        self.broken = true;
                        return;
                    }
                    Ok(Some((len, _))) if len > self.max_frame => {
                        self.oversized += 1;
                        self.skip = len;
                        continue;
                    }
                    Ok(Some((len, crc))) if len <= data.len() => {
                        self.decode_frame(&data[..len], crc, &mut on_frame);
                        data = &data[len..];
                        continue;
                    }
                    Ok(_) => {}
                }
            }
            data = self.buffer(data, &mut on_frame);
        }
    }

    /// Adds the start of `data` to the frame being assembled (decoding it when
    /// complete) and returns the rest.
    fn buffer<'d>(&mut self, data: &'d [u8], on_frame: &mut impl FnMut(&Frame<'_>)) -> &'d [u8] {
        // Once buffered, the prelude has passed [`prelude`]: its length holds.
        let want = if self.buf.len() < PRELUDE {
            PRELUDE
        } else {
            be32(&self.buf[..4]) as usize
        };
        let take = (want - self.buf.len()).min(data.len());
        self.buf.extend_from_slice(&data[..take]);
        if self.buf.len() == PRELUDE {
            match prelude(&self.buf) {
                Err(Lost) => {
                    self.broken = true;
                    self.buf.clear();
                }
                Ok(Some((len, _))) if len > self.max_frame => {
                    self.oversized += 1;
                    self.skip = len - PRELUDE;
                    self.buf.clear();
                }
                Ok(_) => {}
            }
        } else if self.buf.len() == want {
            let frame = std::mem::take(&mut self.buf);
            self.decode_frame(&frame, prelude_crc(&frame), on_frame);
            self.buf = frame;
            self.buf.clear();
            if self.buf.capacity() > KEEP_CAPACITY {
                self.buf = Vec::new();
            }
        }
        &data[take..]
    }

    /// One whole frame (its prelude already checked): checks the message CRC
    /// and hands it out. `crc` has hashed the first 8 bytes (the prelude's
    /// own CRC went on from there), so only the rest is hashed here.
    fn decode_frame(
        &mut self,
        frame: &[u8],
        mut crc: crc32fast::Hasher,
        on_frame: &mut impl FnMut(&Frame<'_>),
    ) {
        let (body, message_crc) = frame.split_at(frame.len() - 4);
        crc.update(&body[8..]);
        if crc.finalize() != be32(message_crc) {
            self.corrupt += 1;
            return;
        }
        let headers_len = be32(&frame[4..8]) as usize;
        let (headers, payload) = body[PRELUDE..].split_at(headers_len);
        match read_headers(headers) {
            Some(Some((kind, name))) => on_frame(&Frame {
                kind,
                name,
                payload,
            }),
            Some(None) => {}
            None => self.corrupt += 1,
        }
    }
}

/// The framing cannot be followed any further.
#[derive(Debug)]
struct Lost;

/// The frame length announced by the prelude at the start of `data`, and
/// the CRC32 of its first 8 bytes, to go on into the message CRC (one pass
/// over the frame checks both); None when fewer than [`PRELUDE`] bytes are there.
fn prelude(data: &[u8]) -> Result<Option<(usize, crc32fast::Hasher)>, Lost> {
    let Some(prelude) = data.get(..PRELUDE) else {
        return Ok(None);
    };
    let crc = prelude_crc(prelude);
    if crc.clone().finalize() != be32(&prelude[8..12]) {
        return Err(Lost);
    }
    let total = be32(&prelude[..4]) as usize;
    let headers = be32(&prelude[4..8]) as usize;
    if total < MIN_FRAME || headers > total - MIN_FRAME {
        return Err(Lost);
    }
    Ok(Some((total, crc)))
}

/// A CRC32 that has hashed the first 8 bytes of `frame` (its lengths).
fn prelude_crc(frame: &[u8]) -> crc32fast::Hasher {
    let mut crc = crc32fast::Hasher::new();
    crc.update(&frame[..8]);
    crc
}

fn be32(bytes: &[u8]) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[..4]);
    u32::from_be_bytes(word)
}

/// The frame's kind and name from its headers; `Some(None)` for a frame
/// tailmeter has no use for, None when the headers cannot be read.
fn read_headers<'h>(mut headers: &'h [u8]) -> Option<Option<(FrameKind, &'h str)>> {
    let (mut message_type, mut event, mut exception, mut error) = (None, None, None, None);
    while let Some((&name_len, rest)) = headers.split_first() {
        let name = rest.get(..usize::from(name_len))?;
        let (&value_type, rest) = rest.get(usize::from(name_len)..)?.split_first()?;
        let (value, rest) = header_value(value_type, rest)?;
        headers = rest;
        let slot = match name {
            b":message-type" => &mut message_type,
            b":event-type" => &mut event,
            b":exception-type" => &mut exception,
            b":error-code" => &mut error,
            _ => continue,
        };
        *slot = value;
    }
    let text = |value: Option<&'h [u8]>| value.and_then(|v| std::str::from_utf8(v).ok());
    let frame = match message_type {
        Some(b"event") => event
            .and_then(event_name)
            .map(|name| (FrameKind::Event, name)),
        Some(b"exception") => Some((FrameKind::Exception, text(exception).unwrap_or("exception"))),
        Some(b"error") => Some((FrameKind::Error, text(error).unwrap_or("error"))),
        _ => None,
    };
    Some(frame)
}

/// The event names of Bedrock's streams, handed out without a UTF-8 check per frame.
const EVENT_NAMES: [&str; 7] = [
    "contentBlockDelta",
    "chunk",
    "contentBlockStart",
    "contentBlockStop",
    "messageStart",
    "messageStop",
    "metadata",
];

/// An `:event-type` value as text: one of [`EVENT_NAMES`], else checked UTF-8.
fn event_name(value: &[u8]) -> Option<&str> {
    let known = EVENT_NAMES.iter().find(|name| name.as_bytes() == value);
    known.copied().or_else(|| std::str::from_utf8(value).ok())
}

/// A header value of `value_type` at the start of `data`: the bytes of a
/// string or byte-array value (None for other types), and what follows it.
fn header_value(value_type: u8, data: &[u8]) -> Option<(Option<&[u8]>, &[u8])> {
    let fixed = match value_type {
        0 | 1 => 0, // true, false
        2 => 1,     // byte
        3 => 2,     // short
        4 => 4,     // integer
        5 | 8 => 8, // long, timestamp
        9 => 16,    // uuid
        6 | 7 => {
            // byte array, string: u16 length, then the bytes
            let len = usize::from(u16::from_be_bytes([*data.first()?, *data.get(1)?]));
            let value = data.get(2..2 + len)?;
            return Some((Some(value), &data[2 + len..]));
        }
        _ => return None,
    };
    Some((None, data.get(fixed..)?))
}
