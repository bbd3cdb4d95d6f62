use super::*;

/// A form as httpx (the OpenAI Python SDK's client) writes one: `model`, then a binary file
/// whose bytes hold a line break, dashes and most of the boundary, then `stream`.
fn sdk_form() -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(b"--b0undary\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\n");
    body.extend_from_slice(b"openai/gpt-4o-transcribe\r\n--b0undary\r\n");
    body.extend_from_slice(
        b"Content-Disposition: form-data; name=\"file\"; filename=\"name=\\\"model\\\".wav\"\r\n",
    );
    body.extend_from_slice(b"Content-Type: audio/wav\r\n\r\nRIFF\x00\xff\r\n--b0undar\r\n\r\n");
    body.extend_from_slice(b"\r\n--b0undary\r\nContent-Disposition: form-data; name=\"stream\"");
    body.extend_from_slice(b"\r\n\r\ntrue\r\n--b0undary--\r\n");
    body
}

fn text(body: &[u8], at: Option<Range<usize>>) -> Option<&str> {
    at.map(|range| std::str::from_utf8(&body[range]).unwrap())
}

#[test]
fn finds_model_and_stream_around_a_binary_file() {
    let body = sdk_form();
    let fields = scan(&body, b"b0undary").unwrap();
    assert_eq!(text(&body, fields.model), Some("openai/gpt-4o-transcribe"));
    assert_eq!(text(&body, fields.stream), Some("true"));
}

#[test]
fn a_preamble_padding_and_headerless_names_are_read_as_rfc_2046_allows() {
    let body = b"ignored preamble\r\n--xy \t\r\ncontent-disposition:FORM-DATA;name=model\r\n\r\nm\r\n--xy--";
    let fields = scan(body, b"xy").unwrap();
    assert_eq!(text(body, fields.model), Some("m"));
    assert_eq!(fields.stream, None);
    // An empty value is a value.
    let empty = b"--xy\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\n\r\n--xy--\r\n";
    assert_eq!(text(empty, scan(empty, b"xy").unwrap().model), Some(""));
}

#[test]
fn refuses_what_a_provider_might_read_otherwise() {
    let twice = b"--xy\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\na\r\n--xy\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nb\r\n--xy--";
    let unclosed = b"--xy\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\na\r\n";
    let no_disposition = b"--xy\r\nContent-Type: text/plain\r\n\r\na\r\n--xy--";
    let not_form_data = b"--xy\r\nContent-Disposition: attachment; name=\"a\"\r\n\r\na\r\n--xy--";
    let unnamed = b"--xy\r\nContent-Disposition: form-data; filename=\"a\"\r\n\r\na\r\n--xy--";
    let unended = b"--xy\r\nContent-Disposition: form-data; name=\"model\"";
    let glued = b"--xyContent-Disposition: form-data; name=\"model\"\r\n\r\na\r\n--xy--";
    for (body, says) in [
        (&twice[..], "`model` field is given twice"),
        (unclosed, "before its closing boundary"),
        (no_disposition, "no Content-Disposition"),
        (not_form_data, "not form-data"),
        (unnamed, "names no field"),
        (unended, "headers do not end"),
        (glued, "not followed by a line break"),
        (b"just text", "no part"),
    ] {
        let refused = scan(body, b"xy").unwrap_err();
        assert!(refused.contains(says), "{refused}");
    }
    assert!(scan(b"--\r\n--", b"").unwrap_err().contains("no usable"));
}

#[test]
fn reads_the_boundary_of_a_form_content_type_only() {
    assert_eq!(
        boundary(b"multipart/form-data; boundary=b0undary"),
        Some(&b"b0undary"[..])
    );
    assert_eq!(
        boundary(b" Multipart/Form-Data ; charset=utf-8; BOUNDARY=\"a b;c\""),
        Some(&b"a b;c"[..])
    );
    assert_eq!(boundary(b"multipart/form-data"), Some(&b""[..]));
    assert_eq!(boundary(b"application/json"), None);
    assert_eq!(boundary(b"multipart/mixed; boundary=x"), None);
}
