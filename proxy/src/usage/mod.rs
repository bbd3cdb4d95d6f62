//! Token usage, read out of provider responses as they pass through the proxy.
//!
//! Metering is the product: every response body is watched (never delayed or
//! changed) by a [`UsageTap`], which splits server-sent events with
//! [`sse::SseReader`], AWS event-stream frames with
//! [`bedrock::eventstream::EventStreamDecoder`], the elements of a streamed
//! JSON array with [`array::ArrayReader`], the messages of an upgraded
//! WebSocket with [`websocket::WebSocketReader`], or buffers a bounded JSON body, and
//! hands them to the [`Extractor`] of the response's [`Dialect`]. When the
//! provider's usage does not arrive, [`estimate`] says what the request
//! probably used. Each dialect lives in its own
//! module with private wire structs and an `impl From<WireUsage> for Usage`,
//! so every provider lands in the one [`Usage`] type, whose `Option`s keep
//! "not reported" apart from zero until [`Usage::normalize`].
//!
//! Hot path: most stream events are content deltas. They are classified by
//! event name or a cheap byte scan (`json.rs`) and never parsed; only events
//! that can carry usage, the model or an error are deserialized, into small
//! borrowed structs.

mod anthropic;
pub mod array;
pub mod bedrock;
pub mod estimate;
mod extractor;
mod gemini;
pub(crate) mod json;
mod large;
pub mod openai_chat;
mod openai_embeddings;
mod openai_media;
mod openai_realtime;
mod openai_responses;
pub mod sse;
mod tap;
pub mod websocket;

#[cfg(test)]
pub(crate) mod tests;

pub use extractor::{extractor, Extractor};
pub use tap::{Framing, UsageTap};

/// Token figures as the provider reported them; None = the provider did not report it.
///
/// Figures are already in the contract's terms (each dialect converts on the
/// way in): `input` includes cached input (read and write), `output` includes
/// reasoning; `cache_read`, `cache_write` and `reasoning` are parts of those.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// All input tokens, cached included.
    pub input: Option<u64>,
    /// All output tokens, reasoning included.
    pub output: Option<u64>,
    /// Input tokens read from the prompt cache.
    pub cache_read: Option<u64>,
    /// Input tokens written to the prompt cache.
    pub cache_write: Option<u64>,
    /// Output tokens spent on reasoning.
    pub reasoning: Option<u64>,
    /// What the model may bill apart from text tokens.
    pub parts: Parts,
}

/// The parts of a model's figures priced on their own, as the provider reported them: its audio
/// and image tokens (parts of `input` and `output`), its cache writes kept an hour (part of
/// `cache_write`), and seconds of audio (billed instead of tokens).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Parts {
    /// Input tokens of audio (OpenAI's `audio_tokens` of the prompt or transcription input,
    /// Gemini's `AUDIO`).
    pub audio_input: Option<u64>,
    /// Input tokens of images (OpenAI's image models' `image_tokens`, Gemini's `IMAGE`).
    pub image_input: Option<u64>,
    /// Output tokens of audio (a chat answered with audio).
    pub audio_output: Option<u64>,
    /// Output tokens of images (Gemini's image models).
    pub image_output: Option<u64>,
    /// Cache writes kept an hour (Anthropic's `ephemeral_1h_input_tokens`), part of
    /// `cache_write`.
    pub cache_write_1h: Option<u64>,
    /// Milliseconds of audio a transcription or translation bills (`whisper-1`), not tokens.
    pub audio_ms: Option<u64>,
}

impl Parts {
    /// Takes every figure `later` reports; keeps the ones it does not.
    fn update(&mut self, later: Parts) {
        latest(&mut self.audio_input, later.audio_input);
        latest(&mut self.image_input, later.image_input);
        latest(&mut self.audio_output, later.audio_output);
        latest(&mut self.image_output, later.image_output);
        latest(&mut self.cache_write_1h, later.cache_write_1h);
        latest(&mut self.audio_ms, later.audio_ms);
    }
}

/// The contract's five normalized figures: input includes cached input (read and write), output includes reasoning.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tokens {
    /// All input tokens, cached included.
    pub input: u64,
    /// All output tokens, reasoning included.
    pub output: u64,
    /// Part of `input` read from the prompt cache.
    pub cache_read: u64,
    /// Part of `input` written to the prompt cache.
    pub cache_write: u64,
    /// Part of `output` spent on reasoning.
    pub reasoning: u64,
}

impl Usage {
    /// None when neither input nor output was reported.
    ///
    /// The figures are used exactly as reported; a part the provider did not
    /// report counts as 0 within a total it did report.
    pub fn normalize(&self) -> Option<Tokens> {
        if self.input.is_none() && self.output.is_none() {
            return None;
        }
        Some(Tokens {
            input: self.input.unwrap_or(0),
            output: self.output.unwrap_or(0),
            cache_read: self.cache_read.unwrap_or(0),
            cache_write: self.cache_write.unwrap_or(0),
            reasoning: self.reasoning.unwrap_or(0),
        })
    }

    /// True when the provider reported no figure at all.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Takes every figure `later` reports; keeps the ones it does not.
    fn update(&mut self, later: Usage) {
        latest(&mut self.input, later.input);
        latest(&mut self.output, later.output);
        latest(&mut self.cache_read, later.cache_read);
        latest(&mut self.cache_write, later.cache_write);
        latest(&mut self.reasoning, later.reasoning);
        self.parts.update(later.parts);
    }
}

/// A Responses object as the provider keeps it, from the first object a response shows: its id,
/// whether it runs in the background (its usage comes later, to a request that retrieves it),
/// and whether it is stored (retrievable by id at all).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHandle {
    /// The `resp_…` id.
    pub id: String,
    /// Created with `background: true`.
    pub background: bool,
    /// Kept by the provider (`store`, on unless the request turned it off).
    pub store: bool,
    /// Said to be over (completed, incomplete, failed or cancelled): its usage, if any, is all
    /// there will be.
    pub finished: bool,
}

/// Which wire format a response is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// `POST /v1/chat/completions` (also OpenAI-compatible servers).
    OpenAiChat,
    /// `POST /v1/completions` (legacy completions; OpenAI-compatible servers serve them for code
    /// completion).
    OpenAiCompletions,
    /// `POST /v1/responses`.
    OpenAiResponses,
    /// `POST /v1/embeddings`.
    OpenAiEmbeddings,
    /// `POST /v1/images/*` and `/v1/audio/*`.
    OpenAiMedia,
    /// `GET /v1/realtime`, upgraded to a WebSocket.
    OpenAiRealtime,
    /// `POST /v1/messages`.
    AnthropicMessages,
    /// Gemini `generateContent` / `streamGenerateContent`.
    Gemini,
    /// Bedrock `converse` / `converse-stream`.
    BedrockConverse,
    /// Bedrock `invoke` / `invoke-with-response-stream`.
    BedrockInvoke,
}

impl Dialect {
    /// Whether figures missing from an answer can be estimated from the text that passed: not
    /// for images and audio (nor a Realtime session, mostly sound), billed in tokens of pictures
    /// and sound (or in seconds, or per image) that no text tells.
    pub fn estimable(self) -> bool {
        !matches!(self, Dialect::OpenAiMedia | Dialect::OpenAiRealtime)
    }
}

/// A running total's field: a later report replaces it, a missing one keeps it.
fn latest(slot: &mut Option<u64>, later: Option<u64>) {
    if later.is_some() {
        *slot = later;
    }
}
