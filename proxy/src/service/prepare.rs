//! A proxied request made ready for its provider in `request_filter`: its body read whole and
//! checked, its model resolved to a route the caller may use within budget, and the body the
//! provider gets (the bare model name, `include_usage` asked for) set aside with the meter
//! armed for the dialect. A request for a stored response or a conversation is routed by its id
//! instead, and only its creator may use it, or continue it (`previous_response_id`,
//! `conversation`).
//! Anything wrong is an [`ApiError`] for the caller.

use std::sync::Arc;

use pingora::proxy::Session;

use super::record::UNKNOWN;
use super::{InflightGuard, RequestCtx};
use crate::api_error::ApiError;
use crate::config::ProviderKind;
use crate::endpoint::{Endpoint, ModelAt};
use crate::gateway::Gateway;
use crate::identity::Caller;
use crate::pricing::Asked;
use crate::refusal;
use crate::routing::Route;
use crate::stored::{Kept, Lookup};
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
    let forms = endpoint.takes_form();
    let read = crate::body::read_whole_body(session, limit, timeout, forms).await?;
    let body = read.bytes;
    let boundary = read.form_boundary.as_deref();
    let model_at = endpoint.model_at();
    let fields = match model_at == ModelAt::Query && body.is_empty() {
        true => crate::body::RequestFields::none(),
        false => crate::body::parse_read(&body, read.scan, boundary)?,
    };
    let uri = &session.req_header().uri;
    let outside_body = match model_at {
        ModelAt::Path => Endpoint::path_model(uri.path()),
        ModelAt::Query => uri.query().and_then(Endpoint::query_model),
        ModelAt::Body => None,
    };
    let named = match model_at {
        ModelAt::Body => fields.model.as_deref().or(endpoint.default_model()),
        ModelAt::Path | ModelAt::Query => outside_body.as_deref(),
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
    // A call continuing another identity's stored response or conversation would show it
    // what that identity said.
    let continued = [
        (Kept::Response, fields.previous_response_id.as_deref()),
        (Kept::Conversation, fields.conversation.as_deref()),
    ];
    for (kept, id) in continued {
        if let Some(id) = id {
            if gateway.stored.find(id, &caller.identity) == Lookup::NotYours {
                return Err(refusal::stored::not_yours(caller, kept, id));
            }
        }
    }
    let now_ms = crate::budgets::now_ms();
    if let Err(budget) = gateway.budgets.check(caller, now_ms) {
        return Err(refusal::budget_exhausted(caller, route, &budget, now_ms));
    }
    // The provider gets the bare model where the client named it (`provider/model`). The
    // body's edits are made together in one copy (a streamed chat also asks for its usage);
    // every `model=` of a query names the model routed and granted, whatever the client sent.
    let mut edits = Vec::new();
    match model_at {
        ModelAt::Path => ctx.upstream_path = Endpoint::path_with_model(uri.path(), &route.model),
        ModelAt::Query => {
            let query = uri.query();
            ctx.upstream_query = query.map(|q| Endpoint::query_with_model(q, &route.model));
        }
        ModelAt::Body if requested != &*route.model => {
            edits.extend(fields.model_edit(&route.model));
        }
        ModelAt::Body => {}
    }
    ctx.stream = fields.stream == Some(true) || endpoint.always_streams();
    if endpoint.asks_for_stream_usage() && ctx.stream {
        if let Some(ask) = crate::usage::openai_chat::include_usage_edit(&body, &fields) {
            edits.push(ask);
            ctx.strip_injected_usage = true;
        }
    }
    let upstream_body = crate::body::edited(&body, &mut edits);
    ctx.asked = Asked::read(endpoint, &body, boundary);
    if let Some(dialect) = endpoint.dialect() {
        ctx.meter
            .expect_usage(dialect, route.model.clone(), upstream_body.clone());
    }
    ctx.upstream_body = Some(upstream_body);
    ctx._inflight = Some(InflightGuard::new(&gateway.metrics.inflight));
    Ok(())
}

/// Reads a request for a stored response or a conversation (named by id in the path, with no
/// model) and routes it to where it was created, for its creator only; one tailmeter has no
/// record of, or a conversation to create, goes to the one OpenAI provider the caller may use,
/// if there is just one ([`crate::stored`]). No budget is checked: nothing new is generated.
pub(super) async fn by_id(
    session: &mut Session,
    ctx: &mut RequestCtx,
    endpoint: Endpoint,
    caller: &Caller,
) -> std::result::Result<(), ApiError> {
    let gateway = Arc::clone(&ctx.gateway);
    let path = session.req_header().uri.path();
    let (kept, id) = match endpoint {
        Endpoint::Conversation(_) => (Kept::Conversation, Endpoint::conversation_id(path)),
        _ => (Kept::Response, Endpoint::stored_response_id(path)),
    };
    let found = id.map(|id| (id, gateway.stored.find(id, &caller.identity)));
    let (route, recorded) = match found {
        Some((id, Lookup::Found(created_on))) => {
            let route = created_route(&gateway, &created_on);
            let gone = || refusal::stored::route_gone(kept, id, &created_on);
            (route.ok_or_else(gone)?, true)
        }
        Some((id, Lookup::NotYours)) => return Err(refusal::stored::not_yours(caller, kept, id)),
        _ => (
            unrecorded_route(&gateway, caller, endpoint, kept, id)?,
            false,
        ),
    };
    let id = id.map(str::to_owned);
    ctx.route = Some(route.clone());
    // An unrecorded route is one the caller is granted a model of already.
    if recorded && !may_use(&gateway, caller, &route) {
        return Err(refusal::not_granted(&gateway, caller, endpoint, &route));
    }
    let (limit, timeout) = (gateway.max_request_body, gateway.client_body_timeout);
    let body = crate::body::read_whole_body(session, limit, timeout, false).await?;
    if let Some(dialect) = endpoint.dialect() {
        ctx.meter
            .expect_reported_usage(dialect, route.model.clone());
    }
    ctx.stored_id = id;
    ctx.upstream_body = Some(body.bytes);
    ctx._inflight = Some(InflightGuard::new(&gateway.metrics.inflight));
    Ok(())
}

/// The route a response or conversation was created on (`provider/model`), as configured now:
/// a conversation's names no model (`provider/__unknown__`), only its provider.
fn created_route(gateway: &Gateway, created_on: &str) -> Option<Route> {
    if let Some(route) = gateway.routes.resolve(created_on) {
        return Some(route.clone());
    }
    let provider = created_on.strip_suffix(UNKNOWN)?.strip_suffix('/')?;
    let mut upstreams = gateway.routes.all().iter().map(|route| &route.upstream);
    upstreams
        .find(|upstream| upstream.name == provider)
        .map(provider_route)
}

/// Whether `caller` may still use `route`: its model, or for a provider's route (`__unknown__`)
/// any model of that provider.
fn may_use(gateway: &Gateway, caller: &Caller, route: &Route) -> bool {
    if &*route.model != UNKNOWN {
        return gateway.access.check(caller, route).is_some();
    }
    let routes = gateway.routes.all().iter();
    routes
        .filter(|r| r.upstream.name == route.upstream.name)
        .any(|r| gateway.access.check(caller, r).is_some())
}

/// The route for a response or conversation tailmeter has no record of (`id`), or for a
/// conversation to create (no `id`): the one OpenAI provider (or, without one, the one
/// OpenAI-compatible provider) among those the caller is granted a model of, under the model
/// `__unknown__`.
fn unrecorded_route(
    gateway: &Gateway,
    caller: &Caller,
    endpoint: Endpoint,
    kept: Kept,
    id: Option<&str>,
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
            return Err(refusal::stored::unplaced(caller, kept, id, &names));
        }
    };
    Ok(provider_route(chosen))
}

/// A route to `upstream` for no model in particular (`provider/__unknown__`).
fn provider_route(upstream: &Arc<Upstream>) -> Route {
    Route {
        upstream: Arc::clone(upstream),
        model: UNKNOWN.into(),
        qualified: format!("{}/{UNKNOWN}", upstream.name).into(),
    }
}
