//! The whois cache: one answer per peer IP, reused for `cache_ttl` when it names a caller and
//! for the shorter `negative_cache_ttl` when it does not (no node there, or tailscaled failed),
//! so a burst from an unknown address or a dead tailscaled does not become a burst of lookups.
//!
//! Concurrent first lookups of one address share a single whois call (the others wait for it),
//! and a lookup abandoned half-way (its client hung up) is simply redone by the next waiter. The
//! cache holds at most [`MAX_ENTRIES`] addresses; when full, expired entries go first, then all.
//! The clock is passed in (`now`), so the tests drive time by hand.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::OnceCell;

use super::whois::WhoisAnswer;

/// Most addresses remembered at once.
pub const MAX_ENTRIES: usize = 65_536;

/// Where an answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    /// A stored answer (or one fetched by a concurrent lookup of the same address).
    Cache,
    /// This lookup asked tailscaled.
    Fetched,
}

enum Slot {
    Ready {
        answer: WhoisAnswer,
        expires: Instant,
    },
    Pending(Arc<OnceCell<WhoisAnswer>>),
}

/// Whois answers by peer IP.
pub struct WhoisCache {
    ttl: Duration,
    negative_ttl: Duration,
    slots: Mutex<HashMap<IpAddr, Slot>>,
}

impl WhoisCache {
    /// A cache keeping callers for `ttl` and misses or failures for `negative_ttl`.
    pub fn new(ttl: Duration, negative_ttl: Duration) -> Self {
        Self {
            ttl,
            negative_ttl,
            slots: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<IpAddr, Slot>> {
        // A panic while holding the lock leaves a consistent map: every write is one insert.
        self.slots
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The answer for `ip`: stored and fresh at `now`, or from `fetch` (run at most once across
    /// concurrent callers for the same `ip`).
    pub async fn get_or_fetch<F, Fut>(
        &self,
        ip: IpAddr,
        now: Instant,
        fetch: F,
    ) -> (WhoisAnswer, Served)
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = WhoisAnswer>,
    {
        let cell = {
            let mut slots = self.lock();
            match slots.get(&ip) {
                Some(Slot::Ready { answer, expires }) if *expires > now => {
                    return (answer.clone(), Served::Cache);
                }
                Some(Slot::Pending(cell)) => cell.clone(),
                _ => {
                    if slots.len() >= MAX_ENTRIES {
                        make_room(&mut slots, now);
                    }
                    let cell = Arc::new(OnceCell::new());
                    slots.insert(ip, Slot::Pending(cell.clone()));
                    cell
                }
            }
        };
        let mut fetched = false;
        let answer = cell
            .get_or_init(|| {
                fetched = true;
                fetch()
            })
            .await
            .clone();
        if !fetched {
            return (answer, Served::Cache);
        }
        let ttl = match answer {
            Ok(Some(_)) => self.ttl,
            Ok(None) | Err(_) => self.negative_ttl,
        };
        let mut slots = self.lock();
        // Only replace the pending lookup this call completed, never a newer entry.
        if matches!(slots.get(&ip), Some(Slot::Pending(pending)) if Arc::ptr_eq(pending, &cell)) {
            slots.insert(
                ip,
                Slot::Ready {
                    answer: answer.clone(),
                    expires: now + ttl,
                },
            );
        }
        (answer, Served::Fetched)
    }

    /// How many addresses are remembered (fresh or not).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Drops expired answers; if that frees nothing, drops every stored answer.
fn make_room(slots: &mut HashMap<IpAddr, Slot>, now: Instant) {
    slots.retain(|_, slot| !matches!(slot, Slot::Ready { expires, .. } if *expires <= now));
    if slots.len() >= MAX_ENTRIES {
        slots.retain(|_, slot| matches!(slot, Slot::Pending(_)));
    }
}
