//! Conformance: every recorded OpenAI and Anthropic response, through
//! [`UsageTap`], split at every byte and in 1-byte chunks, must give the
//! figures in `tests/fixtures/EXPECTED.md`.

use super::{extractor, Dialect, Tokens, Usage, UsageTap};

const LIMIT: usize = 1 << 20;

/// A fixture's wire bytes: the file without its `# source:` line.
pub(super) fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}{name}",
        concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/")
    );
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    if !bytes.starts_with(b"# source:") {
        return bytes;
    }
    let body = bytes
        .iter()
        .position(|&b| b == b'\n')
        .map_or(bytes.len(), |nl| nl + 1);
    bytes[body..].to_vec()
}

/// Rebuilds an SSE stream from data payloads, one per line, naming each
/// event after its payload's `type`.
fn sse_from_payloads(jsonl: &[u8]) -> Vec<u8> {
    let mut sse = Vec::new();
    for line in jsonl.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let payload: serde_json::Value = serde_json::from_slice(line).expect("payload is JSON");
        let kind = payload["type"].as_str().expect("payload has a type");
        sse.extend_from_slice(format!("event: {kind}\ndata: ").as_bytes());
        sse.extend_from_slice(line);
        sse.extend_from_slice(b"\n\n");
    }
    sse
}

/// What a fixture must yield.
struct Expected {
    tokens: Option<Tokens>,
    model: Option<&'static str>,
    error: Option<&'static str>,
}

fn tokens(
    input: u64,
    output: u64,
    cache_read: u64,
    cache_write: u64,
    reasoning: u64,
) -> Option<Tokens> {
    Some(Tokens {
        input,
        output,
        cache_read,
        cache_write,
        reasoning,
    })
}

fn run(dialect: Dialect, streaming: bool, chunks: &[&[u8]]) -> UsageTap {
    let mut tap = UsageTap::new(dialect, streaming, LIMIT);
    for chunk in chunks {
        tap.feed(chunk);
    }
    tap.finish();
    tap
}

/// Feeds `body` whole, split at every byte, and in 1-byte chunks; all must agree with `expected`.
fn check_bytes(body: &[u8], dialect: Dialect, streaming: bool, expected: Expected) -> u64 {
    let whole = run(dialect, streaming, &[body]);
    assert_eq!(whole.usage().normalize(), expected.tokens);
    assert_eq!(whole.response_model(), expected.model);
    assert_eq!(whole.provider_error(), expected.error);
    assert!(!whole.oversized());
    let same = |tap: &UsageTap, how: &str| {
        assert_eq!(tap.usage(), whole.usage(), "{how}");
        assert_eq!(tap.response_model(), expected.model, "{how}");
        assert_eq!(tap.provider_error(), expected.error, "{how}");
        assert_eq!(tap.content_bytes(), whole.content_bytes(), "{how}");
    };
    for i in 0..=body.len() {
        same(
            &run(dialect, streaming, &[&body[..i], &body[i..]]),
            &format!("split at {i}"),
        );
    }
    let bytes: Vec<&[u8]> = body.chunks(1).collect();
    same(&run(dialect, streaming, &bytes), "1-byte chunks");
    whole.content_bytes()
}

fn check(file: &str, dialect: Dialect, expected: Expected) -> u64 {
    let streaming = file.ends_with(".sse");
    check_bytes(&fixture(file), dialect, streaming, expected)
}

#[test]
fn openai_chat_stream_usage() {
    let expected = Expected {
        tokens: tokens(14, 8, 0, 0, 0),
        model: Some("gpt-4o-2024-08-06"),
        error: None,
    };
    let content = check(
        "openai_chat_stream_usage.sse",
        Dialect::OpenAiChat,
        expected,
    );
    assert_eq!(
        content,
        "The capital of Mexico is Mexico City.".len() as u64
    );
}

#[test]
fn openai_chat_stream_usage_reasoning() {
    let expected = Expected {
        tokens: tokens(12, 100, 0, 0, 100),
        model: Some("gpt-5-nano-2025-08-07"),
        error: None,
    };
    check(
        "openai_chat_stream_usage_reasoning.sse",
        Dialect::OpenAiChat,
        expected,
    );
}

#[test]
fn openai_chat_nonstream_usage_reasoning() {
    let expected = Expected {
        tokens: tokens(12, 100, 0, 0, 100),
        model: Some("gpt-5-nano-2025-08-07"),
        error: None,
    };
    check(
        "openai_chat_nonstream_usage_reasoning.json",
        Dialect::OpenAiChat,
        expected,
    );
}

#[test]
fn openai_compat_openrouter_stream_usage() {
    let expected = Expected {
        tokens: tokens(254, 5, 0, 0, 0),
        model: Some("anthropic/claude-4.6-sonnet-20260217"),
        error: None,
    };
    let content = check(
        "openai_compat_openrouter_stream_usage.sse",
        Dialect::OpenAiChat,
        expected,
    );
    assert_eq!(content, "Hello!".len() as u64);
}

#[test]
fn openai_compat_hf_novita_stream_usage_with_null_details() {
    let expected = Expected {
        tokens: tokens(40, 2, 0, 0, 0),
        model: Some("meta-llama/llama-3.1-8b-instruct"),
        error: None,
    };
    let tap_usage = run(
        Dialect::OpenAiChat,
        true,
        &[&fixture("openai_compat_hf_novita_stream_usage.sse")],
    )
    .usage();
    assert_eq!((tap_usage.cache_read, tap_usage.reasoning), (None, None));
    check(
        "openai_compat_hf_novita_stream_usage.sse",
        Dialect::OpenAiChat,
        expected,
    );
}

#[test]
fn openai_compat_vllm_stream_usage() {
    let expected = Expected {
        tokens: tokens(46, 14, 0, 0, 0),
        model: Some("meta-llama/Llama-3.3-70B-Instruct"),
        error: None,
    };
    check(
        "openai_compat_vllm_stream_usage.sse",
        Dialect::OpenAiChat,
        expected,
    );
}

#[test]
fn openai_compat_groq_stream_midstream_error() {
    let expected = Expected {
        tokens: None,
        model: Some("openai/gpt-oss-120b"),
        error: Some("invalid_request_error"),
    };
    let content = check(
        "openai_compat_groq_stream_midstream_error.sse",
        Dialect::OpenAiChat,
        expected,
    );
    assert!(content > 0, "reasoning deltas count as content");
}

#[test]
fn openai_responses_stream_usage_reasoning() {
    let expected = Expected {
        tokens: tokens(53, 469, 0, 0, 448),
        model: Some("gpt-5-2025-08-07"),
        error: None,
    };
    check(
        "openai_responses_stream_usage_reasoning.sse",
        Dialect::OpenAiResponses,
        expected,
    );
}

#[test]
fn openai_responses_stream_text() {
    let expected = Expected {
        tokens: tokens(21, 3, 0, 0, 0),
        model: Some("gpt-4.1-2025-04-14"),
        error: None,
    };
    let content = check(
        "openai_responses_stream_text.sse",
        Dialect::OpenAiResponses,
        expected,
    );
    assert_eq!(content, "streamed".len() as u64);
}

#[test]
fn openai_embeddings_usage() {
    let expected = Expected {
        tokens: tokens(5, 0, 0, 0, 0),
        model: Some("text-embedding-3-small"),
        error: None,
    };
    check(
        "openai_embeddings_usage.json",
        Dialect::OpenAiEmbeddings,
        expected,
    );
}

#[test]
fn anthropic_messages_stream_basic() {
    let expected = Expected {
        tokens: tokens(20, 5, 0, 0, 0),
        model: Some("claude-sonnet-4-5-20250929"),
        error: None,
    };
    let content = check(
        "anthropic_messages_stream_basic.sse",
        Dialect::AnthropicMessages,
        expected,
    );
    assert_eq!(content, 1);
}

#[test]
fn anthropic_messages_stream_cache_creation_compaction() {
    // The final message_delta revises input 100 -> 172 and cache creation
    // 55096 -> 0; its iterations[] are not summed (see EXPECTED.md).
    let expected = Expected {
        tokens: tokens(172, 5, 0, 0, 0),
        model: Some("claude-sonnet-4-6"),
        error: None,
    };
    check(
        "anthropic_messages_stream_cache_creation_compaction.sse",
        Dialect::AnthropicMessages,
        expected,
    );
}

#[test]
fn anthropic_messages_stream_error_overloaded() {
    let expected = Expected {
        tokens: None,
        model: None,
        error: Some("overloaded_error"),
    };
    check(
        "anthropic_messages_stream_error_overloaded.sse",
        Dialect::AnthropicMessages,
        expected,
    );
}

#[test]
fn anthropic_messages_stream_cache_read_payloads() {
    let sse = sse_from_payloads(&fixture(
        "anthropic_messages_stream_cache_read_payloads.jsonl",
    ));
    let expected = Expected {
        tokens: tokens(6 + 3337 + 6289, 198, 6289, 3337, 0),
        model: Some("claude-sonnet-5"),
        error: None,
    };
    check_bytes(&sse, Dialect::AnthropicMessages, true, expected);
}

#[test]
fn anthropic_payloads_without_event_names_are_read_by_type() {
    let jsonl = fixture("anthropic_messages_stream_cache_read_payloads.jsonl");
    let mut extractor = extractor(Dialect::AnthropicMessages);
    for line in jsonl.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        extractor.on_event("", line);
    }
    assert_eq!(
        extractor.usage().normalize(),
        tokens(9632, 198, 6289, 3337, 0)
    );
    assert_eq!(extractor.response_model(), Some("claude-sonnet-5"));
}

#[test]
fn anthropic_nonstream_body_and_error_body() {
    let body = br#"{"id":"msg_1","type":"message","role":"assistant","model":"claude-haiku-4-5","content":[{"type":"text","text":"Hi"}],"usage":{"input_tokens":10,"cache_creation_input_tokens":null,"cache_read_input_tokens":40,"output_tokens":3}}"#;
    let tap = run(Dialect::AnthropicMessages, false, &[body]);
    assert_eq!(tap.usage().normalize(), tokens(50, 3, 40, 0, 0));
    assert_eq!(tap.usage().cache_write, None);
    assert_eq!(tap.content_bytes(), 2);
    let error = br#"{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}"#;
    let tap = run(Dialect::AnthropicMessages, false, &[error]);
    assert_eq!(
        (tap.usage().normalize(), tap.provider_error()),
        (None, Some("rate_limit_error"))
    );
}

#[test]
fn openai_errors_in_bodies_and_streams() {
    let body = br#"{"error":{"message":"Rate limit","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#;
    assert_eq!(
        run(Dialect::OpenAiChat, false, &[body]).provider_error(),
        Some("requests")
    );
    let failed = b"event: response.failed\ndata: {\"type\":\"response.failed\",\"response\":{\"model\":\"gpt-5\",\"error\":{\"code\":\"server_error\",\"message\":\"x\"},\"usage\":null}}\n\n";
    let tap = run(Dialect::OpenAiResponses, true, &[failed]);
    assert_eq!(
        (tap.provider_error(), tap.response_model()),
        (Some("server_error"), Some("gpt-5"))
    );
    let error = b"event: error\ndata: {\"type\":\"error\",\"code\":\"rate_limit_exceeded\",\"message\":\"x\",\"param\":null}\n\n";
    let tap = run(Dialect::OpenAiResponses, true, &[error]);
    assert_eq!(tap.provider_error(), Some("rate_limit_exceeded"));
}

#[test]
fn usage_normalizes_only_when_a_total_was_reported() {
    assert_eq!(Usage::default().normalize(), None);
    assert!(Usage::default().is_empty());
    let parts_only = Usage {
        cache_read: Some(3),
        ..Usage::default()
    };
    assert!(!parts_only.is_empty());
    assert_eq!(parts_only.normalize(), None);
    let output_only = Usage {
        output: Some(7),
        ..Usage::default()
    };
    assert_eq!(output_only.normalize(), tokens(0, 7, 0, 0, 0));
}

#[test]
fn provider_error_strings_stay_short() {
    let long = "é".repeat(100);
    let body = format!(r#"{{"error":{{"type":"{long}"}}}}"#);
    let tap = run(Dialect::OpenAiChat, false, &[body.as_bytes()]);
    assert_eq!(tap.provider_error(), Some("é".repeat(32).as_str()));
    let body = br#"{"error":{"type":"error","code":429}}"#;
    assert_eq!(
        run(Dialect::OpenAiChat, false, &[body]).provider_error(),
        Some("429")
    );
}

/// A small deterministic generator, so the hostile-input tests need no crate.
pub(super) struct XorShift(pub(super) u64);

impl XorShift {
    /// A number in `0..n`.
    pub(super) fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}
