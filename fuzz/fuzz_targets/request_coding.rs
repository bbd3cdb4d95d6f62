//! The request body decoders (`body::coding`): whatever bytes arrive under whichever coding,
//! decoding ends in a body no longer than the limit or in a refusal with one of its two codes,
//! never in a panic. The first byte picks the coding (its low two bits) and the limit (the rest,
//! in steps of 4 KiB); the rest is the body as sent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tailmeter::body::coding::{decode_here, Coding};

const CODINGS: [Coding; 4] = [Coding::Gzip, Coding::Deflate, Coding::Brotli, Coding::Zstd];

fuzz_target!(|data: &[u8]| {
    let Some((&first, body)) = data.split_first() else {
        return;
    };
    let coding = CODINGS[usize::from(first & 3)];
    let limit = 1 + u64::from(first >> 2) * 4096;
    match decode_here(coding, body, limit) {
        Ok(decoded) => assert!(decoded.len() as u64 <= limit),
        Err(refused) => assert!(
            matches!(refused.code, "invalid_encoding" | "request_too_large"),
            "{refused:?}"
        ),
    }
});
