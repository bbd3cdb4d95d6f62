//! A proxied request made ready for its provider in `request_filter`: its body read whole and
//! checked, its model resolved to a route the caller may use within budget, and the body the
//! provider gets (the bare model name, `include_usage` asked for) set aside with the meter
//! armed for the dialect. A request for a stored response is routed by its id instead, and only
//! its creator may use it, or continue it (`previous_response_id`).
//! Anything wrong is an [`ApiError`] for the caller.

use std::sync::Arc;

use pingora::proxy::Session;

use super::record::UNKNOWN;
use super::{InflightGuard, RequestCtx};
use crate::api_error::ApiError;
use crate::config::ProviderKind;
use crate::endpoint::Endpoint;
use crate::gateway::Gateway;
use crate::identity::Caller;
use crate::refusal;
use crate::routing::Route;
use crate::stored::Lookup;
use crate::upstream::Upstream;

/// Reads and checks the request for a proxied endpoint and chooses its route.
pub(super) async fn upstream_request(
    session: &mut Session,
    ctx: &mut RequestCtx,
    endpoint: Endpoint,
    caller: &Caller,
) -> std::result::Result<(), ApiError> {
    let gateway = Arc::clone(&ctx.gateway);
    let gateway = &gateway;
    let (limit, timeout) = (gateway.max_request_body, gateway.client_body_timeout);
    let crate::body::ReadBody { bytes: body, scan } =
        crate::body::read_whole_body(session, limit, timeout).await?;
    let fields = crate::body::parse_scanned(&body, scan)?;
    // Gemini and Bedrock name the model in the path, the others in the body.
    let path_model = endpoint
        .model_in_path()
        .then(|| Endpoint::path_model(session.req_header().uri.path()))
        .flatten();
    let named = match endpoint.model_in_path() {
        true => path_model.as_deref(),
        false => fields.model.as_deref(),
    };
    // An empty name is what an app with an empty model setting sends: missing, not unknown.
    let Some(requested) = named.filter(|m| !m.trim().is_empty()) else {
        return Err(refusal::missing_model(gateway, caller, endpoint));
    };
    let route = gateway
        .routes
        .resolve(requested)
        .ok_or_else(|| refusal::unknown_model(gateway, caller, endpoint, requested))?;
    // Known from here on, so even a refusal is labelled with the configured model.
    ctx.route = Some(route.clone());
    if !endpoint.served_by(route.upstream.kind) {
        return Err(refusal::wrong_api(gateway, caller, endpoint, route));
    }
    if gateway.access.check(caller, route).is_none() {
        return Err(refusal::not_granted(gateway, caller, endpoint, route));
    }
    // A call continuing another identity's stored response would show it that conversation.
    if let Some(previous) = fields.previous_response_id.as_deref() {
        if gateway.stored.find(previous, &caller.identity) == Lookup::NotYours {
            return Err(refusal::stored::not_yours(caller, previous));
        }
    }
    let now_ms = crate::budgets::now_ms();
    if let Err(budget) = gateway.budgets.check(caller, now_ms) {
        return Err(refusal::budget_exhausted(caller, route, &budget, now_ms));
    }
    if endpoint.model_in_path() {
        let path = session.req_header().uri.path();
        ctx.upstream_path = Endpoint::path_with_model(path, &route.model);
    }
    // The body's edits, made together in one copy: a body naming another spelling of the model
    // (`provider/model`) names the bare one; a streamed chat asks for its usage.
    let mut edits = Vec::new();
    let rename_at = fields
        .model_at
        .clone()
        .filter(|_| !endpoint.model_in_path() && requested != &*route.model);
    if let Some(at) = rename_at {
        edits.push(crate::body::model_edit(at, &route.model));
    }
    ctx.stream = fields.stream == Some(true) || endpoint.always_streams();
    if endpoint == Endpoint::ChatCompletions && ctx.stream {
        if let Some(ask) = crate::usage::openai_chat::include_usage_edit(&body, &fields) {
            edits.push(ask);
            ctx.strip_injected_usage = true;
        }
    }
    let upstream_body = crate::body::edited(&body, &mut edits);
    if let Some(dialect) = endpoint.dialect() {
        ctx.meter
            .expect_usage(dialect, route.model.clone(), upstream_body.clone());
    }
    ctx.upstream_body = Some(upstream_body);
    ctx._inflight = Some(InflightGuard::new(&gateway.metrics.inflight));
    Ok(())
}

/// Reads a request for a stored response (named by id in the path, with no model) and routes it
/// to where the response was created, for its creator only; a response tailmeter has no record
/// of goes to the one OpenAI provider the caller may use, if there is just one
/// ([`crate::stored`]). No budget is checked: nothing new is generated.
pub(super) async fn stored_response(
    session: &mut Session,
    ctx: &mut RequestCtx,
    endpoint: Endpoint,
    caller: &Caller,
) -> std::result::Result<(), ApiError> {
    let gateway = Arc::clone(&ctx.gateway);
    let path = session.req_header().uri.path();
    let id = Endpoint::stored_response_id(path)
        .unwrap_or_default()
        .to_owned();
    let (route, recorded) = match gateway.stored.find(&id, &caller.identity) {
        Lookup::Found(created_on) => {
            let route = gateway.routes.resolve(&created_on).cloned();
            let route = route.ok_or_else(|| refusal::stored::route_gone(&id, &created_on))?;
            (route, true)
        }
        Lookup::NotYours => return Err(refusal::stored::not_yours(caller, &id)),
        Lookup::Unknown => (unrecorded_route(&gateway, caller, endpoint, &id)?, false),
    };
    ctx.route = Some(route.clone());
    // An unrecorded response's route is one the caller is granted a model of already.
    if recorded && gateway.access.check(caller, &route).is_none() {
        return Err(refusal::not_granted(&gateway, caller, endpoint, &route));
    }
    let (limit, timeout) = (gateway.max_request_body, gateway.client_body_timeout);
    let body = crate::body::read_whole_body(session, limit, timeout).await?;
    if let Some(dialect) = endpoint.dialect() {
        ctx.meter
            .expect_reported_usage(dialect, route.model.clone());
    }
    ctx.stored_id = Some(id);
    ctx.upstream_body = Some(body.bytes);
    ctx._inflight = Some(InflightGuard::new(&gateway.metrics.inflight));
    Ok(())
}

/// The route for a response tailmeter has no record of: the one OpenAI provider (or, without
/// one, the one OpenAI-compatible provider) among those the caller is granted a model of,
/// under the model `__unknown__`.
fn unrecorded_route(
    gateway: &Gateway,
    caller: &Caller,
    endpoint: Endpoint,
    id: &str,
) -> std::result::Result<Route, ApiError> {
    let mut providers: Vec<&Arc<Upstream>> = Vec::new();
    for route in gateway.access.granted(caller, gateway.routes.all()) {
        let upstream = &route.upstream;
        if endpoint.served_by(upstream.kind) && !providers.iter().any(|p| p.name == upstream.name) {
            providers.push(upstream);
        }
    }
    let openai: Vec<&Arc<Upstream>> = providers
        .iter()
        .copied()
        .filter(|p| p.kind == ProviderKind::OpenAi)
        .collect();
    let chosen = match (openai.as_slice(), providers.as_slice()) {
        ([only], _) | ([], [only]) => *only,
        _ => {
            let names: Vec<&str> = providers.iter().map(|p| p.name.as_str()).collect();
            return Err(refusal::stored::unplaced(caller, id, &names));
        }
    };
    Ok(Route {
        upstream: Arc::clone(chosen),
        model: UNKNOWN.into(),
        qualified: format!("{}/{UNKNOWN}", chosen.name).into(),
    })
}
