//! OpenAI chat completions, synthesized: the `chat.completion` object or the
//! chunk stream (with the usage-only last chunk exactly when
//! `stream_options.include_usage` asks for it, as OpenAI does), structured
//! output under `response_format`, a tool call when one is forced, reasoning
//! tokens for reasoning models, and automatic prompt caching.

use serde_json::{json, Value};

use super::answer::{pieces, reasoning_for, snippet_of, Ask, Generated};
use super::prompt::Prompt;
use super::{model_of, opt_u64, Synth, Tokens};
use crate::deliver::{Kind, Reply};

/// Answers POST /v1/chat/completions.
pub fn completion(synth: &Synth, request: &Value) -> Result<Reply, String> {
    let model = model_of(request)?;
    let messages = request
        .get("messages")
        .and_then(Value::as_array)
        .filter(|m| !m.is_empty())
        .ok_or("`messages` must be a non-empty array")?;
    let max_tokens = match opt_u64(request, "max_completion_tokens")? {
        Some(max) => Some(max),
        None => opt_u64(request, "max_tokens")?,
    };
    let mut prompt = Prompt::new(model);
    prompt.push_tools(request);
    for message in messages {
        prompt.push("message", message, false);
    }
    let ask = Ask {
        snippet: snippet_of(Some(&Value::Array(messages.clone()))),
        max_tokens,
        reasoning: reasoning_for(
            request.get("reasoning_effort").and_then(Value::as_str),
            model,
        ),
        forced_tool: forced_tool(request),
        json: json_format(request.get("response_format")),
        ..Ask::default()
    };
    let (generated, tokens) = synth.answer_cached_automatically(&prompt, &ask);
    let completion = Completion {
        id: synth.id("chatcmpl"),
        call_id: synth.id("call"),
        model,
        generated,
        tokens,
    };
    let reply = if request.get("stream") == Some(&Value::Bool(true)) {
        let include_usage =
            request.pointer("/stream_options/include_usage") == Some(&Value::Bool(true));
        Reply::ok(Kind::Sse, completion.stream(include_usage))
    } else {
        Reply::ok(Kind::Json, completion.object().to_string())
    };
    Ok(reply.with_usage(tokens))
}

/// The tool `tool_choice` forces (`required` means the first), with its
/// parameter schema.
fn forced_tool(request: &Value) -> Option<(String, Value)> {
    let tools = request.get("tools").and_then(Value::as_array)?;
    let choice = request.get("tool_choice")?;
    let function = if choice == "required" {
        tools.first()?.get("function")?
    } else {
        let name = choice.pointer("/function/name").and_then(Value::as_str)?;
        tools
            .iter()
            .filter_map(|t| t.get("function"))
            .find(|f| f.get("name").and_then(Value::as_str) == Some(name))?
    };
    let name = function.get("name").and_then(Value::as_str)?;
    let parameters = function.get("parameters").cloned().unwrap_or(json!({}));
    Some((name.to_owned(), parameters))
}

/// Structured output asked by `response_format` (chat), `text.format`
/// (Responses) or `output_config.format` (Anthropic): any JSON object, or one
/// valid under a schema.
pub fn json_format(format: Option<&Value>) -> Option<Option<Value>> {
    match format?.get("type").and_then(Value::as_str)? {
        "json_object" => Some(None),
        "json_schema" => {
            let schema = format?
                .pointer("/json_schema/schema")
                .or_else(|| format?.get("schema"))
                .cloned();
            Some(schema)
        }
        _ => None,
    }
}

/// A whole synthesized completion.
struct Completion<'a> {
    id: String,
    call_id: String,
    model: &'a str,
    generated: Generated,
    tokens: Tokens,
}

impl Completion<'_> {
    fn finish_reason(&self) -> &'static str {
        if self.generated.tool.is_some() {
            "tool_calls"
        } else if self.generated.truncated {
            "length"
        } else {
            "stop"
        }
    }

    fn usage(&self) -> Value {
        let t = &self.tokens;
        json!({
            "prompt_tokens": t.input, "completion_tokens": t.output, "total_tokens": t.input + t.output,
            "prompt_tokens_details": {"cached_tokens": t.cache_read, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": t.reasoning, "audio_tokens": 0,
                "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
        })
    }

    fn tool_calls(&self) -> Option<Value> {
        let tool = self.generated.tool.as_ref()?;
        Some(json!([{"id": self.call_id, "type": "function",
            "function": {"name": tool.name, "arguments": tool.arguments.to_string()}}]))
    }

    /// The `chat.completion` object.
    fn object(&self) -> Value {
        let mut message = json!({"role": "assistant", "content": self.generated.text,
            "refusal": null, "annotations": []});
        if let Some(calls) = self.tool_calls() {
            message["content"] = Value::Null;
            message["tool_calls"] = calls;
        }
        json!({
            "id": self.id, "object": "chat.completion", "created": 1_700_000_000, "model": self.model,
            "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": self.finish_reason()}],
            "usage": self.usage(), "service_tier": "default", "system_fingerprint": "fp_provider_sim",
        })
    }

    /// The chunk stream, ending `data: [DONE]`.
    fn stream(&self, include_usage: bool) -> String {
        let mut out = String::new();
        let mut chunk = |choices: Value, usage: Option<Value>| {
            let mut payload = json!({"id": self.id, "object": "chat.completion.chunk",
                "created": 1_700_000_000, "model": self.model, "service_tier": "default",
                "system_fingerprint": "fp_provider_sim", "choices": choices});
            if include_usage {
                payload["usage"] = usage.unwrap_or(Value::Null);
            }
            out.push_str(&format!("data: {payload}\n\n"));
        };
        let choice = |delta: Value, finish: Value| json!([{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]);
        chunk(
            choice(
                json!({"role": "assistant", "content": "", "refusal": null}),
                Value::Null,
            ),
            None,
        );
        if let Some(tool) = &self.generated.tool {
            let opening = json!({"tool_calls": [{"index": 0, "id": self.call_id, "type": "function",
                "function": {"name": tool.name, "arguments": ""}}]});
            chunk(choice(opening, Value::Null), None);
            for piece in pieces(&tool.arguments.to_string()) {
                let delta = json!({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]});
                chunk(choice(delta, Value::Null), None);
            }
        }
        for piece in pieces(&self.generated.text) {
            chunk(choice(json!({"content": piece}), Value::Null), None);
        }
        chunk(choice(json!({}), json!(self.finish_reason())), None);
        if include_usage {
            chunk(json!([]), Some(self.usage()));
        }
        out.push_str("data: [DONE]\n\n");
        out
    }
}
