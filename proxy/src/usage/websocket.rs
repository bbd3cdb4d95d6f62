//! The text messages of a WebSocket connection (RFC 6455) out of its bytes, one direction of it:
//! what OpenAI's Realtime API sends its events in, once the connection was upgraded. A message
//! split over frames is joined; binary messages and control frames are stepped over unread; a
//! text message longer than the limit is stepped over and counted. A server's frames are not
//! masked; a masked one is unmasked all the same. A compressed message (permessage-deflate)
//! cannot arrive: tailmeter does not let the extension be negotiated.
//!
//! Hot path: a whole unfragmented text frame within one chunk is handed out where it lies, with
//! no copy; only a message cut by a chunk boundary or split over frames is assembled.

/// The longest frame header: 2 bytes, a 64-bit length, a mask.
const MAX_HEADER: usize = 14;
/// Capacity kept by the message buffer between messages.
const KEEP_CAPACITY: usize = 64 * 1024;

const CONTINUATION: u8 = 0x0;
const TEXT: u8 = 0x1;

/// Where the reader is in the byte stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading a frame header (`len` bytes of it so far).
    Header { len: usize },
    /// Reading a frame's payload: `left` bytes to go.
    Payload { left: u64 },
}

/// What is done with the frames of the message in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Message {
    /// No message begun (or the last one ended).
    None,
    /// A text message being assembled.
    Text,
    /// A message not read: binary, or text past the limit.
    Skipped,
}

/// Incremental reader of one direction of a WebSocket connection.
#[derive(Debug)]
pub struct WebSocketReader {
    max_message: usize,
    state: State,
    header: [u8; MAX_HEADER],
    /// The current frame: its mask, how far into it the payload is, whether it ends its
    /// message, whether it is a control frame (read around, not part of the message).
    mask: Option<[u8; 4]>,
    offset: usize,
    fin: bool,
    control: bool,
    message: Message,
    buf: Vec<u8>,
    oversized: u64,
}

impl WebSocketReader {
    /// A reader that skips text messages longer than `max_message` bytes.
    pub fn new(max_message: usize) -> Self {
        WebSocketReader {
            max_message,
            state: State::Header { len: 0 },
            header: [0; MAX_HEADER],
            mask: None,
            offset: 0,
            fin: false,
            control: false,
            message: Message::None,
            buf: Vec::new(),
            oversized: 0,
        }
    }

    /// Text messages skipped for being longer than the limit.
    pub fn oversized_messages(&self) -> u64 {
        self.oversized
    }

    /// Feed bytes; calls `on_message` with every text message they complete.
    pub fn feed(&mut self, mut data: &[u8], mut on_message: impl FnMut(&[u8])) {
        while !data.is_empty() {
            match self.state {
                State::Header { len } => {
                    // The first two bytes say how long the header is.
                    let want = if len < 2 {
                        2
                    } else {
                        header_len(self.header[1])
                    };
                    let take = (want - len).min(data.len());
                    self.header[len..len + take].copy_from_slice(&data[..take]);
                    data = &data[take..];
                    let len = len + take;
                    self.state = State::Header { len };
                    if len < want || len < header_len(self.header[1]) {
                        continue;
                    }
                    let payload = self.begin_frame(len);
                    // Fast path: a whole unmasked text message, here in full.
                    let alone = self.message == Message::Text && self.buf.is_empty();
                    let here = self.mask.is_none() && payload <= data.len() as u64;
                    if alone && self.fin && !self.control && here {
                        let payload = payload as usize;
                        on_message(&data[..payload]);
                        data = &data[payload..];
                        self.message = Message::None;
                        self.state = State::Header { len: 0 };
                        continue;
                    }
                    self.state = State::Payload { left: payload };
                    if payload == 0 {
                        self.end_frame(&mut on_message);
                    }
                }
                State::Payload { left } => {
                    let n = left.min(data.len() as u64) as usize;
                    let keep = self.message == Message::Text && !self.control;
                    if keep {
                        let start = self.buf.len();
                        self.buf.extend_from_slice(&data[..n]);
                        if let Some(mask) = self.mask {
                            for (i, byte) in self.buf[start..].iter_mut().enumerate() {
                                *byte ^= mask[(self.offset + i) % 4];
                            }
                        }
                    }
                    self.offset += n;
                    data = &data[n..];
                    self.state = State::Payload {
                        left: left - n as u64,
                    };
                    if left == n as u64 {
                        self.end_frame(&mut on_message);
                    }
                }
            }
        }
    }

    /// A whole header of `len` bytes is in: takes in the frame it opens and says how long its
    /// payload is.
    fn begin_frame(&mut self, len: usize) -> u64 {
        let head = &self.header[..len];
        let (fin, opcode, masked) = (head[0] & 0x80 != 0, head[0] & 0x0f, head[1] & 0x80 != 0);
        let payload = match head[1] & 0x7f {
            126 => u64::from(u16::from_be_bytes([head[2], head[3]])),
            127 => u64::from_be_bytes(head[2..10].try_into().unwrap_or_default()),
            short => u64::from(short),
        };
        self.mask = masked.then(|| {
            let at = len - 4;
            [head[at], head[at + 1], head[at + 2], head[at + 3]]
        });
        self.offset = 0;
        self.fin = fin;
        self.control = opcode & 0x08 != 0;
        if self.control {
            return payload;
        }
        let fits = |so_far: usize| so_far as u64 + payload <= self.max_message as u64;
        self.message = match (opcode, self.message) {
            (TEXT, _) if fits(0) => Message::Text,
            (CONTINUATION, Message::Text) if fits(self.buf.len()) => Message::Text,
            (TEXT, _) | (CONTINUATION, Message::Text) => {
                self.oversized += 1;
                self.buf.clear();
                Message::Skipped
            }
            (CONTINUATION, other) => other,
            _ => Message::Skipped,
        };
        if opcode == TEXT {
            self.buf.clear();
        }
        payload
    }

    /// The frame's payload is all in: a final frame ends its message.
    fn end_frame(&mut self, on_message: &mut impl FnMut(&[u8])) {
        self.state = State::Header { len: 0 };
        if self.control || !self.fin {
            return;
        }
        if self.message == Message::Text {
            on_message(&self.buf);
        }
        self.message = Message::None;
        self.buf.clear();
        if self.buf.capacity() > KEEP_CAPACITY {
            self.buf = Vec::new();
        }
    }
}

/// The length of a frame header whose second byte is `second`.
fn header_len(second: u8) -> usize {
    let extended = match second & 0x7f {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    let mask = if second & 0x80 != 0 { 4 } else { 0 };
    2 + extended + mask
}

#[cfg(test)]
mod tests;
