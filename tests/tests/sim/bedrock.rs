//! The Bedrock InvokeModel and InvokeModelWithResponseStream routes, black
//! box: the answers, their frames (both CRCs checked here independently of the
//! simulator's encoder), credentials and faults.

use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use reqwest::StatusCode;
use serde_json::{json, Value};

use super::{fixture_body, read_to_end, Sim};

const INVOKE: &str = "/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke";
const INVOKE_STREAM: &str =
    "/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke-with-response-stream";

fn request() -> Value {
    json!({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 16,
           "messages": [{"role": "user", "content": "Count to two."}]})
}

/// A decoded frame: its `(name, string value)` headers and its payload.
type Frame = (Vec<(String, String)>, Vec<u8>);

/// Every frame of an event stream, checking lengths and both CRCs.
fn decode_frames(mut stream: &[u8]) -> Vec<Frame> {
    let word = |b: &[u8]| u32::from_be_bytes(b[..4].try_into().unwrap()) as usize;
    let mut frames = Vec::new();
    while !stream.is_empty() {
        let (total, headers_len) = (word(stream), word(&stream[4..]));
        let frame = &stream[..total];
        assert_eq!(word(&frame[8..]), crc32fast::hash(&frame[..8]) as usize);
        let crc_at = total - 4;
        assert_eq!(
            word(&frame[crc_at..]),
            crc32fast::hash(&frame[..crc_at]) as usize
        );
        let mut headers = Vec::new();
        let mut rest = &frame[12..12 + headers_len];
        while let Some((&len, tail)) = rest.split_first() {
            let (name, tail) = tail.split_at(usize::from(len));
            assert_eq!(tail[0], 7, "string header");
            let value_len = usize::from(u16::from_be_bytes([tail[1], tail[2]]));
            let value = &tail[3..3 + value_len];
            headers.push((
                String::from_utf8(name.to_vec()).unwrap(),
                String::from_utf8(value.to_vec()).unwrap(),
            ));
            rest = &tail[3 + value_len..];
        }
        frames.push((headers, frame[12 + headers_len..crc_at].to_vec()));
        stream = &stream[total..];
    }
    frames
}

/// The `data:` payloads of the recorded Anthropic stream.
fn recorded_events() -> Vec<Value> {
    fixture_body("anthropic_messages_stream_basic.sse")
        .lines()
        .filter_map(|line| line.strip_prefix("data: "))
        .map(|data| serde_json::from_str(data).unwrap())
        .collect()
}

#[tokio::test]
async fn invoke_model_is_the_messages_object_with_token_headers() {
    let sim = Sim::start();
    let resp = sim.bedrock(INVOKE).json(&request()).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let headers = resp.headers().clone();
    let header = |name: &str| headers[name].to_str().unwrap().to_owned();
    assert_eq!(header("content-type"), "application/json");
    assert_eq!(header("x-amzn-bedrock-input-token-count"), "20");
    assert_eq!(header("x-amzn-bedrock-output-token-count"), "5");
    assert_eq!(header("x-amzn-bedrock-invocation-latency"), "2872");
    let body = resp.bytes().await.unwrap();
    let messages = sim.anthropic("/v1/messages").json(&json!({}));
    let expected = messages.send().await.unwrap().bytes().await.unwrap();
    assert_eq!(body, expected, "the body is the non-stream Messages object");

    // The log names the model as tailmeter labels it: `%3A` decoded.
    let log = sim.requests().await;
    assert_eq!(
        log[0]["model"],
        "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
    );
}

#[tokio::test]
async fn invoke_stream_is_one_chunk_frame_per_event_with_metrics_last() {
    let sim = Sim::start();
    let resp = sim
        .bedrock(INVOKE_STREAM)
        .json(&request())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let headers = resp.headers().clone();
    assert_eq!(
        headers["content-type"],
        "application/vnd.amazon.eventstream"
    );
    assert_eq!(headers["x-amzn-bedrock-content-type"], "application/json");
    assert_eq!(headers["transfer-encoding"], "chunked");
    let body = resp.bytes().await.unwrap();
    let mut recorded = recorded_events();
    let frames = decode_frames(&body);
    assert_eq!(frames.len(), recorded.len());
    let mut decoded = Vec::new();
    for (headers, payload) in frames {
        let names: Vec<(&str, &str)> = headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                (":event-type", "chunk"),
                (":content-type", "application/json"),
                (":message-type", "event")
            ]
        );
        let payload: Value = serde_json::from_slice(&payload).unwrap();
        let bytes = STANDARD.decode(payload["bytes"].as_str().unwrap()).unwrap();
        decoded.push(serde_json::from_slice::<Value>(&bytes).unwrap());
    }
    let last = recorded.last_mut().unwrap();
    last["amazon-bedrock-invocationMetrics"] = json!({"inputTokenCount": 20,
        "outputTokenCount": 5, "invocationLatency": 2872, "firstByteLatency": 482});
    assert_eq!(decoded, recorded);
}

#[tokio::test]
async fn invoke_needs_the_bedrock_key_and_honours_status() {
    let sim = Sim::start();
    let url = format!("{}{INVOKE}", sim.base);
    let wrong = sim.client.post(url).bearer_auth("client-key");
    let resp = wrong.json(&request()).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let error: Value = resp.json().await.unwrap();
    assert_eq!(error["__type"], "AccessDeniedException");

    let throttled = sim
        .bedrock(INVOKE_STREAM)
        .header("x-sim-fault", "status=429");
    let resp = throttled.json(&request()).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(resp.headers()["retry-after"], "1");
    let error: Value = resp.json().await.unwrap();
    assert_eq!(error["__type"], "ThrottlingException");
}

#[tokio::test]
async fn invoke_stream_is_cut_and_paced_on_demand() {
    let sim = Sim::start();
    let full = sim.bedrock(INVOKE_STREAM).json(&request()).send().await;
    let full = full.unwrap().bytes().await.unwrap();

    let cut = sim
        .bedrock(INVOKE_STREAM)
        .header("x-sim-fault", "cut-after=300");
    let mut resp = cut.json(&request()).send().await.unwrap();
    let (received, outcome) = read_to_end(&mut resp).await;
    assert!(outcome.is_err(), "the body must end in an error");
    assert_eq!(received, full[..300]);

    let started = Instant::now();
    let paced = sim
        .bedrock(INVOKE_STREAM)
        .header("x-sim-fault", "chunk-delay-ms=40");
    let mut resp = paced.json(&request()).send().await.unwrap();
    let (mut reads, mut received) = (0, Vec::new());
    while let Some(chunk) = resp.chunk().await.unwrap() {
        reads += 1;
        received.extend_from_slice(&chunk);
    }
    assert_eq!(received, full);
    assert!(reads >= 2, "frames arrive apart, got {reads} read(s)");
    assert!(started.elapsed() >= Duration::from_millis(6 * 40));

    let small = sim
        .bedrock(INVOKE_STREAM)
        .header("x-sim-fault", "chunk-bytes=7");
    let resp = small.json(&request()).send().await.unwrap();
    assert_eq!(resp.bytes().await.unwrap(), full);
}
