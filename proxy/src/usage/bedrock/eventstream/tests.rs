use super::{EventStreamDecoder, Frame, FrameKind};
use crate::usage::tests::{event_frame, fixture, frame};

type Frames = Vec<(FrameKind, String, Vec<u8>)>;

fn decode(max: usize, chunks: &[&[u8]]) -> (Frames, EventStreamDecoder) {
    let mut decoder = EventStreamDecoder::new(max);
    let mut frames = Vec::new();
    let mut push = |f: &Frame<'_>| frames.push((f.kind, f.name.to_owned(), f.payload.to_vec()));
    for chunk in chunks {
        decoder.feed(chunk, &mut push);
    }
    (frames, decoder)
}

/// The frames of `input`, checked to be the same whole, split in two at every byte, and byte by byte.
fn frames(max: usize, input: &[u8]) -> Frames {
    let (whole, _) = decode(max, &[input]);
    for i in 0..=input.len() {
        assert_eq!(
            decode(max, &[&input[..i], &input[i..]]).0,
            whole,
            "split at {i}"
        );
    }
    let bytes: Vec<&[u8]> = input.chunks(1).collect();
    assert_eq!(decode(max, &bytes).0, whole, "1-byte chunks");
    whole
}

#[test]
fn decodes_the_recorded_stream() {
    let stream = fixture("bedrock_converse_stream_claude.eventstream.bin");
    let got = frames(1 << 20, &stream);
    let names: Vec<&str> = got.iter().map(|(_, name, _)| name.as_str()).collect();
    assert_eq!(
        names,
        [
            "messageStart",
            "contentBlockDelta",
            "contentBlockDelta",
            "contentBlockDelta",
            "contentBlockDelta",
            "contentBlockDelta",
            "contentBlockStop",
            "messageStop",
            "metadata"
        ]
    );
    assert!(got.iter().all(|(kind, _, _)| *kind == FrameKind::Event));
    assert!(got[8].2.starts_with(b"{\"metrics\":{\"latencyMs\":3950}"));
}

#[test]
fn whole_frame_in_one_chunk_is_not_copied() {
    let one = event_frame("metadata", b"{\"usage\":{}}");
    let mut decoder = EventStreamDecoder::new(1024);
    let mut borrowed = false;
    decoder.feed(&one, |f| {
        borrowed = one.as_ptr_range().contains(&f.payload.as_ptr())
    });
    assert!(borrowed);
}

#[test]
fn bad_message_crc_drops_one_frame_and_keeps_going() {
    let mut first = event_frame("a", b"{}");
    let len = first.len();
    first[len - 5] ^= 1;
    let mut stream = first;
    stream.extend_from_slice(&event_frame("b", b"{}"));
    let got = frames(1024, &stream);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1, "b");
    assert_eq!(decode(1024, &[&stream]).1.corrupt_frames(), 1);
}

#[test]
fn bad_prelude_loses_the_framing() {
    let mut stream = event_frame("a", b"{}");
    stream[9] ^= 1; // prelude CRC
    stream.extend_from_slice(&event_frame("b", b"{}"));
    let (got, decoder) = decode(1024, &[&stream]);
    assert!(got.is_empty() && decoder.is_broken());
    // Impossible lengths with a valid CRC: headers longer than the frame.
    let mut prelude = Vec::new();
    prelude.extend_from_slice(&16u32.to_be_bytes());
    prelude.extend_from_slice(&1u32.to_be_bytes());
    prelude.extend_from_slice(&crc32fast::hash(&prelude).to_be_bytes());
    let (got, decoder) = decode(1024, &[&prelude, &[0u8; 8]]);
    assert!(got.is_empty() && decoder.is_broken());
}

#[test]
fn oversized_frame_is_skipped_without_buffering() {
    let big = event_frame("big", &vec![b'x'; 5000]);
    let mut stream = event_frame("small", b"1");
    stream.extend_from_slice(&big);
    stream.extend_from_slice(&event_frame("after", b"2"));
    let got = frames(1000, &stream);
    let names: Vec<&str> = got.iter().map(|(_, n, _)| n.as_str()).collect();
    assert_eq!(names, ["small", "after"]);
    let mut decoder = EventStreamDecoder::new(1000);
    for byte in big.chunks(1) {
        decoder.feed(byte, |_| panic!("nothing completes"));
        assert!(decoder.buf.capacity() <= 1024);
    }
    assert_eq!(decoder.oversized_frames(), 1);
}

#[test]
fn exception_and_error_frames_and_other_header_types() {
    let exception = frame(
        &[
            (":message-type", "exception"),
            (":exception-type", "throttlingException"),
        ],
        b"{\"message\":\"slow\"}",
    );
    let error = frame(&[(":message-type", "error"), (":error-code", "E")], b"");
    let unknown = frame(&[(":message-type", "other")], b"");
    let mut stream = exception;
    stream.extend_from_slice(&error);
    stream.extend_from_slice(&unknown);
    let got = frames(1024, &stream);
    assert_eq!(got[0].0, FrameKind::Exception);
    assert_eq!(got[0].1, "throttlingException");
    assert_eq!((got[1].0, got[1].1.as_str()), (FrameKind::Error, "E"));
    assert_eq!(got.len(), 2);
}

#[test]
fn non_string_headers_are_skipped() {
    // An int32 (type 4), a bool (type 0) and a uuid (type 9) header before the string ones.
    let mut headers = vec![3, b'n', b'u', b'm', 4, 0, 0, 0, 7, 1, b'b', 0];
    headers.extend_from_slice(&[1, b'u', 9]);
    headers.extend_from_slice(&[0u8; 16]);
    for (name, value) in [(":message-type", "event"), (":event-type", "x")] {
        headers.push(name.len() as u8);
        headers.extend_from_slice(name.as_bytes());
        headers.push(7);
        headers.extend_from_slice(&(value.len() as u16).to_be_bytes());
        headers.extend_from_slice(value.as_bytes());
    }
    let total = 12 + headers.len() + 4;
    let mut bytes = Vec::new();
    bytes.extend_from_slice(&(total as u32).to_be_bytes());
    bytes.extend_from_slice(&(headers.len() as u32).to_be_bytes());
    bytes.extend_from_slice(&crc32fast::hash(&bytes).to_be_bytes());
    bytes.extend_from_slice(&headers);
    bytes.extend_from_slice(&crc32fast::hash(&bytes).to_be_bytes());
    let got = frames(1024, &bytes);
    assert_eq!(got, vec![(FrameKind::Event, "x".to_owned(), vec![])]);
}
