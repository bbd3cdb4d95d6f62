//! tailmeter's own retrievals of background responses whose usage is still to count.
//!
//! A background response's usage comes only in an answer that shows it finished, and a client
//! need not ask through the gateway: it may have died, or learn of the end by webhook. So once
//! a background response has waited [`super::FIRST_POLL`] with its usage uncounted, tailmeter
//! retrieves it from its provider (`GET /v1/responses/{id}`, with the provider's key), then
//! again after waits that double up to [`super::MAX_POLL_INTERVAL`]. The first answer that shows
//! it finished claims it, as a client's retrieval would ([`super::StoredResponses::claim`]), and
//! its figures are recorded in its creator's name; a provider that no longer has it (404) ends
//! the wait. A claim is made only with the answer in hand and recorded at once, so a shutdown
//! between two retrievals loses nothing: the journal keeps it pending for the next start.
//!
//! Each retrieval is counted in `tailmeter_stored_responses_retrievals_total{provider,result}`:
//! a provider that keeps refusing them (a key not allowed to read responses) or cannot be
//! reached leaves usage uncounted, and the alert on it says so.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::connectors::http::Connector;
use pingora::http::RequestHeader;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use prometheus::{IntCounterVec, Opts, Registry};
use tailmeter_exporters::UsageSource;
use tokio::task::JoinSet;

use super::Due;
use crate::config::BaseUrl;
use crate::gateway::{Gateway, SharedGateway};
use crate::meter::{Ending, Meter, Metered};
use crate::routing::Route;
use crate::upstream::ConnectAttempts;
use crate::usage::Dialect;

/// How often the directory is looked at for responses due.
const TICK: Duration = Duration::from_secs(1);
/// The most retrievals started in one tick (the rest wait for the next).
const RETRIEVALS_PER_TICK: usize = 16;
/// The longest one retrieval may take, connection included.
const RETRIEVAL_TIMEOUT: Duration = Duration::from_secs(30);
/// How long an idle connection to a provider is kept for the next retrieval.
const IDLE_CONNECTION: Duration = Duration::from_secs(60);

/// The background service that retrieves background responses due (see the module docs).
pub struct SettleBackgroundResponses {
    /// The gateway generation requests read: its routes and directory.
    gateway: SharedGateway,
    /// Connections to the providers, Pingora's as for proxied requests.
    connector: Arc<Connector>,
    /// `tailmeter_stored_responses_retrievals_total`.
    retrievals: IntCounterVec,
}

/// How one of tailmeter's retrievals went (the `result` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Finished, and its usage counted by this retrieval.
    Counted,
    /// Finished, with nothing left to count (none reported, or a client's retrieval counted it).
    Finished,
    /// Still queued or in progress.
    Running,
    /// The provider no longer has it (404): waited for no more.
    Gone,
    /// The provider answered another error status.
    Refused,
    /// No answer: the connection failed or timed out, or the route is no longer configured.
    Failed,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Outcome::Counted => "counted",
            Outcome::Finished => "finished",
            Outcome::Running => "running",
            Outcome::Gone => "gone",
            Outcome::Refused => "refused",
            Outcome::Failed => "failed",
        }
    }
}

impl SettleBackgroundResponses {
    /// The service for `gateway`, connecting with `connector`; its counter is registered on
    /// `registry`.
    pub fn new(
        gateway: SharedGateway,
        connector: Connector,
        registry: &Registry,
    ) -> prometheus::Result<Self> {
        let retrievals = IntCounterVec::new(
            Opts::new(
                "tailmeter_stored_responses_retrievals_total",
                "tailmeter's own retrievals of background Responses whose usage is still to count, by result.",
            ),
            &["provider", "result"],
        )?;
        registry.register(Box::new(retrievals.clone()))?;
        Ok(Self {
            gateway,
            connector: Arc::new(connector),
            retrievals,
        })
    }
}

#[async_trait]
impl BackgroundService for SettleBackgroundResponses {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => return,
            }
            let gateway = self.gateway.load_full();
            let mut retrievals = JoinSet::new();
            for due in gateway.stored.due(Instant::now(), RETRIEVALS_PER_TICK) {
                let (gateway, connector) = (Arc::clone(&gateway), Arc::clone(&self.connector));
                let counter = self.retrievals.clone();
                retrievals.spawn(async move {
                    let outcome = settle(&gateway, &connector, &due).await;
                    let provider = due.route.split_once('/').map_or(&*due.route, |(p, _)| p);
                    counter
                        .with_label_values(&[provider, outcome.label()])
                        .inc();
                });
            }
            // One retrieval failing, even by a panic, leaves the others and the next ticks be.
            let finished = async {
                while let Some(done) = retrievals.join_next().await {
                    if let Err(e) = done {
                        tracing::error!(error = %e, "a background response's retrieval failed");
                    }
                }
            };
            tokio::select! {
                () = finished => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}

/// Retrieves one due response and counts its usage if the answer shows it finished.
async fn settle(gateway: &Gateway, connector: &Connector, due: &Due) -> Outcome {
    let Some(route) = gateway.routes.resolve(&due.route) else {
        tracing::warn!(id = %due.id, route = %due.route, "a background response's route is no longer configured: its usage cannot be retrieved; retrying later");
        return Outcome::Failed;
    };
    let started_ms = crate::budgets::now_ms();
    let started = Instant::now();
    let answer = tokio::time::timeout(RETRIEVAL_TIMEOUT, retrieve(connector, route, &due.id)).await;
    let (status, metered, finished) = match answer {
        Ok(Ok(answer)) => answer,
        Ok(Err(e)) => {
            tracing::warn!(id = %due.id, provider = %route.upstream.name, error = %e, "could not retrieve a background response to count its usage; retrying later");
            return Outcome::Failed;
        }
        Err(_) => {
            tracing::warn!(id = %due.id, provider = %route.upstream.name, "retrieving a background response to count its usage timed out; retrying later");
            return Outcome::Failed;
        }
    };
    match status {
        200 if !finished => Outcome::Running,
        200 => {
            // Over: the wait ends, whoever counts it (a client's retrieval may have, meanwhile).
            let ours = gateway.stored.claim(&due.id);
            if !ours || metered.source != UsageSource::Provider {
                return Outcome::Finished;
            }
            let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
            crate::service::record_settled(
                gateway,
                &due.creator,
                route,
                started_ms,
                status,
                &metered,
                duration_ms,
            );
            Outcome::Counted
        }
        404 => {
            tracing::info!(id = %due.id, provider = %route.upstream.name, "the provider no longer has a background response whose usage was not counted");
            gateway.stored.forget(&due.id);
            Outcome::Gone
        }
        status => {
            tracing::warn!(id = %due.id, provider = %route.upstream.name, status, "the provider refused to retrieve a background response; retrying later");
            Outcome::Refused
        }
    }
}

/// `GET /v1/responses/{id}` on `route`'s provider: the status, what the answer reports, and
/// whether it shows the response finished.
async fn retrieve(
    connector: &Connector,
    route: &Route,
    id: &str,
) -> pingora::Result<(u16, Metered, bool)> {
    let upstream = &route.upstream;
    let mut request = RequestHeader::build("GET", format!("/v1/responses/{id}").as_bytes(), None)?;
    upstream.rewrite_request(&mut request, 0)?;
    let peer = upstream
        .peer(&mut ConnectAttempts::default())
        .await
        .map_err(|e| pingora::Error::because(pingora::ErrorType::ConnectError, "lookup", e))?;
    let (mut session, _reused) = connector.get_http_session(&*peer).await?;
    if session.as_http2().is_some() {
        in_h2_form(&mut request, &upstream.base)?;
    }
    session.write_request_header(Box::new(request)).await?;
    session.finish_request_body().await?;
    session.read_response_header().await?;
    let mut meter = Meter::start();
    meter.expect_reported_usage(Dialect::OpenAiResponses, Arc::clone(&route.model));
    let status = match session.response_header() {
        Some(header) => {
            meter.on_response_header(header.status.as_u16(), &header.headers, false);
            header.status.as_u16()
        }
        None => return pingora::Error::e_explain(pingora::ErrorType::InvalidHTTPHeader, "none"),
    };
    loop {
        let mut piece = session.read_response_body().await?;
        let end = piece.is_none();
        meter.on_body(&mut piece, end);
        if end {
            break;
        }
    }
    connector
        .release_http_session(session, &*peer, Some(IDLE_CONNECTION))
        .await;
    let metered = meter.finish(Ending::Complete);
    let finished = meter.shows_finished(&metered);
    Ok((status, metered, finished))
}

/// `request` as HTTP/2 sends it: the scheme and authority in the URI (its `:scheme` and
/// `:authority`), no `Host`, as Pingora's proxy does for proxied requests.
fn in_h2_form(request: &mut RequestHeader, base: &BaseUrl) -> pingora::Result<()> {
    request.remove_header(&http::header::HOST);
    let path = request.uri.path_and_query().cloned();
    let uri = http::Uri::builder()
        .scheme(if base.tls { "https" } else { "http" })
        .authority(base.authority())
        .path_and_query(path.map_or_else(|| "/".to_owned(), |p| p.to_string()))
        .build()
        .map_err(|e| pingora::Error::because(pingora::ErrorType::InvalidHTTPHeader, "h2 URI", e))?;
    request.set_uri(uri);
    Ok(())
}
