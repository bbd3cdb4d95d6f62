//! The one record of a request: built once, when it is over (as its last bytes pass, or in the
//! `logging` phase), from its context and what it used; counted in the metrics, written as the
//! access-log line, and handed to the exporters (usage row and span) without waiting.
//!
//! A request that creates, retrieves or deletes a stored response also keeps the directory of
//! stored responses ([`crate::stored`]) up to date, which decides whether a retrieved
//! background response's usage is this request's to count. When tailmeter retrieves one itself
//! ([`crate::stored::settle`]), what it counts is recorded the same way ([`record_settled`]),
//! in the creator's name.

use std::sync::Arc;

use tailmeter_exporters::{RequestEvent, TokenCounts, UsageSource};

use super::RequestCtx;
use crate::endpoint::{ConversationAction, Endpoint, StoredAction};
use crate::gateway::Gateway;
use crate::identity::{Caller, UNIDENTIFIED};
use crate::meter::Metered;
use crate::pricing::MediaUse;
use crate::routing::Route;
use crate::stored::{Creator, Kept};
use crate::trace_context::genai_provider_name;

/// Label value for a provider or model the request never resolved to.
pub(super) const UNKNOWN: &str = "__unknown__";

/// Meters the finished request: metrics, the access log, the usage row and the span.
pub(super) fn record(gateway: &Gateway, ctx: &RequestCtx, status: u16, mut metered: Metered) {
    let Some(endpoint) = ctx.endpoint.filter(|e| e.is_proxied()) else {
        log_unmetered(ctx, status);
        return;
    };
    track_stored(gateway, ctx, endpoint, status, &mut metered);
    let trace_id = ctx.trace.map(|t| t.trace_id_hex()).unwrap_or_default();
    let event = build_event(gateway, ctx, endpoint, status, &metered, &trace_id);
    count(gateway, ctx.caller.as_deref(), &event);
}

/// Records the usage tailmeter counted for a background response it retrieved itself
/// (`GET /v1/responses/{id}` on `route`, started at `started_ms`, answered `status`): a row
/// like a client's retrieval, in its creator's name, with tailmeter as the user agent.
pub(crate) fn record_settled(
    gateway: &Gateway,
    creator: &Creator,
    route: &Route,
    started_ms: u64,
    status: u16,
    metered: &Metered,
    duration_ms: f64,
) {
    let request_id = uuid::Uuid::now_v7().simple().to_string();
    let caller = &creator.caller;
    let labels = RouteLabels::of(Some(route));
    let cost = gateway
        .prices
        .cost(labels.model, &metered.tokens, MediaUse::default());
    let event = RequestEvent {
        ts_ms: started_ms,
        request_id: &request_id,
        trace_id: "",
        span: None,
        provider_system: labels.provider_system,
        server_address: labels.server_address,
        identity: &caller.identity,
        login: caller.login.as_deref().unwrap_or_default(),
        tags: &caller.tags,
        node: caller.node.as_deref().unwrap_or_default(),
        src_ip: creator.src_ip,
        provider: labels.provider,
        model: labels.model,
        response_model: metered.response_model.as_deref().unwrap_or_default(),
        endpoint: Endpoint::StoredResponse(StoredAction::Retrieve).label(),
        stream: false,
        status,
        tokens: metered.tokens,
        cost_usd: cost.unwrap_or(0.0),
        priced: cost.is_some(),
        duration_ms,
        ttft_ms: None,
        usage_source: metered.source,
        usage_missing_reason: metered.missing_reason,
        user_agent: SETTLER_USER_AGENT,
    };
    count(gateway, Some(caller), &event);
}

/// The `user_agent` of the rows of tailmeter's own retrievals.
const SETTLER_USER_AGENT: &str = concat!("tailmeter/", env!("CARGO_PKG_VERSION"));

/// Counts a finished request's `event` in the metrics and `caller`'s budgets, writes its
/// access-log line and hands it to the exporters.
fn count(gateway: &Gateway, caller: Option<&Caller>, event: &RequestEvent<'_>) {
    gateway.metrics.record(event);
    if let Some(caller) = caller {
        let tokens = event.tokens.input.saturating_add(event.tokens.output);
        gateway
            .budgets
            .add(caller, tokens, crate::budgets::now_ms());
    }
    crate::logging::access::write(event);
    gateway.exporters.export(event);
}

/// What a row says of the route a request took: `__unknown__` and empty when it took none.
struct RouteLabels<'a> {
    provider: &'a str,
    model: &'a str,
    provider_system: &'a str,
    server_address: &'a str,
}

impl<'a> RouteLabels<'a> {
    fn of(route: Option<&'a Route>) -> Self {
        match route {
            Some(route) => Self {
                provider: &route.upstream.name,
                model: &route.model,
                provider_system: genai_provider_name(&route.upstream),
                server_address: &route.upstream.base.host,
            },
            None => Self {
                provider: UNKNOWN,
                model: UNKNOWN,
                provider_system: UNKNOWN,
                server_address: "",
            },
        }
    }
}

/// Remembers a response created stored or in the background (or a conversation created),
/// forgets a deleted one, and keeps
/// a retrieved (or cancelled) response's figures only if this request is the one to count them:
/// the first to see a background response finished. Any other retrieval reports figures the
/// create call, or an earlier retrieval, already counted.
fn track_stored(
    gateway: &Gateway,
    ctx: &RequestCtx,
    endpoint: Endpoint,
    status: u16,
    metered: &mut Metered,
) {
    let succeeded = (200..300).contains(&status);
    // Remembers `id`, created by this request's caller on its route.
    let remember = |id: &str, kept: Kept, pending: bool| {
        if let (Some(route), Some(caller)) = (ctx.route.as_ref(), ctx.caller.as_ref()) {
            let creator = Arc::new(Creator::new(caller, ctx.src_ip));
            let created_on = Arc::clone(&route.qualified);
            gateway
                .stored
                .remember(id, kept, created_on, creator, pending);
        }
    };
    match endpoint {
        Endpoint::Responses if succeeded => {
            let handle = ctx.meter.response_handle();
            if let Some(handle) = handle.filter(|h| h.store || h.background) {
                let pending = handle.background && metered.source != UsageSource::Provider;
                remember(&handle.id, Kept::Response, pending);
            }
        }
        Endpoint::StoredResponse(action) => {
            let Some(id) = ctx.stored_id.as_deref() else {
                return;
            };
            let finished = ctx.meter.shows_finished(metered);
            match action {
                StoredAction::Delete if succeeded => gateway.stored.forget(id),
                StoredAction::Retrieve | StoredAction::Cancel
                    if finished && !gateway.stored.claim(id) =>
                {
                    metered.tokens = TokenCounts::default();
                    metered.source = UsageSource::None;
                }
                _ => {}
            }
        }
        Endpoint::Conversation(action) if succeeded => match action {
            ConversationAction::Create => {
                if let Some(made) = ctx.meter.response_handle() {
                    remember(&made.id, Kept::Conversation, false);
                }
            }
            ConversationAction::Delete => {
                if let Some(id) = ctx.stored_id.as_deref() {
                    gateway.stored.forget(id);
                }
            }
            ConversationAction::Use => {}
        },
        _ => {}
    }
}

/// The request's event, borrowing from its context, its route and what it used.
fn build_event<'a>(
    gateway: &Gateway,
    ctx: &'a RequestCtx,
    endpoint: Endpoint,
    status: u16,
    metered: &'a Metered,
    trace_id: &'a str,
) -> RequestEvent<'a> {
    let labels = RouteLabels::of(ctx.route.as_ref());
    // What a request asked for is billed only when it was made.
    let media = MediaUse {
        asked: ctx.asked.as_ref().filter(|_| (200..300).contains(&status)),
        parts: metered.parts,
    };
    let cost = gateway.prices.cost(labels.model, &metered.tokens, media);
    let caller = ctx.caller.as_ref();
    RequestEvent {
        ts_ms: ctx.started_ms,
        request_id: &ctx.request_id,
        trace_id,
        span: ctx.trace.and_then(|t| t.span),
        provider_system: labels.provider_system,
        server_address: labels.server_address,
        identity: caller.map_or(UNIDENTIFIED, |c| &c.identity),
        login: caller.and_then(|c| c.login.as_deref()).unwrap_or_default(),
        tags: caller.map_or(&[], |c| &c.tags),
        node: caller.and_then(|c| c.node.as_deref()).unwrap_or_default(),
        src_ip: ctx.src_ip,
        provider: labels.provider,
        model: labels.model,
        response_model: metered.response_model.as_deref().unwrap_or_default(),
        endpoint: endpoint.label(),
        stream: ctx.stream || ctx.meter.is_streaming(),
        status,
        tokens: metered.tokens,
        cost_usd: cost.unwrap_or(0.0),
        priced: cost.is_some(),
        duration_ms: ctx.meter.elapsed_ms(),
        ttft_ms: ctx.meter.ttft_ms(),
        usage_source: metered.source,
        usage_missing_reason: metered.missing_reason,
        user_agent: &ctx.user_agent,
    }
}

/// Requests tailmeter answered itself without metering (model lists, whoami, unknown paths).
fn log_unmetered(ctx: &RequestCtx, status: u16) {
    tracing::debug!(
        target: crate::logging::ACCESS_TARGET,
        request_id = %ctx.request_id,
        identity = ctx.caller.as_ref().map_or(UNIDENTIFIED, |c| c.identity.as_str()),
        endpoint = ctx.endpoint.map_or("unknown", Endpoint::label),
        status,
        "local request"
    );
}
