use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Value};

use super::*;
use crate::deliver::Kind;
use crate::routes::ConversationAction;
use crate::sse::{field, split_events};

fn answer(synth: &Synth, route: Route, request: Value) -> Reply {
    synth.answer(&route, &request, None).expect("synthesized")
}

fn body_json(reply: &Reply) -> Value {
    assert_eq!(reply.kind, Kind::Json);
    serde_json::from_slice(&reply.body).expect("json body")
}

/// The `data:` payloads of a stream, without OpenAI's `[DONE]`.
fn payloads(reply: &Reply) -> Vec<Value> {
    assert_eq!(reply.kind, Kind::Sse);
    split_events(&reply.body)
        .iter()
        .filter_map(|e| field(e, "data"))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).expect("event json"))
        .collect()
}

fn types(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["type"].as_str().unwrap()).collect()
}

/// A system prompt long enough to be cached (over 1024 tokens).
fn long_system() -> Value {
    json!([{"type": "text", "text": "rules ".repeat(1_000), "cache_control": {"type": "ephemeral"}}])
}

#[test]
fn messages_stream_has_thinking_then_text_and_final_usage() {
    let synth = Synth::default();
    let reply = answer(
        &synth,
        Route::Messages,
        json!({"model": "m", "max_tokens": 500, "stream": true, "thinking": {"type": "enabled", "budget_tokens": 100},
            "messages": [{"role": "user", "content": "What is 1 + 1?"}]}),
    );
    let events = payloads(&reply);
    let kinds = types(&events);
    assert_eq!(kinds.first(), Some(&"message_start"));
    assert_eq!(kinds.last(), Some(&"message_stop"));
    assert_eq!(events[1]["content_block"]["type"], "thinking");
    assert!(kinds.contains(&"ping"));
    let text: String = events
        .iter()
        .filter_map(|e| e.pointer("/delta/text").and_then(Value::as_str))
        .collect();
    assert!(text.ends_with("What is 1 + 1?"), "{text}");
    let delta = events
        .iter()
        .find(|e| e["type"] == "message_delta")
        .unwrap();
    assert_eq!(delta["delta"]["stop_reason"], "end_turn");
    let usage = reply.usage.unwrap();
    assert_eq!(delta["usage"]["output_tokens"], usage.output);
    assert_eq!(delta["usage"]["input_tokens"], usage.input);
    assert_eq!(usage.reasoning, 0, "Anthropic reports no thinking figure");
}

#[test]
fn messages_cache_is_written_then_read_for_the_same_prefix() {
    let synth = Synth::default();
    let request = |question: &str| {
        json!({"model": "m", "max_tokens": 100, "system": long_system(),
            "messages": [{"role": "user", "content": question}]})
    };
    let first = answer(&synth, Route::Messages, request("one"))
        .usage
        .unwrap();
    assert!(
        first.cache_write > 1_024 && first.cache_read == 0,
        "{first:?}"
    );
    let second = answer(&synth, Route::Messages, request("two"));
    let usage = second.usage.unwrap();
    assert_eq!(usage.cache_read, first.cache_write, "{usage:?}");
    assert_eq!(usage.cache_write, 0);
    let body = body_json(&second);
    assert_eq!(body["usage"]["cache_read_input_tokens"], usage.cache_read);
    assert_eq!(
        body["usage"]["input_tokens"],
        usage.input - usage.cache_read,
        "input_tokens is the uncached part"
    );
}

#[test]
fn messages_cache_writes_up_to_an_hour_long_breakpoint_are_kept_an_hour() {
    let synth = Synth::default();
    let hour = json!([{"type": "text", "text": "tools ".repeat(1_000),
        "cache_control": {"type": "ephemeral", "ttl": "1h"}}]);
    let messages = json!([{"role": "user", "content": [
        {"type": "text", "text": "notes ".repeat(1_000), "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": "question"}]}]);
    let request = json!({"model": "m", "max_tokens": 100, "system": hour, "messages": messages});
    let reply = answer(&synth, Route::Messages, request);
    let written = body_json(&reply)["usage"]["cache_creation"].clone();
    let (five, hour) = (
        written["ephemeral_5m_input_tokens"].as_u64().unwrap(),
        written["ephemeral_1h_input_tokens"].as_u64().unwrap(),
    );
    assert!(hour > 1_024 && five > 1_024, "{written}");
    assert_eq!(five + hour, reply.usage.unwrap().cache_write);
}

#[test]
fn messages_forced_tool_and_max_tokens() {
    let synth = Synth::default();
    let tools = json!([{"name": "get_weather", "input_schema": {"type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}, "required": ["city"]}}]);
    let body = body_json(&answer(
        &synth,
        Route::Messages,
        json!({"model": "m", "max_tokens": 100, "tools": tools, "tool_choice": {"type": "any"},
            "messages": [{"role": "user", "content": "weather?"}]}),
    ));
    assert_eq!(body["stop_reason"], "tool_use");
    assert_eq!(
        body["content"][0]["input"],
        json!({"city": "simulated", "days": 1})
    );

    let short = answer(
        &synth,
        Route::Messages,
        json!({"model": "m", "max_tokens": 3, "messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!(short.usage.unwrap().output, 3);
    assert_eq!(body_json(&short)["stop_reason"], "max_tokens");
}

#[test]
fn messages_structured_output_follows_the_schema() {
    let synth = Synth::default();
    let schema = json!({"type": "object", "properties": {"greeting": {"type": "string"}},
        "required": ["greeting"], "additionalProperties": false});
    for format_at in ["output_config", "output_format"] {
        let format = json!({"type": "json_schema", "schema": schema});
        let request = match format_at {
            "output_config" => json!({"output_config": {"format": format}}),
            _ => json!({"output_format": format}),
        };
        let mut request = request;
        request["model"] = json!("m");
        request["max_tokens"] = json!(1000);
        request["messages"] = json!([{"role": "user", "content": "Say hi"}]);
        let body = body_json(&answer(&synth, Route::Messages, request));
        let text = body["content"][0]["text"].as_str().unwrap();
        let object: Value = serde_json::from_str(text).expect("the text is JSON");
        assert!(object["greeting"].is_string(), "{format_at}: {object}");
    }
}

#[test]
fn invalid_messages_request_is_400_in_anthropic_shape() {
    let reply = answer(
        &Synth::default(),
        Route::Messages,
        json!({"model": "m", "messages": []}),
    );
    assert_eq!(reply.status, 400);
    assert_eq!(body_json(&reply)["type"], "error");
}

#[test]
fn chat_stream_carries_usage_only_when_asked() {
    let synth = Synth::default();
    let request = |include: bool| {
        json!({"model": "gpt-4o", "stream": true, "stream_options": {"include_usage": include},
            "messages": [{"role": "user", "content": "hello"}]})
    };
    let with = payloads(&answer(&synth, Route::ChatCompletions, request(true)));
    let last = with.last().unwrap();
    assert_eq!(last["choices"], json!([]));
    assert!(last["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
    assert!(with[..with.len() - 1].iter().all(|c| c["usage"].is_null()));

    let without = payloads(&answer(&synth, Route::ChatCompletions, request(false)));
    assert!(without.iter().all(|c| c.get("usage").is_none()));
    assert_eq!(
        without.last().unwrap()["choices"][0]["finish_reason"],
        "stop"
    );
}

#[test]
fn chat_structured_output_follows_the_schema() {
    let schema = json!({"type": "object", "properties": {"tags": {"type": "array", "items": {"type": "string"}}},
        "required": ["tags"], "additionalProperties": false});
    let reply = answer(
        &Synth::default(),
        Route::ChatCompletions,
        json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "tag this"}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "tags", "schema": schema}}}),
    );
    let body = body_json(&reply);
    let content: Value =
        serde_json::from_str(body["choices"][0]["message"]["content"].as_str().unwrap()).unwrap();
    assert_eq!(content, json!({"tags": ["simulated"]}));
    assert_eq!(
        body["usage"]["completion_tokens"],
        reply.usage.unwrap().output
    );
}

#[test]
fn responses_stream_is_a_complete_event_sequence() {
    let reply = answer(
        &Synth::default(),
        Route::Responses,
        json!({"model": "gpt-5-mini", "stream": true, "store": false, "include": ["reasoning.encrypted_content"],
            "reasoning": {"summary": "auto"}, "instructions": "be brief",
            "input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}]}),
    );
    let events = payloads(&reply);
    let kinds = types(&events);
    assert_eq!(&kinds[..2], ["response.created", "response.in_progress"]);
    assert!(kinds.contains(&"response.output_text.delta"));
    assert_eq!(kinds.last(), Some(&"response.completed"));
    let numbers: Vec<u64> = events
        .iter()
        .map(|e| e["sequence_number"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, (0..events.len() as u64).collect::<Vec<_>>());
    let done = &events.last().unwrap()["response"];
    assert_eq!(done["output"][0]["type"], "reasoning");
    assert!(done["output"][0]["encrypted_content"].is_string());
    let usage = reply.usage.unwrap();
    assert_eq!(done["usage"]["output_tokens"], usage.output);
    assert_eq!(
        done["usage"]["output_tokens_details"]["reasoning_tokens"],
        usage.reasoning
    );
    assert!(usage.reasoning > 0);
}

#[test]
fn responses_past_max_output_tokens_is_incomplete() {
    let body = body_json(&answer(
        &Synth::default(),
        Route::Responses,
        json!({"model": "gpt-4o", "input": "hello there", "max_output_tokens": 2}),
    ));
    assert_eq!(body["status"], "incomplete");
    assert_eq!(body["incomplete_details"]["reason"], "max_output_tokens");
}

#[test]
fn embeddings_in_base64_decode_to_the_asked_dimensions() {
    let reply = answer(
        &Synth::default(),
        Route::Embeddings,
        json!({"model": "e", "input": ["a", "bb"], "encoding_format": "base64", "dimensions": 8}),
    );
    let body = body_json(&reply);
    let encoded = body["data"][1]["embedding"].as_str().unwrap();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .unwrap();
    assert_eq!(bytes.len(), 8 * 4);
    assert_eq!(body["usage"]["prompt_tokens"], reply.usage.unwrap().input);
}

#[test]
fn bedrock_converse_is_left_to_the_recordings() {
    let route = Route::Converse {
        model: "m".into(),
        stream: false,
    };
    assert!(Synth::default().answer(&route, &json!({}), None).is_none());
}

#[test]
fn bedrock_invoke_is_the_messages_answer_in_bedrocks_framing() {
    let request = json!({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 64,
        "messages": [{"role": "user", "content": "Say hello"}]});
    let invoke = |stream| Route::Invoke {
        model: "us.anthropic.claude-haiku-4-5-20251001-v1:0".into(),
        stream,
    };
    let synth = Synth::default();
    let whole = answer(&synth, invoke(false), request.clone());
    let usage = whole.usage.unwrap();
    let body = body_json(&whole);
    assert_eq!(body["model"], "us.anthropic.claude-haiku-4-5-20251001-v1:0");
    assert!(body["content"][0]["text"]
        .as_str()
        .unwrap()
        .ends_with("to: Say hello"));
    let header = |name: &str| {
        whole.headers[name]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    assert_eq!(header("x-amzn-bedrock-input-token-count"), usage.input);
    assert_eq!(header("x-amzn-bedrock-output-token-count"), usage.output);
    let streamed = answer(&synth, invoke(true), request);
    assert_eq!(streamed.kind, Kind::Frames);
    let metrics = format!(
        r#""inputTokenCount":{},"outputTokenCount":{}"#,
        usage.input, usage.output
    );
    let (_, last) = crate::bedrock::frames(&streamed.body)
        .unwrap()
        .pop()
        .unwrap();
    let last = STANDARD.decode(last["bytes"].as_str().unwrap()).unwrap();
    let last = String::from_utf8(last).unwrap();
    assert!(last.contains(&metrics), "{last}");
}

fn gemini(stream: bool) -> Route {
    Route::Gemini {
        model: "gemini-2.5-flash".into(),
        stream,
    }
}

#[test]
fn gemini_sse_stream_carries_running_usage_and_thoughts() {
    let synth = Synth::default();
    let request = json!({"contents": [{"role": "user", "parts": [{"text": "Say hello"}]}],
        "generationConfig": {"thinkingConfig": {"includeThoughts": true}}});
    let reply = synth
        .answer(&gemini(true), &request, Some("alt=sse"))
        .unwrap();
    let chunks = payloads(&reply);
    let usage = reply.usage.unwrap();
    assert_eq!(usage.reasoning, 96);
    assert_eq!(
        chunks[0]["candidates"][0]["content"]["parts"][0]["thought"],
        true
    );
    let text: String = chunks
        .iter()
        .filter_map(|c| c["candidates"][0]["content"]["parts"][0].get("text"))
        .skip(1)
        .map(|t| t.as_str().unwrap())
        .collect();
    assert!(text.ends_with("to: Say hello"), "{text}");
    let last = chunks.last().unwrap();
    assert_eq!(last["candidates"][0]["finishReason"], "STOP");
    let meta = &last["usageMetadata"];
    assert_eq!(meta["promptTokenCount"], usage.input);
    assert_eq!(meta["candidatesTokenCount"], usage.output - usage.reasoning);
    assert_eq!(meta["thoughtsTokenCount"], usage.reasoning);
    assert_eq!(meta["totalTokenCount"], usage.input + usage.output);
    assert!(chunks
        .iter()
        .all(|c| c["usageMetadata"]["promptTokenCount"] == usage.input));
}

#[test]
fn gemini_stream_without_sse_is_one_json_array() {
    let request = json!({"contents": [{"parts": [{"text": "hi"}]}],
        "generationConfig": {"thinkingConfig": {"thinkingBudget": 0}}});
    let reply = answer(&Synth::default(), gemini(true), request);
    let chunks = body_json(&reply);
    let last = chunks.as_array().unwrap().last().unwrap();
    assert_eq!(last["candidates"][0]["finishReason"], "STOP");
    assert!(last["usageMetadata"].get("thoughtsTokenCount").is_none());
    assert_eq!(reply.usage.unwrap().reasoning, 0);
}

#[test]
fn gemini_json_output_follows_an_openapi_schema() {
    // Gemini CLI's routing call: an OpenAPI-style schema with upper-case types.
    let schema = json!({"type": "OBJECT", "properties": {
        "complexity_reasoning": {"type": "STRING"}, "complexity_score": {"type": "INTEGER"}},
        "required": ["complexity_reasoning", "complexity_score"]});
    let request = json!({"contents": [{"role": "user", "parts": [{"text": "rate this"}]}],
        "generationConfig": {"responseMimeType": "application/json", "responseSchema": schema}});
    let reply = answer(&Synth::default(), gemini(false), request);
    let body = body_json(&reply);
    let text = body["candidates"][0]["content"]["parts"][0]["text"]
        .as_str()
        .unwrap();
    let value: Value = serde_json::from_str(text).unwrap();
    assert!(
        value["complexity_reasoning"].is_string() && value["complexity_score"].is_u64(),
        "{value}"
    );
}

#[test]
fn gemini_forced_function_is_called_with_valid_arguments() {
    let request = json!({"contents": [{"role": "user", "parts": [{"text": "read it"}]}],
        "tools": [{"functionDeclarations": [
            {"name": "ls", "parametersJsonSchema": {"type": "object", "properties": {}}},
            {"name": "read_file", "parametersJsonSchema": {"type": "object",
                "properties": {"path": {"type": "string"}}, "required": ["path"]}}]}],
        "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["read_file"]}}});
    let body = body_json(&answer(&Synth::default(), gemini(false), request));
    let call = &body["candidates"][0]["content"]["parts"][0]["functionCall"];
    assert_eq!(call["name"], "read_file");
    assert!(call["args"]["path"].is_string(), "{body}");
}

#[test]
fn gemini_count_tokens_is_the_prompt_generate_reports() {
    let synth = Synth::default();
    let request =
        json!({"contents": [{"role": "user", "parts": [{"text": "count me ".repeat(50)}]}]});
    let counted = answer(
        &synth,
        Route::GeminiCountTokens {
            model: "gemini-2.5-flash".into(),
        },
        request.clone(),
    );
    let generated = answer(&synth, gemini(false), request);
    assert_eq!(
        body_json(&counted)["totalTokens"],
        generated.usage.unwrap().input
    );
}

fn stored(id: &str, action: crate::routes::StoredAction) -> Route {
    Route::Stored {
        id: id.to_owned(),
        action,
    }
}

#[test]
fn background_response_is_queued_then_finished_and_replayable() {
    use crate::routes::StoredAction::{Cancel, Delete, InputItems, Retrieve};
    let synth = Synth::default();
    let request = json!({"model": "gpt-5-nano", "input": "hi", "background": true});
    let created = answer(&synth, Route::Responses, request);
    let usage = created.usage.expect("the create call carries the usage");
    let queued = body_json(&created);
    assert_eq!(
        (queued["status"].as_str(), &queued["usage"]),
        (Some("queued"), &Value::Null)
    );
    let id = queued["id"].as_str().unwrap().to_owned();
    let retrieve = |query| {
        synth
            .answer(&stored(&id, Retrieve), &Value::Null, query)
            .unwrap()
    };
    assert_ne!(body_json(&retrieve(None))["status"], "completed");
    let resumed = retrieve(Some("stream=true&starting_after=1"));
    assert!(
        resumed.delay > std::time::Duration::ZERO,
        "held until it finishes"
    );
    let events = payloads(&resumed);
    assert_eq!(events[0]["sequence_number"], 2);
    assert_eq!(types(&events).last(), Some(&"response.completed"));
    std::thread::sleep(stored::BACKGROUND_RUN);
    let done = body_json(&retrieve(None));
    assert_eq!(done["status"], "completed");
    assert_eq!(done["usage"]["output_tokens"], usage.output);
    let cancel = synth
        .answer(&stored(&id, Cancel), &Value::Null, None)
        .unwrap();
    assert_eq!(
        body_json(&cancel)["status"],
        "completed",
        "too late to cancel"
    );
    let items = answer(&synth, stored(&id, InputItems), Value::Null);
    assert_eq!(body_json(&items)["data"][0]["content"][0]["text"], "hi");
    let deleted = answer(&synth, stored(&id, Delete), Value::Null);
    assert_eq!(body_json(&deleted)["deleted"], true);
    assert_eq!(retrieve(None).status, StatusCode::NOT_FOUND);
}

#[test]
fn cancelled_background_response_has_no_usage_and_unstored_ones_are_not_found() {
    use crate::routes::StoredAction::{Cancel, Retrieve};
    let synth = Synth::default();
    let created = answer(
        &synth,
        Route::Responses,
        json!({"model": "m", "input": "x", "background": true}),
    );
    let id = body_json(&created)["id"].as_str().unwrap().to_owned();
    let cancelled = body_json(&answer(&synth, stored(&id, Cancel), Value::Null));
    assert_eq!(
        (cancelled["status"].as_str(), &cancelled["usage"]),
        (Some("cancelled"), &Value::Null)
    );
    let request = json!({"model": "m", "input": "x", "store": false});
    let unstored = body_json(&answer(&synth, Route::Responses, request));
    let id = unstored["id"].as_str().unwrap();
    assert_eq!(
        answer(&synth, stored(id, Retrieve), Value::Null).status,
        StatusCode::NOT_FOUND
    );
    let count = answer(
        &synth,
        Route::ResponsesInputTokens,
        json!({"model": "m", "input": "x"}),
    );
    assert!(body_json(&count)["input_tokens"].as_u64().unwrap() > 0);
}

fn conversation(id: Option<&str>, item: Option<&str>, action: ConversationAction) -> Route {
    Route::Conversation {
        id: id.map(str::to_owned),
        item: item.map(str::to_owned),
        action,
    }
}

#[test]
fn a_conversation_keeps_what_responses_calls_add_and_they_read_it_back() {
    let synth = Synth::default();
    let create = conversation(None, None, ConversationAction::Create);
    let made = body_json(&answer(
        &synth,
        create,
        json!({"items": [{"role": "user", "content": "My name is Ada."}], "metadata": {"topic": "intro"}}),
    ));
    let id = made["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("conv_") && made["object"] == "conversation");
    let ask = |text: &str| {
        let request =
            json!({"model": "gpt-5-nano", "input": text, "conversation": id, "store": false});
        body_json(&answer(&synth, Route::Responses, request))
    };
    let first = ask("What is my name?");
    let alone = body_json(&answer(
        &synth,
        Route::Responses,
        json!({"model": "gpt-5-nano", "input": "What is my name?", "store": false}),
    ));
    let input = |r: &Value| r["usage"]["input_tokens"].as_u64().unwrap();
    assert!(
        input(&first) > input(&alone),
        "the conversation's items are read first"
    );
    let second = ask("And again?");
    assert!(
        input(&second) > input(&first),
        "the first exchange was added"
    );

    let list = |query| {
        let route = conversation(Some(&id), None, ConversationAction::ListItems);
        body_json(&synth.answer(&route, &Value::Null, query).unwrap())
    };
    // Each answer is a reasoning item, then the message.
    let roles: Vec<Value> = list(Some("order=asc"))["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["type"] == "message")
        .map(|i| i["role"].clone())
        .collect();
    assert_eq!(
        roles,
        ["user", "user", "assistant", "user", "assistant"].map(|r| json!(r))
    );
    let newest = &list(None)["data"][0];
    assert_eq!(newest["role"], "assistant", "newest first by default");
    let item = newest["id"].as_str().unwrap().to_owned();
    let one = conversation(Some(&id), Some(&item), ConversationAction::Retrieve);
    assert_eq!(
        body_json(&answer(&synth, one, Value::Null))["id"],
        json!(item)
    );
    let gone = conversation(Some(&id), Some(&item), ConversationAction::Delete);
    assert_eq!(
        body_json(&answer(&synth, gone, Value::Null))["id"],
        json!(id)
    );
    assert_eq!(list(None)["data"].as_array().unwrap().len(), 6);

    let update = conversation(Some(&id), None, ConversationAction::Update);
    let updated = body_json(&answer(
        &synth,
        update,
        json!({"metadata": {"topic": "names"}}),
    ));
    assert_eq!(updated["metadata"]["topic"], "names");
    let delete = conversation(Some(&id), None, ConversationAction::Delete);
    assert_eq!(
        body_json(&answer(&synth, delete, Value::Null))["deleted"],
        true
    );
    let after = answer(
        &synth,
        conversation(Some(&id), None, ConversationAction::Retrieve),
        Value::Null,
    );
    assert_eq!(after.status, http::StatusCode::NOT_FOUND);
    let continued = answer(
        &synth,
        Route::Responses,
        json!({"model": "gpt-5-nano", "input": "Still there?", "conversation": {"id": id}}),
    );
    assert_eq!(continued.status, http::StatusCode::NOT_FOUND);
}

#[test]
fn conversation_paths_resolve() {
    use http::Method;
    let resolve = |method: Method, path| Route::resolve(&method, path);
    assert_eq!(
        resolve(Method::POST, "/v1/conversations"),
        Some(conversation(None, None, ConversationAction::Create))
    );
    assert_eq!(
        resolve(Method::POST, "/v1/conversations/conv_1/items"),
        Some(conversation(
            Some("conv_1"),
            None,
            ConversationAction::AddItems
        ))
    );
    assert_eq!(
        resolve(Method::DELETE, "/v1/conversations/conv_1/items/msg_2"),
        Some(conversation(
            Some("conv_1"),
            Some("msg_2"),
            ConversationAction::Delete
        ))
    );
    assert_eq!(resolve(Method::GET, "/v1/conversations"), None);
    assert_eq!(resolve(Method::GET, "/v1/conversations/"), None);
}

#[test]
fn legacy_completions_stop_at_max_tokens_and_stream_usage_only_when_asked() {
    let synth = Synth::default();
    let request = json!({"model": "qwen2.5-coder", "prompt": "def fibonacci(n):", "suffix": "\n\nprint(fibonacci(10))"});
    let whole = body_json(&answer(&synth, Route::Completions, request.clone()));
    assert_eq!(whole["object"], "text_completion");
    assert_eq!(
        whole["usage"]["completion_tokens"], 16,
        "OpenAI's default max_tokens"
    );
    assert_eq!(whole["choices"][0]["finish_reason"], "length");
    let text = whole["choices"][0]["text"].as_str().unwrap().to_owned();

    let mut streamed = request.clone();
    streamed["stream"] = json!(true);
    streamed["max_tokens"] = json!(500);
    let plain = payloads(&answer(&synth, Route::Completions, streamed.clone()));
    assert!(plain.iter().all(|chunk| chunk.get("usage").is_none()));
    assert_eq!(plain.last().unwrap()["choices"][0]["finish_reason"], "stop");
    streamed["stream_options"] = json!({"include_usage": true});
    let reply = answer(&synth, Route::Completions, streamed);
    let chunks = payloads(&reply);
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"], json!([]));
    let usage = reply.usage.expect("synthesized usage");
    assert_eq!(last["usage"]["completion_tokens"], usage.output);
    assert_eq!(last["usage"]["prompt_tokens"], usage.input);
    let streamed_text: String = chunks
        .iter()
        .filter_map(|c| c.pointer("/choices/0/text").and_then(Value::as_str))
        .collect();
    assert!(streamed_text.starts_with(&text), "{streamed_text} / {text}");
}
