//! The abrupt HTTP/2 GOAWAY (the `goaway-error=CODE` fault): a connection
//! error as a failing provider sends it, GOAWAY with an error code and the
//! connection closed at once. hyper offers only the graceful GOAWAY, so the
//! frame goes in underneath it: [`FrameWatch`] wraps an HTTP/2 connection's
//! socket, follows the frames hyper writes, and once [`Ending::abort`] is
//! called writes GOAWAY at the next frame boundary and closes.
//!
//! The GOAWAY names as its last stream the highest one the connection has
//! answered (sent HEADERS on): aborted before a response starts, that stream
//! was not processed; aborted mid-response, it was (RFC 9113, 6.8).

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;

/// Length of an HTTP/2 frame header.
const FRAME_HEADER: usize = 9;
/// The HEADERS frame type.
const HEADERS: u8 = 0x1;
/// The GOAWAY frame type.
const GOAWAY: u8 = 0x7;
/// [`Ending::abort`]'s flag above the 32-bit error code.
const ABORT: u64 = 1 << 32;

/// How one connection is asked to end: shared by its requests and its socket.
#[derive(Debug, Default)]
pub struct Ending {
    /// The `goaway` fault: GOAWAY with NO_ERROR, streams in flight go on.
    pub graceful: Notify,
    /// The `close-after-ms` fault: close the connection now, on either protocol.
    pub close: Notify,
    /// [`ABORT`] | error code once the `goaway-error` fault fired.
    abrupt: AtomicU64,
}

impl Ending {
    /// Ends the connection with GOAWAY(`code`) at its next frame boundary.
    pub fn abort(&self, code: u32) {
        self.abrupt
            .store(ABORT | u64::from(code), Ordering::Release);
    }

    /// The error code asked for, once [`Ending::abort`] was called.
    fn aborted(&self) -> Option<u32> {
        let abrupt = self.abrupt.load(Ordering::Acquire);
        (abrupt & ABORT != 0).then_some(abrupt as u32)
    }
}

/// Where the written bytes stand in the frame sequence.
#[derive(Debug, Default)]
struct Frames {
    /// The header of the frame being written, as far as it went.
    header: [u8; FRAME_HEADER],
    header_len: usize,
    /// Payload bytes of the current frame still to come.
    payload_left: usize,
    /// The highest stream a HEADERS frame was written on.
    last_answered: u32,
}

impl Frames {
    /// How many of the next bytes belong to the current frame piece (its
    /// header's rest, or its payload); 0 at a frame boundary.
    fn piece_left(&self) -> usize {
        if self.header_len > 0 {
            FRAME_HEADER - self.header_len
        } else {
            self.payload_left
        }
    }

    /// Follows `written`, bytes that went out.
    fn advance(&mut self, mut written: &[u8]) {
        while !written.is_empty() {
            if self.payload_left > 0 {
                let take = self.payload_left.min(written.len());
                self.payload_left -= take;
                written = &written[take..];
                continue;
            }
            let take = (FRAME_HEADER - self.header_len).min(written.len());
            self.header[self.header_len..self.header_len + take].copy_from_slice(&written[..take]);
            self.header_len += take;
            written = &written[take..];
            if self.header_len == FRAME_HEADER {
                let h = self.header;
                self.header_len = 0;
                self.payload_left =
                    usize::from(h[0]) << 16 | usize::from(h[1]) << 8 | usize::from(h[2]);
                let stream = u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff;
                if h[3] == HEADERS {
                    self.last_answered = self.last_answered.max(stream);
                }
            }
        }
    }

    /// The GOAWAY frame naming the last answered stream and `code`.
    fn goaway(&self, code: u32) -> [u8; FRAME_HEADER + 8] {
        let mut frame = [0; FRAME_HEADER + 8];
        frame[2] = 8;
        frame[3] = GOAWAY;
        frame[9..13].copy_from_slice(&self.last_answered.to_be_bytes());
        frame[13..].copy_from_slice(&code.to_be_bytes());
        frame
    }
}

/// An HTTP/2 server socket that can be ended abruptly; see the module doc.
#[derive(Debug)]
pub struct FrameWatch<S> {
    inner: S,
    ending: Arc<Ending>,
    frames: Frames,
    /// The GOAWAY being written and how much of it went.
    goaway: Option<([u8; FRAME_HEADER + 8], usize)>,
    closed: bool,
}

impl<S> FrameWatch<S> {
    pub fn new(inner: S, ending: Arc<Ending>) -> Self {
        Self {
            inner,
            ending,
            frames: Frames::default(),
            goaway: None,
            closed: false,
        }
    }
}

impl<S: AsyncWrite + Unpin> FrameWatch<S> {
    /// Writes the GOAWAY and shuts the socket; Ready once closed.
    fn poll_abort(&mut self, cx: &mut Context<'_>, code: u32) -> Poll<io::Result<()>> {
        let (frame, sent) = self
            .goaway
            .get_or_insert_with(|| (self.frames.goaway(code), 0));
        while *sent < frame.len() {
            *sent += ready!(Pin::new(&mut self.inner).poll_write(cx, &frame[*sent..]))?;
        }
        ready!(Pin::new(&mut self.inner).poll_shutdown(cx))?;
        self.closed = true;
        Poll::Ready(Ok(()))
    }
}

/// The error hyper sees once the GOAWAY went out.
fn gone() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "goaway-error fault")
}

impl<S: AsyncRead + Unpin> AsyncRead for FrameWatch<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for FrameWatch<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.closed {
            return Poll::Ready(Err(gone()));
        }
        let mut len = buf.len();
        if let Some(code) = this.ending.aborted() {
            match this.frames.piece_left() {
                0 => {
                    ready!(this.poll_abort(cx, code))?;
                    return Poll::Ready(Err(gone()));
                }
                left => len = len.min(left),
            }
        }
        let written = ready!(Pin::new(&mut this.inner).poll_write(cx, &buf[..len]))?;
        this.frames.advance(&buf[..written]);
        Poll::Ready(Ok(written))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.closed {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len().to_be_bytes();
        let mut frame = vec![len[5], len[6], len[7], kind, 0];
        frame.extend_from_slice(&stream.to_be_bytes());
        frame.extend_from_slice(payload);
        frame
    }

    #[test]
    fn follows_frames_written_in_any_pieces() {
        let mut bytes = frame(0x4, 0, &[0; 6]);
        bytes.extend(frame(HEADERS, 3, b"abc"));
        bytes.extend(frame(0x0, 3, &[7; 300]));
        bytes.extend(frame(HEADERS, 1, b"x"));
        // Byte by byte: where each frame ends, and what is left of the current piece.
        let mut frames = Frames::default();
        let left: Vec<usize> = bytes
            .iter()
            .map(|&byte| {
                frames.advance(&[byte]);
                frames.piece_left()
            })
            .collect();
        assert_eq!(
            left.iter().filter(|&&n| n == 0).count(),
            4,
            "four frame ends"
        );
        assert_eq!(frames.last_answered, 3);
        // In larger pieces: the same state after every piece.
        for piece in [2, 5, 9, 10, 64, bytes.len()] {
            let mut frames = Frames::default();
            let mut written = 0;
            for chunk in bytes.chunks(piece) {
                frames.advance(chunk);
                written += chunk.len();
                assert_eq!(frames.piece_left(), left[written - 1], "pieces of {piece}");
            }
            assert_eq!(frames.last_answered, 3, "pieces of {piece}");
        }
    }

    #[test]
    fn goaway_names_the_last_answered_stream_and_the_code() {
        let mut frames = Frames::default();
        frames.advance(&frame(HEADERS, 5, b""));
        let goaway = frames.goaway(2);
        assert_eq!(goaway.to_vec(), frame(GOAWAY, 0, &[0, 0, 0, 5, 0, 0, 0, 2]));
    }
}
