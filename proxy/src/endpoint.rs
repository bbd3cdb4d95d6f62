//! The API surface on `listen`: which endpoint a request is for, decided from its method and
//! path alone, and what follows from that (error format, usage dialect, metric label).

use http::Method;

use crate::api_error::ErrorFormat;
use crate::config::ProviderKind;
use crate::usage::Dialect;

/// An endpoint of the contract's API surface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// POST /v1/chat/completions
    ChatCompletions,
    /// POST /v1/responses
    Responses,
    /// POST /v1/embeddings
    Embeddings,
    /// POST /v1/messages
    Messages,
    /// POST /v1/messages/count_tokens (proxied, not metered)
    CountTokens,
    /// GET /v1/models (answered locally)
    ListModels,
    /// GET /tailmeter/whoami (answered locally)
    WhoAmI,
}

impl Endpoint {
    /// The endpoint for `method` and `path` (without query), if it is one tailmeter serves.
    pub fn classify(method: &Method, path: &str) -> Option<Endpoint> {
        let endpoint = match path.strip_suffix('/').unwrap_or(path) {
            "/v1/chat/completions" => Endpoint::ChatCompletions,
            "/v1/responses" => Endpoint::Responses,
            "/v1/embeddings" => Endpoint::Embeddings,
            "/v1/messages" => Endpoint::Messages,
            "/v1/messages/count_tokens" => Endpoint::CountTokens,
            "/v1/models" => Endpoint::ListModels,
            "/tailmeter/whoami" => Endpoint::WhoAmI,
            _ => return None,
        };
        let expected = match endpoint {
            Endpoint::ListModels | Endpoint::WhoAmI => Method::GET,
            _ => Method::POST,
        };
        (*method == expected).then_some(endpoint)
    }

    /// The `endpoint` metric label.
    pub fn label(self) -> &'static str {
        match self {
            Endpoint::ChatCompletions => "chat_completions",
            Endpoint::Responses => "responses",
            Endpoint::Embeddings => "embeddings",
            Endpoint::Messages => "messages",
            Endpoint::CountTokens => "count_tokens",
            Endpoint::ListModels => "models",
            Endpoint::WhoAmI => "whoami",
        }
    }

    /// The error format a client of this endpoint parses.
    pub fn error_format(self) -> ErrorFormat {
        match self {
            Endpoint::Messages | Endpoint::CountTokens => ErrorFormat::Anthropic,
            _ => ErrorFormat::OpenAi,
        }
    }

    /// The usage dialect of this endpoint's responses; None for endpoints that are not metered.
    pub fn dialect(self) -> Option<Dialect> {
        match self {
            Endpoint::ChatCompletions => Some(Dialect::OpenAiChat),
            Endpoint::Responses => Some(Dialect::OpenAiResponses),
            Endpoint::Embeddings => Some(Dialect::OpenAiEmbeddings),
            Endpoint::Messages => Some(Dialect::AnthropicMessages),
            Endpoint::CountTokens | Endpoint::ListModels | Endpoint::WhoAmI => None,
        }
    }

    /// Whether a provider of `kind` speaks this endpoint's API (tailmeter does not translate).
    pub fn served_by(self, kind: ProviderKind) -> bool {
        match self.error_format() {
            ErrorFormat::Anthropic => kind == ProviderKind::Anthropic,
            ErrorFormat::OpenAi => {
                matches!(kind, ProviderKind::OpenAi | ProviderKind::OpenAiCompatible)
            }
        }
    }

    /// Whether this endpoint is proxied to a provider (as opposed to answered by tailmeter).
    pub fn is_proxied(self) -> bool {
        !matches!(self, Endpoint::ListModels | Endpoint::WhoAmI)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_by_method_and_path() {
        let post = Method::POST;
        assert_eq!(
            Endpoint::classify(&post, "/v1/chat/completions"),
            Some(Endpoint::ChatCompletions)
        );
        assert_eq!(
            Endpoint::classify(&post, "/v1/messages"),
            Some(Endpoint::Messages)
        );
        assert_eq!(Endpoint::classify(&Method::GET, "/v1/messages"), None);
        assert_eq!(
            Endpoint::classify(&Method::GET, "/v1/models"),
            Some(Endpoint::ListModels)
        );
        assert_eq!(Endpoint::classify(&post, "/v1/v1/chat/completions"), None);
    }
}
