//! Bedrock as the simulator answers it, all derived from real recordings.
//! ConverseStream replays a recorded event stream byte for byte, and the
//! non-streamed Converse body is derived from that recording (its text deltas
//! joined, its `metadata` usage). InvokeModel and InvokeModelWithResponseStream
//! (see [`invoke`]) wrap the recorded Anthropic Messages stream the way Bedrock
//! serves Claude.
//!
//! AWS event-stream frames are `[total_len u32][headers_len u32][prelude_crc
//! u32][headers][payload][message_crc u32]`, big-endian, the prelude CRC32
//! over the first 8 bytes and the message CRC32 over everything before it.
//! Recorded frames are walked by their length fields only (their CRCs were
//! checked when they were recorded); frames the simulator makes carry both CRCs.

pub mod invoke;

#[cfg(test)]
mod tests;

use bytes::Bytes;
use serde_json::{json, Value};

/// Bytes of a frame's prelude: total length, headers length, prelude CRC.
const PRELUDE: usize = 12;
/// Header value type 7: a string with a u16 length.
const STRING_HEADER: u8 = 7;

/// Splits an event stream into its frames without changing a byte.
pub fn split_frames(stream: &Bytes) -> Result<Vec<Bytes>, String> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < stream.len() {
        let total = stream
            .get(at..at + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
            .ok_or("truncated frame")?;
        if total < PRELUDE + 4 || at + total > stream.len() {
            return Err("bad frame length".into());
        }
        out.push(stream.slice(at..at + total));
        at += total;
    }
    Ok(out)
}

/// One frame with string headers, in the order given, and both CRCs.
pub fn encode_frame(headers: &[(&str, &str)], payload: &[u8]) -> Vec<u8> {
    let mut encoded_headers = Vec::new();
    for (name, value) in headers {
        encoded_headers.push(name.len() as u8);
        encoded_headers.extend_from_slice(name.as_bytes());
        encoded_headers.push(STRING_HEADER);
        encoded_headers.extend_from_slice(&(value.len() as u16).to_be_bytes());
        encoded_headers.extend_from_slice(value.as_bytes());
    }
    let total = PRELUDE + encoded_headers.len() + payload.len() + 4;
    let mut frame = Vec::with_capacity(total);
    frame.extend_from_slice(&(total as u32).to_be_bytes());
    frame.extend_from_slice(&(encoded_headers.len() as u32).to_be_bytes());
    frame.extend_from_slice(&crc32fast::hash(&frame).to_be_bytes());
    frame.extend_from_slice(&encoded_headers);
    frame.extend_from_slice(payload);
    frame.extend_from_slice(&crc32fast::hash(&frame).to_be_bytes());
    frame
}

/// The `(event type, payload)` of every frame of an event stream.
pub(crate) fn frames(stream: &Bytes) -> Result<Vec<(String, Value)>, String> {
    split_frames(stream)?
        .iter()
        .map(|frame| {
            let headers_len = u32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]) as usize;
            let headers = frame
                .get(PRELUDE..PRELUDE + headers_len)
                .ok_or("bad headers length")?;
            let payload = frame
                .get(PRELUDE + headers_len..frame.len() - 4)
                .ok_or("bad frame length")?;
            Ok((
                event_type(headers)?,
                serde_json::from_slice(payload).map_err(|e| e.to_string())?,
            ))
        })
        .collect()
}

/// The `:event-type` string header.
fn event_type(mut headers: &[u8]) -> Result<String, String> {
    while let Some((&len, rest)) = headers.split_first() {
        let name = rest.get(..usize::from(len)).ok_or("bad header")?;
        let rest = &rest[usize::from(len)..];
        if rest.first() != Some(&STRING_HEADER) || rest.len() < 3 {
            return Err("the recording has only string headers".into());
        }
        let value_len = usize::from(u16::from_be_bytes([rest[1], rest[2]]));
        let value = rest.get(3..3 + value_len).ok_or("bad header value")?;
        if name == b":event-type" {
            return String::from_utf8(value.to_vec()).map_err(|e| e.to_string());
        }
        headers = &rest[3 + value_len..];
    }
    Ok(String::new())
}

/// The Converse response the recorded ConverseStream `stream` stands for.
pub fn converse_json(stream: &Bytes) -> Result<Bytes, String> {
    let mut text = String::new();
    let mut usage = Value::Null;
    let mut metrics = Value::Null;
    let mut stop = Value::Null;
    for (event, payload) in frames(stream)? {
        match event.as_str() {
            "contentBlockDelta" => {
                text.push_str(payload["delta"]["text"].as_str().unwrap_or_default())
            }
            "messageStop" => stop = payload["stopReason"].clone(),
            "metadata" => {
                usage = payload["usage"].clone();
                metrics = payload["metrics"].clone();
            }
            _ => {}
        }
    }
    let body = json!({
        "output": {"message": {"role": "assistant", "content": [{"text": text}]}},
        "stopReason": stop,
        "usage": usage,
        "metrics": metrics,
    });
    Ok(body.to_string().into())
}
