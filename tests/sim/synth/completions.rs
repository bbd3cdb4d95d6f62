//! OpenAI's legacy completions (`POST /v1/completions`), synthesized as OpenAI and the
//! OpenAI-compatible servers (vLLM, Ollama, llama.cpp) serve them for code completion: the
//! `text_completion` object or its chunk stream (the text in each choice's `text`; the
//! usage-only last chunk exactly when `stream_options.include_usage` asks), `max_tokens` 16
//! unless given, and automatic prompt caching.

use serde_json::{json, Value};

use super::answer::{pieces, snippet_of, Ask};
use super::prompt::Prompt;
use super::{model_of, opt_u64, Synth};
use crate::deliver::{Kind, Reply};

/// OpenAI's default `max_tokens` for a completion.
const DEFAULT_MAX_TOKENS: u64 = 16;

/// Answers POST /v1/completions.
pub fn complete(synth: &Synth, request: &Value) -> Result<Reply, String> {
    let model = model_of(request)?;
    let text = request.get("prompt").ok_or("`prompt` is required")?;
    let mut prompt = Prompt::new(model);
    prompt.push("prompt", text, false);
    if let Some(suffix) = request.get("suffix").filter(|s| s.is_string()) {
        prompt.push("suffix", suffix, false);
    }
    let ask = Ask {
        snippet: snippet_of(Some(text)),
        max_tokens: Some(opt_u64(request, "max_tokens")?.unwrap_or(DEFAULT_MAX_TOKENS)),
        ..Ask::default()
    };
    let (generated, tokens) = synth.answer_cached_automatically(&prompt, &ask);
    let id = synth.id("cmpl");
    let finish = if generated.truncated {
        "length"
    } else {
        "stop"
    };
    let t = &tokens;
    let usage = json!({"prompt_tokens": t.input, "completion_tokens": t.output,
        "total_tokens": t.input + t.output, "prompt_tokens_details": {"cached_tokens": t.cache_read}});
    let object = |choices: Value, usage: Value| {
        json!({"id": id, "object": "text_completion", "created": 1_700_000_000, "model": model,
            "system_fingerprint": "fp_provider_sim", "choices": choices, "usage": usage})
    };
    let choice = |text: &str, finish: Value| json!([{"index": 0, "text": text, "logprobs": null, "finish_reason": finish}]);
    if request.get("stream") != Some(&Value::Bool(true)) {
        let body = object(choice(&generated.text, json!(finish)), usage);
        return Ok(Reply::ok(Kind::Json, body.to_string()).with_usage(tokens));
    }
    let include_usage =
        request.pointer("/stream_options/include_usage") == Some(&Value::Bool(true));
    let mut out = String::new();
    let mut chunk = |choices: Value, usage: Value| {
        let mut payload = object(choices, usage);
        if let Some(members) = payload.as_object_mut().filter(|_| !include_usage) {
            members.remove("usage");
        }
        out.push_str(&format!("data: {payload}\n\n"));
    };
    let texts = pieces(&generated.text);
    let last = texts.len().saturating_sub(1);
    for (n, piece) in texts.iter().enumerate() {
        let finish = if n == last {
            json!(finish)
        } else {
            Value::Null
        };
        chunk(choice(piece, finish), Value::Null);
    }
    if include_usage {
        chunk(json!([]), usage);
    }
    out.push_str("data: [DONE]\n\n");
    Ok(Reply::ok(Kind::Sse, out).with_usage(tokens))
}
