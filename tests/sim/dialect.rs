//! What differs between the simulated providers outside their fixtures: how
//! each checks its key and how each words an error, in a body or mid-stream.

use bytes::Bytes;
use http::header::AUTHORIZATION;
use http::{HeaderMap, StatusCode};
use serde_json::json;

use crate::deliver::Reply;

/// A provider's API dialect.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Dialect {
    /// OpenAI (chat, responses, embeddings); also the answer to unknown paths.
    OpenAi,
    /// Anthropic Messages.
    Anthropic,
    /// Gemini generateContent.
    Gemini,
    /// Bedrock Converse.
    Bedrock,
}

/// The keys the simulated providers accept.
#[derive(Debug)]
pub struct Keys {
    /// Expected in `Authorization: Bearer`.
    pub openai: String,
    /// Expected in `x-api-key`, with no `Authorization`.
    pub anthropic: String,
    /// Expected in `x-goog-api-key` or `?key=`; none means every Gemini call fails.
    pub gemini: Option<String>,
    /// Expected in `Authorization: Bearer`; none means every Bedrock call fails.
    pub bedrock: Option<String>,
}

impl Dialect {
    /// Checks the request's credentials; the error is the reason to give.
    pub fn authorize(
        self,
        keys: &Keys,
        headers: &HeaderMap,
        query: Option<&str>,
    ) -> Result<(), &'static str> {
        let header = |name| headers.get(name).and_then(|v| v.to_str().ok());
        let valid = match self {
            Self::OpenAi => {
                header(AUTHORIZATION.as_str()) == Some(format!("Bearer {}", keys.openai).as_str())
            }
            Self::Anthropic if headers.contains_key(AUTHORIZATION) => {
                return Err("an Authorization header reached the provider");
            }
            Self::Anthropic => header("x-api-key") == Some(keys.anthropic.as_str()),
            Self::Bedrock => keys.bedrock.as_deref().is_some_and(|key| {
                header(AUTHORIZATION.as_str()) == Some(format!("Bearer {key}").as_str())
            }),
            Self::Gemini => keys.gemini.as_deref().is_some_and(|key| {
                header("x-goog-api-key") == Some(key)
                    || query
                        .is_some_and(|q| q.split('&').any(|p| p.strip_prefix("key=") == Some(key)))
            }),
        };
        if valid {
            Ok(())
        } else {
            Err("invalid API key")
        }
    }

    /// An error answer in this dialect's JSON shape.
    pub fn error(self, status: StatusCode, message: &str) -> Reply {
        let code = status.as_u16();
        let body = match self {
            Self::OpenAi => {
                let (kind, code) = match code {
                    401 => ("invalid_request_error", json!("invalid_api_key")),
                    429 => ("requests", json!("rate_limit_exceeded")),
                    500.. => ("server_error", json!(null)),
                    _ => ("invalid_request_error", json!(null)),
                };
                json!({"error": {"message": message, "type": kind, "param": null, "code": code}})
            }
            Self::Anthropic => {
                let kind = match code {
                    400 => "invalid_request_error",
                    401 => "authentication_error",
                    403 => "permission_error",
                    404 => "not_found_error",
                    413 => "request_too_large",
                    429 => "rate_limit_error",
                    529 => "overloaded_error",
                    _ => "api_error",
                };
                json!({"type": "error", "error": {"type": kind, "message": message}})
            }
            Self::Gemini => {
                let status = match code {
                    400 | 413 => "INVALID_ARGUMENT",
                    401 => "UNAUTHENTICATED",
                    403 => "PERMISSION_DENIED",
                    404 => "NOT_FOUND",
                    429 => "RESOURCE_EXHAUSTED",
                    503 => "UNAVAILABLE",
                    _ => "INTERNAL",
                };
                json!({"error": {"code": code, "message": message, "status": status}})
            }
            Self::Bedrock => {
                let kind = match code {
                    400 | 413 => "ValidationException",
                    401 | 403 => "AccessDeniedException",
                    404 => "ResourceNotFoundException",
                    429 => "ThrottlingException",
                    503 => "ServiceUnavailableException",
                    _ => "InternalServerException",
                };
                json!({"__type": kind, "message": message})
            }
        };
        Reply::json(status, body.to_string())
    }

    /// The event a stream ends with under the `error-event` fault.
    pub fn stream_error_event(self) -> Bytes {
        let data = match self {
            Self::OpenAi => r#"{"error":{"message":"simulated","type":"server_error"}}"#,
            Self::Anthropic => {
                r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#
            }
            Self::Gemini => r#"{"error":{"code":500,"message":"simulated","status":"INTERNAL"}}"#,
            // Bedrock streams are binary frames; the fault only applies to SSE.
            Self::Bedrock => r#"{"message":"simulated"}"#,
        };
        format!("event: error\ndata: {data}\n\n").into()
    }
}
