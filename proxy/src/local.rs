//! The endpoints tailmeter answers itself: `GET /v1/models` (in OpenAI's list shape, or
//! Anthropic's when the client sends `anthropic-version`, Gemini's when it sends
//! `x-goog-api-key`), `GET /v1beta/models` (Gemini's) and `GET /tailmeter/whoami`. Both list
//! models through [`Access::check`](crate::access::Access::check), the same decision routing makes.

use serde_json::{json, Value};

use crate::api_error::ErrorFormat;
use crate::budgets::{now_ms, rfc3339};
use crate::config::OnExceed;
use crate::endpoint::Endpoint;
use crate::gateway::Gateway;
use crate::identity::Caller;
use crate::routing::Route;

/// The name a client should use for `route`: the bare model name when that resolves to this
/// route, else `provider/model`.
pub fn client_name<'r>(gateway: &Gateway, route: &'r Route) -> &'r str {
    match gateway.routes.resolve(&route.model) {
        Some(bare) if bare.qualified == route.qualified => &route.model,
        _ => &route.qualified,
    }
}

/// The models `caller` may call through an endpoint of `format`'s family.
pub fn callable<'g>(gateway: &'g Gateway, caller: &Caller, format: ErrorFormat) -> Vec<&'g Route> {
    let probe = probe(format);
    gateway
        .access
        .granted(caller, gateway.routes.all())
        .into_iter()
        .filter(|route| probe.served_by(route.upstream.kind))
        .collect()
}

/// An endpoint of `format`'s API family: whether it serves a provider's kind stands for all.
fn probe(format: ErrorFormat) -> Endpoint {
    match format {
        ErrorFormat::OpenAi => Endpoint::ChatCompletions,
        ErrorFormat::Anthropic => Endpoint::Messages,
        ErrorFormat::Gemini => Endpoint::GenerateContent,
        ErrorFormat::Bedrock => Endpoint::Converse,
    }
}

/// The `GET /v1/models` (or `/v1beta/models`) body: the models the caller may call through
/// `format`'s API, in that API's list shape.
pub fn list_models(gateway: &Gateway, caller: &Caller, format: ErrorFormat) -> Value {
    let routes = callable(gateway, caller, format);
    match format {
        ErrorFormat::Gemini => json!({
            "models": routes.iter().map(|route| {
                let id = client_name(gateway, route);
                json!({
                    "name": format!("models/{id}"),
                    "displayName": id,
                    "supportedGenerationMethods": ["generateContent", "countTokens"],
                })
            }).collect::<Vec<_>>(),
        }),
        ErrorFormat::OpenAi | ErrorFormat::Bedrock => json!({
            "object": "list",
            "data": routes.iter().map(|route| json!({
                "id": client_name(gateway, route),
                "object": "model",
                "created": 0,
                "owned_by": route.upstream.name,
            })).collect::<Vec<_>>(),
        }),
        ErrorFormat::Anthropic => {
            let data: Vec<Value> = routes
                .iter()
                .map(|route| {
                    let id = client_name(gateway, route);
                    json!({
                        "type": "model",
                        "id": id,
                        "display_name": id,
                        "created_at": "1970-01-01T00:00:00Z",
                    })
                })
                .collect();
            json!({
                "first_id": data.first().map(|m| m["id"].clone()),
                "last_id": data.last().map(|m| m["id"].clone()),
                "has_more": false,
                "data": data,
            })
        }
    }
}

/// The `GET /tailmeter/whoami` body: who the caller is, every configured model with whether it
/// is granted, by what, and through which endpoints it is called, and each budget that applies
/// with its use.
pub fn whoami(gateway: &Gateway, caller: &Caller, src_ip: &str) -> Value {
    let models: Vec<Value> = gateway
        .routes
        .all()
        .iter()
        .map(|route| {
            let allowed = gateway.access.check(caller, route);
            let families = [
                ErrorFormat::OpenAi,
                ErrorFormat::Anthropic,
                ErrorFormat::Gemini,
                ErrorFormat::Bedrock,
            ];
            let endpoints: Vec<&str> = families
                .into_iter()
                .filter(|&format| probe(format).served_by(route.upstream.kind))
                .flat_map(|format| match format {
                    ErrorFormat::OpenAi => {
                        &["/v1/chat/completions", "/v1/responses", "/v1/embeddings"][..]
                    }
                    ErrorFormat::Anthropic => &["/v1/messages"][..],
                    ErrorFormat::Gemini => &[
                        "/v1beta/models/{model}:generateContent",
                        "/v1beta/models/{model}:streamGenerateContent",
                    ][..],
                    ErrorFormat::Bedrock => &[
                        "/model/{model}/converse",
                        "/model/{model}/converse-stream",
                        "/model/{model}/invoke",
                        "/model/{model}/invoke-with-response-stream",
                    ][..],
                })
                .copied()
                .collect();
            json!({
                "model": client_name(gateway, route),
                "provider": route.upstream.name,
                "qualified": route.qualified.as_ref(),
                "api": route.upstream.kind.as_str(),
                "granted": allowed.is_some(),
                "grant": allowed.map(|a| gateway.access.describe(a)),
                "endpoints": endpoints,
            })
        })
        .collect();
    let now = now_ms();
    let budgets: Vec<Value> = gateway
        .budgets
        .standings(caller, now)
        .iter()
        .map(|b| {
            json!({
                "name": b.name,
                "subject": b.subject,
                "tokens": b.limit,
                "used": b.used,
                "remaining": b.limit.saturating_sub(b.used),
                "window": b.window,
                "on_exceed": match b.on_exceed {
                    OnExceed::Alert => "alert",
                    OnExceed::Reject => "reject",
                },
                "exhausted": b.exhausted(),
                "resets_at": rfc3339(b.resets_at_ms),
                "resets_in_s": b.retry_after_s(now),
            })
        })
        .collect();
    json!({
        "identity": caller.identity,
        "login": caller.login,
        "display_name": caller.display_name,
        "tags": caller.tags,
        "node": caller.node,
        "node_id": caller.node_id,
        "src_ip": src_ip,
        "capability_models": caller.capability_models,
        "models": models,
        "budgets": budgets,
    })
}
