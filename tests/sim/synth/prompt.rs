//! Sizing a prompt and simulating prompt caching.
//!
//! A prompt is a list of segments in the order the provider caches them
//! (tools, then system or instructions, then the conversation). Each segment
//! counts about one token per four bytes of its JSON, with an image or a
//! document counted as a fixed size whatever its encoded bytes. A running
//! hash after each segment names the prefix ending there; the
//! [`PrefixCache`] remembers the prefixes written, so repeating a prefix
//! reads it back, as the providers do.

use std::collections::HashSet;
use std::sync::{Mutex, PoisonError};

use serde_json::Value;
use sha2::{Digest, Sha256};

/// Tokens an image, document or file part counts, whatever its bytes.
const MEDIA_TOKENS: u64 = 1_000;
/// Content part types counted as media.
const MEDIA_TYPES: [&str; 6] = [
    "image",
    "image_url",
    "input_image",
    "document",
    "input_file",
    "file",
];
/// Gemini's count for an inline image (and any other inline file but sound).
const GEMINI_IMAGE_TOKENS: u64 = 258;
/// Gemini's count for a second of inline sound, and the bytes a second of it takes (16 kHz, 16-bit
/// mono PCM or WAV).
const GEMINI_AUDIO_TOKENS_PER_SECOND: u64 = 32;
const AUDIO_BYTES_PER_SECOND: u64 = 32_000;

/// A Gemini `inlineData` part's modality (`AUDIO`, else `IMAGE`) and its tokens, by its MIME type
/// and length; None for anything else.
pub fn gemini_inline(part: &Value) -> Option<(&'static str, u64)> {
    let inline = part.get("inlineData").or_else(|| part.get("inline_data"))?;
    let mime = inline
        .get("mimeType")
        .or_else(|| inline.get("mime_type"))
        .and_then(Value::as_str)
        .unwrap_or("");
    if !mime.starts_with("audio/") {
        return Some(("IMAGE", GEMINI_IMAGE_TOKENS));
    }
    let base64_len = inline
        .get("data")
        .and_then(Value::as_str)
        .map_or(0, str::len) as u64;
    let seconds = (base64_len * 3 / 4).div_ceil(AUDIO_BYTES_PER_SECOND).max(1);
    Some(("AUDIO", seconds * GEMINI_AUDIO_TOKENS_PER_SECOND))
}

/// Shortest prefix the providers cache.
pub const MIN_CACHED: u64 = 1_024;
/// OpenAI reports cache hits in steps of this many tokens.
const OPENAI_CACHE_STEP: u64 = 128;
/// Past this many remembered prefixes the cache starts afresh.
const MAX_PREFIXES: usize = 100_000;

/// Tokens of a JSON value: a quarter of its size, media at a fixed size.
pub fn tokens_of(value: &Value) -> u64 {
    approx_bytes(value).div_ceil(4)
}

/// Tokens of a text: a quarter of its UTF-8 length, rounded up.
pub fn tokens_of_text(text: &str) -> u64 {
    (text.len() as u64).div_ceil(4)
}

/// About the size of `value` serialized, with media parts at a fixed size.
fn approx_bytes(value: &Value) -> u64 {
    match value {
        Value::Object(_) if gemini_inline(value).is_some() => {
            gemini_inline(value).map_or(0, |(_, tokens)| tokens * 4)
        }
        Value::Object(map) => {
            let is_media = map
                .get("type")
                .and_then(Value::as_str)
                .is_some_and(|t| MEDIA_TYPES.contains(&t));
            if is_media {
                return MEDIA_TOKENS * 4;
            }
            map.iter()
                .map(|(k, v)| k.len() as u64 + 4 + approx_bytes(v))
                .sum::<u64>()
                + 2
        }
        Value::Array(items) => items.iter().map(|v| approx_bytes(v) + 1).sum::<u64>() + 2,
        Value::String(s) => s.len() as u64 + 2,
        Value::Number(n) => n.to_string().len() as u64,
        Value::Bool(_) | Value::Null => 4,
    }
}

/// One segment's end: the tokens up to and including it, the hash naming
/// that prefix, and whether the client marked it as a cache breakpoint (kept
/// an hour rather than five minutes: `hour`).
#[derive(Debug, Clone)]
struct Boundary {
    cumulative: u64,
    digest: [u8; 32],
    breakpoint: bool,
    hour: bool,
}

/// A prompt as a sequence of segments.
#[derive(Debug, Clone)]
pub struct Prompt {
    hasher: Sha256,
    total: u64,
    boundaries: Vec<Boundary>,
}

impl Prompt {
    /// An empty prompt for `model` (caches are per model).
    pub fn new(model: &str) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(model.as_bytes());
        Self {
            hasher,
            total: 0,
            boundaries: Vec::new(),
        }
    }

    /// Appends one segment; `tag` (a role, a section name) is hashed with it.
    pub fn push(&mut self, tag: &str, segment: &Value, breakpoint: bool) {
        self.hasher.update([0]);
        self.hasher.update(tag.as_bytes());
        self.hasher.update([0]);
        self.hasher.update(segment.to_string().as_bytes());
        self.total += tokens_of(segment);
        self.boundaries.push(Boundary {
            cumulative: self.total,
            digest: self.hasher.clone().finalize().into(),
            breakpoint,
            hour: false,
        });
    }

    /// Makes the last segment's breakpoint one kept an hour (`"ttl": "1h"`).
    pub fn mark_hour(&mut self) {
        if let Some(last) = self.boundaries.last_mut() {
            last.hour = last.breakpoint;
        }
    }

    /// Appends each of an OpenAI request's `tools` (chat and Responses), none a breakpoint.
    pub fn push_tools(&mut self, request: &Value) {
        let tools = request.get("tools").and_then(Value::as_array);
        for tool in tools.into_iter().flatten() {
            self.push("tool", tool, false);
        }
    }

    /// All input tokens of the prompt, at least one.
    pub fn total(&self) -> u64 {
        self.total.max(1)
    }
}

/// Caching of a prompt, as the provider reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Cached {
    /// Tokens read from the cache.
    pub read: u64,
    /// Tokens written to the cache.
    pub write: u64,
    /// The part of `write` kept an hour.
    pub write_hour: u64,
}

/// The prefixes cached so far, shared by every request.
#[derive(Debug, Default)]
pub struct PrefixCache {
    seen: Mutex<HashSet<[u8; 32]>>,
}

impl PrefixCache {
    /// Anthropic's explicit caching: the prefixes ending at `cache_control`
    /// breakpoints are cached; the longest one cached before is read, the
    /// rest up to the last breakpoint is written, kept an hour up to the last
    /// hour-long breakpoint (which come before the five-minute ones).
    pub fn explicit(&self, prompt: &Prompt) -> Cached {
        let points: Vec<&Boundary> = prompt
            .boundaries
            .iter()
            .filter(|b| b.breakpoint && b.cumulative >= MIN_CACHED)
            .collect();
        let read = self.longest_seen(&points);
        let last = points.last().map_or(0, |b| b.cumulative);
        let last_hour = points.iter().rfind(|b| b.hour).map_or(0, |b| b.cumulative);
        self.remember(&points);
        Cached {
            read,
            write: last.saturating_sub(read),
            write_hour: last_hour.saturating_sub(read),
        }
    }

    /// OpenAI's automatic caching: every segment boundary past the minimum is
    /// a candidate; a hit on one is reported in whole steps, and nothing is
    /// reported as written.
    pub fn automatic(&self, prompt: &Prompt) -> Cached {
        let points: Vec<&Boundary> = prompt
            .boundaries
            .iter()
            .filter(|b| b.cumulative >= MIN_CACHED)
            .collect();
        let read = self.longest_seen(&points);
        self.remember(&points);
        Cached {
            read: read - read % OPENAI_CACHE_STEP,
            write: 0,
            write_hour: 0,
        }
    }

    fn longest_seen(&self, points: &[&Boundary]) -> u64 {
        let seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        points
            .iter()
            .filter(|b| seen.contains(&b.digest))
            .map(|b| b.cumulative)
            .max()
            .unwrap_or(0)
    }

    fn remember(&self, points: &[&Boundary]) {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if seen.len() + points.len() > MAX_PREFIXES {
            seen.clear();
        }
        seen.extend(points.iter().map(|b| b.digest));
    }
}
