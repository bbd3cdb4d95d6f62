//! Black-box tests of the `provider-sim` binary: each test starts its own
//! simulator on an OS-assigned port and talks plain HTTP to it.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use reqwest::{Client, RequestBuilder, StatusCode};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const OPENAI_KEY: &str = "sk-sim-openai";
const ANTHROPIC_KEY: &str = "sk-ant-sim";
const BEDROCK_KEY: &str = "br-sim-bedrock";

#[path = "sim/bedrock.rs"]
mod bedrock;

/// A running simulator, killed when dropped.
struct Sim {
    child: Child,
    base: String,
    client: Client,
}

impl Sim {
    fn start() -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_provider-sim"))
            .args(["--listen", "127.0.0.1:0", "--fixtures"])
            .arg(fixtures_dir())
            .args(["--openai-key", OPENAI_KEY, "--anthropic-key", ANTHROPIC_KEY])
            .args(["--bedrock-key", BEDROCK_KEY])
            .stdout(Stdio::piped())
            .spawn()
            .expect("start provider-sim");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).expect("read");
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        Self {
            child,
            base: format!("http://{addr}"),
            client: Client::new(),
        }
    }

    fn openai(&self, path: &str) -> RequestBuilder {
        self.client
            .post(format!("{}{path}", self.base))
            .bearer_auth(OPENAI_KEY)
    }

    fn anthropic(&self, path: &str) -> RequestBuilder {
        self.client
            .post(format!("{}{path}", self.base))
            .header("x-api-key", ANTHROPIC_KEY)
    }

    fn bedrock(&self, path: &str) -> RequestBuilder {
        self.client
            .post(format!("{}{path}", self.base))
            .bearer_auth(BEDROCK_KEY)
    }

    async fn requests(&self) -> Vec<Value> {
        let url = format!("{}/_sim/requests", self.base);
        let log: Value = self
            .client
            .get(url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        log.as_array().expect("array").clone()
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn fixtures_dir() -> PathBuf {
    // Where the test runs, not where it was built (checkouts can share a target directory).
    PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"))
        .join("fixtures")
}

/// A fixture as served: the file without its `# source:` line.
/// The body bytes received, and how the body ended (an error for a dropped connection).
async fn read_to_end(resp: &mut reqwest::Response) -> (Vec<u8>, reqwest::Result<()>) {
    let mut received = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => received.extend_from_slice(&chunk),
            Ok(None) => return (received, Ok(())),
            Err(error) => return (received, Err(error)),
        }
    }
}

fn fixture_body(name: &str) -> String {
    let raw = std::fs::read_to_string(fixtures_dir().join(name)).unwrap();
    raw.split_once('\n').unwrap().1.to_owned()
}

#[tokio::test]
async fn wrong_or_leaked_credentials_get_401() {
    let sim = Sim::start();
    let body = json!({"model": "gpt-4.1-mini"});
    let url = format!("{}/v1/chat/completions", sim.base);
    let resp = sim
        .client
        .post(url)
        .bearer_auth("nope")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let error: Value = resp.json().await.unwrap();
    assert_eq!(error["error"]["code"], "invalid_api_key");

    let leaked = sim
        .anthropic("/v1/messages")
        .bearer_auth("client-key")
        .json(&body);
    let resp = leaked.send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let error: Value = resp.json().await.unwrap();
    assert_eq!(error["type"], "error");
    assert_eq!(error["error"]["type"], "authentication_error");

    let url = format!("{}/v1/messages", sim.base);
    let wrong = sim.client.post(url).header("x-api-key", "nope").json(&body);
    assert_eq!(
        wrong.send().await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn chat_stream_with_and_without_include_usage() {
    let sim = Sim::start();
    let with_usage =
        json!({"model": "m", "stream": true, "stream_options": {"include_usage": true}});
    let resp = sim
        .openai("/v1/chat/completions")
        .json(&with_usage)
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.headers()["content-type"],
        "text/event-stream; charset=utf-8"
    );
    assert_eq!(
        resp.text().await.unwrap(),
        fixture_body("openai_chat_stream_usage.sse")
    );

    let plain = json!({"model": "m", "stream": true});
    let resp = sim
        .openai("/v1/chat/completions")
        .json(&plain)
        .send()
        .await
        .unwrap();
    let text = resp.text().await.unwrap();
    assert!(!text.contains("\"usage\""), "{text}");
    assert!(!text.contains(r#""choices":[]"#));
    assert!(text.contains(r#""finish_reason":"stop""#));
    assert!(text.ends_with("data: [DONE]\n\n"));
}

#[tokio::test]
async fn nonstream_responses_and_messages_carry_usage() {
    let sim = Sim::start();
    let resp = sim
        .openai("/v1/responses")
        .json(&json!({"model": "gpt-5"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-type"], "application/json");
    let response: Value = resp.json().await.unwrap();
    assert_eq!(response["object"], "response");
    assert_eq!(response["usage"]["input_tokens"], 53);
    assert_eq!(response["usage"]["output_tokens"], 469);
    assert_eq!(
        response["usage"]["output_tokens_details"]["reasoning_tokens"],
        448
    );

    let request = sim
        .anthropic("/v1/messages?beta=true")
        .json(&json!({"model": "claude"}));
    let message: Value = request.send().await.unwrap().json().await.unwrap();
    assert_eq!(message["type"], "message");
    assert_eq!(message["content"], json!([{"type": "text", "text": "2"}]));
    assert_eq!(message["stop_reason"], "end_turn");
    assert_eq!(message["usage"]["input_tokens"], 20);
    assert_eq!(message["usage"]["output_tokens"], 5);
}

#[tokio::test]
async fn sim_fixture_header_serves_named_recordings() {
    let sim = Sim::start();
    let name = "anthropic_messages_stream_error_overloaded.sse";
    let request = sim.anthropic("/v1/messages").header("x-sim-fixture", name);
    let resp = request.json(&json!({"stream": true})).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.text().await.unwrap(), fixture_body(name));

    let name = "anthropic_messages_stream_cache_read_payloads.jsonl";
    let request = sim.anthropic("/v1/messages").header("x-sim-fixture", name);
    let text = request
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.starts_with("event: message_start\ndata: {\"type\":\"message_start\""));
    assert!(text.ends_with("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"));
}

#[tokio::test]
async fn status_fault_answers_in_the_provider_error_shape() {
    let sim = Sim::start();
    let request = sim
        .openai("/v1/chat/completions")
        .header("x-sim-fault", "status=500");
    let resp = request.json(&json!({"model": "m"})).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let error: Value = resp.json().await.unwrap();
    assert_eq!(error["error"]["type"], "server_error");

    let request = sim
        .anthropic("/v1/messages")
        .header("x-sim-fault", "status=429");
    let resp = request.json(&json!({"model": "m"})).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(resp.headers()["retry-after"], "1");
    let error: Value = resp.json().await.unwrap();
    assert_eq!(error["type"], "error");
    assert_eq!(error["error"]["type"], "rate_limit_error");
}

#[tokio::test]
async fn cut_after_drops_the_connection_after_n_bytes() {
    let sim = Sim::start();
    let request = sim
        .openai("/v1/chat/completions")
        .header("x-sim-fault", "cut-after=100");
    let mut resp = request.json(&json!({"stream": true})).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let (received, outcome) = read_to_end(&mut resp).await;
    assert!(outcome.is_err(), "the body must end in an error");
    let expected = fixture_body("openai_chat_stream_usage.sse");
    assert_eq!(received, &expected.as_bytes()[..100]);
}

#[tokio::test]
async fn error_event_ends_a_slow_chunked_stream_early() {
    let sim = Sim::start();
    let faults = "error-event,chunk-bytes=64,chunk-delay-ms=1";
    let request = sim.anthropic("/v1/messages").header("x-sim-fault", faults);
    let text = request
        .json(&json!({"stream": true}))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.starts_with("event: message_start\n"));
    assert!(text.ends_with(
        "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n"
    ));
    assert!(!text.contains("message_stop"));
}

#[tokio::test]
async fn requests_are_recorded_with_body_sha256() {
    let sim = Sim::start();
    let mut body = br#"{"model":"text-embedding-3-small","input":""#.to_vec();
    body.resize(5 << 20, b'a');
    body.extend_from_slice(br#""}"#);
    let request = sim.openai("/v1/embeddings?x=1").body(body.clone());
    let resp = request.send().await.unwrap();
    let embeddings: Value = resp.json().await.unwrap();
    assert_eq!(embeddings["usage"]["prompt_tokens"], 5);

    let log = sim.requests().await;
    assert_eq!(log.len(), 1);
    let record = &log[0];
    assert_eq!(record["method"], "POST");
    assert_eq!(record["path"], "/v1/embeddings?x=1");
    assert_eq!(record["model"], "text-embedding-3-small");
    assert_eq!(
        record["headers"]["authorization"],
        format!("Bearer {OPENAI_KEY}")
    );
    assert_eq!(record["body_len"], body.len());
    let sha: String = Sha256::digest(&body)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(record["body_sha256"], sha);

    let url = format!("{}/_sim/requests", sim.base);
    sim.client.delete(url).send().await.unwrap();
    assert!(sim.requests().await.is_empty());
}

#[tokio::test]
async fn sigterm_exits_cleanly() {
    let mut sim = Sim::start();
    let pid = sim.child.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let status = sim.child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}
