//! One finished request as an OpenTelemetry span, following the GenAI semantic conventions:
//! named `{gen_ai.operation.name} {gen_ai.request.model}`, kind CLIENT, with the token usage,
//! the provider, `error.type` when it failed, and the caller's identity and tags.
//!
//! The span is assembled after the fact, in the logging phase, with the request's real start
//! and end times, so no OpenTelemetry object lives across the request's awaits.

use std::borrow::Cow;
use std::time::{Duration, UNIX_EPOCH};

use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{Array, InstrumentationScope, KeyValue, StringValue, Value};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};

use crate::event::{RequestEvent, SpanIds, NO_TOKEN_USAGE};

/// `gen_ai.operation.name` of an endpoint label.
pub fn operation_name(endpoint: &str) -> &'static str {
    match endpoint {
        "embeddings" => "embeddings",
        // Images and audio: content other than text, generated.
        "generate_content" | "images" | "audio" => "generate_content",
        "completions" => "text_completion",
        _ => "chat",
    }
}

/// Reasons for missing usage that are not failures of the request itself.
const NOT_FAILURES: [&str; 3] = ["not_reported", NO_TOKEN_USAGE, "oversized"];

/// `error.type`: the HTTP status of a failed answer, or why the answer broke off
/// (`client_disconnect`, `upstream_reset`, `upstream_idle_timeout`, `shutdown`, …).
pub fn error_type(event: &RequestEvent<'_>) -> Option<String> {
    if event.status >= 400 {
        return Some(event.status.to_string());
    }
    match event.usage_missing_reason {
        Some(reason) if !NOT_FAILURES.contains(&reason) => Some(reason.to_owned()),
        _ if event.status == 0 => Some("_OTHER".to_owned()),
        _ => None,
    }
}

/// The span of `event`, with the ids the proxy chose (and sent upstream).
pub fn span_data(
    event: &RequestEvent<'_>,
    ids: &SpanIds,
    scope: &InstrumentationScope,
) -> SpanData {
    let operation = operation_name(event.endpoint);
    let start = UNIX_EPOCH + Duration::from_millis(event.ts_ms);
    let end = start + Duration::from_secs_f64(event.duration_ms.max(0.0) / 1000.0);
    let error = error_type(event);
    let status = match &error {
        Some(kind) => Status::error(kind.clone()),
        None => Status::Unset,
    };
    SpanData {
        span_context: SpanContext::new(
            TraceId::from_bytes(ids.trace_id),
            SpanId::from_bytes(ids.span_id),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        ),
        parent_span_id: ids
            .parent_span_id
            .map_or(SpanId::INVALID, SpanId::from_bytes),
        parent_span_is_remote: ids.parent_span_id.is_some(),
        span_kind: SpanKind::Client,
        name: Cow::Owned(format!("{operation} {}", event.model)),
        start_time: start,
        end_time: end,
        attributes: attributes(event, operation, error),
        dropped_attributes_count: 0,
        events: SpanEvents::default(),
        links: SpanLinks::default(),
        status,
        instrumentation_scope: scope.clone(),
    }
}

fn attributes(
    event: &RequestEvent<'_>,
    operation: &'static str,
    error: Option<String>,
) -> Vec<KeyValue> {
    let tokens = &event.tokens;
    let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    let mut kv = vec![
        KeyValue::new("gen_ai.operation.name", operation),
        KeyValue::new("gen_ai.provider.name", event.provider_system.to_owned()),
        KeyValue::new("gen_ai.request.model", event.model.to_owned()),
        KeyValue::new("gen_ai.usage.input_tokens", count(tokens.input)),
        KeyValue::new("gen_ai.usage.output_tokens", count(tokens.output)),
        KeyValue::new(
            "gen_ai.usage.cache_read.input_tokens",
            count(tokens.cache_read),
        ),
        KeyValue::new(
            "gen_ai.usage.cache_creation.input_tokens",
            count(tokens.cache_write),
        ),
        KeyValue::new("tailmeter.usage.reasoning_tokens", count(tokens.reasoning)),
        KeyValue::new("tailmeter.usage_source", event.usage_source.as_str()),
        KeyValue::new("tailmeter.cost_usd", event.cost_usd),
        KeyValue::new("tailmeter.request_id", event.request_id.to_owned()),
        KeyValue::new("tailmeter.provider", event.provider.to_owned()),
        KeyValue::new("tailmeter.endpoint", event.endpoint.to_owned()),
        KeyValue::new("tailmeter.stream", event.stream),
        KeyValue::new("tailmeter.identity", event.identity.to_owned()),
        KeyValue::new("http.response.status_code", i64::from(event.status)),
    ];
    let src_ip = event.src_ip.map(|ip| ip.to_string()).unwrap_or_default();
    let optional = [
        ("gen_ai.response.model", event.response_model),
        ("server.address", event.server_address),
        ("tailmeter.login", event.login),
        ("tailmeter.node", event.node),
        ("client.address", &src_ip),
        ("user_agent.original", event.user_agent),
    ];
    for (key, value) in optional {
        if !value.is_empty() {
            kv.push(KeyValue::new(key, value.to_owned()));
        }
    }
    if !event.tags.is_empty() {
        let tags: Vec<StringValue> = event.tags.iter().map(|t| t.clone().into()).collect();
        kv.push(KeyValue::new(
            "tailmeter.tags",
            Value::Array(Array::String(tags)),
        ));
    }
    if let Some(ttft) = event.ttft_ms {
        kv.push(KeyValue::new("tailmeter.ttft_ms", ttft));
    }
    if let Some(kind) = error {
        kv.push(KeyValue::new("error.type", kind));
    }
    kv
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{sample, TokenCounts};

    fn event() -> RequestEvent<'static> {
        RequestEvent {
            tokens: TokenCounts {
                input: 10,
                output: 5,
                cache_read: 4,
                cache_write: 1,
                reasoning: 2,
            },
            login: "",
            stream: false,
            duration_ms: 250.0,
            ts_ms: 1_000,
            ..sample("r1")
        }
    }

    fn attr<'a>(span: &'a SpanData, key: &str) -> Option<&'a Value> {
        span.attributes
            .iter()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| &kv.value)
    }

    #[test]
    fn a_request_becomes_a_genai_client_span() {
        let ids = SpanIds {
            trace_id: [7; 16],
            span_id: [1; 8],
            parent_span_id: Some([2; 8]),
        };
        let span = span_data(
            &event(),
            &ids,
            &InstrumentationScope::builder("tailmeter").build(),
        );
        assert_eq!(span.name, "chat gpt-4o");
        assert_eq!(span.span_kind, SpanKind::Client);
        assert_eq!(span.span_context.trace_id(), TraceId::from_bytes([7; 16]));
        assert_eq!(span.parent_span_id, SpanId::from_bytes([2; 8]));
        assert!(span.parent_span_is_remote);
        assert_eq!(
            span.end_time.duration_since(span.start_time).unwrap(),
            Duration::from_millis(250)
        );
        assert_eq!(
            attr(&span, "gen_ai.usage.input_tokens"),
            Some(&Value::I64(10))
        );
        assert_eq!(
            attr(&span, "gen_ai.usage.cache_creation.input_tokens"),
            Some(&Value::I64(1))
        );
        assert_eq!(
            attr(&span, "gen_ai.response.model"),
            Some(&Value::from("gpt-4o-2024-08-06"))
        );
        assert_eq!(attr(&span, "tailmeter.login"), None);
        assert_eq!(
            attr(&span, "client.address"),
            Some(&Value::from("100.64.0.7"))
        );
        assert_eq!(attr(&span, "error.type"), None);
        assert_eq!(span.status, Status::Unset);
    }

    #[test]
    fn failures_carry_an_error_type() {
        let mut e = event();
        e.status = 429;
        assert_eq!(error_type(&e).as_deref(), Some("429"));
        e.status = 200;
        e.usage_missing_reason = Some("upstream_reset");
        assert_eq!(error_type(&e).as_deref(), Some("upstream_reset"));
        e.usage_missing_reason = Some("not_reported");
        assert_eq!(error_type(&e), None);
        e.status = 0;
        assert_eq!(error_type(&e).as_deref(), Some("_OTHER"));
        assert_eq!(operation_name("embeddings"), "embeddings");
        assert_eq!(operation_name("messages"), "chat");
        assert_eq!(operation_name("completions"), "text_completion");
        assert_eq!(operation_name("audio"), "generate_content");
    }
}
