//! The API surface on `listen`: which endpoint a request is for, decided from its method and
//! path alone, and what follows from that (error format, usage dialect, metric label, where the
//! model is named).
//!
//! Gemini and Bedrock name the model in the path (`/v1beta/models/{model}:generateContent`,
//! `/model/{model}/converse`). A `provider/model` there may come URL-encoded (`%2F`) or literal;
//! Bedrock model ids carry `:` (often sent as `%3A`). [`Endpoint::path_model`] decodes it, and
//! [`Endpoint::path_with_model`] puts the provider's bare name back in its place.
//!
//! A stored OpenAI response is named by its id in the path (`/v1/responses/{id}`), with no model
//! at all: [`Endpoint::stored_response_id`] reads it, and [`crate::stored`] knows its route. So
//! is a conversation (`/v1/conversations/{id}`, [`Endpoint::conversation_id`]).

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
    /// POST /v1/responses/input_tokens (proxied, not metered)
    ResponsesInputTokens,
    /// POST /v1/responses/compact (a compaction pass, metered)
    ResponsesCompact,
    /// A stored response by id: GET, DELETE /v1/responses/{id}, POST …/cancel, GET …/input_items
    StoredResponse(StoredAction),
    /// A conversation (OpenAI's Conversations API, where a Responses session keeps its items;
    /// proxied, not metered)
    Conversation(ConversationAction),
    /// POST /v1/embeddings
    Embeddings,
    /// POST /v1/messages
    Messages,
    /// POST /v1/messages/count_tokens (proxied, not metered)
    CountTokens,
    /// POST /v1beta/models/{model}:generateContent (also /v1/)
    GenerateContent,
    /// POST /v1beta/models/{model}:streamGenerateContent (also /v1/)
    StreamGenerateContent,
    /// POST /v1beta/models/{model}:countTokens (also /v1/; proxied, not metered)
    GeminiCountTokens,
    /// POST /model/{model}/converse
    Converse,
    /// POST /model/{model}/converse-stream
    ConverseStream,
    /// POST /model/{model}/invoke
    Invoke,
    /// POST /model/{model}/invoke-with-response-stream
    InvokeStream,
    /// POST /model/{model}/count-tokens (proxied, not metered)
    BedrockCountTokens,
    /// GET /v1/models (answered locally)
    ListModels,
    /// GET /v1beta/models (answered locally, in Gemini's list shape)
    GeminiListModels,
    /// GET /tailmeter/whoami (answered locally)
    WhoAmI,
}

/// What a request under `/v1/responses/{id}` does with a stored response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoredAction {
    /// GET /v1/responses/{id}: the response as it stands (`?stream=true`: its events again).
    Retrieve,
    /// POST /v1/responses/{id}/cancel: stops a background response.
    Cancel,
    /// DELETE /v1/responses/{id}
    Delete,
    /// GET /v1/responses/{id}/input_items
    InputItems,
}

/// What a request under `/v1/conversations` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConversationAction {
    /// POST /v1/conversations: a new one, whose id is in the answer.
    Create,
    /// DELETE /v1/conversations/{id}
    Delete,
    /// Any other use of one: GET or POST (update) /v1/conversations/{id}, GET or POST …/items,
    /// GET or DELETE …/items/{item}.
    Use,
}

/// Where the Conversations API's paths start.
const CONVERSATIONS: &str = "/v1/conversations";

/// Where the Responses API's paths after `POST /v1/responses` start.
const RESPONSES_PREFIX: &str = "/v1/responses/";

/// Gemini's model paths, under either API version.
const GEMINI_PREFIXES: [&str; 2] = ["/v1beta/models/", "/v1/models/"];
/// Bedrock's model paths.
pub const BEDROCK_PREFIX: &str = "/model/";
/// Bedrock's actions, by the path's last segment.
const BEDROCK_ACTIONS: [(&str, Endpoint); 5] = [
    ("/converse", Endpoint::Converse),
    ("/converse-stream", Endpoint::ConverseStream),
    ("/invoke", Endpoint::Invoke),
    ("/invoke-with-response-stream", Endpoint::InvokeStream),
    ("/count-tokens", Endpoint::BedrockCountTokens),
];

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
            "/v1beta/models" => Endpoint::GeminiListModels,
            "/tailmeter/whoami" => Endpoint::WhoAmI,
            "/v1/responses/input_tokens" => Endpoint::ResponsesInputTokens,
            "/v1/responses/compact" => Endpoint::ResponsesCompact,
            other if other.starts_with(RESPONSES_PREFIX) => Self::stored_response(method, other)?,
            // Several methods on one path: checked there.
            other if other.starts_with(CONVERSATIONS) => return Self::conversation(method, other),
            other => Self::with_model_in_path(other)?.0,
        };
        let expected = match endpoint {
            Endpoint::ListModels
            | Endpoint::GeminiListModels
            | Endpoint::WhoAmI
            | Endpoint::StoredResponse(StoredAction::Retrieve | StoredAction::InputItems) => {
                Method::GET
            }
            Endpoint::StoredResponse(StoredAction::Delete) => Method::DELETE,
            _ => Method::POST,
        };
        (*method == expected).then_some(endpoint)
    }

    /// A path naming a stored response (`/v1/responses/{id}[/action]`): the action, by the
    /// method where the path alone does not say.
    fn stored_response(method: &Method, path: &str) -> Option<Endpoint> {
        Self::stored_response_id(path)?;
        let action = match path.rsplit_once('/')?.1 {
            "cancel" => StoredAction::Cancel,
            "input_items" => StoredAction::InputItems,
            _ if *method == Method::DELETE => StoredAction::Delete,
            _ => StoredAction::Retrieve,
        };
        Some(Endpoint::StoredResponse(action))
    }

    /// The response id in a stored response's path: one non-empty segment after
    /// `/v1/responses/`, followed by nothing, `/cancel` or `/input_items`.
    pub fn stored_response_id(path: &str) -> Option<&str> {
        let rest = path.strip_prefix(RESPONSES_PREFIX)?;
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let id = match rest.split_once('/') {
            Some((id, "cancel" | "input_items")) => id,
            Some(_) => return None,
            None => rest,
        };
        (!id.is_empty()).then_some(id)
    }

    /// A Conversations API path, for the methods it takes.
    fn conversation(method: &Method, path: &str) -> Option<Endpoint> {
        let action = if path == CONVERSATIONS {
            (*method == Method::POST).then_some(ConversationAction::Create)?
        } else {
            let id = Self::conversation_id(path)?;
            let under = &path[CONVERSATIONS.len() + 1 + id.len()..];
            let item = under.strip_prefix("/items/");
            match (method.as_str(), under, item) {
                ("DELETE", "", _) => ConversationAction::Delete,
                ("GET" | "POST", "" | "/items", _) | ("GET" | "DELETE", _, Some(_)) => {
                    ConversationAction::Use
                }
                _ => return None,
            }
        };
        Some(Endpoint::Conversation(action))
    }

    /// The conversation id in a Conversations API path: one non-empty segment after
    /// `/v1/conversations/`, followed by nothing, `/items` or `/items/{item}`.
    pub fn conversation_id(path: &str) -> Option<&str> {
        let rest = path.strip_prefix(CONVERSATIONS)?.strip_prefix('/')?;
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let (id, under) = rest.split_once('/').unwrap_or((rest, ""));
        let well_formed = match under.strip_prefix("items") {
            _ if under.is_empty() => true,
            Some("") => true,
            Some(item) => item
                .strip_prefix('/')
                .is_some_and(|i| !i.is_empty() && !i.contains('/')),
            None => false,
        };
        (!id.is_empty() && well_formed).then_some(id)
    }

    /// A Gemini or Bedrock path: the endpoint and the byte range of the (raw) model in it.
    fn with_model_in_path(path: &str) -> Option<(Endpoint, std::ops::Range<usize>)> {
        if let Some(prefix) = GEMINI_PREFIXES.iter().find(|p| path.starts_with(**p)) {
            let colon = path.rfind(':').filter(|&c| c > prefix.len())?;
            let endpoint = Self::gemini_action(&path[colon + 1..])?;
            return Some((endpoint, prefix.len()..colon));
        }
        let rest = path.strip_prefix(BEDROCK_PREFIX)?;
        BEDROCK_ACTIONS.iter().find_map(|(action, endpoint)| {
            let model = rest.strip_suffix(action).filter(|m| !m.is_empty())?;
            Some((
                *endpoint,
                BEDROCK_PREFIX.len()..BEDROCK_PREFIX.len() + model.len(),
            ))
        })
    }

    /// The Gemini endpoint an action (what follows the model and its `:`) names, if served.
    pub fn gemini_action(action: &str) -> Option<Endpoint> {
        match action {
            "generateContent" => Some(Endpoint::GenerateContent),
            "streamGenerateContent" => Some(Endpoint::StreamGenerateContent),
            "countTokens" => Some(Endpoint::GeminiCountTokens),
            _ => None,
        }
    }

    /// Whether the model is named in the path rather than the body.
    pub fn model_in_path(self) -> bool {
        self.family() == Family::Gemini || self.family() == Family::Bedrock
    }

    /// The model named in `path` (percent-decoded), for an endpoint that names it there.
    pub fn path_model(path: &str) -> Option<String> {
        let (_, range) = Self::with_model_in_path(path)?;
        percent_decode(&path[range]).filter(|m| !m.is_empty())
    }

    /// `path` with its model replaced by `model` (percent-encoded where a path needs it).
    pub fn path_with_model(path: &str, model: &str) -> Option<String> {
        let (_, range) = Self::with_model_in_path(path)?;
        Some(format!(
            "{}{}{}",
            &path[..range.start],
            percent_encode(model),
            &path[range.end..]
        ))
    }

    /// Whether the endpoint always answers with a stream (whatever the body says).
    pub fn always_streams(self) -> bool {
        matches!(
            self,
            Endpoint::StreamGenerateContent | Endpoint::ConverseStream | Endpoint::InvokeStream
        )
    }

    /// The `endpoint` metric label.
    pub fn label(self) -> &'static str {
        match self {
            Endpoint::ChatCompletions => "chat_completions",
            Endpoint::Responses
            | Endpoint::ResponsesCompact
            | Endpoint::StoredResponse(_)
            | Endpoint::Conversation(_) => "responses",
            Endpoint::Embeddings => "embeddings",
            Endpoint::Messages => "messages",
            Endpoint::CountTokens
            | Endpoint::ResponsesInputTokens
            | Endpoint::GeminiCountTokens
            | Endpoint::BedrockCountTokens => "count_tokens",
            Endpoint::GenerateContent | Endpoint::StreamGenerateContent => "generate_content",
            Endpoint::Converse | Endpoint::ConverseStream => "converse",
            Endpoint::Invoke | Endpoint::InvokeStream => "invoke",
            Endpoint::ListModels | Endpoint::GeminiListModels => "models",
            Endpoint::WhoAmI => "whoami",
        }
    }

    /// The API family: who serves it and how errors look.
    fn family(self) -> Family {
        match self {
            Endpoint::Messages | Endpoint::CountTokens => Family::Anthropic,
            Endpoint::GenerateContent
            | Endpoint::StreamGenerateContent
            | Endpoint::GeminiCountTokens
            | Endpoint::GeminiListModels => Family::Gemini,
            Endpoint::Converse
            | Endpoint::ConverseStream
            | Endpoint::Invoke
            | Endpoint::InvokeStream
            | Endpoint::BedrockCountTokens => Family::Bedrock,
            Endpoint::ChatCompletions
            | Endpoint::Responses
            | Endpoint::ResponsesInputTokens
            | Endpoint::ResponsesCompact
            | Endpoint::StoredResponse(_)
            | Endpoint::Conversation(_)
            | Endpoint::Embeddings
            | Endpoint::ListModels
            | Endpoint::WhoAmI => Family::OpenAi,
        }
    }

    /// The error format a client of this endpoint parses.
    pub fn error_format(self) -> ErrorFormat {
        match self.family() {
            Family::OpenAi => ErrorFormat::OpenAi,
            Family::Anthropic => ErrorFormat::Anthropic,
            Family::Gemini => ErrorFormat::Gemini,
            Family::Bedrock => ErrorFormat::Bedrock,
        }
    }

    /// The usage dialect of this endpoint's responses; None for endpoints that are not metered.
    pub fn dialect(self) -> Option<Dialect> {
        match self {
            Endpoint::ChatCompletions => Some(Dialect::OpenAiChat),
            // A stored response retrieved or cancelled is the response object (or its events); a
            // new conversation names its id as a response object does (and reports no usage).
            Endpoint::Responses
            | Endpoint::ResponsesCompact
            | Endpoint::StoredResponse(StoredAction::Retrieve | StoredAction::Cancel)
            | Endpoint::Conversation(ConversationAction::Create) => Some(Dialect::OpenAiResponses),
            Endpoint::Embeddings => Some(Dialect::OpenAiEmbeddings),
            Endpoint::Messages => Some(Dialect::AnthropicMessages),
            Endpoint::GenerateContent | Endpoint::StreamGenerateContent => Some(Dialect::Gemini),
            Endpoint::Converse | Endpoint::ConverseStream => Some(Dialect::BedrockConverse),
            Endpoint::Invoke | Endpoint::InvokeStream => Some(Dialect::BedrockInvoke),
            Endpoint::CountTokens
            | Endpoint::ResponsesInputTokens
            | Endpoint::StoredResponse(StoredAction::Delete | StoredAction::InputItems)
            | Endpoint::Conversation(ConversationAction::Delete | ConversationAction::Use)
            | Endpoint::GeminiCountTokens
            | Endpoint::BedrockCountTokens
            | Endpoint::ListModels
            | Endpoint::GeminiListModels
            | Endpoint::WhoAmI => None,
        }
    }

    /// Whether a provider of `kind` speaks this endpoint's API (tailmeter does not translate).
    pub fn served_by(self, kind: ProviderKind) -> bool {
        match self.family() {
            Family::Anthropic => kind == ProviderKind::Anthropic,
            Family::Gemini => kind == ProviderKind::Gemini,
            Family::Bedrock => kind == ProviderKind::Bedrock,
            Family::OpenAi => {
                matches!(kind, ProviderKind::OpenAi | ProviderKind::OpenAiCompatible)
            }
        }
    }

    /// Whether this endpoint is proxied to a provider (as opposed to answered by tailmeter).
    pub fn is_proxied(self) -> bool {
        !matches!(
            self,
            Endpoint::ListModels | Endpoint::GeminiListModels | Endpoint::WhoAmI
        )
    }
}

/// The API families tailmeter proxies without translating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    OpenAi,
    Anthropic,
    Gemini,
    Bedrock,
}

/// `%XX` escapes decoded; None when the result is not UTF-8 or an escape is malformed.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// `text` as one path segment: every byte but RFC 3986's unreserved ones percent-encoded.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
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

    #[test]
    fn conversations_are_named_by_id_with_the_methods_each_path_takes() {
        use ConversationAction::{Create, Delete, Use};
        let (one, items, item) = (
            "/v1/conversations/conv_1",
            "/v1/conversations/conv_1/items",
            "/v1/conversations/conv_1/items/msg_2",
        );
        let cases = [
            (Method::POST, "/v1/conversations", Some(Create)),
            (Method::GET, "/v1/conversations", None),
            (Method::GET, one, Some(Use)),
            (Method::POST, one, Some(Use)),
            (Method::DELETE, "/v1/conversations/conv_1/", Some(Delete)),
            (Method::GET, items, Some(Use)),
            (Method::POST, items, Some(Use)),
            (Method::DELETE, items, None),
            (Method::GET, item, Some(Use)),
            (Method::DELETE, item, Some(Use)),
            (Method::POST, item, None),
            (Method::GET, "/v1/conversations/conv_1/other", None),
            (Method::GET, "/v1/conversations/conv_1/items/msg_2/x", None),
            (Method::GET, "/v1/conversationsX", None),
            (Method::GET, "/v1/conversations//items", None),
        ];
        for (method, path, action) in cases {
            let expected = action.map(Endpoint::Conversation);
            assert_eq!(
                Endpoint::classify(&method, path),
                expected,
                "{method} {path}"
            );
        }
        assert_eq!(Endpoint::conversation_id(item), Some("conv_1"));
        let create = Endpoint::Conversation(ConversationAction::Create);
        assert_eq!(create.label(), "responses");
        assert_eq!(create.error_format(), ErrorFormat::OpenAi);
        let delete = Endpoint::Conversation(ConversationAction::Delete);
        assert!(delete.is_proxied() && delete.dialect().is_none());
    }

    #[test]
    fn stored_responses_are_named_by_id() {
        let stored = |method: Method, path| Endpoint::classify(&method, path);
        let retrieve = Some(Endpoint::StoredResponse(StoredAction::Retrieve));
        assert_eq!(stored(Method::GET, "/v1/responses/resp_1"), retrieve);
        assert_eq!(stored(Method::GET, "/v1/responses/resp_1/"), retrieve);
        assert_eq!(
            stored(Method::POST, "/v1/responses/resp_1/cancel"),
            Some(Endpoint::StoredResponse(StoredAction::Cancel))
        );
        assert_eq!(
            stored(Method::DELETE, "/v1/responses/resp_1"),
            Some(Endpoint::StoredResponse(StoredAction::Delete))
        );
        assert_eq!(
            stored(Method::GET, "/v1/responses/resp_1/input_items"),
            Some(Endpoint::StoredResponse(StoredAction::InputItems))
        );
        assert_eq!(
            stored(Method::POST, "/v1/responses/input_tokens"),
            Some(Endpoint::ResponsesInputTokens)
        );
        assert_eq!(
            stored(Method::POST, "/v1/responses/compact"),
            Some(Endpoint::ResponsesCompact)
        );
        assert_eq!(Endpoint::ResponsesCompact.label(), "responses");
        assert_eq!(stored(Method::POST, "/v1/responses/resp_1"), None);
        assert_eq!(stored(Method::GET, "/v1/responses/resp_1/cancel"), None);
        assert_eq!(stored(Method::GET, "/v1/responses/"), None);
        assert_eq!(stored(Method::GET, "/v1/responses/a/b"), None);
        assert_eq!(
            Endpoint::stored_response_id("/v1/responses/resp_1/cancel"),
            Some("resp_1")
        );
        let retrieve = Endpoint::StoredResponse(StoredAction::Retrieve);
        assert_eq!(retrieve.label(), "responses");
        assert_eq!(retrieve.dialect(), Some(Dialect::OpenAiResponses));
        assert_eq!(Endpoint::ResponsesInputTokens.label(), "count_tokens");
        assert_eq!(Endpoint::ResponsesInputTokens.dialect(), None);
        assert!(!retrieve.model_in_path() && retrieve.served_by(ProviderKind::OpenAi));
    }

    #[test]
    fn gemini_paths_name_the_model() {
        let post = Method::POST;
        for path in [
            "/v1beta/models/gemini-2.5-flash:streamGenerateContent",
            "/v1/models/gemini-2.5-flash:streamGenerateContent",
        ] {
            assert_eq!(
                Endpoint::classify(&post, path),
                Some(Endpoint::StreamGenerateContent)
            );
            assert_eq!(
                Endpoint::path_model(path).as_deref(),
                Some("gemini-2.5-flash")
            );
        }
        let path = "/v1beta/models/google%2Fgemini-2.5-flash:generateContent";
        assert_eq!(
            Endpoint::classify(&post, path),
            Some(Endpoint::GenerateContent)
        );
        assert_eq!(
            Endpoint::path_model(path).as_deref(),
            Some("google/gemini-2.5-flash")
        );
        let literal = "/v1beta/models/google/gemini-2.5-flash:generateContent";
        assert_eq!(
            Endpoint::path_model(literal).as_deref(),
            Some("google/gemini-2.5-flash")
        );
        assert_eq!(
            Endpoint::path_with_model(literal, "gemini-2.5-flash").as_deref(),
            Some("/v1beta/models/gemini-2.5-flash:generateContent")
        );
        let count = "/v1beta/models/gemini-2.5-flash:countTokens";
        assert_eq!(
            Endpoint::classify(&post, count),
            Some(Endpoint::GeminiCountTokens)
        );
        assert_eq!(Endpoint::GeminiCountTokens.dialect(), None);
        assert_eq!(Endpoint::GeminiCountTokens.label(), "count_tokens");
        assert_eq!(
            Endpoint::GeminiCountTokens.error_format(),
            ErrorFormat::Gemini
        );
        assert_eq!(
            Endpoint::classify(&post, "/v1beta/models/x:embedContent"),
            None
        );
        assert_eq!(
            Endpoint::classify(&post, "/v1beta/models/:generateContent"),
            None
        );
        assert_eq!(
            Endpoint::GenerateContent.error_format(),
            ErrorFormat::Gemini
        );
        assert_eq!(Endpoint::StreamGenerateContent.label(), "generate_content");
    }

    #[test]
    fn bedrock_paths_name_the_model() {
        let post = Method::POST;
        let path = "/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/converse-stream";
        assert_eq!(
            Endpoint::classify(&post, path),
            Some(Endpoint::ConverseStream)
        );
        assert_eq!(
            Endpoint::path_model(path).as_deref(),
            Some("us.anthropic.claude-sonnet-4-5-20250929-v1:0")
        );
        let path = "/model/bedrock%2Fus.anthropic.claude-v1%3A0/invoke";
        assert_eq!(Endpoint::classify(&post, path), Some(Endpoint::Invoke));
        assert_eq!(
            Endpoint::path_with_model(path, "us.anthropic.claude-v1:0").as_deref(),
            Some("/model/us.anthropic.claude-v1%3A0/invoke")
        );
        assert_eq!(
            Endpoint::classify(&post, "/model/m/invoke-with-response-stream"),
            Some(Endpoint::InvokeStream)
        );
        let count = Endpoint::classify(&post, "/model/m/count-tokens");
        assert_eq!(count, Some(Endpoint::BedrockCountTokens));
        assert_eq!(Endpoint::BedrockCountTokens.dialect(), None);
        assert_eq!(Endpoint::BedrockCountTokens.label(), "count_tokens");
        assert_eq!(Endpoint::classify(&post, "/model/converse"), None);
        assert_eq!(Endpoint::path_model("/model/%ZZ/converse"), None);
        assert!(Endpoint::InvokeStream.always_streams() && !Endpoint::Invoke.always_streams());
        assert_eq!(Endpoint::Converse.label(), "converse");
        assert!(Endpoint::Converse.served_by(ProviderKind::Bedrock));
        assert!(!Endpoint::Converse.served_by(ProviderKind::OpenAi));
    }
}
