//! The exporter's own health, on the same registry as every other family:
//! `tailmeter_exporter_rows_total{sink,result}` with `result` one of `written` (delivered at
//! the first attempt), `spooled` (had to wait on disk for a failing sink, or was left by a
//! previous run), `replayed` (delivered from the spool later) and `dropped` (lost: the spool's disk
//! limit was reached, or the sink rejected the data), plus the queue depth (rows accepted and
//! not yet delivered) and the spool's size in bytes.

use prometheus::{IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

use crate::spool::Spool;

/// What happened to rows, as `result` label values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Delivered at the first attempt.
    Written,
    /// Waiting in the spool.
    Spooled,
    /// Delivered from the spool.
    Replayed,
    /// Lost.
    Dropped,
}

/// The exporter health families for one sink.
#[derive(Debug, Clone)]
pub struct Health {
    written: IntCounter,
    spooled: IntCounter,
    replayed: IntCounter,
    dropped: IntCounter,
    /// Rows accepted and not yet delivered.
    pub queue_depth: IntGauge,
    /// Bytes in the spool directory.
    pub spool_bytes: IntGauge,
}

impl Health {
    /// Registers the families on `registry` and returns the series of sink `sink`.
    pub fn register(registry: &Registry, sink: &str) -> prometheus::Result<Self> {
        let rows = IntCounterVec::new(
            Opts::new(
                "tailmeter_exporter_rows_total",
                "Usage rows by sink and outcome: written, spooled (waiting on disk), replayed \
                 (delivered from the spool), dropped (spool disk limit reached or data rejected).",
            ),
            &["sink", "result"],
        )?;
        let depth = IntGaugeVec::new(
            Opts::new(
                "tailmeter_exporter_queue_depth",
                "Usage rows accepted and not yet delivered to the sink (journaled or spooled).",
            ),
            &["sink"],
        )?;
        let spool = IntGaugeVec::new(
            Opts::new(
                "tailmeter_exporter_spool_bytes",
                "Bytes of undelivered usage rows in the spool directory.",
            ),
            &["sink"],
        )?;
        registry.register(Box::new(rows.clone()))?;
        registry.register(Box::new(depth.clone()))?;
        registry.register(Box::new(spool.clone()))?;
        Ok(Self {
            written: rows.with_label_values(&[sink, "written"]),
            spooled: rows.with_label_values(&[sink, "spooled"]),
            replayed: rows.with_label_values(&[sink, "replayed"]),
            dropped: rows.with_label_values(&[sink, "dropped"]),
            queue_depth: depth.with_label_values(&[sink]),
            spool_bytes: spool.with_label_values(&[sink]),
        })
    }

    /// Counts `rows` rows with `outcome`.
    pub fn count(&self, outcome: Outcome, rows: u64) {
        let counter = match outcome {
            Outcome::Written => &self.written,
            Outcome::Spooled => &self.spooled,
            Outcome::Replayed => &self.replayed,
            Outcome::Dropped => &self.dropped,
        };
        counter.inc_by(rows);
    }

    /// Sets the gauges from the spool.
    pub fn observe(&self, spool: &Spool) {
        self.queue_depth
            .set(i64::try_from(spool.rows()).unwrap_or(i64::MAX));
        self.spool_bytes
            .set(i64::try_from(spool.bytes()).unwrap_or(i64::MAX));
    }

    /// The count of `outcome` so far.
    pub fn total(&self, outcome: Outcome) -> u64 {
        match outcome {
            Outcome::Written => self.written.get(),
            Outcome::Spooled => self.spooled.get(),
            Outcome::Replayed => self.replayed.get(),
            Outcome::Dropped => self.dropped.get(),
        }
    }
}
