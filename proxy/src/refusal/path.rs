//! Refusals for paths tailmeter does not serve, in the format of the API each path looks like:
//! a client's base URL set wrong (an API path under the wrong prefix) is a 400 saying how to
//! set it for that kind of client; any other path a 404 listing what is served.

use super::quoted;
use crate::api_error::{ApiError, ErrorFormat, ErrorKind};
use crate::endpoint::{Endpoint, BEDROCK_PREFIX};

/// What clients append to their base URL for each API, longest first.
const API_SUFFIXES: [&str; 6] = [
    "/messages/count_tokens",
    "/chat/completions",
    "/responses",
    "/embeddings",
    "/messages",
    "/models",
];

/// The refusal for a path tailmeter does not serve, and the error format to give it in (the
/// API family the path looks like).
///
/// A path that ends like an API endpoint under the wrong prefix is a client's base URL set
/// wrong (`/v1` twice, missing, or an extra segment): that is a 400 saying how to set it. Not a
/// 404, which Claude Code shows as "an issue with the selected model", hiding the message.
/// Any other path is a 404 listing what is served.
pub fn unknown_path(method: &str, path: &str) -> (ApiError, ErrorFormat) {
    if let Some(refusal) = unknown_gemini_path(method, path) {
        return (refusal, ErrorFormat::Gemini);
    }
    if path.starts_with(BEDROCK_PREFIX) {
        let error = ApiError::new(
            ErrorKind::NotFound,
            "unknown_path",
            format!(
                "tailmeter does not serve {method} {}. Of the Bedrock runtime API it serves POST /model/{{model}}/converse, /converse-stream, /invoke, /invoke-with-response-stream and /count-tokens",
                quoted(path)
            ),
        );
        return (error, ErrorFormat::Bedrock);
    }
    let anthropic = path.contains("/messages");
    let format = if anthropic {
        ErrorFormat::Anthropic
    } else {
        ErrorFormat::OpenAi
    };
    let Some(suffix) = API_SUFFIXES.iter().find(|s| path.ends_with(*s)) else {
        let error = ApiError::new(
            ErrorKind::NotFound,
            "unknown_path",
            format!(
                "tailmeter does not serve {method} {}. Endpoints: POST /v1/chat/completions, /v1/completions, /v1/responses, /v1/responses/compact, /v1/responses/input_tokens, /v1/embeddings, /v1/images/generations (and /edits, /variations), /v1/audio/speech (and /transcriptions, /translations), /v1/messages, /v1/messages/count_tokens, /v1beta/models/{{model}}:generateContent (and :streamGenerateContent, :countTokens), /model/{{model}}/converse (and /converse-stream, /invoke, /invoke-with-response-stream, /count-tokens); GET /v1/models, /tailmeter/whoami; a stored response: GET and DELETE /v1/responses/{{id}}, POST /v1/responses/{{id}}/cancel, GET /v1/responses/{{id}}/input_items; a conversation: POST /v1/conversations, GET, POST and DELETE /v1/conversations/{{id}}, GET and POST /v1/conversations/{{id}}/items, GET and DELETE /v1/conversations/{{id}}/items/{{item}}",
                quoted(path)
            ),
        );
        return (error, format);
    };
    let twice = if path.contains("/v1/v1/") {
        " (the path has /v1 twice)"
    } else {
        ""
    };
    let fix = if anthropic {
        "For Anthropic clients (ANTHROPIC_BASE_URL, Claude Code) the base URL is the gateway's address with no path, e.g. http://gateway:8080 (no /v1: the client adds it)"
    } else {
        "For OpenAI-style clients (OPENAI_BASE_URL, Codex's base_url, Open WebUI) the base URL ends in exactly one /v1, e.g. http://gateway:8080/v1"
    };
    let error = ApiError::new(
        ErrorKind::InvalidRequest,
        "wrong_base_url",
        format!(
            "tailmeter serves {method} /v1{suffix}, not {}: the client's base URL is set wrong{twice}. {fix}",
            quoted(path)
        ),
    );
    (error, format)
}

/// The refusal for a Gemini path that is not served: a served action
/// (`…/models/{model}:{action}`) under another prefix is the base URL set wrong (400); another
/// action, or another path under `/v1beta/`, a 404 naming what is served. None for a path of
/// another shape (a GET of an OpenAI fine-tuned model, `/v1/models/ft:gpt-4o:org:…`, has colons
/// too, so only a POST is read for an action).
fn unknown_gemini_path(method: &str, path: &str) -> Option<ApiError> {
    let action = (method == "POST")
        .then(|| {
            let model_at = path.find("/models/")? + "/models/".len();
            Some(&path[model_at + path[model_at..].rfind(':')?..])
        })
        .flatten();
    if action.is_none() && !path.starts_with("/v1beta/") {
        return None;
    }
    let Some(action) = action.filter(|a| Endpoint::gemini_action(&a[1..]).is_some()) else {
        return Some(ApiError::new(
            ErrorKind::NotFound,
            "unknown_path",
            format!(
                "tailmeter does not serve {method} {}. Of the Gemini API it serves POST /v1beta/models/{{model}}:generateContent, :streamGenerateContent and :countTokens (also under /v1/), and GET /v1beta/models",
                quoted(path)
            ),
        ));
    };
    let twice = if path.contains("/v1beta/v1beta/") || path.contains("/v1/v1/") {
        " (the path has its API version twice)"
    } else {
        ""
    };
    Some(ApiError::new(
        ErrorKind::InvalidRequest,
        "wrong_base_url",
        format!(
            "tailmeter serves POST /v1beta/models/{{model}}{action} (or under /v1/), not {}: the client's base URL is set wrong{twice}. For Gemini clients (GOOGLE_GEMINI_BASE_URL, Gemini CLI, the google-genai SDK's base_url) the base URL is the gateway's address with no path, e.g. http://gateway:8080 (no /v1beta: the client adds it)",
            quoted(path)
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_mistakes_are_400_naming_the_fix_in_the_clients_format() {
        let (error, format) = unknown_path("POST", "/v1/v1/messages");
        assert_eq!((error.status(), format), (400, ErrorFormat::Anthropic));
        assert!(error.message.contains("/v1 twice"));
        assert!(error.message.contains("ANTHROPIC_BASE_URL"));
        let (error, format) = unknown_path("POST", "/responses");
        assert_eq!((error.status(), format), (400, ErrorFormat::OpenAi));
        assert!(error.message.contains("exactly one /v1"));
        let (error, _) = unknown_path("GET", "/v1/v1/models");
        assert_eq!(error.code, "wrong_base_url");
    }

    #[test]
    fn gemini_base_url_mistakes_are_400_in_geminis_format() {
        for path in [
            "/v1beta/v1beta/models/gemini-2.5-flash:streamGenerateContent",
            "/gemini/v1beta/models/gemini-2.5-flash:generateContent",
            "/models/gemini-2.5-flash:countTokens",
        ] {
            let (error, format) = unknown_path("POST", path);
            assert_eq!(
                (error.status(), format),
                (400, ErrorFormat::Gemini),
                "{path}"
            );
            assert!(error.message.contains("GOOGLE_GEMINI_BASE_URL"), "{path}");
        }
        let (error, _) = unknown_path("POST", "/v1beta/v1beta/models/g:generateContent");
        assert!(error.message.contains("API version twice"));
    }

    #[test]
    fn other_paths_are_404_in_the_format_they_look_like() {
        let (error, format) = unknown_path("GET", "/favicon.ico");
        assert_eq!((error.status(), error.code), (404, "unknown_path"));
        assert_eq!(format, ErrorFormat::OpenAi);
        let (error, format) = unknown_path("POST", "/v1beta/models/gemini-2.5-flash:embedContent");
        assert_eq!((error.status(), format), (404, ErrorFormat::Gemini));
        assert!(error.message.contains(":countTokens"));
        let (error, format) = unknown_path("GET", "/v1beta/models/gemini-2.5-flash");
        assert_eq!((error.status(), format), (404, ErrorFormat::Gemini));
        let (_, format) = unknown_path("GET", "/v1/models/ft:gpt-4o:org:x");
        assert_eq!(format, ErrorFormat::OpenAi);
        let (error, format) = unknown_path("POST", "/model/m/invoke-async");
        assert_eq!((error.status(), format), (404, ErrorFormat::Bedrock));
        assert!(error.message.contains("/converse-stream"));
    }
}
