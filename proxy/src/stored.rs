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
//! Kept on disk ([`journal`], in the `[events] dir`), so a restart forgets neither whose a
//! response is nor a background response's usage still to count; how many are still to count is
//! `tailmeter_stored_responses_pending` (one nobody retrieves is never counted: tailmeter does
//! not poll the provider itself). Bounded: past [`CAPACITY`] ids
//! the oldest is forgotten. A forgotten or unknown id (made elsewhere) still reaches the provider
//! when the route to it is unambiguous ([`crate::service`]), but its usage is not counted.
//!
//! [`claim`]: StoredResponses::claim

mod journal;

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use prometheus::{IntGauge, Registry};

use self::journal::{Change, Journal};

/// The most ids remembered; at about 200 bytes each, some 10 MiB.
pub const CAPACITY: usize = 50_000;
/// The journal's file name, in the `[events] dir` (not `.jsonl`: it holds no usage rows, and
/// whoever collects those by that suffix should not find it).
pub const JOURNAL_FILE: &str = "stored-responses.journal";
/// The journal is rewritten once it has this many times more lines than ids remembered (and at
/// least the capacity's worth).
const REWRITE_FACTOR: usize = 4;

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
    /// Background responses whose usage is still to count (`tailmeter_stored_responses_pending`).
    pending: IntGauge,
}

#[derive(Debug, Default)]
struct Entries {
    by_id: HashMap<Box<str>, Entry>,
    /// Ids, oldest first, for forgetting past the capacity.
    order: VecDeque<Box<str>>,
    /// Where changes are kept, if on disk.
    journal: Option<Journal>,
    /// Entries that are `pending`.
    pending: usize,
}

impl Default for StoredResponses {
    fn default() -> Self {
        Self::with_capacity(CAPACITY)
    }
}

impl StoredResponses {
    /// A directory that remembers at most `capacity` ids.
    pub fn with_capacity(capacity: usize) -> Self {
        let pending = IntGauge::new(
            "tailmeter_stored_responses_pending",
            "Background Responses created through the gateway whose usage no retrieval has counted yet.",
        )
        .expect("valid metric");
        Self {
            entries: Mutex::default(),
            capacity,
            pending,
        }
    }

    /// A directory kept in the journal at `path`, with what it holds from before; its pending
    /// gauge is registered on `registry`.
    pub fn open(path: &Path, capacity: usize, registry: &Registry) -> io::Result<Self> {
        let (journal, changes) = Journal::open(path)?;
        let stored = Self::with_capacity(capacity);
        registry
            .register(Box::new(stored.pending.clone()))
            .map_err(io::Error::other)?;
        let mut entries = stored.lock();
        for change in changes {
            match change {
                Change::Remember {
                    id,
                    route,
                    owner,
                    pending,
                } => entries.insert(&id, route.into(), owner.into(), pending, capacity),
                Change::Claim { id } => _ = entries.take_pending(&id),
                Change::Forget { id } => _ = entries.remove(&id),
            }
        }
        entries.journal = Some(journal);
        entries.rewrite();
        stored.pending.set(entries.pending as i64);
        drop(entries);
        Ok(stored)
    }

    /// Remembers response `id`, created on `route` by `owner`; `pending` when it runs in the
    /// background and its usage is still to be counted.
    pub fn remember(&self, id: &str, route: Arc<str>, owner: Arc<str>, pending: bool) {
        let mut entries = self.lock();
        entries.log(Change::Remember {
            id: Cow::Borrowed(id),
            route: Cow::Borrowed(&route),
            owner: Cow::Borrowed(&owner),
            pending,
        });
        entries.insert(id, route, owner, pending, self.capacity);
        self.pending.set(entries.pending as i64);
        let rewrite_past = (REWRITE_FACTOR * entries.order.len()).max(self.capacity);
        if entries
            .journal
            .as_ref()
            .is_some_and(|j| j.lines() > rewrite_past)
        {
            entries.rewrite();
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
        let claimed = entries.take_pending(id);
        if claimed {
            entries.log(Change::Claim { id: id.into() });
            self.pending.set(entries.pending as i64);
        }
        claimed
    }

    /// Forgets response `id` (deleted at the provider).
    pub fn forget(&self, id: &str) {
        let mut entries = self.lock();
        if entries.remove(id) {
            entries.log(Change::Forget { id: id.into() });
            self.pending.set(entries.pending as i64);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Entries {
    /// Adds or replaces `id`'s entry, forgetting the oldest past `capacity`.
    fn insert(
        &mut self,
        id: &str,
        route: Arc<str>,
        owner: Arc<str>,
        pending: bool,
        capacity: usize,
    ) {
        let entry = Entry {
            route,
            owner,
            pending,
        };
        self.pending += usize::from(pending);
        if let Some(replaced) = self.by_id.insert(id.into(), entry) {
            self.pending -= usize::from(replaced.pending);
            return; // already in order
        }
        self.order.push_back(id.into());
        while self.order.len() > capacity {
            if let Some(oldest) = self.order.pop_front() {
                let evicted = self.by_id.remove(&oldest);
                self.pending -= usize::from(evicted.is_some_and(|e| e.pending));
            }
        }
    }

    /// Whether `id` was pending; it is not any more.
    fn take_pending(&mut self, id: &str) -> bool {
        let entry = self.by_id.get_mut(id);
        let taken = entry.is_some_and(|entry| std::mem::take(&mut entry.pending));
        self.pending -= usize::from(taken);
        taken
    }

    /// Whether `id` was remembered; it is not any more.
    fn remove(&mut self, id: &str) -> bool {
        let Some(removed) = self.by_id.remove(id) else {
            return false;
        };
        self.pending -= usize::from(removed.pending);
        self.order.retain(|kept| &**kept != id);
        true
    }

    /// Keeps `change` in the journal, if there is one. A failed write is logged and the
    /// directory goes on in memory: it only costs what a restart would forget.
    fn log(&mut self, change: Change<'_>) {
        if let Some(journal) = self.journal.as_mut() {
            if let Err(e) = journal.append(&change) {
                tracing::warn!(error = %e, "could not write to the stored-responses journal");
            }
        }
    }

    /// Rewrites the journal with what is remembered now, oldest first.
    fn rewrite(&mut self) {
        let Some(journal) = self.journal.as_mut() else {
            return;
        };
        let current = self.order.iter().filter_map(|id| {
            let entry = self.by_id.get(id)?;
            Some(Change::Remember {
                id: Cow::Borrowed(&**id),
                route: Cow::Borrowed(&*entry.route),
                owner: Cow::Borrowed(&*entry.owner),
                pending: entry.pending,
            })
        });
        if let Err(e) = journal.rewrite(current) {
            tracing::warn!(error = %e, "could not rewrite the stored-responses journal");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::fs::OpenOptions;
    use std::io::Write;

    use super::*;

    #[test]
    fn finds_only_the_owners_and_counts_a_background_response_once() {
        let stored = StoredResponses::default();
        stored.remember("resp_a", "openai/gpt-5".into(), "alice".into(), true);
        assert_eq!(stored.pending.get(), 1);
        assert_eq!(
            stored.find("resp_a", "alice"),
            Lookup::Found("openai/gpt-5".into())
        );
        assert_eq!(stored.find("resp_a", "bob"), Lookup::NotYours);
        assert_eq!(stored.find("resp_b", "alice"), Lookup::Unknown);
        assert!(stored.claim("resp_a"));
        assert!(!stored.claim("resp_a"), "counted once");
        assert_eq!(stored.pending.get(), 0);
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
        assert_eq!(stored.pending.get(), 1, "a repeated id takes the latest");
        stored.remember("resp_4", "openai/m".into(), "alice".into(), false);
        stored.remember("resp_5", "openai/m".into(), "alice".into(), false);
        assert_eq!(
            stored.pending.get(),
            0,
            "resp_3, pending, forgotten past the capacity"
        );
        assert_eq!(stored.lock().order.len(), 2);
    }

    #[test]
    fn a_restart_keeps_owners_and_the_usage_still_to_count() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events").join(JOURNAL_FILE);
        let stored = StoredResponses::open(&path, CAPACITY, &Registry::new()).unwrap();
        stored.remember("resp_a", "openai/gpt-5".into(), "alice".into(), true);
        stored.remember("resp_b", "openai/gpt-5".into(), "bob".into(), true);
        stored.remember("resp_c", "openai/gpt-5".into(), "bob".into(), false);
        assert!(stored.claim("resp_b"));
        stored.forget("resp_c");
        drop(stored);
        // A crash can tear the last line.
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(br#"{"op":"forget","id":"resp_"#).unwrap();
        let reopened = StoredResponses::open(&path, CAPACITY, &Registry::new()).unwrap();
        assert_eq!(reopened.find("resp_a", "bob"), Lookup::NotYours);
        assert_eq!(reopened.find("resp_c", "bob"), Lookup::Unknown);
        assert_eq!(reopened.pending.get(), 1, "resp_a");
        assert!(reopened.claim("resp_a"), "still to count after the restart");
        assert!(!reopened.claim("resp_b"), "counted before it");
        let lines = std::fs::read_to_string(&path).unwrap().lines().count();
        assert_eq!(lines, 3, "rewritten at start (two ids), then the claim");
    }

    #[test]
    fn the_journal_is_rewritten_once_it_outgrows_what_it_holds() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(JOURNAL_FILE);
        let stored = StoredResponses::open(&path, 4, &Registry::new()).unwrap();
        for n in 0..100 {
            stored.remember(
                &format!("resp_{n}"),
                "openai/m".into(),
                "alice".into(),
                false,
            );
        }
        let lines = std::fs::read_to_string(&path).unwrap().lines().count();
        assert!(lines <= 17, "{lines} lines for 4 ids");
        drop(stored);
        let reopened = StoredResponses::open(&path, 4, &Registry::new()).unwrap();
        assert!(matches!(
            reopened.find("resp_99", "alice"),
            Lookup::Found(_)
        ));
        assert_eq!(reopened.find("resp_95", "alice"), Lookup::Unknown);
    }
}
