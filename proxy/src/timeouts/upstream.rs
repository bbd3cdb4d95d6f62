//! A provider's `first_byte_timeout` apart from its `idle_timeout`.
//!
//! Pingora has one `read_timeout` per peer, restarted by every read, for the response header and
//! body alike. An LLM provider may think for minutes before it answers and then pause briefly
//! between events, or answer at once and then pause long; one knob cannot bound both. So
//! tailmeter connects to providers itself ([`TimedConnector`], Pingora's `custom_l4` hook) and
//! hands Pingora a [`Timed`] socket that keeps two deadlines:
//! - after the request is written, the response header must be in within `first_byte_timeout`
//!   (one deadline, not restarted by bytes that trickle in);
//! - after that, each read must get bytes within `idle_timeout`.
//!
//! Past either, the read fails with [`UpstreamTimeout`], which [`timed_out`] finds in Pingora's
//! error so the request is answered 504 and metered with its reason. Pingora's own
//! `read_timeout` is set to the longer of the two, as a backstop only.
//!
//! Over TLS the socket sees ciphertext, so the header's end cannot be seen: the first bytes
//! after the request end the header wait. A TLS 1.3 session ticket the provider sends after the
//! handshake may be those bytes; the header wait then falls back to `idle_timeout`.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use pingora::connectors::L4Connect;
use pingora::protocols::l4::socket::SocketAddr;
use pingora::protocols::l4::stream::Stream as L4Stream;
use pingora::protocols::l4::virt::{VirtualSockOpt, VirtualSocket, VirtualSocketStream};
use pingora::{Error, ErrorType};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{sleep, Instant, Sleep};

use super::HeaderEnd;

/// The two waits of a provider's response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ResponseTimeouts {
    /// From the request written to the response header (`first_byte_timeout`).
    pub first_byte: Duration,
    /// Longest silence within the response (`idle_timeout`).
    pub idle: Duration,
}

/// Which wait ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamTimeout {
    /// No response header within `first_byte_timeout`.
    FirstByte(Duration),
    /// Nothing for `idle_timeout` within the response.
    Idle(Duration),
}

impl std::fmt::Display for UpstreamTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::FirstByte(d) => write!(f, "no response header within first_byte_timeout ({d:?})"),
            Self::Idle(d) => write!(f, "nothing received within idle_timeout ({d:?})"),
        }
    }
}

impl std::error::Error for UpstreamTimeout {}

/// The [`UpstreamTimeout`] behind a proxy error, if one caused it.
pub fn timed_out(e: &Error) -> Option<UpstreamTimeout> {
    let io = e.root_cause().downcast_ref::<io::Error>()?;
    io.get_ref()?.downcast_ref::<UpstreamTimeout>().copied()
}

/// Connects to a provider over TCP, within `connect_timeout`, and wraps the socket in [`Timed`].
#[derive(Debug)]
pub struct TimedConnector {
    /// Longest wait for the TCP connection.
    pub connect_timeout: Duration,
    /// The response's waits.
    pub timeouts: ResponseTimeouts,
    /// Whether the socket carries plain HTTP (so the header's end can be seen).
    pub plaintext: bool,
}

#[async_trait]
impl L4Connect for TimedConnector {
    async fn connect(&self, addr: &SocketAddr) -> pingora::Result<L4Stream> {
        let SocketAddr::Inet(inet) = addr else {
            return Error::e_explain(ErrorType::ConnectError, "providers are reached over TCP");
        };
        let tcp = match tokio::time::timeout(self.connect_timeout, TcpStream::connect(inet)).await {
            Err(_) => {
                return Error::e_explain(
                    ErrorType::ConnectTimedout,
                    format!("timeout {:?} connecting to {inet}", self.connect_timeout),
                )
            }
            Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused => {
                return Error::e_because(
                    ErrorType::ConnectRefused,
                    format!("connecting to {inet}"),
                    e,
                )
            }
            Ok(Err(e)) => {
                return Error::e_because(
                    ErrorType::ConnectError,
                    format!("connecting to {inet}"),
                    e,
                )
            }
            Ok(Ok(tcp)) => tcp,
        };
        let timed = Timed::new(tcp, self.timeouts, self.plaintext);
        Ok(VirtualSocketStream::new(Box::new(timed)).into())
    }
}

/// A provider connection keeping the first-byte and idle deadlines.
#[derive(Debug)]
pub struct Timed {
    tcp: TcpStream,
    timeouts: ResponseTimeouts,
    /// `Some` while a request is written and its response header awaited.
    awaiting: Option<HeaderEnd>,
    /// Whether a read is under way (its idle deadline already set).
    reading: bool,
    plaintext: bool,
    deadline: Pin<Box<Sleep>>,
}

impl Timed {
    /// `tcp`, idle until a request is written.
    pub fn new(tcp: TcpStream, timeouts: ResponseTimeouts, plaintext: bool) -> Self {
        Self {
            tcp,
            timeouts,
            awaiting: None,
            reading: false,
            plaintext,
            deadline: Box::pin(sleep(timeouts.idle)),
        }
    }

    /// Bytes went out: a request (or more of it), so the header wait starts again.
    fn wrote(&mut self, written: usize) {
        if written > 0 {
            self.awaiting = Some(HeaderEnd::default());
            self.reading = false;
            self.deadline
                .as_mut()
                .reset(Instant::now() + self.timeouts.first_byte);
        }
    }

    /// Bytes came in: the header wait ends with the header (or, over TLS, the first bytes).
    fn read(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let done = match self.awaiting.as_mut() {
            Some(end) if self.plaintext => end.feed(bytes).is_some(),
            Some(_) => true,
            None => false,
        };
        if done {
            self.awaiting = None;
        }
    }
}

impl AsyncRead for Timed {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.reading && this.awaiting.is_none() {
            // A new read within the response: its own idle deadline.
            this.deadline
                .as_mut()
                .reset(Instant::now() + this.timeouts.idle);
        }
        this.reading = true;
        let before = buf.filled().len();
        match Pin::new(&mut this.tcp).poll_read(cx, buf) {
            Poll::Ready(result) => {
                this.reading = false;
                if result.is_ok() {
                    this.read(&buf.filled()[before..]);
                }
                Poll::Ready(result)
            }
            Poll::Pending if this.deadline.as_mut().poll(cx).is_ready() => {
                this.reading = false;
                let which = match this.awaiting {
                    Some(_) => UpstreamTimeout::FirstByte(this.timeouts.first_byte),
                    None => UpstreamTimeout::Idle(this.timeouts.idle),
                };
                Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, which)))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncWrite for Timed {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.tcp).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = written {
            this.wrote(n);
        }
        written
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.tcp).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = written {
            this.wrote(n);
        }
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
    }
}

impl VirtualSocket for Timed {
    fn set_socket_option(&self, opt: VirtualSockOpt) -> io::Result<()> {
        match opt {
            VirtualSockOpt::NoDelay => self.tcp.set_nodelay(true),
            // tailmeter sets no TCP keepalive on provider connections.
            _ => Ok(()),
        }
    }
}
