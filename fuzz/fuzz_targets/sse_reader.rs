//! The SSE reader: never panics, stays within its event limit, and reads the same events
//! however the bytes are chunked. The first byte picks the chunk size.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tailmeter::usage::sse::SseReader;

fn events(data: &[u8], chunk: usize) -> Vec<(String, Vec<u8>)> {
    let mut reader = SseReader::new(4096);
    let mut out = Vec::new();
    let mut push = |name: &str, data: &[u8]| out.push((name.to_owned(), data.to_vec()));
    for piece in data.chunks(chunk) {
        reader.feed(piece, &mut push);
    }
    reader.finish(&mut push);
    out
}

fuzz_target!(|input: &[u8]| {
    let Some((&first, data)) = input.split_first() else {
        return;
    };
    let whole = events(data, data.len().max(1));
    assert_eq!(events(data, usize::from(first % 64) + 1), whole);
    assert!(whole.iter().all(|(_, d)| d.len() <= 4096));
});
