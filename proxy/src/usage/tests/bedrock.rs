//! Bedrock: ConverseStream recordings (binary event-stream frames), an
//! exception frame, Converse bodies, and InvokeModel's headers and chunks.

use base64::Engine;

use super::{base64, check, check_bytes, event_frame, fixture, frame, run, tokens, Expected};
use crate::usage::{Dialect, Framing, UsageTap};

const CLAUDE: &str = "bedrock_converse_stream_claude.eventstream.bin";

#[test]
fn bedrock_converse_stream_claude() {
    // metadata: inputTokens 210, outputTokens 18 (totalTokens 228); no model is named.
    let expected = Expected {
        tokens: tokens(210, 18, 0, 0, 0),
        model: None,
        error: None,
    };
    let content = check(CLAUDE, Dialect::BedrockConverse, expected);
    let text = r#"{\"city\":\"Paris\",\"country\":\"France\",\"population\":2161000}"#;
    assert_eq!(content, text.len() as u64);
}

#[test]
fn bedrock_converse_stream_gptoss_reasoning() {
    // metadata: inputTokens 70, outputTokens 43; Bedrock reports no reasoning count.
    let expected = Expected {
        tokens: tokens(70, 43, 0, 0, 0),
        model: None,
        error: None,
    };
    let content = check(
        "bedrock_converse_stream_gptoss_reasoning.eventstream.bin",
        Dialect::BedrockConverse,
        expected,
    );
    assert!(
        content > "Hello! How can I help you today?".len() as u64,
        "reasoning text counts"
    );
}

#[test]
fn bedrock_exception_frame_after_content() {
    // The recording's frames up to messageStop, then the exception frame: no usage, an error.
    let claude = fixture(CLAUDE);
    let exception = base64(&fixture("bedrock_eventstream_exception_frame.b64"));
    let mut stream = claude[..1284].to_vec();
    stream.extend_from_slice(&exception);
    let expected = Expected {
        tokens: None,
        model: None,
        error: Some("modelStreamErrorException"),
    };
    let content = check_bytes(
        &stream,
        Dialect::BedrockConverse,
        Framing::EventStream,
        expected,
    );
    assert!(content > 0);
}

#[test]
fn corrupted_frames_are_dropped_not_trusted() {
    let mut stream = fixture(CLAUDE);
    // A flipped payload byte in the metadata frame (offset 1440) fails its message CRC.
    stream[1440 + 120] ^= 0x20;
    let tap = run(Dialect::BedrockConverse, Framing::EventStream, &[&stream]);
    assert_eq!(tap.usage().normalize(), None);
    // A flipped length in the first prelude loses the framing: nothing after it is read.
    let mut stream = fixture(CLAUDE);
    stream[3] ^= 1;
    let tap = run(Dialect::BedrockConverse, Framing::EventStream, &[&stream]);
    assert_eq!((tap.usage().normalize(), tap.content_bytes()), (None, 0));
}

#[test]
fn bedrock_converse_body_and_error_header() {
    let body = br#"{"output":{"message":{"role":"assistant","content":[{"text":"Hi"}]}},"stopReason":"end_turn","usage":{"inputTokens":4,"outputTokens":100,"totalTokens":6328,"cacheReadInputTokens":0,"cacheWriteInputTokens":6224},"metrics":{"latencyMs":12}}"#;
    let tap = run(Dialect::BedrockConverse, Framing::Json, &[body]);
    // inputTokens excludes the cache figures (4 + 100 + 6224 = totalTokens).
    assert_eq!(tap.usage().normalize(), tokens(4 + 6224, 100, 0, 6224, 0));
    assert!(tap.usage_complete());
    assert_eq!(
        tap.content_bytes(),
        0,
        "a body with its figures needs no estimate"
    );
    let cut = br#"{"output":{"message":{"role":"assistant","content":[{"text":"Hi"}]}},"stopReason":"end_turn"}"#;
    let tap = run(Dialect::BedrockConverse, Framing::Json, &[cut]);
    assert_eq!((tap.usage().normalize(), tap.content_bytes()), (None, 2));
    let mut tap = json_tap(Dialect::BedrockConverse);
    tap.header(
        "X-Amzn-ErrorType",
        b"ThrottlingException:http://internal.amazon.com/coral/",
    );
    tap.feed(br#"{"message":"Too many requests"}"#);
    tap.finish();
    assert_eq!(tap.provider_error(), Some("ThrottlingException"));
}

/// A tap for a JSON body, to which headers can be given first.
fn json_tap(dialect: Dialect) -> UsageTap {
    UsageTap::new(dialect, Framing::Json, 1 << 20)
}

#[test]
fn bedrock_invoke_headers_override_the_model_body() {
    let body = br#"{"id":"msg_1","type":"message","model":"claude-haiku-4-5","content":[{"type":"text","text":"Hi"}],"usage":{"input_tokens":10,"cache_read_input_tokens":40,"output_tokens":3}}"#;
    let mut tap = json_tap(Dialect::BedrockInvoke);
    tap.header("x-amzn-bedrock-input-token-count", b"11");
    tap.header("X-Amzn-Bedrock-Output-Token-Count", b"4");
    tap.header("x-amzn-bedrock-invocation-latency", b"200");
    tap.feed(body);
    tap.finish();
    // Bedrock's input 11 plus the body's cache read 40; Bedrock's output 4.
    assert_eq!(tap.usage().normalize(), tokens(51, 4, 40, 0, 0));
    assert_eq!(tap.response_model(), Some("claude-haiku-4-5"));
    assert!(tap.usage_complete());
}

/// The Anthropic stream recording as InvokeModelWithResponseStream sends it:
/// each event's JSON base64-encoded in a `chunk` frame, the invocation
/// metrics added to the last one.
fn invoke_stream() -> Vec<u8> {
    let sse = String::from_utf8(fixture("anthropic_messages_stream_basic.sse")).expect("UTF-8");
    let mut out = Vec::new();
    for data in sse.lines().filter_map(|l| l.strip_prefix("data: ")) {
        let mut event: serde_json::Value = serde_json::from_str(data).expect("JSON");
        if event["type"] == "message_stop" {
            event["amazon-bedrock-invocationMetrics"] = serde_json::json!({
                "inputTokenCount": 21, "outputTokenCount": 5,
                "invocationLatency": 500, "firstByteLatency": 100
            });
        }
        let bytes = base64::engine::general_purpose::STANDARD.encode(event.to_string());
        let payload = serde_json::json!({ "bytes": bytes, "p": "abc" }).to_string();
        out.extend_from_slice(&event_frame("chunk", payload.as_bytes()));
    }
    out
}

#[test]
fn bedrock_invoke_stream_takes_the_invocation_metrics() {
    let expected = Expected {
        tokens: tokens(21, 5, 0, 0, 0),
        model: Some("claude-sonnet-4-5-20250929"),
        error: None,
    };
    check_bytes(
        &invoke_stream(),
        Dialect::BedrockInvoke,
        Framing::EventStream,
        expected,
    );
    // Cut before the last chunk: the model's own running figures, not final.
    let stream = invoke_stream();
    let last = stream.len() - event_frame_len(&stream);
    let tap = run(
        Dialect::BedrockInvoke,
        Framing::EventStream,
        &[&stream[..last]],
    );
    assert_eq!(tap.usage().normalize(), tokens(20, 5, 0, 0, 0));
    assert!(
        tap.usage_complete(),
        "message_delta is Anthropic's final report"
    );
}

/// The length of the last frame of `stream`.
fn event_frame_len(stream: &[u8]) -> usize {
    let mut at = 0;
    let mut last = 0;
    while at < stream.len() {
        last = u32::from_be_bytes(stream[at..at + 4].try_into().expect("4 bytes")) as usize;
        at += last;
    }
    last
}

#[test]
fn error_frames_name_the_error() {
    let error = frame(
        &[
            (":message-type", "error"),
            (":error-code", "InternalFailure"),
        ],
        b"{}",
    );
    let tap = run(Dialect::BedrockConverse, Framing::EventStream, &[&error]);
    assert_eq!(tap.provider_error(), Some("InternalFailure"));
}

#[test]
fn content_deltas_count_their_text_in_any_layout() {
    // Bedrock's own layout (read straight), members reordered or spaced (searched for),
    // tool input and reasoning text: each delta's text length, once.
    let payloads: [(&[u8], u64); 5] = [
        (
            br#"{"contentBlockIndex":0,"delta":{"text":"Hello"},"p":"abc"}"#,
            5,
        ),
        (
            br#"{"contentBlockIndex":12,"delta":{"toolUse":{"input":"{\"a\":1}"}},"p":"x"}"#,
            9,
        ),
        (br#"{"delta":{"text":"Hello"},"contentBlockIndex":0}"#, 5),
        (br#"{ "contentBlockIndex": 0, "delta": {"text": "Hi"} }"#, 2),
        (
            br#"{"contentBlockIndex":0,"delta":{"reasoningContent":{"text":"hmm"}},"p":"y"}"#,
            3,
        ),
    ];
    for (payload, text) in payloads {
        let frame = event_frame("contentBlockDelta", payload);
        let tap = run(Dialect::BedrockConverse, Framing::EventStream, &[&frame]);
        assert_eq!(
            tap.content_bytes(),
            text,
            "{}",
            String::from_utf8_lossy(payload)
        );
    }
}
