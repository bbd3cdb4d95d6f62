//! Faithful mode (`--synthesize`): instead of replaying a recording, answer
//! each request with a response built for it, so real clients (Claude Code,
//! Codex, Gemini CLI, chat UIs, SDK apps) can hold a whole session against the simulator.
//!
//! Everything is deterministic: the answer text comes from the request, the
//! token figures from its size (about four bytes a token) and from what was
//! generated, and prompt caching from the prefixes seen before. The figures
//! the simulator answered with travel in the `x-sim-usage` response header
//! and in the request log, so a test can compare them with what tailmeter
//! counted.

pub(crate) mod answer;
mod anthropic;
mod chat;
mod completions;
mod conversations;
mod embeddings;
mod gemini;
mod media;
mod moderations;
pub(crate) mod prompt;
mod responses;
mod schema;
mod stored;
#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicU64, Ordering};

use http::StatusCode;
use serde::Serialize;
use serde_json::Value;

use crate::deliver::Reply;
use crate::routes::Route;

use answer::{generate, Ask, Generated};
use prompt::{PrefixCache, Prompt};

/// The five figures tailmeter counts, as the simulator answered them: `input`
/// is all input (cached included), `output` all output (reasoning included).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Tokens {
    /// All input tokens, cached ones included.
    pub input: u64,
    /// All output tokens, reasoning included.
    pub output: u64,
    /// Input tokens read from the prompt cache.
    pub cache_read: u64,
    /// Input tokens written to the prompt cache.
    pub cache_write: u64,
    /// Output tokens spent on reasoning or thinking.
    pub reasoning: u64,
}

/// The synthesizing answerer: shared prompt cache, id counter and stored responses.
#[derive(Debug, Default)]
pub struct Synth {
    cache: PrefixCache,
    next_id: AtomicU64,
    stored: stored::Stored,
    conversations: conversations::Conversations,
}

impl Synth {
    /// The synthesized answer for `route` (`query` is the request's query string), or None where
    /// the simulator keeps replaying recordings (Bedrock's Converse and CountTokens).
    pub fn answer(&self, route: &Route, request: &Value, query: Option<&str>) -> Option<Reply> {
        let result = match route {
            Route::Messages => anthropic::messages(self, request),
            Route::CountTokens => anthropic::count_tokens(request),
            Route::ChatCompletions => chat::completion(self, request),
            Route::Completions => completions::complete(self, request),
            Route::Responses => responses::respond(self, request),
            Route::ResponsesInputTokens => responses::input_tokens(request),
            Route::ResponsesCompact => responses::compact(self, request),
            Route::Stored { id, action } => Ok(self.stored.answer(id, *action, query)),
            Route::Conversation { id, item, action } => Ok(self.conversations.answer(
                self,
                id.as_deref(),
                item.as_deref(),
                *action,
                request,
                query,
            )),
            Route::Embeddings => embeddings::embed(request),
            Route::Moderations => moderations::moderate(self.id("modr"), request),
            Route::Media(endpoint) => media::answer(self, *endpoint, request),
            Route::Gemini { model, stream } => {
                let sse = query.is_some_and(|q| q.split('&').any(|p| p == "alt=sse"));
                let framing = match (stream, sse) {
                    (false, _) => gemini::Framing::Whole,
                    (true, true) => gemini::Framing::Sse,
                    (true, false) => gemini::Framing::Array,
                };
                gemini::generate_content(self, model, request, framing)
            }
            Route::GeminiCountTokens { model } => gemini::count_tokens(model, request),
            Route::Invoke { model, stream } => anthropic::invoke(self, model, request, *stream),
            Route::Converse { .. } | Route::BedrockCountTokens { .. } => return None,
        };
        Some(result.unwrap_or_else(|message| {
            route
                .dialect()
                .error(StatusCode::BAD_REQUEST, &format!("provider-sim: {message}"))
        }))
    }

    /// An answer from a provider that caches prompts by itself (OpenAI's chat and Responses,
    /// Gemini's implicit caching): `ask` generated for `prompt`, with the figures of automatic
    /// caching (a read, never a write) and the reasoning as its own part of the output.
    fn answer_cached_automatically(&self, prompt: &Prompt, ask: &Ask) -> (Generated, Tokens) {
        let cached = self.cache.automatic(prompt);
        let generated = generate(ask);
        let tokens = Tokens {
            input: prompt.total(),
            output: generated.output_tokens(),
            cache_read: cached.read,
            cache_write: 0,
            reasoning: generated.reasoning,
        };
        (generated, tokens)
    }

    /// A fresh identifier such as `msg_sim0000000000000007`.
    pub(crate) fn id(&self, prefix: &str) -> String {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        format!("{prefix}_sim{n:016}")
    }
}

/// The request's `model`, which every synthesized endpoint requires.
fn model_of(request: &Value) -> Result<&str, String> {
    let model = request.get("model").and_then(Value::as_str);
    model.ok_or_else(|| "`model` is required".to_owned())
}

/// Reads an optional non-negative integer field; a present field of another
/// type is an invalid request.
fn opt_u64(request: &Value, key: &str) -> Result<Option<u64>, String> {
    match request.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => value
            .as_u64()
            .map(Some)
            .ok_or_else(|| format!("`{key}` must be a non-negative integer")),
    }
}
