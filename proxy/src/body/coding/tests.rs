use std::io::Write;

use super::*;

const BODY: &[u8] = br#"{"model":"gpt-4o","stream":true,"input":"tell me more"}"#;

fn encoded(coding: Coding, body: &[u8]) -> Vec<u8> {
    match coding {
        Coding::Gzip => {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            encoder.write_all(body).unwrap();
            encoder.finish().unwrap()
        }
        Coding::Deflate => {
            let mut encoder =
                flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
            encoder.write_all(body).unwrap();
            encoder.finish().unwrap()
        }
        Coding::Brotli => {
            let mut out = Vec::new();
            let params = brotli::enc::BrotliEncoderParams {
                quality: 5,
                ..Default::default()
            };
            brotli::BrotliCompress(&mut &body[..], &mut out, &params).unwrap();
            out
        }
        Coding::Zstd => zstd::stream::encode_all(body, 3).unwrap(),
    }
}

fn headers(values: &[&str]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for value in values {
        headers.append(CONTENT_ENCODING, value.parse().unwrap());
    }
    headers
}

const ALL: [Coding; 4] = [Coding::Gzip, Coding::Deflate, Coding::Brotli, Coding::Zstd];

#[test]
fn reads_the_coding_from_content_encoding() {
    for (values, expected) in [
        (&[][..], None),
        (&["identity"], None),
        (&[" GZip "], Some(Coding::Gzip)),
        (&["x-gzip"], Some(Coding::Gzip)),
        (&["deflate"], Some(Coding::Deflate)),
        (&["br"], Some(Coding::Brotli)),
        (&["zstd"], Some(Coding::Zstd)),
    ] {
        assert_eq!(coding(&headers(values)).unwrap(), expected, "{values:?}");
    }
    for (values, says) in [
        (&["gzip, zstd"][..], "more than one"),
        (&["gzip", "zstd"], "more than one"),
        (&["compress"], "`compress`"),
    ] {
        let refused = coding(&headers(values)).unwrap_err();
        assert_eq!(
            (refused.kind, refused.code),
            (ErrorKind::UnsupportedEncoding, "unsupported_encoding")
        );
        assert!(refused.message.contains(says), "{}", refused.message);
    }
}

#[tokio::test]
async fn each_coding_decodes_to_the_body_sent() {
    for coding in ALL {
        let sent = Bytes::from(encoded(coding, BODY));
        let decoded = decode(coding, sent, 1 << 20).await.unwrap();
        assert_eq!(&decoded[..], BODY, "{coding:?}");
    }
    let mut two_members = encoded(Coding::Gzip, b"{\"model\":");
    two_members.extend(encoded(Coding::Gzip, b"\"m\"}"));
    let decoded = decode(Coding::Gzip, two_members.into(), 100).await.unwrap();
    assert_eq!(&decoded[..], b"{\"model\":\"m\"}");
}

#[tokio::test]
async fn a_large_body_is_decoded_off_the_worker_thread_the_same() {
    // Text that compresses little, so the body as sent is over DECODE_HERE_UP_TO.
    let mut text = String::from("{\"input\":\"");
    let mut state = 0x2545_f491_u32;
    while text.len() < 600 * 1024 {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        text.push(char::from(b'a' + (state % 26) as u8));
    }
    text.push_str("\"}");
    for coding in ALL {
        let sent = encoded(coding, text.as_bytes());
        assert!(sent.len() > DECODE_HERE_UP_TO, "{coding:?}: {}", sent.len());
        let decoded = decode(coding, sent.into(), 1 << 20).await.unwrap();
        assert_eq!(decoded, text.as_bytes(), "{coding:?}");
    }
}

#[tokio::test]
async fn a_body_that_inflates_past_the_limit_is_too_large() {
    let zeros = vec![b'0'; 100_000];
    for coding in ALL {
        let sent = Bytes::from(encoded(coding, &zeros));
        assert!(sent.len() < 1_000, "{coding:?}: {}", sent.len());
        let refused = decode(coding, sent.clone(), 99_999).await.unwrap_err();
        assert_eq!(refused.kind, ErrorKind::TooLarge, "{coding:?}");
        assert!(
            refused.message.contains(coding.name()),
            "{}",
            refused.message
        );
        assert_eq!(decode(coding, sent, 100_000).await.unwrap().len(), 100_000);
    }
}

#[tokio::test]
async fn a_body_its_coding_cannot_decode_is_refused() {
    for coding in ALL {
        let whole = encoded(coding, BODY);
        let mut trailing = whole.clone();
        trailing.extend_from_slice(b"garbage");
        for (what, sent) in [
            ("plain JSON", BODY.to_vec()),
            ("cut short", whole[..whole.len() - 4].to_vec()),
            ("followed by other bytes", trailing),
        ] {
            match decode(coding, sent.into(), 1 << 20).await {
                Err(refused) => {
                    assert_eq!(refused.code, "invalid_encoding", "{coding:?} {what}");
                    assert!(
                        refused.message.contains(coding.name()),
                        "{}",
                        refused.message
                    );
                }
                Ok(decoded) => panic!("{coding:?} {what}: decoded to {decoded:?}"),
            }
        }
    }
}

#[tokio::test]
async fn mutated_bodies_are_decoded_or_refused_never_past_the_limit() {
    let mut state = 0x9e37_79b9_u32;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        state as usize
    };
    let body = BODY.repeat(20);
    for coding in ALL {
        let whole = encoded(coding, &body);
        for _ in 0..2_000 {
            let mut sent = whole.clone();
            for _ in 0..1 + next() % 4 {
                let at = next() % sent.len();
                match next() % 3 {
                    0 => sent[at] ^= 1 << (next() % 8),
                    1 => sent.truncate(at.max(1)),
                    _ => sent.insert(at, next() as u8),
                }
            }
            let limit = 1 + next() % (2 * body.len());
            match decode(coding, sent.into(), limit as u64).await {
                Ok(decoded) => assert!(decoded.len() <= limit, "{coding:?}"),
                Err(refused) => assert!(
                    matches!(refused.code, "invalid_encoding" | "request_too_large"),
                    "{coding:?}: {refused:?}"
                ),
            }
        }
    }
}

#[tokio::test]
async fn a_zstd_body_asking_for_a_window_past_16_mib_is_refused() {
    let framed = |window_log| {
        let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        encoder.window_log(window_log).unwrap();
        encoder.write_all(BODY).unwrap();
        Bytes::from(encoder.finish().unwrap())
    };
    let decoded = decode(Coding::Zstd, framed(24), 1 << 20).await.unwrap();
    assert_eq!(&decoded[..], BODY);
    let refused = decode(Coding::Zstd, framed(25), 1 << 20).await.unwrap_err();
    assert_eq!(refused.code, "invalid_encoding", "{refused:?}");
}
