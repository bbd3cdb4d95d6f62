//! The refusals tailmeter answers with, each worded so the caller's user can act on it: the
//! model asked for, the identity that asked, the reason, and what that caller may use instead.

use std::fmt::Write;
use std::net::IpAddr;

use pingora::{Error, ErrorSource, ErrorType};

use crate::api_error::{ApiError, ErrorFormat, ErrorKind};
use crate::budgets::{rfc3339, Standing};
use crate::endpoint::Endpoint;
use crate::gateway::Gateway;
use crate::identity::{Caller, Unresolved};
use crate::local;
use crate::routing::Route;
use crate::timeouts::upstream::UpstreamTimeout;

mod path;
pub mod stored;
pub use path::unknown_path;

/// At most this many alternatives are listed in a message.
const MAX_LISTED: usize = 20;
/// A client string quoted in a message is cut to this many characters.
const MAX_QUOTED: usize = 100;

/// The models `caller` may use on `endpoint` (or, when none, through the other API family),
/// as a sentence fragment.
fn alternatives(gateway: &Gateway, caller: &Caller, endpoint: Endpoint) -> String {
    let format = endpoint.error_format();
    let here = local::callable(gateway, caller, format);
    if !here.is_empty() {
        return format!("models you may use: {}", names(gateway, &here));
    }
    let (other_format, other_api) = match format {
        ErrorFormat::OpenAi => (
            ErrorFormat::Anthropic,
            "the Anthropic Messages API (/v1/messages)",
        ),
        ErrorFormat::Anthropic | ErrorFormat::Gemini | ErrorFormat::Bedrock => (
            ErrorFormat::OpenAi,
            "the OpenAI-style endpoints (/v1/chat/completions, /v1/responses, /v1/embeddings)",
        ),
    };
    let elsewhere = local::callable(gateway, caller, other_format);
    if elsewhere.is_empty() {
        "this identity is granted no models; ask the gateway's operator for a grant".to_owned()
    } else {
        format!(
            "this identity may use no models on this endpoint, but may use {} through {other_api}",
            names(gateway, &elsewhere)
        )
    }
}

/// Client names of `routes`, comma-separated, at most [`MAX_LISTED`] of them.
fn names(gateway: &Gateway, routes: &[&Route]) -> String {
    let mut out = String::new();
    for (i, route) in routes.iter().take(MAX_LISTED).enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(local::client_name(gateway, route));
    }
    if routes.len() > MAX_LISTED {
        let _ = write!(
            out,
            " and {} more (GET /v1/models)",
            routes.len() - MAX_LISTED
        );
    }
    out
}

/// A client-supplied string, shortened for quoting.
fn quoted(text: &str) -> String {
    match text.char_indices().nth(MAX_QUOTED) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// 503 while the gateway shuts down.
pub fn draining() -> ApiError {
    ApiError::new(
        ErrorKind::Unavailable,
        "shutting_down",
        "this tailmeter gateway is shutting down; retry shortly",
    )
}

/// 403 for a caller nothing identifies under `unknown = "reject"`; 503 when tailscaled could
/// not answer under `on_tailscaled_down = "reject"`.
pub fn unidentified(src: Option<IpAddr>, why: &Unresolved) -> ApiError {
    let src = src.map_or_else(|| "an unknown address".to_owned(), |ip| ip.to_string());
    match why {
        Unresolved::Unknown(tried) => ApiError::new(
            ErrorKind::PermissionDenied,
            "unidentified_caller",
            format!(
                "tailmeter could not identify the caller at {src} (identity __unidentified__): {tried}, and identity.unknown is \"reject\"; ask the gateway's operator to add an identity for this address"
            ),
        ),
        Unresolved::TailscaledDown(error) => ApiError::new(
            ErrorKind::Unavailable,
            "identity_unavailable",
            format!(
                "tailmeter could not identify the caller at {src} (identity __unidentified__): {error}; identity.on_tailscaled_down is \"reject\", so requests are refused until tailscaled answers; retry shortly"
            ),
        ),
    }
}

/// 400 for a body without a `model`.
pub fn missing_model(gateway: &Gateway, caller: &Caller, endpoint: Endpoint) -> ApiError {
    ApiError::new(
        ErrorKind::InvalidRequest,
        "missing_model",
        format!(
            "the request body names no \"model\" (absent or empty; identity {}): set the client's model to one the gateway serves; {}",
            caller.identity,
            alternatives(gateway, caller, endpoint)
        ),
    )
}

/// 404 for a model no provider is configured with.
pub fn unknown_model(
    gateway: &Gateway,
    caller: &Caller,
    endpoint: Endpoint,
    requested: &str,
) -> ApiError {
    // A model the request did not name: the one the endpoint defaults to.
    let defaulted = match endpoint.default_model() == Some(requested) {
        true => ", the model this endpoint uses when a request names none: list it in a provider's `models`",
        false => "",
    };
    ApiError::new(
        ErrorKind::NotFound,
        "model_not_found",
        format!(
            "model \"{}\" is not configured on this gateway{defaulted} (identity {}); {}",
            quoted(requested),
            caller.identity,
            alternatives(gateway, caller, endpoint)
        ),
    )
}

/// 404 for a model whose provider does not speak this endpoint's API.
pub fn wrong_api(
    gateway: &Gateway,
    caller: &Caller,
    endpoint: Endpoint,
    route: &Route,
) -> ApiError {
    ApiError::new(
        ErrorKind::NotFound,
        "model_not_on_endpoint",
        format!(
            "model \"{}\" is served by provider {} ({} API), which this endpoint ({}) cannot reach (identity {}); {}",
            route.qualified,
            route.upstream.name,
            route.upstream.kind.as_str(),
            endpoint.label(),
            caller.identity,
            alternatives(gateway, caller, endpoint)
        ),
    )
}

/// 403 for a model the caller is not granted.
pub fn not_granted(
    gateway: &Gateway,
    caller: &Caller,
    endpoint: Endpoint,
    route: &Route,
) -> ApiError {
    ApiError::new(
        ErrorKind::PermissionDenied,
        "model_not_granted",
        format!(
            "identity {} is not granted model \"{}\": {}; {}",
            caller.identity,
            route.qualified,
            gateway.access.sources(),
            alternatives(gateway, caller, endpoint)
        ),
    )
}

/// 429 for a caller whose `reject` budget is spent for the current window.
pub fn budget_exhausted(
    caller: &Caller,
    route: &Route,
    budget: &Standing,
    now_ms: u64,
) -> ApiError {
    let retry_after = budget.retry_after_s(now_ms);
    let mut refusal = ApiError::new(
        ErrorKind::BudgetExhausted,
        "budget_exhausted",
        format!(
            "identity {} may not use model \"{}\" now: budget \"{}\" ({}) is exhausted, {} of {} tokens used in the current {} window; it resets at {} (in {retry_after}s)",
            caller.identity,
            route.qualified,
            budget.name,
            budget.subject,
            budget.used,
            budget.limit,
            budget.window,
            rfc3339(budget.resets_at_ms),
        ),
    );
    refusal.retry_after = Some(retry_after);
    refusal
}

/// The answer for a proxying failure before any response header was sent; None when the client
/// itself is gone and nothing can be answered.
pub fn from_proxy_error(e: &Error, route: Option<&Route>) -> Option<ApiError> {
    let provider = route.map_or_else(
        || "the provider".to_owned(),
        |r| {
            format!(
                "provider {} ({})",
                r.upstream.name,
                r.upstream.base.authority()
            )
        },
    );
    // A refusal is only made before any response header reached the client.
    let timeout = route.and_then(|r| r.upstream.timed_out(e, false));
    if let Some(timeout) = timeout {
        let code = match timeout {
            UpstreamTimeout::FirstByte(_) => "upstream_first_byte_timeout",
            UpstreamTimeout::Idle(_) => "upstream_idle_timeout",
        };
        let message = format!("tailmeter got {timeout} from {provider}");
        return Some(ApiError::new(ErrorKind::GatewayTimeout, code, message));
    }
    let etype = e.etype();
    if *e.esource() == ErrorSource::Downstream
        && matches!(
            etype,
            ErrorType::ReadError | ErrorType::WriteError | ErrorType::ConnectionClosed
        )
    {
        return None;
    }
    // Connecting and TLS fail for reasons only the layer below knows (an untrusted certificate,
    // a server that does not speak TLS, a name that does not resolve): the caller gets that
    // reason. A timeout gets only the system's (a name server that did not answer): Pingora's
    // own words for it repeat the peer.
    let (kind, code, what, below): (_, _, _, Option<Reason>) = match etype {
        ErrorType::ConnectTimedout | ErrorType::TLSHandshakeTimedout => (
            ErrorKind::GatewayTimeout,
            "upstream_connect_timeout",
            "timed out connecting to",
            Some(system_reason),
        ),
        ErrorType::ReadTimedout | ErrorType::WriteTimedout => (
            ErrorKind::GatewayTimeout,
            "upstream_timeout",
            "timed out waiting for",
            None,
        ),
        ErrorType::ConnectRefused => (
            ErrorKind::BadGateway,
            "upstream_unreachable",
            "was refused a connection by",
            None,
        ),
        ErrorType::ConnectNoRoute | ErrorType::ConnectError | ErrorType::SocketError => (
            ErrorKind::BadGateway,
            "upstream_unreachable",
            "could not connect to",
            Some(reason_below),
        ),
        ErrorType::TLSHandshakeFailure | ErrorType::InvalidCert | ErrorType::HandshakeError => (
            ErrorKind::BadGateway,
            "upstream_tls_failed",
            "could not establish TLS with",
            Some(reason_below),
        ),
        ErrorType::HTTPStatus(413) => (
            ErrorKind::TooLarge,
            "request_too_large",
            "had the request refused as too large by",
            None,
        ),
        _ => (
            ErrorKind::BadGateway,
            "upstream_failed",
            "got no valid response from",
            None,
        ),
    };
    let mut message = format!("tailmeter {what} {provider}: {etype:?}");
    if let Some(reason) = below.and_then(|reason| reason(e)) {
        let _ = write!(message, " ({reason})");
    }
    Some(ApiError::new(kind, code, message))
}

/// Why a connect or TLS handshake failed, in the words of the layer that knows: the system's
/// (a name that does not resolve, an unreachable network), else the innermost cause Pingora put
/// in its context ("... cause: invalid peer certificate: UnknownIssuer, SNI: api.example.com").
fn reason_below(e: &Error) -> Option<String> {
    if let Some(reason) = system_reason(e) {
        return Some(reason);
    }
    let context = e.context.as_ref()?.as_str();
    let reason = context
        .rsplit_once("cause: ")
        .map_or(context, |(_, reason)| reason);
    Some(reason.trim().to_owned())
}

/// Finds the reason a failure had below Pingora, if any.
type Reason = fn(&Error) -> Option<String>;

/// The system's reason for a failure (an I/O error at its root), if it has one.
fn system_reason(e: &Error) -> Option<String> {
    let io = e.root_cause().downcast_ref::<std::io::Error>()?;
    Some(io.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_and_tls_failures_give_the_reason_from_below() {
        let tls = Error::explain(
            ErrorType::TLSHandshakeFailure,
            "TLS connect() failed:  TLSHandshakeFailure context: tls connect error cause: invalid peer certificate: UnknownIssuer, SNI: api.example.com",
        );
        let refusal = from_proxy_error(&tls, None).unwrap();
        assert_eq!(
            (refusal.status(), refusal.code),
            (502, "upstream_tls_failed")
        );
        assert_eq!(
            refusal.message,
            "tailmeter could not establish TLS with the provider: TLSHandshakeFailure (invalid peer certificate: UnknownIssuer, SNI: api.example.com)"
        );
        let unnamed = Error::explain(ErrorType::ConnectError, "no address resolved");
        let refusal = from_proxy_error(&unnamed, None).unwrap();
        assert!(refusal
            .message
            .ends_with("ConnectError (no address resolved)"));
        let lookup = std::io::Error::new(std::io::ErrorKind::NotFound, "Name or service not known");
        let unresolved = Error::because(ErrorType::ConnectNoRoute, "resolving provider p", lookup);
        let refusal = from_proxy_error(&unresolved, None).unwrap();
        assert!(refusal
            .message
            .ends_with("ConnectNoRoute (Name or service not known)"));
        let silent = std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "resolving api.example.com gave no answer within 1s",
        );
        let unanswered = Error::because(ErrorType::ConnectTimedout, "resolving provider p", silent);
        let refusal = from_proxy_error(&unanswered, None).unwrap();
        assert_eq!(
            (refusal.status(), refusal.code),
            (504, "upstream_connect_timeout")
        );
        assert!(refusal
            .message
            .ends_with("ConnectTimedout (resolving api.example.com gave no answer within 1s)"));
        let tcp = Error::explain(
            ErrorType::ConnectTimedout,
            "timeout 1s connecting to server addr: 192.0.2.1:443, scheme: HTTPS,",
        );
        let refusal = from_proxy_error(&tcp, None).unwrap();
        assert!(refusal.message.ends_with(": ConnectTimedout"));
        // A refused port says all there is to say; a response that failed says no more than its type.
        let refused = Error::explain(ErrorType::ConnectRefused, "local address 127.0.0.1:1");
        let refusal = from_proxy_error(&refused, None).unwrap();
        assert!(refusal.message.ends_with(": ConnectRefused"));
        let failed = Error::explain(ErrorType::InvalidHTTPHeader, "cause: the provider's bytes");
        let refusal = from_proxy_error(&failed, None).unwrap();
        assert!(refusal.message.ends_with(": InvalidHTTPHeader"));
    }
}
