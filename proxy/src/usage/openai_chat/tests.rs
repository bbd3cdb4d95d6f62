use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{include_usage_edit, IncludeUsageStripper};
use crate::usage::tests::{fixture, XorShift};
use crate::usage::{Dialect, Framing, Tokens, UsageTap};

fn strip(chunks: &[&[u8]]) -> Vec<u8> {
    let mut stripper = IncludeUsageStripper::new();
    let mut out = Vec::new();
    for chunk in chunks {
        stripper.filter(chunk, &mut out);
    }
    stripper.finish(&mut out);
    out
}

/// `stream` split in two at every byte and in 1-byte chunks must strip to `expected`.
fn assert_strips_to(stream: &[u8], expected: &[u8]) {
    let show = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    for i in 0..=stream.len() {
        let out = strip(&[&stream[..i], &stream[i..]]);
        assert_eq!(show(&out), show(expected), "split at {i}");
    }
    let bytes: Vec<&[u8]> = stream.chunks(1).collect();
    assert_eq!(show(&strip(&bytes)), show(expected), "1-byte chunks");
}

/// The fixture as the client would have had it without `include_usage`:
/// no usage chunk, no `"usage":null`.
fn without_usage(stream: &str, blank: &str) -> String {
    let events = stream.split_inclusive(blank);
    let kept = events.filter(|event| !event.contains("\"choices\":[]"));
    kept.collect::<String>().replace(",\"usage\":null", "")
}

#[test]
fn stripper_removes_the_usage_chunk_and_null_usage_at_every_split() {
    let original = fixture("openai_chat_stream_usage.sse");
    let text = String::from_utf8(original.clone()).expect("fixture is UTF-8");
    let expected = without_usage(&text, "\n\n");
    assert!(expected.len() < text.len() && !expected.contains("usage"));
    assert!(expected.ends_with("data: [DONE]\n\n"));
    assert_strips_to(&original, expected.as_bytes());

    // The tap, fed the original bytes, still sees the usage.
    let mut tap = UsageTap::new(Dialect::OpenAiChat, Framing::Sse, 1 << 20);
    tap.feed(&original);
    tap.finish();
    let usage = Tokens {
        input: 14,
        output: 8,
        ..Tokens::default()
    };
    assert_eq!(tap.usage().normalize(), Some(usage));
}

#[test]
fn stripper_handles_crlf_and_cr_streams() {
    let text = String::from_utf8(fixture("openai_chat_stream_usage_reasoning.sse")).expect("UTF-8");
    for ending in ["\r\n", "\r"] {
        let stream = text.replace('\n', ending);
        let expected = without_usage(&stream, &ending.repeat(2));
        assert!(!expected.contains("usage"));
        assert_strips_to(stream.as_bytes(), expected.as_bytes());
    }
}

#[test]
fn stripper_passes_an_oversized_event_through_and_keeps_filtering() {
    let big = format!(
        "data: {{\"choices\":[{{\"delta\":{{\"content\":\"{}\"}}}}],\"usage\":null}}\n\n",
        "x".repeat(300_000)
    );
    let small = "data: {\"choices\":[],\"usage\":null,\"id\":1}\n\n";
    let usage = "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":1}}\n\n";
    let stream = format!("{big}{small}{usage}data: [DONE]\n\n");
    let chunks: Vec<&[u8]> = stream.as_bytes().chunks(4096).collect();
    let out = String::from_utf8(strip(&chunks)).expect("UTF-8");
    let expected = format!("{big}data: {{\"choices\":[],\"id\":1}}\n\ndata: [DONE]\n\n");
    assert_eq!(out.len(), expected.len());
    assert!(out == expected);
}

#[test]
fn stripper_finish_filters_an_unterminated_last_event() {
    let stream = b"data: {\"choices\":[{}],\"usage\":null}\n\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":1}}";
    assert_eq!(strip(&[stream]), b"data: {\"choices\":[{}]}\n\n");
}

#[test]
fn null_usage_is_removed_wherever_it_sits() {
    let cases: [(&[u8], &[u8]); 6] = [
        (
            b"data: {\"usage\":null,\"usage\":null,\"a\":1}\n\n",
            b"data: {\"a\":1}\n\n",
        ),
        (
            b"data: {\"a\":1,\"usage\":null,\"usage\":null}\n\n",
            b"data: {\"a\":1}\n\n",
        ),
        (
            b"data: {\"a\":1, \"usage\" : null }\n\n",
            b"data: {\"a\":1 }\n\n",
        ),
        (
            b"data: {\"usage\":null,\"a\":1}\n\n",
            b"data: {\"a\":1}\n\n",
        ),
        (b"data: {\"usage\":null}\n\n", b"data: {\"usage\":null}\n\n"),
        (
            b"data: {\"x\":{\"usage\":nullish}}\n\n",
            b"data: {\"x\":{\"usage\":nullish}}\n\n",
        ),
    ];
    for (input, expected) in cases {
        assert_eq!(
            String::from_utf8_lossy(&strip(&[input])),
            String::from_utf8_lossy(expected)
        );
    }
}

/// Reads the body as the proxy does, then injects into it; None also for a body the proxy refuses.
fn inject(body: &[u8]) -> Option<Vec<u8>> {
    let request = crate::body::parse_fields(body).ok()?;
    let edit = include_usage_edit(body, &request)?;
    Some(crate::usage::json::splice(body, &mut [edit]))
}

/// Injects, parses the result (it must be valid JSON) and returns it.
fn injected(body: &[u8]) -> Option<Value> {
    let out = inject(body)?;
    Some(serde_json::from_slice(&out).expect("injected body is valid JSON"))
}

#[test]
fn inject_leaves_non_streaming_and_already_asking_requests_alone() {
    assert_eq!(injected(br#"{"model":"m","messages":[]}"#), None);
    assert_eq!(injected(br#"{"model":"m","stream":false}"#), None);
    assert_eq!(
        injected(br#"{"stream":true,"stream_options":{"include_usage":true}}"#),
        None
    );
    assert_eq!(injected(br#"[true]"#), None);
    assert_eq!(injected(br#"{"stream":true,"stream_options":7}"#), None);
    assert_eq!(injected(br#"{"stream":true,"#), None);
    assert_eq!(injected(br#"{"stream":true,"stream":true}"#), None);
    // Which of two `stream_options` a provider reads is its own affair: neither is touched.
    for twice in [
        br#"{"stream":true,"stream_options":null,"stream_options":{"include_usage":true}}"#
            .as_slice(),
        br#"{"stream":true,"stream_options":{},"stream\u005foptions":{"include_usage":true}}"#,
    ] {
        assert_eq!(injected(twice), None);
    }
}

#[test]
fn inject_adds_stream_options() {
    let out = injected(
        br#"{"model":"gpt-4.1-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}"#,
    );
    let expected = json!({"model":"gpt-4.1-mini","stream":true,"messages":[{"role":"user","content":"hi"}],"stream_options":{"include_usage":true}});
    assert_eq!(out, Some(expected));
}

#[test]
fn inject_adds_include_usage_inside_existing_stream_options() {
    let out = injected(br#"{"stream":true,"stream_options":{"continuous_usage_stats":false}}"#);
    let expected = json!({"stream":true,"stream_options":{"continuous_usage_stats":false,"include_usage":true}});
    assert_eq!(out, Some(expected));
    let out = injected(br#"{"stream":true,"stream_options":{ }}"#);
    assert_eq!(
        out,
        Some(json!({"stream":true,"stream_options":{"include_usage":true}}))
    );
    let out = injected(br#"{"stream":true,"stream_options":null}"#);
    assert_eq!(
        out,
        Some(json!({"stream":true,"stream_options":{"include_usage":true}}))
    );
}

#[test]
fn inject_turns_include_usage_false_into_true() {
    let body = br#"{"stream_options":{"include_usage":false,"x":[1,{"y":"}"}]},"stream":true}"#;
    let expected = json!({"stream_options":{"include_usage":true,"x":[1,{"y":"}"}]},"stream":true});
    assert_eq!(injected(body), Some(expected));
    let body = br#"{"stream":true,"stream_options":{"include_usage":null}}"#;
    assert_eq!(
        injected(body),
        Some(json!({"stream":true,"stream_options":{"include_usage":true}}))
    );
}

#[test]
fn inject_handles_pretty_printed_bodies() {
    let body = b" \n{\n  \"messages\": [ {\"content\": \"a \\\"quoted\\\" {brace\"} ],\n  \"stream\" : true ,\n  \"stream_options\" : {\n    \"include_usage\" : false\n  }\n}\n";
    let expected = json!({"messages":[{"content":"a \"quoted\" {brace"}],"stream":true,"stream_options":{"include_usage":true}});
    assert_eq!(injected(body), Some(expected));
    let body = b"\t{ \"stream\": true }";
    assert_eq!(
        injected(body),
        Some(json!({"stream":true,"stream_options":{"include_usage":true}}))
    );
}

#[test]
fn inject_does_not_guess_at_escaped_member_names() {
    assert_eq!(
        injected(br#"{"stream":true,"stream\u005foptions":{"include_usage":false}}"#),
        None
    );
}

#[test]
fn the_model_rename_and_include_usage_are_made_in_one_copy_in_either_order() {
    for (body, expected) in [
        (
            &br#"{"model":"openai/gpt-4o","stream":true}"#[..],
            &br#"{"stream_options":{"include_usage":true},"model":"gpt-4o","stream":true}"#[..],
        ),
        (
            br#"{"stream_options":{"include_usage":false},"stream":true,"model":"openai/gpt-4o"}"#,
            br#"{"stream_options":{"include_usage":true},"stream":true,"model":"gpt-4o"}"#,
        ),
        (
            br#"{"stream":true,"model":"openai/gpt-4o","stream_options":null}"#,
            br#"{"stream":true,"model":"gpt-4o","stream_options":{"include_usage":true}}"#,
        ),
    ] {
        let request = crate::body::parse_fields(body).unwrap();
        let rename = request.model_edit("gpt-4o").unwrap();
        let ask = include_usage_edit(body, &request).expect("asks for usage");
        let whole = bytes::Bytes::copy_from_slice(body);
        let out = crate::body::edited(&whole, &mut [ask, rename]);
        assert_eq!(out, expected, "{}", String::from_utf8_lossy(body));
    }
}

#[test]
fn inject_is_fast_and_valid_on_a_5_mib_body() {
    let image = "A".repeat(5 << 20);
    let body = json!({
        "model": "gpt-4.1-mini",
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "what is this? {\"stream_options\": 1}"},
            {"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{image}")}}
        ]}],
        "stream": true
    });
    let bytes = serde_json::to_vec_pretty(&body).expect("serializes");
    let started = Instant::now();
    let out = inject(&bytes).expect("stream:true gets include_usage");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "took {took:?}");
    let parsed: Value = serde_json::from_slice(&out).expect("valid JSON");
    assert_eq!(parsed["stream_options"], json!({"include_usage": true}));
    assert_eq!(parsed["messages"], body["messages"]);
    assert_eq!(
        out.len(),
        bytes.len() + r#""stream_options":{"include_usage":true},"#.len()
    );
}

#[test]
fn mangled_requests_and_streams_never_panic_or_give_invalid_json() {
    let request = br#"{"model":"m","messages":[{"role":"user","content":"a\"b"}],"stream":true,"stream_options":{"include_usage":false,"x":[1,2]}}"#;
    let stream = fixture("openai_chat_stream_usage.sse");
    let nasty = b"\r\n\"\\{}[]:, tnul";
    let mut rng = XorShift(0x2545_F491_4F6C_DD1D);
    let mut below = |n: usize| rng.below(n);
    for _ in 0..3000 {
        let mut body = request.to_vec();
        let at = below(body.len());
        body[at] = nasty[below(nasty.len())];
        if let Some(out) = inject(&body) {
            let parsed: Value = serde_json::from_slice(&out).expect("valid JSON");
            assert_eq!(parsed["stream_options"]["include_usage"], json!(true));
        }
    }
    for _ in 0..300 {
        let mut bytes = stream.clone();
        let at = below(bytes.len());
        bytes[at] = nasty[below(nasty.len())];
        let chunk = 1 + below(50);
        let chunks: Vec<&[u8]> = bytes.chunks(chunk).collect();
        assert_eq!(strip(&chunks), strip(&[&bytes]));
    }
}
