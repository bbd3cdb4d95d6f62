//! Process assembly: the Pingora server with the proxy and admin services, and the shutdown
//! sequence of the contract. On SIGTERM or SIGINT the gateway stops taking new requests (503),
//! lets in-flight streams finish within `server.shutdown_grace`, then stops the runtimes and
//! flushes the exporters (queued usage rows and spans).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora::connectors::http::Connector;
use pingora::connectors::ConnectorOptions;
use pingora::listeners::ListenerConfig;
use pingora::protocols::l4::stream::{L4BufferSettings, DEFAULT_L4_WRITE_BUFFER_SIZE};
use pingora::server::configuration::ServerConf;
use pingora::server::{RunArgs, Server, ShutdownSignal, ShutdownSignalWatch};
use pingora::services::background::background_service;
use pingora::services::listening::Service;
use tailmeter_exporters::clickhouse::ClickHouseConfig;
use tailmeter_exporters::jsonl::JsonSinkConfig;
use tailmeter_exporters::pipeline::PipelineConfig;
use tailmeter_exporters::traces::{OtlpConfig, OtlpProtocol};
use tailmeter_exporters::{EventSink, ExportersConfig, ExportersRuntime, Metrics};

use crate::admin::AdminApp;
use crate::config::{self, Config};
use crate::gateway::Gateway;
use crate::reload::ReloadOnHangup;
use crate::service::Proxy;
use crate::stored::settle::SettleBackgroundResponses;
use crate::stored::{self, StoredResponses};
use crate::timeouts::client::HeaderDeadlineApp;

/// How many times one request is sent at most (Pingora's `max_retries` counts attempts).
const MAX_ATTEMPTS: usize = 3;

/// Runs the gateway until a shutdown signal, then drains and returns. SIGHUP reloads `path`
/// (see [`crate::reload`]).
pub fn run(config: &Config, path: &Path) {
    let metrics = Arc::new(Metrics::new(config.metrics.max_identities));
    // Before the listeners: a spool left by a crash starts replaying now.
    let (exporters_runtime, exporters) =
        match ExportersRuntime::start(&exporters_config(config), metrics.registry()) {
            Ok(started) => started,
            Err(e) => {
                tracing::error!(error = %e, "cannot start the exporters");
                std::process::exit(1);
            }
        };
    let journal = config.events.dir.join(stored::JOURNAL_FILE);
    let stored = match StoredResponses::open(&journal, stored::CAPACITY, metrics.registry()) {
        Ok(stored) => stored,
        Err(e) => {
            tracing::error!(path = %journal.display(), error = %e, "cannot open the stored-responses journal");
            std::process::exit(1);
        }
    };
    let gateway = Gateway::new(config, metrics).with_exporters(exporters);
    let gateway = Arc::new(gateway.with_stored(stored));
    // Every generation shares the draining flag and the metrics, so the shutdown watch may keep
    // the first one.
    let shared = Arc::new(ArcSwap::new(Arc::clone(&gateway)));

    let conf = ServerConf {
        threads: config.server.threads.max(1),
        // Draining happens in `DrainOnSignal` before Pingora's own shutdown starts, so
        // Pingora need not wait again.
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(1),
        // Attempts per request: a retry is only for what the provider never processed
        // (`Proxy::error_while_proxy`), so a few on fresh connections are plenty.
        max_retries: MAX_ATTEMPTS,
        // One single-threaded runtime per worker, each serving its own connections whole
        // (`crate::home`): no request wakes a second thread.
        work_stealing: false,
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();

    // Every client connection under `server.client_header_timeout` (crate::timeouts::client).
    let mut proxy = Service::new(
        "tailmeter proxy".to_owned(),
        HeaderDeadlineApp::new(
            pingora::proxy::http_proxy(&server.configuration, Proxy::new(shared.clone())),
            shared.clone(),
        ),
    );
    proxy.add_listener(
        ListenerConfig::tcp(config.server.listen.to_string()).l4_buffer(L4BufferSettings::new(
            CLIENT_READ_BUFFER,
            DEFAULT_L4_WRITE_BUFFER_SIZE,
        )),
    );
    let mut admin = Service::new("tailmeter admin".to_owned(), AdminApp::new(shared.clone()));
    admin.add_tcp(&config.server.admin_listen.to_string());
    server.add_service(proxy);
    server.add_service(admin);
    let connector = Connector::new(Some(ConnectorOptions::from_server_conf(
        &server.configuration,
    )));
    let settle =
        SettleBackgroundResponses::new(shared.clone(), connector, gateway.metrics.registry())
            .expect("the retrievals counter registers once");
    server.add_service(background_service("background responses", settle));
    server.add_service(background_service(
        "config reload",
        ReloadOnHangup {
            path: path.to_owned(),
            gateway: shared,
        },
    ));

    tracing::info!(
        listen = %config.server.listen,
        admin_listen = %config.server.admin_listen,
        providers = config.providers.len(),
        "tailmeter serving"
    );
    server.run(RunArgs {
        shutdown_signal: Box::new(DrainOnSignal {
            gateway,
            grace: config.server.shutdown_grace,
        }),
    });
    exporters_runtime.shutdown(EXPORT_FLUSH_GRACE);
    tracing::info!("tailmeter stopped");
}

/// The read buffer of each client connection: none. Pingora's default is 64 KiB, allocated zeroed
/// for every connection and held while it is open, while a client sends one request and then
/// reads a stream; Pingora reads the request header into its own growing buffer and the body in
/// reads of up to 64 KiB. Without it an open stream holds about 6 KiB less (tests/bench/RESULTS.md,
/// optimization log, change 7: 2,000 open streams, and what it may cost 1 MiB request bodies).
const CLIENT_READ_BUFFER: usize = 0;

/// How long the exporters may take to flush at shutdown; rows not delivered by then stay in
/// the spool and are delivered at the next start.
const EXPORT_FLUSH_GRACE: Duration = Duration::from_secs(5);

/// Longest one write to an event sink may take.
const SINK_WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Spans held for export before new ones are dropped.
const SPAN_QUEUE: usize = 4096;

/// What the exporters are started with, from `[events]`, `[clickhouse]` and `[otlp]`.
fn exporters_config(config: &Config) -> ExportersConfig {
    let events = &config.events;
    let sink = match &config.clickhouse {
        _ if !events.enabled => EventSink::Disabled,
        Some(ch) => EventSink::ClickHouse(ClickHouseConfig {
            url: ch.url.clone(),
            database: ch.database.clone(),
            user: ch.user.clone(),
            password: ch.password.clone(),
            ttl_days: ch
                .ttl
                .map(|ttl| u32::try_from(ttl.as_secs() / 86_400).unwrap_or(u32::MAX)),
        }),
        None => EventSink::Json(JsonSinkConfig {
            dir: events.dir.clone(),
            rotate_bytes: events.rotate_size,
        }),
    };
    ExportersConfig {
        sink,
        pipeline: PipelineConfig {
            batch_rows: events.batch_rows,
            batch_interval: events.batch_interval,
            spool_dir: events.spool_dir.clone(),
            spool_max_bytes: events.spool_max_bytes,
            write_timeout: SINK_WRITE_TIMEOUT,
        },
        otlp: config.otlp.as_ref().map(|otlp| OtlpConfig {
            endpoint: otlp.endpoint.clone(),
            protocol: match otlp.protocol {
                config::OtlpProtocol::Grpc => OtlpProtocol::Grpc,
                config::OtlpProtocol::Http => OtlpProtocol::Http,
            },
            queue_capacity: SPAN_QUEUE,
        }),
    }
}

/// Waits for SIGTERM or SIGINT, then drains in-flight requests before letting Pingora stop.
struct DrainOnSignal {
    gateway: Arc<Gateway>,
    grace: Duration,
}

#[async_trait]
impl ShutdownSignalWatch for DrainOnSignal {
    async fn recv(&self) -> ShutdownSignal {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                let name = tokio::select! {
                    _ = term.recv() => "SIGTERM",
                    _ = int.recv() => "SIGINT",
                };
                tracing::info!(signal = name, "shutting down: draining in-flight requests");
            }
            (Err(e), _) | (_, Err(e)) => {
                tracing::error!(error = %e, "cannot listen for shutdown signals");
                std::future::pending::<()>().await;
            }
        }
        self.gateway.start_draining();
        let deadline = Instant::now() + self.grace;
        let inflight = &self.gateway.metrics.inflight;
        while inflight.get() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if inflight.get() > 0 {
            tracing::warn!(
                inflight = inflight.get(),
                "grace period over; cutting remaining requests"
            );
        }
        crate::logging::runtimes_stopping();
        ShutdownSignal::GracefulTerminate
    }
}
