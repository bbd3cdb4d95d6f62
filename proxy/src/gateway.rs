//! The state every request shares: what the configuration resolves to (routes, grants,
//! identities, prices), the metrics, and whether the process is draining for shutdown.
//!
//! A config reload (SIGHUP, see `reload`) makes a new generation with [`Gateway::reloaded`]
//! and swaps it in whole through a [`SharedGateway`]: a request sees one generation from start
//! to end, and what outlives a generation (metrics, exporters, the draining flag, budget
//! windows whose definition did not change, the directory of stored responses) is carried
//! over, not rebuilt.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use tailmeter_exporters::{Exporters, Metrics};

use crate::access::Access;
use crate::budgets::Budgets;
use crate::config::Config;
use crate::identity::Resolver;
use crate::pricing::Prices;
use crate::routing::Routes;
use crate::stored::StoredResponses;
use crate::upstream::Upstream;

/// The current gateway generation, swapped whole on reload.
pub type SharedGateway = Arc<ArcSwap<Gateway>>;

/// Shared, read-mostly gateway state.
pub struct Gateway {
    /// Model routes.
    pub routes: Routes,
    /// Grants.
    pub access: Access,
    /// Source address to caller.
    pub resolver: Resolver,
    /// Token budgets (shared with the next generation when their definitions are unchanged).
    pub budgets: Arc<Budgets>,
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
    /// The stored responses seen created, by id (shared by every generation).
    pub stored: Arc<StoredResponses>,
    /// The configuration this generation was made from.
    pub config: Config,
    draining: Arc<AtomicBool>,
}

impl Gateway {
    /// The state for `config`.
    pub fn new(config: &Config, metrics: Arc<Metrics>) -> Self {
        Self {
            routes: Routes::new(&upstreams(config, None)),
            access: Access::new(config.grants.clone(), config.identity.capability.clone()),
            resolver: Resolver::new(&config.identity, metrics.registry()),
            budgets: Arc::new(Budgets::new(&config.budgets, &metrics)),
            prices: Prices::new(config.prices.clone()),
            metrics,
            max_request_body: config.server.max_request_body,
            client_body_timeout: config.server.client_body_timeout,
            exporters: Exporters::disabled(),
            stored: Arc::default(),
            config: config.clone(),
            draining: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The next generation, for a reloaded `config`: new routes, grants, identities, prices and
    /// limits; the same metrics, exporters and draining flag; the same resolved provider
    /// addresses; the same budget windows unless `[[budgets]]` changed (then they start afresh,
    /// which is logged).
    pub fn reloaded(&self, config: &Config) -> Self {
        let budgets = if config.budgets == self.config.budgets {
            Arc::clone(&self.budgets)
        } else {
            tracing::warn!("[[budgets]] changed: every budget window starts again from zero");
            Arc::new(Budgets::new(&config.budgets, &self.metrics))
        };
        Self {
            routes: Routes::new(&upstreams(config, Some(&self.routes))),
            access: Access::new(config.grants.clone(), config.identity.capability.clone()),
            resolver: self.resolver.renewed(&config.identity),
            budgets,
            prices: Prices::new(config.prices.clone()),
            metrics: Arc::clone(&self.metrics),
            max_request_body: config.server.max_request_body,
            client_body_timeout: config.server.client_body_timeout,
            exporters: self.exporters.clone(),
            stored: Arc::clone(&self.stored),
            config: config.clone(),
            draining: Arc::clone(&self.draining),
        }
    }

    /// The same state, exporting rows and spans to `exporters`.
    pub fn with_exporters(mut self, exporters: Exporters) -> Self {
        self.exporters = exporters;
        self
    }

    /// The same state, with the directory of stored responses kept in `stored`.
    pub fn with_stored(mut self, stored: StoredResponses) -> Self {
        self.stored = Arc::new(stored);
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

/// One upstream per `[[providers]]` entry; after a reload, each keeps the resolved addresses of
/// the previous generation's upstream at the same host and port.
fn upstreams(config: &Config, previous: Option<&Routes>) -> Vec<Arc<Upstream>> {
    let previous: Vec<&Upstream> = previous
        .map(|routes| routes.all().iter().map(|route| &*route.upstream).collect())
        .unwrap_or_default();
    config
        .providers
        .iter()
        .map(|provider| Arc::new(Upstream::new(provider).keeping_addresses_of(&previous)))
        .collect()
}
