//! Frames the simulator makes, and the Invoke answers derived from the
//! recorded Messages stream.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
use serde_json::Value;

use super::invoke::Invoke;
use super::{encode_frame, frames, split_frames};
use crate::anthropic::message_json;
use crate::fixtures::read_fixture;

fn messages_stream() -> Bytes {
    // The checkout the test runs in, not the one it was built from.
    let root = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let dir = std::path::Path::new(&root).join("fixtures");
    read_fixture(&dir, "anthropic_messages_stream_basic.sse").unwrap()
}

#[test]
fn empty_frame_matches_the_aws_test_vector() {
    // botocore tests/unit/test_eventstream.py, EMPTY_MESSAGE.
    let expected = b"\x00\x00\x00\x10\x00\x00\x00\x00\x05\xc2\x48\xeb\x7d\x98\xc8\xff";
    assert_eq!(encode_frame(&[], b""), expected);
}

#[test]
fn frames_round_trip_with_both_crcs() {
    let mut stream = encode_frame(&[(":event-type", "chunk")], br#"{"a":1}"#);
    stream.extend(encode_frame(&[(":event-type", "metadata")], b"{}"));
    let stream = Bytes::from(stream);
    let pieces = split_frames(&stream).unwrap();
    assert_eq!(pieces.len(), 2);
    for piece in &pieces {
        let n = piece.len();
        assert_eq!(piece[8..12], crc32fast::hash(&piece[..8]).to_be_bytes());
        assert_eq!(
            piece[n - 4..],
            crc32fast::hash(&piece[..n - 4]).to_be_bytes()
        );
    }
    let events: Vec<String> = frames(&stream).unwrap().into_iter().map(|f| f.0).collect();
    assert_eq!(events, ["chunk", "metadata"]);
    assert!(split_frames(&stream.slice(..stream.len() - 1)).is_err());
}

#[test]
fn invoke_answers_carry_the_recorded_usage() {
    let stream = messages_stream();
    let invoke = Invoke::derive(&stream, &message_json(&stream).unwrap()).unwrap();
    let header = |name: &str| invoke.headers[name].to_str().unwrap().to_owned();
    assert_eq!(header("x-amzn-bedrock-input-token-count"), "20");
    assert_eq!(header("x-amzn-bedrock-output-token-count"), "5");
    assert_eq!(header("x-amzn-bedrock-invocation-latency"), "2872");
    assert_eq!(invoke.headers.len(), 3, "no cache headers for zero figures");

    let chunks: Vec<Value> = frames(&invoke.stream)
        .unwrap()
        .into_iter()
        .map(|(event, payload)| {
            assert_eq!(event, "chunk");
            let bytes = STANDARD.decode(payload["bytes"].as_str().unwrap()).unwrap();
            serde_json::from_slice(&bytes).unwrap()
        })
        .collect();
    let types: Vec<&str> = chunks.iter().map(|c| c["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    let metrics = &chunks[6]["amazon-bedrock-invocationMetrics"];
    assert_eq!(metrics["inputTokenCount"], 20);
    assert_eq!(metrics["outputTokenCount"], 5);
    assert_eq!(metrics["invocationLatency"], 2872);
    assert_eq!(metrics["firstByteLatency"], 482);
}
