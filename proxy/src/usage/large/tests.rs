use serde_json::{json, Map, Value};

use super::*;

/// What [`LargeObject`] keeps of `body` fed in pieces of `step` bytes, parsed.
fn kept(body: &[u8], step: usize, limit: usize) -> Option<Value> {
    let mut object = LargeObject::new(limit);
    for piece in body.chunks(step) {
        object.feed(piece);
    }
    object
        .finish()
        .map(|kept| serde_json::from_slice(kept).expect("the kept object parses"))
}

/// `body`'s members whose text (`"name":value` as serde writes it) fits in `limit`.
fn small_members(body: &Value, limit: usize) -> Value {
    let members = body.as_object().expect("an object").iter();
    let small = members.filter(|(name, value)| format!("{}:{}", json!(name), value).len() <= limit);
    Value::Object(
        small
            .map(|(n, v)| (n.clone(), v.clone()))
            .collect::<Map<_, _>>(),
    )
}

#[test]
fn an_image_body_keeps_its_usage_and_drops_its_pictures_in_any_pieces() {
    let usage = json!({"input_tokens": 50, "output_tokens": 6240, "total_tokens": 6290,
        "input_tokens_details": {"text_tokens": 50, "image_tokens": 0}});
    let picture = "iVBORw0KGgo".repeat(300_000);
    let body = json!({"created": 1, "data": [{"b64_json": picture}, {"b64_json": picture}],
        "size": "1024x1536", "usage": usage});
    let text = serde_json::to_vec(&body).unwrap();
    let expected = json!({"created": 1, "size": "1024x1536", "usage": usage});
    for step in [1 << 16, 4096, 1000, 7] {
        assert_eq!(
            kept(&text, step, 65_536),
            Some(expected.clone()),
            "pieces of {step}"
        );
    }
}

#[test]
fn strings_escapes_and_nesting_are_followed_across_every_split() {
    let body = br#" {"a" : "}{][,\"\\", "b":[1,{"c":"]"}], "big":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"", "usage":{"n":[1,2]} ,"z":null} "#;
    let whole: Value = serde_json::from_slice(body).unwrap();
    // Each limit falls between members' sizes (whitespace as sent counts; `small_members` measures
    // them without).
    for limit in [12, 30, 4096] {
        let expected = small_members(&whole, limit);
        for at in 0..=body.len() {
            let mut object = LargeObject::new(limit);
            object.feed(&body[..at]);
            object.feed(&body[at..]);
            let got = object
                .finish()
                .map(|k| serde_json::from_slice::<Value>(k).unwrap());
            assert_eq!(
                got.as_ref(),
                Some(&expected),
                "limit {limit}, split at {at}"
            );
        }
    }
}

#[test]
fn only_a_whole_object_gives_anything() {
    for body in [
        &b"[1,2]"[..],
        b"  {\"a\":1",
        b"{\"a\":[1}",
        b"\"text\"",
        b"plain text",
    ] {
        assert_eq!(
            kept(body, 3, 1024),
            None,
            "{}",
            String::from_utf8_lossy(body)
        );
    }
    let deep = format!("{{\"a\":{}{}}}", "[".repeat(200), "]".repeat(200));
    assert_eq!(kept(deep.as_bytes(), 64, 1 << 20), None);
    assert_eq!(kept(b"{}", 1, 8), Some(json!({})));
}
