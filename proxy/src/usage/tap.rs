//! The per-response usage tap: sees every body chunk as it passes through
//! the proxy (it never delays or changes them) and feeds the dialect's
//! extractor: event by event for a server-sent-event stream, frame by frame
//! for an AWS event stream, element by element for a streamed JSON array
//! (Gemini without `alt=sse`), message by message for an upgraded WebSocket (Realtime), as one
//! bounded buffer for any other JSON body, and past that
//! bound by its small top-level members ([`LargeObject`]). A body of audio, an image or other
//! bytes (a speech answer) is not read at all.

#[cfg(test)]
mod tests;

use super::array::ArrayReader;
use super::bedrock::eventstream::EventStreamDecoder;
use super::extractor::{extractor, Extractor};
use super::large::LargeObject;
use super::sse::SseReader;
use super::websocket::WebSocketReader;
use super::{Dialect, Tokens, Usage};

/// How a response body is framed, from its content type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `text/event-stream`.
    Sse,
    /// `application/vnd.amazon.eventstream`.
    EventStream,
    /// Audio, images, video or other bytes (`application/octet-stream`): no usage in it.
    Opaque,
    /// The bytes of a connection upgraded to a WebSocket (after a `101`).
    WebSocket,
    /// Anything else, read as JSON: a body starting with `[` is read element
    /// by element as it arrives (a streamed array), any other whole.
    Json,
}

impl Framing {
    /// The framing of a body with this `content-type` header value.
    pub fn from_content_type(content_type: &[u8]) -> Framing {
        let starts = |prefix: &[u8]| {
            content_type
                .get(..prefix.len())
                .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
        };
        if starts(b"text/event-stream") {
            Framing::Sse
        } else if starts(b"application/vnd.amazon.eventstream") {
            Framing::EventStream
        } else if [
            &b"audio/"[..],
            b"image/",
            b"video/",
            b"application/octet-stream",
        ]
        .into_iter()
        .any(starts)
        {
            Framing::Opaque
        } else {
            Framing::Json
        }
    }

    /// Whether a body of this framing is a stream of events.
    pub fn is_stream(self) -> bool {
        matches!(
            self,
            Framing::Sse | Framing::EventStream | Framing::WebSocket
        )
    }
}

/// The largest top-level member kept of a JSON body past the tap's limit: a usage object, a
/// model name or an error is far smaller; pictures and vectors are not kept.
const LARGE_BODY_MEMBER_LIMIT: usize = 64 * 1024;

/// How the body reaches the extractor.
enum Input {
    Sse(SseReader),
    Frames(EventStreamDecoder),
    WebSocket(WebSocketReader),
    /// Not read.
    Opaque,
    /// JSON whose first byte has not arrived yet (leading whitespace is dropped).
    Undecided {
        limit: usize,
    },
    Array(ArrayReader),
    /// Buffered whole, up to `limit` bytes, and parsed at the end.
    Body {
        buf: Vec<u8>,
        limit: usize,
    },
    /// Past `limit`: read by its small top-level members, which are parsed at the end.
    Large(LargeObject),
}

/// Watches a response body as it passes (never delays or changes it) and extracts usage.
pub struct UsageTap {
    extractor: Box<dyn Extractor>,
    input: Input,
}

impl UsageTap {
    /// A tap for a body of `dialect` framed as `framing`. `limit` bounds the
    /// bytes buffered for parsing: a whole JSON body, or one event, frame or
    /// array element of a stream (a Responses `response.completed` repeats the
    /// whole output, so it must not be small). Past it an event, frame or
    /// element is not parsed, and [`UsageTap::oversized`] says so; a JSON
    /// body is read on by its small top-level members ([`LargeObject`]).
    pub fn new(dialect: Dialect, framing: Framing, limit: usize) -> Self {
        let input = match framing {
            Framing::Sse => Input::Sse(SseReader::new(limit)),
            Framing::EventStream => Input::Frames(EventStreamDecoder::new(limit)),
            Framing::WebSocket => Input::WebSocket(WebSocketReader::new(limit)),
            Framing::Opaque => Input::Opaque,
            Framing::Json => Input::Undecided { limit },
        };
        UsageTap {
            extractor: extractor(dialect),
            input,
        }
    }

    /// One response header, before the body.
    pub fn header(&mut self, name: &str, value: &[u8]) {
        self.extractor.on_header(name, value);
    }

    /// Feed the next chunk exactly as received (any chunk boundaries).
    pub fn feed(&mut self, mut chunk: &[u8]) {
        let extractor = &mut self.extractor;
        if let Input::Undecided { limit } = self.input {
            let Some(first) = chunk.iter().position(|b| !b.is_ascii_whitespace()) else {
                return;
            };
            chunk = &chunk[first..];
            self.input = if chunk[0] == b'[' {
                Input::Array(ArrayReader::new(limit))
            } else {
                Input::Body {
                    buf: Vec::new(),
                    limit,
                }
            };
        }
        match &mut self.input {
            Input::Sse(reader) => reader.feed(chunk, |event, data| extractor.on_event(event, data)),
            Input::Frames(decoder) => decoder.feed(chunk, |frame| extractor.on_frame(frame)),
            Input::WebSocket(reader) => {
                reader.feed(chunk, |message| extractor.on_event("", message))
            }
            Input::Array(reader) => reader.feed(chunk, |element| extractor.on_event("", element)),
            Input::Undecided { .. } | Input::Opaque => {}
            Input::Large(object) => object.feed(chunk),
            Input::Body { buf, limit } if buf.len() + chunk.len() > *limit => {
                let mut object = LargeObject::new(LARGE_BODY_MEMBER_LIMIT.min(*limit));
                object.feed(buf);
                object.feed(chunk);
                self.input = Input::Large(object);
            }
            Input::Body { buf, .. } => buf.extend_from_slice(chunk),
        }
    }

    /// End of body: flush a final unterminated event / parse the buffered JSON body.
    pub fn finish(&mut self) {
        let extractor = &mut self.extractor;
        match &mut self.input {
            Input::Sse(reader) => reader.finish(|event, data| extractor.on_event(event, data)),
            Input::Body { buf, .. } => {
                let body = std::mem::take(buf);
                if !body.is_empty() {
                    extractor.on_body(&body);
                }
            }
            Input::Large(object) => {
                if let Some(kept) = object.finish() {
                    extractor.on_body(kept);
                }
            }
            Input::Frames(_)
            | Input::WebSocket(_)
            | Input::Array(_)
            | Input::Undecided { .. }
            | Input::Opaque => {}
        }
    }

    /// Usage reported so far.
    pub fn usage(&self) -> Usage {
        self.extractor.usage()
    }

    /// True once the provider's final usage report was read (not merely a running total).
    pub fn usage_complete(&self) -> bool {
        self.extractor.usage_complete()
    }

    /// The provider's final figures, if its final report gave them (see
    /// [`Extractor::final_tokens`]).
    pub fn final_tokens(&self) -> Option<Tokens> {
        self.extractor.final_tokens()
    }

    /// The model the provider said it used, if seen.
    pub fn response_model(&self) -> Option<&str> {
        self.extractor.response_model()
    }

    /// The Responses object this response is, once seen.
    pub fn response_handle(&self) -> Option<&super::ResponseHandle> {
        self.extractor.response_handle()
    }

    /// An error the provider reported inside the body or stream, if any.
    pub fn provider_error(&self) -> Option<&str> {
        self.extractor.provider_error()
    }

    /// Bytes of text content seen so far (for later output-token estimation): sum of lengths of text/delta content fields. May be approximate. A whole body's text may not be counted when the body has its usage figures (see [`Extractor::content_bytes`]).
    pub fn content_bytes(&self) -> u64 {
        self.extractor.content_bytes()
    }

    /// True when something was too large to parse (a stream event, frame or element past the
    /// limit, a body past it that was not one whole object), so usage may be missing for that
    /// reason.
    pub fn oversized(&self) -> bool {
        match &self.input {
            Input::Sse(reader) => reader.oversized_events() > 0,
            Input::Frames(decoder) => decoder.oversized_frames() > 0,
            Input::WebSocket(reader) => reader.oversized_messages() > 0,
            Input::Array(reader) => reader.oversized_elements() > 0,
            Input::Large(object) => object.finish().is_none(),
            Input::Body { .. } => false,
            Input::Undecided { .. } | Input::Opaque => false,
        }
    }
}
