//! The small write buffer of a client connection: writes smaller than a segment are held until
//! the next flush, so a response's header and a small body leave in one send.
//!
//! Pingora's listener gives each accepted stream such a buffer (1,460 bytes) and its HTTP/1
//! server relies on it: it writes a header and then the body, and flushes at the end. A
//! connection moved to its serving thread (`crate::home::rehome`) is a new stream without one,
//! so [`super::client::HeaderDeadline`], which wraps every client connection, keeps it instead.
//! The rules are tokio's `BufWriter`'s: a write that would overflow the buffer first drains it,
//! and one as large as the buffer goes straight through. Like Pingora's stream, the wrapper
//! sends what is held when it is dropped, if the socket takes it at once.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::AsyncWrite;

/// Pingora's own size for this buffer (`DEFAULT_L4_WRITE_BUFFER_SIZE`): one Ethernet segment.
pub const WRITE_BUFFER: usize = 1460;

/// Bytes written but not yet sent, and how many of them a partial drain already sent.
#[derive(Debug, Default)]
pub struct WriteBuffer {
    held: Vec<u8>,
    sent: usize,
}

impl WriteBuffer {
    /// Takes `data` into the buffer, or writes it through when it does not fit.
    pub fn poll_write<W: AsyncWrite + Unpin>(
        &mut self,
        inner: &mut W,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.held.len() + data.len() > WRITE_BUFFER {
            ready!(self.poll_drain(inner, cx))?;
        }
        if data.len() >= WRITE_BUFFER {
            return Pin::new(inner).poll_write(cx, data);
        }
        self.hold(data);
        Poll::Ready(Ok(data.len()))
    }

    /// The same for several slices: all of them held when they fit together.
    pub fn poll_write_vectored<W: AsyncWrite + Unpin>(
        &mut self,
        inner: &mut W,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        if self.held.len() + total > WRITE_BUFFER {
            ready!(self.poll_drain(inner, cx))?;
        }
        if total >= WRITE_BUFFER {
            return Pin::new(inner).poll_write_vectored(cx, bufs);
        }
        for buf in bufs {
            self.hold(buf);
        }
        Poll::Ready(Ok(total))
    }

    /// Sends what is held; ready once all of it is written.
    pub fn poll_drain<W: AsyncWrite + Unpin>(
        &mut self,
        inner: &mut W,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        while self.sent < self.held.len() {
            let n = ready!(Pin::new(&mut *inner).poll_write(cx, &self.held[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        self.held.clear();
        self.sent = 0;
        Poll::Ready(Ok(()))
    }

    fn hold(&mut self, data: &[u8]) {
        if self.held.capacity() == 0 {
            self.held.reserve_exact(WRITE_BUFFER);
        }
        self.held.extend_from_slice(data);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::poll_fn;

    /// An `AsyncWrite` that records each write it gets, taking at most `limit` bytes of each.
    #[derive(Default)]
    struct Recorder {
        writes: Vec<Vec<u8>>,
        limit: usize,
    }

    impl AsyncWrite for Recorder {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let n = buf.len().min(if self.limit == 0 {
                usize::MAX
            } else {
                self.limit
            });
            self.writes.push(buf[..n].to_vec());
            Poll::Ready(Ok(n))
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    async fn write(buffer: &mut WriteBuffer, inner: &mut Recorder, data: &[u8]) -> usize {
        poll_fn(|cx| buffer.poll_write(inner, cx, data))
            .await
            .unwrap()
    }

    async fn drain(buffer: &mut WriteBuffer, inner: &mut Recorder) {
        poll_fn(|cx| buffer.poll_drain(inner, cx)).await.unwrap()
    }

    #[tokio::test]
    async fn a_header_and_small_body_leave_in_one_write() {
        let (mut buffer, mut inner) = (WriteBuffer::default(), Recorder::default());
        assert_eq!(
            write(&mut buffer, &mut inner, b"HTTP/1.1 200 OK\r\n\r\n").await,
            19
        );
        let slices = [io::IoSlice::new(b"{\"a\":"), io::IoSlice::new(b"1}")];
        let taken = poll_fn(|cx| buffer.poll_write_vectored(&mut inner, cx, &slices)).await;
        assert_eq!(taken.unwrap(), 7);
        assert!(inner.writes.is_empty(), "nothing is sent before the flush");
        drain(&mut buffer, &mut inner).await;
        assert_eq!(
            inner.writes,
            vec![b"HTTP/1.1 200 OK\r\n\r\n{\"a\":1}".to_vec()]
        );
    }

    #[tokio::test]
    async fn what_overflows_drains_first_and_a_large_write_goes_through() {
        let (mut buffer, mut inner) = (WriteBuffer::default(), Recorder::default());
        write(&mut buffer, &mut inner, b"head").await;
        let large = vec![b'x'; WRITE_BUFFER];
        assert_eq!(write(&mut buffer, &mut inner, &large).await, WRITE_BUFFER);
        assert_eq!(inner.writes, vec![b"head".to_vec(), large]);
        drain(&mut buffer, &mut inner).await;
        assert_eq!(inner.writes.len(), 2, "nothing was left held");
    }

    #[tokio::test]
    async fn a_partial_send_is_resumed_where_it_stopped() {
        let mut buffer = WriteBuffer::default();
        let mut inner = Recorder {
            limit: 3,
            ..Recorder::default()
        };
        write(&mut buffer, &mut inner, b"abcdefgh").await;
        drain(&mut buffer, &mut inner).await;
        assert_eq!(inner.writes.concat(), b"abcdefgh");
        assert_eq!(inner.writes.len(), 3);
    }
}
