//! The input estimate a request's metering may wait for, made away from the worker threads.
//!
//! Estimating a long prompt's input runs OpenAI's tokenizer over up to 256 KiB of its text: tens
//! of milliseconds of CPU (about 25 ms for a 1 MB prompt). tailmeter serves each client
//! connection on one single-threaded runtime, so run there it would stall every other connection
//! of that thread for as long; a coding agent's user pressing Esc on a long conversation would
//! hold up everyone else's requests. [`InputPending::estimate_elsewhere`] hands it to one
//! estimator thread at a low CPU priority instead (serving preempts it); past
//! [`MOST_WAITING`] queued, a request gets the body-length estimate at once, so a storm of
//! cut-off prompts cannot pile requests up behind the tokenizer.

use std::panic;
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use tokio::sync::oneshot;

use tailmeter_exporters::UsageSource;

use super::{counts, Metered};
use crate::usage::{estimate, Tokens, Usage};

/// Estimates that may wait for the estimator before the body-length estimate is used instead.
const MOST_WAITING: usize = 64;
/// Bodies up to this size are estimated where they are: the tokenizer takes a tenth of a
/// millisecond over them, less than handing them over would add to the request.
const SMALL_BODY: usize = 1024;
/// The estimator's nice value: below serving, which preempts it; it still gets about a tenth of
/// a busy core, so estimates are late under load, never stuck.
const ESTIMATOR_NICE: i32 = 10;

/// One estimate for the estimator: the request's model and body, and where the figure goes.
type Job = (Arc<str>, Bytes, oneshot::Sender<u64>);

/// A request's metering, settled but for its input, which is to be estimated from its body.
#[derive(Debug)]
pub struct InputPending {
    pub(super) model: Arc<str>,
    pub(super) body: Bytes,
    /// What the provider did report (its input, if any, is not used).
    pub(super) reported: Usage,
    /// Output tokens estimated from the text that passed.
    pub(super) passed: u64,
    pub(super) reason: &'static str,
    pub(super) response_model: Option<String>,
}

impl InputPending {
    /// Estimates the input on this thread (where a stall does not matter: shutdown, tests).
    pub fn estimate_here(self) -> Metered {
        let input = estimate::input_tokens(&self.model, &self.body);
        self.with_input(input)
    }

    /// The input estimate, made by the estimator thread; pass it to [`Self::with_input`].
    pub async fn estimate_elsewhere(&self) -> u64 {
        if self.body.len() <= SMALL_BODY {
            return estimate::input_tokens(&self.model, &self.body);
        }
        let by_length = estimate::by_length(self.body.len());
        let (reply, figure) = oneshot::channel();
        let job = (Arc::clone(&self.model), self.body.clone(), reply);
        match estimator().try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                tracing::warn!(
                    model = %self.model,
                    "{MOST_WAITING} input estimates already wait; this one is made from the body's length"
                );
                return by_length;
            }
            Err(TrySendError::Disconnected(_)) => return by_length,
        }
        figure.await.unwrap_or_else(|_| {
            tracing::error!(
                "the input estimator stopped; this estimate is made from the body's length"
            );
            by_length
        })
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
            parts: Default::default(),
        }
    }
}

/// The estimator thread's queue, the thread started on first use.
fn estimator() -> &'static SyncSender<Job> {
    static QUEUE: OnceLock<SyncSender<Job>> = OnceLock::new();
    QUEUE.get_or_init(|| {
        let (queue, jobs) = mpsc::sync_channel::<Job>(MOST_WAITING);
        let started = std::thread::Builder::new()
            .name("tailmeter-estimate".into())
            .spawn(move || estimate_all(jobs));
        if let Err(e) = started {
            // The queue's receiver is gone with the closure: every estimate is by length.
            tracing::error!(error = %e, "cannot start the input estimator thread");
        }
        queue
    })
}

/// The estimator thread: lowers its own priority, then estimates each job whose request still
/// waits for it. A job whose estimate panics gets the body-length estimate; the thread goes on.
fn estimate_all(jobs: mpsc::Receiver<Job>) {
    let thread = rustix::thread::gettid();
    if let Err(e) = rustix::process::setpriority_process(Some(thread), ESTIMATOR_NICE) {
        tracing::warn!(error = %e, "cannot lower the input estimator's priority");
    }
    for (model, body, reply) in jobs {
        if !reply.is_closed() {
            let estimated = panic::catch_unwind(|| estimate::input_tokens(&model, &body));
            let _ = reply.send(estimated.unwrap_or_else(|_| estimate::by_length(body.len())));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &str = r#"{"messages":[{"role":"user","content":"Count to two."}]}"#;

    fn pending_for(body: String) -> InputPending {
        InputPending {
            model: Arc::from("gpt-4o"),
            body: Bytes::from(body),
            reported: Usage::default(),
            passed: 3,
            reason: "client_disconnect",
            response_model: None,
        }
    }

    fn pending() -> InputPending {
        pending_for(BODY.to_owned())
    }

    /// A body past [`SMALL_BODY`], so that its estimate goes to the estimator thread.
    fn long_pending() -> InputPending {
        let text = "Count to two. ".repeat(2000);
        pending_for(format!(
            r#"{{"messages":[{{"role":"user","content":"{text}"}}]}}"#
        ))
    }

    #[tokio::test(flavor = "current_thread")]
    async fn estimates_elsewhere_as_here() {
        let here = pending().estimate_here();
        assert_eq!((here.tokens.input, here.tokens.output), (4, 3));
        let input = pending().estimate_elsewhere().await;
        assert_eq!(pending().with_input(input), here);
        let here = long_pending().estimate_here().tokens.input;
        assert_eq!(long_pending().estimate_elsewhere().await, here);
        // Three queues' worth asked at once (each takes the tokenizer milliseconds, all are asked
        // within microseconds): the queue fills, and past it an estimate is made from the body's
        // length.
        let by_length = estimate::by_length(long_pending().body.len());
        assert_ne!(here, by_length);
        let many: Vec<_> = (0..3 * MOST_WAITING)
            .map(|_| tokio::spawn(async { long_pending().estimate_elsewhere().await }))
            .collect();
        let mut estimates = Vec::new();
        for estimate in many {
            estimates.push(estimate.await.expect("no panic"));
        }
        assert!(estimates.iter().all(|e| [here, by_length].contains(e)));
        assert!(estimates.contains(&here) && estimates.contains(&by_length));
    }
}
