//! Span export health: `tailmeter_exporter_spans_total{result}`, `exported` or `dropped`.
//!
//! A span is lost when its export fails (the collector is gone, refuses, or times out: the SDK's
//! batch processor does not retry) or when it finds the queue full. Neither blocks a request,
//! and neither is silent: both are counted here, and the first loss of an outage is logged at
//! error level (then every 1000th, and the recovery once), like lost usage rows.
//!
//! The SDK counts queue-full drops only internally, so the queue bound is enforced here, before
//! the span reaches the SDK: [`SpanGate::admit`] lets at most `capacity` spans wait for export,
//! the same bound the SDK's queue has, so the SDK itself never has to drop one. The OTLP exporter
//! is wrapped ([`Counted`]) to see each export's result.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use opentelemetry_sdk::Resource;
use prometheus::{IntCounter, IntCounterVec, Opts, Registry};

/// The span counters and the bound on spans waiting for export; shared by the request path
/// and the exporter.
#[derive(Debug)]
pub(super) struct SpanGate {
    exported: IntCounter,
    dropped: IntCounter,
    /// Spans handed to the SDK and not yet through an export.
    waiting: AtomicU64,
    capacity: u64,
    /// The last export failed (so a recovery is logged once).
    failing: AtomicBool,
}

impl SpanGate {
    /// Registers `tailmeter_exporter_spans_total` on `registry`.
    pub(super) fn register(registry: &Registry, capacity: usize) -> prometheus::Result<Self> {
        let spans = IntCounterVec::new(
            Opts::new(
                "tailmeter_exporter_spans_total",
                "Trace spans by outcome: exported to the OTLP collector, or dropped (export \
                 failed or the span queue was full).",
            ),
            &["result"],
        )?;
        registry.register(Box::new(spans.clone()))?;
        Ok(Self {
            exported: spans.with_label_values(&["exported"]),
            dropped: spans.with_label_values(&["dropped"]),
            waiting: AtomicU64::new(0),
            capacity: capacity.max(1) as u64,
            failing: AtomicBool::new(false),
        })
    }

    /// Whether one more span may wait for export; when not, it is counted as dropped.
    pub(super) fn admit(&self) -> bool {
        let admitted = self
            .waiting
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < self.capacity).then_some(n + 1)
            })
            .is_ok();
        if !admitted {
            self.lost(1, "the span queue is full");
        }
        admitted
    }

    /// Counts the result of exporting `spans` spans.
    fn exported(&self, spans: u64, result: &OTelSdkResult) {
        let _ = self
            .waiting
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                Some(n.saturating_sub(spans))
            });
        match result {
            Ok(()) => {
                self.exported.inc_by(spans);
                if self.failing.swap(false, Ordering::SeqCst) {
                    tracing::info!("OTLP collector is back; exporting spans again");
                }
            }
            Err(e) => {
                let first = !self.failing.swap(true, Ordering::SeqCst);
                self.lost_with(spans, &e.to_string(), first);
            }
        }
    }

    fn lost(&self, spans: u64, why: &str) {
        self.lost_with(spans, why, false);
    }

    fn lost_with(&self, spans: u64, why: &str, force_log: bool) {
        let before = self.dropped.get();
        self.dropped.inc_by(spans);
        if force_log || before == 0 || before / 1000 != (before + spans) / 1000 {
            tracing::error!(
                dropped_total = before + spans,
                reason = why,
                "SPANS LOST: trace spans could not be exported; check the [otlp] collector"
            );
        }
    }
}

/// The OTLP exporter, counting what each export did with its spans.
pub(super) struct Counted<E> {
    pub inner: E,
    pub gate: Arc<SpanGate>,
}

impl<E: fmt::Debug> fmt::Debug for Counted<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}

impl<E: SpanExporter> SpanExporter for Counted<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let spans = batch.len() as u64;
        let result = self.inner.export(batch).await;
        self.gate.exported(spans, &result);
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry_sdk::error::OTelSdkError;

    use super::*;

    #[test]
    fn the_gate_bounds_waiting_spans_and_counts_every_outcome() {
        let registry = Registry::new();
        let gate = SpanGate::register(&registry, 2).unwrap();
        assert!(gate.admit() && gate.admit());
        assert!(!gate.admit(), "a third span finds the queue full");
        assert_eq!(gate.dropped.get(), 1);
        gate.exported(1, &Ok(()));
        gate.exported(1, &Err(OTelSdkError::InternalFailure("gone".into())));
        assert_eq!((gate.exported.get(), gate.dropped.get()), (1, 2));
        assert!(gate.admit(), "room again");
        let text = String::from_utf8(
            prometheus::TextEncoder::new()
                .encode_to_string(&registry.gather())
                .unwrap()
                .into_bytes(),
        )
        .unwrap();
        assert!(text.contains("tailmeter_exporter_spans_total{result=\"dropped\"} 2"));
    }
}
