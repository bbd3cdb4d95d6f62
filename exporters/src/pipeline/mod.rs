//! The shared event pipeline in front of every sink: the journal, batching, and delivery with
//! retry.
//!
//! The request path calls [`EventSender::send`], which encodes the row and appends it to the
//! spool's journal with one `write(2)`, as the access log line is written: the row survives a
//! crash of the process from then on, and nothing on the request path waits for a sink. The
//! journal is the queue, bounded in bytes (`spool_max_bytes`). Behind it two tasks run on the
//! exporters' own runtime:
//! - the collector ([`collect`]) seals the open batch every `batch_rows` rows or
//!   `batch_interval` after its first row, whichever comes first;
//! - the deliverer ([`deliver`]) writes sealed batches to the sink strictly in order, retrying
//!   transient failures with [`crate::retry::Backoff`] while later batches wait on disk; a batch
//!   the sink rejects as bad data is split until the refused rows are alone ([`isolate`]): the
//!   rest is delivered, the refused rows are dropped (counted, logged, kept as `N.rejected`).
//!
//! [`Pipeline::shutdown`] seals the open batch and delivers what it can within a deadline;
//! anything left stays in the spool and is delivered at the next start.

mod collect;
mod deliver;
mod isolate;
#[cfg(test)]
mod tests;

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

use crate::event::RequestEvent;
use crate::health::{Health, Outcome};
use crate::row::encode_line;
use crate::sink::Sink;
use crate::spool::{Sealed, Spool};

/// Sizes and places of the pipeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineConfig {
    /// Rows per batch.
    pub batch_rows: usize,
    /// Longest a row waits before its batch is sealed.
    pub batch_interval: Duration,
    /// The spool directory.
    pub spool_dir: PathBuf,
    /// The spool's disk limit; past it rows are dropped (and counted).
    pub spool_max_bytes: u64,
    /// Longest one write to the sink may take before it counts as failed.
    pub write_timeout: Duration,
}

/// The request path's handle on the pipeline: cheap to clone, never waits for a sink.
#[derive(Clone, Default)]
pub struct EventSender {
    inner: Option<Arc<SenderInner>>,
}

struct SenderInner {
    spool: Arc<Spool>,
    health: Health,
    drops: DropLog,
    /// Wakes the collector: a batch was opened or filled.
    collector: Arc<Notify>,
    batch_rows: u64,
}

impl EventSender {
    /// A sender that discards every event (`[events] enabled = false`).
    pub fn disabled() -> Self {
        Self::default()
    }

    /// Journals one event's row; past the spool's disk limit it is dropped, counted and logged.
    pub fn send(&self, event: &RequestEvent<'_>) {
        let Some(inner) = &self.inner else {
            return;
        };
        thread_local! {
            /// The line being journaled, kept per thread so a row costs no allocation of its own.
            static LINE: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(1024));
        }
        let journaled = LINE.with_borrow_mut(|line| {
            line.clear();
            // A huge row (a long user agent) does not keep its buffer's size on the thread.
            line.shrink_to(16 * 1024);
            encode_line(event, line)
                .map_err(io::Error::other)
                .and_then(|()| inner.spool.journal(line))
        });
        match journaled {
            Ok(Some(rows)) => {
                if rows == 1 || rows >= inner.batch_rows {
                    inner.collector.notify_one();
                }
            }
            Ok(None) => inner.drops.dropped(&inner.health, 1, "the spool is full"),
            Err(e) => inner.drops.dropped(&inner.health, 1, &e.to_string()),
        }
        inner.health.observe(&inner.spool);
    }
}

/// Counts lost rows and says so loudly: the first loss and every 1000th after it are logged at
/// error level (a log line per lost row could itself take the disk down).
#[derive(Default)]
pub(crate) struct DropLog {
    total: AtomicU64,
}

impl DropLog {
    pub(crate) fn dropped(&self, health: &Health, rows: u64, why: &str) {
        health.count(Outcome::Dropped, rows);
        let before = self.total.fetch_add(rows, Ordering::Relaxed);
        if before == 0 || before / 1000 != (before + rows) / 1000 {
            tracing::error!(
                dropped_total = before + rows,
                reason = why,
                "USAGE ROWS LOST: rows could not be journaled to the spool; raise \
                 events.spool_max_bytes or bring the sink back"
            );
        }
    }
}

/// Sealed batches waiting for the deliverer, oldest first.
#[derive(Default)]
pub(crate) struct Pending {
    batches: Mutex<VecDeque<Sealed>>,
    notify: Notify,
    /// The collector has stopped: no more batches will come.
    closed: AtomicBool,
    /// The sink's last write failed: new batches wait on disk, not in memory.
    failing: AtomicBool,
}

impl Pending {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Sealed>> {
        self.batches.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a sealed batch behind the others; while the sink is failing it is counted as
    /// spooled at once.
    pub(crate) fn push(&self, mut sealed: Sealed, health: &Health) {
        if self.failing.load(Ordering::SeqCst) {
            mark_spooled(&mut sealed, health);
        }
        self.lock().push_back(sealed);
        self.notify.notify_one();
    }
}

/// Counts a batch as spooled (once).
pub(crate) fn mark_spooled(sealed: &mut Sealed, health: &Health) {
    if !sealed.spooled {
        sealed.spooled = true;
        health.count(Outcome::Spooled, sealed.rows);
    }
}

/// The running pipeline's tasks.
pub struct Pipeline {
    stop: watch::Sender<Option<Instant>>,
    collector: JoinHandle<()>,
    deliverer: JoinHandle<()>,
}

impl Pipeline {
    /// Opens the spool (queuing what a previous run left, to be delivered first) and starts the
    /// tasks; call within the Tokio runtime they are to run on.
    pub fn start(
        config: &PipelineConfig,
        sink: Arc<dyn Sink>,
        health: Health,
    ) -> io::Result<(Self, EventSender)> {
        let (spool, leftover) = Spool::open(&config.spool_dir, config.spool_max_bytes)?;
        let spool = Arc::new(spool);
        let pending = Arc::new(Pending::default());
        if !leftover.is_empty() {
            let rows: u64 = leftover.iter().map(|s| s.rows).sum();
            tracing::info!(
                sink = sink.name(),
                batches = leftover.len(),
                rows,
                "replaying the spool left by a previous run"
            );
            health.count(Outcome::Spooled, rows);
            pending.lock().extend(leftover);
        }
        health.observe(&spool);
        let (stop, stop_rx) = watch::channel(None);
        let wake = Arc::new(Notify::new());
        let batch_rows = config.batch_rows.max(1) as u64;
        let collector = collect::Collector {
            spool: spool.clone(),
            health: health.clone(),
            pending: pending.clone(),
            wake: wake.clone(),
            batch_rows,
            batch_interval: config.batch_interval,
            stop: stop_rx.clone(),
        };
        let deliverer = deliver::Deliverer {
            sink,
            spool: spool.clone(),
            health: health.clone(),
            pending,
            write_timeout: config.write_timeout,
            stop: stop_rx,
        };
        let sender = EventSender {
            inner: Some(Arc::new(SenderInner {
                spool,
                health,
                drops: DropLog::default(),
                collector: wake,
                batch_rows,
            })),
        };
        let pipeline = Self {
            stop,
            collector: tokio::spawn(collector.run()),
            deliverer: tokio::spawn(deliverer.run()),
        };
        Ok((pipeline, sender))
    }

    /// Seals the open batch and delivers until everything is written or
    /// `grace` has passed; what is left stays in the spool for the next start.
    pub async fn shutdown(self, grace: Duration) {
        let _ = self.stop.send(Some(Instant::now() + grace));
        if let Err(e) = self.collector.await {
            tracing::error!(error = %e, "event collector failed");
        }
        if let Err(e) = self.deliverer.await {
            tracing::error!(error = %e, "event deliverer failed");
        }
    }
}
