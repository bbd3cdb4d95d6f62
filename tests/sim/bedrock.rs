//! Bedrock Converse as the simulator answers it: ConverseStream replays a
//! recorded event stream byte for byte, and the non-streamed Converse body is
//! derived from that recording (its text deltas joined, its `metadata` usage).
//! Frames are walked by their length fields only; the recording's CRCs were
//! checked when it was made.

use bytes::Bytes;
use serde_json::{json, Value};

/// The `(event type, payload)` of every frame of an event stream.
fn frames(stream: &[u8]) -> Result<Vec<(String, Value)>, String> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < stream.len() {
        let word = |i: usize| -> Result<usize, String> {
            let bytes = stream.get(i..i + 4).ok_or("truncated frame")?;
            Ok(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize)
        };
        let (total, headers_len) = (word(at)?, word(at + 4)?);
        let frame = stream.get(at..at + total).ok_or("truncated frame")?;
        let headers = frame
            .get(12..12 + headers_len)
            .ok_or("bad headers length")?;
        let payload = frame
            .get(12 + headers_len..total - 4)
            .ok_or("bad frame length")?;
        out.push((
            event_type(headers)?,
            serde_json::from_slice(payload).map_err(|e| e.to_string())?,
        ));
        at += total;
    }
    Ok(out)
}

/// The `:event-type` string header.
fn event_type(mut headers: &[u8]) -> Result<String, String> {
    while let Some((&len, rest)) = headers.split_first() {
        let name = rest.get(..usize::from(len)).ok_or("bad header")?;
        let rest = &rest[usize::from(len)..];
        if rest.first() != Some(&7) {
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
pub fn converse_json(stream: &[u8]) -> Result<Bytes, String> {
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
