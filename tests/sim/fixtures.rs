//! The recorded provider responses the simulator replays: loaded once at
//! start (so a missing or broken fixture fails the launch, not a test later),
//! with the bodies derived from them, plus lookup by name for `x-sim-fixture`.

use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::deliver::{Kind, Reply};
use crate::{anthropic, bedrock, openai};

/// The recorded ConverseStream every Bedrock Converse answer comes from.
const BEDROCK_STREAM: &str = "bedrock_converse_stream_claude.eventstream.bin";

/// Every default answer, as served.
#[derive(Debug)]
pub struct Fixtures {
    dir: PathBuf,
    /// Chat stream with `include_usage`.
    pub chat_stream_usage: Bytes,
    /// Chat stream without `include_usage`.
    pub chat_stream: Bytes,
    /// Non-stream chat completion.
    pub chat_json: Bytes,
    /// Responses stream.
    pub responses_stream: Bytes,
    /// Non-stream Responses object.
    pub responses_json: Bytes,
    /// Embeddings answer.
    pub embeddings_json: Bytes,
    /// Messages stream.
    pub messages_stream: Bytes,
    /// Non-stream Messages object.
    pub messages_json: Bytes,
    /// Gemini streamGenerateContent (SSE).
    pub gemini_stream: Bytes,
    /// Gemini generateContent.
    pub gemini_json: Bytes,
    /// Bedrock ConverseStream (AWS event-stream frames).
    pub bedrock_stream: Bytes,
    /// Bedrock Converse, derived from the stream.
    pub bedrock_json: Bytes,
    /// Bedrock InvokeModel (with the Messages object as its body) and
    /// InvokeModelWithResponseStream, derived from the Messages stream.
    pub bedrock_invoke: bedrock::invoke::Invoke,
}

impl Fixtures {
    /// Loads the default fixtures from `dir` and derives the bodies built
    /// from them.
    pub fn load(dir: &Path) -> Result<Self, String> {
        let read = |name: &str| read_fixture(dir, name);
        let chat_stream_usage = read("openai_chat_stream_usage.sse")?;
        let responses_stream = read("openai_responses_stream_usage_reasoning.sse")?;
        let messages_stream = read("anthropic_messages_stream_basic.sse")?;
        let bedrock_stream = read(BEDROCK_STREAM)?;
        let messages_json = derived(
            "anthropic_messages_stream_basic.sse",
            anthropic::message_json(&messages_stream),
        )?;
        Ok(Self {
            dir: dir.to_path_buf(),
            chat_stream: openai::chat_stream_without_usage(&chat_stream_usage),
            chat_json: read("openai_chat_nonstream_usage_reasoning.json")?,
            responses_json: derived(
                "openai_responses_stream_usage_reasoning.sse",
                openai::responses_json(&responses_stream),
            )?,
            embeddings_json: read("openai_embeddings_usage.json")?,
            bedrock_invoke: derived(
                "anthropic_messages_stream_basic.sse",
                bedrock::invoke::Invoke::derive(&messages_stream, &messages_json),
            )?,
            messages_json,
            gemini_stream: read("gemini_stream_sse_usage_thoughts.sse")?,
            gemini_json: read("gemini_generate_content_cached_usage.json")?,
            bedrock_json: derived(BEDROCK_STREAM, bedrock::converse_json(&bedrock_stream))?,
            bedrock_stream,
            chat_stream_usage,
            responses_stream,
            messages_stream,
        })
    }

    /// The answer for `x-sim-fixture: NAME`: that file as recorded, a
    /// `.jsonl` of Anthropic payloads reframed as SSE.
    pub fn named(&self, name: &str) -> Result<Reply, String> {
        let plain = !name.is_empty()
            && !name.starts_with('.')
            && !name.contains(['/', '\\'])
            && Path::new(name).file_name().is_some();
        if !plain {
            return Err(format!("x-sim-fixture {name:?} is not a file name"));
        }
        let body = read_fixture(&self.dir, name)?;
        let extension = Path::new(name).extension().and_then(|e| e.to_str());
        Ok(match extension {
            Some("sse") => Reply::ok(Kind::Sse, body),
            Some("jsonl") => Reply::ok(
                Kind::Sse,
                anthropic::jsonl_to_sse(&body).map_err(|e| format!("fixture {name}: {e}"))?,
            ),
            Some("json") => Reply::ok(Kind::Json, body),
            Some("bin") => Reply::ok(Kind::Other("application/vnd.amazon.eventstream"), body),
            _ => Reply::ok(Kind::Other("application/octet-stream"), body),
        })
    }
}

/// A body derived from fixture `name`, its error naming the fixture.
fn derived<T>(name: &str, result: Result<T, String>) -> Result<T, String> {
    result.map_err(|e| format!("fixture {name}: {e}"))
}

/// A fixture's body: the file without its `# source:` first line.
pub(crate) fn read_fixture(dir: &Path, name: &str) -> Result<Bytes, String> {
    let path = dir.join(name);
    let raw = std::fs::read(&path).map_err(|e| format!("fixture {}: {e}", path.display()))?;
    let raw = Bytes::from(raw);
    if !raw.starts_with(b"# source:") {
        return Ok(raw);
    }
    let body_start = raw
        .iter()
        .position(|&b| b == b'\n')
        .map_or(raw.len(), |i| i + 1);
    Ok(raw.slice(body_start..))
}
