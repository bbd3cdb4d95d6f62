//! OpenAI Realtime sessions: WebSocket messages, the figures summed over responses.

use super::run;
use crate::usage::{Dialect, Framing, Parts, Usage};

/// An unmasked text frame holding `message`.
fn text_frame(message: &str) -> Vec<u8> {
    let mut frame = vec![0x81];
    match message.len() {
        len @ 0..=125 => frame.push(len as u8),
        len => {
            frame.push(126);
            frame.extend_from_slice(&(len as u16).to_be_bytes());
        }
    }
    frame.extend_from_slice(message.as_bytes());
    frame
}

fn done(
    input: u64,
    cached: u64,
    audio_in: u64,
    cached_audio: u64,
    output: u64,
    audio_out: u64,
) -> String {
    format!(
        r#"{{"type":"response.done","event_id":"e","response":{{"object":"realtime.response","id":"r","status":"completed","output":[],"usage":{{"total_tokens":{},"input_tokens":{input},"output_tokens":{output},"input_token_details":{{"text_tokens":{},"audio_tokens":{audio_in},"image_tokens":0,"cached_tokens":{cached},"cached_tokens_details":{{"text_tokens":{},"audio_tokens":{cached_audio},"image_tokens":0}}}},"output_token_details":{{"text_tokens":{},"audio_tokens":{audio_out}}}}}}}}}"#,
        input + output,
        input - audio_in,
        cached - cached_audio,
        output - audio_out
    )
}

#[test]
fn a_session_is_the_sum_of_its_responses_with_its_sound_apart() {
    let sound = format!(
        r#"{{"type":"response.output_audio.delta","delta":"{}"}}"#,
        "A".repeat(4000)
    );
    let stream = [
        text_frame(r#"{"type":"session.created","event_id":"e","session":{"type":"realtime","model":"gpt-realtime"}}"#),
        text_frame(r#"{"type":"response.created","event_id":"e","response":{"id":"r","status":"in_progress"}}"#),
        text_frame(&sound),
        text_frame(&done(1_200, 0, 0, 0, 60, 50)),
        text_frame(&sound),
        text_frame(&done(1_900, 1_260, 640, 0, 60, 50)),
        text_frame(r#"{"type":"error","event_id":"e","error":{"type":"invalid_request_error","code":"unknown_event"}}"#),
    ]
    .concat();
    for size in [1, 97, stream.len()] {
        let chunks: Vec<&[u8]> = stream.chunks(size).collect();
        let tap = run(Dialect::OpenAiRealtime, Framing::WebSocket, &chunks);
        let want = Usage {
            input: Some(3_100),
            output: Some(120),
            cache_read: Some(1_260),
            parts: Parts {
                audio_input: Some(640),
                image_input: Some(0),
                audio_output: Some(100),
                ..Parts::default()
            },
            ..Usage::default()
        };
        assert_eq!(tap.usage(), want, "pieces of {size}");
        assert!(tap.usage_complete() && tap.final_tokens().is_some());
        assert_eq!(tap.response_model(), Some("gpt-realtime"));
        assert_eq!(tap.provider_error(), Some("invalid_request_error"));
    }
}

#[test]
fn a_session_without_a_finished_response_has_no_figures() {
    let stream = text_frame(r#"{"type":"response.created","event_id":"e","response":{"id":"r"}}"#);
    let tap = run(Dialect::OpenAiRealtime, Framing::WebSocket, &[&stream]);
    assert!(tap.final_tokens().is_none() && tap.usage().is_empty());
}
