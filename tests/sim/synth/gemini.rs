//! Gemini `generateContent` and `streamGenerateContent`, synthesized: the candidate's text (JSON
//! valid under `responseSchema` / `responseJsonSchema` when `responseMimeType` asks for JSON), a
//! function call when `toolConfig` forces one (mode `ANY`), thinking for the thinking models
//! (`thoughtsTokenCount`, and a thought part when `includeThoughts`), implicit caching
//! (`cachedContentTokenCount`), and `usageMetadata` on every chunk of a stream as a running
//! total, as Gemini sends it. A stream is SSE under `alt=sse`, else one JSON array.
//! `countTokens` sizes the same prompt.

use serde_json::{json, Value};

use super::answer::{pieces, snippet_of, Ask, Generated};
use super::prompt::{gemini_inline, tokens_of_text, Prompt};
use super::{Synth, Tokens};
use crate::deliver::{Kind, Reply};

/// Thinking tokens of a thinking model when the request sets no budget or level.
const DEFAULT_THOUGHTS: u64 = 96;

/// How a stream is framed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Framing {
    /// One whole response (`generateContent`).
    Whole,
    /// `data:` events (`streamGenerateContent?alt=sse`).
    Sse,
    /// The chunks as the elements of one JSON array (`streamGenerateContent`).
    Array,
}

/// Answers `generateContent` or `streamGenerateContent` for `model`.
pub fn generate_content(
    synth: &Synth,
    model: &str,
    request: &Value,
    framing: Framing,
) -> Result<Reply, String> {
    let contents = request
        .get("contents")
        .and_then(Value::as_array)
        .filter(|c| !c.is_empty())
        .ok_or("`contents` must be a non-empty array")?;
    let config = request.get("generationConfig").unwrap_or(&Value::Null);
    let max_tokens = match config.get("maxOutputTokens") {
        None | Some(Value::Null) => None,
        Some(max) => Some(
            max.as_u64()
                .ok_or("`maxOutputTokens` must be a positive integer")?,
        ),
    };
    let ask = Ask {
        snippet: snippet_of(last_user_parts(contents).as_ref()),
        max_tokens,
        reasoning: thoughts(model, config),
        forced_tool: forced_function(request),
        json: json_output(config),
        ..Ask::default()
    };
    let (generated, tokens) =
        synth.answer_cached_automatically(&prompt(model, request, contents), &ask);
    let answer = Answer {
        id: synth.id("resp"),
        model,
        inline: inline_tokens(contents),
        show_thoughts: config.pointer("/thinkingConfig/includeThoughts")
            == Some(&Value::Bool(true))
            && generated.reasoning > 0,
        generated,
        tokens,
    };
    let reply = match framing {
        Framing::Whole => Reply::ok(Kind::Json, answer.whole().to_string()),
        Framing::Sse => {
            let events: String = answer
                .chunks()
                .iter()
                .map(|c| format!("data: {c}\r\n\r\n"))
                .collect();
            Reply::ok(Kind::Sse, events)
        }
        Framing::Array => Reply::ok(Kind::Json, Value::Array(answer.chunks()).to_string()),
    };
    Ok(reply.with_usage(tokens))
}

/// Answers `countTokens`: the prompt's size, as `generateContent` would count it. The request is
/// a `generateContentRequest` or bare `contents`.
pub fn count_tokens(model: &str, request: &Value) -> Result<Reply, String> {
    let request = request.get("generateContentRequest").unwrap_or(request);
    let contents = request
        .get("contents")
        .and_then(Value::as_array)
        .ok_or("`contents` must be an array")?;
    let total = prompt(model, request, contents).total();
    let body = json!({"totalTokens": total,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": total}]});
    Ok(Reply::ok(Kind::Json, body.to_string()))
}

/// The prompt in cache order: function declarations, the system instruction, then every content.
fn prompt(model: &str, request: &Value, contents: &[Value]) -> Prompt {
    let mut prompt = Prompt::new(model);
    for tool in request
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        prompt.push("tool", tool, false);
    }
    if let Some(system) = request.get("systemInstruction") {
        prompt.push("system", system, false);
    }
    for content in contents {
        prompt.push("content", content, false);
    }
    prompt
}

/// The parts of the last `user` content, shaped for [`snippet_of`].
fn last_user_parts(contents: &[Value]) -> Option<Value> {
    let last = contents
        .iter()
        .rev()
        .find(|c| c.get("role").and_then(Value::as_str).unwrap_or("user") == "user")?;
    Some(json!([{"role": "user", "content": last.get("parts")?}]))
}

/// Thinking tokens: none for models that do not think or a budget of 0; else the budget (at most
/// the default) or the level's share.
fn thoughts(model: &str, config: &Value) -> u64 {
    let thinks = model.starts_with("gemini-2.5") || model.starts_with("gemini-3");
    let thinking = config.get("thinkingConfig").unwrap_or(&Value::Null);
    match thinking.get("thinkingBudget").and_then(Value::as_i64) {
        _ if !thinks => 0,
        Some(0) => 0,
        Some(budget) if budget > 0 => (budget as u64).min(DEFAULT_THOUGHTS),
        _ => match thinking.get("thinkingLevel").and_then(Value::as_str) {
            Some(level) if level.eq_ignore_ascii_case("low") => 32,
            Some(level) if level.eq_ignore_ascii_case("high") => 256,
            _ => DEFAULT_THOUGHTS,
        },
    }
}

/// The function `toolConfig` forces (mode `ANY`: the first allowed one), with its schema.
fn forced_function(request: &Value) -> Option<(String, Value)> {
    let calling = request.pointer("/toolConfig/functionCallingConfig")?;
    if calling.get("mode").and_then(Value::as_str) != Some("ANY") {
        return None;
    }
    let allowed = calling
        .get("allowedFunctionNames")
        .and_then(Value::as_array)
        .and_then(|names| names.first())
        .and_then(Value::as_str);
    let declarations = request
        .get("tools")?
        .as_array()?
        .iter()
        .filter_map(|t| t.get("functionDeclarations").and_then(Value::as_array));
    let function = declarations
        .flatten()
        .find(|f| allowed.is_none() || f.get("name").and_then(Value::as_str) == allowed)?;
    let name = function.get("name").and_then(Value::as_str)?;
    let schema = function
        .get("parametersJsonSchema")
        .or_else(|| function.get("parameters"))
        .cloned()
        .unwrap_or(json!({}));
    Some((name.to_owned(), schema))
}

/// Structured output: JSON when `responseMimeType` asks for it, under the schema given.
fn json_output(config: &Value) -> Option<Option<Value>> {
    (config.get("responseMimeType").and_then(Value::as_str) == Some("application/json")).then(
        || {
            config
                .get("responseJsonSchema")
                .or_else(|| config.get("responseSchema"))
                .cloned()
        },
    )
}

/// The tokens of the contents' inline sound and pictures, by modality.
fn inline_tokens(contents: &[Value]) -> Vec<(&'static str, u64)> {
    let mut by_modality: Vec<(&'static str, u64)> = Vec::new();
    let parts = contents
        .iter()
        .filter_map(|c| c.get("parts").and_then(Value::as_array))
        .flatten();
    for (modality, tokens) in parts.filter_map(gemini_inline) {
        match by_modality.iter_mut().find(|(m, _)| *m == modality) {
            Some((_, sum)) => *sum += tokens,
            None => by_modality.push((modality, tokens)),
        }
    }
    by_modality
}

/// A whole synthesized answer.
struct Answer<'a> {
    id: String,
    model: &'a str,
    /// The prompt's inline sound and pictures, by modality (tokens).
    inline: Vec<(&'static str, u64)>,
    generated: Generated,
    tokens: Tokens,
    show_thoughts: bool,
}

impl Answer<'_> {
    fn finish_reason(&self) -> &'static str {
        if self.generated.truncated {
            "MAX_TOKENS"
        } else {
            "STOP"
        }
    }

    /// The answer's output but its thinking: Gemini's `candidatesTokenCount` at the end.
    fn candidates(&self) -> u64 {
        self.tokens.output - self.tokens.reasoning
    }

    /// `usageMetadata` with `candidates` tokens generated so far.
    fn usage(&self, candidates: u64) -> Value {
        let t = &self.tokens;
        let media: u64 = self.inline.iter().map(|(_, tokens)| tokens).sum();
        let mut details = vec![json!({"modality": "TEXT", "tokenCount": t.input - media})];
        for (modality, tokens) in &self.inline {
            details.push(json!({"modality": modality, "tokenCount": tokens}));
        }
        let mut usage = json!({"promptTokenCount": t.input, "candidatesTokenCount": candidates,
            "totalTokenCount": t.input + candidates + t.reasoning,
            "promptTokensDetails": details});
        if t.reasoning > 0 {
            usage["thoughtsTokenCount"] = json!(t.reasoning);
        }
        if t.cache_read > 0 {
            usage["cachedContentTokenCount"] = json!(t.cache_read);
        }
        usage
    }

    /// One response object: `parts`, the usage so far, and the finish reason when it is the last.
    fn response(&self, parts: Vec<Value>, candidates: u64, last: bool) -> Value {
        let mut candidate = json!({"content": {"parts": parts, "role": "model"}, "index": 0});
        if last {
            candidate["finishReason"] = json!(self.finish_reason());
        }
        json!({"candidates": [candidate], "usageMetadata": self.usage(candidates),
            "modelVersion": self.model, "responseId": self.id})
    }

    fn thought_part(&self) -> Option<Value> {
        self.show_thoughts.then(|| {
            json!({"text": "**Answering**\n\nprovider-sim answers with a fixed sentence.", "thought": true})
        })
    }

    fn call_part(&self) -> Option<Value> {
        let call = self.generated.tool.as_ref()?;
        Some(json!({"functionCall": {"name": call.name, "args": call.arguments}}))
    }

    /// The whole `GenerateContentResponse`.
    fn whole(&self) -> Value {
        let mut parts: Vec<Value> = self.thought_part().into_iter().collect();
        parts.extend(self.call_part());
        if !self.generated.text.is_empty() {
            parts.push(json!({"text": self.generated.text}));
        }
        self.response(parts, self.candidates(), true)
    }

    /// The stream's responses: the thoughts, the function call or the text in pieces, each with
    /// the usage so far; the last carries the finish reason.
    fn chunks(&self) -> Vec<Value> {
        let mut parts: Vec<(Value, u64)> =
            self.thought_part().map(|p| (p, 0)).into_iter().collect();
        if let Some(call) = self.call_part() {
            parts.push((call, self.candidates()));
        }
        let mut generated = 0;
        for piece in pieces(&self.generated.text) {
            generated += tokens_of_text(&piece);
            parts.push((json!({"text": piece}), generated));
        }
        let count = parts.len();
        let full = self.candidates();
        if count == 0 {
            return vec![self.response(Vec::new(), full, true)];
        }
        parts
            .into_iter()
            .enumerate()
            .map(|(i, (part, so_far))| {
                let last = i + 1 == count;
                self.response(vec![part], if last { full } else { so_far.min(full) }, last)
            })
            .collect()
    }
}
