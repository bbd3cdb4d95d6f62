//! Budget windows, reject and alert, subjects, gauges and reset times.

use std::time::Duration;

use super::*;
use crate::config::Who;

fn budget(
    name: &str,
    subject: BudgetSubject,
    tokens: u64,
    window_s: u64,
    on_exceed: OnExceed,
) -> Budget {
    Budget {
        name: name.into(),
        subject,
        tokens,
        window: Duration::from_secs(window_s),
        on_exceed,
    }
}

fn k8s() -> Caller {
    Caller::from_who(&Who::Tags(vec!["tag:ci".into(), "tag:k8s".into()]), None)
}

fn alice() -> Caller {
    Caller::from_who(&Who::Login("alice@example.com".into()), None)
}

fn gauge(metrics: &Metrics, family: &str, budget: &str) -> i64 {
    metrics
        .registry()
        .gather()
        .iter()
        .filter(|f| f.name() == family)
        .flat_map(|f| f.get_metric().iter())
        .find(|m| {
            m.get_label()
                .iter()
                .any(|l| l.name() == "budget" && l.value() == budget)
        })
        .map_or(-1, |m| m.get_gauge().get_value() as i64)
}

/// 10:00:00 UTC on some day: the start of an hour window.
const HOUR_START: u64 = 1_750_000_000_000 / 3_600_000 * 3_600_000;

#[test]
fn reject_stops_the_next_request_until_the_window_ends() {
    let metrics = Metrics::new(10);
    let budgets = Budgets::new(
        &[budget(
            "k8s-hourly",
            BudgetSubject::Tag("tag:k8s".into()),
            1000,
            3600,
            OnExceed::Reject,
        )],
        &metrics,
    );
    let t = HOUR_START + 10_000;
    assert_eq!(budgets.check(&k8s(), t), Ok(()));
    budgets.add(&k8s(), 999, t);
    assert_eq!(budgets.check(&k8s(), t), Ok(()), "one token left");
    // A request in flight when the budget runs out still counts, past the limit.
    budgets.add(&k8s(), 600, t + 1);
    let exhausted = budgets.check(&k8s(), t + 2).unwrap_err();
    assert_eq!((exhausted.used, exhausted.limit), (1599, 1000));
    assert_eq!(exhausted.resets_at_ms, HOUR_START + 3_600_000);
    assert_eq!(exhausted.retry_after_s(t + 2), 3590);
    assert_eq!(exhausted.subject, "tag tag:k8s");
    assert_eq!(exhausted.window, "1h");
    assert_eq!(
        budgets.check(&alice(), t + 2),
        Ok(()),
        "other callers are not affected"
    );
    assert_eq!(
        gauge(&metrics, "tailmeter_budget_used_tokens", "k8s-hourly"),
        1599
    );
    assert_eq!(
        gauge(&metrics, "tailmeter_budget_limit_tokens", "k8s-hourly"),
        1000
    );
    // The next window starts at zero.
    let next = HOUR_START + 3_600_000;
    assert_eq!(budgets.check(&k8s(), next), Ok(()));
    budgets.refresh(next);
    assert_eq!(
        gauge(&metrics, "tailmeter_budget_used_tokens", "k8s-hourly"),
        0
    );
}

#[test]
fn alert_never_blocks_and_identity_budgets_count_one_identity() {
    let metrics = Metrics::new(10);
    let budgets = Budgets::new(
        &[
            budget(
                "alice-alert",
                BudgetSubject::Identity("alice@example.com".into()),
                10,
                60,
                OnExceed::Alert,
            ),
            budget(
                "ci",
                BudgetSubject::Tag("tag:ci".into()),
                50,
                60,
                OnExceed::Reject,
            ),
        ],
        &metrics,
    );
    let t = HOUR_START;
    budgets.add(&alice(), 1_000, t);
    assert_eq!(budgets.check(&alice(), t), Ok(()));
    let standings = budgets.standings(&alice(), t);
    assert_eq!(standings.len(), 1);
    assert!(standings[0].exhausted());
    assert_eq!(standings[0].on_exceed, OnExceed::Alert);
    assert_eq!(
        budgets.standings(&k8s(), t)[0].used,
        0,
        "alice's tokens are not tag:ci's"
    );
    budgets.add(&k8s(), 50, t);
    assert_eq!(budgets.check(&k8s(), t).unwrap_err().name, "ci");
    let mut tagged_alice = alice();
    tagged_alice.identity = "tag:ci".into();
    tagged_alice.tags = vec!["tag:ci".into()];
    assert!(
        budgets.check(&tagged_alice, t).is_err(),
        "a tag budget counts every carrier together"
    );
}

#[test]
fn windows_align_to_the_epoch() {
    let metrics = Metrics::new(10);
    let budgets = Budgets::new(
        &[budget(
            "day",
            BudgetSubject::Identity("alice@example.com".into()),
            5,
            86_400,
            OnExceed::Reject,
        )],
        &metrics,
    );
    let noon = 1_750_000_000_000 / 86_400_000 * 86_400_000 + 43_200_000;
    budgets.add(&alice(), 5, noon);
    let standing = budgets.check(&alice(), noon).unwrap_err();
    assert!(rfc3339(standing.resets_at_ms).ends_with("T00:00:00Z"));
    assert_eq!(standing.retry_after_s(noon), 43_200);
}

#[test]
fn rfc3339_formats_utc() {
    assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00Z");
    assert_eq!(rfc3339(1_750_000_000_999), "2025-06-15T15:06:40Z");
    assert_eq!(rfc3339(4_102_444_799_000), "2099-12-31T23:59:59Z");
}
