//! Each client connection served wholly by one worker thread.
//!
//! tailmeter runs Pingora with one single-threaded runtime per worker (`work_stealing = false`),
//! so a connection's task, its socket's readiness and its pooled provider connections
//! (`vendor/pingora-proxy`, change 3) all stay on one thread and no request wakes another
//! thread, as an nginx worker serves its own connections. Pingora's accept loop runs on one of
//! the runtimes and spawns each connection's task on a random one, but the accepted socket stays
//! registered with the accepting runtime's I/O driver: left so, every read or write readiness of
//! half the connections would wake the accepting thread to wake the serving one. [`rehome`]
//! registers the socket again, with the runtime of the task that serves it. Which thread that is
//! [`place`] decides: the one with the fewest open connections, not Pingora's random pick.

mod workers;

use std::os::fd::BorrowedFd;

use pingora::protocols::l4::socket::SocketAddr;
use pingora::protocols::l4::stream::Stream as TcpConnection;
use pingora::protocols::{GetSocketDigest, SocketDigest, Stream, UniqueID};
use tokio::runtime::{Handle, RuntimeFlavor};

pub use workers::{place, Placed};

/// The calling task's runtime, when it is one worker thread's own (single-threaded).
pub fn own_runtime() -> Option<Handle> {
    Handle::try_current()
        .ok()
        .filter(|runtime| runtime.runtime_flavor() == RuntimeFlavor::CurrentThread)
}

/// `session` as a new stream of the same TCP socket registered with the current runtime, when
/// that is a single-threaded one and `session` a plain TCP connection; otherwise `session`.
///
/// The new stream has no read buffer and no write buffer of its own (Pingora's listener sets
/// them, and only it can); `crate::timeouts::client::HeaderDeadline` keeps the write buffer.
pub fn rehome(session: Stream) -> Stream {
    let on_own_thread = own_runtime().is_some();
    let tcp = session
        .get_socket_digest()
        .is_some_and(|digest| matches!(digest.peer_addr(), Some(SocketAddr::Inet(_))));
    if !on_own_thread || !tcp || session.get_ssl().is_some() {
        return session;
    }
    // SAFETY: the descriptor is the open socket `session` owns, and it is only borrowed for the
    // duplication below, while `session` is alive.
    #[allow(unsafe_code)]
    let socket = unsafe { BorrowedFd::borrow_raw(session.id()) };
    let Ok(copy) = socket.try_clone_to_owned() else {
        return session;
    };
    let Ok(registered) = tokio::net::TcpStream::from_std(std::net::TcpStream::from(copy)) else {
        return session;
    };
    let mut moved = TcpConnection::from(registered);
    moved.set_socket_digest(SocketDigest::from_raw_fd(moved.id()));
    // The first stream is closed here; the socket lives on in the copy.
    drop(session);
    Box::new(moved)
}
