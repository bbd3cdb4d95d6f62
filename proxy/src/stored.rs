//! Responses the provider keeps, as tailmeter saw them created (OpenAI's Responses API stores a
//! response unless told not to, and a `background` one runs on after its creation is answered).
//!
//! A later request names such a response by id alone (`GET /v1/responses/{id}`, `…/cancel`,
//! `DELETE`, `…/input_items`), with no model to route by. The directory remembers, per id, the
//! route it was made on and whose it is, so the request goes to the same provider and only for
//! the caller who made it (the provider's key is shared; an id read off a log must not open
//! another's response). And a background response's usage, which its create call could not
//! report, is counted once: by the first request whose answer shows it finished ([`claim`]).
//!
//! Bounded: past [`CAPACITY`] ids the oldest is forgotten. A forgotten or unknown id (one made
//! before a restart) still reaches the provider when the route to it is unambiguous
//! ([`crate::service`]), but its usage is not counted again.
//!
//! [`claim`]: StoredResponses::claim

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

/// The most ids remembered; at about 200 bytes each, some 10 MiB.
pub const CAPACITY: usize = 50_000;

/// What is remembered of one response.
#[derive(Debug)]
struct Entry {
    /// `provider/model` of the route it was created on.
    route: Arc<str>,
    /// The identity of the caller who created it.
    owner: Arc<str>,
    /// A background response whose usage has not been counted yet.
    pending: bool,
}

/// What the directory says about an id, for one caller.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup {
    /// The caller's own: made on this route (`provider/model`).
    Found(Arc<str>),
    /// Another caller's.
    NotYours,
    /// Not remembered.
    Unknown,
}

/// The directory of stored responses, shared by every gateway generation.
#[derive(Debug)]
pub struct StoredResponses {
    entries: Mutex<Entries>,
    capacity: usize,
}

#[derive(Debug, Default)]
struct Entries {
    by_id: HashMap<Box<str>, Entry>,
    /// Ids, oldest first, for forgetting past the capacity.
    order: VecDeque<Box<str>>,
}

impl Default for StoredResponses {
    fn default() -> Self {
        Self::with_capacity(CAPACITY)
    }
}

impl StoredResponses {
    /// A directory that remembers at most `capacity` ids.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            entries: Mutex::default(),
            capacity,
        }
    }

    /// Remembers response `id`, created on `route` by `owner`; `pending` when it runs in the
    /// background and its usage is still to be counted.
    pub fn remember(&self, id: &str, route: Arc<str>, owner: Arc<str>, pending: bool) {
        let mut entries = self.lock();
        let entry = Entry {
            route,
            owner,
            pending,
        };
        if entries.by_id.insert(id.into(), entry).is_some() {
            return; // already in order
        }
        entries.order.push_back(id.into());
        while entries.order.len() > self.capacity {
            if let Some(oldest) = entries.order.pop_front() {
                entries.by_id.remove(&oldest);
            }
        }
    }

    /// What is known of response `id` for the caller with `identity`.
    pub fn find(&self, id: &str, identity: &str) -> Lookup {
        match self.lock().by_id.get(id) {
            Some(entry) if &*entry.owner == identity => Lookup::Found(Arc::clone(&entry.route)),
            Some(_) => Lookup::NotYours,
            None => Lookup::Unknown,
        }
    }

    /// Whether this request counts response `id`'s usage: true once, for a background response
    /// not counted yet.
    pub fn claim(&self, id: &str) -> bool {
        let mut entries = self.lock();
        let entry = entries.by_id.get_mut(id);
        entry.is_some_and(|entry| std::mem::take(&mut entry.pending))
    }

    /// Forgets response `id` (deleted at the provider).
    pub fn forget(&self, id: &str) {
        let mut entries = self.lock();
        if entries.by_id.remove(id).is_some() {
            entries.order.retain(|kept| &**kept != id);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_only_the_owners_and_counts_a_background_response_once() {
        let stored = StoredResponses::default();
        stored.remember("resp_a", "openai/gpt-5".into(), "alice".into(), true);
        assert_eq!(
            stored.find("resp_a", "alice"),
            Lookup::Found("openai/gpt-5".into())
        );
        assert_eq!(stored.find("resp_a", "bob"), Lookup::NotYours);
        assert_eq!(stored.find("resp_b", "alice"), Lookup::Unknown);
        assert!(stored.claim("resp_a"));
        assert!(!stored.claim("resp_a"), "counted once");
        assert!(!stored.claim("resp_b"));
        stored.forget("resp_a");
        assert_eq!(stored.find("resp_a", "alice"), Lookup::Unknown);
    }

    #[test]
    fn forgets_the_oldest_past_its_capacity() {
        let stored = StoredResponses::with_capacity(2);
        for id in ["resp_1", "resp_2", "resp_3"] {
            stored.remember(id, "openai/m".into(), "alice".into(), false);
        }
        stored.remember("resp_3", "openai/m".into(), "alice".into(), true);
        assert_eq!(stored.find("resp_1", "alice"), Lookup::Unknown);
        assert!(matches!(stored.find("resp_2", "alice"), Lookup::Found(_)));
        assert!(stored.claim("resp_3"), "a repeated id takes the latest");
        assert_eq!(stored.lock().order.len(), 2);
    }
}
