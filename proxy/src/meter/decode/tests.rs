//! A compressed response is read through its coding, bounded, and every way its coding can fail
//! is a reason; the client's bytes are never touched.

use std::io::Write;
use std::sync::Arc;

use bytes::Bytes;
use flate2::write::{GzEncoder, ZlibEncoder};
use flate2::Compression;
use http::HeaderMap;
use tailmeter_exporters::UsageSource;

use super::{is_identity, CodedTap, Fault};
use crate::meter::{Ending, Meter, Metered};
use crate::usage::tests::fixture;
use crate::usage::{Dialect, Framing, UsageTap};

const CHAT_REQUEST: &[u8] =
    br#"{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"Count to two."}]}"#;

fn stream_fixture() -> Vec<u8> {
    fixture("openai_chat_stream_usage.sse")
}

fn gzip(body: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(body).expect("in memory");
    encoder.finish().expect("in memory")
}

fn zlib(body: &[u8]) -> Vec<u8> {
    let mut encoder = ZlibEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(body).expect("in memory");
    encoder.finish().expect("in memory")
}

fn headers(content_type: &str, encoding: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        http::header::CONTENT_TYPE,
        content_type.parse().expect("ok"),
    );
    headers.insert(
        http::header::CONTENT_ENCODING,
        encoding.parse().expect("ok"),
    );
    headers
}

/// A chat stream coded `encoding` with `body` in 7-byte pieces, asserting the client's bytes
/// pass unchanged; the body ends properly only when `ending` is `Complete`.
fn meter(encoding: &str, body: &[u8], ending: Ending) -> Metered {
    let mut meter = Meter::start();
    meter.expect_usage(
        Dialect::OpenAiChat,
        Arc::from("gpt-4o"),
        Bytes::from_static(CHAT_REQUEST),
    );
    // tailmeter injected include_usage: still, a coded stream is never rewritten.
    meter.on_response_header(200, &headers("text/event-stream", encoding), true);
    assert!(!meter.rewrites_body());
    let mut passed = Vec::new();
    for piece in body.chunks(7) {
        let mut chunk = Some(Bytes::copy_from_slice(piece));
        meter.on_body(&mut chunk, false);
        passed.extend_from_slice(&chunk.expect("kept"));
    }
    assert_eq!(passed, body, "the client gets the provider's bytes");
    if ending == Ending::Complete {
        meter.on_body(&mut None, true);
    }
    meter.finish(ending)
}

#[test]
fn gzip_and_deflate_streams_are_read_exactly() {
    let plain = stream_fixture();
    for (encoding, body) in [("gzip", gzip(&plain)), ("deflate", zlib(&plain))] {
        let got = meter(encoding, &body, Ending::Complete);
        assert_eq!(got.source, UsageSource::Provider, "{encoding}");
        assert_eq!((got.tokens.input, got.tokens.output), (14, 8), "{encoding}");
    }
}

#[test]
fn a_truncated_gzip_body_is_estimated_with_its_reason() {
    let plain = stream_fixture();
    let body = gzip(&plain);
    let half = &body[..body.len() / 2];
    // The HTTP body ended properly but its gzip did not.
    let got = meter("gzip", half, Ending::Complete);
    assert_eq!(got.source, UsageSource::Estimated);
    assert_eq!(got.missing_reason, Some("bad_encoding"));
    assert_eq!(got.tokens.input, 4);
    // The connection was cut: the cut is the reason, as for any body.
    let got = meter("gzip", half, Ending::UpstreamFailed);
    assert_eq!(got.missing_reason, Some("upstream_reset"));
    // Only the gzip trailer is missing: the usage was read whole, so it is the provider's.
    let got = meter("gzip", &body[..body.len() - 8], Ending::Complete);
    assert_eq!(got.source, UsageSource::Provider);
}

#[test]
fn a_corrupt_body_and_an_unknown_coding_are_reasons() {
    let plain = stream_fixture();
    let got = meter("gzip", &plain, Ending::Complete);
    assert_eq!(got.missing_reason, Some("bad_encoding"));
    let got = meter("br", &plain, Ending::Complete);
    assert_eq!(got.source, UsageSource::Estimated);
    assert_eq!(got.missing_reason, Some("unsupported_encoding"));
    let got = meter("gzip, br", &gzip(&plain), Ending::Complete);
    assert_eq!(got.missing_reason, Some("unsupported_encoding"));
}

#[test]
fn decoding_stops_at_the_limit() {
    // 8 MiB of spaces compress to a few KiB: the tap never sees more than the limit.
    let bomb = gzip(&vec![b' '; 8 << 20]);
    assert!(bomb.len() < 64 << 10);
    let tap = UsageTap::new(Dialect::OpenAiChat, Framing::Json, 1 << 20);
    let mut coded = CodedTap::new(tap, &headers("application/json", "gzip"), 1 << 20);
    for piece in bomb.chunks(4096) {
        coded.feed(piece);
    }
    coded.finish();
    assert_eq!(coded.fault(), Some(Fault::Oversized));
    assert_eq!(Fault::Oversized.reason(), "oversized");
}

#[test]
fn identity_is_no_coding() {
    let mut headers = HeaderMap::new();
    assert!(is_identity(&headers));
    headers.insert(
        http::header::CONTENT_ENCODING,
        " Identity ".parse().expect("ok"),
    );
    assert!(is_identity(&headers));
    headers.insert(http::header::CONTENT_ENCODING, "gzip".parse().expect("ok"));
    assert!(!is_identity(&headers));
}
