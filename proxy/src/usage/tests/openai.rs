//! OpenAI chat, Responses and embeddings, and the OpenAI-compatible servers.

use super::{check, check_bytes, fixture, run, tokens, Expected};
use crate::usage::{Dialect, Framing};

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
        Framing::Sse,
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
fn openai_errors_in_bodies_and_streams() {
    let body = br#"{"error":{"message":"Rate limit","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#;
    assert_eq!(
        run(Dialect::OpenAiChat, Framing::Json, &[body]).provider_error(),
        Some("requests")
    );
    let failed = b"event: response.failed\ndata: {\"type\":\"response.failed\",\"response\":{\"model\":\"gpt-5\",\"error\":{\"code\":\"server_error\",\"message\":\"x\"},\"usage\":null}}\n\n";
    let tap = run(Dialect::OpenAiResponses, Framing::Sse, &[failed]);
    assert_eq!(
        (tap.provider_error(), tap.response_model()),
        (Some("server_error"), Some("gpt-5"))
    );
    let error = b"event: error\ndata: {\"type\":\"error\",\"code\":\"rate_limit_exceeded\",\"message\":\"x\",\"param\":null}\n\n";
    let tap = run(Dialect::OpenAiResponses, Framing::Sse, &[error]);
    assert_eq!(tap.provider_error(), Some("rate_limit_exceeded"));
}

#[test]
fn openai_responses_say_which_response_they_are() {
    let stream = fixture("openai_responses_stream_usage_reasoning.sse");
    let tap = run(Dialect::OpenAiResponses, Framing::Sse, &[&stream]);
    let handle = tap.response_handle().expect("response.created names it");
    assert_eq!(
        handle.id,
        "resp_0050471a34b36ae60068c97b94a480819587a9d70cf2979b33"
    );
    assert!(!handle.background && handle.store);
    // A background create is answered `queued`, its usage still to come.
    let queued = br#"{"id":"resp_1","object":"response","status":"queued","background":true,"store":true,"model":"gpt-5","usage":null}"#;
    let tap = run(Dialect::OpenAiResponses, Framing::Json, &[queued]);
    assert!(tap
        .response_handle()
        .is_some_and(|h| h.background && !h.finished));
    assert_eq!(tap.final_tokens(), None);
    // Cancelled, with no usage: there is nothing more to wait for.
    let cancelled = br#"{"id":"resp_1","status":"cancelled","background":true,"usage":null}"#;
    let tap = run(Dialect::OpenAiResponses, Framing::Json, &[cancelled]);
    assert!(tap.response_handle().is_some_and(|h| h.finished));
    let unstored = br#"{"id":"resp_2","store":false,"usage":{"input_tokens":3,"output_tokens":4}}"#;
    let tap = run(Dialect::OpenAiResponses, Framing::Json, &[unstored]);
    assert!(tap.response_handle().is_some_and(|h| !h.store));
    assert_eq!(tap.final_tokens(), tokens(3, 4, 0, 0, 0));
}

/// Legacy completions, as OpenAI-compatible servers stream them for code completion. The shared
/// fixtures hold no recording of them: the chunks follow OpenAI's API reference and vLLM's
/// `/v1/completions` with `stream_options.include_usage`.
#[test]
fn openai_legacy_completions_report_usage_as_chat_does_with_the_text_in_choices() {
    let chunk = |choices: &str, usage: &str| {
        format!("data: {{\"id\":\"cmpl-1\",\"object\":\"text_completion\",\"created\":1,\"model\":\"qwen2.5-coder\",\"choices\":{choices},\"usage\":{usage}}}\n\n")
    };
    let stream = [
        chunk(r#"[{"index":0,"text":"def add(a, b):","logprobs":null,"finish_reason":null}]"#, "null"),
        chunk(r#"[{"index":0,"text":"\n    return a + b","logprobs":null,"finish_reason":"stop"}]"#, "null"),
        chunk("[]", r#"{"prompt_tokens":12,"total_tokens":22,"completion_tokens":10,"prompt_tokens_details":null}"#),
        "data: [DONE]\n\n".to_owned(),
    ]
    .concat();
    let expected = || Expected {
        tokens: tokens(12, 10, 0, 0, 0),
        model: Some("qwen2.5-coder"),
        error: None,
    };
    let text = check_bytes(
        stream.as_bytes(),
        Dialect::OpenAiCompletions,
        Framing::Sse,
        expected(),
    );
    assert_eq!(
        text,
        ("def add(a, b):".len() + r"\n    return a + b".len()) as u64
    );
    let body = r#"{"id":"cmpl-2","object":"text_completion","created":1,"model":"qwen2.5-coder","choices":[{"index":0,"text":"return a + b","logprobs":null,"finish_reason":"length"}],"usage":{"prompt_tokens":12,"completion_tokens":10,"total_tokens":22}}"#;
    check_bytes(
        body.as_bytes(),
        Dialect::OpenAiCompletions,
        Framing::Json,
        expected(),
    );
    // A stream cut before its usage: the text that passed is what an estimate is made from.
    let cut = &stream.as_bytes()[..stream.find("\"choices\":[]").unwrap()];
    let tap = run(Dialect::OpenAiCompletions, Framing::Sse, &[cut]);
    assert_eq!((tap.final_tokens(), tap.content_bytes()), (None, text));
}
