//! OpenAI embeddings: never streamed; `usage.prompt_tokens` is the input and
//! there is no output (reported as 0, not missing).

use serde::Deserialize;

use super::extractor::{Seen, Wire};
use super::json::Reported;
use super::Usage;

#[derive(Deserialize)]
struct WireUsage {
    prompt_tokens: Option<u64>,
}

impl From<WireUsage> for Usage {
    fn from(wire: WireUsage) -> Self {
        Usage {
            input: wire.prompt_tokens,
            output: Some(0),
            ..Usage::default()
        }
    }
}

/// Reads embeddings.
#[derive(Default)]
pub(super) struct Embeddings;

impl Wire for Embeddings {
    /// Embeddings are not streamed; an event's data is read as a body.
    fn event(&mut self, seen: &mut Seen, _event: &str, data: &[u8]) {
        self.body(seen, data);
    }

    fn body(&mut self, seen: &mut Seen, body: &[u8]) {
        if let Ok(body) = serde_json::from_slice::<Reported<'_, WireUsage>>(body) {
            body.tell_final(seen);
        }
    }
}
