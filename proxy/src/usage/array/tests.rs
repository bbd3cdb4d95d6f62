use super::ArrayReader;

fn read(max: usize, chunks: &[&[u8]]) -> (Vec<String>, ArrayReader) {
    let mut reader = ArrayReader::new(max);
    let mut out = Vec::new();
    for chunk in chunks {
        reader.feed(chunk, |e| out.push(String::from_utf8_lossy(e).into_owned()));
    }
    (out, reader)
}

/// The elements of `input`, the same whole, split in two at every byte, and byte by byte.
fn elements(max: usize, input: &[u8]) -> Vec<String> {
    let (whole, _) = read(max, &[input]);
    for i in 0..=input.len() {
        assert_eq!(
            read(max, &[&input[..i], &input[i..]]).0,
            whole,
            "split at {i}"
        );
    }
    let bytes: Vec<&[u8]> = input.chunks(1).collect();
    assert_eq!(read(max, &bytes).0, whole, "1-byte chunks");
    whole
}

#[test]
fn splits_top_level_elements_whatever_the_strings_hold() {
    let input = br#"[{"a":"]}[{\"\\"},
{"b":[1,{"c":"\\\"}"}]}
,[2,3] , "skip me", 4, {"d":{}}]"#;
    assert_eq!(
        elements(1024, input),
        [
            r#"{"a":"]}[{\"\\"}"#,
            r#"{"b":[1,{"c":"\\\"}"}]}"#,
            "[2,3]",
            r#"{"d":{}}"#
        ]
    );
}

#[test]
fn oversized_element_is_skipped_and_memory_stays_bounded() {
    let big = format!("{{\"t\":\"{}\"}}", "x".repeat(500));
    let input = format!("[{{\"a\":1}},{big},{{\"b\":2}}]");
    assert_eq!(
        elements(100, input.as_bytes()),
        [r#"{"a":1}"#, r#"{"b":2}"#]
    );
    let mut reader = ArrayReader::new(100);
    for byte in input.as_bytes().chunks(1) {
        reader.feed(byte, |_| {});
        assert!(reader.element.capacity() <= 256);
    }
    assert_eq!(reader.oversized_elements(), 1);
}

#[test]
fn element_in_one_chunk_is_not_copied() {
    let chunk = br#"[{"x":1},"#;
    let mut reader = ArrayReader::new(1024);
    let mut borrowed = false;
    reader.feed(chunk, |e| {
        borrowed = chunk.as_ptr_range().contains(&e.as_ptr())
    });
    assert!(borrowed);
}
