//! The W3C trace context of each request: an incoming `traceparent` is continued (same trace
//! id, the client's span as parent), otherwise a trace is started; the request's own span id is
//! chosen up front so the upstream request can carry it as its parent in `traceparent`, and the
//! span itself is built after the fact from the usage event (see `tailmeter_exporters::traces`).
//!
//! Sampling follows the parent: a client trace flagged not-sampled is not exported, and its
//! `traceparent` passes upstream untouched. Without `[otlp]`, a client's trace id is still
//! stored in the row, and nothing else is done.

use tailmeter_exporters::traces::{random_span_id, random_trace_id};
use tailmeter_exporters::SpanIds;

use crate::config::ProviderKind;
use crate::upstream::Upstream;

/// The header name.
pub const TRACEPARENT: &str = "traceparent";

/// A parsed `traceparent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parent {
    /// Trace id.
    pub trace_id: [u8; 16],
    /// The sender's span id.
    pub span_id: [u8; 8],
    /// The `sampled` flag.
    pub sampled: bool,
}

/// One request's trace context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceContext {
    /// The trace this request belongs to.
    pub trace_id: [u8; 16],
    /// This request's span, when one is exported.
    pub span: Option<SpanIds>,
}

impl TraceContext {
    /// The context of a request whose `traceparent` header is `incoming`; `tracing` says whether
    /// spans are exported. `None` when there is neither a client trace nor tracing.
    pub fn start(incoming: Option<&str>, tracing: bool) -> Option<Self> {
        let parent = incoming.and_then(parse_traceparent);
        if !tracing || parent.is_some_and(|p| !p.sampled) {
            return parent.map(|p| Self {
                trace_id: p.trace_id,
                span: None,
            });
        }
        let trace_id = parent.map_or_else(random_trace_id, |p| p.trace_id);
        Some(Self {
            trace_id,
            span: Some(SpanIds {
                trace_id,
                span_id: random_span_id(),
                parent_span_id: parent.map(|p| p.span_id),
            }),
        })
    }

    /// The `traceparent` to send upstream, when this request has its own span.
    pub fn upstream_traceparent(&self) -> Option<String> {
        self.span
            .map(|s| format!("00-{}-{}-01", hex(&s.trace_id), hex(&s.span_id)))
    }

    /// The trace id as the row stores it (32 lowercase hex digits).
    pub fn trace_id_hex(&self) -> String {
        hex(&self.trace_id)
    }
}

/// Parses `traceparent` per W3C Trace Context: `VV-TTTT…-SSSS…-FF`, lowercase hex, version
/// `ff` and all-zero ids invalid; a future version may append fields after a `-`.
pub fn parse_traceparent(value: &str) -> Option<Parent> {
    let value = value.trim();
    let bytes = value.as_bytes();
    if bytes.len() < 55 || (bytes.len() > 55 && bytes[55] != b'-') {
        return None;
    }
    let mut fields = value[..55].split('-');
    let (version, trace, span, flags) = (
        fields.next()?,
        fields.next()?,
        fields.next()?,
        fields.next()?,
    );
    let version = unhex::<1>(version)?[0];
    if version == 0xff || (version == 0 && bytes.len() != 55) {
        return None;
    }
    let trace_id = unhex::<16>(trace)?;
    let span_id = unhex::<8>(span)?;
    let flags = unhex::<1>(flags)?[0];
    if trace_id == [0; 16] || span_id == [0; 8] {
        return None;
    }
    Some(Parent {
        trace_id,
        span_id,
        sampled: flags & 1 == 1,
    })
}

/// `gen_ai.provider.name` of an upstream: the well-known names of the semantic conventions, or
/// the configured name of an OpenAI-compatible provider.
pub fn genai_provider_name(upstream: &Upstream) -> &str {
    match upstream.kind {
        ProviderKind::OpenAi => "openai",
        ProviderKind::Anthropic => "anthropic",
        ProviderKind::Gemini => "gcp.gemini",
        ProviderKind::Bedrock => "aws.bedrock",
        ProviderKind::OpenAiCompatible => &upstream.name,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Exactly `2 * N` lowercase hex digits.
fn unhex<const N: usize>(text: &str) -> Option<[u8; N]> {
    let digits = text.as_bytes();
    if digits.len() != 2 * N {
        return None;
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; N];
    for (i, pair) in digits.chunks_exact(2).enumerate() {
        out[i] = nibble(pair[0])? << 4 | nibble(pair[1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLIENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn parses_the_spec_example_and_rejects_malformed_ones() {
        let p = parse_traceparent(CLIENT).unwrap();
        assert_eq!(hex(&p.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(hex(&p.span_id), "00f067aa0ba902b7");
        assert!(p.sampled);
        assert!(
            !parse_traceparent(&CLIENT.replace("-01", "-00"))
                .unwrap()
                .sampled
        );
        for bad in [
            "",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert_eq!(parse_traceparent(bad), None, "{bad}");
        }
        // A future version may add fields.
        assert!(parse_traceparent(&format!("cc{}-what", &CLIENT[2..])).is_some());
    }

    #[test]
    fn a_client_trace_is_continued_with_a_new_span() {
        let ctx = TraceContext::start(Some(CLIENT), true).unwrap();
        assert_eq!(ctx.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        let span = ctx.span.unwrap();
        assert_eq!(
            span.parent_span_id.map(|s| hex(&s)).as_deref(),
            Some("00f067aa0ba902b7")
        );
        let upstream = ctx.upstream_traceparent().unwrap();
        assert!(upstream.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
        assert!(upstream.ends_with("-01"));
        assert_ne!(&upstream[36..52], "00f067aa0ba902b7");
        assert_eq!(parse_traceparent(&upstream).unwrap().span_id, span.span_id);
    }

    #[test]
    fn without_a_client_trace_one_starts_only_when_tracing() {
        let ctx = TraceContext::start(None, true).unwrap();
        assert_eq!(ctx.span.unwrap().parent_span_id, None);
        assert_ne!(ctx.trace_id, [0; 16]);
        assert_eq!(TraceContext::start(None, false), None);
        assert_eq!(TraceContext::start(Some("garbage"), false), None);
    }

    #[test]
    fn without_tracing_or_sampling_only_the_trace_id_is_kept() {
        let off = TraceContext::start(Some(CLIENT), false).unwrap();
        assert_eq!((off.trace_id_hex().len(), off.span), (32, None));
        let unsampled = CLIENT.replace("-01", "-00");
        let ctx = TraceContext::start(Some(&unsampled), true).unwrap();
        assert_eq!((ctx.span, ctx.upstream_traceparent()), (None, None));
    }
}
