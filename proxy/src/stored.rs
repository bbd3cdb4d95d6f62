//! Responses (and conversations) the provider keeps, as tailmeter saw them created (OpenAI's
//! Responses API stores a response unless told not to, and a `background` one runs on after its
//! creation is answered).
//!
//! A later request names such a response by id alone (`GET /v1/responses/{id}`, `…/cancel`,
//! `DELETE`, `…/input_items`), with no model to route by. The directory remembers, per id, the
//! route it was made on and whose it is, so the request goes to the same provider and only for
//! the caller who made it (the provider's key is shared; an id read off a log must not open
//! another's response). And a background response's usage, which its create call could not
//! report, is counted once: by the first request whose answer shows it finished ([`claim`]).
//!
//! A conversation (`/v1/conversations/{id}…`, where a Responses session keeps its items) is kept
//! the same way ([`Kept`]): it names no model either, so it is made on the caller's one OpenAI
//! provider (its route is `provider/__unknown__`) and open to its creator alone.
//!
//! A background response nobody retrieves through the gateway (the client died, or learns of
//! the end by webhook) is retrieved by tailmeter itself ([`settle`]), on a schedule that backs
//! off from [`FIRST_POLL`] to [`MAX_POLL_INTERVAL`], until one answer shows it finished.
//!
//! Kept on disk ([`journal`], in the `[events] dir`), so a restart forgets neither whose a
//! response is nor a background response's usage still to count; how many are still to count is
//! `tailmeter_stored_responses_pending`. Bounded: past [`CAPACITY`] ids of a kind the oldest is
//! forgotten, a background response whose usage is still to count only when nothing else can be.
//! A forgotten or unknown id (made elsewhere) still reaches the provider when the route to it is
//! unambiguous ([`crate::service`]), but its usage is not counted.
//!
//! [`claim`]: StoredResponses::claim

mod journal;
pub mod settle;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use prometheus::{IntGauge, Registry};

use self::journal::{Change, Journal};
use crate::identity::Caller;

/// The most ids remembered of each kind ([`Kept`]): a flood of stored responses (one per call)
/// never pushes out a conversation (one per session, and long-lived). At a few hundred bytes each
/// (the id, and who made it from where), some 30 MiB for both.
pub const CAPACITY: usize = 50_000;
/// The journal's file name, in the `[events] dir` (not `.jsonl`: it holds no usage rows, and
/// whoever collects those by that suffix should not find it).
pub const JOURNAL_FILE: &str = "stored-responses.journal";
/// The journal is rewritten once it has this many times more lines than ids remembered (and at
/// least the capacity's worth).
const REWRITE_FACTOR: usize = 4;
/// How long after its creation (or a restart) a background response is first retrieved by
/// tailmeter, if no client retrieval has counted it by then.
pub const FIRST_POLL: Duration = Duration::from_secs(5);
/// The longest wait between two of tailmeter's retrievals of one background response.
pub const MAX_POLL_INTERVAL: Duration = Duration::from_secs(60);

/// Who created a response: the caller as its usage rows attribute it, and where it called from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Creator {
    /// Identity, login, tags and node (nothing else of the caller is kept).
    pub caller: Caller,
    /// The address it called from, when known.
    pub src_ip: Option<IpAddr>,
}

impl Creator {
    /// The creator of a response made by `caller` from `src_ip`.
    pub fn new(caller: &Caller, src_ip: Option<IpAddr>) -> Self {
        let caller = Caller {
            identity: caller.identity.clone(),
            login: caller.login.clone(),
            tags: caller.tags.clone(),
            node: caller.node.clone(),
            ..Caller::default()
        };
        Self { caller, src_ip }
    }
}

/// What is remembered of one response or conversation.
#[derive(Debug)]
struct Entry {
    /// Which it is.
    kept: Kept,
    /// `provider/model` of the route it was created on.
    route: Arc<str>,
    /// The caller who created it.
    creator: Arc<Creator>,
}

/// When tailmeter next retrieves a background response whose usage is still to count.
#[derive(Debug, Clone, Copy)]
struct Poll {
    next: Instant,
    /// The wait after the next retrieval, if it too finds the response running.
    interval: Duration,
}

impl Poll {
    fn first(now: Instant) -> Self {
        Self {
            next: now + FIRST_POLL,
            interval: FIRST_POLL,
        }
    }
}

/// A background response due to be retrieved by tailmeter ([`StoredResponses::due`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    /// The `resp_…` id.
    pub id: Box<str>,
    /// `provider/model` of the route it was created on.
    pub route: Arc<str>,
    /// Whose it is.
    pub creator: Arc<Creator>,
}

/// What an id names: the directory keeps both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kept {
    /// A stored response (`resp_…`).
    Response,
    /// A conversation (`conv_…`).
    Conversation,
}

impl Kept {
    /// Its place among the directory's queues.
    fn index(self) -> usize {
        match self {
            Kept::Response => 0,
            Kept::Conversation => 1,
        }
    }

    /// The word for it in an error message.
    pub fn noun(self) -> &'static str {
        match self {
            Kept::Response => "response",
            Kept::Conversation => "conversation",
        }
    }

    /// The error code of a 404 for it.
    pub fn not_found_code(self) -> &'static str {
        match self {
            Kept::Response => "response_not_found",
            Kept::Conversation => "conversation_not_found",
        }
    }
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
    /// Ids of each kind ([`Kept::index`]), oldest first, for forgetting past the capacity.
    order: [VecDeque<Box<str>>; 2],
    /// Where changes are kept, if on disk.
    journal: Option<Journal>,
    /// The background responses whose usage is still to count, and when to retrieve each.
    pending: HashMap<Box<str>, Poll>,
}

impl Default for StoredResponses {
    fn default() -> Self {
        Self::with_capacity(CAPACITY)
    }
}

impl StoredResponses {
    /// A directory that remembers at most `capacity` ids of each kind.
    pub fn with_capacity(capacity: usize) -> Self {
        let pending = IntGauge::new(
            "tailmeter_stored_responses_pending",
            "Background Responses created through the gateway whose usage is still to count (retrieved until they finish).",
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
        let now = Instant::now();
        for change in changes {
            match change {
                Change::Remember {
                    id,
                    conversation,
                    route,
                    owner,
                    login,
                    tags,
                    node,
                    src_ip,
                    pending,
                } => {
                    let kept = match conversation {
                        true => Kept::Conversation,
                        false => Kept::Response,
                    };
                    let caller = Caller {
                        identity: owner.into_owned(),
                        login: login.map(Cow::into_owned),
                        tags: tags.into_owned(),
                        node: node.map(Cow::into_owned),
                        ..Caller::default()
                    };
                    let creator = Arc::new(Creator { caller, src_ip });
                    let poll = pending.then(|| Poll::first(now));
                    entries.insert(&id, kept, route.into(), creator, poll, capacity);
                }
                Change::Claim { id } => _ = entries.take_pending(&id),
                Change::Forget { id } => _ = entries.remove(&id),
            }
        }
        entries.journal = Some(journal);
        entries.rewrite();
        stored.pending.set(entries.pending.len() as i64);
        drop(entries);
        Ok(stored)
    }

    /// Remembers response or conversation `id`, created on `route` by `creator`; `pending` when
    /// it is a response running in the background whose usage is still to be counted.
    pub fn remember(
        &self,
        id: &str,
        kept: Kept,
        route: Arc<str>,
        creator: Arc<Creator>,
        pending: bool,
    ) {
        let mut entries = self.lock();
        entries.log(remembered(id, kept, &route, &creator, pending));
        let poll = pending.then(|| Poll::first(Instant::now()));
        entries.insert(id, kept, route, creator, poll, self.capacity);
        self.pending.set(entries.pending.len() as i64);
        let rewrite_past = (REWRITE_FACTOR * entries.by_id.len()).max(self.capacity);
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
            Some(entry) if entry.creator.caller.identity == identity => {
                Lookup::Found(Arc::clone(&entry.route))
            }
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
            self.pending.set(entries.pending.len() as i64);
        }
        claimed
    }

    /// Forgets response `id` (deleted at the provider).
    pub fn forget(&self, id: &str) {
        let mut entries = self.lock();
        if entries.remove(id) {
            entries.log(Change::Forget { id: id.into() });
            self.pending.set(entries.pending.len() as i64);
        }
    }

    /// The background responses, at most `limit`, whose usage is still to count and which are
    /// due to be retrieved by tailmeter at `now`. Each is next due after twice the wait it just
    /// had (up to [`MAX_POLL_INTERVAL`]), unless claimed or forgotten first.
    pub fn due(&self, now: Instant, limit: usize) -> Vec<Due> {
        let mut entries = self.lock();
        let Entries { by_id, pending, .. } = &mut *entries;
        let mut due = Vec::new();
        for (id, poll) in pending.iter_mut().filter(|(_, poll)| poll.next <= now) {
            if due.len() == limit {
                break;
            }
            poll.next = now + poll.interval;
            poll.interval = (poll.interval * 2).min(MAX_POLL_INTERVAL);
            if let Some(entry) = by_id.get(id) {
                due.push(Due {
                    id: id.clone(),
                    route: Arc::clone(&entry.route),
                    creator: Arc::clone(&entry.creator),
                });
            }
        }
        due
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The journal line remembering `id`.
fn remembered<'a>(
    id: &'a str,
    kept: Kept,
    route: &'a str,
    creator: &'a Creator,
    pending: bool,
) -> Change<'a> {
    let caller = &creator.caller;
    Change::Remember {
        id: Cow::Borrowed(id),
        conversation: kept == Kept::Conversation,
        route: Cow::Borrowed(route),
        owner: Cow::Borrowed(&caller.identity),
        login: caller.login.as_deref().map(Cow::Borrowed),
        tags: Cow::Borrowed(&caller.tags),
        node: caller.node.as_deref().map(Cow::Borrowed),
        src_ip: creator.src_ip,
        pending,
    }
}

impl Entries {
    /// Adds or replaces `id`'s entry (with `poll` when its usage is still to count),
    /// forgetting the oldest of its kind past `capacity`.
    fn insert(
        &mut self,
        id: &str,
        kept: Kept,
        route: Arc<str>,
        creator: Arc<Creator>,
        poll: Option<Poll>,
        capacity: usize,
    ) {
        match poll {
            Some(poll) => _ = self.pending.insert(id.into(), poll),
            None => _ = self.pending.remove(id),
        }
        let entry = Entry {
            kept,
            route,
            creator,
        };
        if let Some(replaced) = self.by_id.insert(id.into(), entry) {
            if replaced.kept == kept {
                return; // already in order
            }
            self.order[replaced.kept.index()].retain(|queued| &**queued != id);
        }
        let order = &mut self.order[kept.index()];
        order.push_back(id.into());
        // The oldest entry goes, but not a background response whose usage is still to count
        // (forgetting it would lose that usage) while there is another to forget instead.
        while order.len() > capacity {
            let settled = order.iter().position(|id| !self.pending.contains_key(id));
            let Some(oldest) = order.remove(settled.unwrap_or(0)) else {
                break;
            };
            self.by_id.remove(&oldest);
            self.pending.remove(&oldest);
        }
    }

    /// Whether `id` was pending; it is not any more.
    fn take_pending(&mut self, id: &str) -> bool {
        self.pending.remove(id).is_some()
    }

    /// Whether `id` was remembered; it is not any more.
    fn remove(&mut self, id: &str) -> bool {
        let Some(removed) = self.by_id.remove(id) else {
            return false;
        };
        self.pending.remove(id);
        self.order[removed.kept.index()].retain(|queued| &**queued != id);
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

    /// Rewrites the journal with what is remembered now, oldest first (of each kind).
    fn rewrite(&mut self) {
        let Some(journal) = self.journal.as_mut() else {
            return;
        };
        let current = self.order.iter().flatten().filter_map(|id| {
            let entry = self.by_id.get(id)?;
            let pending = self.pending.contains_key(id);
            Some(remembered(
                id,
                entry.kept,
                &entry.route,
                &entry.creator,
                pending,
            ))
        });
        if let Err(e) = journal.rewrite(current) {
            tracing::warn!(error = %e, "could not rewrite the stored-responses journal");
        }
    }
}
