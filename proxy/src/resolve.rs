//! A provider's addresses, resolved at most once per [`FRESH_FOR`] and never waited for longer
//! than the provider's `connect_timeout`.
//!
//! Every proxied request needs the provider's socket address. Asking the system resolver each
//! time costs a hop to Tokio's blocking pool and a `getaddrinfo` call (a file read or a DNS
//! round trip) on the request's path, and makes every request fail while DNS is briefly down.
//! `getaddrinfo` reports no TTL, so an answer is kept for a fixed [`FRESH_FOR`]; after that it
//! still serves, for up to [`STALE_FOR`] more, while one lookup renews it in the background, so
//! no request waits on a renewal and a resolver hiccup does not fail requests (a failed renewal
//! is logged and retried after [`RETRY_AFTER`]). Only a request with no usable answer waits, and
//! only as long as the caller allows: a resolver that does not answer would otherwise hold it for
//! glibc's retries (5 s a try, two tries a name server). One lookup per host is in flight at a
//! time, whoever waits on it, and it completes in the cache even when its waiters gave up. An
//! IP literal is parsed once and never looked up.
//!
//! A name may have several addresses (a provider behind several IPs, a headless Kubernetes
//! Service): they are tried in the resolver's order of preference, and one a connect failed to
//! goes last for [`TRIED_LAST_FOR`], so the requests after a failure do not wait on it first.

use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// How long a resolved address is used before it is looked up again.
pub const FRESH_FOR: Duration = Duration::from_secs(30);
/// How long past [`FRESH_FOR`] an address may still serve while it is being renewed.
pub const STALE_FOR: Duration = Duration::from_secs(300);
/// How long a failed lookup's answer stands before the host is looked up again.
pub const RETRY_AFTER: Duration = Duration::from_secs(1);
/// How long an address a connect failed to is tried after the others.
pub const TRIED_LAST_FOR: Duration = Duration::from_secs(30);

/// A host's addresses in the order to try them; never empty.
pub type Addresses = Arc<[SocketAddr]>;

/// Resolves `host:port` to its addresses, blocking (run on Tokio's blocking pool).
type Lookup = Arc<dyn Fn(&str, u16) -> io::Result<Addresses> + Send + Sync>;

/// One host's addresses, cached. A clone shares the cache (a reloaded configuration keeps it).
#[derive(Clone)]
pub struct CachedAddr {
    /// The address when the host is an IP literal: nothing to look up.
    literal: Option<Addresses>,
    /// The cache, shared with the lookup in flight.
    shared: Arc<Shared>,
}

impl std::fmt::Debug for CachedAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedAddr")
            .field("host", &self.shared.host)
            .field("port", &self.shared.port)
            .finish()
    }
}

/// What the request path and the lookup in flight share.
struct Shared {
    host: String,
    port: u16,
    lookup: Lookup,
    state: Mutex<State>,
    /// Woken when a lookup ends, whatever its outcome.
    looked_up: Notify,
}

/// The last answer and the last failure, whether a lookup is in flight, and the addresses a
/// connect failed to lately.
#[derive(Default)]
struct State {
    answer: Option<(Addresses, Instant)>,
    failure: Option<(io::ErrorKind, String, Instant)>,
    looking_up: bool,
    tried_last: Vec<(SocketAddr, Instant)>,
}

impl State {
    /// The answer while it may still serve ([`FRESH_FOR`] + [`STALE_FOR`]), in the order to try
    /// it, and whether it is past [`FRESH_FOR`].
    fn usable(&mut self) -> Option<(Addresses, bool)> {
        let (addrs, at) = self.answer.as_ref()?;
        let age = at.elapsed();
        let stale = age >= FRESH_FOR;
        let addrs = (age < FRESH_FOR + STALE_FOR).then(|| Arc::clone(addrs))?;
        Some((self.in_order(addrs), stale))
    }

    /// `addrs` with those a connect failed to within [`TRIED_LAST_FOR`] moved last.
    fn in_order(&mut self, addrs: Addresses) -> Addresses {
        self.tried_last
            .retain(|(_, at)| at.elapsed() < TRIED_LAST_FOR);
        if self.tried_last.is_empty() {
            return addrs;
        }
        let failed = |addr: &&SocketAddr| self.tried_last.iter().any(|(down, _)| down == *addr);
        let (last, first): (Vec<&SocketAddr>, Vec<&SocketAddr>) = addrs.iter().partition(failed);
        first.into_iter().chain(last).copied().collect()
    }

    /// The last failure, however old.
    fn last_failure(&self) -> Option<io::Error> {
        let (kind, message, _) = self.failure.as_ref()?;
        Some(io::Error::new(*kind, message.clone()))
    }

    /// The last failure while it stands ([`RETRY_AFTER`]).
    fn recent_failure(&self) -> Option<io::Error> {
        let (_, _, at) = self.failure.as_ref()?;
        if at.elapsed() < RETRY_AFTER {
            self.last_failure()
        } else {
            None
        }
    }
}

impl CachedAddr {
    /// The cache for `host:port` (a name, or an IPv4/IPv6 literal without brackets), filled by
    /// the system resolver.
    pub fn new(host: &str, port: u16) -> Self {
        Self::with_lookup(host, port, Arc::new(system_lookup))
    }

    /// A cache whose lookups always give `addrs` (tests elsewhere in the crate).
    #[cfg(test)]
    pub(crate) fn answering(host: &str, port: u16, addrs: &[SocketAddr]) -> Self {
        let addrs = Addresses::from(addrs);
        Self::with_lookup(
            host,
            port,
            Arc::new(move |_: &str, _: u16| Ok(addrs.clone())),
        )
    }

    /// Whether `self` and `other` are one cache (tests elsewhere in the crate).
    #[cfg(test)]
    pub(crate) fn is_shared_with(&self, other: &CachedAddr) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }

    fn with_lookup(host: &str, port: u16, lookup: Lookup) -> Self {
        let literal = host
            .parse::<IpAddr>()
            .ok()
            .map(|ip| Addresses::from([SocketAddr::new(ip, port)]));
        let shared = Shared {
            host: host.to_owned(),
            port,
            lookup,
            state: Mutex::default(),
            looked_up: Notify::new(),
        };
        Self {
            literal,
            shared: Arc::new(shared),
        }
    }

    /// The addresses to connect to, in order: the literal, else the cached answer while usable
    /// (renewing it in the background once stale), else the outcome of a lookup if it comes
    /// within `within` (an error of kind `TimedOut` if not).
    pub async fn get(&self, within: Duration) -> io::Result<Addresses> {
        if let Some(addrs) = &self.literal {
            return Ok(Arc::clone(addrs));
        }
        let looked_up = {
            let mut state = self.shared.lock();
            if let Some((addrs, stale)) = state.usable() {
                if stale && state.recent_failure().is_none() {
                    Shared::start_lookup(&self.shared, &mut state);
                }
                return Ok(addrs);
            }
            if let Some(failure) = state.recent_failure() {
                return Err(failure);
            }
            // Registered before the lookup can end, so its wake-up is not missed.
            let looked_up = self.shared.looked_up.notified();
            Shared::start_lookup(&self.shared, &mut state);
            looked_up
        };
        if tokio::time::timeout(within, looked_up).await.is_err() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "resolving {} gave no answer within {within:?}",
                    self.shared.host
                ),
            ));
        }
        let mut state = self.shared.lock();
        match state.usable() {
            Some((addrs, _)) => Ok(addrs),
            None => Err(state
                .last_failure()
                .unwrap_or_else(|| io::Error::other("the lookup ended without an answer"))),
        }
    }

    /// Notes that a connect to `addr` failed: it goes last for [`TRIED_LAST_FOR`]. Nothing to
    /// note for an IP literal.
    pub fn connect_failed(&self, addr: SocketAddr) {
        if self.literal.is_some() {
            return;
        }
        let mut state = self.shared.lock();
        state
            .tried_last
            .retain(|(down, at)| *down != addr && at.elapsed() < TRIED_LAST_FOR);
        state.tried_last.push((addr, Instant::now()));
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts a lookup on the blocking pool unless one is in flight; its outcome lands in the
    /// cache and wakes whoever waits.
    fn start_lookup(shared: &Arc<Self>, state: &mut State) {
        if state.looking_up {
            return;
        }
        state.looking_up = true;
        let shared = Arc::clone(shared);
        tokio::task::spawn_blocking(move || {
            let outcome = (shared.lookup)(&shared.host, shared.port).and_then(|addrs| {
                if addrs.is_empty() {
                    let message = format!("{} did not resolve to any address", shared.host);
                    return Err(io::Error::new(io::ErrorKind::NotFound, message));
                }
                Ok(addrs)
            });
            shared.record(outcome);
            shared.looked_up.notify_waiters();
        });
    }

    fn record(&self, outcome: io::Result<Addresses>) {
        let mut state = self.lock();
        state.looking_up = false;
        match outcome {
            Ok(addrs) => {
                state.answer = Some((addrs, Instant::now()));
                state.failure = None;
            }
            Err(e) => {
                if let Some((addrs, _)) = state.usable() {
                    tracing::warn!(
                        "resolving {} failed ({e}); still using its last addresses {addrs:?}",
                        self.host
                    );
                }
                state.failure = Some((e.kind(), e.to_string(), Instant::now()));
            }
        }
    }
}

/// Asks the system resolver (`getaddrinfo`); its addresses in its order of preference.
fn system_lookup(host: &str, port: u16) -> io::Result<Addresses> {
    Ok((host, port).to_socket_addrs()?.collect())
}

#[cfg(test)]
mod tests;
