//! Turning an answer into an HTTP response under the requested faults: which
//! pieces the body is written in, whether it is gzip-coded, how long to pause
//! between them, and whether the body ends early or the connection is dropped.

use std::collections::VecDeque;
use std::future::Future;
use std::io::{self, Write};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use flate2::write::GzEncoder;
use flate2::Compression;
use http::header::{CONTENT_ENCODING, CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::{sleep, Sleep};

use crate::bedrock::split_frames;
use crate::faults::Faults;
use crate::goaway::Ending;
use crate::sse::split_events;
use crate::synth::Tokens;

/// Response header carrying the usage a synthesized answer reported.
pub const USAGE_HEADER: &str = "x-sim-usage";

/// What a body is, which decides its content type and framing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    /// JSON, sent with a `content-length`.
    Json,
    /// An event stream, sent chunked, one write per event by default.
    Sse,
    /// AWS event-stream frames (`application/vnd.amazon.eventstream`), sent
    /// chunked, one write per frame by default.
    Frames,
    /// Anything else, with this content type and a `content-length`.
    Other(&'static str),
}

/// An answer before faults shape its delivery.
#[derive(Debug)]
pub struct Reply {
    /// Response status.
    pub status: StatusCode,
    /// What the body is.
    pub kind: Kind,
    /// The full body.
    pub body: Bytes,
    /// The usage a synthesized answer reports (none for recordings).
    pub usage: Option<Tokens>,
    /// Provider headers the answer carries beside its content type.
    pub headers: HeaderMap,
    /// How long the answer waits before it is sent (a stream of work still running).
    pub delay: Duration,
}

impl Reply {
    /// A 200 answer.
    pub fn ok(kind: Kind, body: impl Into<Bytes>) -> Self {
        Self {
            status: StatusCode::OK,
            kind,
            body: body.into(),
            usage: None,
            headers: HeaderMap::new(),
            delay: Duration::ZERO,
        }
    }

    /// The same answer, sent only after `delay`.
    pub fn after(self, delay: Duration) -> Self {
        Self { delay, ..self }
    }

    /// The same answer with these provider headers.
    pub fn with_headers(self, headers: HeaderMap) -> Self {
        Self { headers, ..self }
    }

    /// The same answer, noting the usage it reports.
    pub fn with_usage(self, usage: Tokens) -> Self {
        Self {
            usage: Some(usage),
            ..self
        }
    }

    /// A JSON answer with a status.
    pub fn json(status: StatusCode, body: impl Into<Bytes>) -> Self {
        Self {
            status,
            kind: Kind::Json,
            body: body.into(),
            usage: None,
            headers: HeaderMap::new(),
            delay: Duration::ZERO,
        }
    }
}

/// The response for `reply` under `faults`; `error_event` is the event a
/// stream ends with under the `error-event` fault.
pub fn deliver(reply: Reply, faults: &Faults, error_event: Bytes) -> Response<PlannedBody> {
    let mut pieces = match reply.kind {
        Kind::Sse => split_events(&reply.body),
        Kind::Frames => split_frames(&reply.body).unwrap_or_else(|_| vec![reply.body]),
        Kind::Json | Kind::Other(_) => vec![reply.body],
    };
    if faults.error_event && reply.kind == Kind::Sse {
        pieces.truncate(pieces.len() / 2);
        pieces.push(error_event);
    }
    if faults.gzip {
        pieces = gzip(pieces);
    }
    if let Some(size) = faults.chunk_bytes {
        pieces = Bytes::from(pieces.concat())
            .chunks(size)
            .map(Bytes::copy_from_slice)
            .collect();
    }
    if let Some(limit) = faults.end_after {
        pieces = truncate(pieces, limit);
    }
    let total = pieces.iter().map(Bytes::len).sum::<usize>();
    let chunked = matches!(reply.kind, Kind::Sse | Kind::Frames);
    let length = (!chunked).then_some(total as u64);
    if let Some(limit) = faults.cut_after {
        pieces = truncate(pieces, limit);
    }
    let body = PlannedBody {
        pieces: pieces.into(),
        delay: faults.chunk_delay,
        timer: None,
        end: match faults.cut_after {
            Some(_) => End::Abort { flushed: false },
            None => End::Finish,
        },
        length,
        abort: None,
    };
    let mut response = Response::new(body);
    *response.status_mut() = reply.status;
    let content_type = match reply.kind {
        Kind::Json => "application/json",
        Kind::Sse => "text/event-stream; charset=utf-8",
        Kind::Frames => "application/vnd.amazon.eventstream",
        Kind::Other(content_type) => content_type,
    };
    let headers = response.headers_mut();
    headers.extend(reply.headers);
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    if faults.gzip {
        headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    if reply.status == StatusCode::TOO_MANY_REQUESTS {
        headers.insert(RETRY_AFTER, HeaderValue::from_static("1"));
    }
    let usage = reply.usage.and_then(|u| serde_json::to_string(&u).ok());
    if let Some(value) = usage.and_then(|u| HeaderValue::from_str(&u).ok()) {
        headers.insert(USAGE_HEADER, value);
    }
    response
}

/// `pieces` as one gzip member, flushed after each so each still goes as one
/// write; the member's end (last block and trailer) is one more piece.
fn gzip(pieces: Vec<Bytes>) -> Vec<Bytes> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
    let mut coded = Vec::with_capacity(pieces.len() + 1);
    for piece in pieces {
        // Writing to memory does not fail.
        let _ = encoder.write_all(&piece).and_then(|()| encoder.flush());
        coded.push(Bytes::from(std::mem::take(encoder.get_mut())));
    }
    coded.push(Bytes::from(encoder.finish().unwrap_or_default()));
    coded
}

/// The first `limit` bytes of `pieces`, keeping the piece boundaries.
fn truncate(pieces: Vec<Bytes>, mut limit: usize) -> Vec<Bytes> {
    let mut kept = Vec::new();
    for piece in pieces {
        if limit == 0 {
            break;
        }
        let take = piece.len().min(limit);
        limit -= take;
        kept.push(piece.slice(..take));
    }
    kept
}

/// How a planned body ends once its pieces are written.
#[derive(Debug)]
enum End {
    /// A proper end (`content-length` reached or the last chunk).
    Finish,
    /// An error, so hyper drops the connection; `flushed` once the body has
    /// returned `Pending` after its last piece, which makes hyper flush what
    /// it buffered before it sees the error.
    Abort { flushed: bool },
}

/// A response body written as planned pieces with pauses between them.
#[derive(Debug)]
pub struct PlannedBody {
    pieces: VecDeque<Bytes>,
    delay: Duration,
    timer: Option<Pin<Box<Sleep>>>,
    end: End,
    length: Option<u64>,
    /// The `goaway-error` fault with `cut-after`: the connection to end with
    /// GOAWAY(code) instead of the stream's reset.
    abort: Option<(Arc<Ending>, u32)>,
}

impl PlannedBody {
    /// Ends the connection abruptly with GOAWAY(`code`) where the body is cut.
    pub fn abort_connection(&mut self, ending: Arc<Ending>, code: u32) {
        self.abort = Some((ending, code));
    }
}

impl Body for PlannedBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        if let Some(timer) = this.timer.as_mut() {
            ready!(timer.as_mut().poll(cx));
            this.timer = None;
        }
        if let Some(piece) = this.pieces.pop_front() {
            let more = !this.pieces.is_empty() || matches!(this.end, End::Abort { .. });
            if more && !this.delay.is_zero() {
                this.timer = Some(Box::pin(sleep(this.delay)));
            }
            return Poll::Ready(Some(Ok(Frame::data(piece))));
        }
        match this.end {
            End::Finish => Poll::Ready(None),
            End::Abort { flushed: false } => {
                this.end = End::Abort { flushed: true };
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            End::Abort { flushed: true } => {
                if let Some((ending, code)) = &this.abort {
                    ending.abort(*code);
                }
                Poll::Ready(Some(Err(io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    "cut-after fault",
                ))))
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        self.length
            .map_or_else(SizeHint::default, SizeHint::with_exact)
    }
}
