//! Bodies derived from recorded Anthropic data: the non-stream Messages
//! object rebuilt from a stream, and `.jsonl` payload recordings reframed as
//! the SSE Anthropic sends.

use bytes::Bytes;
use serde_json::{json, Value};

use crate::sse::{field, split_events};

/// The non-stream Messages body for a recorded stream: `message_start`'s
/// message with the text deltas as one text block, the stop fields of
/// `message_delta`, and its final usage merged over the starting usage.
pub fn message_json(stream: &Bytes) -> Result<Bytes, String> {
    let mut message = None;
    let mut text = String::new();
    let mut last_delta = None;
    for event in split_events(stream) {
        let Some(data) = field(&event, "data") else {
            continue;
        };
        let payload: Value =
            serde_json::from_str(data).map_err(|e| format!("event data {data:?}: {e}"))?;
        match payload.get("type").and_then(Value::as_str) {
            Some("message_start") => message = payload.get("message").cloned(),
            Some("content_block_delta") => {
                if let Some(delta) = payload.pointer("/delta/text").and_then(Value::as_str) {
                    text.push_str(delta);
                }
            }
            Some("message_delta") => last_delta = Some(payload),
            _ => {}
        }
    }
    let mut message = message.ok_or("no message_start event")?;
    let object = message
        .as_object_mut()
        .ok_or("message_start message is not an object")?;
    object.insert("content".into(), json!([{"type": "text", "text": text}]));
    if let Some(Value::Object(stop)) = last_delta.as_ref().and_then(|d| d.get("delta")) {
        object.extend(stop.clone());
    }
    let final_usage = last_delta.as_ref().and_then(|d| d.get("usage"));
    if let (Some(Value::Object(usage)), Some(Value::Object(final_usage))) =
        (object.get_mut("usage"), final_usage)
    {
        usage.extend(final_usage.clone());
    }
    serde_json::to_vec(&message)
        .map(Bytes::from)
        .map_err(|e| e.to_string())
}

/// Anthropic SSE for a recording of data payloads, one JSON per line: each
/// line becomes `event: <payload.type>` and `data: <line as recorded>`.
pub fn jsonl_to_sse(lines: &[u8]) -> Result<Bytes, String> {
    let mut out = Vec::with_capacity(lines.len() * 2);
    for line in lines.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let payload: Value =
            serde_json::from_slice(line).map_err(|e| format!("jsonl line: {e}"))?;
        let kind = payload
            .get("type")
            .and_then(Value::as_str)
            .ok_or("jsonl payload without a type")?;
        out.extend_from_slice(format!("event: {kind}\ndata: ").as_bytes());
        out.extend_from_slice(line);
        out.extend_from_slice(b"\n\n");
    }
    Ok(out.into())
}
