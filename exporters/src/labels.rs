//! Bounded label values: a metric label fed from callers (identities, tags) must not let the
//! number of series grow without limit. The first `max` distinct values keep their own series;
//! every later one is counted under [`OTHER`].

use std::collections::HashSet;
use std::sync::RwLock;

/// The label value that stands for every value past the limit.
pub const OTHER: &str = "__other__";

/// Admits up to `max` distinct label values, then maps the rest to [`OTHER`].
#[derive(Debug)]
pub struct BoundedLabels {
    max: usize,
    seen: RwLock<HashSet<String>>,
}

impl BoundedLabels {
    /// A set that admits at most `max` distinct values.
    pub fn new(max: usize) -> Self {
        Self {
            max,
            seen: RwLock::new(HashSet::new()),
        }
    }

    /// `value` itself when it has (or can still get) its own series, else [`OTHER`].
    pub fn admit<'a>(&self, value: &'a str) -> &'a str {
        if self.seen.read().is_ok_and(|seen| seen.contains(value)) {
            return value;
        }
        let Ok(mut seen) = self.seen.write() else {
            return OTHER;
        };
        if seen.contains(value) || seen.len() < self.max {
            seen.insert(value.to_owned());
            value
        } else {
            OTHER
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_past_the_limit_become_other() {
        let labels = BoundedLabels::new(2);
        assert_eq!(labels.admit("a"), "a");
        assert_eq!(labels.admit("b"), "b");
        assert_eq!(labels.admit("c"), OTHER);
        assert_eq!(labels.admit("a"), "a");
    }
}
