//! The tap's own guarantees: bounded buffering, and results that do not
//! depend on how the body was chunked, whatever the bytes.

use super::UsageTap;
use crate::usage::tests::{fixture, XorShift};
use crate::usage::{Dialect, Framing};

#[test]
fn a_body_past_the_limit_is_read_by_its_small_members_in_bounded_memory() {
    let body = fixture("openai_chat_nonstream_usage_reasoning.json");
    let whole = {
        let mut tap = UsageTap::new(Dialect::OpenAiChat, Framing::Json, 1 << 20);
        tap.feed(&body);
        tap.finish();
        tap
    };
    // Past a limit of half the body, its members up to that size are kept: all of them here.
    let half = body.len() / 2;
    let mut tap = UsageTap::new(Dialect::OpenAiChat, Framing::Json, half);
    tap.feed(&body[..10]);
    tap.feed(&body[10..]);
    tap.finish();
    assert!(!tap.oversized());
    assert!(whole.final_tokens().is_some());
    assert_eq!(tap.final_tokens(), whole.final_tokens());
    assert_eq!(tap.response_model(), whole.response_model());
    // Past the limit, a body that is not one whole object is not read, and says so.
    let mut cut = UsageTap::new(Dialect::OpenAiChat, Framing::Json, half);
    cut.feed(&body[..body.len() - 2]);
    cut.finish();
    assert!(cut.oversized() && cut.usage().is_empty());
}

#[test]
fn mangled_responses_never_panic_and_read_the_same_however_chunked() {
    let files = [
        ("openai_chat_stream_usage.sse", Dialect::OpenAiChat),
        ("openai_responses_stream_text.sse", Dialect::OpenAiResponses),
        (
            "anthropic_messages_stream_basic.sse",
            Dialect::AnthropicMessages,
        ),
        (
            "openai_chat_nonstream_usage_reasoning.json",
            Dialect::OpenAiChat,
        ),
        ("openai_embeddings_usage.json", Dialect::OpenAiEmbeddings),
    ];
    let nasty = b"\r\n\"\\{}[]:, \xEF\xBB\xBF0null";
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    for (file, dialect) in files {
        let original = fixture(file);
        for _ in 0..300 {
            let mut body = original.clone();
            for _ in 0..1 + rng.below(8) {
                let at = rng.below(body.len());
                match rng.below(3) {
                    0 => body[at] = nasty[rng.below(nasty.len())],
                    1 => body.truncate(at),
                    _ => body.insert(at, nasty[rng.below(nasty.len())]),
                }
                if body.is_empty() {
                    break;
                }
            }
            for framing in [Framing::Sse, Framing::Json, Framing::EventStream] {
                let mut tap = UsageTap::new(dialect, framing, 512);
                for chunk in body.chunks(1 + rng.below(64)) {
                    tap.feed(chunk);
                }
                tap.finish();
                let mut whole = UsageTap::new(dialect, framing, 512);
                whole.feed(&body);
                whole.finish();
                // Chunking never changes what is learned.
                assert_eq!(tap.usage(), whole.usage());
                assert_eq!(tap.response_model(), whole.response_model());
                assert_eq!(tap.provider_error(), whole.provider_error());
                assert_eq!(tap.content_bytes(), whole.content_bytes());
                assert_eq!(tap.oversized(), whole.oversized());
            }
        }
    }
}

#[test]
fn per_request_state_can_live_in_a_pingora_ctx() {
    fn send<T: Send + 'static>() {}
    send::<UsageTap>();
    send::<crate::usage::openai_chat::IncludeUsageStripper>();
}
