//! The endpoints tailmeter answers itself: `GET /v1/models` (in OpenAI's list shape, or
//! Anthropic's when the client sends `anthropic-version`) and `GET /tailmeter/whoami`. Both list
//! models through [`Access::check`](crate::access::Access::check), the same decision routing makes.

use serde_json::{json, Value};

use crate::api_error::ErrorFormat;
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
    let probe = match format {
        ErrorFormat::OpenAi => Endpoint::ChatCompletions,
        ErrorFormat::Anthropic => Endpoint::Messages,
    };
    gateway
        .access
        .granted(caller, gateway.routes.all())
        .into_iter()
        .filter(|route| probe.served_by(route.upstream.kind))
        .collect()
}

/// The `GET /v1/models` body.
pub fn list_models(gateway: &Gateway, caller: &Caller, format: ErrorFormat) -> Value {
    let routes = callable(gateway, caller, format);
    match format {
        ErrorFormat::OpenAi => json!({
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

/// The `GET /tailmeter/whoami` body: who the caller is and what it may use, and why.
pub fn whoami(gateway: &Gateway, caller: &Caller, src_ip: &str) -> Value {
    let models: Vec<Value> = gateway
        .routes
        .all()
        .iter()
        .map(|route| {
            let allowed = gateway.access.check(caller, route);
            json!({
                "model": client_name(gateway, route),
                "provider": route.upstream.name,
                "qualified": route.qualified.as_ref(),
                "granted": allowed.is_some(),
                "grant": allowed.map(|a| a.describe()),
            })
        })
        .collect();
    json!({
        "identity": caller.identity,
        "login": caller.login,
        "tags": caller.tags,
        "node": caller.node,
        "src_ip": src_ip,
        "models": models,
        "budgets": [],
    })
}
