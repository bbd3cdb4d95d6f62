//! Anthropic Messages, synthesized: the stream (`message_start` … content
//! blocks … `message_delta` with the final usage, `message_stop`) or the
//! Messages object, with a thinking block when thinking is enabled, a
//! `tool_use` block when a tool is forced, JSON text under a schema when
//! `output_config.format` asks for structured output, and cache figures from the
//! request's `cache_control` breakpoints. The same answer serves Bedrock's
//! InvokeModel for Anthropic models, in Bedrock's framing ([`invoke`]).

use bytes::Bytes;
use serde_json::{json, Value};

use super::answer::{generate, pieces, snippet_of, Ask, Generated};
use super::chat::json_format;
use super::prompt::{tokens_of, Cached, Prompt};
use super::{model_of, opt_u64, Synth, Tokens};
use crate::bedrock::invoke::Invoke;
use crate::deliver::{Kind, Reply};

/// Answers POST /v1/messages.
pub fn messages(synth: &Synth, request: &Value) -> Result<Reply, String> {
    let model = model_of(request)?;
    let (message, tokens) = message(synth, model, request)?;
    let reply = if request.get("stream") == Some(&Value::Bool(true)) {
        Reply::ok(Kind::Sse, message.stream())
    } else {
        Reply::ok(Kind::Json, message.object().to_string())
    };
    Ok(reply.with_usage(tokens))
}

/// Answers Bedrock's InvokeModel (`stream` false) or InvokeModelWithResponseStream for an
/// Anthropic `model`: the body is a Messages request without `model` (it is in the path), the
/// answer the Messages object or its events in Bedrock's frames, with Bedrock's figures.
pub fn invoke(synth: &Synth, model: &str, request: &Value, stream: bool) -> Result<Reply, String> {
    let (message, tokens) = message(synth, model, request)?;
    let object = Bytes::from(message.object().to_string());
    let bedrock = Invoke::derive(&Bytes::from(message.stream()), &object)?;
    let reply = if stream {
        Reply::ok(Kind::Frames, bedrock.stream).with_headers(bedrock.stream_headers)
    } else {
        Reply::ok(Kind::Json, object).with_headers(bedrock.headers)
    };
    Ok(reply.with_usage(tokens))
}

/// The message generated for a Messages `request` to `model`, and its figures.
fn message<'a>(
    synth: &Synth,
    model: &'a str,
    request: &Value,
) -> Result<(Message<'a>, Tokens), String> {
    let max_tokens = opt_u64(request, "max_tokens")?.ok_or("`max_tokens` is required")?;
    let messages = request
        .get("messages")
        .and_then(Value::as_array)
        .filter(|m| !m.is_empty())
        .ok_or("`messages` must be a non-empty array")?;
    let prompt = prompt(model, request, messages);
    let cached = synth.cache.explicit(&prompt);
    let generated = generate(&ask(request, max_tokens));
    let tokens = Tokens {
        input: prompt.total(),
        output: generated.output_tokens(),
        cache_read: cached.read,
        cache_write: cached.write,
        // Anthropic counts thinking in `output_tokens` and reports no part of its own.
        reasoning: 0,
    };
    let message = Message {
        id: synth.id("msg"),
        model,
        tool_id: synth.id("toolu"),
        generated,
        usage: usage(&tokens, cached),
    };
    Ok((message, tokens))
}

/// Answers POST /v1/messages/count_tokens with the prompt's size.
pub fn count_tokens(request: &Value) -> Result<Reply, String> {
    let model = request.get("model").and_then(Value::as_str).unwrap_or("");
    let messages = request
        .get("messages")
        .and_then(Value::as_array)
        .ok_or("`messages` must be an array")?;
    let total = prompt(model, request, messages).total();
    Ok(Reply::ok(
        Kind::Json,
        json!({ "input_tokens": total }).to_string(),
    ))
}

/// The prompt in cache order: tools, system, then every message's content.
fn prompt(model: &str, request: &Value, messages: &[Value]) -> Prompt {
    let mut prompt = Prompt::new(model);
    // A block marked with `cache_control` is a breakpoint, kept an hour with `"ttl": "1h"`.
    let push = |prompt: &mut Prompt, tag: &str, block: &Value| {
        let mark = block.get("cache_control");
        prompt.push(tag, block, mark.is_some());
        if mark.and_then(|m| m.get("ttl")).and_then(Value::as_str) == Some("1h") {
            prompt.mark_hour();
        }
    };
    for tool in request
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        push(&mut prompt, "tool", tool);
    }
    match request.get("system") {
        Some(Value::Array(blocks)) => blocks.iter().for_each(|b| push(&mut prompt, "system", b)),
        Some(system) => prompt.push("system", system, false),
        None => {}
    }
    for message in messages {
        let role = message.get("role").and_then(Value::as_str).unwrap_or("");
        match message.get("content") {
            Some(Value::Array(blocks)) => blocks.iter().for_each(|b| push(&mut prompt, role, b)),
            Some(content) => prompt.push(role, content, false),
            None => {}
        }
    }
    prompt
}

/// What the request asks for: thinking, a forced tool, the output limit.
fn ask(request: &Value, max_tokens: u64) -> Ask {
    let thinking = matches!(
        request.pointer("/thinking/type").and_then(Value::as_str),
        Some("enabled" | "adaptive")
    );
    let tools = request.get("tools").and_then(Value::as_array);
    let forced = match request.pointer("/tool_choice/type").and_then(Value::as_str) {
        Some("tool") => request.pointer("/tool_choice/name").and_then(Value::as_str),
        Some("any") => tools
            .and_then(|t| t.first())
            .and_then(|t| t.get("name"))
            .and_then(Value::as_str),
        _ => None,
    };
    let forced_tool = forced.and_then(|name| {
        let tool = tools?
            .iter()
            .find(|t| t.get("name").and_then(Value::as_str) == Some(name))?;
        Some((
            name.to_owned(),
            tool.get("input_schema").cloned().unwrap_or(json!({})),
        ))
    });
    // Structured outputs: `output_config.format` (the beta's `output_format` before it).
    let format = request
        .pointer("/output_config/format")
        .or_else(|| request.get("output_format"));
    Ask {
        snippet: snippet_of(request.get("messages")),
        max_tokens: Some(max_tokens),
        thinking,
        forced_tool,
        json: json_format(format),
        ..Ask::default()
    }
}

/// The usage object: `input_tokens` is the uncached part only.
fn usage(tokens: &Tokens, cached: Cached) -> Value {
    json!({
        "input_tokens": tokens.input - cached.read - cached.write,
        "cache_creation_input_tokens": cached.write,
        "cache_read_input_tokens": cached.read,
        "cache_creation": {"ephemeral_5m_input_tokens": cached.write - cached.write_hour,
            "ephemeral_1h_input_tokens": cached.write_hour},
        "output_tokens": tokens.output,
        "service_tier": "standard",
    })
}

/// A whole synthesized message.
struct Message<'a> {
    id: String,
    model: &'a str,
    tool_id: String,
    generated: Generated,
    usage: Value,
}

impl Message<'_> {
    fn stop_reason(&self) -> &'static str {
        if self.generated.tool.is_some() {
            "tool_use"
        } else if self.generated.truncated {
            "max_tokens"
        } else {
            "end_turn"
        }
    }

    /// The content blocks, complete.
    fn content(&self) -> Vec<Value> {
        let g = &self.generated;
        let mut blocks = Vec::new();
        if let Some(thinking) = &g.thinking {
            blocks.push(
                json!({"type": "thinking", "thinking": thinking, "signature": signature(thinking)}),
            );
        }
        if let Some(tool) = &g.tool {
            blocks.push(json!({"type": "tool_use", "id": self.tool_id, "name": tool.name, "input": tool.arguments}));
        } else {
            blocks.push(json!({"type": "text", "text": g.text}));
        }
        blocks
    }

    /// The Messages object.
    fn object(&self) -> Value {
        json!({
            "id": self.id, "type": "message", "role": "assistant", "model": self.model,
            "content": self.content(), "stop_reason": self.stop_reason(), "stop_sequence": null,
            "usage": self.usage,
        })
    }

    /// The event stream.
    fn stream(&self) -> String {
        let mut start_usage = self.usage.clone();
        start_usage["output_tokens"] = json!(1);
        let mut out = String::new();
        let mut event = |payload: Value| {
            let kind = payload["type"].as_str().unwrap_or_default().to_owned();
            out.push_str(&format!("event: {kind}\ndata: {payload}\n\n"));
        };
        event(json!({"type": "message_start", "message": {
            "id": self.id, "type": "message", "role": "assistant", "model": self.model, "content": [],
            "stop_reason": null, "stop_sequence": null, "usage": start_usage}}));
        for (index, block) in self.content().into_iter().enumerate() {
            let (empty, deltas) = block_deltas(&block);
            event(json!({"type": "content_block_start", "index": index, "content_block": empty}));
            if index == 0 {
                event(json!({"type": "ping"}));
            }
            for delta in deltas {
                event(json!({"type": "content_block_delta", "index": index, "delta": delta}));
            }
            event(json!({"type": "content_block_stop", "index": index}));
        }
        let mut final_usage = self.usage.clone();
        if let Some(usage) = final_usage.as_object_mut() {
            usage.remove("cache_creation");
            usage.remove("service_tier");
        }
        event(json!({"type": "message_delta",
            "delta": {"stop_reason": self.stop_reason(), "stop_sequence": null}, "usage": final_usage}));
        event(json!({"type": "message_stop"}));
        out
    }
}

/// A content block as `content_block_start` announces it, and the deltas
/// that fill it in.
fn block_deltas(block: &Value) -> (Value, Vec<Value>) {
    let text_of = |key: &str| block[key].as_str().unwrap_or_default().to_owned();
    match block["type"].as_str() {
        Some("thinking") => {
            let mut deltas: Vec<Value> = pieces(&text_of("thinking"))
                .into_iter()
                .map(|p| json!({"type": "thinking_delta", "thinking": p}))
                .collect();
            deltas.push(json!({"type": "signature_delta", "signature": text_of("signature")}));
            (
                json!({"type": "thinking", "thinking": "", "signature": ""}),
                deltas,
            )
        }
        Some("tool_use") => {
            let arguments = block["input"].to_string();
            let deltas = pieces(&arguments)
                .into_iter()
                .map(|p| json!({"type": "input_json_delta", "partial_json": p}))
                .collect();
            let empty =
                json!({"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}});
            (empty, deltas)
        }
        _ => {
            let deltas = pieces(&text_of("text"))
                .into_iter()
                .map(|p| json!({"type": "text_delta", "text": p}))
                .collect();
            (json!({"type": "text", "text": ""}), deltas)
        }
    }
}

/// An opaque signature for a thinking block (the client sends it back).
fn signature(thinking: &str) -> String {
    format!("sim-signature-{}", tokens_of(&json!(thinking)))
}
