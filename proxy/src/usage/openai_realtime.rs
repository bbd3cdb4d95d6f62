//! OpenAI's Realtime API over a WebSocket (`GET /v1/realtime?model=…`, upgraded): one session,
//! many responses, each ending in a `response.done` event whose `response.usage` has its figures
//! (`input_tokens` with the cached ones, split into text, audio and image tokens; `output_tokens`
//! into text and audio). The session's figures are the sum over its responses, final from the
//! first `response.done` on: a session has no final report of its own, and one the client closes
//! mid-response never hears that response's figures. `session.created` names the model.
//!
//! Hot path: most messages are audio and text deltas, classified by their `type` and never
//! parsed; only `session.created`, `response.done` and `error` are.

use std::borrow::Cow;

use serde::Deserialize;

use super::extractor::{Seen, Wire};
use super::json::{self, Reported, WireError};
use super::{Parts, Usage};

/// `session.created`: the session's model.
#[derive(Deserialize)]
struct SessionEvent<'a> {
    #[serde(borrow)]
    session: Option<Session<'a>>,
}

#[derive(Deserialize)]
struct Session<'a> {
    #[serde(borrow)]
    model: Option<Cow<'a, str>>,
}

/// `response.done`, or an `error` event.
#[derive(Deserialize)]
struct Event<'a> {
    response: Option<Response>,
    #[serde(borrow)]
    error: Option<WireError<'a>>,
}

#[derive(Deserialize)]
struct Response {
    usage: Option<WireUsage>,
}

#[derive(Deserialize, Default)]
struct WireUsage {
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
    #[serde(default)]
    input_token_details: InputDetails,
    #[serde(default)]
    output_token_details: OutputDetails,
}

#[derive(Deserialize, Default)]
struct InputDetails {
    #[serde(default)]
    cached_tokens: u64,
    #[serde(default)]
    audio_tokens: u64,
    #[serde(default)]
    image_tokens: u64,
    #[serde(default)]
    cached_tokens_details: CachedDetails,
}

#[derive(Deserialize, Default)]
struct CachedDetails {
    #[serde(default)]
    audio_tokens: u64,
    #[serde(default)]
    image_tokens: u64,
}

#[derive(Deserialize, Default)]
struct OutputDetails {
    #[serde(default)]
    audio_tokens: u64,
}

/// The session's figures so far: the sum over its responses.
#[derive(Debug, Default, Clone, Copy)]
struct Sum {
    input: u64,
    output: u64,
    cached: u64,
    /// Uncached audio and image input, priced apart.
    audio_input: u64,
    image_input: u64,
    audio_output: u64,
}

impl Sum {
    fn add(&mut self, usage: &WireUsage) {
        let (input, cached) = (
            &usage.input_token_details,
            &usage.input_token_details.cached_tokens_details,
        );
        self.input += usage.input_tokens;
        self.output += usage.output_tokens;
        self.cached += input.cached_tokens;
        self.audio_input += input.audio_tokens.saturating_sub(cached.audio_tokens);
        self.image_input += input.image_tokens.saturating_sub(cached.image_tokens);
        self.audio_output += usage.output_token_details.audio_tokens;
    }

    fn usage(&self) -> Usage {
        Usage {
            input: Some(self.input),
            output: Some(self.output),
            cache_read: Some(self.cached),
            parts: Parts {
                audio_input: Some(self.audio_input),
                image_input: Some(self.image_input),
                audio_output: Some(self.audio_output),
                ..Parts::default()
            },
            ..Usage::default()
        }
    }
}

/// Reads a Realtime session's events, summing its responses' figures.
#[derive(Default)]
pub(super) struct Realtime {
    sum: Sum,
}

impl Wire for Realtime {
    fn event(&mut self, seen: &mut Seen, event: &str, data: &[u8]) {
        match &*json::event_kind(event, data) {
            "session.created" if !seen.has_model() => {
                if let Ok(created) = serde_json::from_slice::<SessionEvent<'_>>(data) {
                    seen.model(created.session.and_then(|s| s.model));
                }
            }
            "response.done" | "error" => {
                let Ok(event) = serde_json::from_slice::<Event<'_>>(data) else {
                    return;
                };
                if let Some(usage) = event.response.and_then(|r| r.usage) {
                    self.sum.add(&usage);
                    seen.usage = self.sum.usage();
                    seen.complete = true;
                }
                seen.error(event.error.map(|e| e.short()));
            }
            _ => {}
        }
    }

    /// A provider that refused the upgrade answers with a JSON error body.
    fn body(&mut self, seen: &mut Seen, body: &[u8]) {
        if let Ok(body) = serde_json::from_slice::<Reported<'_, serde::de::IgnoredAny>>(body) {
            body.tell(seen, |_, _| {});
        }
    }
}
