//! Configuration reload on SIGHUP, so routes, grants, identities and prices change without
//! dropping a connection or a usage row. The file is loaded and validated exactly as at start;
//! a file that fails keeps the running configuration and the log says why (file, line, key).
//! A valid one becomes the next gateway generation, swapped in whole: requests already in flight
//! finish on the generation they started with.
//!
//! Listen addresses, threads and the exporters (`[events]`, `[clickhouse]`, `[otlp]`, `[log]`,
//! `[metrics]`) are bound at start; a change to them is applied at the next restart, and the
//! reload says so.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use crate::config::{self, Config};
use crate::gateway::SharedGateway;

/// The background service that reloads `path` into `gateway` on every SIGHUP.
pub struct ReloadOnHangup {
    /// The configuration file `serve` was started with.
    pub path: PathBuf,
    /// The gateway generation requests read.
    pub gateway: SharedGateway,
}

#[async_trait]
impl BackgroundService for ReloadOnHangup {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hangup = match signal(SignalKind::hangup()) {
            Ok(hangup) => hangup,
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGHUP: config reload is off");
                return;
            }
        };
        loop {
            tokio::select! {
                _ = hangup.recv() => reload(&self.path, &self.gateway),
                _ = shutdown.changed() => return,
            }
        }
    }
}

/// Loads and validates `path`; swaps it in when valid, keeps the running config when not.
pub fn reload(path: &std::path::Path, gateway: &SharedGateway) {
    let loaded = config::load(path);
    let config = match loaded {
        Ok(config) => config,
        Err(e) => {
            tracing::error!(
                error = %e,
                "SIGHUP: the new configuration is invalid; still serving the previous one"
            );
            return;
        }
    };
    let current = gateway.load_full();
    for section in restart_only_changes(&current.config, &config) {
        tracing::warn!(
            section,
            "SIGHUP: this setting changed but applies only at the next restart"
        );
    }
    gateway.store(Arc::new(current.reloaded(&config)));
    tracing::info!(
        path = %path.display(),
        providers = config.providers.len(),
        grants = config.grants.len(),
        "SIGHUP: configuration reloaded"
    );
}

/// The settings that differ between `old` and `new` but are bound at start.
fn restart_only_changes(old: &Config, new: &Config) -> Vec<&'static str> {
    let (a, b) = (&old.server, &new.server);
    [
        ("server.listen", a.listen != b.listen),
        ("server.admin_listen", a.admin_listen != b.admin_listen),
        ("server.threads", a.threads != b.threads),
        (
            "server.shutdown_grace",
            a.shutdown_grace != b.shutdown_grace,
        ),
        ("events", old.events != new.events),
        ("clickhouse", old.clickhouse != new.clickhouse),
        ("otlp", old.otlp != new.otlp),
        ("metrics", old.metrics != new.metrics),
        ("log", old.log != new.log),
    ]
    .into_iter()
    .filter_map(|(name, changed)| changed.then_some(name))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_settings_bound_at_start() {
        let old = Config::default();
        let mut new = old.clone();
        assert!(restart_only_changes(&old, &new).is_empty());
        new.server.threads += 1;
        new.server.max_request_body += 1;
        assert_eq!(restart_only_changes(&old, &new), vec!["server.threads"]);
    }
}
