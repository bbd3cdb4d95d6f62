//! Google Gemini `generateContent` / `streamGenerateContent` (also Vertex AI).
//!
//! Every chunk of a stream (SSE with `alt=sse`, else the elements of one JSON
//! array) is a whole `GenerateContentResponse`, and its `usageMetadata` is a
//! running total that can change between chunks (prompt 15 → 13 in one
//! recording), so the latest value of each field wins. On Vertex the middle
//! chunks carry only `{"trafficType": …}`. The contract's figures:
//! - input = `promptTokenCount` (cached content included) + `toolUsePromptTokenCount`;
//! - output = `candidatesTokenCount` + `thoughtsTokenCount` (thoughts are not
//!   part of the candidates count: `totalTokenCount` is the sum of all four);
//! - cache_read = `cachedContentTokenCount`; reasoning = `thoughtsTokenCount`.
//!
//! Hot path: only the small `usageMetadata` object of a chunk is parsed; the
//! candidates around it are scanned for text length, never deserialized.

use serde::Deserialize;

use super::extractor::{Seen, Wire};
use super::json::{self, key, keys, Key, Keys, WireError};
use super::{latest, Usage};

static USAGE: Key = key!(b"\"usageMetadata\"");
static MODEL: Key = key!(b"\"modelVersion\"");
static ERROR: Key = key!(b"\"error\"");
static FINISH: Key = key!(b"\"finishReason\"");
/// Generated text: the `text` of content parts.
static TEXT: Keys = keys!(b"\"text\"");

#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireUsage {
    prompt_token_count: Option<u64>,
    tool_use_prompt_token_count: Option<u64>,
    candidates_token_count: Option<u64>,
    thoughts_token_count: Option<u64>,
    cached_content_token_count: Option<u64>,
}

impl WireUsage {
    /// Takes every field `later` reports; keeps the ones it does not.
    fn update(&mut self, later: WireUsage) {
        latest(&mut self.prompt_token_count, later.prompt_token_count);
        latest(
            &mut self.tool_use_prompt_token_count,
            later.tool_use_prompt_token_count,
        );
        latest(
            &mut self.candidates_token_count,
            later.candidates_token_count,
        );
        latest(&mut self.thoughts_token_count, later.thoughts_token_count);
        latest(
            &mut self.cached_content_token_count,
            later.cached_content_token_count,
        );
    }
}

impl From<WireUsage> for Usage {
    fn from(wire: WireUsage) -> Self {
        let sum = |a: Option<u64>, b: Option<u64>| {
            [a, b].into_iter().flatten().reduce(u64::saturating_add)
        };
        Usage {
            input: sum(wire.prompt_token_count, wire.tool_use_prompt_token_count),
            output: sum(wire.candidates_token_count, wire.thoughts_token_count),
            cache_read: wire.cached_content_token_count,
            cache_write: None,
            reasoning: wire.thoughts_token_count,
        }
    }
}

/// An error body or stream payload: `{"error":{"code","message","status"}}`.
#[derive(Deserialize)]
struct ErrorBody<'a> {
    #[serde(borrow)]
    error: Option<WireError<'a>>,
}

/// Reads Gemini responses, keeping the usage's running totals.
#[derive(Default)]
pub(super) struct Gemini {
    totals: WireUsage,
}

impl Wire for Gemini {
    fn event(&mut self, seen: &mut Seen, _event: &str, data: &[u8]) {
        self.read(seen, data);
    }

    fn body(&mut self, seen: &mut Seen, body: &[u8]) {
        self.read(seen, body);
        seen.complete |= !seen.usage.is_empty();
    }
}

impl Gemini {
    /// One response (a stream chunk or a whole body).
    fn read(&mut self, seen: &mut Seen, data: &[u8]) {
        if !seen.has_model() {
            seen.model(json::string(data, &MODEL));
        }
        seen.content_bytes += json::text_len(data, &TEXT);
        let usage = json::last_object(data, &USAGE)
            .and_then(|usage| serde_json::from_slice::<WireUsage>(usage).ok());
        if let Some(usage) = usage {
            self.totals.update(usage);
            seen.usage = self.totals.into();
            // The chunk that finishes the candidate carries the final figures.
            if json::values(data, &FINISH).next().is_some() && !seen.usage.is_empty() {
                seen.complete = true;
            }
        }
        if json::has_object(data, &ERROR) {
            if let Ok(ErrorBody { error: Some(error) }) = serde_json::from_slice(data) {
                seen.error(Some(error.short()));
            }
        }
    }
}
