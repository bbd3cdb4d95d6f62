// tailmeter: change 3 (see vendor/README.md). Idle HTTP/1 upstream connections kept without a
// task per connection.
//
// Pingora's own pool (`pingora_core::connectors`) puts each released connection behind an
// `Arc<Mutex>` and spawns a task that watches it while it is idle; taking it back wakes that task
// and waits for it to hand the lock over, then asks the kernel for the socket's peer. On a proxy
// that reuses one connection per request, that is a task spawned, a timer set, two extra task
// switches and a system call per request. (It also never reuses a custom connector's
// connections: cloudflare/pingora#883.) This pool keeps
// idle streams in a list per upstream instead and checks a stream when it is taken: one that
// has been idle longer than its peer's idle timeout, or that the upstream closed or wrote to
// while idle, is dropped, which closes it. A sweep once per `SWEEP_EVERY` closes connections
// that went idle when traffic stopped.

use futures::FutureExt;
use pingora_core::protocols::Stream;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;

/// How often idle connections are checked when no request takes or returns one.
const SWEEP_EVERY: Duration = Duration::from_secs(5);

/// One idle connection and when it may no longer be used.
struct Idle {
    stream: Stream,
    expires: Option<Instant>,
}

impl Idle {
    fn expired(&self, now: Instant) -> bool {
        self.expires.is_some_and(|at| at <= now)
    }
}

/// Idle upstream streams by the peer's reuse hash (and worker thread, see `thread_salt`), the
/// most recently returned last.
pub(crate) struct IdlePool {
    per_peer: Mutex<HashMap<u64, VecDeque<Idle>>>,
    /// Most idle connections kept per peer by each worker thread: Pingora's
    /// `upstream_keepalive_pool_size`.
    per_thread_limit: usize,
    /// Most idle connections kept per peer in all: `per_thread_limit` × threads, what Pingora's
    /// own pool keeps; the limit of the one list all workers share under work stealing.
    per_peer_limit: usize,
    /// Whether the sweep task was started.
    sweeping: AtomicBool,
}

impl IdlePool {
    pub(crate) fn new(per_thread_limit: usize, threads: usize) -> Arc<Self> {
        Arc::new(IdlePool {
            per_peer: Mutex::new(HashMap::new()),
            per_thread_limit,
            per_peer_limit: per_thread_limit * threads,
            sweeping: AtomicBool::new(false),
        })
    }

    /// A usable idle stream to the peer with this reuse hash, if there is one.
    pub(crate) fn take(&self, key: u64) -> Option<Stream> {
        let key = key ^ thread_salt().unwrap_or(0);
        let now = Instant::now();
        loop {
            let mut idle = {
                let mut per_peer = self.per_peer.lock().unwrap_or_else(|e| e.into_inner());
                per_peer.get_mut(&key)?.pop_back()?
            };
            // One that fails the check is dropped here, which closes it.
            if !idle.expired(now) && still_quiet(&mut idle.stream) {
                return Some(idle.stream);
            }
        }
    }

    /// Keep a stream whose last response ended cleanly for the next request to the peer.
    pub(crate) fn put(self: &Arc<Self>, key: u64, stream: Stream, idle_timeout: Option<Duration>) {
        let (key, limit) = match thread_salt() {
            Some(salt) => (key ^ salt, self.per_thread_limit),
            None => (key, self.per_peer_limit),
        };
        if limit == 0 {
            return;
        }
        let now = Instant::now();
        let idle = Idle {
            stream,
            expires: idle_timeout.map(|timeout| now + timeout),
        };
        let dropped = {
            let mut per_peer = self.per_peer.lock().unwrap_or_else(|e| e.into_inner());
            let list = per_peer.entry(key).or_default();
            list.push_back(idle);
            // The oldest go first: past the limit, or expired.
            if list.len() > limit || list.front().is_some_and(|i| i.expired(now)) {
                list.pop_front()
            } else {
                None
            }
        };
        drop(dropped); // closed outside the lock
        self.start_sweeping();
    }

    /// Starts the sweep task the first time a stream is kept, on the runtime of that request.
    fn start_sweeping(self: &Arc<Self>) {
        if self.sweeping.load(Ordering::Relaxed) || self.sweeping.swap(true, Ordering::AcqRel) {
            return;
        }
        let pool = Arc::downgrade(self);
        tokio::spawn(sweep(pool));
    }

    /// Drops the idle streams that expired or that their upstream closed.
    fn sweep_once(&self) {
        let now = Instant::now();
        let mut closed = Vec::new();
        {
            let mut per_peer = self.per_peer.lock().unwrap_or_else(|e| e.into_inner());
            per_peer.retain(|_, list| {
                let mut kept = VecDeque::with_capacity(list.len());
                for mut idle in list.drain(..) {
                    if !idle.expired(now) && still_quiet(&mut idle.stream) {
                        kept.push_back(idle);
                    } else {
                        closed.push(idle);
                    }
                }
                *list = kept;
                !list.is_empty()
            });
        }
        drop(closed); // closed outside the lock
    }
}

/// Sweeps the pool every `SWEEP_EVERY` until the proxy that owns it is gone.
async fn sweep(pool: Weak<IdlePool>) {
    let mut every = tokio::time::interval(SWEEP_EVERY);
    every.tick().await;
    loop {
        every.tick().await;
        match pool.upgrade() {
            Some(pool) => pool.sweep_once(),
            None => return,
        }
    }
}

/// What keeps each worker's connections apart under single-threaded runtimes (Pingora's
/// `work_stealing = false`): a stream is registered with the I/O driver of the runtime that
/// opened it, so a request on another thread taking it would have its every readiness wake that
/// thread first. `None` under a work-stealing runtime, where all workers share the lists. A
/// worker thread runs one runtime for its life, so this is settled at its first request.
fn thread_salt() -> Option<u64> {
    use std::sync::atomic::AtomicU64;
    static NEXT: AtomicU64 = AtomicU64::new(1);
    thread_local! {
        static SALT: Option<u64> = tokio::runtime::Handle::try_current()
            .is_ok_and(|rt| rt.runtime_flavor() == tokio::runtime::RuntimeFlavor::CurrentThread)
            .then(|| NEXT.fetch_add(1, Ordering::Relaxed).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    }
    SALT.with(|salt| *salt)
}

/// Whether an idle stream has nothing to read: the upstream neither closed it nor sent bytes
/// no request asked for. Reads only what is already there; never waits.
fn still_quiet(stream: &mut Stream) -> bool {
    let mut byte = [0u8; 1];
    tokio::task::unconstrained(stream.read(&mut byte))
        .now_or_never()
        .is_none()
}
