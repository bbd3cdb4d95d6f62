//! What every `tap_*` fuzz target checks, for its own dialects: `UsageTap` never panics, and it
//! learns the same however the body is chunked. The input's first byte picks the dialect, the
//! framing and the chunk size; the rest is the body.

use tailmeter::usage::{Dialect, Framing, UsageTap};

const FRAMINGS: [Framing; 4] = [
    Framing::Sse,
    Framing::Json,
    Framing::EventStream,
    Framing::WebSocket,
];

/// The tap's buffering limit: small, so that bodies past it (read by their small members) and
/// events past it are as common in the fuzzer's inputs as bodies within it.
const LIMIT: usize = 1024;

fn tap(dialect: Dialect, framing: Framing, data: &[u8], chunk: usize) -> UsageTap {
    let mut tap = UsageTap::new(dialect, framing, LIMIT);
    tap.header("x-amzn-bedrock-input-token-count", b"7");
    for piece in data.chunks(chunk) {
        tap.feed(piece);
    }
    tap.finish();
    tap
}

/// Feeds `input` to a tap of one of `dialects` whole and in pieces, and asserts both agree.
pub fn tap_is_chunking_invariant(dialects: &[Dialect], input: &[u8]) {
    let Some((&first, data)) = input.split_first() else {
        return;
    };
    let dialect = dialects[usize::from(first) % dialects.len()];
    let framing = FRAMINGS[usize::from(first / 4) % FRAMINGS.len()];
    let whole = tap(dialect, framing, data, data.len().max(1));
    let chunked = tap(dialect, framing, data, usize::from(first / 12) + 1);
    assert_eq!(chunked.usage(), whole.usage());
    assert_eq!(chunked.response_model(), whole.response_model());
    assert_eq!(chunked.provider_error(), whole.provider_error());
    assert_eq!(chunked.content_bytes(), whole.content_bytes());
    assert_eq!(chunked.usage_complete(), whole.usage_complete());
    let _ = whole.usage().normalize();
}
