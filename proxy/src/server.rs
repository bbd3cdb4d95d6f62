//! Process assembly: the Pingora server with the proxy and admin services, and the shutdown
//! sequence of the contract. On SIGTERM or SIGINT the gateway stops taking new requests (503),
//! lets in-flight streams finish within `server.shutdown_grace`, then stops the runtimes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::server::configuration::ServerConf;
use pingora::server::{RunArgs, Server, ShutdownSignal, ShutdownSignalWatch};
use pingora::services::listening::Service;
use tailmeter_exporters::Metrics;

use crate::admin::AdminApp;
use crate::config::Config;
use crate::gateway::Gateway;
use crate::service::Proxy;

/// Runs the gateway until a shutdown signal, then drains and returns.
pub fn run(config: &Config) {
    let metrics = Arc::new(Metrics::new(config.metrics.max_identities));
    let gateway = Arc::new(Gateway::new(config, metrics));

    let conf = ServerConf {
        threads: config.server.threads.max(1),
        // Draining happens in `DrainOnSignal` before Pingora's own shutdown starts, so
        // Pingora need not wait again.
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(1),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();

    let mut proxy = pingora::proxy::http_proxy_service_with_name(
        &server.configuration,
        Proxy::new(gateway.clone()),
        "tailmeter proxy",
    );
    proxy.add_tcp(&config.server.listen.to_string());
    let mut admin = Service::new("tailmeter admin".to_owned(), AdminApp::new(gateway.clone()));
    admin.add_tcp(&config.server.admin_listen.to_string());
    server.add_service(proxy);
    server.add_service(admin);

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
    tracing::info!("tailmeter stopped");
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
        ShutdownSignal::GracefulTerminate
    }
}
