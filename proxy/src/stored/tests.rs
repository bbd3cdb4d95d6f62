//! The directory: owners, claims, the poll schedule, capacity and the journal.

use std::fs::OpenOptions;
use std::io::Write;

use super::*;

/// Remembers response `id`, made on `route` by `owner`.
fn remember_response(stored: &StoredResponses, id: &str, route: &str, owner: &str, pending: bool) {
    stored.remember(id, Kept::Response, route.into(), by(owner), pending);
}

/// A creator known by identity alone.
fn by(identity: &str) -> Arc<Creator> {
    let caller = Caller {
        identity: identity.to_owned(),
        ..Caller::default()
    };
    Arc::new(Creator {
        caller,
        src_ip: None,
    })
}

#[test]
fn finds_only_the_owners_and_counts_a_background_response_once() {
    let stored = StoredResponses::default();
    remember_response(&stored, "resp_a", "openai/gpt-5", "alice", true);
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
        remember_response(&stored, id, "openai/m", "alice", false);
    }
    remember_response(&stored, "resp_3", "openai/m", "alice", true);
    assert_eq!(stored.find("resp_1", "alice"), Lookup::Unknown);
    assert!(matches!(stored.find("resp_2", "alice"), Lookup::Found(_)));
    assert_eq!(stored.pending.get(), 1, "a repeated id takes the latest");
    remember_response(&stored, "resp_4", "openai/m", "alice", false);
    remember_response(&stored, "resp_5", "openai/m", "alice", false);
    assert_eq!(
        stored.pending.get(),
        1,
        "resp_3 kept: its usage is still to count"
    );
    assert!(matches!(stored.find("resp_3", "alice"), Lookup::Found(_)));
    assert_eq!(
        stored.find("resp_4", "alice"),
        Lookup::Unknown,
        "older than resp_5"
    );
    assert_eq!(stored.lock().order[0].len(), 2);
    // Nothing but responses still to count: the oldest of them goes after all.
    remember_response(&stored, "resp_6", "openai/m", "alice", true);
    remember_response(&stored, "resp_7", "openai/m", "alice", true);
    assert_eq!(stored.find("resp_3", "alice"), Lookup::Unknown);
    assert_eq!(stored.pending.get(), 2);
    assert!(matches!(stored.find("resp_7", "alice"), Lookup::Found(_)));
}

#[test]
fn a_restart_keeps_owners_and_the_usage_still_to_count() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events").join(JOURNAL_FILE);
    let stored = StoredResponses::open(&path, CAPACITY, &Registry::new()).unwrap();
    remember_response(&stored, "resp_a", "openai/gpt-5", "alice", true);
    remember_response(&stored, "resp_b", "openai/gpt-5", "bob", true);
    remember_response(&stored, "resp_c", "openai/gpt-5", "bob", false);
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
        remember_response(&stored, &format!("resp_{n}"), "openai/m", "alice", false);
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

#[test]
fn a_pending_response_is_due_after_a_wait_that_doubles_until_claimed() {
    let stored = StoredResponses::default();
    remember_response(&stored, "resp_a", "openai/gpt-5", "alice", true);
    remember_response(&stored, "resp_b", "openai/gpt-5", "alice", false);
    let start = Instant::now();
    assert!(stored.due(start, 8).is_empty(), "not before FIRST_POLL");
    let first = start + FIRST_POLL;
    let due = stored.due(first, 8);
    assert_eq!(due.len(), 1, "only the background one");
    assert_eq!((&*due[0].id, &*due[0].route), ("resp_a", "openai/gpt-5"));
    assert_eq!(due[0].creator.caller.identity, "alice");
    assert!(stored.due(first, 8).is_empty(), "taken until its next turn");
    let second = first + FIRST_POLL;
    assert_eq!(stored.due(second, 8).len(), 1);
    assert!(
        stored.due(second + FIRST_POLL, 8).is_empty(),
        "the wait doubled"
    );
    let mut at = second + 2 * FIRST_POLL;
    for _ in 0..10 {
        assert_eq!(stored.due(at, 8).len(), 1);
        at += MAX_POLL_INTERVAL;
    }
    assert!(stored.claim("resp_a"));
    assert!(stored.due(at + MAX_POLL_INTERVAL, 8).is_empty());
}

#[test]
fn due_hands_out_at_most_the_limit() {
    let stored = StoredResponses::default();
    for n in 0..5 {
        remember_response(&stored, &format!("resp_{n}"), "openai/m", "alice", true);
    }
    let later = Instant::now() + FIRST_POLL;
    assert_eq!(stored.due(later, 3).len(), 3);
    assert_eq!(stored.due(later, 3).len(), 2, "the rest");
}

#[test]
fn the_journal_keeps_the_creators_attribution() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(JOURNAL_FILE);
    let caller = Caller {
        identity: "tag:ci,tag:k8s".to_owned(),
        tags: vec!["tag:ci".to_owned(), "tag:k8s".to_owned()],
        node: Some("runner-1".to_owned()),
        ..Caller::default()
    };
    let creator = Arc::new(Creator::new(&caller, Some([100, 64, 0, 7].into())));
    let stored = StoredResponses::open(&path, CAPACITY, &Registry::new()).unwrap();
    stored.remember(
        "resp_a",
        Kept::Response,
        "openai/gpt-5".into(),
        Arc::clone(&creator),
        true,
    );
    drop(stored);
    // A line from before the attribution was kept still reads.
    let mut file = OpenOptions::new().append(true).open(&path).unwrap();
    file.write_all(b"{\"op\":\"remember\",\"id\":\"resp_b\",\"route\":\"openai/m\",\"owner\":\"bob\",\"pending\":true}\n")
        .unwrap();
    let reopened = StoredResponses::open(&path, CAPACITY, &Registry::new()).unwrap();
    let due = reopened.due(Instant::now() + FIRST_POLL, 8);
    let creators: HashMap<&str, &Creator> = due.iter().map(|d| (&*d.id, &*d.creator)).collect();
    assert_eq!(creators["resp_a"], &*creator);
    assert_eq!(creators["resp_b"], &*by("bob"));
}

#[test]
fn responses_never_push_out_a_conversation_and_the_journal_keeps_which_is_which() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(JOURNAL_FILE);
    let stored = StoredResponses::open(&path, 3, &Registry::new()).unwrap();
    let route = || Arc::<str>::from("openai/__unknown__");
    stored.remember("conv_1", Kept::Conversation, route(), by("alice"), false);
    for n in 0..10 {
        let id = format!("resp_{n}");
        remember_response(&stored, &id, "openai/m", "alice", false);
    }
    assert!(matches!(stored.find("conv_1", "alice"), Lookup::Found(_)));
    assert_eq!(
        stored.find("resp_6", "alice"),
        Lookup::Unknown,
        "past the capacity"
    );
    drop(stored);
    let reopened = StoredResponses::open(&path, 3, &Registry::new()).unwrap();
    assert_eq!(reopened.find("conv_1", "bob"), Lookup::NotYours);
    for n in 10..20 {
        let id = format!("resp_{n}");
        remember_response(&reopened, &id, "openai/m", "alice", false);
    }
    assert!(
        matches!(reopened.find("conv_1", "alice"), Lookup::Found(_)),
        "still a conversation after the restart"
    );
    for n in 2..6 {
        let id = format!("conv_{n}");
        reopened.remember(&id, Kept::Conversation, route(), by("alice"), false);
    }
    assert_eq!(
        reopened.find("conv_1", "alice"),
        Lookup::Unknown,
        "conversations have their own capacity"
    );
}
