//! The include_usage request rewriter and the stream stripper that undoes its effect; the first
//! byte picks which (even: rewriter, odd: stripper) and a piece size, and the rest is the input.
//!
//! Rewriter: the body's check gives the same answer however the body arrives (fed to the scan in
//! pieces of the chosen size as it would be read); a body the proxy accepts
//! (`body::parse_fields`) is UTF-8 JSON that serde reads; of such a body, the edit it makes
//! yields valid JSON, keeps every other member, and asks for
//! `stream_options.include_usage: true`; it declines only what its docs allow (not a streamed
//! request, already asking, or an escaped name).
//! Stripper: only removes bytes, filters the same however the stream is chunked, leaves a
//! stream without `usage` untouched, and holds back nothing once the last event has ended.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde::Deserialize;
use serde_json::{Map, Value};
use tailmeter::body::{edited, parse_fields, parse_scanned, TopLevelScan};
use tailmeter::usage::openai_chat::{include_usage_edit, IncludeUsageStripper};

/// What decides whether to ask, read as the rewriter's docs state it.
#[derive(Deserialize)]
struct Probe {
    stream: Option<bool>,
    stream_options: Option<ProbeOptions>,
}

#[derive(Deserialize)]
struct ProbeOptions {
    include_usage: Option<bool>,
}

fn check_inject(body: &[u8], piece: usize) {
    let mut scan = TopLevelScan::default();
    for end in (piece..body.len()).step_by(piece) {
        scan.advance(&body[..end]);
    }
    let read = parse_fields(body);
    let in_pieces = parse_scanned(body, scan);
    assert_eq!(
        in_pieces.as_ref().map_err(|e| &e.message),
        read.as_ref().map_err(|e| &e.message),
        "the body read in pieces read differently"
    );
    // A body the proxy refuses is never forwarded, so never rewritten.
    let Ok(request) = read else {
        return;
    };
    // What the proxy accepts is UTF-8 JSON that serde reads too (the scan checks UTF-8 only in
    // strings that are not ASCII; it must never let anything else through).
    assert!(
        std::str::from_utf8(body).is_ok(),
        "accepted a body that is not UTF-8"
    );
    serde_json::from_slice::<serde::de::IgnoredAny>(body).expect("accepted a body serde refuses");
    let whole = bytes::Bytes::copy_from_slice(body);
    let out = include_usage_edit(body, &request).map(|edit| edited(&whole, &mut [edit]));
    let probe = serde_json::from_slice::<Probe>(body).ok();
    let should_ask = probe.is_some_and(|p| {
        p.stream == Some(true) && p.stream_options.and_then(|o| o.include_usage) != Some(true)
    });
    let Some(out) = out else {
        let object = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
        assert!(
            !should_ask || !object || body.contains(&b'\\'),
            "declined a request it must rewrite"
        );
        return;
    };
    assert!(should_ask, "rewrote a request it must leave alone");
    serde_json::from_slice::<serde::de::IgnoredAny>(&out).expect("rewritten body is not JSON");
    let Ok(Value::Object(before)) = serde_json::from_slice::<Value>(body) else {
        return;
    };
    let Ok(Value::Object(after)) = serde_json::from_slice::<Value>(&out) else {
        panic!("a JSON object became something else");
    };
    assert_eq!(
        without(&before, "stream_options"),
        without(&after, "stream_options")
    );
    let options = after["stream_options"]
        .as_object()
        .expect("stream_options object");
    assert_eq!(options.get("include_usage"), Some(&Value::Bool(true)));
    if let Some(Value::Object(old)) = before.get("stream_options") {
        assert_eq!(
            without(old, "include_usage"),
            without(options, "include_usage")
        );
    } else {
        assert_eq!(options.len(), 1);
    }
}

fn without(object: &Map<String, Value>, key: &str) -> Map<String, Value> {
    let mut object = object.clone();
    object.remove(key);
    object
}

/// The stripper's output for `data` fed in `chunk`-byte pieces, and what `finish` added.
fn strip(data: &[u8], chunk: usize) -> (Vec<u8>, usize) {
    let mut stripper = IncludeUsageStripper::new();
    let mut out = Vec::new();
    for piece in data.chunks(chunk) {
        stripper.filter(piece, &mut out);
    }
    let before_finish = out.len();
    stripper.finish(&mut out);
    let held = out.len() - before_finish;
    (out, held)
}

/// Whether `sub` is `full` with some bytes removed.
fn is_subsequence(sub: &[u8], full: &[u8]) -> bool {
    let mut rest = full.iter();
    sub.iter().all(|b| rest.any(|f| f == b))
}

fn check_strip(data: &[u8], chunk: usize) {
    // Past its hold limit (256 KiB) the stripper passes an event through: chunking then matters.
    if data.len() >= 256 * 1024 {
        return;
    }
    let (whole, whole_held) = strip(data, data.len().max(1));
    let (chunked, chunked_held) = strip(data, chunk);
    assert_eq!(chunked, whole, "chunking changed the output");
    assert!(is_subsequence(&whole, data), "the stripper added bytes");
    if !data.windows(5).any(|w| w == b"usage") {
        assert_eq!(whole, data, "a stream without usage was changed");
    }
    if data.ends_with(b"\n\n") {
        assert_eq!(
            (whole_held, chunked_held),
            (0, 0),
            "held back a finished event"
        );
    }
}

fuzz_target!(|input: &[u8]| {
    let Some((&first, data)) = input.split_first() else {
        return;
    };
    let piece = usize::from(first / 2) + 1;
    if first % 2 == 0 {
        check_inject(data, piece);
    } else {
        check_strip(data, piece);
    }
});
