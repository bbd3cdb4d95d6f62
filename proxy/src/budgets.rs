//! Token budgets (`[[budgets]]`): input + output tokens a tag or an identity may use per window.
//!
//! Windows are fixed and aligned to the Unix epoch: a `24h` budget resets at 00:00 UTC, a `1h`
//! one on the hour. Fixed windows keep one counter per budget, give every caller the same reset
//! time, and make `retry-after` exact; a sliding window would need a history of every request.
//! The price is that a caller may spend up to twice the budget across a window boundary.
//!
//! A tag budget counts every caller carrying the tag, together; an identity budget counts one
//! identity. [`Budgets::check`] runs before a request is proxied: an exhausted `reject` budget
//! refuses it (429), an `alert` budget never does. [`Budgets::add`] runs when the request is
//! recorded, so a request that was already in flight when the budget ran out completes and is
//! counted. The gauges `tailmeter_budget_limit_tokens` and `tailmeter_budget_used_tokens` show
//! every budget; [`Budgets::refresh`] rolls idle windows over before a scrape.

use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use prometheus::IntGaugeVec;
use tailmeter_exporters::Metrics;

use crate::config::{format_duration, Budget, BudgetSubject, OnExceed};
use crate::identity::Caller;

/// The current time in milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Every configured budget and its current window.
pub struct Budgets {
    entries: Vec<Entry>,
    used_gauge: IntGaugeVec,
}

struct Entry {
    budget: Budget,
    window_ms: u64,
    /// `[budget, window, tag, identity]` label values.
    labels: [String; 4],
    window: Mutex<Window>,
}

#[derive(Debug, Default)]
struct Window {
    /// Which window (`now_ms / window_ms`) `used` belongs to.
    index: u64,
    used: u64,
    /// Whether exceeding it was already logged in this window.
    reported: bool,
}

/// A budget as it stands for one caller, for `whoami` and refusals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Standing {
    /// The budget's name.
    pub name: String,
    /// `tag tag:k8s` or `identity alice@example.com`.
    pub subject: String,
    /// Tokens allowed per window.
    pub limit: u64,
    /// Tokens used in the current window.
    pub used: u64,
    /// The window, as configured (`24h`).
    pub window: String,
    /// What happens once it is spent.
    pub on_exceed: OnExceed,
    /// When the current window ends, in ms since the epoch.
    pub resets_at_ms: u64,
}

impl Standing {
    /// Whether the window's tokens are spent.
    pub fn exhausted(&self) -> bool {
        self.used >= self.limit
    }

    /// Whole seconds from `now_ms` until the reset (at least 1).
    pub fn retry_after_s(&self, now_ms: u64) -> u64 {
        self.resets_at_ms
            .saturating_sub(now_ms)
            .div_ceil(1000)
            .max(1)
    }
}

impl Budgets {
    /// The budgets of the configuration, their limits set on `metrics`.
    pub fn new(budgets: &[Budget], metrics: &Metrics) -> Self {
        let entries: Vec<Entry> = budgets
            .iter()
            .map(|budget| {
                let (tag, identity) = match &budget.subject {
                    BudgetSubject::Tag(tag) => (tag.clone(), String::new()),
                    BudgetSubject::Identity(identity) => (String::new(), identity.clone()),
                };
                let labels = [
                    budget.name.clone(),
                    format_duration(budget.window),
                    tag,
                    identity,
                ];
                let limit = i64::try_from(budget.tokens).unwrap_or(i64::MAX);
                metrics.budget_limit.with_label_values(&labels).set(limit);
                metrics.budget_used.with_label_values(&labels).set(0);
                Entry {
                    window_ms: u64::try_from(budget.window.as_millis())
                        .unwrap_or(u64::MAX)
                        .max(1),
                    budget: budget.clone(),
                    labels,
                    window: Mutex::new(Window::default()),
                }
            })
            .collect();
        Self {
            entries,
            used_gauge: metrics.budget_used.clone(),
        }
    }

    /// The first exhausted `reject` budget that applies to `caller`, if any.
    pub fn check(&self, caller: &Caller, now_ms: u64) -> Result<(), Standing> {
        self.applying(caller)
            .filter(|entry| entry.budget.on_exceed == OnExceed::Reject)
            .map(|entry| entry.standing(now_ms))
            .find(Standing::exhausted)
            .map_or(Ok(()), Err)
    }

    /// Counts `tokens` against every budget that applies to `caller`.
    pub fn add(&self, caller: &Caller, tokens: u64, now_ms: u64) {
        if tokens == 0 {
            return;
        }
        for entry in self.applying(caller) {
            let mut window = entry.current(now_ms);
            window.used = window.used.saturating_add(tokens);
            self.set_gauge(entry, window.used);
            if window.used >= entry.budget.tokens && !window.reported {
                window.reported = true;
                tracing::warn!(
                    budget = %entry.budget.name,
                    used = window.used,
                    limit = entry.budget.tokens,
                    identity = %caller.identity,
                    on_exceed = if entry.budget.on_exceed == OnExceed::Reject { "reject" } else { "alert" },
                    "budget exhausted for this window"
                );
            }
        }
    }

    /// Every budget that applies to `caller`, as it stands at `now_ms`.
    pub fn standings(&self, caller: &Caller, now_ms: u64) -> Vec<Standing> {
        self.applying(caller)
            .map(|entry| entry.standing(now_ms))
            .collect()
    }

    /// Rolls every budget's window forward to `now_ms` and updates the used gauges, so an idle
    /// budget shows 0 once its window has passed.
    pub fn refresh(&self, now_ms: u64) {
        for entry in &self.entries {
            let used = entry.current(now_ms).used;
            self.set_gauge(entry, used);
        }
    }

    fn applying<'a>(&'a self, caller: &'a Caller) -> impl Iterator<Item = &'a Entry> + 'a {
        self.entries
            .iter()
            .filter(move |entry| match &entry.budget.subject {
                BudgetSubject::Tag(tag) => caller.tags.contains(tag),
                BudgetSubject::Identity(identity) => caller.identity == *identity,
            })
    }

    fn set_gauge(&self, entry: &Entry, used: u64) {
        self.used_gauge
            .with_label_values(&entry.labels)
            .set(i64::try_from(used).unwrap_or(i64::MAX));
    }
}

impl Entry {
    /// The window `now_ms` falls in, reset if the stored one is older.
    fn current(&self, now_ms: u64) -> MutexGuard<'_, Window> {
        let mut window = self
            .window
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let index = now_ms / self.window_ms;
        if window.index != index {
            *window = Window {
                index,
                ..Window::default()
            };
        }
        window
    }

    fn standing(&self, now_ms: u64) -> Standing {
        let window = self.current(now_ms);
        let budget = &self.budget;
        Standing {
            name: budget.name.clone(),
            subject: match &budget.subject {
                BudgetSubject::Tag(tag) => format!("tag {tag}"),
                BudgetSubject::Identity(identity) => format!("identity {identity}"),
            },
            limit: budget.tokens,
            used: window.used,
            window: self.labels[1].clone(),
            on_exceed: budget.on_exceed,
            resets_at_ms: window
                .index
                .saturating_add(1)
                .saturating_mul(self.window_ms),
        }
    }
}

/// `ms` since the epoch as an RFC 3339 UTC time, to the second (`2025-06-01T00:00:00Z`).
pub fn rfc3339(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = tailmeter_exporters::row::civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests;
