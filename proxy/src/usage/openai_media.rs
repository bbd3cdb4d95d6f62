//! OpenAI's image and audio endpoints (`/v1/images/*`, `/v1/audio/*`). A model billed in tokens
//! (the GPT image models, `gpt-4o-transcribe`, `gpt-4o-mini-tts`) reports `input_tokens` (text
//! and image or audio) and `output_tokens` in a top-level `usage`: of the whole body, or of the
//! stream's final event (`image_generation.completed`, `image_edit.completed`,
//! `transcript.text.done`, `speech.audio.done`). Models billed otherwise report no tokens:
//! `whisper-1`'s usage is `{"type":"duration","seconds":…}`, DALL·E's and `tts-1`'s answers
//! have none, and a speech answer is the audio itself. Such an answer is recorded without
//! figures, never estimated ([`super::Dialect::estimable`]).

use serde::Deserialize;

use super::extractor::{Seen, Wire};
use super::json::{self, Reported};
use super::Usage;

/// The stream events that end an image or audio stream with the figures.
const FINAL_EVENTS: [&str; 4] = [
    "image_generation.completed",
    "image_edit.completed",
    "transcript.text.done",
    "speech.audio.done",
];

#[derive(Deserialize)]
struct WireUsage {
    #[serde(rename = "type")]
    billed: Option<Billed>,
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
}

/// What a transcription's usage counts (image and speech usage says nothing: tokens).
#[derive(Deserialize, PartialEq)]
#[serde(rename_all = "lowercase")]
enum Billed {
    Tokens,
    #[serde(other)]
    Other,
}

impl From<WireUsage> for Usage {
    fn from(wire: WireUsage) -> Self {
        if wire.billed.is_some_and(|billed| billed != Billed::Tokens) {
            return Usage::default();
        }
        Usage {
            input: wire.input_tokens,
            output: wire.output_tokens,
            ..Usage::default()
        }
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
        if let Ok(body) = serde_json::from_slice::<Reported<'_, WireUsage>>(body) {
            body.tell_final(seen);
        }
    }
}
