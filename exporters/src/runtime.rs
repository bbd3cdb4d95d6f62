//! The exporters as the proxy sees them: [`Exporters`], the request path's handle (one usage
//! row and one span per request, neither ever waited for), and [`ExportersRuntime`], the
//! process's handle that starts them on their own Tokio runtime thread and flushes them at
//! shutdown.

use std::sync::Arc;
use std::time::Duration;

use prometheus::Registry;

use crate::clickhouse::ClickHouseConfig;
use crate::event::RequestEvent;
use crate::health::Health;
use crate::jsonl::JsonSinkConfig;
use crate::pipeline::{EventSender, Pipeline, PipelineConfig};
use crate::sink::Sink;
use crate::traces::{OtlpConfig, Traces};

/// Longest the start waits for a sink's health check before going on without it (rows spool
/// meanwhile and are delivered when the sink answers).
const HEALTHCHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// Where usage rows go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventSink {
    /// Nowhere (`[events] enabled = false`): metrics only.
    Disabled,
    /// The embedded JSON-lines sink.
    Json(JsonSinkConfig),
    /// ClickHouse.
    ClickHouse(ClickHouseConfig),
}

/// Everything the exporters are started with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportersConfig {
    /// The usage-row sink.
    pub sink: EventSink,
    /// Queue, batching and spool.
    pub pipeline: PipelineConfig,
    /// Traces, when configured.
    pub otlp: Option<OtlpConfig>,
}

/// The request path's handle: cheap to clone, never blocks.
#[derive(Clone, Default)]
pub struct Exporters {
    events: EventSender,
    traces: Option<Arc<Traces>>,
}

impl Exporters {
    /// Exporters that drop everything (tests, `check`).
    pub fn disabled() -> Self {
        Self::default()
    }

    /// Whether spans are exported (so the proxy starts or continues a trace per request).
    pub fn tracing(&self) -> bool {
        self.traces.is_some()
    }

    /// Queues the request's span (when tracing) and its usage row.
    pub fn export(&self, event: &RequestEvent<'_>) {
        if let Some(traces) = &self.traces {
            traces.export(event);
        }
        self.events.send(event);
    }
}

/// The running exporters: their runtime, the event pipeline and the span exporter.
pub struct ExportersRuntime {
    runtime: tokio::runtime::Runtime,
    pipeline: Option<Pipeline>,
    traces: Option<Arc<Traces>>,
}

impl ExportersRuntime {
    /// Starts the runtime thread, builds and health-checks the sink, opens the spool (queuing
    /// what a previous run left, delivered first) and the span exporter. A sink that is down is
    /// not an error: rows spool until it answers. Errors are local: a spool that cannot be
    /// opened, an exporter that cannot be built, a registry clash.
    pub fn start(
        config: &ExportersConfig,
        registry: &Registry,
    ) -> Result<(Self, Exporters), String> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("tailmeter-export")
            .enable_all()
            .build()
            .map_err(|e| format!("exporter runtime: {e}"))?;
        let sink: Option<Arc<dyn Sink>> = match &config.sink {
            EventSink::Disabled => None,
            EventSink::Json(json) => Some(Arc::new(json.build())),
            EventSink::ClickHouse(ch) => Some(Arc::new(ch.build())),
        };
        let mut handle = Exporters::default();
        let mut pipeline = None;
        if let Some(sink) = sink {
            let health = Health::register(registry, sink.name())
                .map_err(|e| format!("exporter metrics: {e}"))?;
            runtime.block_on(healthcheck(sink.as_ref()));
            let _entered = runtime.enter();
            let (started, sender) = Pipeline::start(&config.pipeline, sink, health)
                .map_err(|e| format!("event spool {}: {e}", config.pipeline.spool_dir.display()))?;
            pipeline = Some(started);
            handle.events = sender;
        }
        if let Some(otlp) = &config.otlp {
            handle.traces = Some(Arc::new(Traces::start(otlp, runtime.handle(), registry)?));
        }
        let traces = handle.traces.clone();
        Ok((
            Self {
                runtime,
                pipeline,
                traces,
            },
            handle,
        ))
    }

    /// Flushes: the open batch and every waiting one are delivered within `grace` (what is left
    /// stays in the spool for the next start), queued spans are exported, then the runtime stops.
    pub fn shutdown(self, grace: Duration) {
        if let Some(pipeline) = self.pipeline {
            self.runtime.block_on(pipeline.shutdown(grace));
        }
        if let Some(traces) = &self.traces {
            traces.shutdown(grace);
        }
        self.runtime.shutdown_timeout(Duration::from_secs(1));
    }
}

async fn healthcheck(sink: &dyn Sink) {
    match tokio::time::timeout(HEALTHCHECK_TIMEOUT, sink.healthcheck()).await {
        Ok(Ok(())) => tracing::info!(sink = sink.name(), "event sink healthy"),
        Ok(Err(e)) => {
            tracing::warn!(sink = sink.name(), error = %e, "event sink unhealthy at start; rows will spool until it answers")
        }
        Err(_) => tracing::warn!(
            sink = sink.name(),
            "event sink health check timed out; rows will spool until it answers"
        ),
    }
}
