//! OpenAI Responses, synthesized as Codex and the SDKs use it: the event
//! stream `response.created`, `response.in_progress`, the output items (a
//! reasoning item for reasoning models, with `encrypted_content` when
//! `include` asks for it; then the message or a forced function call) with
//! their deltas, and `response.completed` (or `response.incomplete` past
//! `max_output_tokens`) carrying the usage; or the response object alone.

use serde_json::{json, Value};

use super::answer::{pieces, reasoning_for, snippet_of, Ask, Generated};
use super::chat::json_format;
use super::conversations;
use super::prompt::Prompt;
use super::{model_of, opt_u64, Synth, Tokens};
use crate::deliver::{Kind, Reply};

/// Answers POST /v1/responses. A stored response (`store`, on by default) is kept to be
/// retrieved later; a `background` one is answered `queued` at once unless streamed, and runs
/// for a while on its own (see [`super::stored`]). One that names a `conversation` reads its
/// items first, then adds its input and output to it ([`super::conversations`]).
pub fn respond(synth: &Synth, request: &Value) -> Result<Reply, String> {
    let conversation = conversations::named_in(request);
    let history = match conversation.map(|id| (id, synth.conversations.items(id))) {
        Some((id, None)) => return Ok(conversations::not_found("Conversation", id)),
        Some((_, Some(items))) => items,
        None => Vec::new(),
    };
    let (model, prompt) = prompt_of(request, &history)?;
    let input = &request["input"];
    let ask = Ask {
        snippet: snippet_of(Some(input)),
        max_tokens: opt_u64(request, "max_output_tokens")?,
        reasoning: reasoning_for(
            request.pointer("/reasoning/effort").and_then(Value::as_str),
            model,
        ),
        forced_tool: forced_tool(request),
        json: json_format(request.pointer("/text/format")),
        ..Ask::default()
    };
    let (generated, tokens) = synth.answer_cached_automatically(&prompt, &ask);
    let encrypted = request
        .get("include")
        .and_then(Value::as_array)
        .is_some_and(|i| i.iter().any(|v| v == "reasoning.encrypted_content"));
    let response = Response {
        request,
        id: synth.id("resp"),
        reasoning_id: synth.id("rs"),
        item_id: synth.id("msg"),
        call_id: synth.id("call"),
        model,
        background: request.get("background") == Some(&Value::Bool(true)),
        encrypted,
        generated,
        tokens,
    };
    let streamed = request.get("stream") == Some(&Value::Bool(true));
    let reply = if streamed {
        Reply::ok(Kind::Sse, response.events().concat())
    } else if response.background {
        Reply::ok(Kind::Json, response.object(Status::Queued).to_string())
    } else {
        Reply::ok(Kind::Json, response.object(Status::Finished).to_string())
    };
    if request.get("store") != Some(&Value::Bool(false)) {
        synth.stored.keep(&response, synth);
    }
    if let Some(id) = conversation {
        let mut items = response.input_items(synth);
        items.extend(response.output());
        synth.conversations.extend(synth, id, items);
    }
    Ok(reply.with_usage(tokens))
}

/// Answers POST /v1/responses/input_tokens: what the same body would count as input.
pub fn input_tokens(request: &Value) -> Result<Reply, String> {
    let (_, prompt) = prompt_of(request, &[])?;
    let body = json!({"object": "response.input_tokens", "input_tokens": prompt.total()});
    Ok(Reply::ok(Kind::Json, body.to_string()))
}

/// Answers POST /v1/responses/compact: the input's user messages, then one opaque `compaction`
/// item standing in for the rest; the model reads the whole prompt (cached as Responses caches)
/// and writes about an eighth of it.
pub fn compact(synth: &Synth, request: &Value) -> Result<Reply, String> {
    let (_, prompt) = prompt_of(request, &[])?;
    let cached = synth.cache.automatic(&prompt);
    let tokens = Tokens {
        input: prompt.total(),
        output: (prompt.total() / 8).max(16),
        cache_read: cached.read,
        ..Tokens::default()
    };
    let users = request["input"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|item| item.get("role") == Some(&json!("user")))
        .map(|item| {
            let content = match &item["content"] {
                Value::String(text) => json!([{"type": "input_text", "text": text}]),
                parts => parts.clone(),
            };
            json!({"type": "message", "role": "user", "content": content})
        });
    let id = synth.id("cmp");
    let compaction =
        json!({"id": id, "type": "compaction", "encrypted_content": format!("sim-compacted-{id}")});
    let body = json!({
        "id": synth.id("resp"), "object": "response.compaction", "created_at": 1_700_000_000,
        "output": users.chain([compaction]).collect::<Vec<_>>(),
        "usage": {"input_tokens": tokens.input, "input_tokens_details": {"cached_tokens": tokens.cache_read},
            "output_tokens": tokens.output, "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": tokens.input + tokens.output},
    });
    Ok(Reply::ok(Kind::Json, body.to_string()).with_usage(tokens))
}

/// The request's model and its prompt (instructions, tools, the `history` of its conversation,
/// input).
fn prompt_of<'a>(request: &'a Value, history: &[Value]) -> Result<(&'a str, Prompt), String> {
    let model = model_of(request)?;
    let input = request.get("input").ok_or("`input` is required")?;
    let mut prompt = Prompt::new(model);
    if let Some(instructions) = request.get("instructions").filter(|v| v.is_string()) {
        prompt.push("instructions", instructions, false);
    }
    prompt.push_tools(request);
    for item in history {
        prompt.push("input", item, false);
    }
    match input {
        Value::Array(items) => items
            .iter()
            .for_each(|item| prompt.push("input", item, false)),
        other => prompt.push("input", other, false),
    }
    Ok((model, prompt))
}

/// The function `tool_choice` forces (`required` means the first function).
fn forced_tool(request: &Value) -> Option<(String, Value)> {
    let tools = request.get("tools").and_then(Value::as_array)?;
    let functions = || {
        tools
            .iter()
            .filter(|t| t.get("type") == Some(&json!("function")))
    };
    let choice = request.get("tool_choice")?;
    let tool = if choice == "required" {
        functions().next()?
    } else {
        let name = choice.get("name").and_then(Value::as_str)?;
        functions().find(|t| t.get("name").and_then(Value::as_str) == Some(name))?
    };
    let name = tool.get("name").and_then(Value::as_str)?;
    Some((
        name.to_owned(),
        tool.get("parameters").cloned().unwrap_or(json!({})),
    ))
}

/// Where a response object stands.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Status {
    /// A background response not started yet.
    Queued,
    /// Generating (a stream's first events, or a background response running).
    InProgress,
    /// Done: `completed`, or `incomplete` past `max_output_tokens`, with its output and usage.
    Finished,
    /// A background response cancelled before it finished.
    Cancelled,
}

/// A whole synthesized response.
pub struct Response<'a> {
    request: &'a Value,
    /// Its `resp_…` id.
    pub id: String,
    reasoning_id: String,
    item_id: String,
    call_id: String,
    model: &'a str,
    /// Whether it was created with `background: true`.
    pub background: bool,
    encrypted: bool,
    generated: Generated,
    tokens: Tokens,
}

impl Response<'_> {
    /// The output items, complete.
    pub fn output(&self) -> Vec<Value> {
        let mut items = Vec::new();
        if self.generated.reasoning > 0 {
            let mut reasoning =
                json!({"id": self.reasoning_id, "type": "reasoning", "summary": []});
            if self.encrypted {
                reasoning["encrypted_content"] =
                    json!(format!("sim-encrypted-{}", self.reasoning_id));
            }
            items.push(reasoning);
        }
        if let Some(tool) = &self.generated.tool {
            items.push(json!({"id": self.item_id, "type": "function_call", "status": "completed",
                "call_id": self.call_id, "name": tool.name, "arguments": tool.arguments.to_string()}));
        } else {
            items.push(
                json!({"id": self.item_id, "type": "message", "status": "completed",
                "role": "assistant", "content": [text_part(&self.generated.text)]}),
            );
        }
        items
    }

    fn status(&self) -> &'static str {
        if self.generated.truncated {
            "incomplete"
        } else {
            "completed"
        }
    }

    /// The response object at `status`: only a finished one has output and usage.
    pub fn object(&self, status: Status) -> Value {
        let echo = |key: &str, default: Value| self.request.get(key).cloned().unwrap_or(default);
        let t = &self.tokens;
        let finished = status == Status::Finished;
        let (status, output, usage) = match status {
            Status::Finished => {
                let usage = json!({"input_tokens": t.input, "input_tokens_details": {"cached_tokens": t.cache_read},
                    "output_tokens": t.output, "output_tokens_details": {"reasoning_tokens": t.reasoning},
                    "total_tokens": t.input + t.output});
                (self.status(), json!(self.output()), usage)
            }
            Status::Queued => ("queued", json!([]), Value::Null),
            Status::InProgress => ("in_progress", json!([]), Value::Null),
            Status::Cancelled => ("cancelled", json!([]), Value::Null),
        };
        let incomplete =
            (finished && self.generated.truncated).then(|| json!({"reason": "max_output_tokens"}));
        json!({
            "id": self.id, "object": "response", "created_at": 1_700_000_000, "status": status,
            "background": self.background, "error": null, "incomplete_details": incomplete,
            "instructions": echo("instructions", Value::Null), "max_output_tokens": echo("max_output_tokens", Value::Null),
            "model": self.model, "output": output, "parallel_tool_calls": echo("parallel_tool_calls", json!(true)),
            "previous_response_id": echo("previous_response_id", Value::Null),
            "prompt_cache_key": echo("prompt_cache_key", Value::Null),
            "reasoning": echo("reasoning", json!({"effort": null, "summary": null})),
            "service_tier": "default", "store": echo("store", json!(true)),
            "text": echo("text", json!({"format": {"type": "text"}})),
            "tool_choice": echo("tool_choice", json!("auto")), "tools": echo("tools", json!([])),
            "truncation": "disabled", "usage": usage, "user": null, "metadata": echo("metadata", json!({})),
        })
    }

    /// The event stream, one SSE event each, the n-th with `sequence_number` n.
    pub fn events(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut event = |mut payload: Value| {
            payload["sequence_number"] = json!(out.len());
            let kind = payload["type"].as_str().unwrap_or_default().to_owned();
            out.push(format!("event: {kind}\ndata: {payload}\n\n"));
        };
        let announced = self.object(Status::InProgress);
        event(json!({"type": "response.created", "response": announced}));
        event(json!({"type": "response.in_progress", "response": announced}));
        for (index, item) in self.output().into_iter().enumerate() {
            let at = |mut payload: Value| {
                payload["output_index"] = json!(index);
                payload
            };
            event(at(
                json!({"type": "response.output_item.added", "item": opened(&item)}),
            ));
            for payload in item_deltas(&item) {
                event(at(payload));
            }
            event(at(
                json!({"type": "response.output_item.done", "item": item}),
            ));
        }
        let last = if self.generated.truncated {
            "response.incomplete"
        } else {
            "response.completed"
        };
        event(json!({"type": last, "response": self.object(Status::Finished)}));
        out
    }

    /// The input as `input_items` lists it: each item with an id, a string as one user message.
    pub fn input_items(&self, synth: &Synth) -> Vec<Value> {
        let items = match &self.request["input"] {
            Value::Array(items) => items.clone(),
            text => vec![json!({"type": "message", "role": "user",
                "content": [{"type": "input_text", "text": text}]})],
        };
        items
            .into_iter()
            .map(|mut item| {
                if item.get("id").is_none() {
                    item["id"] = json!(synth.id("msg"));
                }
                item
            })
            .collect()
    }
}

/// An `output_text` content part.
fn text_part(text: &str) -> Value {
    json!({"type": "output_text", "annotations": [], "logprobs": [], "text": text})
}

/// An output item as `response.output_item.added` announces it.
fn opened(item: &Value) -> Value {
    let mut item = item.clone();
    match item["type"].as_str() {
        Some("message") => item["content"] = json!([]),
        Some("function_call") => item["arguments"] = json!(""),
        _ => {}
    }
    if item["type"] != "reasoning" {
        item["status"] = json!("in_progress");
    }
    item
}

/// The events between an item's `added` and `done`.
fn item_deltas(item: &Value) -> Vec<Value> {
    let item_id = &item["id"];
    match item["type"].as_str() {
        Some("message") => {
            let text = item
                .pointer("/content/0/text")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let part = |text: &str| json!({"item_id": item_id, "content_index": 0, "part": text_part(text)});
            let mut events = vec![with_type("response.content_part.added", part(""))];
            events.extend(pieces(text).into_iter().map(|delta| {
                json!({"type": "response.output_text.delta", "item_id": item_id, "content_index": 0,
                    "delta": delta, "logprobs": []})
            }));
            events.push(
                json!({"type": "response.output_text.done", "item_id": item_id,
                "content_index": 0, "text": text, "logprobs": []}),
            );
            events.push(with_type("response.content_part.done", part(text)));
            events
        }
        Some("function_call") => {
            let arguments = item["arguments"].as_str().unwrap_or_default();
            let mut events: Vec<Value> = pieces(arguments)
                .into_iter()
                .map(|delta| {
                    json!({"type": "response.function_call_arguments.delta",
                    "item_id": item_id, "delta": delta})
                })
                .collect();
            events.push(json!({"type": "response.function_call_arguments.done",
                "item_id": item_id, "arguments": arguments}));
            events
        }
        _ => Vec::new(),
    }
}

/// `payload` with its `type` set.
fn with_type(kind: &str, mut payload: Value) -> Value {
    payload["type"] = json!(kind);
    payload
}
