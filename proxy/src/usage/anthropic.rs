//! Anthropic messages.
//!
//! `message_start` carries the model and the first usage figures;
//! `message_delta` carries running totals (not increments) that may repeat
//! or revise any field, so the latest value of each field wins. Anthropic's
//! `input_tokens` excludes cache reads and writes, so the contract's input is
//! their sum. An `event: error` can arrive inside an HTTP 200 stream, with no
//! `message_stop` after it. `usage.iterations[]` (compaction) is not read:
//! the top-level figures are taken as reported.

use std::borrow::Cow;

use serde::Deserialize;

use super::extractor::{Seen, Wire};
use super::json::{self, keys, Keys, WireError};
use super::{latest, Usage};

/// The text of `content_block_delta` events and of a non-streamed body.
static TEXT: Keys = keys!(b"\"text\"", b"\"thinking\"", b"\"partial_json\"");

/// `message_start`'s payload.
#[derive(Deserialize)]
struct Start<'a> {
    #[serde(borrow)]
    message: Message<'a>,
}

/// A message (in `message_start` or a whole body), a `message_delta`, or an error.
#[derive(Deserialize)]
struct Message<'a> {
    #[serde(borrow)]
    model: Option<Cow<'a, str>>,
    usage: Option<WireUsage>,
    #[serde(borrow)]
    error: Option<WireError<'a>>,
}

#[derive(Debug, Default, Clone, Copy, Deserialize)]
struct WireUsage {
    input_tokens: Option<u64>,
    cache_creation_input_tokens: Option<u64>,
    cache_read_input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    output_tokens_details: Option<OutputDetails>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
struct OutputDetails {
    /// Part of `output_tokens`.
    thinking_tokens: Option<u64>,
}

impl WireUsage {
    /// Takes every field `later` reports; keeps the ones it does not.
    fn update(&mut self, later: WireUsage) {
        latest(&mut self.input_tokens, later.input_tokens);
        latest(
            &mut self.cache_creation_input_tokens,
            later.cache_creation_input_tokens,
        );
        latest(
            &mut self.cache_read_input_tokens,
            later.cache_read_input_tokens,
        );
        latest(&mut self.output_tokens, later.output_tokens);
        if later.output_tokens_details.is_some() {
            self.output_tokens_details = later.output_tokens_details;
        }
    }
}

impl From<WireUsage> for Usage {
    fn from(wire: WireUsage) -> Self {
        let input = [
            wire.input_tokens,
            wire.cache_creation_input_tokens,
            wire.cache_read_input_tokens,
        ];
        Usage {
            input: input.into_iter().flatten().reduce(u64::saturating_add),
            output: wire.output_tokens,
            cache_read: wire.cache_read_input_tokens,
            cache_write: wire.cache_creation_input_tokens,
            reasoning: wire.output_tokens_details.and_then(|d| d.thinking_tokens),
        }
    }
}

/// Reads messages, keeping the wire figures' running totals.
#[derive(Default)]
pub(super) struct Messages {
    totals: WireUsage,
}

impl Wire for Messages {
    fn event(&mut self, seen: &mut Seen, event: &str, data: &[u8]) {
        match json::event_kind(event, data).as_ref() {
            "content_block_delta" => seen.content_bytes += json::text_len(data, &TEXT),
            "message_start" => {
                if let Ok(start) = serde_json::from_slice::<Start<'_>>(data) {
                    self.take(seen, start.message);
                }
            }
            "message_delta" | "error" => self.read(seen, data),
            _ => {}
        }
    }

    fn body(&mut self, seen: &mut Seen, body: &[u8]) {
        seen.content_bytes += json::text_len(body, &TEXT);
        self.read(seen, body);
    }
}

impl Messages {
    /// Reads a payload that is a message, a `message_delta` or an error.
    fn read(&mut self, seen: &mut Seen, data: &[u8]) {
        if let Ok(message) = serde_json::from_slice::<Message<'_>>(data) {
            self.take(seen, message);
        }
    }

    fn take(&mut self, seen: &mut Seen, message: Message<'_>) {
        seen.model(message.model);
        if let Some(usage) = message.usage {
            self.totals.update(usage);
            seen.usage = self.totals.into();
        }
        seen.error(message.error.map(|e| e.short()));
    }
}
