//! A proxied request made ready for its provider in `request_filter`: its body read whole and
//! checked, its model resolved to a route the caller may use within budget, and the body the
//! provider gets (the bare model name, `include_usage` asked for) set aside with the meter
//! armed for the dialect. Anything wrong is an [`ApiError`] for the caller.

use std::sync::Arc;

use pingora::proxy::Session;

use super::{InflightGuard, RequestCtx};
use crate::api_error::ApiError;
use crate::endpoint::Endpoint;
use crate::identity::Caller;
use crate::refusal;

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
