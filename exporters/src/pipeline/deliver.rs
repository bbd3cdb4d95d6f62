//! The deliverer: writes sealed batches to the sink strictly oldest first. A transient failure
//! leaves the batch (and every later one) on disk and retries it with backoff; a rejection sets
//! the batch aside, counted as dropped and logged, since retrying bad data cannot succeed.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::{mark_spooled, Pending};
use crate::health::{Health, Outcome};
use crate::retry::Backoff;
use crate::sink::{Batch, ErrorKind, Sink, SinkError};
use crate::spool::{Sealed, Spool};

pub(super) struct Deliverer {
    pub sink: Arc<dyn Sink>,
    pub spool: Arc<Spool>,
    pub health: Health,
    pub pending: Arc<Pending>,
    pub write_timeout: Duration,
    /// `Some(deadline)` once shutting down.
    pub stop: watch::Receiver<Option<Instant>>,
}

impl Deliverer {
    pub(super) async fn run(mut self) {
        let mut backoff = Backoff::delivery();
        loop {
            let head = self.pending.lock().pop_front();
            let Some(mut head) = head else {
                if self.pending.closed.load(Ordering::SeqCst) {
                    return;
                }
                self.pending.notify.notified().await;
                continue;
            };
            if self.past_deadline() {
                self.pending.lock().push_front(head);
                return self.leave_rest();
            }
            match self.deliver(&head).await {
                Ok(()) => {
                    let outcome = if head.spooled {
                        Outcome::Replayed
                    } else {
                        Outcome::Written
                    };
                    self.health.count(outcome, head.rows);
                    if let Err(e) = self.spool.remove(&head) {
                        tracing::error!(error = %e, seq = head.seq, "cannot remove a delivered batch from the spool");
                    }
                    if self.pending.failing.swap(false, Ordering::SeqCst) {
                        tracing::info!(
                            sink = self.sink.name(),
                            "sink is back; replaying the spool"
                        );
                    }
                    backoff.reset();
                }
                Err(e) if e.kind == ErrorKind::Rejected => self.reject(&head, &e),
                Err(e) => {
                    if !self.pending.failing.swap(true, Ordering::SeqCst) {
                        tracing::warn!(sink = self.sink.name(), error = %e, "sink write failed; spooling batches until it is back");
                    } else {
                        tracing::debug!(sink = self.sink.name(), error = %e, "sink still failing");
                    }
                    mark_spooled(&mut head, &self.health);
                    {
                        let mut queue = self.pending.lock();
                        queue.iter_mut().for_each(|s| mark_spooled(s, &self.health));
                        queue.push_front(head);
                    }
                    if !self.wait(backoff.next_delay()).await {
                        return self.leave_rest();
                    }
                }
            }
            self.health.observe(&self.spool);
        }
    }

    /// One attempt at one batch, bounded by the write timeout.
    async fn deliver(&self, sealed: &Sealed) -> Result<(), SinkError> {
        let data = self.spool.read(sealed).map_err(|e| {
            SinkError::rejected(format!("cannot read spooled batch {}: {e}", sealed.seq))
        })?;
        let batch = Batch {
            data,
            rows: sealed.rows,
        };
        match tokio::time::timeout(self.write_timeout, self.sink.write(&batch)).await {
            Ok(result) => result,
            Err(_) => Err(SinkError::transient(format!(
                "write took longer than {:?}",
                self.write_timeout
            ))),
        }
    }

    fn reject(&self, sealed: &Sealed, error: &SinkError) {
        self.health.count(Outcome::Dropped, sealed.rows);
        match self.spool.reject(sealed) {
            Ok(path) => tracing::error!(
                sink = self.sink.name(), error = %error, rows = sealed.rows, kept = %path.display(),
                "USAGE ROWS LOST: the sink rejected a batch; it is kept for inspection"
            ),
            Err(e) => tracing::error!(
                sink = self.sink.name(), error = %error, rows = sealed.rows, move_error = %e,
                "USAGE ROWS LOST: the sink rejected a batch"
            ),
        }
    }

    fn past_deadline(&self) -> bool {
        matches!(*self.stop.borrow(), Some(deadline) if Instant::now() >= deadline)
    }

    /// Sleeps `delay`, or until the shutdown deadline; false when the deadline has passed.
    async fn wait(&mut self, delay: Duration) -> bool {
        let until = Instant::now() + delay;
        loop {
            let deadline = *self.stop.borrow();
            let wake = deadline.map_or(until, |d| d.min(until));
            tokio::select! {
                () = tokio::time::sleep_until(wake.into()) => {
                    return !self.past_deadline();
                }
                changed = self.stop.changed() => {
                    if changed.is_err() {
                        return false;
                    }
                }
            }
        }
    }

    /// Shutdown with batches undelivered: they stay in the spool for the next start.
    fn leave_rest(&self) {
        let queue = self.pending.lock();
        let rows: u64 = queue.iter().map(|s| s.rows).sum();
        if rows > 0 {
            tracing::warn!(
                sink = self.sink.name(),
                batches = queue.len(),
                rows,
                "shutdown deadline reached; undelivered rows stay in the spool for the next start"
            );
        }
    }
}
