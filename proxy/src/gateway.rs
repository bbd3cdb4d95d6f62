//! The state every request shares: what the configuration resolves to (routes, grants,
//! identities, prices), the metrics, and whether the process is draining for shutdown.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tailmeter_exporters::{Exporters, Metrics};

use crate::access::Access;
use crate::budgets::Budgets;
use crate::config::Config;
use crate::identity::Resolver;
use crate::pricing::Prices;
use crate::routing::Routes;
use crate::upstream::Upstream;

/// Shared, read-mostly gateway state.
pub struct Gateway {
    /// Model routes.
    pub routes: Routes,
    /// Grants.
    pub access: Access,
    /// Source address to caller.
    pub resolver: Resolver,
    /// Token budgets.
    pub budgets: Budgets,
    /// Prices for cost.
    pub prices: Prices,
    /// Every metric family.
    pub metrics: Arc<Metrics>,
    /// `server.max_request_body` in bytes.
    pub max_request_body: u64,
    /// `server.client_body_timeout`: the longest a client may take to send its body.
    pub client_body_timeout: std::time::Duration,
    /// Where each request's usage row and span go.
    pub exporters: Exporters,
    draining: AtomicBool,
}

impl Gateway {
    /// The state for `config`.
    pub fn new(config: &Config, metrics: Arc<Metrics>) -> Self {
        let upstreams: Vec<Arc<Upstream>> = config
            .providers
            .iter()
            .map(|provider| Arc::new(Upstream::new(provider)))
            .collect();
        Self {
            routes: Routes::new(&upstreams),
            access: Access::new(config.grants.clone(), config.identity.capability.clone()),
            resolver: Resolver::new(&config.identity, metrics.registry()),
            budgets: Budgets::new(&config.budgets, &metrics),
            prices: Prices::new(config.prices.clone()),
            metrics,
            max_request_body: config.server.max_request_body,
            client_body_timeout: config.server.client_body_timeout,
            exporters: Exporters::disabled(),
            draining: AtomicBool::new(false),
        }
    }

    /// The same state, exporting rows and spans to `exporters`.
    pub fn with_exporters(mut self, exporters: Exporters) -> Self {
        self.exporters = exporters;
        self
    }

    /// Marks the gateway as shutting down: new requests are refused with 503.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// Whether the gateway is shutting down.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }
}
