//! AWS Bedrock: Converse / ConverseStream, and InvokeModel /
//! InvokeModelWithResponseStream.
//!
//! Streams arrive as event-stream frames ([`eventstream`]). ConverseStream's
//! `metadata` event (after `messageStop`) carries `usage`; a non-streamed
//! Converse body has the same `usage` at its top. Bedrock's `inputTokens`
//! excludes cache reads and writes (`totalTokens` = input + output + both),
//! so the contract's input is their sum. Bedrock reports no reasoning count.
//!
//! InvokeModel bodies are the model's own format (Anthropic's for Claude),
//! read by the Anthropic reader; Bedrock's own figures override them: the
//! `x-amzn-bedrock-*-token-count` response headers of InvokeModel, and the
//! `amazon-bedrock-invocationMetrics` of the last InvokeModelWithResponseStream
//! chunk (each chunk's payload is `{"bytes":"<base64 of the model's event>"}`).
//! Exceptions (`:message-type: exception`) and the `x-amzn-ErrorType` header
//! are the provider's errors.

pub mod eventstream;

use base64::Engine;
use serde::Deserialize;

use super::anthropic::Messages;
use super::extractor::{Seen, Wire};
use super::json::{self, key, Key};
use super::{latest, Usage};
use eventstream::{Frame, FrameKind};

/// Text of Converse content: `text` (also inside `reasoningContent`) and tool-call `input` strings.
const TEXT: &[&[u8]] = &[b"text", b"input"];
/// A `contentBlockDelta`'s content: only this small object is walked.
static DELTA: Key = key!(b"\"delta\"");
static METRICS: Key = key!(b"\"amazon-bedrock-invocationMetrics\"");

/// The header naming the error of a failed Bedrock call (`ValidationException:…`).
const ERROR_TYPE_HEADER: &str = "x-amzn-errortype";

/// Converse `usage`, and InvokeModel's invocation metrics / headers, in one shape.
#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireUsage {
    #[serde(alias = "inputTokenCount")]
    input_tokens: Option<u64>,
    #[serde(alias = "outputTokenCount")]
    output_tokens: Option<u64>,
    #[serde(alias = "cacheReadInputTokenCount")]
    cache_read_input_tokens: Option<u64>,
    #[serde(alias = "cacheWriteInputTokenCount")]
    cache_write_input_tokens: Option<u64>,
}

impl WireUsage {
    /// Takes every field `later` reports; keeps the ones it does not.
    fn update(&mut self, later: WireUsage) {
        latest(&mut self.input_tokens, later.input_tokens);
        latest(&mut self.output_tokens, later.output_tokens);
        latest(
            &mut self.cache_read_input_tokens,
            later.cache_read_input_tokens,
        );
        latest(
            &mut self.cache_write_input_tokens,
            later.cache_write_input_tokens,
        );
    }
}

impl From<WireUsage> for Usage {
    fn from(wire: WireUsage) -> Self {
        let input = [
            wire.input_tokens,
            wire.cache_read_input_tokens,
            wire.cache_write_input_tokens,
        ];
        Usage {
            input: input.into_iter().flatten().reduce(u64::saturating_add),
            output: wire.output_tokens,
            cache_read: wire.cache_read_input_tokens,
            cache_write: wire.cache_write_input_tokens,
            reasoning: None,
            ..Usage::default()
        }
    }
}

/// A Converse body or `metadata` event: only its usage.
#[derive(Deserialize)]
struct WithUsage {
    usage: Option<WireUsage>,
}

/// Records an exception or error frame as the provider's error.
fn frame_error(seen: &mut Seen, frame: &Frame<'_>) {
    seen.error(Some(json::shorten(Some(frame.name.to_owned()))));
}

/// Records the error type of a failed call from `x-amzn-ErrorType`.
fn header_error(seen: &mut Seen, name: &str, value: &[u8]) {
    if name.eq_ignore_ascii_case(ERROR_TYPE_HEADER) {
        let value = String::from_utf8_lossy(value);
        let kind = value.split(':').next().unwrap_or_default().trim();
        seen.error(Some(json::shorten(Some(kind.to_owned()))));
    }
}

/// Reads Converse and ConverseStream.
#[derive(Default)]
pub(super) struct Converse;

impl Wire for Converse {
    fn event(&mut self, seen: &mut Seen, event: &str, data: &[u8]) {
        match event {
            "contentBlockDelta" => {
                seen.content_bytes += match delta_at(data) {
                    Some(at) => json::text_within(data, at, TEXT),
                    None => json::values(data, &DELTA)
                        .map(|at| json::text_within(data, at, TEXT))
                        .sum::<u64>(),
                };
            }
            "metadata" => read_usage(seen, data),
            _ => {}
        }
    }

    fn frame(&mut self, seen: &mut Seen, frame: &Frame<'_>) {
        match frame.kind {
            FrameKind::Event => self.event(seen, frame.name, frame.payload),
            FrameKind::Exception | FrameKind::Error => frame_error(seen, frame),
        }
    }

    fn body(&mut self, seen: &mut Seen, body: &[u8]) {
        read_usage(seen, body);
    }

    fn body_text(&self, body: &[u8]) -> u64 {
        json::text_within(body, json::skip_ws(body, 0), TEXT)
    }

    fn header(&mut self, seen: &mut Seen, name: &str, value: &[u8]) {
        header_error(seen, name, value);
    }
}

/// Where the `delta` of a `contentBlockDelta` opens when the event is laid out as Bedrock
/// writes it, `{"contentBlockIndex":N,"delta":{…},"p":…}`: read straight, where the general
/// search for `"delta"` costs more than the rest of the event.
fn delta_at(data: &[u8]) -> Option<usize> {
    let index = data.strip_prefix(b"{\"contentBlockIndex\":")?;
    let digits = index.iter().take_while(|b| b.is_ascii_digit()).count();
    let delta = index[digits..].strip_prefix(b",\"delta\":{")?;
    Some(data.len() - delta.len() - 1)
}

/// Takes the (final) usage of a Converse body or `metadata` event.
fn read_usage(seen: &mut Seen, data: &[u8]) {
    if let Ok(WithUsage { usage: Some(usage) }) = serde_json::from_slice(data) {
        seen.usage = usage.into();
        seen.complete = true;
    }
}

/// Reads InvokeModel and InvokeModelWithResponseStream.
#[derive(Default)]
pub(super) struct Invoke {
    /// The model's own format (Anthropic's for Claude).
    model: Messages,
    /// Bedrock's own figures (headers, invocation metrics): they override the model's.
    billed: WireUsage,
}

/// An InvokeModelWithResponseStream `chunk` payload.
#[derive(Deserialize)]
struct Chunk<'a> {
    #[serde(borrow)]
    bytes: Option<std::borrow::Cow<'a, str>>,
}

/// The last chunk's `amazon-bedrock-invocationMetrics`.
#[derive(Deserialize)]
struct WithMetrics {
    #[serde(rename = "amazon-bedrock-invocationMetrics")]
    metrics: Option<WireUsage>,
}

impl Wire for Invoke {
    fn event(&mut self, seen: &mut Seen, event: &str, data: &[u8]) {
        self.model.event(seen, event, data);
        self.apply_billed(seen);
    }

    fn frame(&mut self, seen: &mut Seen, frame: &Frame<'_>) {
        match frame.kind {
            FrameKind::Event if frame.name == "chunk" => {
                let Ok(Chunk { bytes: Some(bytes) }) = serde_json::from_slice(frame.payload) else {
                    return;
                };
                let Ok(event) = base64::engine::general_purpose::STANDARD.decode(&*bytes) else {
                    return;
                };
                if json::has_object(&event, &METRICS) {
                    if let Ok(WithMetrics { metrics: Some(m) }) = serde_json::from_slice(&event) {
                        self.billed.update(m);
                        seen.complete = true;
                    }
                }
                self.event(seen, "", &event);
            }
            FrameKind::Event => {}
            FrameKind::Exception | FrameKind::Error => frame_error(seen, frame),
        }
    }

    fn body(&mut self, seen: &mut Seen, body: &[u8]) {
        self.model.body(seen, body);
        self.apply_billed(seen);
    }

    fn body_text(&self, body: &[u8]) -> u64 {
        self.model.body_text(body)
    }

    fn header(&mut self, seen: &mut Seen, name: &str, value: &[u8]) {
        header_error(seen, name, value);
        let Some(figure) = name
            .get(..14)
            .filter(|p| p.eq_ignore_ascii_case("x-amzn-bedrock"))
            .map(|_| name[14..].to_ascii_lowercase())
        else {
            return;
        };
        let count = std::str::from_utf8(value)
            .ok()
            .and_then(|v| v.trim().parse().ok());
        let slot = match figure.as_str() {
            "-input-token-count" => &mut self.billed.input_tokens,
            "-output-token-count" => &mut self.billed.output_tokens,
            "-cache-read-input-token-count" => &mut self.billed.cache_read_input_tokens,
            "-cache-write-input-token-count" => &mut self.billed.cache_write_input_tokens,
            _ => return,
        };
        latest(slot, count);
        if self.billed.input_tokens.is_some() && self.billed.output_tokens.is_some() {
            seen.complete = true;
        }
        self.apply_billed(seen);
    }
}

impl Invoke {
    /// Bedrock's figures win over the model's own wherever Bedrock gave one.
    /// Its input figure excludes the cache figures beside it; when it gives
    /// none of those, the model's own cache figures still count.
    fn apply_billed(&self, seen: &mut Seen) {
        let billed = self.billed;
        if billed.input_tokens.is_some() {
            let usage = &mut seen.usage;
            let cache_read = billed.cache_read_input_tokens.or(usage.cache_read);
            let cache_write = billed.cache_write_input_tokens.or(usage.cache_write);
            let input = [billed.input_tokens, cache_read, cache_write];
            usage.input = input.into_iter().flatten().reduce(u64::saturating_add);
            usage.cache_read = cache_read;
            usage.cache_write = cache_write;
        }
        latest(&mut seen.usage.output, billed.output_tokens);
    }
}
