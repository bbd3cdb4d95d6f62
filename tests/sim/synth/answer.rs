//! What the simulated model "generates" for a request, whatever the dialect:
//! optional thinking, hidden reasoning, and then text, structured JSON or a
//! forced tool call, all cut to the request's output limit.

use serde_json::{json, Value};

use super::prompt::tokens_of_text;
use super::schema;

/// Characters of the caller's last message quoted in the reply.
const SNIPPET_CHARS: usize = 80;
/// Characters per streamed text piece.
const PIECE_CHARS: usize = 24;

/// What a request asks the model for.
#[derive(Debug, Default)]
pub struct Ask {
    /// The caller's last message, quoted in the reply.
    pub snippet: String,
    /// Output limit (`max_tokens` and the like), if any.
    pub max_tokens: Option<u64>,
    /// Anthropic extended thinking is on: emit a thinking block.
    pub thinking: bool,
    /// Hidden reasoning tokens to report (OpenAI reasoning models).
    pub reasoning: u64,
    /// A tool the client forces, with its parameter schema.
    pub forced_tool: Option<(String, Value)>,
    /// Structured output: `Some(None)` for any JSON object, `Some(Some(schema))`
    /// for a schema.
    pub json: Option<Option<Value>>,
}

/// A forced tool call.
#[derive(Debug)]
pub struct ToolCall {
    /// The tool's name.
    pub name: String,
    /// Its arguments, valid under the tool's schema.
    pub arguments: Value,
}

/// The generated answer.
#[derive(Debug)]
pub struct Generated {
    /// Thinking text (Anthropic), when asked for.
    pub thinking: Option<String>,
    /// Hidden reasoning tokens.
    pub reasoning: u64,
    /// The visible text (empty for a tool call).
    pub text: String,
    /// The tool call, when one was forced.
    pub tool: Option<ToolCall>,
    /// The output limit cut the answer short.
    pub truncated: bool,
}

impl Generated {
    /// Output tokens: thinking, reasoning, text and tool call together.
    pub fn output_tokens(&self) -> u64 {
        let tool = self.tool.as_ref().map_or(0, |t| {
            tokens_of_text(&t.name) + tokens_of_text(&t.arguments.to_string())
        });
        self.thinking.as_deref().map_or(0, tokens_of_text)
            + self.reasoning
            + tokens_of_text(&self.text)
            + tool
    }
}

/// The answer to `ask`.
pub fn generate(ask: &Ask) -> Generated {
    let mut budget = ask.max_tokens.unwrap_or(u64::MAX);
    let mut truncated = false;
    let mut cut = |text: String, budget: &mut u64| {
        let (kept, short) = cut_to_tokens(text, *budget);
        *budget = budget.saturating_sub(tokens_of_text(&kept));
        truncated |= short;
        kept
    };
    let thinking = ask.thinking.then(|| {
        let thought = format!(
            "The user wrote \"{}\". provider-sim answers with a fixed sentence.",
            ask.snippet
        );
        cut(thought, &mut budget)
    });
    let reasoning = ask.reasoning.min(budget);
    budget -= reasoning;
    if let Some((name, parameters)) = &ask.forced_tool {
        return Generated {
            thinking,
            reasoning,
            text: String::new(),
            tool: Some(ToolCall {
                name: name.clone(),
                arguments: schema::example(parameters),
            }),
            truncated,
        };
    }
    let text = match &ask.json {
        Some(Some(schema)) => schema::example(schema).to_string(),
        Some(None) => json!({ "reply": reply_sentence(&ask.snippet) }).to_string(),
        None => reply_sentence(&ask.snippet),
    };
    let text = cut(text, &mut budget);
    Generated {
        thinking,
        reasoning,
        text,
        tool: None,
        truncated,
    }
}

/// The plain reply.
fn reply_sentence(snippet: &str) -> String {
    format!("This is a simulated reply from provider-sim to: {snippet}")
}

/// `text` cut to at most `tokens` tokens (on a character boundary), and
/// whether it had to be cut.
fn cut_to_tokens(text: String, tokens: u64) -> (String, bool) {
    let limit = usize::try_from(tokens.saturating_mul(4)).unwrap_or(usize::MAX);
    if text.len() <= limit {
        return (text, false);
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    (text[..end].to_owned(), true)
}

/// `text` in streaming pieces of a few characters each (none when empty).
pub fn pieces(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    chars
        .chunks(PIECE_CHARS)
        .map(|c| c.iter().collect())
        .collect()
}

/// The last text in a message or content value: a string itself, else the
/// last `text` (or `content`, `output`) found scanning from the end.
pub fn last_text(value: &Value) -> Option<&str> {
    match value {
        Value::String(text) if !text.trim().is_empty() => Some(text),
        Value::Array(items) => items.iter().rev().find_map(last_text),
        Value::Object(map) => ["text", "content", "output"]
            .iter()
            .find_map(|key| map.get(*key).and_then(last_text)),
        _ => None,
    }
}

/// The text of the last item whose `role` is `user` in `items`, or of a
/// plain string, as a one-line snippet.
pub fn snippet_of(input: Option<&Value>) -> String {
    let text = match input {
        Some(Value::Array(items)) => items
            .iter()
            .rev()
            .filter(|item| item.get("role").and_then(Value::as_str) == Some("user"))
            .find_map(last_text),
        Some(other) => last_text(other),
        None => None,
    };
    let line = text
        .unwrap_or("(no text)")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    line.chars().take(SNIPPET_CHARS).collect()
}

/// The default hidden reasoning for a reasoning `effort` (OpenAI's values),
/// or for the model when the request names none.
pub fn reasoning_for(effort: Option<&str>, model: &str) -> u64 {
    let reasons_by_default = model.starts_with("gpt-5")
        || model
            .strip_prefix('o')
            .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()));
    let effort = effort.or(reasons_by_default.then_some("medium"));
    match effort {
        Some("minimal") => 8,
        Some("low") => 32,
        Some("medium") => 96,
        Some("high" | "xhigh") => 256,
        _ => 0,
    }
}
