use super::*;

/// One frame: `opcode`, final or not, its payload masked with `mask` when given.
fn frame(fin: bool, opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut out = vec![if fin { 0x80 } else { 0 } | opcode];
    let masked = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        len @ 0..=125 => out.push(masked | len as u8),
        len @ 126..=0xffff => {
            out.push(masked | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        len => {
            out.push(masked | 127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    match mask {
        Some(mask) => {
            out.extend_from_slice(&mask);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        }
        None => out.extend_from_slice(payload),
    }
    out
}

/// The messages read from `stream` fed in pieces of `size` bytes, and the oversized count.
fn read(stream: &[u8], size: usize, limit: usize) -> (Vec<String>, u64) {
    let mut reader = WebSocketReader::new(limit);
    let mut messages = Vec::new();
    for piece in stream.chunks(size.max(1)) {
        reader.feed(piece, |m| {
            messages.push(String::from_utf8_lossy(m).into_owned())
        });
    }
    (messages, reader.oversized_messages())
}

#[test]
fn messages_are_read_whatever_the_chunking() {
    let long = "x".repeat(70_000);
    let medium = "m".repeat(300);
    let stream = [
        frame(true, TEXT, br#"{"type":"session.created"}"#, None),
        frame(true, TEXT, medium.as_bytes(), None),
        frame(true, TEXT, long.as_bytes(), None),
        frame(true, TEXT, b"", None),
        frame(
            true,
            TEXT,
            br#"{"type":"response.done"}"#,
            Some([1, 2, 3, 4]),
        ),
    ]
    .concat();
    let want = vec![
        r#"{"type":"session.created"}"#.to_owned(),
        medium,
        long,
        String::new(),
        r#"{"type":"response.done"}"#.to_owned(),
    ];
    for size in [1, 2, 3, 7, 13, 100, 4096, stream.len()] {
        assert_eq!(
            read(&stream, size, 1 << 20),
            (want.clone(), 0),
            "pieces of {size}"
        );
    }
}

#[test]
fn a_fragmented_message_is_joined_around_control_frames() {
    let stream = [
        frame(false, TEXT, br#"{"type":"#, None),
        frame(true, 0x9, b"ping", None),
        frame(false, CONTINUATION, br#""response"#, Some([9, 8, 7, 6])),
        frame(true, CONTINUATION, br#".done"}"#, None),
        frame(true, 0x8, &[0x03, 0xe8], None),
    ]
    .concat();
    for size in [1, 5, stream.len()] {
        let (messages, _) = read(&stream, size, 1 << 20);
        assert_eq!(
            messages,
            [r#"{"type":"response.done"}"#],
            "pieces of {size}"
        );
    }
}

#[test]
fn binary_and_oversized_messages_are_stepped_over() {
    let big = "b".repeat(5_000);
    let stream = [
        frame(true, 0x2, &[0xff; 300], None),
        frame(false, TEXT, big.as_bytes(), None),
        frame(true, CONTINUATION, big.as_bytes(), None),
        frame(false, 0x2, b"bin", None),
        frame(true, CONTINUATION, b"ary", None),
        frame(true, TEXT, big.as_bytes(), None),
        frame(true, TEXT, b"after", None),
    ]
    .concat();
    for size in [1, 64, stream.len()] {
        let (messages, oversized) = read(&stream, size, 8_000);
        assert_eq!(
            messages,
            [big.clone(), "after".to_owned()],
            "pieces of {size}"
        );
        assert_eq!(oversized, 1);
    }
}
