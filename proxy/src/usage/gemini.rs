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
//! Hot path: every chunk carries a `usageMetadata`, so nothing of a chunk is
//! deserialized: one pass ([`json::named_values`]) finds its text, usage,
//! finish reason, model and error members, and the usage counts are read
//! with a small integer scan ([`json::integers`]). Only an error is parsed by serde.

use serde::Deserialize;

use super::extractor::{Seen, Wire};
use super::json::{self, WireError};
use super::{latest, Usage};

/// The members one pass over a response looks for, indexed by the constants below.
const MEMBERS: &[&[u8]] = &[
    b"text",
    b"usageMetadata",
    b"finishReason",
    b"modelVersion",
    b"error",
];
/// Generated text: the `text` of content parts.
const TEXT: usize = 0;
const USAGE: usize = 1;
const FINISH: usize = 2;
const MODEL: usize = 3;
const ERROR: usize = 4;

/// The `usageMetadata` members read, in [`WireUsage`]'s order.
const COUNTS: [&[u8]; 5] = [
    b"promptTokenCount",
    b"toolUsePromptTokenCount",
    b"candidatesTokenCount",
    b"thoughtsTokenCount",
    b"cachedContentTokenCount",
];

#[derive(Debug, Default, Clone, Copy)]
struct WireUsage {
    prompt_token_count: Option<u64>,
    tool_use_prompt_token_count: Option<u64>,
    candidates_token_count: Option<u64>,
    thoughts_token_count: Option<u64>,
    cached_content_token_count: Option<u64>,
}

impl WireUsage {
    /// The `usageMetadata` object that opens at `at` of `data`; None when it
    /// is malformed or a count is not an unsigned integer.
    fn read(data: &[u8], at: usize) -> Option<WireUsage> {
        let [prompt, tool_use, candidates, thoughts, cached] = json::integers(data, at, COUNTS)?;
        Some(WireUsage {
            prompt_token_count: prompt,
            tool_use_prompt_token_count: tool_use,
            candidates_token_count: candidates,
            thoughts_token_count: thoughts,
            cached_content_token_count: cached,
        })
    }

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
    /// One response (a stream chunk or a whole body), passed over once.
    fn read(&mut self, seen: &mut Seen, data: &[u8]) {
        let (mut text, mut usage, mut finish, mut model, mut error) = (0, None, false, None, false);
        for (member, at) in json::named_values(data, MEMBERS) {
            let string = data[at] == b'"';
            let object = data[at] == b'{';
            match member {
                TEXT if string => {
                    text += json::string_end(data, at).map_or(0, |end| (end - at - 2) as u64);
                }
                USAGE if object => usage = Some(at),
                FINISH => finish = true,
                MODEL if string && model.is_none() => model = Some(at),
                ERROR => error |= object,
                _ => {}
            }
        }
        seen.content_bytes += text;
        if let Some(at) = model.filter(|_| !seen.has_model()) {
            let end = json::string_end(data, at).unwrap_or(at);
            seen.model(serde_json::from_slice(&data[at..end]).ok());
        }
        if let Some(usage) = usage.and_then(|at| WireUsage::read(data, at)) {
            self.totals.update(usage);
            seen.usage = self.totals.into();
            // The chunk that finishes the candidate carries the final figures.
            if finish && !seen.usage.is_empty() {
                seen.complete = true;
            }
        }
        if error {
            if let Ok(ErrorBody { error: Some(error) }) = serde_json::from_slice(data) {
                seen.error(Some(error.short()));
            }
        }
    }
}
