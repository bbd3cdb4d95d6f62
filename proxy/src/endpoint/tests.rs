//! Classification of methods and paths, and what follows from each endpoint.

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
    let completions = Endpoint::classify(&post, "/v1/completions");
    assert_eq!(completions, Some(Endpoint::Completions));
    assert_eq!(Endpoint::Completions.label(), "completions");
    assert_eq!(
        Endpoint::Completions.dialect(),
        Some(Dialect::OpenAiCompletions)
    );
    assert!(Endpoint::Completions.asks_for_stream_usage());
    assert!(!Endpoint::Responses.asks_for_stream_usage());
}

#[test]
fn images_and_audio_are_openai_endpoints_metered_alike() {
    for (path, endpoint, label) in [
        ("/v1/images/generations", Endpoint::Images, "images"),
        ("/v1/images/edits", Endpoint::Images, "images"),
        ("/v1/images/variations/", Endpoint::Images, "images"),
        ("/v1/audio/speech", Endpoint::Audio, "audio"),
        ("/v1/audio/transcriptions", Endpoint::Audio, "audio"),
        ("/v1/audio/translations", Endpoint::Audio, "audio"),
    ] {
        assert_eq!(Endpoint::classify(&Method::POST, path), Some(endpoint));
        assert_eq!(Endpoint::classify(&Method::GET, path), None);
        assert_eq!(endpoint.label(), label);
        assert_eq!(endpoint.dialect(), Some(Dialect::OpenAiMedia));
        assert!(endpoint.takes_form() && endpoint.model_at() == ModelAt::Body);
        assert_eq!(endpoint.error_format(), ErrorFormat::OpenAi);
        assert!(endpoint.served_by(ProviderKind::OpenAiCompatible));
        assert!(!endpoint.served_by(ProviderKind::Anthropic));
    }
    assert_eq!(Endpoint::classify(&Method::POST, "/v1/images"), None);
    assert!(!Endpoint::ChatCompletions.takes_form());
}

#[test]
fn moderations_are_proxied_unmetered_with_openais_default_model() {
    let moderations = Endpoint::classify(&Method::POST, "/v1/moderations");
    assert_eq!(moderations, Some(Endpoint::Moderations));
    assert_eq!(Endpoint::classify(&Method::GET, "/v1/moderations"), None);
    let endpoint = Endpoint::Moderations;
    assert_eq!(
        (endpoint.label(), endpoint.dialect()),
        ("moderations", None)
    );
    assert_eq!(endpoint.default_model(), Some("omni-moderation-latest"));
    assert_eq!(Endpoint::ChatCompletions.default_model(), None);
    assert!(endpoint.is_proxied() && endpoint.served_by(ProviderKind::OpenAi));
    assert_eq!(endpoint.error_format(), ErrorFormat::OpenAi);
}

#[test]
fn a_realtime_handshake_names_its_model_in_the_query() {
    let realtime = Endpoint::classify(&Method::GET, "/v1/realtime");
    assert_eq!(realtime, Some(Endpoint::Realtime));
    assert_eq!(Endpoint::classify(&Method::POST, "/v1/realtime"), None);
    let endpoint = Endpoint::Realtime;
    assert_eq!(endpoint.label(), "realtime");
    assert_eq!(endpoint.dialect(), Some(Dialect::OpenAiRealtime));
    assert_eq!(endpoint.model_at(), ModelAt::Query);
    assert_eq!(Endpoint::ChatCompletions.model_at(), ModelAt::Body);
    let query = "model=openai%2Fgpt-realtime&x=1&model=gpt-realtime-mini";
    assert_eq!(
        Endpoint::query_model(query).as_deref(),
        Some("openai/gpt-realtime")
    );
    assert_eq!(Endpoint::query_model("x=1&model="), None);
    // Every `model` the client sent names the model routed.
    let bare = Endpoint::query_with_model(query, "gpt-realtime");
    assert_eq!(bare, "model=gpt-realtime&x=1&model=gpt-realtime");
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
    assert!(retrieve.model_at() == ModelAt::Body && retrieve.served_by(ProviderKind::OpenAi));
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
