//! The deliverer: writes sealed batches to the sink strictly oldest first. A transient failure
//! leaves the batch (and every later one) on disk and retries it with backoff; a rejection is
//! narrowed down to the rows the sink refuses ([`super::isolate`]): the others are delivered,
//! the refused ones set aside, counted as dropped and logged, since retrying bad data cannot
//! succeed.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::isolate::{isolate, write, Isolated};
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
                Ok(isolated) => {
                    let outcome = if head.spooled {
                        Outcome::Replayed
                    } else {
                        Outcome::Written
                    };
                    self.health.count(outcome, isolated.delivered);
                    if isolated.rejected_rows > 0 {
                        self.reject(&head, &isolated);
                    } else if let Err(e) = self.spool.remove(&head) {
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

    /// One attempt at one batch, each write bounded by the write timeout. A batch the sink
    /// rejects is narrowed down to the rows it refuses; `Err` is always transient (retry later).
    async fn deliver(&self, sealed: &Sealed) -> Result<Isolated, SinkError> {
        let data = match self.spool.read(sealed) {
            Ok(data) => data,
            Err(e) => {
                // Unreadable on disk: nothing to deliver, ever; keep what there is to inspect.
                let error = format!("cannot read spooled batch {}: {e}", sealed.seq);
                return Ok(Isolated {
                    rejected_rows: sealed.rows,
                    first_error: Some(error),
                    ..Isolated::default()
                });
            }
        };
        let batch = Batch {
            data,
            rows: sealed.rows,
        };
        match write(self.sink.as_ref(), &batch, self.write_timeout).await {
            Ok(()) => Ok(Isolated {
                delivered: batch.rows,
                ..Isolated::default()
            }),
            Err(e) if e.kind == ErrorKind::Rejected && batch.rows <= 1 => Ok(Isolated {
                rejected: batch.data.to_vec(),
                rejected_rows: batch.rows,
                first_error: Some(e.message),
                ..Isolated::default()
            }),
            Err(e) if e.kind == ErrorKind::Rejected => {
                tracing::warn!(
                    sink = self.sink.name(), error = %e, rows = batch.rows, seq = sealed.seq,
                    "the sink rejected a batch; splitting it to find the rows it refuses"
                );
                isolate(self.sink.as_ref(), &batch.data, self.write_timeout).await
            }
            Err(e) => Err(e),
        }
    }

    /// Counts and logs the rows the sink refused, and keeps them as `N.rejected`.
    fn reject(&self, sealed: &Sealed, isolated: &Isolated) {
        self.health.count(Outcome::Dropped, isolated.rejected_rows);
        let error = isolated.first_error.as_deref().unwrap_or("");
        let (rows, delivered) = (isolated.rejected_rows, isolated.delivered);
        match self.spool.reject(sealed, &isolated.rejected) {
            Ok(path) => tracing::error!(
                sink = self.sink.name(), error, rows, delivered, kept = %path.display(),
                "USAGE ROWS LOST: the sink rejected rows; they are kept for inspection, the rest of their batch was delivered"
            ),
            Err(e) => tracing::error!(
                sink = self.sink.name(), error, rows, delivered, move_error = %e,
                "USAGE ROWS LOST: the sink rejected rows"
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
