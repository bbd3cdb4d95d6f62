//! The streamed-JSON-array reader: never panics and finds the same elements however the
//! bytes are chunked.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tailmeter::usage::array::ArrayReader;

fn elements(data: &[u8], chunk: usize) -> Vec<Vec<u8>> {
    let mut reader = ArrayReader::new(4096);
    let mut out = Vec::new();
    for piece in data.chunks(chunk) {
        reader.feed(piece, |e| out.push(e.to_vec()));
    }
    out
}

fuzz_target!(|input: &[u8]| {
    let Some((&first, data)) = input.split_first() else {
        return;
    };
    let whole = elements(data, data.len().max(1));
    assert_eq!(elements(data, usize::from(first % 64) + 1), whole);
    assert!(whole.iter().all(|e| e.len() <= 4096));
});
