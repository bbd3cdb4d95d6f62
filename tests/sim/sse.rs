//! Server-sent-event framing: split a recorded stream into its events without
//! changing a byte, and read one event's fields. Faults and the derived
//! fixtures work event by event, so they all share this one splitter.

use bytes::Bytes;

/// Splits an SSE body into events, each ending with its blank line (`\n\n` or
/// `\r\n\r\n`); concatenated, the pieces give back `body` exactly. Blank lines
/// before an event stay with it; trailing bytes without a blank line form a
/// last piece.
pub fn split_events(body: &Bytes) -> Vec<Bytes> {
    let mut events = Vec::new();
    let mut start = 0;
    let mut line_start = 0;
    let mut has_content = false;
    for (i, &byte) in body.iter().enumerate() {
        if byte != b'\n' {
            continue;
        }
        let line = &body[line_start..i];
        line_start = i + 1;
        if !(line.is_empty() || line == b"\r") {
            has_content = true;
        } else if has_content {
            events.push(body.slice(start..line_start));
            start = line_start;
            has_content = false;
        }
    }
    if start < body.len() {
        events.push(body.slice(start..));
    }
    events
}

/// The value of the first `name:` line of one event (`event`, `data`), without
/// the optional space after the colon. Multi-line `data` is not joined: no
/// recorded provider stream uses it.
pub fn field<'a>(event: &'a [u8], name: &str) -> Option<&'a str> {
    event.split(|&b| b == b'\n').find_map(|line| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let value = line.strip_prefix(name.as_bytes())?.strip_prefix(b":")?;
        let value = value.strip_prefix(b" ").unwrap_or(value);
        std::str::from_utf8(value).ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_is_lossless_for_lf_and_crlf() {
        let body = Bytes::from_static(
            b"\nevent: a\ndata: {\"x\":1}\n\ndata: b\r\n\r\n\r\ndata: c\r\n\r\ndata: tail",
        );
        let events = split_events(&body);
        assert_eq!(events.len(), 4);
        assert_eq!(events.concat(), body.to_vec());
        assert_eq!(field(&events[0], "event"), Some("a"));
        assert_eq!(field(&events[0], "data"), Some("{\"x\":1}"));
        assert_eq!(field(&events[1], "data"), Some("b"));
        assert_eq!(field(&events[2], "data"), Some("c"));
        assert_eq!(field(&events[3], "data"), Some("tail"));
    }
}
