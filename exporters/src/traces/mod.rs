//! Traces: one span per proxied request, exported over OTLP (gRPC or HTTP/protobuf).
//!
//! Spans are built after the fact ([`span::span_data`]) and handed to the SDK's
//! `BatchSpanProcessor`, whose queue is bounded (`queue_capacity`): a span that finds it full is
//! dropped, never waited for. Export runs on the processor's own thread; the gRPC channel and the
//! HTTP client run on the exporters' runtime. Spans lost to a full queue or a failed export (a
//! collector that is gone) are counted in `tailmeter_exporter_spans_total` and logged
//! ([`count`]).

mod count;
mod http;
pub mod span;

use std::sync::Arc;
use std::time::Duration;

use opentelemetry::InstrumentationScope;
use opentelemetry_otlp::{Protocol, SpanExporter, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, IdGenerator, RandomIdGenerator, SpanProcessor,
};
use opentelemetry_sdk::Resource;
use prometheus::Registry;
use tokio::runtime::Handle;

use self::count::{Counted, SpanGate};

use crate::event::RequestEvent;

/// Longest one export may take.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// How spans travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpProtocol {
    /// OTLP/gRPC (port 4317 by convention).
    Grpc,
    /// OTLP/HTTP with protobuf bodies (port 4318 by convention).
    Http,
}

/// `[otlp]`, as the exporter reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtlpConfig {
    /// Collector URL: for gRPC its address, for HTTP its base (`/v1/traces` is added when the
    /// URL has no path).
    pub endpoint: String,
    /// gRPC or HTTP.
    pub protocol: OtlpProtocol,
    /// Spans held for export before new ones are dropped.
    pub queue_capacity: usize,
}

/// The span exporter.
#[derive(Debug)]
pub struct Traces {
    processor: BatchSpanProcessor,
    scope: InstrumentationScope,
    gate: Arc<SpanGate>,
}

impl Traces {
    /// Builds the OTLP exporter and its batch processor, registering the span counters on
    /// `registry`; the gRPC channel and HTTP requests run on `runtime`.
    pub fn start(
        config: &OtlpConfig,
        runtime: &Handle,
        registry: &Registry,
    ) -> Result<Self, String> {
        let _entered = runtime.enter();
        let exporter = match config.protocol {
            OtlpProtocol::Grpc => SpanExporter::builder()
                .with_tonic()
                .with_endpoint(config.endpoint.clone())
                .with_timeout(EXPORT_TIMEOUT)
                .build(),
            OtlpProtocol::Http => SpanExporter::builder()
                .with_http()
                .with_http_client(http::HyperClient::new(runtime.clone(), EXPORT_TIMEOUT))
                .with_protocol(Protocol::HttpBinary)
                .with_endpoint(traces_url(&config.endpoint))
                .with_timeout(EXPORT_TIMEOUT)
                .build(),
        }
        .map_err(|e| format!("OTLP exporter for {}: {e}", config.endpoint))?;
        let gate = Arc::new(
            SpanGate::register(registry, config.queue_capacity)
                .map_err(|e| format!("span exporter metrics: {e}"))?,
        );
        let exporter = Counted {
            inner: exporter,
            gate: gate.clone(),
        };
        let batch = BatchConfigBuilder::default()
            .with_max_queue_size(config.queue_capacity.max(1))
            .with_scheduled_delay(Duration::from_millis(500))
            .build();
        let mut processor = BatchSpanProcessor::new(exporter, batch);
        processor.set_resource(&Resource::builder().with_service_name("tailmeter").build());
        let scope = InstrumentationScope::builder("tailmeter")
            .with_version(env!("CARGO_PKG_VERSION"))
            .build();
        Ok(Self {
            processor,
            scope,
            gate,
        })
    }

    /// Queues the span of `event`, when it has one; never blocks (a full queue drops it,
    /// counted).
    pub fn export(&self, event: &RequestEvent<'_>) {
        if let Some(ids) = &event.span {
            if self.gate.admit() {
                self.processor
                    .on_end(span::span_data(event, ids, &self.scope));
            }
        }
    }

    /// Exports what is queued and stops, within `timeout`.
    pub fn shutdown(&self, timeout: Duration) {
        if let Err(e) = self.processor.shutdown_with_timeout(timeout) {
            tracing::warn!(error = %e, "spans not all exported at shutdown");
        }
    }
}

/// A new random W3C trace id.
pub fn random_trace_id() -> [u8; 16] {
    RandomIdGenerator::default().new_trace_id().to_bytes()
}

/// A new random W3C span id.
pub fn random_span_id() -> [u8; 8] {
    RandomIdGenerator::default().new_span_id().to_bytes()
}

/// The OTLP/HTTP traces URL of a collector base URL.
fn traces_url(endpoint: &str) -> String {
    let trimmed = endpoint.trim_end_matches('/');
    let after_scheme = trimmed.split_once("://").map_or(trimmed, |(_, rest)| rest);
    if after_scheme.contains('/') {
        trimmed.to_owned()
    } else {
        format!("{trimmed}/v1/traces")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_endpoints_get_the_traces_path_when_they_have_none() {
        assert_eq!(
            traces_url("http://127.0.0.1:4318"),
            "http://127.0.0.1:4318/v1/traces"
        );
        assert_eq!(traces_url("http://c:4318/"), "http://c:4318/v1/traces");
        assert_eq!(
            traces_url("https://c/otlp/v1/traces"),
            "https://c/otlp/v1/traces"
        );
    }
}
