//! OpenAI's image and audio answers. The shared fixtures hold no recording of them: the bodies
//! and events follow OpenAI's API reference and the types of the OpenAI Python SDK (3.57)
//! that parse them (`ImagesResponse`, `ImageGenCompletedEvent`, `Transcription`,
//! `TranscriptionTextDoneEvent`), and OpenAI's text-to-speech guide for `speech.audio.*`.

use super::*;

fn expected(input: u64, output: u64) -> Expected {
    Expected {
        tokens: tokens(input, output, 0, 0, 0),
        model: None,
        error: None,
    }
}

#[test]
fn image_answers_report_text_and_image_tokens_whole_or_at_the_end_of_a_stream() {
    let usage = r#""usage":{"input_tokens":50,"input_tokens_details":{"image_tokens":40,"text_tokens":10},"output_tokens":1056,"total_tokens":1106,"output_tokens_details":{"image_tokens":1056,"text_tokens":0}}"#;
    let body = format!(
        r#"{{"created":1713833628,"data":[{{"b64_json":"iVBORw0KGgo{}="}}],"background":"opaque","output_format":"png","quality":"medium","size":"1024x1024",{usage}}}"#,
        "A".repeat(300)
    );
    check_bytes(
        body.as_bytes(),
        Dialect::OpenAiMedia,
        Framing::Json,
        expected(50, 1056),
    );
    let image = "A".repeat(200);
    let stream = format!(
        "event: image_edit.partial_image\ndata: {{\"type\":\"image_edit.partial_image\",\"b64_json\":\"{image}\",\"partial_image_index\":0}}\n\n\
         event: image_edit.completed\ndata: {{\"type\":\"image_edit.completed\",\"b64_json\":\"{image}\",\"created_at\":1,\"size\":\"1024x1024\",\"quality\":\"low\",\"background\":\"opaque\",\"output_format\":\"png\",{usage}}}\n\n"
    );
    check_bytes(
        stream.as_bytes(),
        Dialect::OpenAiMedia,
        Framing::Sse,
        expected(50, 1056),
    );
    // DALL·E reports no tokens.
    let dalle =
        br#"{"created":1,"data":[{"url":"https://example.com/a.png","revised_prompt":"a cat"}]}"#;
    check_bytes(dalle, Dialect::OpenAiMedia, Framing::Json, expected_none());
}

fn expected_none() -> Expected {
    Expected {
        tokens: None,
        model: None,
        error: None,
    }
}

#[test]
fn transcriptions_report_tokens_and_whisper_reports_seconds_that_are_not_tokens() {
    let usage = r#"{"type":"tokens","input_tokens":14,"input_token_details":{"text_tokens":0,"audio_tokens":14},"output_tokens":45,"total_tokens":59}"#;
    let body = format!(r#"{{"text":"Imagine the wildest idea.","usage":{usage}}}"#);
    check_bytes(
        body.as_bytes(),
        Dialect::OpenAiMedia,
        Framing::Json,
        expected(14, 45),
    );
    let stream = format!(
        "data: {{\"type\":\"transcript.text.delta\",\"delta\":\"Imagine\",\"logprobs\":[]}}\n\n\
         data: {{\"type\":\"transcript.text.delta\",\"delta\":\" the wildest idea.\"}}\n\n\
         data: {{\"type\":\"transcript.text.done\",\"text\":\"Imagine the wildest idea.\",\"usage\":{usage}}}\n\n"
    );
    check_bytes(
        stream.as_bytes(),
        Dialect::OpenAiMedia,
        Framing::Sse,
        expected(14, 45),
    );
    let whisper = br#"{"text":"Imagine.","usage":{"type":"duration","seconds":3}}"#;
    let tap = run(Dialect::OpenAiMedia, Framing::Json, &[whisper]);
    assert_eq!((tap.final_tokens(), tap.usage().normalize()), (None, None));
    // `response_format: text` is the transcript alone.
    let text = run(Dialect::OpenAiMedia, Framing::Json, &[b"Imagine.\n"]);
    assert_eq!(text.usage(), Usage::default());
}

#[test]
fn speech_reports_tokens_only_when_streamed_as_events() {
    let stream = "data: {\"type\":\"speech.audio.delta\",\"audio\":\"SUQzBAAAAAAA\"}\n\n\
                  data: {\"type\":\"speech.audio.done\",\"usage\":{\"input_tokens\":14,\"output_tokens\":101,\"total_tokens\":115}}\n\n";
    check_bytes(
        stream.as_bytes(),
        Dialect::OpenAiMedia,
        Framing::Sse,
        expected(14, 101),
    );
    assert_eq!(Framing::from_content_type(b"audio/mpeg"), Framing::Opaque);
    assert_eq!(Framing::from_content_type(b"image/png"), Framing::Opaque);
    let audio = run(
        Dialect::OpenAiMedia,
        Framing::Opaque,
        &[b"ID3\x04\x00{\"usage\":1}"],
    );
    assert!(audio.usage().is_empty() && !audio.oversized() && !audio.usage_complete());
    let error = b"data: {\"type\":\"error\",\"error\":{\"type\":\"invalid_request_error\",\"code\":\"moderation_blocked\"}}\n\n";
    let tap = run(Dialect::OpenAiMedia, Framing::Sse, &[error]);
    assert_eq!(tap.provider_error(), Some("invalid_request_error"));
}
