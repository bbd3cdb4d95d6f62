//! The `multipart/form-data` reader of the audio and image endpoints (`body::parse_read` with a
//! boundary): the input's first byte gives the boundary's length (1 to 8 bytes, taken from what
//! follows), the rest is the body. It never panics, and a form it reads, with its `model`
//! renamed in place (as a `provider/model` is made bare), reads back with the new name and the
//! same `stream`.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use tailmeter::body::{edited, parse_read, TopLevelScan};

fuzz_target!(|input: &[u8]| {
    let Some((&first, rest)) = input.split_first() else {
        return;
    };
    let length = usize::from(first % 8) + 1;
    if rest.len() < length {
        return;
    }
    let (boundary, body) = rest.split_at(length);
    let Ok(fields) = parse_read(body, TopLevelScan::default(), Some(boundary)) else {
        return;
    };
    let Some(edit) = fields.model_edit("gpt-4o-mini") else {
        return;
    };
    let renamed = edited(&Bytes::copy_from_slice(body), &mut [edit]);
    let again = parse_read(&renamed, TopLevelScan::default(), Some(boundary))
        .expect("a form renamed in place reads");
    assert_eq!(again.model.as_deref(), Some("gpt-4o-mini"));
    assert_eq!(again.stream, fields.stream);
});
