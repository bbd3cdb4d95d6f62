//! OpenAI chat completions, and the OpenAI-compatible servers that copy it; and the legacy
//! completions (`POST /v1/completions`, code completion on such servers), which report usage
//! the same way and differ only in where the text is (each choice's `text`).
//!
//! Streams carry `"usage":null` in every chunk except a final usage-only
//! chunk (`"choices":[]`), sent only when the request asked for
//! `stream_options.include_usage`; the proxy asks on the client's behalf
//! ([`include_usage_edit`]) and takes the addition back out of what the
//! client sees ([`IncludeUsageStripper`]). A non-streamed body has a
//! top-level `usage`. `cached_tokens` is part of `prompt_tokens`,
//! `reasoning_tokens` part of `completion_tokens`; compatible servers may
//! send the details objects as null or not at all.

mod inject;
mod strip;

#[cfg(test)]
mod tests;

use std::marker::PhantomData;

use serde::Deserialize;

pub use inject::include_usage_edit;
pub use strip::IncludeUsageStripper;

use super::extractor::{Seen, Wire};
use super::json::{self, key, Key, Reported};
use super::{Parts, Usage};

static USAGE: Key = key!(b"\"usage\"");
static ERROR: Key = key!(b"\"error\"");
static CHOICES: Key = key!(b"\"choices\"");
static DELTA: Key = key!(b"\"delta\"");

#[derive(Deserialize)]
struct WireUsage {
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
    prompt_tokens_details: Option<PromptDetails>,
    completion_tokens_details: Option<CompletionDetails>,
}

#[derive(Deserialize)]
struct PromptDetails {
    cached_tokens: Option<u64>,
    /// OpenRouter: prompt tokens written to the cache (part of `prompt_tokens`).
    cache_write_tokens: Option<u64>,
    /// Audio in the prompt (`gpt-audio`), priced apart.
    audio_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct CompletionDetails {
    reasoning_tokens: Option<u64>,
    /// Audio in the answer, priced apart.
    audio_tokens: Option<u64>,
}

impl From<WireUsage> for Usage {
    fn from(wire: WireUsage) -> Self {
        let prompt = wire.prompt_tokens_details.as_ref();
        let completion = wire.completion_tokens_details.as_ref();
        Usage {
            input: wire.prompt_tokens,
            output: wire.completion_tokens,
            cache_read: prompt.and_then(|d| d.cached_tokens),
            cache_write: prompt.and_then(|d| d.cache_write_tokens),
            reasoning: completion.and_then(|d| d.reasoning_tokens),
            parts: Parts {
                audio_input: prompt.and_then(|d| d.audio_tokens),
                audio_output: completion.and_then(|d| d.audio_tokens),
                ..Parts::default()
            },
        }
    }
}

/// Where a chat-shaped answer keeps its generated text: inside the values of its `within`
/// members, as the strings of members named in `TEXT`.
pub(super) trait TextAt: Default + Send + Sync + 'static {
    /// The members whose values hold the text of a stream chunk.
    fn within() -> &'static Key;
    /// The members whose strings are the text.
    const TEXT: &'static [&'static [u8]];
}

/// Chat completions: a chunk's text is in its choices' `delta` objects (content, reasoning as
/// OpenAI-compatible servers spell it, tool-call arguments, refusals).
#[derive(Default)]
pub(super) struct Deltas;

impl TextAt for Deltas {
    fn within() -> &'static Key {
        &DELTA
    }
    const TEXT: &'static [&'static [u8]] = &[
        b"content",
        b"reasoning_content",
        b"reasoning",
        b"arguments",
        b"refusal",
    ];
}

/// Legacy completions: the text is each choice's `text`.
#[derive(Default)]
pub(super) struct ChoiceText;

impl TextAt for ChoiceText {
    fn within() -> &'static Key {
        &CHOICES
    }
    const TEXT: &'static [&'static [u8]] = &[b"text"];
}

/// Reads a chat-shaped dialect whose text is where `T` says.
#[derive(Default)]
pub(super) struct ChatShaped<T>(PhantomData<T>);

/// Reads chat completions.
pub(super) type Chat = ChatShaped<Deltas>;
/// Reads legacy completions.
pub(super) type Completions = ChatShaped<ChoiceText>;

impl<T: TextAt> Wire for ChatShaped<T> {
    fn event(&mut self, seen: &mut Seen, event: &str, data: &[u8]) {
        if data == b"[DONE]" {
            return;
        }
        // Only the members that hold the text are walked, not the whole chunk.
        seen.content_bytes += json::values(data, T::within())
            .map(|at| json::text_within(data, at, T::TEXT))
            .sum::<u64>();
        let worth_parsing = !seen.has_model()
            || event == "error"
            || json::has_object(data, &USAGE)
            || json::has_object(data, &ERROR);
        if worth_parsing {
            read(seen, data);
        }
    }

    fn body(&mut self, seen: &mut Seen, body: &[u8]) {
        read(seen, body);
    }

    fn body_text(&self, body: &[u8]) -> u64 {
        json::text_within(body, json::skip_ws(body, 0), T::TEXT)
    }
}

/// Takes the model, usage and error out of one chunk or body.
fn read(seen: &mut Seen, data: &[u8]) {
    if let Ok(chunk) = serde_json::from_slice::<Reported<'_, WireUsage>>(data) {
        chunk.tell_final(seen);
    }
}
