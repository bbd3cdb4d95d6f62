use std::borrow::Cow;

use serde::Deserialize;

use super::*;

/// What tailmeter read before this scan: serde, after checks of UTF-8 and of nesting.
#[derive(Debug, Deserialize, PartialEq)]
struct SerdeFields<'a> {
    #[serde(borrow, default)]
    model: Option<Cow<'a, str>>,
    #[serde(default)]
    stream: Option<bool>,
}

/// The nesting of `[` and `{` outside strings, read a byte at a time.
fn depth_byte_by_byte(body: &[u8]) -> usize {
    let (mut depth, mut deepest, mut in_string, mut escaped) = (0, 0, false, false);
    for &byte in body {
        match byte {
            _ if in_string && escaped => escaped = false,
            b'\\' if in_string => escaped = true,
            b'"' => in_string = !in_string,
            _ if in_string => {}
            b'[' | b'{' => {
                depth += 1;
                deepest = usize::max(deepest, depth);
            }
            b']' | b'}' => depth = usize::saturating_sub(depth, 1),
            _ => {}
        }
    }
    deepest
}

/// The old reading of an object body: `None` when it refused it.
fn through_serde(body: &[u8]) -> Option<SerdeFields<'_>> {
    std::str::from_utf8(body).ok()?;
    if depth_byte_by_byte(body) > MAX_DEPTH {
        return None;
    }
    serde_json::from_slice(body).ok()
}

/// The reading through this scan.
fn through_scan(body: &[u8]) -> Option<SerdeFields<'_>> {
    let fields = crate::body::parse_fields(body).ok()?;
    Some(SerdeFields {
        model: fields.model,
        stream: fields.stream,
    })
}

/// The scan of the whole body at once.
fn top_level(body: &[u8]) -> Result<TopLevel, Malformed> {
    TopLevelScan::default().finish(body)
}

/// The scan fed the body as it would arrive, cut at `cuts` (in any order).
fn in_pieces(body: &[u8], cuts: &[usize]) -> Result<TopLevel, Malformed> {
    let mut cuts = cuts.to_vec();
    cuts.sort_unstable();
    let mut scan = TopLevelScan::default();
    for cut in cuts {
        scan.advance(&body[..cut]);
    }
    scan.finish(body)
}

/// A small deterministic generator (xorshift), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }

    fn pick<'a>(&mut self, from: &[&'a [u8]]) -> &'a [u8] {
        from[self.below(from.len())]
    }
}

const NAMES: &[&[u8]] = &[
    br#""model""#,
    br#""stream""#,
    br#""mod\u0065l""#,
    br#""messages""#,
    br#""x""#,
    br#""""#,
    br#""\ud800""#,
    "\"na\u{ef}ve \u{1F98A}\"".as_bytes(),
];
const SCALARS: &[&[u8]] = &[
    br#""gpt-4o""#,
    br#""a \"quoted\" \\ word \/ \b\f\n\r\t \u00e9 \uD83D\uDE00""#,
    "\"caf\u{e9} \u{1F600}\"".as_bytes(),
    br#""\ud800""#,
    b"true",
    b"false",
    b"null",
    b"0",
    b"-0",
    b"12",
    b"-3.25",
    b"1e9",
    b"6.02E+23",
    b"1.5e-7",
];
const WS: &[&[u8]] = &[b"", b"", b" ", b"\n\t", b"\r\n "];

/// `open`, up to three items written by `item` between commas (each after some blank), `close`.
fn container(
    rng: &mut Rng,
    out: &mut Vec<u8>,
    (open, close): (u8, u8),
    mut item: impl FnMut(&mut Rng, &mut Vec<u8>),
) {
    out.push(open);
    for i in 0..rng.below(4) {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(rng.pick(WS));
        item(rng, out);
    }
    out.push(close);
}

/// A random object member whose value is at most `depth` containers deep.
fn member(rng: &mut Rng, depth: usize, out: &mut Vec<u8>) {
    out.extend_from_slice(rng.pick(NAMES));
    out.extend_from_slice(rng.pick(WS));
    out.push(b':');
    out.extend_from_slice(rng.pick(WS));
    value(rng, depth, out);
}

/// A random well-formed JSON value, at most `depth` containers deep.
fn value(rng: &mut Rng, depth: usize, out: &mut Vec<u8>) {
    match if depth == 0 { 2 } else { rng.below(5) } {
        0 => container(rng, out, (b'{', b'}'), |rng, out| {
            member(rng, depth - 1, out)
        }),
        1 => container(rng, out, (b'[', b']'), |rng, out| {
            value(rng, depth - 1, out)
        }),
        _ => out.extend_from_slice(rng.pick(SCALARS)),
    }
}

/// A random object body of the shape requests have, with the members tailmeter reads, blanks
/// around it.
fn body(rng: &mut Rng) -> Vec<u8> {
    let mut out = rng.pick(WS).to_vec();
    container(rng, &mut out, (b'{', b'}'), |rng, out| member(rng, 3, out));
    out.extend_from_slice(rng.pick(WS));
    out
}

/// Bytes a mutation puts in: every structural character, escapes, digits, controls, non-UTF-8.
const MUTATIONS: &[u8] = b"{}[]\",:\\/ \t\n0123456789-+.eEtfnulrasxu\x00\x1f\x7f\xc3\xff";

#[test]
fn accepts_and_reads_what_serde_did() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut accepted, mut refused) = (0, 0);
    for _ in 0..60_000 {
        let mut bytes = body(&mut rng);
        for _ in 0..rng.below(3) {
            let at = rng.below(bytes.len() + 1);
            let with = MUTATIONS[rng.below(MUTATIONS.len())];
            match rng.below(3) {
                0 => bytes.insert(at, with),
                1 if at < bytes.len() => drop(bytes.remove(at)),
                _ if at < bytes.len() => bytes[at] = with,
                _ => {}
            }
        }
        // serde reads a struct from an array too; the scan (rightly) refuses anything else.
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
            continue;
        }
        let expected = through_serde(&bytes);
        assert_eq!(
            through_scan(&bytes),
            expected,
            "{}",
            String::from_utf8_lossy(&bytes)
        );
        let cuts: Vec<usize> = (0..rng.below(4))
            .map(|_| rng.below(bytes.len() + 1))
            .collect();
        assert_eq!(
            in_pieces(&bytes, &cuts),
            top_level(&bytes),
            "{} cut at {cuts:?}",
            String::from_utf8_lossy(&bytes)
        );
        if expected.is_some() {
            accepted += 1;
        } else {
            refused += 1;
        }
    }
    // Both sides of the comparison were exercised.
    assert!(accepted > 5_000 && refused > 5_000, "{accepted} {refused}");
}

#[test]
fn finds_the_values_where_they_are() {
    let body = br#" {"messages":[{"model":"inner"}], "model" : "gpt-4o" ,"stream":true} "#;
    let top = top_level(body).unwrap();
    assert_eq!(&body[top.model.unwrap()], br#""gpt-4o""#);
    assert_eq!(&body[top.stream.unwrap()], b"true");
    let nested = br#"{"model":{"a":[1,2]},"stream":[]}"#;
    let top = top_level(nested).unwrap();
    assert_eq!(&nested[top.model.unwrap()], br#"{"a":[1,2]}"#);
    assert_eq!(&nested[top.stream.unwrap()], b"[]");
    assert_eq!(top_level(b"{}").unwrap(), TopLevel::default());
    let options = br#"{"stream_options":{},"x":{"stream_options":1},"stream\u005foptions":null}"#;
    assert_eq!(top_level(options).unwrap().stream_options, 2);
    // Only a plainly spelled `stream_options` is located; an escaped one is counted alone.
    assert_eq!(
        &options[top_level(options).unwrap().stream_options_plain.unwrap()],
        b"{}"
    );
    let escaped = br#"{"stream\u005foptions":{}}"#;
    let top = top_level(escaped).unwrap();
    assert_eq!((top.stream_options, top.stream_options_plain), (1, None));
}

#[test]
fn refuses_a_member_tailmeter_reads_given_twice_in_any_spelling() {
    for body in [
        br#"{"model":"a","model":"b"}"#.as_slice(),
        br#"{"model":"a","mod\u0065l":"b"}"#,
        br#"{"stream":false,"x":1,"stream":true}"#,
    ] {
        let refused = top_level(body).unwrap_err();
        assert!(refused.why.contains("duplicate"), "{refused}");
    }
    assert!(top_level(br#"{"x":1,"x":2}"#).is_ok());
}

#[test]
fn nesting_is_limited_outside_strings_only() {
    let nested = |depth: usize| {
        format!(
            "{{\"model\":\"m\",\"x\":{}{}}}",
            "[".repeat(depth - 1),
            "]".repeat(depth - 1)
        )
    };
    assert!(top_level(nested(MAX_DEPTH).as_bytes()).is_ok());
    let refused = top_level(nested(MAX_DEPTH + 1).as_bytes()).unwrap_err();
    assert!(refused.to_string().contains("recursion limit"), "{refused}");
    let in_text = format!("{{\"x\":\"{}\"}}", "[".repeat(10_000));
    assert!(top_level(in_text.as_bytes()).is_ok());
}

#[test]
fn refuses_what_json_does_not_allow() {
    for body in [
        b"".as_slice(),
        b"[]",
        b"\"model\"",
        b"{",
        b"{\"a\":1,}",
        b"{\"a\":[1,]}",
        b"{\"a\":01}",
        b"{\"a\":1.}",
        b"{\"a\":-}",
        b"{\"a\":1e}",
        b"{\"a\":tru}",
        b"{\"a\":\"\x01\"}",
        b"{\"a\":\"\\x\"}",
        b"{\"a\":\"\\u12g4\"}",
        b"{\"a\":1} x",
        b"{\"a\" 1}",
        b"{1:1}",
    ] {
        assert!(
            top_level(body).is_err(),
            "{}",
            String::from_utf8_lossy(body)
        );
    }
}

#[test]
fn a_body_fed_as_it_arrives_reads_as_the_whole_body_cut_at_every_byte() {
    let bodies: &[&[u8]] = &[
        br#" {"model" : "gpt-4o", "stream":true,"n":-12.5e+3,"x":[true,false,null,{}],"stream_options":{"include_usage":true}} "#,
        r#"{"messages":[{"content":"é😀 \" \u00e9 \\ 委"}],"model":"m"}"#.as_bytes(),
        br#"{"mod\u0065l":"m","a":"\ud83d\ude00"}"#,
        br#"{"model":"a","model":"b"}"#,
        b"{\"a\":\"\xe5\x86\n\"}",
        b"{\"a\":1} x",
        b"{\"a\":tru}",
        b"{\"a\":\"\\u12g4\"}",
        b"{\"a\":01}",
        b"{\"a\":\"open",
        b"  ",
    ];
    for body in bodies {
        let whole = top_level(body);
        for cut in 0..=body.len() {
            assert_eq!(
                in_pieces(body, &[cut]),
                whole,
                "{} cut at {cut}",
                String::from_utf8_lossy(body)
            );
        }
        let every: Vec<usize> = (0..=body.len()).collect();
        assert_eq!(
            in_pieces(body, &every),
            whole,
            "{}",
            String::from_utf8_lossy(body)
        );
    }
}

#[test]
fn a_long_string_is_checked_once_as_it_arrives() {
    let text = "a long prompt, é😀, ".repeat(20_000);
    let body = format!(r#"{{"messages":[{{"content":"{text}"}}],"model":"m"}}"#).into_bytes();
    let mut scan = TopLevelScan::default();
    let mut checked_up_to = 0;
    for cut in (64 * 1024..body.len()).step_by(64 * 1024) {
        scan.advance(&body[..cut]);
        // The text so far is checked, up to a character cut off at the end at most.
        let (_, checked) = scan.state.unfinished.expect("inside the string");
        assert!(
            checked > checked_up_to && cut - checked < 4,
            "{cut} {checked}"
        );
        checked_up_to = checked;
    }
    assert!(!scan.deferred);
    // Checked once: text already checked is not looked at again (here it changed under the
    // scan, which a body being read never does).
    let mut changed = body.clone();
    changed[100] = 0x01;
    assert_eq!(
        &body[scan.finish(&changed).unwrap().model.unwrap()],
        br#""m""#
    );
}

#[test]
fn a_step_that_stays_unfinished_for_long_is_left_to_the_end() {
    let digits = "7".repeat(300 * 1024);
    let body = format!(r#"{{"n":{digits},"model":"m"}}"#).into_bytes();
    let mut scan = TopLevelScan::default();
    for cut in (64 * 1024..body.len()).step_by(64 * 1024) {
        scan.advance(&body[..cut]);
    }
    assert!(scan.deferred);
    assert_eq!(&body[scan.finish(&body).unwrap().model.unwrap()], br#""m""#);
    // A fault found while the body arrived is the one reported.
    let mut scan = TopLevelScan::default();
    scan.advance(b"{\"a\":\"\x01");
    assert_eq!(
        scan.finish(b"{\"a\":\"\x01\"}").unwrap_err(),
        Malformed {
            why: "a control character in a string",
            at: 6
        }
    );
}

#[test]
fn previous_response_id_is_read_once_in_any_spelling() {
    let body = br#"{"model":"gpt-5","input":[{"previous_response_id":"inner"}],"previous\u005fresponse_id":"resp_1"}"#;
    let fields = crate::body::parse_fields(body).unwrap();
    assert_eq!(fields.previous_response_id.as_deref(), Some("resp_1"));
    let twice =
        br#"{"previous_response_id":"resp_mine","model":"m","previous_response_id":"resp_yours"}"#;
    assert!(
        top_level(twice).is_err(),
        "which one the provider takes is not tailmeter's to guess"
    );
    assert!(crate::body::parse_fields(br#"{"previous_response_id":7}"#).is_err());
    let none = crate::body::parse_fields(br#"{"previous_response_id":null}"#).unwrap();
    assert_eq!(none.previous_response_id, None);
}

#[test]
fn conversation_is_read_once_as_an_id_or_an_object_with_one() {
    let named = |body: &[u8]| {
        crate::body::parse_fields(body)
            .map(|f| f.conversation.map(|c| c.into_owned()))
            .map_err(|e| e.message)
    };
    let as_id = br#"{"model":"m","input":[{"conversation":"inner"}],"conversation":"conv_1"}"#;
    assert_eq!(named(as_id), Ok(Some("conv_1".to_owned())));
    let as_object = br#"{"model":"m","conversation":{"metadata":{"id":"x"},"id":"conv_\u0032"}}"#;
    assert_eq!(named(as_object), Ok(Some("conv_2".to_owned())));
    assert_eq!(named(br#"{"conversation":null}"#), Ok(None));
    for bad in [
        &br#"{"conversation":7}"#[..],
        br#"{"conversation":{"name":"conv_1"}}"#,
        br#"{"conversation":{"id":7}}"#,
    ] {
        assert!(named(bad).is_err(), "{}", String::from_utf8_lossy(bad));
    }
    let twice = br#"{"conversation":"conv_mine","model":"m","conv\u0065rsation":"conv_yours"}"#;
    assert!(top_level(twice).is_err());
}
