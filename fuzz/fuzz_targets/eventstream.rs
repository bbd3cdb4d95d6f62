//! The AWS event-stream decoder: never panics, never hands out a frame larger than its
//! limit, and decodes the same frames however the bytes are chunked.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tailmeter::usage::bedrock::eventstream::EventStreamDecoder;

fn frames(data: &[u8], chunk: usize) -> Vec<(String, Vec<u8>)> {
    let mut decoder = EventStreamDecoder::new(4096);
    let mut out = Vec::new();
    for piece in data.chunks(chunk) {
        decoder.feed(piece, |f| out.push((f.name.to_owned(), f.payload.to_vec())));
    }
    out
}

fuzz_target!(|input: &[u8]| {
    let Some((&first, data)) = input.split_first() else {
        return;
    };
    let whole = frames(data, data.len().max(1));
    assert_eq!(frames(data, usize::from(first % 64) + 1), whole);
    assert!(whole.iter().all(|(_, p)| p.len() <= 4096));
});
