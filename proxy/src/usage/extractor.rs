//! The one small trait every dialect implements, and the shared bookkeeping
//! behind it.
//!
//! A dialect module only says how to read its wire format (a private [`Wire`]
//! implementation); what it learns goes into one [`Seen`], and [`Reader`]
//! turns any `Wire` into an [`Extractor`], so the accessors are written once.

use std::borrow::Cow;

use super::bedrock::eventstream::Frame;
use super::{anthropic, bedrock, gemini, openai_chat, openai_embeddings};
use super::{openai_media, openai_realtime, openai_responses};
use super::{Dialect, ResponseHandle, Tokens, Usage};

/// The one small trait every dialect implements.
pub trait Extractor: Send + Sync {
    /// One complete server-sent event: its `event:` name (empty if none) and its data (multi-line data joined with '\n').
    fn on_event(&mut self, event: &str, data: &[u8]);
    /// A whole non-streamed JSON response body.
    fn on_body(&mut self, body: &[u8]);
    /// One AWS event-stream frame (Bedrock streams).
    fn on_frame(&mut self, frame: &Frame<'_>);
    /// One response header (Bedrock's InvokeModel reports usage in headers).
    fn on_header(&mut self, name: &str, value: &[u8]);
    /// What has been learned so far (running totals: later reports replace earlier ones as each dialect requires).
    fn usage(&self) -> Usage;
    /// The model the provider said it used, if seen (e.g. "gpt-4o-2024-08-06").
    fn response_model(&self) -> Option<&str>;
    /// An error the provider reported inside the body/stream (an `event: error`, a `response.failed`), if any, as a short type string like "overloaded_error".
    fn provider_error(&self) -> Option<&str>;
    /// True once the dialect's final usage report was read (the chat usage
    /// chunk, `response.completed`, `message_delta`, Gemini's `finishReason`
    /// chunk, Bedrock's `metadata`, a whole body): the figures are final, not a
    /// running total a cut stream stopped short of.
    fn usage_complete(&self) -> bool;
    /// The provider's final figures, when its final report was read and gave input or output:
    /// the meter takes them as they are, and no estimate (nor the text it counts) is needed.
    fn final_tokens(&self) -> Option<Tokens> {
        self.usage().normalize().filter(|_| self.usage_complete())
    }
    /// Bytes of text content seen so far (escaped JSON string lengths of the
    /// content/delta fields), for estimating output when usage is missing.
    /// A whole body's text is counted only when the body lacks its figures, unless
    /// the dialect finds it in the same pass as the usage (Gemini).
    /// 0 for an extractor that does not count.
    fn content_bytes(&self) -> u64 {
        0
    }
    /// The Responses object this response is (OpenAI Responses only).
    fn response_handle(&self) -> Option<&ResponseHandle>;
}

/// The extractor for `dialect`.
pub fn extractor(dialect: Dialect) -> Box<dyn Extractor> {
    match dialect {
        Dialect::OpenAiChat => Box::<Reader<openai_chat::Chat>>::default(),
        Dialect::OpenAiCompletions => Box::<Reader<openai_chat::Completions>>::default(),
        Dialect::OpenAiResponses => Box::<Reader<openai_responses::Responses>>::default(),
        Dialect::OpenAiEmbeddings => Box::<Reader<openai_embeddings::Embeddings>>::default(),
        Dialect::OpenAiMedia => Box::<Reader<openai_media::Media>>::default(),
        Dialect::OpenAiRealtime => Box::<Reader<openai_realtime::Realtime>>::default(),
        Dialect::AnthropicMessages => Box::<Reader<anthropic::Messages>>::default(),
        Dialect::Gemini => Box::<Reader<gemini::Gemini>>::default(),
        Dialect::BedrockConverse => Box::<Reader<bedrock::Converse>>::default(),
        Dialect::BedrockInvoke => Box::<Reader<bedrock::Invoke>>::default(),
    }
}

/// What has been learned from one response, whatever its dialect.
#[derive(Debug, Default)]
pub(super) struct Seen {
    /// Usage so far.
    pub(super) usage: Usage,
    model: Option<String>,
    error: Option<String>,
    /// Escaped length of text content seen so far.
    pub(super) content_bytes: u64,
    /// The final usage report was read (see [`Extractor::usage_complete`]).
    pub(super) complete: bool,
    /// The Responses object, from the first one seen.
    pub(super) response: Option<ResponseHandle>,
}

impl Seen {
    /// True once the response model is known (later reports are not parsed for it).
    pub(super) fn has_model(&self) -> bool {
        self.model.is_some()
    }

    /// Records the response model; the first one reported wins.
    pub(super) fn model(&mut self, model: Option<Cow<'_, str>>) {
        if self.model.is_none() {
            self.model = model.map(Cow::into_owned);
        }
    }

    /// A report of final figures (a chat usage chunk, a terminal Responses
    /// event, a whole body): they are taken and the usage is complete.
    pub(super) fn final_report(&mut self, usage: Usage) {
        self.usage.update(usage);
        self.complete = true;
    }

    /// Records a provider-reported error; the first one wins.
    pub(super) fn error(&mut self, error: Option<String>) {
        if self.error.is_none() {
            self.error = error;
        }
    }
}

/// How one dialect reads its wire format into [`Seen`].
pub(super) trait Wire: Default + Send + Sync + 'static {
    /// One complete server-sent event.
    fn event(&mut self, seen: &mut Seen, event: &str, data: &[u8]);
    /// A whole non-streamed body.
    fn body(&mut self, seen: &mut Seen, body: &[u8]);
    /// Escaped bytes of generated text in a whole body, for the estimate of a body whose
    /// usage is missing; [`Reader`] asks only then, so a body with its figures is not walked
    /// twice. 0 for a dialect that does not count.
    fn body_text(&self, _body: &[u8]) -> u64 {
        0
    }
    /// One event-stream frame: an event frame is an event named by its type.
    fn frame(&mut self, seen: &mut Seen, frame: &Frame<'_>) {
        self.event(seen, frame.name, frame.payload);
    }
    /// One response header; most dialects have no use for them.
    fn header(&mut self, _seen: &mut Seen, _name: &str, _value: &[u8]) {}
}

/// Any [`Wire`] as an [`Extractor`].
#[derive(Default)]
struct Reader<W> {
    wire: W,
    seen: Seen,
}

impl<W: Wire> Extractor for Reader<W> {
    fn on_event(&mut self, event: &str, data: &[u8]) {
        self.wire.event(&mut self.seen, event, data);
    }

    fn on_body(&mut self, body: &[u8]) {
        self.wire.body(&mut self.seen, body);
        if self.final_tokens().is_none() {
            self.seen.content_bytes += self.wire.body_text(body);
        }
    }

    fn on_frame(&mut self, frame: &Frame<'_>) {
        self.wire.frame(&mut self.seen, frame);
    }

    fn on_header(&mut self, name: &str, value: &[u8]) {
        self.wire.header(&mut self.seen, name, value);
    }

    fn usage(&self) -> Usage {
        self.seen.usage
    }

    fn usage_complete(&self) -> bool {
        self.seen.complete
    }

    fn response_model(&self) -> Option<&str> {
        self.seen.model.as_deref()
    }

    fn provider_error(&self) -> Option<&str> {
        self.seen.error.as_deref()
    }

    fn content_bytes(&self) -> u64 {
        self.seen.content_bytes
    }

    fn response_handle(&self) -> Option<&ResponseHandle> {
        self.seen.response.as_ref()
    }
}
