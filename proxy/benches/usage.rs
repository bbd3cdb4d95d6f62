//! Throughput of the usage-parsing path: each recorded fixture's bytes, repeated to a few MiB,
//! fed through [`UsageTap`] in 16 KiB chunks as the proxy would see them; criterion reports
//! bytes/s per dialect. Two inputs per streamed dialect: the whole recording (usage, model and
//! start events included), and its content events alone (the bulk of a long stream, which must be
//! skipped without a full JSON parse). Every streamed dialect has a `*/content` input.
//!
//! Time is the benchmark thread's CPU time ([`cpu_time::ThreadCpuTime`]), not
//! wall time: the machine is shared, and the target is bytes/s per core, so
//! time spent waiting for a core must not count. Figures: `benches/README.md`.
//!
//! Run: `cargo bench -p tailmeter --bench usage` (release build); one input:
//! `cargo bench -p tailmeter --bench usage -- anthropic/content`.

mod cpu_time;

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput};
use tailmeter::usage::{Dialect, Framing, UsageTap};

use cpu_time::ThreadCpuTime;

/// Bytes each benchmark input is repeated to.
const TARGET_BYTES: usize = 4 << 20;
/// Chunk size the body is fed in.
const CHUNK: usize = 16 * 1024;

/// A fixture's wire bytes (its `# source:` line dropped).
fn fixture(name: &str) -> Vec<u8> {
    let root = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let path = format!("{root}/../tests/fixtures/{name}");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    if !bytes.starts_with(b"# source:") {
        return bytes;
    }
    let start = bytes.iter().position(|&b| b == b'\n').map_or(0, |n| n + 1);
    bytes[start..].to_vec()
}

/// The events of an SSE body whose text contains `marker` and not `except`
/// (blank-line separated, LF or CRLF).
fn events_with(body: &[u8], marker: &str, except: Option<&str>) -> Vec<u8> {
    let text = String::from_utf8_lossy(body);
    let blank = if text.contains("\r\n\r\n") {
        "\r\n\r\n"
    } else {
        "\n\n"
    };
    text.split_inclusive(blank)
        .filter(|event| event.contains(marker))
        .filter(|event| except.is_none_or(|except| !event.contains(except)))
        .collect::<String>()
        .into_bytes()
}

/// The frames of an AWS event stream whose bytes contain `marker`.
fn frames_with(mut body: &[u8], marker: &[u8]) -> Vec<u8> {
    let mut kept = Vec::new();
    while let Some(len) = body.get(..4) {
        let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
        let frame = body.get(..len.max(4)).expect("a whole frame");
        if frame.windows(marker.len()).any(|w| w == marker) {
            kept.extend_from_slice(frame);
        }
        body = &body[frame.len()..];
    }
    kept
}

fn repeat(unit: &[u8]) -> Vec<u8> {
    assert!(!unit.is_empty());
    unit.iter()
        .copied()
        .cycle()
        .take(TARGET_BYTES.div_ceil(unit.len()) * unit.len())
        .collect()
}

/// (label, dialect, framing, one unit of input to repeat)
fn inputs() -> Vec<(&'static str, Dialect, Framing, Vec<u8>)> {
    let chat = fixture("openai_chat_stream_usage.sse");
    let responses = fixture("openai_responses_stream_usage_reasoning.sse");
    let anthropic = fixture("anthropic_messages_stream_basic.sse");
    let gemini = fixture("gemini_stream_sse_usage_thoughts.sse");
    let vertex = fixture("vertex_gemini_stream_sse_usage_last_only.sse");
    let bedrock = fixture("bedrock_converse_stream_claude.eventstream.bin");
    let sse = Framing::Sse;
    vec![
        (
            "openai_chat/fixture",
            Dialect::OpenAiChat,
            sse,
            chat.clone(),
        ),
        (
            "openai_chat/content",
            Dialect::OpenAiChat,
            sse,
            events_with(&chat, "\"delta\":{\"content\"", None),
        ),
        (
            "openai_responses/fixture",
            Dialect::OpenAiResponses,
            sse,
            responses.clone(),
        ),
        (
            "openai_responses/content",
            Dialect::OpenAiResponses,
            sse,
            events_with(&responses, ".delta\"", None),
        ),
        (
            "anthropic/fixture",
            Dialect::AnthropicMessages,
            sse,
            anthropic.clone(),
        ),
        (
            "anthropic/content",
            Dialect::AnthropicMessages,
            sse,
            events_with(&anthropic, "content_block_delta", None),
        ),
        ("gemini/fixture", Dialect::Gemini, sse, gemini.clone()),
        (
            // Every chunk carries a running usageMetadata; the last one finishes.
            "gemini/content",
            Dialect::Gemini,
            sse,
            events_with(&gemini, "\"text\"", Some("finishReason")),
        ),
        (
            "vertex_gemini/fixture",
            Dialect::Gemini,
            sse,
            vertex.clone(),
        ),
        (
            "vertex_gemini/content",
            Dialect::Gemini,
            sse,
            events_with(&vertex, "trafficType\": \"ON_DEMAND\"}", None),
        ),
        (
            "bedrock_converse/fixture",
            Dialect::BedrockConverse,
            Framing::EventStream,
            bedrock.clone(),
        ),
        (
            "bedrock_converse/content",
            Dialect::BedrockConverse,
            Framing::EventStream,
            frames_with(&bedrock, b"contentBlockDelta"),
        ),
    ]
}

fn parse(c: &mut Criterion<ThreadCpuTime>) {
    let mut group = c.benchmark_group("usage_tap");
    for (label, dialect, framing, unit) in inputs() {
        let input = repeat(&unit);
        group.throughput(Throughput::Bytes(input.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(label), &input, |b, input| {
            b.iter(|| {
                let mut tap = UsageTap::new(dialect, framing, 1 << 20);
                for chunk in input.chunks(CHUNK) {
                    tap.feed(black_box(chunk));
                }
                tap.finish();
                black_box(tap.usage())
            })
        });
    }
    group.finish();
}

cpu_time_main!(parse);
