//! OpenAI's image and audio endpoints (`/v1/images/*`, `/v1/audio/*`). A model billed in tokens
//! (the GPT image models, `gpt-4o-transcribe`, `gpt-4o-mini-tts`) reports `input_tokens` (text
//! and image or audio) and `output_tokens` in a top-level `usage`: of the whole body, or of the
//! stream's final event (`image_generation.completed`, `image_edit.completed`,
//! `transcript.text.done`, `speech.audio.done`). Models billed otherwise report no tokens:
//! `whisper-1`'s usage is `{"type":"duration","seconds":…}` (a `verbose_json` answer, a
//! translation's too, also gives its `duration`), DALL·E's and `tts-1`'s answers have none, and
//! a speech answer is the audio itself. Such an answer is recorded without token figures, never
//! estimated ([`super::Dialect::estimable`]); the seconds are kept for its price per minute.

use std::borrow::Cow;

use serde::Deserialize;

use super::extractor::{Seen, Wire};
use super::json::{self, Reported, WireError};
use super::{Parts, Usage};

/// The stream events that end an image or audio stream with the figures.
const FINAL_EVENTS: [&str; 4] = [
    "image_generation.completed",
    "image_edit.completed",
    "transcript.text.done",
    "speech.audio.done",
];

/// An answer or final event: the fields every dialect reads, and a transcription's `duration`.
#[derive(Deserialize)]
struct WireBody<'a> {
    #[serde(borrow)]
    model: Option<Cow<'a, str>>,
    usage: Option<WireUsage>,
    #[serde(borrow)]
    error: Option<WireError<'a>>,
    /// Seconds of audio (`verbose_json` transcriptions and translations).
    duration: Option<f64>,
}

#[derive(Deserialize)]
struct WireUsage {
    #[serde(rename = "type")]
    billed: Option<Billed>,
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    seconds: Option<f64>,
    /// The input's parts: images' (image models) or audio's (transcriptions), priced apart.
    #[serde(alias = "input_token_details")]
    input_tokens_details: Option<InputDetails>,
}

#[derive(Deserialize)]
struct InputDetails {
    image_tokens: Option<u64>,
    audio_tokens: Option<u64>,
}

/// What a transcription's usage counts (image and speech usage says nothing: tokens).
#[derive(Deserialize, PartialEq)]
#[serde(rename_all = "lowercase")]
enum Billed {
    Tokens,
    Duration,
    #[serde(other)]
    Other,
}

impl From<WireUsage> for Usage {
    fn from(wire: WireUsage) -> Self {
        match wire.billed {
            Some(Billed::Duration) => audio(wire.seconds),
            Some(Billed::Other) => Usage::default(),
            Some(Billed::Tokens) | None => Usage {
                input: wire.input_tokens,
                output: wire.output_tokens,
                parts: Parts {
                    image_input: wire
                        .input_tokens_details
                        .as_ref()
                        .and_then(|d| d.image_tokens),
                    audio_input: wire.input_tokens_details.and_then(|d| d.audio_tokens),
                    ..Parts::default()
                },
                ..Usage::default()
            },
        }
    }
}

/// Usage of `seconds` of audio (to the millisecond; nothing for a figure that is not one).
fn audio(seconds: Option<f64>) -> Usage {
    let seconds = seconds.filter(|s| s.is_finite() && *s >= 0.0);
    let parts = Parts {
        audio_ms: seconds.map(|s| (s * 1000.0).round() as u64),
        ..Parts::default()
    };
    Usage {
        parts,
        ..Usage::default()
    }
}

/// Reads image and audio answers.
#[derive(Default)]
pub(super) struct Media;

impl Wire for Media {
    /// The deltas and partial images (each a whole picture, megabytes of base64) are passed by
    /// their type; only the final event and an error are parsed.
    fn event(&mut self, seen: &mut Seen, event: &str, data: &[u8]) {
        let kind = json::event_kind(event, data);
        if FINAL_EVENTS.contains(&&*kind) || kind == "error" {
            self.body(seen, data);
        }
    }

    fn body(&mut self, seen: &mut Seen, body: &[u8]) {
        let Ok(body) = serde_json::from_slice::<WireBody<'_>>(body) else {
            return;
        };
        // A `verbose_json` answer without a usage of its own is billed for its `duration`.
        if body.usage.is_none() && body.duration.is_some() {
            seen.final_report(audio(body.duration));
        }
        let reported = Reported {
            model: body.model,
            usage: body.usage,
            error: body.error,
        };
        reported.tell_final(seen);
    }
}
