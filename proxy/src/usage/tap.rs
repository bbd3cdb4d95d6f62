//! The per-response usage tap: sees every body chunk as it passes through
//! the proxy (it never delays or changes them) and feeds the dialect's
//! extractor, event by event for a stream, as one bounded buffer otherwise.

#[cfg(test)]
mod tests;

use super::extractor::{extractor, Extractor};
use super::sse::SseReader;
use super::{Dialect, Usage};

/// How the body reaches the extractor.
enum Input {
    /// `text/event-stream`: event by event.
    Stream(SseReader),
    /// Anything else: buffered whole, up to `limit` bytes, and parsed at the end.
    Body {
        buf: Vec<u8>,
        limit: usize,
        over: bool,
    },
}

/// Watches a response body as it passes (never delays or changes it) and extracts usage.
pub struct UsageTap {
    extractor: Box<dyn Extractor>,
    input: Input,
}

impl UsageTap {
    /// `streaming` = the response content-type is text/event-stream. `body_limit` bounds the bytes a non-streamed body may be buffered for parsing.
    ///
    /// For a stream, `body_limit` bounds one event instead (a Responses
    /// `response.completed` repeats the whole output, so it must not be small).
    /// Past the limit nothing more is buffered: that body or event is not
    /// parsed, and [`UsageTap::oversized`] says so.
    pub fn new(dialect: Dialect, streaming: bool, body_limit: usize) -> Self {
        let input = if streaming {
            Input::Stream(SseReader::new(body_limit))
        } else {
            Input::Body {
                buf: Vec::new(),
                limit: body_limit,
                over: false,
            }
        };
        UsageTap {
            extractor: extractor(dialect),
            input,
        }
    }

    /// Feed the next chunk exactly as received (any chunk boundaries).
    pub fn feed(&mut self, chunk: &[u8]) {
        let extractor = &mut self.extractor;
        match &mut self.input {
            Input::Stream(reader) => {
                reader.feed(chunk, |event, data| extractor.on_event(event, data))
            }
            Input::Body { buf, limit, over } => {
                if *over {
                    return;
                }
                if buf.len() + chunk.len() > *limit {
                    *over = true;
                    *buf = Vec::new();
                } else {
                    buf.extend_from_slice(chunk);
                }
            }
        }
    }

    /// End of body: flush a final unterminated event / parse the buffered JSON body.
    pub fn finish(&mut self) {
        let extractor = &mut self.extractor;
        match &mut self.input {
            Input::Stream(reader) => reader.finish(|event, data| extractor.on_event(event, data)),
            Input::Body { buf, .. } => {
                let body = std::mem::take(buf);
                if !body.is_empty() {
                    extractor.on_body(&body);
                }
            }
        }
    }

    /// Usage reported so far.
    pub fn usage(&self) -> Usage {
        self.extractor.usage()
    }

    /// The model the provider said it used, if seen.
    pub fn response_model(&self) -> Option<&str> {
        self.extractor.response_model()
    }

    /// An error the provider reported inside the body or stream, if any.
    pub fn provider_error(&self) -> Option<&str> {
        self.extractor.provider_error()
    }

    /// Bytes of text content seen so far (for later output-token estimation): sum of lengths of text/delta content fields. May be approximate.
    pub fn content_bytes(&self) -> u64 {
        self.extractor.content_bytes()
    }

    /// True when something was too large to parse (a body past `body_limit`,
    /// or a stream event past it), so usage may be missing for that reason.
    pub fn oversized(&self) -> bool {
        match &self.input {
            Input::Stream(reader) => reader.oversized_events() > 0,
            Input::Body { over, .. } => *over,
        }
    }
}
