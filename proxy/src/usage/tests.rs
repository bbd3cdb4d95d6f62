//! Conformance: every recorded provider response, through [`UsageTap`],
//! split at every byte and in 1-byte chunks, must give the figures in
//! `tests/fixtures/EXPECTED.md`. One submodule per provider family; the
//! helpers they share are here.

mod anthropic;
mod bedrock;
mod gemini;
mod media;
mod openai;
mod realtime;

use super::{Dialect, Framing, Parts, Tokens, Usage, UsageTap};

const LIMIT: usize = 1 << 20;

/// A fixture's wire bytes: the file without its `# source:` line. The checkout is the one the
/// test runs in (cargo sets `CARGO_MANIFEST_DIR` when it runs tests), not the one the test binary
/// was built from: checkouts that share a target directory share unchanged test binaries.
pub(crate) fn fixture(name: &str) -> Vec<u8> {
    let root = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let path = format!("{root}/../tests/fixtures/{name}");
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
pub(super) fn sse_from_payloads(jsonl: &[u8]) -> Vec<u8> {
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

/// Decodes standard base64 (the `.b64` fixtures), ignoring line breaks.
pub(super) fn base64(text: &[u8]) -> Vec<u8> {
    use base64::Engine;
    let clean: Vec<u8> = text
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(clean)
        .expect("fixture is base64")
}

/// One event-stream frame with string headers, both CRCs computed.
pub(super) fn frame(headers: &[(&str, &str)], payload: &[u8]) -> Vec<u8> {
    let mut head = Vec::new();
    for (name, value) in headers {
        head.push(name.len() as u8);
        head.extend_from_slice(name.as_bytes());
        head.push(7);
        head.extend_from_slice(&(value.len() as u16).to_be_bytes());
        head.extend_from_slice(value.as_bytes());
    }
    let total = 12 + head.len() + payload.len() + 4;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&(total as u32).to_be_bytes());
    out.extend_from_slice(&(head.len() as u32).to_be_bytes());
    out.extend_from_slice(&crc32fast::hash(&out).to_be_bytes());
    out.extend_from_slice(&head);
    out.extend_from_slice(payload);
    out.extend_from_slice(&crc32fast::hash(&out).to_be_bytes());
    out
}

/// An event frame as Bedrock sends them.
pub(super) fn event_frame(event: &str, payload: &[u8]) -> Vec<u8> {
    let headers = [
        (":event-type", event),
        (":content-type", "application/json"),
        (":message-type", "event"),
    ];
    frame(&headers, payload)
}

/// What a fixture must yield.
pub(super) struct Expected {
    pub(super) tokens: Option<Tokens>,
    pub(super) model: Option<&'static str>,
    pub(super) error: Option<&'static str>,
}

pub(super) fn tokens(
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

pub(super) fn run(dialect: Dialect, framing: Framing, chunks: &[&[u8]]) -> UsageTap {
    let mut tap = UsageTap::new(dialect, framing, LIMIT);
    for chunk in chunks {
        tap.feed(chunk);
    }
    tap.finish();
    tap
}

/// Feeds `body` whole, split at every byte, and in 1-byte chunks; all must agree with `expected`.
pub(super) fn check_bytes(
    body: &[u8],
    dialect: Dialect,
    framing: Framing,
    expected: Expected,
) -> u64 {
    let whole = run(dialect, framing, &[body]);
    assert_eq!(whole.usage().normalize(), expected.tokens);
    assert_eq!(whole.response_model(), expected.model);
    assert_eq!(whole.provider_error(), expected.error);
    // Every recording that reports usage ends with its final report.
    assert_eq!(whole.usage_complete(), expected.tokens.is_some());
    assert!(!whole.oversized());
    let same = |tap: &UsageTap, how: &str| {
        assert_eq!(tap.usage(), whole.usage(), "{how}");
        assert_eq!(tap.response_model(), expected.model, "{how}");
        assert_eq!(tap.provider_error(), expected.error, "{how}");
        assert_eq!(tap.content_bytes(), whole.content_bytes(), "{how}");
        assert_eq!(tap.usage_complete(), whole.usage_complete(), "{how}");
    };
    for i in 0..=body.len() {
        same(
            &run(dialect, framing, &[&body[..i], &body[i..]]),
            &format!("split at {i}"),
        );
    }
    let bytes: Vec<&[u8]> = body.chunks(1).collect();
    same(&run(dialect, framing, &bytes), "1-byte chunks");
    whole.content_bytes()
}

/// The framing a fixture is served with, from its extension.
pub(super) fn framing(file: &str) -> Framing {
    if file.ends_with(".sse") {
        Framing::Sse
    } else if file.ends_with(".bin") {
        Framing::EventStream
    } else {
        Framing::Json
    }
}

pub(super) fn check(file: &str, dialect: Dialect, expected: Expected) -> u64 {
    check_bytes(&fixture(file), dialect, framing(file), expected)
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
    let tap = run(Dialect::OpenAiChat, Framing::Json, &[body.as_bytes()]);
    assert_eq!(tap.provider_error(), Some("é".repeat(32).as_str()));
    let body = br#"{"error":{"type":"error","code":429}}"#;
    assert_eq!(
        run(Dialect::OpenAiChat, Framing::Json, &[body]).provider_error(),
        Some("429")
    );
}

#[test]
fn text_within_walks_one_value_only() {
    use super::json::text_within;
    let data = br#"{"delta":{"content":"ab\"c","tool_calls":[{"function":{"arguments":"{}"}}],"n":[1,{"x":null}]},"content":"outside"}"#;
    let at = data
        .iter()
        .position(|&b| b == b':')
        .map(|c| c + 1)
        .expect("a member");
    // `ab\"c` is 5 escaped bytes, `{}` 2; the top-level content is outside the walked value.
    assert_eq!(text_within(data, at, &[b"content", b"arguments"]), 7);
    assert_eq!(text_within(data, 0, &[b"content"]), 5 + 7);
    // Malformed or too deep: what was counted before stays, nothing panics.
    assert_eq!(
        text_within(br#"{"content":"ab","x":}"#, 0, &[b"content"]),
        2
    );
    let deep = format!("{}{{\"content\":\"x\"}}{}", "[".repeat(40), "]".repeat(40));
    assert_eq!(text_within(deep.as_bytes(), 0, &[b"content"]), 0);
    assert_eq!(text_within(b"", 0, &[b"content"]), 0);
}

#[test]
fn string_end_finds_quotes_and_escapes_at_every_offset() {
    use super::json::string_end;
    // The end quote, and an escaped quote before it, at every place across
    // the word-at-a-time look and the vector search after it.
    for len in 0..80 {
        let plain = format!("\"{}\"tail", "a".repeat(len));
        assert_eq!(string_end(plain.as_bytes(), 0), Some(len + 2));
        for escape in 0..len.saturating_sub(1) {
            let mut text = "a".repeat(len);
            text.replace_range(escape..escape + 2, "\\\"");
            let quoted = format!("\"{text}\"");
            assert_eq!(string_end(quoted.as_bytes(), 0), Some(len + 2), "{quoted}");
        }
        assert_eq!(
            string_end(format!("\"{}", "a".repeat(len)).as_bytes(), 0),
            None
        );
    }
}

#[test]
fn integers_reads_named_counts_like_serde() {
    use super::json::integers;
    let names: [&[u8]; 2] = [b"a", b"b"];
    let read = |json: &str| integers(json.as_bytes(), 0, names).map(|read| read.values);
    let nested = r#"{"x":[{"a":9}],"a": 18 ,"s":"}","b":null} tail"#;
    let read_nested = integers(nested.as_bytes(), 0, names).expect("an object");
    assert_eq!(read_nested.values, [Some(18), None]);
    assert_eq!(
        (read_nested.starts[0], read_nested.end),
        (20, nested.len() - 5)
    );
    assert_eq!(read(r#"{ }"#), Some([None, None]));
    assert_eq!(
        read(r#"{"b":18446744073709551615}"#),
        Some([None, Some(u64::MAX)])
    );
    // What serde refuses for a u64, and malformed objects: nothing is taken.
    for bad in [
        r#"{"a":1.5}"#,
        r#"{"a":-1}"#,
        r#"{"a":1e3}"#,
        r#"{"a":"1"}"#,
        r#"{"a":01}"#,
        r#"{"b":18446744073709551616}"#,
        r#"{"a":1"#,
        r#"{"a" 1}"#,
        r#"[1]"#,
    ] {
        assert_eq!(read(bad), None, "{bad}");
    }
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

#[test]
fn audio_and_image_tokens_are_read_as_parts_of_the_input_and_output() {
    let chat = br#"{"model":"gpt-audio","choices":[],"usage":{"prompt_tokens":120,"completion_tokens":90,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":100},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":80}}}"#;
    let usage = run(Dialect::OpenAiChat, Framing::Json, &[chat]).usage();
    let want = Parts {
        audio_input: Some(100),
        audio_output: Some(80),
        ..Parts::default()
    };
    assert_eq!(
        (usage.input, usage.output, usage.parts),
        (Some(120), Some(90), want)
    );
    let image = br#"{"data":[],"usage":{"input_tokens":400,"output_tokens":272,"input_tokens_details":{"text_tokens":12,"image_tokens":388}}}"#;
    let usage = run(Dialect::OpenAiMedia, Framing::Json, &[image]).usage();
    assert_eq!(
        (usage.parts.image_input, usage.parts.audio_input),
        (Some(388), None)
    );
    // Transcriptions spell it `input_token_details`.
    let heard = br#"{"text":"Hi.","usage":{"type":"tokens","input_tokens":95,"input_token_details":{"text_tokens":5,"audio_tokens":90},"output_tokens":3,"total_tokens":98}}"#;
    let usage = run(Dialect::OpenAiMedia, Framing::Json, &[heard]).usage();
    assert_eq!((usage.input, usage.parts.audio_input), (Some(95), Some(90)));
}

#[test]
fn anthropic_cache_writes_kept_an_hour_are_read_as_their_part_even_across_iterations() {
    let start = br#"{"type":"message_start","message":{"id":"m","model":"claude-sonnet-4-5","usage":{"input_tokens":10,"cache_creation_input_tokens":3000,"cache_read_input_tokens":0,"cache_creation":{"ephemeral_5m_input_tokens":1000,"ephemeral_1h_input_tokens":2000},"output_tokens":1}}}"#;
    let delta = br#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":20}}"#;
    let stream = [
        &b"event: message_start\ndata: "[..],
        start,
        b"\n\nevent: message_delta\ndata: ",
        delta,
        b"\n\n",
    ]
    .concat();
    let usage = run(Dialect::AnthropicMessages, Framing::Sse, &[&stream]).usage();
    assert_eq!(
        (usage.cache_write, usage.parts.cache_write_1h),
        (Some(3000), Some(2000))
    );
    let iterated = br#"{"type":"message","model":"claude-sonnet-4-5","content":[],"usage":{"input_tokens":5,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":5,"iterations":[{"input_tokens":100,"output_tokens":71,"cache_creation_input_tokens":500,"cache_creation":{"ephemeral_5m_input_tokens":100,"ephemeral_1h_input_tokens":400}},{"input_tokens":5,"output_tokens":5,"cache_creation_input_tokens":50,"cache_creation":{"ephemeral_5m_input_tokens":0,"ephemeral_1h_input_tokens":50}}]}}"#;
    let usage = run(Dialect::AnthropicMessages, Framing::Json, &[iterated]).usage();
    assert_eq!(
        (usage.cache_write, usage.parts.cache_write_1h),
        (Some(550), Some(450))
    );
}
