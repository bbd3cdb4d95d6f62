//! Gemini and Vertex AI: SSE streams, the streamed JSON array, whole bodies.

use super::{check, check_bytes, fixture, run, tokens, Expected};
use crate::usage::{Dialect, Framing};

/// The data payloads of an SSE fixture, as the JSON array Gemini streams
/// without `alt=sse` (elements separated by `,\r\n`, as the API sends them).
fn as_json_array(sse: &[u8]) -> Vec<u8> {
    let text = String::from_utf8(sse.to_vec()).expect("UTF-8");
    let payloads: Vec<&str> = text
        .lines()
        .filter_map(|line| line.strip_prefix("data: "))
        .map(str::trim_end)
        .collect();
    format!("[{}]", payloads.join(",\r\n")).into_bytes()
}

fn gemini(tokens: Option<crate::usage::Tokens>, model: &'static str) -> Expected {
    Expected {
        tokens,
        model: Some(model),
        error: None,
    }
}

/// The SSE fixture, and the same responses as a streamed JSON array, give `expected`.
fn check_both(file: &str, tokens: Option<crate::usage::Tokens>, model: &'static str) -> u64 {
    let content = check(file, Dialect::Gemini, gemini(tokens, model));
    let array = as_json_array(&fixture(file));
    let array_content = check_bytes(
        &array,
        Dialect::Gemini,
        Framing::Json,
        gemini(tokens, model),
    );
    assert_eq!(content, array_content);
    content
}

#[test]
fn gemini_stream_sse_usage_thoughts() {
    // Last chunk: prompt 18, candidates 80, thoughts 35 (not part of candidates).
    let content = check_both(
        "gemini_stream_sse_usage_thoughts.sse",
        tokens(18, 80 + 35, 0, 0, 35),
        "gemini-2.5-flash",
    );
    let text: String = (1..=30).map(|n| format!("{n}\\n")).collect();
    assert_eq!(content, text.trim_end_matches("\\n").len() as u64);
}

#[test]
fn gemini_stream_sse_prompt_count_changes() {
    // prompt 15, 15, then 13 with candidates 8: the last report wins.
    check_both(
        "gemini_stream_sse_prompt_count_changes.sse",
        tokens(13, 8, 0, 0, 0),
        "gemini-2.0-flash",
    );
}

#[test]
fn gemini_stream_sse_single_chunk() {
    check_both(
        "gemini_stream_sse_single_chunk.sse",
        tokens(6, 1 + 35, 0, 0, 35),
        "gemini-2.5-flash",
    );
}

#[test]
fn vertex_gemini_stream_sse_usage_last_only() {
    // Middle chunks carry only trafficType; the last: prompt 16, candidates 163, thoughts 63.
    check_both(
        "vertex_gemini_stream_sse_usage_last_only.sse",
        tokens(16, 163 + 63, 0, 0, 63),
        "gemini-2.5-flash",
    );
}

#[test]
fn gemini_generate_content_cached_usage() {
    // prompt 17713 of which cached 17379; candidates 68 + thoughts 821.
    check(
        "gemini_generate_content_cached_usage.json",
        Dialect::Gemini,
        gemini(tokens(17713, 68 + 821, 17379, 0, 821), "gemini-2.5-flash"),
    );
}

#[test]
fn gemini_cut_stream_keeps_the_running_total_but_is_not_complete() {
    let sse = fixture("gemini_stream_sse_usage_thoughts.sse");
    let second = sse
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("two events")
        + 4;
    let tap = run(Dialect::Gemini, Framing::Sse, &[&sse[..second]]);
    assert_eq!(tap.usage().normalize(), tokens(18, 31 + 35, 0, 0, 35));
    assert!(!tap.usage_complete());
    // The last chunk cut inside its usageMetadata: its finishReason went by, its figures did not.
    let text = String::from_utf8(sse.clone()).expect("UTF-8");
    let cut = text.rfind("\"totalTokenCount\"").expect("present");
    let tap = run(Dialect::Gemini, Framing::Sse, &[&sse[..cut]]);
    assert_eq!(tap.usage().normalize(), tokens(18, 79 + 35, 0, 0, 35));
    assert!(!tap.usage_complete());
}

#[test]
fn gemini_errors_in_bodies_and_streams() {
    let body =
        br#"{"error":{"code":429,"message":"Resource exhausted","status":"RESOURCE_EXHAUSTED"}}"#;
    let tap = run(Dialect::Gemini, Framing::Json, &[body]);
    assert_eq!(tap.provider_error(), Some("RESOURCE_EXHAUSTED"));
    assert_eq!(tap.usage().normalize(), None);
    let stream = b"event: error\ndata: {\"error\":{\"code\":500,\"message\":\"x\",\"status\":\"INTERNAL\"}}\n\n";
    let tap = run(Dialect::Gemini, Framing::Sse, &[stream]);
    assert_eq!(tap.provider_error(), Some("INTERNAL"));
    // An error as the last element of a streamed array.
    let array = br#"[{"candidates":[{"content":{"parts":[{"text":"a"}]}}],"usageMetadata":{"promptTokenCount":3}},
{"error":{"code":503,"message":"overloaded","status":"UNAVAILABLE"}}]"#;
    let tap = run(Dialect::Gemini, Framing::Json, &[array]);
    assert_eq!(tap.provider_error(), Some("UNAVAILABLE"));
    assert_eq!(tap.usage().input, Some(3));
    assert!(!tap.usage_complete());
}

#[test]
fn gemini_tool_use_prompt_tokens_are_input() {
    let body = br#"{"candidates":[{"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":10,"toolUsePromptTokenCount":7,"candidatesTokenCount":2,"totalTokenCount":19}}"#;
    let tap = run(Dialect::Gemini, Framing::Json, &[body]);
    assert_eq!(tap.usage().normalize(), tokens(17, 2, 0, 0, 0));
}

#[test]
fn audio_and_image_tokens_are_read_from_the_final_chunk_by_modality() {
    let chunk = |candidates: u32, finish: &str, details: &str| {
        format!(
            r#"data: {{"candidates":[{{"content":{{"parts":[{{"text":"Hi"}}],"role":"model"}}{finish}}}],"usageMetadata":{{"promptTokenCount":900,"candidatesTokenCount":{candidates},"totalTokenCount":{},"promptTokensDetails":{details}}},"modelVersion":"gemini-2.5-flash-image"}}"#,
            900 + candidates
        ) + "\r\n\r\n"
    };
    let prompt = r#"[{"modality":"TEXT","tokenCount":10},{"modality":"AUDIO","tokenCount":632},{"modality":"IMAGE","tokenCount":258}]"#;
    let stream = [
        chunk(1, "", prompt),
        chunk(2, "", prompt),
        chunk(1292, r#","finishReason":"STOP""#, &format!(r#"{prompt},"candidatesTokensDetails":[{{"modality":"IMAGE","tokenCount":1290}},{{"modality":"TEXT","tokenCount":2}}]"#)),
    ]
    .concat();
    for framing in [Framing::Sse, Framing::Json] {
        let body = match framing {
            Framing::Sse => stream.clone().into_bytes(),
            _ => as_json_array(stream.as_bytes()),
        };
        let usage = run(Dialect::Gemini, framing, &[&body]).usage();
        let parts = usage.parts;
        assert_eq!((usage.input, usage.output), (Some(900), Some(1292)));
        assert_eq!(
            (parts.audio_input, parts.image_input),
            (Some(632), Some(258))
        );
        assert_eq!((parts.image_output, parts.audio_output), (Some(1290), None));
    }
    // Text alone: no parts.
    let text = chunk(
        5,
        r#","finishReason":"STOP""#,
        r#"[{"modality":"TEXT","tokenCount":900}]"#,
    );
    let usage = run(Dialect::Gemini, Framing::Sse, &[text.as_bytes()]).usage();
    assert_eq!(usage.parts, crate::usage::Parts::default());
}
