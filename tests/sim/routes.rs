//! The provider endpoints the simulator answers and the fixture each serves.

use bytes::Bytes;
use http::{Method, StatusCode};
use serde_json::Value;

use crate::deliver::{Kind, Reply};
use crate::dialect::Dialect;
use crate::fixtures::Fixtures;

/// One simulated provider endpoint.
#[derive(Debug, PartialEq)]
pub enum Route {
    /// POST /v1/chat/completions
    ChatCompletions,
    /// POST /v1/completions (legacy completions)
    Completions,
    /// POST /v1/responses
    Responses,
    /// POST /v1/responses/input_tokens
    ResponsesInputTokens,
    /// POST /v1/responses/compact
    ResponsesCompact,
    /// A stored response, by id: retrieved, cancelled, deleted or its input listed.
    Stored {
        /// The response id in the path.
        id: String,
        /// What is asked of it.
        action: StoredAction,
    },
    /// A conversation (`/v1/conversations`, `…/{id}`, `…/{id}/items`, `…/{id}/items/{item}`).
    Conversation {
        /// The conversation id in the path (none: creating one).
        id: Option<String>,
        /// The item id in the path.
        item: Option<String>,
        /// What is asked.
        action: ConversationAction,
    },
    /// POST /v1/embeddings
    Embeddings,
    /// POST /v1/moderations
    Moderations,
    /// POST /v1/images/… or /v1/audio/…
    Media(Media),
    /// POST /v1/messages
    Messages,
    /// POST /v1/messages/count_tokens
    CountTokens,
    /// POST /v1beta/models/{model}:generateContent or :streamGenerateContent
    /// (also under /v1/).
    Gemini {
        /// The model named in the path.
        model: String,
        /// Whether the action is streamGenerateContent.
        stream: bool,
    },
    /// POST /v1beta/models/{model}:countTokens (also under /v1/).
    GeminiCountTokens {
        /// The model named in the path.
        model: String,
    },
    /// POST /model/{model}/converse or /converse-stream (Bedrock).
    Converse {
        /// The model named in the path (its `%3A` decoded to `:`).
        model: String,
        /// Whether the action is converse-stream.
        stream: bool,
    },
    /// POST /model/{model}/invoke or /invoke-with-response-stream (Bedrock).
    Invoke {
        /// The model named in the path (its `%3A` decoded to `:`).
        model: String,
        /// Whether the action is invoke-with-response-stream.
        stream: bool,
    },
    /// POST /model/{model}/count-tokens (Bedrock's CountTokens).
    BedrockCountTokens {
        /// The model named in the path (its `%3A` decoded to `:`).
        model: String,
    },
}

/// What a request under `/v1/responses/{id}` asks of a stored response.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StoredAction {
    /// GET /v1/responses/{id} (`?stream=true` replays its events)
    Retrieve,
    /// POST /v1/responses/{id}/cancel
    Cancel,
    /// DELETE /v1/responses/{id}
    Delete,
    /// GET /v1/responses/{id}/input_items
    InputItems,
}

/// OpenAI's image and audio endpoints.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Media {
    /// POST /v1/images/generations
    ImageGenerations,
    /// POST /v1/images/edits
    ImageEdits,
    /// POST /v1/images/variations
    ImageVariations,
    /// POST /v1/audio/speech
    Speech,
    /// POST /v1/audio/transcriptions
    Transcriptions,
    /// POST /v1/audio/translations
    Translations,
}

/// What a request under `/v1/conversations` asks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ConversationAction {
    /// POST /v1/conversations
    Create,
    /// GET a conversation or one of its items
    Retrieve,
    /// POST /v1/conversations/{id}: new metadata
    Update,
    /// DELETE a conversation or one of its items
    Delete,
    /// POST /v1/conversations/{id}/items
    AddItems,
    /// GET /v1/conversations/{id}/items
    ListItems,
}

impl Route {
    /// The endpoint for a method and path (without query), if simulated.
    pub fn resolve(method: &Method, path: &str) -> Option<Self> {
        if let Some(rest) = path.strip_prefix("/v1/responses/") {
            return Self::under_responses(method, rest);
        }
        if let Some(rest) = path.strip_prefix("/v1/conversations") {
            return Self::under_conversations(method, rest);
        }
        if method != Method::POST {
            return None;
        }
        match path {
            "/v1/chat/completions" => Some(Self::ChatCompletions),
            "/v1/completions" => Some(Self::Completions),
            "/v1/responses" => Some(Self::Responses),
            "/v1/embeddings" => Some(Self::Embeddings),
            "/v1/moderations" => Some(Self::Moderations),
            "/v1/images/generations" => Some(Self::Media(Media::ImageGenerations)),
            "/v1/images/edits" => Some(Self::Media(Media::ImageEdits)),
            "/v1/images/variations" => Some(Self::Media(Media::ImageVariations)),
            "/v1/audio/speech" => Some(Self::Media(Media::Speech)),
            "/v1/audio/transcriptions" => Some(Self::Media(Media::Transcriptions)),
            "/v1/audio/translations" => Some(Self::Media(Media::Translations)),
            "/v1/messages" => Some(Self::Messages),
            "/v1/messages/count_tokens" => Some(Self::CountTokens),
            _ if path.starts_with("/model/") => {
                let (model, action) = path["/model/".len()..].rsplit_once('/')?;
                let model = percent_decode(model);
                Some(match action {
                    "converse" => Self::Converse {
                        model,
                        stream: false,
                    },
                    "converse-stream" => Self::Converse {
                        model,
                        stream: true,
                    },
                    "invoke" => Self::Invoke {
                        model,
                        stream: false,
                    },
                    "invoke-with-response-stream" => Self::Invoke {
                        model,
                        stream: true,
                    },
                    "count-tokens" => Self::BedrockCountTokens { model },
                    _ => return None,
                })
            }
            _ => {
                let rest = path
                    .strip_prefix("/v1beta/models/")
                    .or_else(|| path.strip_prefix("/v1/models/"))?;
                let (model, action) = rest.rsplit_once(':')?;
                let model = model.to_owned();
                Some(match action {
                    "generateContent" => Self::Gemini {
                        model,
                        stream: false,
                    },
                    "streamGenerateContent" => Self::Gemini {
                        model,
                        stream: true,
                    },
                    "countTokens" => Self::GeminiCountTokens { model },
                    _ => return None,
                })
            }
        }
    }

    /// A path under `/v1/responses/`: counting input, or a stored response's actions.
    fn under_responses(method: &Method, rest: &str) -> Option<Self> {
        match rest {
            "input_tokens" => {
                return (method == Method::POST).then_some(Self::ResponsesInputTokens)
            }
            "compact" => return (method == Method::POST).then_some(Self::ResponsesCompact),
            _ => {}
        }
        let (id, tail) = rest.split_once('/').unwrap_or((rest, ""));
        let action = match (method.as_str(), tail) {
            ("GET", "") => StoredAction::Retrieve,
            ("DELETE", "") => StoredAction::Delete,
            ("POST", "cancel") => StoredAction::Cancel,
            ("GET", "input_items") => StoredAction::InputItems,
            _ => return None,
        };
        let id = id.to_owned();
        (!id.is_empty()).then_some(Self::Stored { id, action })
    }

    /// A path under `/v1/conversations` (`rest` after it).
    fn under_conversations(method: &Method, rest: &str) -> Option<Self> {
        let parts: Vec<&str> = rest.split('/').skip(1).collect();
        let (id, item, action) = match (method.as_str(), parts.as_slice()) {
            ("POST", []) => (None, None, ConversationAction::Create),
            ("GET", [id]) => (Some(id), None, ConversationAction::Retrieve),
            ("POST", [id]) => (Some(id), None, ConversationAction::Update),
            ("DELETE", [id]) => (Some(id), None, ConversationAction::Delete),
            ("POST", [id, "items"]) => (Some(id), None, ConversationAction::AddItems),
            ("GET", [id, "items"]) => (Some(id), None, ConversationAction::ListItems),
            ("GET", [id, "items", item]) => (Some(id), Some(item), ConversationAction::Retrieve),
            ("DELETE", [id, "items", item]) => (Some(id), Some(item), ConversationAction::Delete),
            _ => return None,
        };
        if id.is_some_and(|id| id.is_empty()) || item.is_some_and(|item| item.is_empty()) {
            return None;
        }
        Some(Self::Conversation {
            id: id.map(|id| (*id).to_owned()),
            item: item.map(|item| (*item).to_owned()),
            action,
        })
    }

    /// The provider dialect of this endpoint.
    pub fn dialect(&self) -> Dialect {
        match self {
            Self::ChatCompletions
            | Self::Completions
            | Self::Responses
            | Self::ResponsesInputTokens
            | Self::ResponsesCompact
            | Self::Stored { .. }
            | Self::Conversation { .. }
            | Self::Embeddings
            | Self::Moderations
            | Self::Media(_) => Dialect::OpenAi,
            Self::Messages | Self::CountTokens => Dialect::Anthropic,
            Self::Gemini { .. } | Self::GeminiCountTokens { .. } => Dialect::Gemini,
            Self::Converse { .. } | Self::Invoke { .. } | Self::BedrockCountTokens { .. } => {
                Dialect::Bedrock
            }
        }
    }

    /// The model named in the path (Gemini, Bedrock), if any.
    pub fn path_model(&self) -> Option<&str> {
        match self {
            Self::Gemini { model, .. }
            | Self::GeminiCountTokens { model }
            | Self::Converse { model, .. }
            | Self::Invoke { model, .. }
            | Self::BedrockCountTokens { model } => Some(model),
            _ => None,
        }
    }

    /// The answer to a well-formed, authorized request with JSON body `request`.
    pub fn serve(&self, fixtures: &Fixtures, request: &Value) -> Reply {
        let wants_stream = request.get("stream") == Some(&Value::Bool(true));
        let pick = |stream: &Bytes, json: &Bytes| {
            if wants_stream {
                Reply::ok(Kind::Sse, stream.clone())
            } else {
                Reply::ok(Kind::Json, json.clone())
            }
        };
        match self {
            Self::ChatCompletions => {
                let include_usage =
                    request.pointer("/stream_options/include_usage") == Some(&Value::Bool(true));
                let stream = if include_usage {
                    &fixtures.chat_stream_usage
                } else {
                    &fixtures.chat_stream
                };
                pick(stream, &fixtures.chat_json)
            }
            Self::Responses => pick(&fixtures.responses_stream, &fixtures.responses_json),
            Self::ResponsesInputTokens => Reply::ok(
                Kind::Json,
                r#"{"object":"response.input_tokens","input_tokens":20}"#,
            ),
            Self::Completions => Dialect::OpenAi.error(
                StatusCode::NOT_IMPLEMENTED,
                "provider-sim answers legacy completions only in faithful mode (--synthesize)",
            ),
            Self::ResponsesCompact => Dialect::OpenAi.error(
                StatusCode::NOT_IMPLEMENTED,
                "provider-sim compacts only in faithful mode (--synthesize)",
            ),
            // Recordings are not stored: only faithful mode keeps responses to come back to.
            Self::Stored { id, .. } => Dialect::OpenAi.error(
                StatusCode::NOT_FOUND,
                &format!("Response with id '{id}' not found."),
            ),
            Self::Conversation { .. } => Dialect::OpenAi.error(
                StatusCode::NOT_IMPLEMENTED,
                "provider-sim keeps conversations only in faithful mode (--synthesize)",
            ),
            Self::Embeddings => Reply::ok(Kind::Json, fixtures.embeddings_json.clone()),
            Self::Media(_) | Self::Moderations => Dialect::OpenAi.error(
                StatusCode::NOT_IMPLEMENTED,
                "provider-sim answers image, audio and moderation requests only in faithful mode (--synthesize)",
            ),
            Self::Messages => pick(&fixtures.messages_stream, &fixtures.messages_json),
            Self::CountTokens => Reply::ok(Kind::Json, r#"{"input_tokens":20}"#),
            Self::Gemini { stream: true, .. } => {
                Reply::ok(Kind::Sse, fixtures.gemini_stream.clone())
            }
            Self::Gemini { stream: false, .. } => {
                Reply::ok(Kind::Json, fixtures.gemini_json.clone())
            }
            Self::GeminiCountTokens { .. } => Reply::ok(
                Kind::Json,
                r#"{"totalTokens":20,"promptTokensDetails":[{"modality":"TEXT","tokenCount":20}]}"#,
            ),
            Self::Converse { stream: true, .. } => Reply::ok(
                Kind::Other("application/vnd.amazon.eventstream"),
                fixtures.bedrock_stream.clone(),
            ),
            Self::Converse { stream: false, .. } => {
                Reply::ok(Kind::Json, fixtures.bedrock_json.clone())
            }
            Self::Invoke { stream: true, .. } => {
                let invoke = &fixtures.bedrock_invoke;
                Reply::ok(Kind::Frames, invoke.stream.clone())
                    .with_headers(invoke.stream_headers.clone())
            }
            Self::Invoke { stream: false, .. } => {
                Reply::ok(Kind::Json, fixtures.messages_json.clone())
                    .with_headers(fixtures.bedrock_invoke.headers.clone())
            }
            Self::BedrockCountTokens { .. } => Reply::ok(Kind::Json, r#"{"inputTokens":20}"#),
        }
    }
}

/// `%XX` escapes decoded (a Bedrock model id comes with its `:` as `%3A`); anything else kept.
fn percent_decode(text: &str) -> String {
    let mut out = Vec::with_capacity(text.len());
    let mut rest = text.as_bytes();
    while let Some((&byte, tail)) = rest.split_first() {
        let hex = tail.get(..2).and_then(|h| std::str::from_utf8(h).ok());
        match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
            Some(decoded) if byte == b'%' => {
                out.push(decoded);
                rest = &tail[2..];
            }
            _ => {
                out.push(byte);
                rest = tail;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_gemini_paths_and_rejects_others() {
        let gemini = Route::resolve(
            &Method::POST,
            "/v1beta/models/gemini-2.5-flash:streamGenerateContent",
        );
        assert_eq!(
            gemini,
            Some(Route::Gemini {
                model: "gemini-2.5-flash".into(),
                stream: true
            })
        );
        assert_eq!(
            Route::resolve(
                &Method::POST,
                "/model/us.anthropic.claude-v1%3A0/converse-stream"
            ),
            Some(Route::Converse {
                model: "us.anthropic.claude-v1:0".into(),
                stream: true
            })
        );
        assert_eq!(
            Route::resolve(&Method::POST, "/model/m/invoke-with-response-stream"),
            Some(Route::Invoke {
                model: "m".into(),
                stream: true
            })
        );
        assert_eq!(Route::resolve(&Method::POST, "/model/m/invoke-async"), None);
        assert_eq!(Route::resolve(&Method::GET, "/v1/chat/completions"), None);
        assert_eq!(
            Route::resolve(&Method::POST, "/v1/responses/resp_1/cancel"),
            Some(Route::Stored {
                id: "resp_1".into(),
                action: StoredAction::Cancel
            })
        );
        assert_eq!(
            Route::resolve(&Method::GET, "/v1/responses/resp_1/input_items"),
            Some(Route::Stored {
                id: "resp_1".into(),
                action: StoredAction::InputItems
            })
        );
        assert_eq!(Route::resolve(&Method::PUT, "/v1/responses/resp_1"), None);
        assert_eq!(Route::resolve(&Method::GET, "/v1/responses/"), None);
        assert_eq!(Route::resolve(&Method::POST, "/v1/models/x:embed"), None);
        assert_eq!(Route::resolve(&Method::POST, "/v2/messages"), None);
    }
}
