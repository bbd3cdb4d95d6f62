//! Refusals in the caller's own API format. A client SDK shows the `message` of an error body it
//! can parse, so every refusal names what was asked, who asked, why it was refused and what the
//! caller may do instead, in the shape that SDK expects.

use bytes::Bytes;
use serde_json::json;

/// The error body shapes of the dialects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorFormat {
    /// `{"error":{"message","type","param","code"}}`
    OpenAi,
    /// `{"type":"error","error":{"type","message"}}`
    Anthropic,
    /// `{"error":{"code","message","status"}}`
    Gemini,
    /// `{"message"}` (with `__type`, which the AWS SDKs read when the `x-amzn-ErrorType`
    /// header is absent)
    Bedrock,
}

/// Why tailmeter refused or failed a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// 400: the body is not JSON, or has no usable `model`.
    InvalidRequest,
    /// 404: no route for the path or the model.
    NotFound,
    /// 403: the caller is not granted the model, or could not be identified.
    PermissionDenied,
    /// 408: the client sent its body too slowly (`server.client_body_timeout`).
    RequestTimeout,
    /// 413: the body is over `max_request_body`.
    TooLarge,
    /// 415: the body is in a content coding tailmeter cannot decode.
    UnsupportedEncoding,
    /// 429: a budget with `on_exceed = "reject"` is spent.
    BudgetExhausted,
    /// 502: the provider could not be reached or failed before answering.
    BadGateway,
    /// 503: tailmeter is shutting down.
    Unavailable,
    /// 504: the provider did not answer in time.
    GatewayTimeout,
}

impl ErrorKind {
    /// The HTTP status of this kind of error.
    pub fn status(self) -> u16 {
        match self {
            ErrorKind::InvalidRequest => 400,
            ErrorKind::PermissionDenied => 403,
            ErrorKind::NotFound => 404,
            ErrorKind::RequestTimeout => 408,
            ErrorKind::TooLarge => 413,
            ErrorKind::UnsupportedEncoding => 415,
            ErrorKind::BudgetExhausted => 429,
            ErrorKind::BadGateway => 502,
            ErrorKind::Unavailable => 503,
            ErrorKind::GatewayTimeout => 504,
        }
    }

    fn openai_type(self) -> &'static str {
        match self {
            ErrorKind::InvalidRequest
            | ErrorKind::NotFound
            | ErrorKind::RequestTimeout
            | ErrorKind::TooLarge
            | ErrorKind::UnsupportedEncoding => "invalid_request_error",
            ErrorKind::PermissionDenied => "permission_error",
            ErrorKind::BudgetExhausted => "insufficient_quota",
            ErrorKind::BadGateway | ErrorKind::Unavailable | ErrorKind::GatewayTimeout => {
                "server_error"
            }
        }
    }

    fn anthropic_type(self) -> &'static str {
        match self {
            ErrorKind::InvalidRequest
            | ErrorKind::RequestTimeout
            | ErrorKind::UnsupportedEncoding => "invalid_request_error",
            ErrorKind::PermissionDenied => "permission_error",
            ErrorKind::NotFound => "not_found_error",
            ErrorKind::TooLarge => "request_too_large",
            ErrorKind::BudgetExhausted => "rate_limit_error",
            ErrorKind::BadGateway | ErrorKind::GatewayTimeout => "api_error",
            ErrorKind::Unavailable => "overloaded_error",
        }
    }

    /// Google's canonical status name.
    fn gemini_status(self) -> &'static str {
        match self {
            ErrorKind::InvalidRequest | ErrorKind::TooLarge | ErrorKind::UnsupportedEncoding => {
                "INVALID_ARGUMENT"
            }
            ErrorKind::RequestTimeout => "DEADLINE_EXCEEDED",
            ErrorKind::PermissionDenied => "PERMISSION_DENIED",
            ErrorKind::NotFound => "NOT_FOUND",
            ErrorKind::BudgetExhausted => "RESOURCE_EXHAUSTED",
            ErrorKind::BadGateway => "INTERNAL",
            ErrorKind::Unavailable => "UNAVAILABLE",
            ErrorKind::GatewayTimeout => "DEADLINE_EXCEEDED",
        }
    }

    /// Bedrock's exception name.
    fn bedrock_type(self) -> &'static str {
        match self {
            ErrorKind::InvalidRequest
            | ErrorKind::RequestTimeout
            | ErrorKind::TooLarge
            | ErrorKind::UnsupportedEncoding => "ValidationException",
            ErrorKind::PermissionDenied => "AccessDeniedException",
            ErrorKind::NotFound => "ResourceNotFoundException",
            ErrorKind::BudgetExhausted => "ThrottlingException",
            ErrorKind::BadGateway => "InternalServerException",
            ErrorKind::Unavailable => "ServiceUnavailableException",
            ErrorKind::GatewayTimeout => "ModelTimeoutException",
        }
    }
}

/// A refusal or failure to send to the client.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// What went wrong, which fixes the status.
    pub kind: ErrorKind,
    /// A short machine-readable code (`model_not_found`, `model_not_granted`, …).
    pub code: &'static str,
    /// The sentence the client's user reads.
    pub message: String,
    /// Seconds for a `retry-after` header.
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// An error of `kind` with `code` and `message`.
    pub fn new(kind: ErrorKind, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            kind,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// The HTTP status to answer with.
    pub fn status(&self) -> u16 {
        self.kind.status()
    }

    /// The JSON body in `format`.
    pub fn body(&self, format: ErrorFormat) -> Bytes {
        let value = match format {
            ErrorFormat::OpenAi => json!({
                "error": {
                    "message": self.message,
                    "type": self.kind.openai_type(),
                    "param": null,
                    "code": self.code,
                }
            }),
            ErrorFormat::Anthropic => json!({
                "type": "error",
                "error": { "type": self.kind.anthropic_type(), "message": self.message },
            }),
            ErrorFormat::Gemini => {
                let mut error = json!({
                    "code": self.status(),
                    "message": self.message,
                    "status": self.kind.gemini_status(),
                });
                // Google's own quota errors say when to retry in a `RetryInfo` detail, which its
                // clients read: Gemini CLI retries within five minutes and stops past that.
                if let Some(seconds) = self.retry_after {
                    error["details"] = json!([{
                        "@type": "type.googleapis.com/google.rpc.RetryInfo",
                        "retryDelay": format!("{seconds}s"),
                    }]);
                }
                json!({ "error": error })
            }
            ErrorFormat::Bedrock => json!({
                "__type": self.kind.bedrock_type(),
                "message": self.message,
            }),
        };
        Bytes::from(value.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each kind as each dialect's SDK reads it: the status, then OpenAI's `type`, Anthropic's
    /// `type`, Gemini's `status` and Bedrock's `__type`.
    #[test]
    fn each_kind_in_each_format() {
        use ErrorKind::*;
        #[rustfmt::skip]
        let table = [
            (InvalidRequest, 400, "invalid_request_error", "invalid_request_error", "INVALID_ARGUMENT", "ValidationException"),
            (NotFound, 404, "invalid_request_error", "not_found_error", "NOT_FOUND", "ResourceNotFoundException"),
            (PermissionDenied, 403, "permission_error", "permission_error", "PERMISSION_DENIED", "AccessDeniedException"),
            (RequestTimeout, 408, "invalid_request_error", "invalid_request_error", "DEADLINE_EXCEEDED", "ValidationException"),
            (TooLarge, 413, "invalid_request_error", "request_too_large", "INVALID_ARGUMENT", "ValidationException"),
            (BudgetExhausted, 429, "insufficient_quota", "rate_limit_error", "RESOURCE_EXHAUSTED", "ThrottlingException"),
            (BadGateway, 502, "server_error", "api_error", "INTERNAL", "InternalServerException"),
            (Unavailable, 503, "server_error", "overloaded_error", "UNAVAILABLE", "ServiceUnavailableException"),
            (GatewayTimeout, 504, "server_error", "api_error", "DEADLINE_EXCEEDED", "ModelTimeoutException"),
        ];
        for (kind, status, openai, anthropic, gemini, bedrock) in table {
            let e = ApiError::new(kind, "code", "message");
            assert_eq!(e.status(), status, "{kind:?}");
            let read = [
                (ErrorFormat::OpenAi, "/error/type", json!(openai)),
                (ErrorFormat::Anthropic, "/error/type", json!(anthropic)),
                (ErrorFormat::Gemini, "/error/status", json!(gemini)),
                (ErrorFormat::Gemini, "/error/code", json!(status)),
                (ErrorFormat::Bedrock, "/__type", json!(bedrock)),
            ];
            for (format, at, expected) in read {
                let body: serde_json::Value = serde_json::from_slice(&e.body(format)).unwrap();
                assert_eq!(body.pointer(at), Some(&expected), "{kind:?} in {format:?}");
            }
        }
    }

    #[test]
    fn renders_each_format() {
        let e = ApiError::new(ErrorKind::NotFound, "model_not_found", "no such model");
        let openai: serde_json::Value =
            serde_json::from_slice(&e.body(ErrorFormat::OpenAi)).unwrap();
        assert_eq!(openai["error"]["code"], "model_not_found");
        assert_eq!(openai["error"]["message"], "no such model");
        let anthropic: serde_json::Value =
            serde_json::from_slice(&e.body(ErrorFormat::Anthropic)).unwrap();
        assert_eq!(anthropic["type"], "error");
        assert_eq!(anthropic["error"]["type"], "not_found_error");
        let gemini: serde_json::Value =
            serde_json::from_slice(&e.body(ErrorFormat::Gemini)).unwrap();
        assert_eq!(gemini["error"]["code"], 404);
        assert_eq!(gemini["error"]["status"], "NOT_FOUND");
        assert_eq!(gemini["error"]["message"], "no such model");
        let bedrock: serde_json::Value =
            serde_json::from_slice(&e.body(ErrorFormat::Bedrock)).unwrap();
        assert_eq!(bedrock["message"], "no such model");
        assert_eq!(bedrock["__type"], "ResourceNotFoundException");
        assert_eq!(e.status(), 404);
        assert!(gemini["error"].get("details").is_none());
    }

    #[test]
    fn a_retry_time_is_a_retry_info_detail_in_geminis_format() {
        let mut e = ApiError::new(ErrorKind::BudgetExhausted, "budget_exhausted", "spent");
        e.retry_after = Some(3590);
        let gemini: serde_json::Value =
            serde_json::from_slice(&e.body(ErrorFormat::Gemini)).unwrap();
        assert_eq!(gemini["error"]["status"], "RESOURCE_EXHAUSTED");
        assert_eq!(
            gemini["error"]["details"],
            json!([{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "3590s"}])
        );
    }
}
