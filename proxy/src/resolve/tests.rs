use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

use super::*;

const A: &str = "192.0.2.1:443";
const B: &str = "192.0.2.2:443";
const WITHIN: Duration = Duration::from_millis(50);

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

/// An answer of the given addresses, in that order.
fn addrs(texts: &[&str]) -> Addresses {
    texts.iter().map(|text| addr(text)).collect()
}

/// A resolver the test answers by hand: each lookup waits for the next outcome sent on the
/// returned channel. The counter tells how many lookups were made.
fn manual() -> (
    CachedAddr,
    mpsc::Sender<io::Result<Addresses>>,
    Arc<AtomicUsize>,
) {
    let (answers, pending) = mpsc::channel();
    let pending = Mutex::new(pending);
    let lookups = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&lookups);
    let lookup: Lookup = Arc::new(move |_: &str, _: u16| {
        counted.fetch_add(1, Ordering::SeqCst);
        let pending = pending.lock().unwrap();
        pending
            .recv()
            .unwrap_or_else(|_| Err(io::Error::other("test over")))
    });
    let cached = CachedAddr::with_lookup("api.example.com", 443, lookup);
    (cached, answers, lookups)
}

/// A cache that looked up `A` once and holds it past [`FRESH_FOR`].
async fn stale_a() -> (
    CachedAddr,
    mpsc::Sender<io::Result<Addresses>>,
    Arc<AtomicUsize>,
) {
    let (cached, answers, lookups) = manual();
    answers.send(Ok(addrs(&[A]))).unwrap();
    cached.get(WITHIN * 20).await.unwrap();
    cached.age(FRESH_FOR);
    (cached, answers, lookups)
}

impl CachedAddr {
    /// Ages the cached answer by `by`, as if it were that much older.
    fn age(&self, by: Duration) {
        if let Some((_, at)) = self.shared.lock().answer.as_mut() {
            *at -= by;
        }
    }

    /// Ages the last failure by `by`.
    fn age_failure(&self, by: Duration) {
        if let Some((_, _, at)) = self.shared.lock().failure.as_mut() {
            *at -= by;
        }
    }

    /// Waits until no lookup is in flight.
    async fn settled(&self) {
        while self.shared.lock().looking_up {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

#[tokio::test]
async fn a_literal_is_never_looked_up() {
    let (cached, _answers, lookups) = manual();
    let literal = CachedAddr::with_lookup("::1", 8080, cached.shared.lookup.clone());
    assert_eq!(literal.get(WITHIN).await.unwrap(), addrs(&["[::1]:8080"]));
    assert_eq!(lookups.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn the_system_resolver_answers_for_a_name() {
    let cached = CachedAddr::new("localhost", 8080);
    let addrs = cached.get(Duration::from_secs(10)).await.unwrap();
    assert!(
        addrs.iter().all(|addr| addr.ip().is_loopback()),
        "{addrs:?}"
    );
}

#[tokio::test]
async fn a_name_is_looked_up_once_while_fresh() {
    let (cached, answers, lookups) = manual();
    answers.send(Ok(addrs(&[A]))).unwrap();
    assert_eq!(cached.get(WITHIN * 20).await.unwrap(), addrs(&[A]));
    cached.age(FRESH_FOR - Duration::from_secs(1));
    assert_eq!(cached.get(WITHIN).await.unwrap(), addrs(&[A]));
    assert_eq!(lookups.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_stale_answer_serves_at_once_while_one_lookup_renews_it() {
    let (cached, answers, lookups) = stale_a().await;
    for _ in 0..10 {
        assert_eq!(
            cached.get(WITHIN).await.unwrap(),
            addrs(&[A]),
            "no wait for the renewal"
        );
    }
    answers.send(Ok(addrs(&[B]))).unwrap();
    cached.settled().await;
    assert_eq!(cached.get(WITHIN).await.unwrap(), addrs(&[B]));
    assert_eq!(
        lookups.load(Ordering::SeqCst),
        2,
        "one renewal for ten requests"
    );
}

#[tokio::test]
async fn a_failed_renewal_keeps_the_last_answer_until_it_is_too_stale() {
    let (cached, answers, lookups) = stale_a().await;
    answers
        .send(Err(io::Error::other("resolver down")))
        .unwrap();
    assert_eq!(cached.get(WITHIN).await.unwrap(), addrs(&[A]));
    cached.settled().await;
    assert_eq!(
        cached.get(WITHIN).await.unwrap(),
        addrs(&[A]),
        "no retry yet"
    );
    assert_eq!(lookups.load(Ordering::SeqCst), 2);
    cached.age(STALE_FOR);
    let failure = cached.get(WITHIN).await.unwrap_err();
    assert_eq!(failure.to_string(), "resolver down", "the failure stands");
    assert_eq!(lookups.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_failure_is_answered_for_a_while_without_asking_again() {
    let (cached, answers, lookups) = manual();
    answers
        .send(Err(io::Error::new(io::ErrorKind::NotFound, "no such host")))
        .unwrap();
    for _ in 0..3 {
        let failure = cached.get(WITHIN * 20).await.unwrap_err();
        assert_eq!(
            (failure.kind(), failure.to_string().as_str()),
            (io::ErrorKind::NotFound, "no such host")
        );
    }
    assert_eq!(lookups.load(Ordering::SeqCst), 1);
    cached.age_failure(RETRY_AFTER);
    answers.send(Ok(addrs(&[A]))).unwrap();
    assert_eq!(cached.get(WITHIN * 20).await.unwrap(), addrs(&[A]));
    assert_eq!(lookups.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn waiters_give_up_after_their_deadline_and_share_one_lookup() {
    let (cached, answers, lookups) = manual();
    let cached = Arc::new(cached);
    let waits: Vec<_> = (0..8)
        .map(|_| {
            let cached = Arc::clone(&cached);
            tokio::spawn(async move { cached.get(WITHIN).await })
        })
        .collect();
    for wait in waits {
        let failure = wait.await.unwrap().unwrap_err();
        assert_eq!(failure.kind(), io::ErrorKind::TimedOut);
        assert_eq!(
            failure.to_string(),
            "resolving api.example.com gave no answer within 50ms"
        );
    }
    assert_eq!(lookups.load(Ordering::SeqCst), 1);
    // The lookup outlives its waiters and fills the cache for the next request.
    answers.send(Ok(addrs(&[A]))).unwrap();
    cached.settled().await;
    assert_eq!(cached.get(WITHIN).await.unwrap(), addrs(&[A]));
    assert_eq!(lookups.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_address_a_connect_failed_to_is_tried_last_for_a_while() {
    let (cached, answers, _lookups) = manual();
    answers.send(Ok(addrs(&[A, B]))).unwrap();
    assert_eq!(cached.get(WITHIN * 20).await.unwrap(), addrs(&[A, B]));
    cached.connect_failed(addr(A));
    assert_eq!(cached.get(WITHIN).await.unwrap(), addrs(&[B, A]));
    cached.connect_failed(addr(B));
    assert_eq!(
        cached.get(WITHIN).await.unwrap(),
        addrs(&[A, B]),
        "both failed: as given"
    );
    cached.shared.lock().tried_last[1].1 -= TRIED_LAST_FOR;
    assert_eq!(
        cached.get(WITHIN).await.unwrap(),
        addrs(&[B, A]),
        "B's failure is old"
    );
    assert_eq!(cached.shared.lock().tried_last.len(), 1);
}

#[tokio::test]
async fn a_literal_keeps_no_failures() {
    let cached = CachedAddr::new("192.0.2.1", 443);
    cached.connect_failed(addr(A));
    assert!(cached.shared.lock().tried_last.is_empty());
}

#[tokio::test]
async fn an_empty_answer_is_a_failure() {
    let (cached, answers, _lookups) = manual();
    answers.send(Ok(addrs(&[]))).unwrap();
    let failure = cached.get(WITHIN * 20).await.unwrap_err();
    assert_eq!(failure.kind(), io::ErrorKind::NotFound);
    assert_eq!(
        failure.to_string(),
        "api.example.com did not resolve to any address"
    );
}
