//! Every way a response can end gives one record, with the provider's figures where they
//! arrived and honest estimates where they did not.

use std::sync::Arc;

use bytes::Bytes;
use http::HeaderMap;
use tailmeter_exporters::{TokenCounts, UsageSource};

use super::{Ending, Meter, Metered, Settled};
use crate::usage::tests::fixture;
use crate::usage::{estimate, Dialect};

const CHAT_REQUEST: &[u8] =
    br#"{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"Count to two."}]}"#;

fn headers(content_type: &str, extra: &[(&'static str, &str)]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        http::header::CONTENT_TYPE,
        content_type.parse().expect("valid"),
    );
    for (name, value) in extra {
        headers.insert(*name, value.parse().expect("valid"));
    }
    headers
}

/// What a meter that saw `status` with `headers`, then `body` in 7-byte pieces (ending the
/// body only when `ending` is `Complete`), then the ending, says.
fn meter(
    dialect: Dialect,
    model: &str,
    request: &[u8],
    response: Option<(u16, HeaderMap, &[u8])>,
    ending: Ending,
) -> Metered {
    fed(dialect, model, request, response, ending).finish(ending)
}

/// The meter of [`meter`], before its ending.
fn fed(
    dialect: Dialect,
    model: &str,
    request: &[u8],
    response: Option<(u16, HeaderMap, &[u8])>,
    ending: Ending,
) -> Meter {
    let mut meter = Meter::start();
    meter.expect_usage(dialect, Arc::from(model), Bytes::copy_from_slice(request));
    if let Some((status, headers, body)) = response {
        meter.on_response_header(status, &headers, false);
        for piece in body.chunks(7) {
            meter.on_body(&mut Some(Bytes::copy_from_slice(piece)), false);
        }
        if ending == Ending::Complete {
            meter.on_body(&mut None, true);
        }
    }
    meter
}

fn sse() -> HeaderMap {
    headers("text/event-stream; charset=utf-8", &[])
}

#[test]
fn a_complete_report_is_the_providers_whatever_the_ending() {
    let body = fixture("openai_chat_stream_usage.sse");
    for ending in [Ending::Complete, Ending::ClientGone] {
        let got = meter(
            Dialect::OpenAiChat,
            "gpt-4o",
            CHAT_REQUEST,
            Some((200, sse(), &body)),
            ending,
        );
        assert_eq!(got.source, UsageSource::Provider);
        assert_eq!((got.tokens.input, got.tokens.output), (14, 8));
        assert_eq!(got.missing_reason, None);
        assert_eq!(got.response_model.as_deref(), Some("gpt-4o-2024-08-06"));
    }
}

#[test]
fn a_cut_stream_is_estimated_with_its_reason() {
    let body = fixture("openai_chat_stream_usage.sse");
    let half = &body[..body.len() / 2];
    let input = estimate::input_tokens("gpt-4o", CHAT_REQUEST);
    assert_eq!(input, 4);
    for (ending, reason) in [
        (Ending::ClientGone, "client_disconnect"),
        (Ending::UpstreamFailed, "upstream_reset"),
        (Ending::UpstreamIdleTimeout, "upstream_idle_timeout"),
        (
            Ending::UpstreamFirstByteTimeout,
            "upstream_first_byte_timeout",
        ),
        (Ending::Shutdown, "shutdown"),
    ] {
        let got = meter(
            Dialect::OpenAiChat,
            "gpt-4o",
            CHAT_REQUEST,
            Some((200, sse(), half)),
            ending,
        );
        assert_eq!(got.source, UsageSource::Estimated);
        assert_eq!(got.missing_reason, Some(reason));
        assert_eq!(got.tokens.input, input);
        assert!(got.tokens.output > 0, "text passed before the cut");
    }
}

#[test]
fn only_an_input_the_provider_did_not_report_waits_for_an_estimate() {
    let body = fixture("openai_chat_stream_usage.sse");
    let half = Some((200, sse(), &body[..body.len() / 2]));
    let cut = || {
        fed(
            Dialect::OpenAiChat,
            "gpt-4o",
            CHAT_REQUEST,
            half.clone(),
            Ending::ClientGone,
        )
    };
    let Settled::NeedsInput(pending) = cut().settle(Ending::ClientGone) else {
        panic!("a cut OpenAI stream reports no input");
    };
    assert_eq!(pending.estimate_here(), cut().finish(Ending::ClientGone));
    // Anthropic's message_start reports the input: nothing waits; nor for a whole OpenAI stream.
    let text = String::from_utf8(fixture("anthropic_messages_stream_basic.sse")).expect("UTF-8");
    let started = &text.as_bytes()[..text.find("event: content_block_stop").expect("present")];
    let claude = (Dialect::AnthropicMessages, "claude-sonnet-4-5", &b"{}"[..]);
    let gpt = (Dialect::OpenAiChat, "gpt-4o", CHAT_REQUEST);
    for ((dialect, model, request), response, ending, waits) in [
        (gpt, None, Ending::UpstreamFailed, true),
        (
            claude,
            Some((200, sse(), started)),
            Ending::ClientGone,
            false,
        ),
        (gpt, Some((200, sse(), &body[..])), Ending::Complete, false),
    ] {
        let settled = fed(dialect, model, request, response, ending).settle(ending);
        assert_eq!(
            matches!(settled, Settled::NeedsInput(_)),
            waits,
            "{model} {ending:?}"
        );
    }
}

#[test]
fn partial_provider_figures_are_kept_and_the_rest_estimated() {
    // Cut after message_start: Anthropic's input (20) stands, output is at least what passed.
    let body = fixture("anthropic_messages_stream_basic.sse");
    let text = String::from_utf8(body).expect("UTF-8");
    let cut = text.find("event: content_block_stop").expect("present");
    let got = meter(
        Dialect::AnthropicMessages,
        "claude-sonnet-4-5",
        b"{}",
        Some((200, sse(), &text.as_bytes()[..cut])),
        Ending::UpstreamIdleTimeout,
    );
    assert_eq!(got.source, UsageSource::Estimated);
    assert_eq!(got.missing_reason, Some("upstream_idle_timeout"));
    assert_eq!(got.tokens.input, 20);
    assert_eq!(got.tokens.output, 1, "message_start's output_tokens: 1");
}

#[test]
fn a_server_that_never_reports_usage_is_estimated_not_zero() {
    let body = fixture("openai_compat_vllm_stream_usage.sse");
    let text = String::from_utf8(body).expect("UTF-8");
    let without_usage: String = text
        .split_inclusive("\n\n")
        .filter(|event| !event.contains("\"usage\""))
        .collect();
    let got = meter(
        Dialect::OpenAiChat,
        "meta-llama/Llama-3.3-70B-Instruct",
        CHAT_REQUEST,
        Some((200, sse(), without_usage.as_bytes())),
        Ending::Complete,
    );
    assert_eq!(got.source, UsageSource::Estimated);
    assert_eq!(got.missing_reason, Some("not_reported"));
    // "Count to two.\n" at 4 bytes a token (not an OpenAI model).
    assert_eq!(got.tokens.input, 4);
    assert!(got.tokens.output > 0);
}

#[test]
fn a_whole_body_is_estimated_from_its_text_only_without_usage() {
    let text = "x".repeat(400);
    let with = format!(
        r#"{{"model":"gpt-4o","choices":[{{"message":{{"content":"{text}"}}}}],"usage":{{"prompt_tokens":9,"completion_tokens":3}}}}"#
    );
    let without =
        format!(r#"{{"model":"gpt-4o","choices":[{{"message":{{"content":"{text}"}}}}]}}"#);
    let json = || headers("application/json", &[]);
    let got = |body: &str| {
        meter(
            Dialect::OpenAiChat,
            "gpt-4o",
            CHAT_REQUEST,
            Some((200, json(), body.as_bytes())),
            Ending::Complete,
        )
    };
    let reported = got(&with);
    assert_eq!(reported.source, UsageSource::Provider);
    assert_eq!((reported.tokens.input, reported.tokens.output), (9, 3));
    let estimated = got(&without);
    assert_eq!(estimated.source, UsageSource::Estimated);
    assert_eq!(estimated.missing_reason, Some("not_reported"));
    assert_eq!(estimated.tokens.output, estimate::output_tokens(400));
}

#[test]
fn an_error_event_mid_stream_is_estimated() {
    let body = fixture("openai_compat_groq_stream_midstream_error.sse");
    let got = meter(
        Dialect::OpenAiChat,
        "openai/gpt-oss-120b",
        CHAT_REQUEST,
        Some((200, sse(), &body)),
        Ending::Complete,
    );
    assert_eq!(got.source, UsageSource::Estimated);
    assert_eq!(got.missing_reason, Some("upstream_error_event"));
    assert!(got.tokens.output > 100, "the reasoning text that passed");
}

#[test]
fn a_refused_request_costs_nothing() {
    let body =
        br#"{"error":{"message":"slow down","type":"requests","code":"rate_limit_exceeded"}}"#;
    let json = headers("application/json", &[]);
    let got = meter(
        Dialect::OpenAiChat,
        "gpt-4o",
        CHAT_REQUEST,
        Some((429, json, body)),
        Ending::Complete,
    );
    assert_eq!(got.source, UsageSource::None);
    assert_eq!(got.tokens, TokenCounts::default());
    assert_eq!(got.missing_reason, Some("upstream_error_status"));
}

#[test]
fn no_answer_at_all() {
    let got = meter(
        Dialect::OpenAiChat,
        "gpt-4o",
        CHAT_REQUEST,
        None,
        Ending::NotSent,
    );
    assert_eq!((got.source, got.missing_reason), (UsageSource::None, None));
    // Sent, then the upstream went idle before any header: the prompt may have been read.
    let got = meter(
        Dialect::OpenAiChat,
        "gpt-4o",
        CHAT_REQUEST,
        None,
        Ending::UpstreamIdleTimeout,
    );
    assert_eq!(got.source, UsageSource::Estimated);
    assert_eq!((got.tokens.input, got.tokens.output), (4, 0));
    assert_eq!(got.missing_reason, Some("upstream_idle_timeout"));
}

#[test]
fn images_and_audio_without_token_figures_are_recorded_without_any_never_estimated() {
    const SPEECH: &[u8] =
        br#"{"model":"tts-1","input":"Hello there, how are you?","voice":"alloy"}"#;
    let media = |response, ending| meter(Dialect::OpenAiMedia, "tts-1", SPEECH, response, ending);
    let audio = headers("audio/mpeg", &[]);
    let cases = [
        (
            Some((200, audio, &b"ID3\x04"[..])),
            Ending::Complete,
            "no_token_usage",
        ),
        (None, Ending::UpstreamIdleTimeout, "upstream_idle_timeout"),
    ];
    for (response, ending, reason) in cases {
        let got = media(response, ending);
        assert_eq!(got.source, UsageSource::None, "{reason}");
        assert_eq!(got.tokens, TokenCounts::default());
        assert_eq!(got.missing_reason, Some(reason));
    }
    let cut = b"data: {\"type\":\"speech.audio.delta\",\"audio\":\"SUQz\"}\n\n";
    let got = media(Some((200, sse(), cut)), Ending::ClientGone);
    assert_eq!(
        (got.source, got.missing_reason),
        (UsageSource::None, Some("client_disconnect"))
    );
    let done = b"data: {\"type\":\"speech.audio.done\",\"usage\":{\"input_tokens\":7,\"output_tokens\":90}}\n\n";
    let got = media(Some((200, sse(), done)), Ending::Complete);
    assert_eq!(
        (got.source, got.tokens.input, got.tokens.output),
        (UsageSource::Provider, 7, 90)
    );
}

#[test]
fn a_transcriptions_seconds_are_kept_for_its_price_per_minute() {
    const FORM: &[u8] =
        b"--b\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-1\r\n--b--\r\n";
    let json = || headers("application/json", &[]);
    let whisper = |body| {
        meter(
            Dialect::OpenAiMedia,
            "whisper-1",
            FORM,
            Some((200, json(), body)),
            Ending::Complete,
        )
    };
    let cases: [(&[u8], Option<u64>); 4] = [
        (
            br#"{"text":"Hi.","usage":{"type":"duration","seconds":9}}"#,
            Some(9_000),
        ),
        // A translation's `verbose_json` gives its length, no usage.
        (
            br#"{"task":"translate","duration":8.4706,"text":"Hi.","segments":[]}"#,
            Some(8_471),
        ),
        (
            br#"{"text":"Hi.","duration":8.0,"usage":{"type":"duration","seconds":"9"}}"#,
            None,
        ),
        (br#"{"text":"Hi."}"#, None),
    ];
    for (body, audio_ms) in cases {
        let got = whisper(body);
        assert_eq!(
            got.parts.audio_ms,
            audio_ms,
            "{}",
            String::from_utf8_lossy(body)
        );
        assert_eq!(
            (got.source, got.tokens),
            (UsageSource::None, TokenCounts::default())
        );
        assert_eq!(got.missing_reason, Some("no_token_usage"));
    }
}

#[test]
fn a_retried_attempt_is_not_counted_twice() {
    let body = fixture("openai_chat_stream_usage.sse");
    let mut meter = Meter::start();
    meter.expect_usage(
        Dialect::OpenAiChat,
        Arc::from("gpt-4o"),
        Bytes::from_static(CHAT_REQUEST),
    );
    // A first attempt delivers its whole stream, then a second one replaces it.
    for _ in 0..2 {
        meter.on_response_header(200, &sse(), false);
        meter.on_body(&mut Some(Bytes::from(body.clone())), false);
    }
    meter.on_body(&mut None, true);
    let got = meter.finish(Ending::Complete);
    assert_eq!((got.tokens.input, got.tokens.output), (14, 8));
}

#[test]
fn bedrock_streams_and_invoke_headers() {
    let body = fixture("bedrock_converse_stream_claude.eventstream.bin");
    let frames = headers("application/vnd.amazon.eventstream", &[]);
    let got = meter(
        Dialect::BedrockConverse,
        "claude",
        b"{}",
        Some((200, frames, &body)),
        Ending::Complete,
    );
    assert_eq!(got.source, UsageSource::Provider);
    assert_eq!((got.tokens.input, got.tokens.output), (210, 18));
    let json = headers(
        "application/json",
        &[
            ("x-amzn-bedrock-input-token-count", "11"),
            ("x-amzn-bedrock-output-token-count", "4"),
        ],
    );
    let got = meter(
        Dialect::BedrockInvoke,
        "claude",
        b"{}",
        Some((200, json, b"{}")),
        Ending::Complete,
    );
    assert_eq!(
        (got.source, got.tokens.input, got.tokens.output),
        (UsageSource::Provider, 11, 4)
    );
}

#[test]
fn a_gemini_json_array_stream_is_read_as_it_comes() {
    let body = fixture("gemini_stream_sse_prompt_count_changes.sse");
    let text = String::from_utf8(body).expect("UTF-8");
    let items: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .collect();
    let array = format!("[{}]", items.join(",\r\n"));
    let json = headers("application/json; charset=UTF-8", &[]);
    let got = meter(
        Dialect::Gemini,
        "gemini-2.0-flash",
        b"{}",
        Some((200, json, array.as_bytes())),
        Ending::Complete,
    );
    assert_eq!(
        (got.source, got.tokens.input, got.tokens.output),
        (UsageSource::Provider, 13, 8)
    );
}

#[test]
fn a_background_response_not_finished_is_left_to_its_retrieval() {
    let request = br#"{"model":"gpt-5","input":"hi","background":true}"#;
    let queued = br#"{"id":"resp_1","status":"queued","background":true,"usage":null}"#;
    let json = headers("application/json", &[]);
    let created = (200, json.clone(), &queued[..]);
    let metered = meter(
        Dialect::OpenAiResponses,
        "gpt-5",
        request,
        Some(created),
        Ending::Complete,
    );
    assert_eq!(metered.source, UsageSource::None);
    assert_eq!(
        (metered.tokens, metered.missing_reason),
        (TokenCounts::default(), None)
    );
    // Its stream cut by the client: the run goes on at the provider, so nothing is estimated.
    let stream = fixture("openai_responses_stream_usage_reasoning.sse");
    let text = String::from_utf8(stream).expect("utf-8");
    let background = text.replacen("\"background\":false", "\"background\":true", 1);
    let cut = &background.as_bytes()[..background.len() / 2];
    let metered = meter(
        Dialect::OpenAiResponses,
        "gpt-5",
        request,
        Some((200, sse(), cut)),
        Ending::ClientGone,
    );
    assert_eq!(
        (metered.source, metered.missing_reason),
        (UsageSource::None, None)
    );
    assert_eq!(metered.tokens, TokenCounts::default());
}

#[test]
fn a_retrieval_reports_what_its_answer_says_and_never_estimates() {
    let mut polled = Meter::start();
    polled.expect_reported_usage(Dialect::OpenAiResponses, Arc::from("gpt-5"));
    polled.on_response_header(200, &headers("application/json", &[]), false);
    polled.on_body(&mut Some(Bytes::from_static(br#"{"id":"resp_1","status":"in_progress","output":[{"content":[{"text":"partial"}]}],"usage":null}"#)), true);
    let metered = polled.finish(Ending::Complete);
    assert_eq!(
        (metered.source, metered.tokens),
        (UsageSource::None, TokenCounts::default())
    );
    let mut done = Meter::start();
    done.expect_reported_usage(Dialect::OpenAiResponses, Arc::from("gpt-5"));
    done.on_response_header(200, &headers("application/json", &[]), false);
    done.on_body(
        &mut Some(Bytes::from_static(
            br#"{"id":"resp_1","status":"completed","usage":{"input_tokens":5,"output_tokens":9}}"#,
        )),
        true,
    );
    let metered = done.finish(Ending::Complete);
    assert_eq!(metered.source, UsageSource::Provider);
    assert_eq!((metered.tokens.input, metered.tokens.output), (5, 9));
    let mut missing = Meter::start();
    missing.expect_reported_usage(Dialect::OpenAiResponses, Arc::from("gpt-5"));
    missing.on_response_header(404, &headers("application/json", &[]), false);
    missing.on_body(
        &mut Some(Bytes::from_static(
            br#"{"error":{"message":"Response with id 'resp_x' not found."}}"#,
        )),
        true,
    );
    let metered = missing.finish(Ending::Complete);
    assert_eq!(
        (metered.source, metered.missing_reason),
        (UsageSource::None, None)
    );
    let mut gone = Meter::start();
    gone.expect_reported_usage(Dialect::OpenAiResponses, Arc::from("gpt-5"));
    assert_eq!(
        gone.finish(Ending::UpstreamFailed).source,
        UsageSource::None
    );
}
