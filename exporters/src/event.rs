//! The usage event: one per proxied request, carrying every column of the ClickHouse `requests`
//! table (see [`crate::row`] for its exact row shape) plus what its trace span needs.

use std::net::IpAddr;

use serde::Serialize;

/// The five token figures of the contract. `input` includes cached input, `output` includes
/// reasoning; `cache_read`, `cache_write` and `reasoning` are parts of those, never added on top.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TokenCounts {
    /// All input tokens, cached ones included.
    pub input: u64,
    /// All output tokens, reasoning included.
    pub output: u64,
    /// The part of `input` read from the provider's prompt cache.
    pub cache_read: u64,
    /// The part of `input` written to the provider's prompt cache.
    pub cache_write: u64,
    /// The part of `output` spent on reasoning.
    pub reasoning: u64,
}

impl TokenCounts {
    /// The figures with their `type` label values, in the contract's order.
    pub fn by_type(&self) -> [(&'static str, u64); 5] {
        [
            ("input", self.input),
            ("output", self.output),
            ("cache_read", self.cache_read),
            ("cache_write", self.cache_write),
            ("reasoning", self.reasoning),
        ]
    }
}

/// Where a request's token figures came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UsageSource {
    /// Reported by the provider, used exactly.
    Provider,
    /// Estimated from what passed through, because the provider's report did not arrive.
    Estimated,
    /// Nothing could be said (the request never reached a provider, or nothing came back).
    None,
}

impl UsageSource {
    /// The value stored in the `usage_source` column.
    pub fn as_str(&self) -> &'static str {
        match self {
            UsageSource::Provider => "provider",
            UsageSource::Estimated => "estimated",
            UsageSource::None => "none",
        }
    }
}

/// One request, as metered. Field names are the contract's column names. It borrows what it
/// reports from the request's context and configuration: it is built, counted, logged and
/// journaled on the request's own thread and dropped, so a request allocates nothing for it.
#[derive(Debug, Clone, Serialize)]
pub struct RequestEvent<'a> {
    /// Request start, milliseconds since the Unix epoch (UTC).
    pub ts_ms: u64,
    /// The id sent back to the client as `x-tailmeter-request-id`.
    pub request_id: &'a str,
    /// W3C trace id (32 lowercase hex digits) of the request's trace: continued from the client's
    /// `traceparent` or started here; empty when there is neither a client trace nor tracing.
    pub trace_id: &'a str,
    /// The ids of the request's own span, when one is to be exported.
    pub span: Option<SpanIds>,
    /// The caller's identity: a login, tags joined with `,`, `anonymous` or `__unidentified__`.
    pub identity: &'a str,
    /// The caller's login name, empty for tagged nodes.
    pub login: &'a str,
    /// The caller's tags, sorted.
    pub tags: &'a [String],
    /// The caller's node name, empty when unknown.
    pub node: &'a str,
    /// The caller's source address, when known.
    pub src_ip: Option<IpAddr>,
    /// The configured provider name, `__unknown__` when the request was not routed.
    pub provider: &'a str,
    /// The provider as the GenAI semantic conventions name it (`openai`, `anthropic`,
    /// `gcp.gemini`, `aws.bedrock`, or the configured name of an OpenAI-compatible one).
    pub provider_system: &'a str,
    /// Host of the provider's API, empty when the request was not routed.
    pub server_address: &'a str,
    /// The configured model name, `__unknown__` when the client's model is not configured.
    pub model: &'a str,
    /// The model the provider said it used, empty when it did not say.
    pub response_model: &'a str,
    /// The endpoint label (`chat_completions`, `messages`, …).
    pub endpoint: &'a str,
    /// Whether the response was streamed.
    pub stream: bool,
    /// The HTTP status sent to the client (0 when none could be sent).
    pub status: u16,
    /// Token figures.
    pub tokens: TokenCounts,
    /// Cost in USD from the configured prices.
    pub cost_usd: f64,
    /// Whether the model has a configured price.
    pub priced: bool,
    /// Wall time from request start to the end of the response.
    pub duration_ms: f64,
    /// Time from request start to the first response body byte, when one arrived.
    pub ttft_ms: Option<f64>,
    /// Where the token figures came from.
    pub usage_source: UsageSource,
    /// Why the provider's usage is missing, when it is (`client_disconnect`, `upstream_error`, …).
    pub usage_missing_reason: Option<&'static str>,
    /// The client's `User-Agent`.
    pub user_agent: &'a str,
}

/// The missing-usage reason of an image or audio answer its model bills other than in tokens
/// (per image, minute or character) or sends as audio alone: nothing went wrong.
pub const NO_TOKEN_USAGE: &str = "no_token_usage";

/// The ids of one request's span: its trace, its own id (sent upstream as the parent in
/// `traceparent`) and the client's span it continues, when the client sent one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SpanIds {
    /// W3C trace id.
    pub trace_id: [u8; 16],
    /// This request's span id.
    pub span_id: [u8; 8],
    /// The client's span, from its `traceparent`.
    pub parent_span_id: Option<[u8; 8]>,
}

/// A typical event, for tests.
#[cfg(test)]
pub(crate) fn sample(request_id: &str) -> RequestEvent<'_> {
    use std::net::Ipv4Addr;
    use std::sync::LazyLock;
    static TAGS: LazyLock<[String; 2]> =
        LazyLock::new(|| ["tag:ci".to_owned(), "tag:k8s".to_owned()]);
    RequestEvent {
        ts_ms: 1_714_558_272_345,
        request_id,
        trace_id: "4bf92f3577b34da6a3ce929d0e0e4736",
        span: None,
        identity: "tag:ci,tag:k8s",
        login: "",
        tags: &*TAGS,
        node: "runner-1",
        src_ip: Some(IpAddr::V4(Ipv4Addr::new(100, 64, 0, 7))),
        provider: "openai",
        provider_system: "openai",
        server_address: "api.openai.com",
        model: "gpt-4o",
        response_model: "gpt-4o-2024-08-06",
        endpoint: "chat_completions",
        stream: true,
        status: 200,
        tokens: TokenCounts {
            input: 120,
            output: 30,
            cache_read: 100,
            cache_write: 0,
            reasoning: 10,
        },
        cost_usd: 0.000_5,
        priced: true,
        duration_ms: 812.345_678,
        ttft_ms: None,
        usage_source: UsageSource::Provider,
        usage_missing_reason: None,
        user_agent: "OpenAI/Python 2.1",
    }
}
