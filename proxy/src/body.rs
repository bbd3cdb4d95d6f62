//! The request body: read whole (routing needs its `model` before `upstream_peer`), bounded by
//! `max_request_body`, parsed for the few fields tailmeter needs, and rewritten only when it must
//! be (a `provider/model` name, the `include_usage` tap).
//!
//! Pingora 0.9 has no phase that reads the body before `upstream_peer`, and a body read in
//! `request_filter` is consumed. Pingora re-sends the request's retry buffer (64 KiB) through
//! `request_body_filter` when it proxies, so [`read_whole_body`] arms that buffer only for the
//! body's last bytes; the proxy then swaps the full (rewritten) body in at that point. A chunked
//! body too large for that trick is answered with 411, asking for a Content-Length.

use std::borrow::Cow;

use bytes::{Bytes, BytesMut};
use pingora::proxy::Session;
use serde::Deserialize;

use crate::api_error::{ApiError, ErrorKind};

/// Pingora's retry buffer holds 64 KiB; arm it when at most this much body is left.
const RETRY_BUFFER_ARM_AT: u64 = 64 * 1024;

/// Reads the whole request body, refusing it past `limit` bytes.
pub async fn read_whole_body(session: &mut Session, limit: u64) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            ErrorKind::TooLarge,
            "request_too_large",
            format!(
                "the request body is larger than this gateway's max_request_body of {limit} bytes"
            ),
        )
    };
    let declared: Option<u64> = session
        .req_header()
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(too_large());
    }
    let downstream = &mut session.downstream_session;
    let expects_continue = downstream
        .get_header(http::header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    if expects_continue {
        // The client waits for this before sending its body (curl: a second, then sends anyway).
        downstream.write_continue_response().await.map_err(|e| {
            ApiError::new(ErrorKind::InvalidRequest, "body_read_failed", format!("could not answer Expect: 100-continue: {e}"))
        })?;
    }
    let mut body = BytesMut::with_capacity(declared.unwrap_or(0) as usize);
    let mut armed = false;
    loop {
        let left = declared.map(|len| len.saturating_sub(body.len() as u64));
        if !armed && left.is_none_or(|left| left <= RETRY_BUFFER_ARM_AT) {
            downstream.enable_retry_buffering();
            armed = true;
        }
        let chunk = downstream.read_request_body().await.map_err(|e| {
            ApiError::new(
                ErrorKind::InvalidRequest,
                "body_read_failed",
                format!("could not read the request body: {e}"),
            )
        })?;
        let Some(chunk) = chunk else { break };
        if body.len() as u64 + chunk.len() as u64 > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    if downstream.retry_buffer_truncated()
        || (!body.is_empty() && downstream.get_retry_buffer().is_none())
    {
        return Err(ApiError::new(
            ErrorKind::LengthRequired,
            "length_required",
            "a chunked request body over 64 KiB cannot be routed; send it with a Content-Length header",
        ));
    }
    Ok(body.freeze())
}

/// The request fields tailmeter reads; everything else is skipped without being materialized.
#[derive(Debug, Deserialize)]
pub struct RequestFields<'a> {
    /// The requested model, as the client named it.
    #[serde(borrow, default)]
    pub model: Option<Cow<'a, str>>,
    /// Whether the client asked for a stream.
    #[serde(default)]
    pub stream: Option<bool>,
}

/// Parses the fields tailmeter needs out of a JSON body.
pub fn parse_fields(body: &[u8]) -> Result<RequestFields<'_>, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            ErrorKind::InvalidRequest,
            "invalid_json",
            format!("the request body is not a JSON object tailmeter can read: {e}"),
        )
    })
}

/// The body with its top-level `model` replaced by `model` (used when the client named the
/// model as `provider/model`: the provider sees the bare name). Member order is preserved.
pub fn with_model(body: &[u8], model: &str) -> Result<Vec<u8>, ApiError> {
    let mut value: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(body)
        .map_err(|e| {
            ApiError::new(
                ErrorKind::InvalidRequest,
                "invalid_json",
                format!("the request body is not a JSON object: {e}"),
            )
        })?;
    value.insert(
        "model".to_owned(),
        serde_json::Value::String(model.to_owned()),
    );
    serde_json::to_vec(&value).map_err(|e| {
        ApiError::new(
            ErrorKind::InvalidRequest,
            "invalid_json",
            format!("the request body could not be re-encoded: {e}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_fields_and_rewrites_model() {
        let body = br#"{"stream":true,"model":"openai/gpt-4o","messages":[{"role":"user","content":"hi \"x\""}]}"#;
        let fields = parse_fields(body).unwrap();
        assert_eq!(fields.model.as_deref(), Some("openai/gpt-4o"));
        assert_eq!(fields.stream, Some(true));
        let rewritten = with_model(body, "gpt-4o").unwrap();
        let text = String::from_utf8(rewritten).unwrap();
        assert!(
            text.starts_with(r#"{"stream":true,"model":"gpt-4o","messages""#),
            "{text}"
        );
        assert_eq!(parse_fields(b"[1,2]").unwrap_err().code, "invalid_json");
        assert!(parse_fields(b"{}").unwrap().model.is_none());
    }
}
