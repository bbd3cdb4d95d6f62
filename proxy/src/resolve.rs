//! A provider's address, resolved at most once per [`FRESH_FOR`] instead of once per request.
//!
//! Every proxied request needs the provider's socket address. Asking the system resolver each
//! time costs a hop to Tokio's blocking pool and a `getaddrinfo` call (a file read or a DNS
//! round trip) on the request's path, and makes every request fail while DNS is briefly down.
//! `getaddrinfo` reports no TTL, so an answer is kept for a fixed [`FRESH_FOR`]; when a renewal
//! fails, the last answer keeps serving for up to [`STALE_FOR`] (and says so in the log), since a
//! provider's address outlives a resolver hiccup far more often than not. An IP literal is parsed
//! once and never looked up.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a resolved address is used before it is looked up again.
pub const FRESH_FOR: Duration = Duration::from_secs(30);
/// How long past [`FRESH_FOR`] an address may still serve while lookups fail.
pub const STALE_FOR: Duration = Duration::from_secs(300);

/// One host's address, cached.
#[derive(Debug)]
pub struct CachedAddr {
    host: String,
    port: u16,
    /// The address when the host is an IP literal: nothing to look up.
    literal: Option<SocketAddr>,
    /// The last address looked up, and when.
    last: Mutex<Option<(SocketAddr, Instant)>>,
}

impl CachedAddr {
    /// The cache for `host:port` (a name, or an IPv4/IPv6 literal without brackets).
    pub fn new(host: &str, port: u16) -> Self {
        let literal = host
            .parse::<IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, port));
        Self {
            host: host.to_owned(),
            port,
            literal,
            last: Mutex::new(None),
        }
    }

    /// The address to connect to: the literal, the cached answer while fresh, else a new
    /// lookup (falling back to a stale answer within [`STALE_FOR`] when the lookup fails).
    pub async fn get(&self) -> io::Result<SocketAddr> {
        if let Some(addr) = self.literal {
            return Ok(addr);
        }
        let last = *self.last.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((addr, _)) = last.filter(|(_, at)| at.elapsed() < FRESH_FOR) {
            return Ok(addr);
        }
        match self.lookup().await {
            Ok(addr) => {
                *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some((addr, Instant::now()));
                Ok(addr)
            }
            Err(e) => match last.filter(|(_, at)| at.elapsed() < FRESH_FOR + STALE_FOR) {
                Some((addr, _)) => {
                    tracing::warn!(
                        "resolving {} failed ({e}); still using its last address {addr}",
                        self.host
                    );
                    Ok(addr)
                }
                None => Err(e),
            },
        }
    }

    /// Asks the system resolver, off the worker thread.
    async fn lookup(&self) -> io::Result<SocketAddr> {
        tokio::net::lookup_host((self.host.as_str(), self.port))
            .await?
            .next()
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("{} did not resolve to any address", self.host),
                )
            })
    }

    /// Ages the cached answer by `by`, as if it had been looked up that long ago (tests).
    #[cfg(test)]
    fn age(&self, by: Duration) {
        let mut last = self.last.lock().unwrap();
        if let Some((_, at)) = last.as_mut() {
            *at -= by;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_literal_is_never_looked_up() {
        let cached = CachedAddr::new("::1", 8080);
        assert_eq!(cached.get().await.unwrap(), "[::1]:8080".parse().unwrap());
        assert!(cached.last.lock().unwrap().is_none());
    }

    #[tokio::test]
    async fn a_name_is_looked_up_once_while_fresh() {
        let cached = CachedAddr::new("localhost", 8080);
        let first = cached.get().await.unwrap();
        assert!(first.ip().is_loopback());
        let at = cached.last.lock().unwrap().unwrap().1;
        assert_eq!(cached.get().await.unwrap(), first);
        assert_eq!(
            cached.last.lock().unwrap().unwrap().1,
            at,
            "no second lookup"
        );
        cached.age(FRESH_FOR);
        cached.get().await.unwrap();
        assert!(
            cached.last.lock().unwrap().unwrap().1 > at,
            "renewed once stale"
        );
    }

    #[tokio::test]
    async fn a_failed_renewal_serves_the_last_address_for_a_while() {
        let cached = CachedAddr::new("does-not-resolve.invalid", 443);
        assert!(cached.get().await.is_err(), "nothing to fall back on");
        let addr: SocketAddr = "192.0.2.1:443".parse().unwrap();
        *cached.last.lock().unwrap() = Some((addr, Instant::now()));
        cached.age(FRESH_FOR);
        assert_eq!(
            cached.get().await.unwrap(),
            addr,
            "stale but within STALE_FOR"
        );
        cached.age(STALE_FOR);
        assert!(cached.get().await.is_err(), "too stale");
    }
}
