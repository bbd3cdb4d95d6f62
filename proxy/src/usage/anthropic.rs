//! Anthropic messages.
//!
//! `message_start` carries the model and the first usage figures;
//! `message_delta` carries running totals (not increments) that may repeat
//! or revise any field, so the latest value of each field wins. Anthropic's
//! `input_tokens` excludes cache reads and writes, so the contract's input is
//! their sum. An `event: error` can arrive inside an HTTP 200 stream, with no
//! `message_stop` after it.
//!
//! Compaction (`usage.iterations[]`): when a request triggers server-side
//! compaction, the API samples twice (a `compaction` pass that summarizes the
//! context, then the `message` pass), bills both, and reports each in
//! `iterations[]`, while the top-level figures cover the `message` pass only.
//! Sources: Anthropic's compaction guide (platform.claude.com, "Compaction":
//! the summary is an additional sampling step that is billed and rate
//! limited), the SDKs' `BetaMessageDeltaUsage.iterations` doc ("A `compaction`
//! entry's tokens are not included in the top-level `usage` fields"), and the
//! Vercel AI SDK's Anthropic provider, which sums every entry to get the
//! tokens "consumed and billed". So when `iterations[]` is present the
//! request's usage is the sum over its entries (see tests/fixtures/EXPECTED.md).

use serde::Deserialize;

use super::extractor::{Seen, Wire};
use super::json::{self, key, Key, Reported};
use super::{latest, Parts, Usage};

/// Members holding generated text, in a `content_block_delta`'s `delta` (a
/// compaction summary is `content`) and in a non-streamed body.
const TEXT: &[&[u8]] = &[b"text", b"thinking", b"partial_json", b"content"];
static DELTA: Key = key!(b"\"delta\"");

/// How Anthropic starts every `content_block_delta`, up to its index.
const DELTA_HEAD: &[u8] = br#"{"type":"content_block_delta","index":"#;
/// What follows the index in the usual deltas, up to the text's opening quote.
const DELTA_SHAPES: [&[u8]; 3] = [
    br#","delta":{"type":"text_delta","text":"#,
    br#","delta":{"type":"thinking_delta","thinking":"#,
    br#","delta":{"type":"input_json_delta","partial_json":"#,
];

/// `message_start`'s payload.
#[derive(Deserialize)]
struct Start<'a> {
    #[serde(borrow)]
    message: Message<'a>,
}

/// A message (in `message_start` or a whole body), a `message_delta`, or an error.
type Message<'a> = Reported<'a, WireUsage>;

#[derive(Debug, Default, Clone, Copy, Deserialize)]
struct WireUsage {
    input_tokens: Option<u64>,
    cache_creation_input_tokens: Option<u64>,
    cache_read_input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    output_tokens_details: Option<OutputDetails>,
    /// The cache writes by how long they are kept.
    cache_creation: Option<CacheCreation>,
    /// The billed sampling passes, when there was more than the message itself.
    iterations: Option<Iterations>,
}

/// `cache_creation`: the part of `cache_creation_input_tokens` kept an hour (priced higher than
/// the five-minute rest).
#[derive(Debug, Default, Clone, Copy, Deserialize)]
struct CacheCreation {
    ephemeral_1h_input_tokens: Option<u64>,
}

/// One entry of `usage.iterations[]`.
#[derive(Debug, Deserialize)]
struct Iteration {
    input_tokens: Option<u64>,
    cache_creation_input_tokens: Option<u64>,
    cache_read_input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    cache_creation: Option<CacheCreation>,
}

/// `usage.iterations[]`, summed as it is read.
#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(from = "Vec<Iteration>")]
struct Iterations {
    entries: usize,
    input_tokens: u64,
    cache_creation_input_tokens: u64,
    cache_read_input_tokens: u64,
    output_tokens: u64,
    cache_write_1h: u64,
}

impl From<Vec<Iteration>> for Iterations {
    fn from(entries: Vec<Iteration>) -> Self {
        let add = |sum: u64, figure: Option<u64>| sum.saturating_add(figure.unwrap_or(0));
        entries.iter().fold(
            Iterations {
                entries: entries.len(),
                ..Iterations::default()
            },
            |sum, it| Iterations {
                input_tokens: add(sum.input_tokens, it.input_tokens),
                cache_creation_input_tokens: add(
                    sum.cache_creation_input_tokens,
                    it.cache_creation_input_tokens,
                ),
                cache_read_input_tokens: add(
                    sum.cache_read_input_tokens,
                    it.cache_read_input_tokens,
                ),
                output_tokens: add(sum.output_tokens, it.output_tokens),
                cache_write_1h: add(
                    sum.cache_write_1h,
                    it.cache_creation.and_then(|c| c.ephemeral_1h_input_tokens),
                ),
                ..sum
            },
        )
    }
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
        if later.cache_creation.is_some() {
            self.cache_creation = later.cache_creation;
        }
        if later.iterations.is_some() {
            self.iterations = later.iterations;
        }
    }

    /// The figures billed: the sum over `iterations[]` when it lists any, else the top level.
    fn billed(mut self) -> WireUsage {
        if let Some(sum) = self.iterations.filter(|i| i.entries > 0) {
            self.input_tokens = Some(sum.input_tokens);
            self.cache_creation_input_tokens = Some(sum.cache_creation_input_tokens);
            self.cache_read_input_tokens = Some(sum.cache_read_input_tokens);
            self.output_tokens = Some(sum.output_tokens);
            self.cache_creation = Some(CacheCreation {
                ephemeral_1h_input_tokens: Some(sum.cache_write_1h),
            });
        }
        self
    }
}

impl From<WireUsage> for Usage {
    fn from(wire: WireUsage) -> Self {
        let wire = wire.billed();
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
            parts: Parts {
                cache_write_1h: wire
                    .cache_creation
                    .and_then(|c| c.ephemeral_1h_input_tokens),
                ..Parts::default()
            },
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
            "content_block_delta" => {
                seen.content_bytes += usual_delta_text(data).unwrap_or_else(|| {
                    json::values(data, &DELTA)
                        .map(|at| json::text_within(data, at, TEXT))
                        .sum::<u64>()
                });
            }
            "message_start" => {
                if let Ok(start) = serde_json::from_slice::<Start<'_>>(data) {
                    self.take(seen, start.message);
                }
            }
            "message_delta" => {
                self.read(seen, data);
                seen.complete |= !seen.usage.is_empty();
            }
            "error" => self.read(seen, data),
            _ => {}
        }
    }

    fn body(&mut self, seen: &mut Seen, body: &[u8]) {
        self.read(seen, body);
        seen.complete |= !seen.usage.is_empty();
    }

    fn body_text(&self, body: &[u8]) -> u64 {
        json::text_within(body, json::skip_ws(body, 0), TEXT)
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
        message.tell(seen, |seen, usage| {
            self.totals.update(usage);
            seen.usage = self.totals.into();
        });
    }
}

/// The text length of a `content_block_delta` of the usual shape,
/// `{"type":"content_block_delta","index":N,"delta":{"type":"text_delta","text":"…"}}`
/// (or a thinking or tool-input delta), read straight: nearly every event of
/// a stream is one, and a general walk of it costs more than the rest of the
/// event's handling. None for any other shape, which is walked instead; both
/// count the same.
fn usual_delta_text(data: &[u8]) -> Option<u64> {
    let index = data.strip_prefix(DELTA_HEAD)?;
    let digits = index.iter().take_while(|b| b.is_ascii_digit()).count();
    let at = DELTA_HEAD.len() + digits;
    let shape = DELTA_SHAPES.iter().find(|s| data[at..].starts_with(s))?;
    let open = at + shape.len();
    if data.get(open) != Some(&b'"') {
        return None;
    }
    let end = json::string_end(data, open)?;
    let delta_end = json::skip_ws(data, end);
    let event_end = json::skip_ws(data, delta_end + 1);
    let closed = data.get(delta_end) == Some(&b'}') && data.get(event_end) == Some(&b'}');
    let whole = json::skip_ws(data, event_end + 1) == data.len();
    (closed && whole).then(|| (end - open - 2) as u64)
}
