//! The one record of a request: built once, when it is over (as its last bytes pass, or in the
//! `logging` phase), from its context and what it used; counted in the metrics, written as the
//! access-log line, and handed to the exporters (usage row and span) without waiting.
//!
//! A request that creates, retrieves or deletes a stored response also keeps the directory of
//! stored responses ([`crate::stored`]) up to date, which decides whether a retrieved
//! background response's usage is this request's to count.

use tailmeter_exporters::{RequestEvent, TokenCounts, UsageSource};

use super::RequestCtx;
use crate::endpoint::{Endpoint, StoredAction};
use crate::gateway::Gateway;
use crate::identity::UNIDENTIFIED;
use crate::meter::Metered;
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
    gateway.metrics.record(&event);
    if let Some(caller) = ctx.caller.as_ref() {
        let tokens = event.tokens.input.saturating_add(event.tokens.output);
        gateway
            .budgets
            .add(caller, tokens, crate::budgets::now_ms());
    }
    crate::logging::access::write(&event);
    gateway.exporters.export(&event);
}

/// Remembers a response created stored or in the background, forgets a deleted one, and keeps
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
    match endpoint {
        Endpoint::Responses if succeeded => {
            let handle = ctx.meter.response_handle();
            let (Some(handle), Some(route), Some(caller)) =
                (handle, ctx.route.as_ref(), ctx.caller.as_ref())
            else {
                return;
            };
            if handle.store || handle.background {
                let pending = handle.background && metered.source != UsageSource::Provider;
                let owner = caller.identity.as_str().into();
                let created_on = std::sync::Arc::clone(&route.qualified);
                gateway
                    .stored
                    .remember(&handle.id, created_on, owner, pending);
            }
        }
        Endpoint::StoredResponse(action) => {
            let Some(id) = ctx.stored_id.as_deref() else {
                return;
            };
            match action {
                StoredAction::Delete if succeeded => gateway.stored.forget(id),
                StoredAction::Retrieve | StoredAction::Cancel
                    if metered.source == UsageSource::Provider && !gateway.stored.claim(id) =>
                {
                    metered.tokens = TokenCounts::default();
                    metered.source = UsageSource::None;
                }
                _ => {}
            }
        }
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
    let route = ctx.route.as_ref();
    let (provider, model) = route.map_or((UNKNOWN, UNKNOWN), |route| {
        (route.upstream.name.as_str(), &*route.model)
    });
    let cost = gateway.prices.cost(model, &metered.tokens);
    let caller = ctx.caller.as_ref();
    RequestEvent {
        ts_ms: ctx.started_ms,
        request_id: &ctx.request_id,
        trace_id,
        span: ctx.trace.and_then(|t| t.span),
        provider_system: route.map_or(UNKNOWN, |route| genai_provider_name(&route.upstream)),
        server_address: route.map_or("", |route| &route.upstream.base.host),
        identity: caller.map_or(UNIDENTIFIED, |c| &c.identity),
        login: caller.and_then(|c| c.login.as_deref()).unwrap_or_default(),
        tags: caller.map_or(&[], |c| &c.tags),
        node: caller.and_then(|c| c.node.as_deref()).unwrap_or_default(),
        src_ip: ctx.src_ip,
        provider,
        model,
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
