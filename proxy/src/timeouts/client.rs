//! `server.client_header_timeout`: every request header on a client connection must arrive
//! whole within one deadline.
//!
//! Pingora reads the header before any `ProxyHttp` phase, bounding only each single read (60 s,
//! restarted by every byte), so a client sending a header byte by byte holds its connection and
//! a task forever. [`HeaderDeadlineApp`] wraps the proxy's listener: each accepted connection is
//! a [`HeaderDeadline`] stream that watches the bytes Pingora reads.
//!
//! The deadline of a connection's first request starts at accept (nginx's
//! `client_header_timeout`); that of a later request on a kept-alive connection at its first
//! byte (the wait between requests is Pingora's keep-alive timeout). Once the empty line ending
//! the header has passed, the deadline is off until tailmeter writes a response. When it passes
//! first, the client gets a 408 in OpenAI's error format (if it sent anything; the dialect is not
//! known before the path) and the read fails, so Pingora closes the connection. A pending read
//! is only a timer in the runtime's wheel: many such clients cost memory, not threads, and do not
//! hold up other connections.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use pingora::apps::ServerApp;
use pingora::protocols::l4::stream::DEFAULT_L4_WRITE_BUFFER_SIZE;
use pingora::protocols::raw_connect::ProxyDigest;
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl, Stream,
    TimingDigest, UniqueID, UniqueIDType,
};
use pingora::server::ShutdownWatch;
use tokio::io::{AsyncRead, AsyncWrite, BufWriter, ReadBuf};
use tokio::time::{sleep, Instant, Sleep};

use super::HeaderEnd;
use crate::api_error::{ApiError, ErrorFormat, ErrorKind};
use crate::gateway::SharedGateway;

/// The proxy's server app, with every accepted connection served by the worker thread with the
/// fewest open connections, its socket moved to that thread ([`crate::home`]), and under a header
/// deadline.
pub struct HeaderDeadlineApp<A> {
    inner: Arc<A>,
    gateway: SharedGateway,
}

impl<A> HeaderDeadlineApp<A> {
    /// Wraps `inner`; the timeout is read from the gateway generation current at each accept,
    /// so a reload applies to new connections.
    pub fn new(inner: A, gateway: SharedGateway) -> Self {
        Self {
            inner: Arc::new(inner),
            gateway,
        }
    }
}

impl<A: ServerApp + Send + Sync + 'static> HeaderDeadlineApp<A> {
    /// Serves `session` on the calling thread: its socket moved to this thread's runtime
    /// ([`crate::home::rehome`]), its headers under the deadline.
    async fn serve(self: &Arc<Self>, session: Stream, shutdown: &ShutdownWatch) -> Option<Stream> {
        let timeout = self.gateway.load().config.server.client_header_timeout;
        let session = crate::home::rehome(session);
        let stream: Stream = Box::new(HeaderDeadline::new(session, timeout));
        self.inner.process_new(stream, shutdown).await
    }
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for HeaderDeadlineApp<A> {
    async fn process_new(
        self: &Arc<Self>,
        session: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let Some(runtime) = crate::home::own_runtime() else {
            return self.serve(session, shutdown).await;
        };
        let placed = crate::home::place(&runtime);
        if placed.here {
            let served = self.serve(session, shutdown).await;
            drop(placed);
            return served;
        }
        let (app, shutdown) = (Arc::clone(self), shutdown.clone());
        let there = placed.worker.runtime().clone();
        let served = there.spawn(async move {
            let served = app.serve(session, &shutdown).await;
            drop(placed);
            served
        });
        served.await.ok().flatten()
    }

    async fn cleanup(&self) {
        self.inner.cleanup().await;
    }
}

/// Where a connection is between its requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Reading a request header, under the deadline.
    Header,
    /// The header is in; the body is read and the response written.
    Request,
    /// A response was written; the next byte read starts the next header.
    Between,
    /// Switched to another protocol (`101`, a Realtime WebSocket): no more headers.
    Upgraded,
}

/// The error a read fails with when the header deadline passes.
#[derive(Debug)]
pub struct HeaderTimeout(pub Duration);

impl std::fmt::Display for HeaderTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "request header not complete within client_header_timeout ({:?})",
            self.0
        )
    }
}

impl std::error::Error for HeaderTimeout {}

/// A client connection whose request headers must each arrive within `timeout`.
///
/// It also keeps the connection's small write buffer (Pingora's size, one segment): Pingora's
/// listener gives each accepted stream one and its HTTP/1 server relies on it, writing a header
/// and then the body and flushing at the end, but a connection moved to its serving thread
/// (`crate::home::rehome`) is a new stream without it. Like Pingora's stream, what is held is sent
/// when the connection is dropped, if the socket takes it at once.
#[derive(Debug)]
pub struct HeaderDeadline {
    inner: BufWriter<Stream>,
    timeout: Duration,
    phase: Phase,
    end: HeaderEnd,
    /// Bytes of the current header seen so far.
    seen: usize,
    deadline: Pin<Box<Sleep>>,
}

impl HeaderDeadline {
    /// `inner` with its first header due within `timeout` from now.
    pub fn new(inner: Stream, timeout: Duration) -> Self {
        Self {
            inner: BufWriter::with_capacity(DEFAULT_L4_WRITE_BUFFER_SIZE, inner),
            timeout,
            phase: Phase::Header,
            end: HeaderEnd::default(),
            seen: 0,
            deadline: Box::pin(sleep(timeout)),
        }
    }

    /// Follows the header through bytes just read.
    fn saw(&mut self, bytes: &[u8]) {
        if bytes.is_empty() || self.phase == Phase::Upgraded {
            return;
        }
        if self.phase == Phase::Between {
            self.phase = Phase::Header;
            self.end = HeaderEnd::default();
            self.seen = 0;
            self.deadline.as_mut().reset(Instant::now() + self.timeout);
        }
        if self.phase == Phase::Header {
            self.seen += bytes.len();
            if self.end.feed(bytes).is_some() {
                self.phase = Phase::Request;
            }
        }
    }

    /// A response went out: the request is over as far as the deadline cares. An interim
    /// `100 Continue` is not the response: the body is still to come. After a `101` the
    /// connection carries another protocol, whose bytes are no headers.
    fn wrote(&mut self, buf: &[u8], written: usize) {
        if written == 0 || self.phase != Phase::Request {
            return;
        }
        let status = buf.get(..12).and_then(|head| head.strip_prefix(b"HTTP/1."));
        match status.map(|rest| &rest[1..]) {
            Some(b" 101") => self.phase = Phase::Upgraded,
            Some([b' ', b'1', ..]) => {}
            _ => self.phase = Phase::Between,
        }
    }

    /// Best effort, never waiting: a 408 for a client that started a header and did not finish.
    fn answer_timeout(&mut self, cx: &mut Context<'_>) {
        if self.seen == 0 {
            return;
        }
        let response = timeout_response(self.timeout);
        if let Poll::Ready(Ok(_)) = Pin::new(&mut self.inner).poll_write(cx, &response) {
            let _ = Pin::new(&mut self.inner).poll_flush(cx);
        }
    }
}

/// The whole 408 response, connection closing.
fn timeout_response(timeout: Duration) -> Bytes {
    let error = ApiError::new(
        ErrorKind::RequestTimeout,
        "client_header_timeout",
        format!(
            "the request header did not arrive within this gateway's client_header_timeout of {}s",
            timeout.as_secs_f64()
        ),
    );
    let body = error.body(ErrorFormat::OpenAi);
    let head = format!(
        "HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    [head.as_bytes(), &body].concat().into()
}

impl AsyncRead for HeaderDeadline {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                this.saw(&buf.filled()[before..]);
                Poll::Ready(Ok(()))
            }
            Poll::Pending
                if this.phase == Phase::Header && this.deadline.as_mut().poll(cx).is_ready() =>
            {
                this.answer_timeout(cx);
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    HeaderTimeout(this.timeout),
                )))
            }
            other => other,
        }
    }
}

impl AsyncWrite for HeaderDeadline {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = written {
            this.wrote(buf, n);
        }
        written
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = written {
            let first = bufs
                .iter()
                .find(|b| !b.is_empty())
                .map_or(&[][..], |b| &b[..]);
            this.wrote(first, n);
        }
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[async_trait]
impl Shutdown for HeaderDeadline {
    async fn shutdown(&mut self) {
        // What is held goes out before the close, as a flush would have sent it.
        let _ = std::future::poll_fn(|cx| Pin::new(&mut self.inner).poll_flush(cx)).await;
        self.inner.get_mut().shutdown().await;
    }
}

impl Drop for HeaderDeadline {
    /// What is still held is sent if the socket takes it now, as Pingora's own stream does when
    /// dropped: a connection closed on an error (a provider's stream cut after its header) is
    /// never flushed, and the client would lose the header and body it was owed.
    fn drop(&mut self) {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let _ = Pin::new(&mut self.inner).poll_flush(&mut cx);
    }
}

impl UniqueID for HeaderDeadline {
    fn id(&self) -> UniqueIDType {
        self.inner.get_ref().id()
    }
}

impl Ssl for HeaderDeadline {
    fn get_ssl(&self) -> Option<&pingora::protocols::tls::TlsRef> {
        self.inner.get_ref().get_ssl()
    }

    fn get_ssl_digest(&self) -> Option<Arc<pingora::protocols::tls::SslDigest>> {
        self.inner.get_ref().get_ssl_digest()
    }

    fn selected_alpn_proto(&self) -> Option<pingora::protocols::ALPN> {
        self.inner.get_ref().selected_alpn_proto()
    }
}

impl GetTimingDigest for HeaderDeadline {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_ref().get_timing_digest()
    }

    fn get_read_pending_time(&self) -> Duration {
        self.inner.get_ref().get_read_pending_time()
    }

    fn get_write_pending_time(&self) -> Duration {
        self.inner.get_ref().get_write_pending_time()
    }
}

impl GetProxyDigest for HeaderDeadline {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.inner.get_ref().get_proxy_digest()
    }

    fn set_proxy_digest(&mut self, digest: ProxyDigest) {
        self.inner.get_mut().set_proxy_digest(digest);
    }
}

impl GetSocketDigest for HeaderDeadline {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_ref().get_socket_digest()
    }

    fn set_socket_digest(&mut self, digest: SocketDigest) {
        self.inner.get_mut().set_socket_digest(digest);
    }
}

#[async_trait]
impl Peek for HeaderDeadline {
    async fn try_peek(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        self.inner.get_mut().try_peek(buf).await
    }
}
