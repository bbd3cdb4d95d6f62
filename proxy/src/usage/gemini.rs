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
//! - cache_read = `cachedContentTokenCount`; reasoning = `thoughtsTokenCount`;
//! - the parts priced apart: the prompt's `AUDIO` and `IMAGE` tokens and the
//!   candidates' (`promptTokensDetails`, `candidatesTokensDetails`), read from
//!   the final chunk (or a whole body) only.
//!
//! Hot path: every chunk carries a `usageMetadata`, so nothing of a chunk is
//! deserialized: one pass ([`json::named_values`]) finds its text, usage,
//! finish reason, model and error members, and the usage counts are read
//! with a small integer scan ([`json::integers`]). A stream's chunks differ
//! in little but their text and counts, so the next chunk laid out like the
//! last is read from those two alone ([`layout`]). Only an error is parsed by serde.
//! Members inside a `usageMetadata` object are its counts, nothing else.

mod layout;

use serde::Deserialize;

use super::extractor::{Seen, Wire};
use super::json::{self, WireError};
use super::{latest, Parts, Usage};
use layout::Layout;

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

#[derive(Debug, Default, Clone, Copy, PartialEq)]
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

impl From<[Option<u64>; 5]> for WireUsage {
    /// The counts of [`COUNTS`], in its order.
    fn from([prompt, tool_use, candidates, thoughts, cached]: [Option<u64>; 5]) -> Self {
        WireUsage {
            prompt_token_count: prompt,
            tool_use_prompt_token_count: tool_use,
            candidates_token_count: candidates,
            thoughts_token_count: thoughts,
            cached_content_token_count: cached,
        }
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
            ..Usage::default()
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
    /// The last chunk's layout, when it had one.
    layout: Option<Layout>,
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
        let reread = self
            .layout
            .as_mut()
            .and_then(|l| l.reread(data, seen.has_model()));
        let found = reread.unwrap_or_else(|| Found::read(data, &mut self.layout));
        seen.content_bytes += found.text;
        if let Some(at) = found.model.filter(|_| !seen.has_model()) {
            let end = json::string_end(data, at).unwrap_or(at);
            seen.model(serde_json::from_slice(&data[at..end]).ok());
        }
        if let Some(usage) = found.usage {
            self.totals.update(usage);
            // The counts are running totals; the parts come from the final chunk alone (below).
            seen.usage = Usage {
                parts: seen.usage.parts,
                ..self.totals.into()
            };
            // The chunk that finishes the candidate carries the final figures.
            if found.finish && !seen.usage.is_empty() {
                seen.complete = true;
            }
        }
        // The parts by modality, from the final figures (the chunk, or body, that finishes).
        if let Some(at) = found.usage_at.filter(|_| found.finish) {
            if let Ok(by) = serde_json::from_slice::<ByModality>(&data[at]) {
                seen.usage.parts = by.parts();
            }
        }
        if found.error {
            if let Ok(ErrorBody { error: Some(error) }) = serde_json::from_slice(data) {
                seen.error(Some(error.short()));
            }
        }
    }
}

/// The figures by modality of a `usageMetadata`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ByModality {
    #[serde(default)]
    prompt_tokens_details: Vec<ModalityCount>,
    #[serde(default)]
    candidates_tokens_details: Vec<ModalityCount>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ModalityCount {
    modality: Option<String>,
    token_count: Option<u64>,
}

impl ByModality {
    /// The audio and image parts of the prompt and the candidates.
    fn parts(&self) -> Parts {
        let count = |details: &[ModalityCount], modality: &str| {
            let counts = details
                .iter()
                .filter(|d| d.modality.as_deref() == Some(modality));
            counts
                .filter_map(|d| d.token_count)
                .reduce(u64::saturating_add)
        };
        let (prompt, candidates) = (&self.prompt_tokens_details, &self.candidates_tokens_details);
        Parts {
            audio_input: count(prompt, "AUDIO"),
            image_input: count(prompt, "IMAGE"),
            audio_output: count(candidates, "AUDIO"),
            image_output: count(candidates, "IMAGE"),
            ..Parts::default()
        }
    }
}

/// What one response holds.
#[derive(Debug, Default, Clone, PartialEq)]
struct Found {
    /// Escaped length of its text parts.
    text: u64,
    /// Its (last valid) usage.
    usage: Option<WireUsage>,
    /// Where that usage object lies.
    usage_at: Option<std::ops::Range<usize>>,
    finish: bool,
    /// Where its first `modelVersion` string opens.
    model: Option<usize>,
    error: bool,
}

impl Found {
    /// One pass over a response. When it can serve the next chunk, its layout replaces
    /// `layout` (not when it finishes its candidate: that is the last chunk, and the layout
    /// before it may still serve).
    fn read(data: &[u8], layout: &mut Option<Layout>) -> Found {
        let mut found = Found::default();
        // How many text parts and usage objects, and where the last of each lies.
        let (mut texts, mut text) = (0, 0..0);
        let (mut usages, mut usage) = (0, None);
        // Members before this offset lie inside the last usage object read: they are its counts.
        let mut usage_end = 0;
        for (member, at) in json::named_values(data, MEMBERS) {
            if at < usage_end {
                continue;
            }
            let string = data[at] == b'"';
            let object = data[at] == b'{';
            match member {
                TEXT if string => {
                    if let Some(end) = json::string_end(data, at) {
                        found.text += (end - at - 2) as u64;
                        (texts, text) = (texts + 1, at..end);
                    }
                }
                USAGE if object => {
                    // None when malformed or a count is not an unsigned integer.
                    let read = json::integers(data, at, COUNTS);
                    found.usage = read.as_ref().map(|read| read.values.into());
                    found.usage_at = read.as_ref().map(|read| at..read.end);
                    if let Some(read) = read {
                        usage_end = read.end;
                        (usages, usage) = (usages + 1, Some((at, read)));
                    }
                }
                FINISH => found.finish = true,
                MODEL if string && found.model.is_none() => found.model = Some(at),
                ERROR => found.error |= object,
                _ => {}
            }
        }
        // One text and one usage object, the one that counts; no finish reason, no error.
        let one_of_each = texts == 1 && usages == 1 && found.usage.is_some();
        let plain = one_of_each && !found.finish && !found.error;
        if let Some((at, read)) = usage.filter(|_| plain) {
            if Layout::fits(data, &text, at) {
                let has_model = found.model.is_some();
                layout
                    .get_or_insert_with(Layout::default)
                    .refill(data, text, at, &read, has_model);
            }
        }
        found
    }
}
