//! InvokeModel and InvokeModelWithResponseStream for an Anthropic model on
//! Bedrock, derived from the recorded Anthropic Messages stream (there is no
//! recorded InvokeModel traffic among the fixtures).
//!
//! The shapes follow real Bedrock traffic and the API model:
//! - botocore `data/bedrock-runtime/2023-09-30/service-2.json`: the paths
//!   `/model/{modelId}/invoke` and `/invoke-with-response-stream`; the stream's
//!   `ResponseStream` events, of which `chunk` is a `PayloadPart` whose `bytes`
//!   is base64; the stream's `X-Amzn-Bedrock-Content-Type` header.
//! - Recorded responses in Arize-ai/openinference,
//!   `python/instrumentation/openinference-instrumentation-bedrock/tests/`:
//!   `.../bedrock/cassettes/TestClaudeInvokeModelMessageApi.test_invoke_model.yaml`
//!   (InvokeModel: the Anthropic Messages object as the body, with
//!   `X-Amzn-Bedrock-Input-Token-Count`, `-Output-Token-Count` and
//!   `-Invocation-Latency` headers) and
//!   `cassettes/TestInvokeModelWithStreamResponse.test_invoke.yaml` (frames
//!   with headers `:event-type: chunk`, `:content-type: application/json`,
//!   `:message-type: event` in that order, payload `{"bytes":"<base64 of one
//!   Anthropic event>","p":"abcd…"}` where `p` is padding, and a last chunk
//!   decoding to `{"type":"message_stop","amazon-bedrock-invocationMetrics":
//!   {"inputTokenCount":434,"outputTokenCount":113,"invocationLatency":2872,
//!   "firstByteLatency":482}}`; sent chunked).
//!
//! Bedrock's figures equal the model's own here: `inputTokenCount` is the
//! Messages `input_tokens` (both exclude cache reads and writes), and the cache
//! figures get their own headers and metrics fields, sent only when non-zero.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{json, Value};

use super::encode_frame;
use crate::sse::{field, split_events};

/// Bedrock's whole-invocation latency reported for every simulated call, ms
/// (the recorded stream's figure).
const INVOCATION_LATENCY_MS: u64 = 2872;
/// Bedrock's time to the first byte reported in the stream's metrics, ms.
const FIRST_BYTE_LATENCY_MS: u64 = 482;
/// The padding alphabet of a chunk's `p` field (Bedrock pads each payload to
/// hide its length; the pad's length varies from chunk to chunk).
const PAD: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
/// The headers of every chunk frame, in Bedrock's order.
const CHUNK_HEADERS: [(&str, &str); 3] = [
    (":event-type", "chunk"),
    (":content-type", "application/json"),
    (":message-type", "event"),
];

/// The two Invoke answers, built once at start.
#[derive(Debug)]
pub struct Invoke {
    /// Response headers of InvokeModel (its body is the Messages object).
    pub headers: HeaderMap,
    /// The InvokeModelWithResponseStream body: one `chunk` frame per event.
    pub stream: Bytes,
    /// Response headers of InvokeModelWithResponseStream.
    pub stream_headers: HeaderMap,
}

/// Bedrock's token figures for one invocation.
#[derive(Debug, Clone, Copy)]
struct Figures {
    input: u64,
    output: u64,
    cache_read: u64,
    cache_write: u64,
}

impl Invoke {
    /// The answers for the recorded Messages `stream` and the non-stream
    /// `message` the simulator built from it.
    pub fn derive(stream: &Bytes, message: &Bytes) -> Result<Self, String> {
        let figures = Figures::of(message)?;
        Ok(Self {
            headers: figures.headers(),
            stream: chunks(stream, figures)?,
            stream_headers: HeaderMap::from_iter([(
                HeaderName::from_static("x-amzn-bedrock-content-type"),
                HeaderValue::from_static("application/json"),
            )]),
        })
    }
}

impl Figures {
    /// The figures of a Messages object's final `usage`.
    fn of(message: &Bytes) -> Result<Self, String> {
        let message: Value = serde_json::from_slice(message).map_err(|e| e.to_string())?;
        let count = |name: &str| message.pointer(&format!("/usage/{name}"))?.as_u64();
        Ok(Self {
            input: count("input_tokens").ok_or("message without usage.input_tokens")?,
            output: count("output_tokens").ok_or("message without usage.output_tokens")?,
            cache_read: count("cache_read_input_tokens").unwrap_or(0),
            cache_write: count("cache_creation_input_tokens").unwrap_or(0),
        })
    }

    /// InvokeModel's `x-amzn-bedrock-*` headers (cache figures only when non-zero).
    fn headers(self) -> HeaderMap {
        let always = [
            ("x-amzn-bedrock-input-token-count", self.input),
            ("x-amzn-bedrock-output-token-count", self.output),
            ("x-amzn-bedrock-invocation-latency", INVOCATION_LATENCY_MS),
        ];
        let cache = [
            (
                "x-amzn-bedrock-cache-read-input-token-count",
                self.cache_read,
            ),
            (
                "x-amzn-bedrock-cache-write-input-token-count",
                self.cache_write,
            ),
        ];
        let mut headers = HeaderMap::new();
        for (name, value) in always
            .into_iter()
            .chain(cache.into_iter().filter(|c| c.1 > 0))
        {
            headers.insert(HeaderName::from_static(name), HeaderValue::from(value));
        }
        headers
    }

    /// The last chunk's `amazon-bedrock-invocationMetrics`, its keys in
    /// Bedrock's order (written out: serde_json may sort keys).
    fn metrics(self) -> String {
        let mut metrics = format!(
            r#"{{"inputTokenCount":{},"outputTokenCount":{},"invocationLatency":{},"firstByteLatency":{}"#,
            self.input, self.output, INVOCATION_LATENCY_MS, FIRST_BYTE_LATENCY_MS
        );
        for (name, value) in [
            ("cacheReadInputTokenCount", self.cache_read),
            ("cacheWriteInputTokenCount", self.cache_write),
        ] {
            if value > 0 {
                metrics.push_str(&format!(r#","{name}":{value}"#));
            }
        }
        metrics.push('}');
        metrics
    }
}

/// One `chunk` frame per event of the Anthropic SSE `stream`, each event's
/// `data` as recorded; the last event (`message_stop`) carries the metrics.
fn chunks(stream: &Bytes, figures: Figures) -> Result<Bytes, String> {
    let events: Vec<String> = split_events(stream)
        .iter()
        .filter_map(|event| field(event, "data").map(str::to_owned))
        .collect();
    let (last, rest) = events.split_last().ok_or("no events")?;
    let last: Value = serde_json::from_str(last).map_err(|e| e.to_string())?;
    if last != json!({"type": "message_stop"}) {
        return Err("the last event is not a bare message_stop".into());
    }
    // Written out so `type` comes first, as Bedrock sends it.
    let stop = format!(
        r#"{{"type":"message_stop","amazon-bedrock-invocationMetrics":{}}}"#,
        figures.metrics()
    );
    let mut out = Vec::new();
    for (i, event) in rest
        .iter()
        .map(String::as_str)
        .chain([stop.as_str()])
        .enumerate()
    {
        let pad = &PAD[..(i * 7 + 5) % PAD.len()];
        let payload = json!({"bytes": STANDARD.encode(event), "p": pad});
        out.extend(encode_frame(&CHUNK_HEADERS, payload.to_string().as_bytes()));
    }
    Ok(out.into())
}
