//! Reading a request body's fields, JSON or form, and renaming its model in place.

use super::*;

#[test]
fn reads_fields_and_rewrites_model() {
    let body = br#"{"stream":true,"model":"openai/gpt-4o","messages":[{"role":"user","content":"hi \"x\""}]}"#;
    let fields = parse_fields(body).unwrap();
    assert_eq!(fields.model.as_deref(), Some("openai/gpt-4o"));
    assert_eq!(fields.stream, Some(true));
    let rewrite = |body: &[u8], model: &str| {
        let edit = parse_fields(body).unwrap().model_edit(model).unwrap();
        edited(&Bytes::copy_from_slice(body), &mut [edit]).to_vec()
    };
    let text = String::from_utf8(rewrite(body, "gpt-4o")).unwrap();
    assert!(
        text.starts_with(r#"{"stream":true,"model":"gpt-4o","messages""#),
        "{text}"
    );
    assert_eq!(parse_fields(b"[1,2]").unwrap_err().code, "invalid_json");
    // Everything but the value stays byte for byte, an escaped member name too.
    let spaced = br#" { "temperature" : 0.70, "model" : "openai/gpt-4o" , "n":1e2 }"#;
    assert_eq!(
        rewrite(spaced, "gpt-4o \"x\""),
        br#" { "temperature" : 0.70, "model" : "gpt-4o \"x\"" , "n":1e2 }"#
    );
    let escaped = br#"{"mod\u0065l":"openai/gpt-4o","n":1}"#;
    assert_eq!(
        rewrite(escaped, "gpt-4o"),
        br#"{"mod\u0065l":"gpt-4o","n":1}"#
    );
    assert!(parse_fields(b"{}").unwrap().model.is_none());
}

#[test]
fn reads_a_form_and_renames_its_model_in_place() {
    let form = |model: &str, stream: &str| {
        format!(
            "--x\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n\r\n\
             RIFF\r\n--x\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\n{model}\
             \r\n--x\r\nContent-Disposition: form-data; name=\"stream\"\r\n\r\n{stream}\r\n--x--\r\n"
        )
    };
    let body = form("openai/gpt-4o-transcribe", "true");
    fn read(body: &[u8]) -> Result<RequestFields<'_>, ApiError> {
        parse_read(body, TopLevelScan::default(), Some(b"x"))
    }
    let fields = read(body.as_bytes()).unwrap();
    assert_eq!(fields.model.as_deref(), Some("openai/gpt-4o-transcribe"));
    assert_eq!(fields.stream, Some(true));
    assert_eq!(fields.stream_options, StreamOptionsAt::Absent);
    let edit = fields.model_edit("gpt-4o \"x\"").unwrap();
    let renamed = edited(&Bytes::from(body.clone()), &mut [edit]);
    assert_eq!(renamed, form("gpt-4o \"x\"", "true").as_bytes());
    let mut not_utf8 = form("@", "true").into_bytes();
    let at = not_utf8.iter().position(|&b| b == b'@').unwrap();
    not_utf8[at] = 0xff;
    for (body, says) in [
        (
            form("m", "yes").into_bytes(),
            "`stream` is not true or false",
        ),
        (not_utf8, "`model` is not UTF-8"),
        (b"--x\r\n".to_vec(), "headers do not end"),
    ] {
        let refused = read(&body).err().unwrap();
        assert_eq!(refused.code, "invalid_form");
        assert!(refused.message.contains(says), "{}", refused.message);
    }
}

#[test]
fn a_body_in_one_piece_is_kept_and_pieces_are_joined_in_order() {
    let piece = Bytes::from_static(b"{\"model\":\"m\"}");
    let mut one = Joined::default();
    one.push(Bytes::new(), 13);
    one.push(piece.clone(), 13);
    let kept = one.into_bytes();
    assert_eq!(kept.as_ptr(), piece.as_ptr(), "copied");
    let mut many = Joined::default();
    for part in [&b"{\"mo"[..], b"", b"del\":", b"\"m\"}"] {
        many.push(Bytes::copy_from_slice(part), 0);
    }
    assert_eq!(many.len(), 13);
    assert_eq!(many.into_bytes(), piece);
}

#[test]
fn reads_model_and_stream_as_their_json_types() {
    let fields = parse_fields(br#"{"model":"gpt\u002d4o","stream":null}"#).unwrap();
    assert_eq!(fields.model.as_deref(), Some("gpt-4o"));
    assert_eq!(fields.stream, None);
    assert!(matches!(
        parse_fields(br#"{"model":"gpt-4o"}"#).unwrap().model,
        Some(Cow::Borrowed("gpt-4o"))
    ));
    assert_eq!(parse_fields(br#"{"model":null}"#).unwrap().model, None);
    for (body, says) in [
        (br#"{"model":4}"#.as_slice(), "`model` is not a string"),
        (br#"{"model":"\ud800"}"#, "cannot be decoded"),
        (br#"{"stream":"yes"}"#, "`stream` is not true or false"),
        (br#"{"model":"a","model":"b"}"#, "duplicate"),
    ] {
        let refused = parse_fields(body).unwrap_err();
        assert_eq!(refused.code, "invalid_json");
        assert!(refused.message.contains(says), "{}", refused.message);
    }
}

#[test]
fn refuses_deep_nesting_and_text_that_is_not_utf8() {
    let deep = format!(
        "{{\"model\":\"m\",\"x\":{}{}}}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    assert!(parse_fields(deep.as_bytes())
        .unwrap_err()
        .message
        .contains("recursion limit"));
    let ok = format!(
        "{{\"model\":\"m\",\"x\":\"[[[{{\\\"\",\"y\":{}{}}}",
        "[".repeat(120),
        "]".repeat(120)
    );
    assert_eq!(
        parse_fields(ok.as_bytes()).unwrap().model.as_deref(),
        Some("m")
    );
    let bad = b"{\"model\":\"m\",\"x\":\"\xff\"}";
    assert!(parse_fields(bad).unwrap_err().message.contains("not UTF-8"));
}
