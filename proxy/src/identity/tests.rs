//! Identity tests without sockets: whois answers as tailscaled writes them, and the cache's
//! lifetimes and coalescing (time driven by hand). The LocalAPI client and the resolver are
//! tested against a stand-in tailscaled in `socket_tests`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::cache::MAX_ENTRIES;
use super::*;

pub(super) const USER_JSON: &str =
    include_str!("../../../tests/fixtures/tailscale/whois_user.json");
pub(super) const TAGGED_JSON: &str =
    include_str!("../../../tests/fixtures/tailscale/whois_tagged.json");
pub(super) const CAP: &str = "example.com/cap/tailmeter";

#[test]
fn user_answer_parses_to_login_node_and_capability() {
    let caller = whois::parse(USER_JSON.as_bytes(), Some(CAP)).unwrap();
    assert_eq!(caller.identity, "alice@example.com");
    assert_eq!(caller.login.as_deref(), Some("alice@example.com"));
    assert_eq!(caller.display_name.as_deref(), Some("Alice Example"));
    assert!(caller.tags.is_empty());
    assert_eq!(caller.node.as_deref(), Some("alice-laptop"));
    assert_eq!(caller.node_id.as_deref(), Some("nJ3XkD7CNTRL"));
    assert_eq!(caller.capability_models, vec!["openai/gpt-4o"]);
}

#[test]
fn tagged_answer_sorts_and_joins_tags() {
    let caller = whois::parse(TAGGED_JSON.as_bytes(), Some(CAP)).unwrap();
    assert_eq!(caller.identity, "tag:ci,tag:k8s");
    assert_eq!(caller.tags, vec!["tag:ci", "tag:k8s"]);
    assert_eq!(
        caller.login, None,
        "the tagged-devices placeholder is not a login"
    );
    assert_eq!(caller.display_name, None);
    assert_eq!(caller.node.as_deref(), Some("ts-egress-llm-7d9f8"));
    assert_eq!(
        caller.capability_models,
        vec!["anthropic/claude-haiku-*", "openai/gpt-5-nano"]
    );
    let without_cap = whois::parse(TAGGED_JSON.as_bytes(), None).unwrap();
    assert!(without_cap.capability_models.is_empty());
    let other_cap = whois::parse(TAGGED_JSON.as_bytes(), Some("other.example/cap/x")).unwrap();
    assert!(other_cap.capability_models.is_empty());
}

#[test]
fn odd_answers_are_malformed_or_tolerated() {
    for bad in [
        "",
        "{",
        "[]",
        r#"{"Node": null}"#,
        r#"{"Node": {}, "UserProfile": {"LoginName": ""}}"#,
    ] {
        assert!(
            matches!(
                whois::parse(bad.as_bytes(), Some(CAP)),
                Err(WhoisError::Malformed(_))
            ),
            "{bad:?}"
        );
    }
    // Null CapMap, null tags, a bad capability value next to a good one, no ComputedName.
    let odd = r#"{"Node": {"Name": "box.tailnet.ts.net.", "Tags": null},
        "UserProfile": {"LoginName": "bob@example.com", "DisplayName": ""},
        "CapMap": {"example.com/cap/tailmeter": [{"models": "nope"}, {"models": ["*/gpt-4o"]}, null]}}"#;
    let caller = whois::parse(odd.as_bytes(), Some(CAP)).unwrap();
    assert_eq!(caller.identity, "bob@example.com");
    assert_eq!(caller.node.as_deref(), Some("box.tailnet.ts.net"));
    assert_eq!(caller.display_name, None);
    assert_eq!(caller.capability_models, vec!["*/gpt-4o"]);
    let no_map = r#"{"Node": {"Tags": ["tag:x"]}, "UserProfile": null, "CapMap": null}"#;
    assert_eq!(
        whois::parse(no_map.as_bytes(), Some(CAP)).unwrap().identity,
        "tag:x"
    );
}

fn user(login: &str) -> WhoisAnswer {
    Ok(Some(Arc::new(Caller::from_who(
        &Who::Login(login.into()),
        None,
    ))))
}

#[tokio::test]
async fn cache_keeps_answers_for_their_ttl() {
    let cache = WhoisCache::new(Duration::from_secs(60), Duration::from_secs(5));
    let (alice, bob) = ("100.64.0.1".parse().unwrap(), "100.64.0.2".parse().unwrap());
    let t0 = Instant::now();
    let calls = AtomicUsize::new(0);
    let fetch = |answer: WhoisAnswer| {
        calls.fetch_add(1, Ordering::SeqCst);
        async move { answer }
    };
    assert_eq!(
        cache.get_or_fetch(alice, t0, || fetch(user("a@x"))).await.1,
        Served::Fetched
    );
    let (answer, served) = cache
        .get_or_fetch(alice, t0 + Duration::from_secs(59), || fetch(user("other")))
        .await;
    assert_eq!((answer, served), (user("a@x"), Served::Cache));
    let (answer, served) = cache
        .get_or_fetch(alice, t0 + Duration::from_secs(60), || fetch(user("a2@x")))
        .await;
    assert_eq!(
        (answer, served),
        (user("a2@x"), Served::Fetched),
        "expired at the TTL"
    );

    // Not found and failures are kept for the negative TTL only.
    assert_eq!(
        cache.get_or_fetch(bob, t0, || fetch(Ok(None))).await.1,
        Served::Fetched
    );
    let in_4s = t0 + Duration::from_secs(4);
    assert_eq!(
        cache.get_or_fetch(bob, in_4s, || fetch(user("b@x"))).await,
        (Ok(None), Served::Cache)
    );
    let in_5s = t0 + Duration::from_secs(5);
    assert_eq!(
        cache.get_or_fetch(bob, in_5s, || fetch(user("b@x"))).await,
        (user("b@x"), Served::Fetched)
    );
    let failed: WhoisAnswer = Err(WhoisError::Timeout(Duration::from_secs(1)));
    let carol = "100.64.0.3".parse().unwrap();
    assert_eq!(
        cache
            .get_or_fetch(carol, t0, || fetch(failed.clone()))
            .await
            .1,
        Served::Fetched
    );
    assert_eq!(
        cache
            .get_or_fetch(carol, in_4s, || fetch(user("c@x")))
            .await
            .1,
        Served::Cache
    );
    assert_eq!(
        cache
            .get_or_fetch(carol, in_5s, || fetch(user("c@x")))
            .await
            .1,
        Served::Fetched
    );
    assert_eq!(calls.load(Ordering::SeqCst), 6);
    assert_eq!(cache.len(), 3);
}

#[tokio::test]
async fn concurrent_first_lookups_share_one_fetch() {
    let cache = Arc::new(WhoisCache::new(
        Duration::from_secs(60),
        Duration::from_secs(5),
    ));
    let calls = Arc::new(AtomicUsize::new(0));
    let ip = "100.64.0.9".parse().unwrap();
    let now = Instant::now();
    let lookups = (0..20).map(|_| {
        let (cache, calls) = (cache.clone(), calls.clone());
        tokio::spawn(async move {
            cache
                .get_or_fetch(ip, now, || async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    user("d@x")
                })
                .await
        })
    });
    let mut fetched = 0;
    for lookup in lookups.collect::<Vec<_>>() {
        let (answer, served) = lookup.await.unwrap();
        assert_eq!(answer, user("d@x"));
        fetched += usize::from(served == Served::Fetched);
    }
    assert_eq!((calls.load(Ordering::SeqCst), fetched), (1, 1));
}

#[tokio::test]
async fn an_abandoned_lookup_is_redone_by_the_next() {
    let cache = WhoisCache::new(Duration::from_secs(60), Duration::from_secs(5));
    let ip = "100.64.0.10".parse().unwrap();
    let now = Instant::now();
    let stalled = cache.get_or_fetch(ip, now, std::future::pending);
    assert!(tokio::time::timeout(Duration::from_millis(10), stalled)
        .await
        .is_err());
    let answer = cache.get_or_fetch(ip, now, || async { user("e@x") }).await;
    assert_eq!(answer, (user("e@x"), Served::Fetched));
}

/// A tailnet scanned from many addresses cannot grow the cache without bound: when full, the
/// expired answers go first, and if none has expired, every stored answer (a lookup in flight
/// stays, so its waiters still share it).
#[tokio::test]
async fn a_full_cache_makes_room() {
    let cache = WhoisCache::new(Duration::from_secs(60), Duration::from_secs(5));
    let ip = |i: usize| IpAddr::from(std::net::Ipv6Addr::from(i as u128));
    let t0 = Instant::now();
    for i in 0..MAX_ENTRIES {
        let answer = if i % 2 == 0 { user("a@x") } else { Ok(None) };
        let _ = cache.get_or_fetch(ip(i), t0, || async { answer }).await;
    }
    assert_eq!(cache.len(), MAX_ENTRIES);
    // Ten seconds on, the misses (kept 5 s) have expired: they alone make room.
    let later = t0 + Duration::from_secs(10);
    let _ = cache
        .get_or_fetch(ip(MAX_ENTRIES), later, || async { user("b@x") })
        .await;
    assert_eq!(cache.len(), MAX_ENTRIES / 2 + 1);
    let kept = cache
        .get_or_fetch(ip(0), later, || async { user("z@x") })
        .await;
    assert_eq!(kept, (user("a@x"), Served::Cache));
    // Full again of fresh answers and one lookup in flight: the answers go, the lookup stays.
    for i in MAX_ENTRIES + 1..MAX_ENTRIES * 3 / 2 - 1 {
        let _ = cache
            .get_or_fetch(ip(i), later, || async { user("c@x") })
            .await;
    }
    let stalled = cache.get_or_fetch(ip(usize::MAX), later, std::future::pending);
    assert!(tokio::time::timeout(Duration::from_millis(10), stalled)
        .await
        .is_err());
    assert_eq!(cache.len(), MAX_ENTRIES);
    let _ = cache
        .get_or_fetch(ip(1), later, || async { user("d@x") })
        .await;
    assert_eq!(cache.len(), 2);
}
