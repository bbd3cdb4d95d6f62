//! The input estimate a request's metering may wait for, made away from the worker threads.
//!
//! Estimating a long prompt's input runs OpenAI's tokenizer over up to 256 KiB of its text: tens
//! of milliseconds of CPU (about 25 ms for a 1 MB prompt). tailmeter serves each client
//! connection on one single-threaded runtime, so run there it would stall every other connection
//! of that thread for as long; a coding agent's user pressing Esc on a long conversation would
//! hold up everyone else's requests. [`InputPending::estimate_elsewhere`] runs it on tokio's
//! blocking pool instead, [`AT_ONCE`] at a time; past [`MOST_WAITING`] queued, a request gets the
//! body-length estimate at once, so a storm of cut-off prompts cannot pile requests up behind
//! the tokenizer.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::Semaphore;

use super::{counts, Metered};
use crate::usage::{estimate, Tokens, Usage};
use tailmeter_exporters::UsageSource;

/// Estimates that run at once (each on a blocking-pool thread, one core at most).
const AT_ONCE: usize = 1;
/// Estimates that may wait for a turn before the body-length estimate is used instead.
const MOST_WAITING: usize = 64;

static TURNS: Semaphore = Semaphore::const_new(AT_ONCE);
static WAITING: AtomicUsize = AtomicUsize::new(0);

/// A request's metering, settled but for its input, which is to be estimated from its body.
#[derive(Debug)]
pub struct InputPending {
    model: Arc<str>,
    body: Bytes,
    /// What the provider did report (its input, if any, is not used).
    reported: Usage,
    /// Output tokens estimated from the text that passed.
    passed: u64,
    reason: &'static str,
    response_model: Option<String>,
}

impl InputPending {
    pub(super) fn new(
        model: Arc<str>,
        body: Bytes,
        reported: Usage,
        passed: u64,
        reason: &'static str,
        response_model: Option<String>,
    ) -> Self {
        Self {
            model,
            body,
            reported,
            passed,
            reason,
            response_model,
        }
    }

    /// Estimates the input on this thread (where a stall does not matter: shutdown, tests).
    pub fn estimate_here(self) -> Metered {
        let input = estimate::input_tokens(&self.model, &self.body);
        self.with_input(input)
    }

    /// The input estimate, made on tokio's blocking pool; pass it to [`Self::with_input`].
    pub async fn estimate_elsewhere(&self) -> u64 {
        let by_length = || (self.body.len() as u64).div_ceil(4);
        let Some(waiting) = Waiting::enter() else {
            tracing::warn!(
                model = %self.model,
                "too many input estimates waiting; this one is made from the body's length"
            );
            return by_length();
        };
        let turn = TURNS.acquire().await;
        drop(waiting);
        let (model, body) = (Arc::clone(&self.model), self.body.clone());
        let estimated = tokio::task::spawn_blocking(move || estimate::input_tokens(&model, &body));
        let input = estimated.await.unwrap_or_else(|e| {
            tracing::error!(error = %e, "the input estimate failed; using the body's length");
            by_length()
        });
        drop(turn);
        input
    }

    /// The metering, with `input` as the request's input tokens.
    pub fn with_input(self, input: u64) -> Metered {
        let reported = self.reported;
        let output = reported.output.unwrap_or(0).max(self.passed);
        let tokens = Tokens {
            input,
            output,
            cache_read: reported.cache_read.unwrap_or(0).min(input),
            cache_write: reported.cache_write.unwrap_or(0).min(input),
            reasoning: reported.reasoning.unwrap_or(0).min(output),
        };
        Metered {
            tokens: counts(tokens),
            source: UsageSource::Estimated,
            missing_reason: Some(self.reason),
            response_model: self.response_model,
        }
    }
}

/// One estimate waiting for its turn, counted in [`WAITING`] for as long as it lives (a request
/// dropped while waiting leaves the count too).
struct Waiting;

impl Waiting {
    /// Counts one more waiting estimate, unless [`MOST_WAITING`] already wait.
    fn enter() -> Option<Self> {
        let before = WAITING.fetch_add(1, Ordering::Relaxed);
        let waiting = Waiting;
        (before < MOST_WAITING).then_some(waiting)
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        WAITING.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &str = r#"{"messages":[{"role":"user","content":"Count to two."}]}"#;

    fn pending() -> InputPending {
        let (model, body) = (Arc::from("gpt-4o"), Bytes::from_static(BODY.as_bytes()));
        InputPending::new(model, body, Usage::default(), 3, "client_disconnect", None)
    }

    #[tokio::test(flavor = "current_thread")]
    async fn estimates_elsewhere_as_here_and_by_length_when_too_many_wait() {
        let here = pending().estimate_here();
        assert_eq!((here.tokens.input, here.tokens.output), (4, 3));
        let input = pending().estimate_elsewhere().await;
        assert_eq!(pending().with_input(input), here);

        // The turn taken and MOST_WAITING waiting: one more is made from the body's length.
        let turn = TURNS.acquire().await.expect("never closed");
        let queued: Vec<_> = (0..MOST_WAITING)
            .map(|_| tokio::spawn(async { pending().estimate_elsewhere().await }))
            .collect();
        while WAITING.load(Ordering::Relaxed) < MOST_WAITING {
            tokio::task::yield_now().await;
        }
        let by_length = (BODY.len() as u64).div_ceil(4);
        assert_eq!(pending().estimate_elsewhere().await, by_length);
        drop(turn);
        for estimate in queued {
            assert_eq!(estimate.await.expect("no panic"), 4);
        }
        assert_eq!(WAITING.load(Ordering::Relaxed), 0);
    }
}
