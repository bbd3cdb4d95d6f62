//! OpenAI Responses: named events, no `[DONE]`; usage is null until the
//! terminal `response.completed` / `response.incomplete` / `response.failed`,
//! whose `response.usage` has the figures (`cached_tokens` part of
//! `input_tokens`, `reasoning_tokens` part of `output_tokens`). A
//! non-streamed body is the response object itself (as are the answers to
//! retrieving or cancelling a stored response). The first object seen also
//! says which response this is ([`ResponseHandle`]).

use std::borrow::Cow;

use serde::Deserialize;

use super::extractor::{Seen, Wire};
use super::json::{self, keys, Keys, Reported, WireError};
use super::{ResponseHandle, Usage};

/// The text of `response.*.delta` events.
static DELTA: Keys = keys!(b"\"delta\"");
/// The text of a non-streamed response's output.
static TEXT: Keys = keys!(b"\"text\"");

/// An event that wraps a response object, or an `error` event.
#[derive(Deserialize)]
struct Event<'a> {
    #[serde(borrow)]
    response: Option<Response<'a>>,
    #[serde(borrow)]
    error: Option<WireError<'a>>,
}

/// A response object: what it reports, and which response it is.
#[derive(Deserialize)]
struct Response<'a> {
    #[serde(borrow)]
    id: Option<Cow<'a, str>>,
    background: Option<bool>,
    store: Option<bool>,
    #[serde(borrow)]
    status: Option<Cow<'a, str>>,
    #[serde(borrow)]
    model: Option<Cow<'a, str>>,
    usage: Option<WireUsage>,
    #[serde(borrow)]
    error: Option<WireError<'a>>,
}

impl Response<'_> {
    /// Tells `seen` which response this is (the first object seen says) and what it reports,
    /// its usage as the final figures.
    fn tell(self, seen: &mut Seen) {
        if let (None, Some(id)) = (&seen.response, self.id) {
            seen.response = Some(ResponseHandle {
                id: id.into_owned(),
                background: self.background == Some(true),
                store: self.store != Some(false),
                finished: self.status.as_deref().is_some_and(is_finished),
            });
        }
        let reported = Reported {
            model: self.model,
            usage: self.usage,
            error: self.error,
        };
        reported.tell_final(seen);
    }
}

/// Whether a response's `status` is one it ends in (`queued` and `in_progress` are not).
fn is_finished(status: &str) -> bool {
    matches!(status, "completed" | "incomplete" | "failed" | "cancelled")
}

#[derive(Deserialize)]
struct WireUsage {
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    input_tokens_details: Option<InputDetails>,
    output_tokens_details: Option<OutputDetails>,
}

#[derive(Deserialize)]
struct InputDetails {
    cached_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct OutputDetails {
    reasoning_tokens: Option<u64>,
}

impl From<WireUsage> for Usage {
    fn from(wire: WireUsage) -> Self {
        Usage {
            input: wire.input_tokens,
            output: wire.output_tokens,
            cache_read: wire.input_tokens_details.and_then(|d| d.cached_tokens),
            cache_write: None,
            reasoning: wire.output_tokens_details.and_then(|d| d.reasoning_tokens),
            ..Usage::default()
        }
    }
}

/// Reads Responses.
#[derive(Default)]
pub(super) struct Responses;

impl Wire for Responses {
    fn event(&mut self, seen: &mut Seen, event: &str, data: &[u8]) {
        match json::event_kind(event, data).as_ref() {
            kind if kind.ends_with(".delta") => seen.content_bytes += json::text_len(data, &DELTA),
            "response.completed" | "response.incomplete" | "response.failed" => read(seen, data),
            "response.created" | "response.in_progress" | "response.queued"
                if !seen.has_model() =>
            {
                read(seen, data)
            }
            "error" => read_error(seen, data),
            _ => {}
        }
    }

    fn body(&mut self, seen: &mut Seen, body: &[u8]) {
        if let Ok(response) = serde_json::from_slice::<Response<'_>>(body) {
            response.tell(seen);
        }
    }

    fn body_text(&self, body: &[u8]) -> u64 {
        json::text_len(body, &TEXT)
    }
}

/// Takes what an event's response object says.
fn read(seen: &mut Seen, data: &[u8]) {
    let event = serde_json::from_slice::<Event<'_>>(data).ok();
    if let Some(response) = event.and_then(|e| e.response) {
        response.tell(seen);
    }
}

/// An `error` event: `{"type":"error","code",…}`, or with a nested `error` object.
fn read_error(seen: &mut Seen, data: &[u8]) {
    let nested = serde_json::from_slice::<Event<'_>>(data)
        .ok()
        .and_then(|e| e.error);
    let error = nested.or_else(|| serde_json::from_slice::<WireError<'_>>(data).ok());
    seen.error(Some(
        error.map_or_else(|| "error".to_owned(), |e| e.short()),
    ));
}
