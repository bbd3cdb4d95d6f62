use super::SseReader;

type Events = Vec<(String, String)>;

/// Feeds `chunks` then finishes; returns the events and the reader.
fn read(max: usize, chunks: &[&[u8]]) -> (Events, SseReader) {
    let mut reader = SseReader::new(max);
    let mut events = Vec::new();
    let mut push = |name: &str, data: &[u8]| {
        events.push((name.to_owned(), String::from_utf8_lossy(data).into_owned()));
    };
    for chunk in chunks {
        reader.feed(chunk, &mut push);
    }
    reader.finish(&mut push);
    (events, reader)
}

/// The events of `input`, checked to be the same whether it comes whole, split in two
/// at every byte, or one byte at a time.
fn events(max: usize, input: &[u8]) -> Events {
    let (whole, _) = read(max, &[input]);
    for i in 0..=input.len() {
        let (split, _) = read(max, &[&input[..i], &input[i..]]);
        assert_eq!(
            split,
            whole,
            "split at {i} of {:?}",
            String::from_utf8_lossy(input)
        );
    }
    let bytes: Vec<&[u8]> = input.chunks(1).collect();
    assert_eq!(read(max, &bytes).0, whole, "1-byte chunks");
    whole
}

fn ev(name: &str, data: &str) -> (String, String) {
    (name.to_owned(), data.to_owned())
}

#[test]
fn lf_crlf_and_cr_line_endings_read_the_same() {
    let expected = vec![ev("a", "1"), ev("", "2")];
    assert_eq!(events(1024, b"event: a\ndata: 1\n\ndata: 2\n\n"), expected);
    assert_eq!(
        events(1024, b"event: a\r\ndata: 1\r\n\r\ndata: 2\r\n\r\n"),
        expected
    );
    assert_eq!(events(1024, b"event: a\rdata: 1\r\rdata: 2\r\r"), expected);
    assert_eq!(
        events(1024, b"event: a\r\ndata: 1\r\rdata: 2\n\r\n"),
        expected
    );
}

#[test]
fn crlf_split_between_chunks_is_one_line_ending() {
    let (events, _) = read(
        1024,
        &[b"data: 1\r", b"\n\r", b"\ndata: 2\r", b"\n", b"\r\n"],
    );
    assert_eq!(events, vec![ev("", "1"), ev("", "2")]);
    // A lone CR at a chunk's end followed by another line is still one ending.
    let (events, _) = read(1024, &[b"data: 1\r", b"\r", b"data: 2\r\r"]);
    assert_eq!(events, vec![ev("", "1"), ev("", "2")]);
}

#[test]
fn comments_and_unknown_fields_are_ignored() {
    let input =
        b": OPENROUTER PROCESSING\n\n: hi\ndata: x\nfoo: bar\nid: 7\nretry: 10\n\n:data: y\n\n";
    assert_eq!(events(1024, input), vec![ev("", "x")]);
}

#[test]
fn data_lines_join_with_newlines_and_lose_one_leading_space() {
    let input = b"data: a\ndata:b\ndata:  c\ndata\n\n";
    assert_eq!(events(1024, input), vec![ev("", "a\nb\n c\n")]);
    assert_eq!(events(1024, b"data:\n\n"), vec![ev("", "")]);
}

#[test]
fn event_name_applies_to_one_event_only() {
    let input = b"event: message_start\ndata: {}\n\ndata: {}\n\nevent: lost\n\ndata: z\n\n";
    let expected = vec![ev("message_start", "{}"), ev("", "{}"), ev("", "z")];
    assert_eq!(events(1024, input), expected);
}

#[test]
fn unterminated_last_event_is_dispatched_by_finish() {
    assert_eq!(
        events(1024, b"data: 1\n\ndata: 2"),
        vec![ev("", "1"), ev("", "2")]
    );
    assert_eq!(events(1024, b"event: e\ndata: 2\n"), vec![ev("e", "2")]);
    assert_eq!(events(1024, b"event: e\n"), vec![]);
}

#[test]
fn leading_byte_order_mark_is_stripped() {
    assert_eq!(events(1024, b"\xEF\xBB\xBFdata: 1\n\n"), vec![ev("", "1")]);
}

#[test]
fn oversized_event_is_skipped_and_counted() {
    let big = format!("data: {}\n\n", "x".repeat(200));
    let input = format!("data: small\n\n{big}event: e\ndata: after\n\n{big}");
    let expected = vec![ev("", "small"), ev("e", "after")];
    assert_eq!(events(64, input.as_bytes()), expected);
    let (_, reader) = read(64, &[input.as_bytes()]);
    assert_eq!(reader.oversized_events(), 2);
    // Fed a byte at a time, memory stays near the limit.
    let mut reader = SseReader::new(64);
    for byte in big.as_bytes().chunks(1).take(150) {
        reader.feed(byte, |_, _| panic!("nothing completes"));
        assert!(reader.line.capacity() <= 128 && reader.data.capacity() <= 128);
    }
    let mut seen = 0;
    reader.feed(&big.as_bytes()[150..], |_, _| seen += 1);
    assert_eq!((seen, reader.oversized_events()), (0, 1));
}

#[test]
fn event_at_the_limit_is_kept() {
    // "data: " + 57 bytes + "\n" = 64 bytes of lines.
    let input = format!("data: {}\n\n", "y".repeat(57));
    assert_eq!(events(64, input.as_bytes()).len(), 1);
    let input = format!("data: {}\n\n", "y".repeat(58));
    assert_eq!(events(64, input.as_bytes()).len(), 0);
}

#[test]
fn whole_event_in_one_chunk_is_not_copied() {
    let chunk = b"event: a\ndata: {\"x\":1}\n\n";
    let mut reader = SseReader::new(1024);
    let mut borrowed = false;
    reader.feed(chunk, |_, data| {
        borrowed = chunk.as_ptr_range().contains(&data.as_ptr());
    });
    assert!(borrowed);
    // Data pending at the end of a chunk is kept past it.
    let mut got = Vec::new();
    reader.feed(b"data: 1\n", |_, _| unreachable!());
    reader.feed(b"\n", |_, data| got.extend_from_slice(data));
    assert_eq!(got, b"1");
}

#[test]
fn plain_events_read_in_one_step_as_line_by_line() {
    // After the first line, events of the usual shape take `plain_event`; the splits `events`
    // checks send the same bytes line by line.
    let input = b"data: 0\n\nevent: a\ndata: 1\n\nevent: b\r\ndata: 2\r\n\r\ndata: 3\n\r\n\
        :comment\ndata: 4\n\nevent: c\ndata: 5\ndata: 6\n\nevent:d\ndata:7\n\n\
        event: e\ndata: 8\rdata: 9\n\nevent: \ndata: \n\nevent: f\n\ndata: 10\n\n";
    let expected = vec![
        ev("", "0"),
        ev("a", "1"),
        ev("b", "2"),
        ev("", "3"),
        ev("", "4"),
        ev("c", "5\n6"),
        ev("d", "7"),
        ev("e", "8\n9"),
        ev("", ""),
        ev("", "10"),
    ];
    assert_eq!(events(1024, input), expected);
}

#[test]
fn plain_event_at_the_limit_is_kept_and_one_past_it_skipped() {
    // "event: e\n" (9) + "data: " + 49 bytes + "\n" (56) = 65 bytes of lines.
    let event = |len: usize| format!("data: first\n\nevent: e\ndata: {}\n\n", "y".repeat(len));
    assert_eq!(events(65, event(49).as_bytes()).len(), 2);
    let (kept, reader) = read(65, &[event(50).as_bytes()]);
    assert_eq!((kept.len(), reader.oversized_events()), (1, 1));
}
