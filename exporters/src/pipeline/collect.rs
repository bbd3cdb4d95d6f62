//! The collector: seals the open batch every `batch_rows` rows or `batch_interval` after its
//! first row, whichever comes first, and queues it for delivery. Rows themselves are journaled
//! by the request path ([`super::EventSender::send`]), which wakes the collector when a batch
//! opens or fills.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{watch, Notify};

use super::Pending;
use crate::health::Health;
use crate::spool::Spool;

pub(super) struct Collector {
    pub spool: Arc<Spool>,
    pub health: Health,
    pub pending: Arc<Pending>,
    pub wake: Arc<Notify>,
    pub batch_rows: u64,
    pub batch_interval: Duration,
    pub stop: watch::Receiver<Option<Instant>>,
}

impl Collector {
    pub(super) async fn run(mut self) {
        'batches: loop {
            // Idle until a batch opens (a row from before the start counts too).
            if self.spool.open_rows() == 0 {
                tokio::select! {
                    () = self.wake.notified() => {}
                    _ = self.stop.changed() => break 'batches,
                }
            }
            let deadline = tokio::time::Instant::now() + self.batch_interval;
            while self.spool.open_rows() < self.batch_rows {
                tokio::select! {
                    () = tokio::time::sleep_until(deadline) => break,
                    () = self.wake.notified() => {}
                    _ = self.stop.changed() => break 'batches,
                }
            }
            if !self.seal() {
                // Not sealed (the spool's directory cannot be written): the batch stays open
                // and is tried again after an interval, not in a busy loop.
                tokio::select! {
                    () = tokio::time::sleep(self.batch_interval) => {}
                    _ = self.stop.changed() => break 'batches,
                }
            }
        }
        // Shutdown: seal what is open; requests still finishing journal into a new open batch,
        // which the next start delivers.
        let _ = self.seal();
        self.pending.closed.store(true, Ordering::SeqCst);
        self.pending.notify.notify_one();
    }

    /// Seals the open batch, when it has rows, and queues it for delivery; false when it could
    /// not be sealed.
    fn seal(&self) -> bool {
        match self.spool.seal() {
            Ok(Some(sealed)) => self.pending.push(sealed, &self.health),
            Ok(None) => {}
            Err(e) => {
                tracing::error!(error = %e, "cannot seal a batch in the spool; retrying after the batch interval");
                return false;
            }
        }
        true
    }
}
