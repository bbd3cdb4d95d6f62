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
    /// POST /v1/completions (legacy completions: code completion on OpenAI-compatible servers)
    Completions,
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
    /// POST /v1/moderations (proxied, not metered: free; its model defaults to
    /// [`DEFAULT_MODERATION_MODEL`])
    Moderations,
    /// GET /v1/realtime?model=… upgraded to a WebSocket (a Realtime session)
    Realtime,
    /// POST /v1/images/generations (JSON), /v1/images/edits and /v1/images/variations (a form,
    /// or JSON for edits)
    Images,
    /// POST /v1/audio/speech (JSON), /v1/audio/transcriptions and /v1/audio/translations (a form)
    Audio,
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

/// Where a request names its model ([`Endpoint::model_at`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelAt {
    /// The body's `model` (a JSON member or a form field).
    Body,
    /// The path (`/v1beta/models/{model}:…`, `/model/{model}/…`).
    Path,
    /// The query's `model=` (`/v1/realtime?model=…`).
    Query,
}

/// The model OpenAI's moderations use when the request names none.
pub const DEFAULT_MODERATION_MODEL: &str = "omni-moderation-latest";

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
            "/v1/completions" => Endpoint::Completions,
            "/v1/responses" => Endpoint::Responses,
            "/v1/embeddings" => Endpoint::Embeddings,
            "/v1/moderations" => Endpoint::Moderations,
            "/v1/realtime" => Endpoint::Realtime,
            "/v1/images/generations" | "/v1/images/edits" | "/v1/images/variations" => {
                Endpoint::Images
            }
            "/v1/audio/speech" | "/v1/audio/transcriptions" | "/v1/audio/translations" => {
                Endpoint::Audio
            }
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
            | Endpoint::Realtime
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

    /// Where a request names its model: Gemini and Bedrock in the path, a Realtime handshake
    /// (which has no body) in the query, the others in the body.
    pub fn model_at(self) -> ModelAt {
        match self.family() {
            Family::Gemini | Family::Bedrock => ModelAt::Path,
            _ if self == Endpoint::Realtime => ModelAt::Query,
            _ => ModelAt::Body,
        }
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

    /// The model a `query` names (`model=`, percent-decoded).
    pub fn query_model(query: &str) -> Option<String> {
        let value = query
            .split('&')
            .find_map(|pair| pair.strip_prefix("model="))?;
        percent_decode(value).filter(|m| !m.is_empty())
    }

    /// `query` with its model replaced by `model` (percent-encoded).
    pub fn query_with_model(query: &str, model: &str) -> String {
        let pairs = query
            .split('&')
            .map(|pair| match pair.starts_with("model=") {
                true => format!("model={}", percent_encode(model)),
                false => pair.to_owned(),
            });
        pairs.collect::<Vec<_>>().join("&")
    }

    /// Whether a stream of this endpoint reports usage only when asked
    /// (`stream_options.include_usage`), which tailmeter then asks for on the client's behalf.
    pub fn asks_for_stream_usage(self) -> bool {
        matches!(self, Endpoint::ChatCompletions | Endpoint::Completions)
    }

    /// The model a request that names none is for: the one its API defaults to.
    pub fn default_model(self) -> Option<&'static str> {
        (self == Endpoint::Moderations).then_some(DEFAULT_MODERATION_MODEL)
    }

    /// Whether the endpoint takes a `multipart/form-data` body (with its `model` a field).
    pub fn takes_form(self) -> bool {
        matches!(self, Endpoint::Images | Endpoint::Audio)
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
            Endpoint::Completions => "completions",
            Endpoint::Responses
            | Endpoint::ResponsesCompact
            | Endpoint::StoredResponse(_)
            | Endpoint::Conversation(_) => "responses",
            Endpoint::Embeddings => "embeddings",
            Endpoint::Moderations => "moderations",
            Endpoint::Realtime => "realtime",
            Endpoint::Images => "images",
            Endpoint::Audio => "audio",
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
            | Endpoint::Completions
            | Endpoint::Responses
            | Endpoint::ResponsesInputTokens
            | Endpoint::ResponsesCompact
            | Endpoint::StoredResponse(_)
            | Endpoint::Conversation(_)
            | Endpoint::Embeddings
            | Endpoint::Moderations
            | Endpoint::Realtime
            | Endpoint::Images
            | Endpoint::Audio
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
            Endpoint::Completions => Some(Dialect::OpenAiCompletions),
            // A stored response retrieved or cancelled is the response object (or its events); a
            // new conversation names its id as a response object does (and reports no usage).
            Endpoint::Responses
            | Endpoint::ResponsesCompact
            | Endpoint::StoredResponse(StoredAction::Retrieve | StoredAction::Cancel)
            | Endpoint::Conversation(ConversationAction::Create) => Some(Dialect::OpenAiResponses),
            Endpoint::Embeddings => Some(Dialect::OpenAiEmbeddings),
            Endpoint::Images | Endpoint::Audio => Some(Dialect::OpenAiMedia),
            Endpoint::Realtime => Some(Dialect::OpenAiRealtime),
            Endpoint::Messages => Some(Dialect::AnthropicMessages),
            Endpoint::GenerateContent | Endpoint::StreamGenerateContent => Some(Dialect::Gemini),
            Endpoint::Converse | Endpoint::ConverseStream => Some(Dialect::BedrockConverse),
            Endpoint::Invoke | Endpoint::InvokeStream => Some(Dialect::BedrockInvoke),
            Endpoint::CountTokens
            | Endpoint::ResponsesInputTokens
            | Endpoint::Moderations
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
mod tests;
