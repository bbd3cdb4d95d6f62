//! Bodies derived from the recorded OpenAI streams, so that every shape the
//! simulator answers comes from real bytes: the chat stream as sent without
//! `stream_options.include_usage`, and the non-stream Responses object.

use bytes::Bytes;
use serde_json::Value;

use crate::sse::{field, split_events};

/// The chat stream as OpenAI sends it without `include_usage`: the final
/// usage-only chunk (`"choices":[]`) dropped and every `,"usage":null` removed.
pub fn chat_stream_without_usage(stream: &Bytes) -> Bytes {
    let kept: Vec<u8> = split_events(stream)
        .into_iter()
        .filter(|event| !field(event, "data").is_some_and(|d| d.contains(r#""choices":[]"#)))
        .flat_map(|event| event.to_vec())
        .collect();
    remove_all(&kept, br#","usage":null"#).into()
}

/// The non-stream Responses body: the `response` object carried by the
/// stream's `response.completed` event.
pub fn responses_json(stream: &Bytes) -> Result<Bytes, String> {
    let completed = split_events(stream)
        .into_iter()
        .find(|event| field(event, "event") == Some("response.completed"))
        .ok_or("no response.completed event")?;
    let data = field(&completed, "data").ok_or("response.completed has no data")?;
    let payload: Value =
        serde_json::from_str(data).map_err(|e| format!("response.completed data: {e}"))?;
    let response = payload
        .get("response")
        .ok_or("response.completed has no response")?;
    serde_json::to_vec(response)
        .map(Bytes::from)
        .map_err(|e| e.to_string())
}

/// `haystack` with every occurrence of `needle` cut out.
fn remove_all(haystack: &[u8], needle: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(haystack.len());
    let mut rest = haystack;
    while !rest.is_empty() {
        if rest.starts_with(needle) {
            rest = &rest[needle.len()..];
        } else {
            out.push(rest[0]);
            rest = &rest[1..];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_usage_drops_usage_chunk_and_nulls() {
        let stream = Bytes::from_static(
            b"data: {\"choices\":[{\"delta\":{}}],\"usage\":null}\n\n\
              data: {\"choices\":[],\"usage\":{\"prompt_tokens\":1}}\n\n\
              data: [DONE]\n\n",
        );
        assert_eq!(
            chat_stream_without_usage(&stream),
            Bytes::from_static(b"data: {\"choices\":[{\"delta\":{}}]}\n\ndata: [DONE]\n\n")
        );
    }
}
