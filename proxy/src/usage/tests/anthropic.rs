//! Anthropic messages: running totals, cache figures, compaction, errors.

use super::{check, check_bytes, fixture, run, sse_from_payloads, tokens, Expected};
use crate::usage::{extractor, Dialect, Framing};

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
    // Compaction bills two sampling passes; the top-level figures are the
    // `message` pass's only, so the iterations are summed (see EXPECTED.md):
    // input 100 + 172 plain, 55096 cache writes; output 71 + 5.
    let expected = Expected {
        tokens: tokens(100 + 172 + 55096, 71 + 5, 0, 55096, 0),
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
fn anthropic_stream_cut_before_message_delta_is_not_complete() {
    let stream = fixture("anthropic_messages_stream_cache_creation_compaction.sse");
    let text = String::from_utf8(stream).expect("UTF-8");
    let cut = text
        .find("event: message_delta")
        .expect("has a message_delta");
    let tap = run(
        Dialect::AnthropicMessages,
        Framing::Sse,
        &[&text.as_bytes()[..cut]],
    );
    // message_start's figures are the provider's, but not final.
    assert_eq!(tap.usage().normalize(), tokens(100 + 55096, 5, 0, 55096, 0));
    assert!(!tap.usage_complete());
    assert!(
        tap.content_bytes() > "Hello!".len() as u64,
        "the compaction summary counts"
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
    check_bytes(&sse, Dialect::AnthropicMessages, Framing::Sse, expected);
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
    let tap = run(Dialect::AnthropicMessages, Framing::Json, &[body]);
    assert_eq!(tap.usage().normalize(), tokens(50, 3, 40, 0, 0));
    assert_eq!(tap.usage().cache_write, None);
    assert_eq!(
        tap.content_bytes(),
        0,
        "a body with its figures needs no estimate"
    );
    let cut = br#"{"id":"msg_1","type":"message","role":"assistant","model":"claude-haiku-4-5","content":[{"type":"text","text":"Hi"}]}"#;
    let tap = run(Dialect::AnthropicMessages, Framing::Json, &[cut]);
    assert_eq!(
        (tap.usage().normalize(), tap.content_bytes()),
        (None, 2),
        "a body without usage counts its text"
    );
    let error = br#"{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}"#;
    let tap = run(Dialect::AnthropicMessages, Framing::Json, &[error]);
    assert_eq!(
        (tap.usage().normalize(), tap.provider_error()),
        (None, Some("rate_limit_error"))
    );
}
