//! OpenAI's image and audio endpoints, synthesized in OpenAI's shapes with figures of the
//! simulator's own making (deterministic, from the request):
//! - images (generations: JSON; edits and variations: a form): `n` images as base64 (300 bytes
//!   of picture per output token, so a high-quality answer is megabytes) or, DALL·E's default, a
//!   URL. The GPT image models report `usage`: the prompt's text tokens, 194 image tokens per
//!   input image, and output tokens by size and quality as OpenAI's pricing counts them; DALL·E
//!   reports none. `stream` sends `partial_images` partial images, then the completed event with
//!   the usage.
//! - speech (JSON): the audio bytes, no usage; `stream_format: "sse"` (not for `tts-1`) sends
//!   them as `speech.audio.delta` events and the usage in `speech.audio.done`.
//! - transcriptions (a form with the audio `file`): the text, with usage in tokens (10 audio
//!   tokens per 32,000 bytes of sound, the prompt's text tokens) or, for `whisper-1`, in
//!   seconds; `stream` (ignored by whisper) as `transcript.text.delta` events and the usage in
//!   `transcript.text.done`; `response_format: "text"` the text alone. Translations:
//!   `whisper-1`'s text, no usage; as `verbose_json` with the audio's `duration` in seconds.

use std::io::Write;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use flate2::write::ZlibEncoder;
use flate2::Compression;
use serde_json::{json, Value};

use super::answer::pieces;
use super::prompt::tokens_of_text;
use super::{model_of, Synth, Tokens};
use crate::deliver::{Kind, Reply};
use crate::routes::Media;

/// Bytes of picture per image output token.
const IMAGE_BYTES_PER_TOKEN: usize = 300;
/// Image tokens an input image (an edit's) counts.
const INPUT_IMAGE_TOKENS: u64 = 194;
/// Bytes of sound per second of a transcribed file (16 kHz, 16-bit mono WAV).
const AUDIO_BYTES_PER_SECOND: u64 = 32_000;
/// Audio tokens per second of sound transcribed.
const AUDIO_TOKENS_PER_SECOND: u64 = 10;
/// Audio output tokens per input text token of speech.
const SPEECH_TOKENS_PER_TEXT_TOKEN: u64 = 12;
/// Bytes of audio per speech output token.
const SPEECH_BYTES_PER_TOKEN: usize = 50;

/// Answers an image or audio request.
pub fn answer(synth: &Synth, endpoint: Media, request: &Value) -> Result<Reply, String> {
    match endpoint {
        Media::ImageGenerations => images(synth, request, "image_generation", 0),
        Media::ImageEdits => {
            let images = request.get("image").ok_or("`image` is required")?;
            let count = images.as_array().map_or(1, Vec::len) as u64;
            images_edited(synth, request, count)
        }
        Media::ImageVariations => {
            request.get("image").ok_or("`image` is required")?;
            images_edited(synth, request, 1)
        }
        Media::Speech => speech(request),
        Media::Transcriptions => transcription(request),
        Media::Translations => translation(request),
    }
}

/// An edit or a variation: images made from `inputs` pictures.
fn images_edited(synth: &Synth, request: &Value, inputs: u64) -> Result<Reply, String> {
    images(synth, request, "image_edit", inputs * INPUT_IMAGE_TOKENS)
}

/// Generated images; `event` names the stream's events, `input_image_tokens` what the input
/// pictures count.
fn images(
    synth: &Synth,
    request: &Value,
    event: &str,
    input_image_tokens: u64,
) -> Result<Reply, String> {
    let model = model_of(request)?;
    let prompt = request.get("prompt").and_then(Value::as_str).unwrap_or("");
    let n = number(request, "n")?.unwrap_or(1);
    if !(1..=10).contains(&n) {
        return Err("`n` must be 1 to 10".to_owned());
    }
    let size = request
        .get("size")
        .and_then(Value::as_str)
        .unwrap_or("auto");
    let quality = request
        .get("quality")
        .and_then(Value::as_str)
        .unwrap_or("auto");
    let per_image = image_tokens(size, quality)?;
    let dalle = model.starts_with("dall-e");
    let text_tokens = tokens_of_text(prompt);
    let tokens = Tokens {
        input: text_tokens + input_image_tokens,
        output: per_image * n,
        ..Tokens::default()
    };
    let usage = json!({"input_tokens": tokens.input, "output_tokens": tokens.output,
        "total_tokens": tokens.input + tokens.output,
        "input_tokens_details": {"text_tokens": text_tokens, "image_tokens": input_image_tokens}});
    let id = synth.id("img");
    let picture = |tokens: u64| picture(&id, tokens as usize * IMAGE_BYTES_PER_TOKEN);
    if flag(request, "stream")? && !dalle {
        let partials = number(request, "partial_images")?.unwrap_or(0).min(3);
        let mut out = String::new();
        for index in 0..partials {
            let partial = json!({"type": format!("{event}.partial_image"), "b64_json": picture(per_image / 4),
                "created_at": 1_700_000_000, "size": size, "quality": quality, "background": "opaque",
                "output_format": "png", "partial_image_index": index});
            out.push_str(&format!(
                "event: {event}.partial_image\ndata: {partial}\n\n"
            ));
        }
        let done = json!({"type": format!("{event}.completed"), "b64_json": picture(per_image),
            "created_at": 1_700_000_000, "size": size, "quality": quality, "background": "opaque",
            "output_format": "png", "usage": usage});
        out.push_str(&format!("event: {event}.completed\ndata: {done}\n\n"));
        return Ok(Reply::ok(Kind::Sse, out).with_usage(tokens));
    }
    let url_default = if dalle { "url" } else { "b64_json" };
    let format = request.get("response_format").and_then(Value::as_str);
    let data: Vec<Value> = (0..n)
        .map(|i| match format.unwrap_or(url_default) {
            "url" => json!({"url": format!("https://provider-sim.invalid/images/{id}-{i}.png")}),
            _ => json!({"b64_json": picture(per_image)}),
        })
        .collect();
    let mut body = json!({"created": 1_700_000_000, "data": data});
    if dalle {
        return Ok(Reply::ok(Kind::Json, body.to_string()));
    }
    body["usage"] = usage;
    body["size"] = json!(size);
    body["quality"] = json!(quality);
    Ok(Reply::ok(Kind::Json, body.to_string()).with_usage(tokens))
}

/// Output tokens of one image of `size` and `quality` (OpenAI's table for the GPT image models).
fn image_tokens(size: &str, quality: &str) -> Result<u64, String> {
    let square = match size {
        "auto" | "1024x1024" | "256x256" | "512x512" => true,
        "1024x1536" | "1536x1024" | "1792x1024" | "1024x1792" => false,
        other => return Err(format!("unsupported size {other:?}")),
    };
    let (square_tokens, oblong_tokens) = match quality {
        "low" => (272, 408),
        "auto" | "medium" | "standard" => (1056, 1584),
        "high" | "hd" => (4160, 6240),
        other => return Err(format!("unsupported quality {other:?}")),
    };
    Ok(if square { square_tokens } else { oblong_tokens })
}

/// A picture of about `len` bytes as base64: a valid grayscale PNG, 1,024 pixels wide, its pixels
/// the bytes of `id` over and over, stored without compression (image libraries decode it, as
/// Open WebUI does before it keeps a generated image).
fn picture(id: &str, len: usize) -> String {
    const WIDTH: usize = 1024;
    let height = len.div_ceil(WIDTH + 1).max(1);
    let mut pixels = id.bytes().cycle();
    let mut raw = Vec::with_capacity(height * (WIDTH + 1));
    for _ in 0..height {
        raw.push(0); // no filter
        raw.extend(pixels.by_ref().take(WIDTH));
    }
    let mut zlib = ZlibEncoder::new(Vec::new(), Compression::none());
    let compressed = zlib
        .write_all(&raw)
        .and_then(|()| zlib.finish())
        .unwrap_or_default();
    let mut header = Vec::with_capacity(13);
    header.extend_from_slice(&(WIDTH as u32).to_be_bytes());
    header.extend_from_slice(&(height as u32).to_be_bytes());
    header.extend_from_slice(&[8, 0, 0, 0, 0]); // 8-bit grayscale, no interlace
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    for (kind, data) in [
        (b"IHDR", &header),
        (b"IDAT", &compressed),
        (b"IEND", &Vec::new()),
    ] {
        png.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let start = png.len();
        png.extend_from_slice(kind);
        png.extend_from_slice(data);
        let crc = crc32fast::hash(&png[start..]);
        png.extend_from_slice(&crc.to_be_bytes());
    }
    STANDARD.encode(png)
}

/// Speech for the request's `input` text.
fn speech(request: &Value) -> Result<Reply, String> {
    let model = model_of(request)?;
    let input = request.get("input").and_then(Value::as_str);
    let input = input.ok_or("`input` is required")?;
    let instructions = request.get("instructions").and_then(Value::as_str);
    let text_tokens = tokens_of_text(input) + instructions.map_or(0, tokens_of_text);
    let tokens = Tokens {
        input: text_tokens,
        output: tokens_of_text(input) * SPEECH_TOKENS_PER_TEXT_TOKEN,
        ..Tokens::default()
    };
    let format = request.get("response_format").and_then(Value::as_str);
    let content_type = match format.unwrap_or("mp3") {
        "mp3" => "audio/mpeg",
        "opus" => "audio/ogg",
        "aac" => "audio/aac",
        "flac" => "audio/flac",
        "wav" => "audio/wav",
        "pcm" => "audio/pcm",
        other => return Err(format!("unsupported response_format {other:?}")),
    };
    let audio: Vec<u8> = input
        .bytes()
        .cycle()
        .take(tokens.output as usize * SPEECH_BYTES_PER_TOKEN)
        .collect();
    match request.get("stream_format").and_then(Value::as_str) {
        None | Some("audio") => Ok(Reply::ok(Kind::Other(content_type), audio)),
        Some("sse") if model.starts_with("tts-1") => {
            Err(format!("stream_format sse is not supported for {model}"))
        }
        Some("sse") => {
            let mut out = String::new();
            for piece in audio.chunks(4096) {
                let delta = json!({"type": "speech.audio.delta", "audio": STANDARD.encode(piece)});
                out.push_str(&format!("data: {delta}\n\n"));
            }
            let done = json!({"type": "speech.audio.done", "usage": {"input_tokens": tokens.input,
                "output_tokens": tokens.output, "total_tokens": tokens.input + tokens.output}});
            out.push_str(&format!("data: {done}\n\n"));
            Ok(Reply::ok(Kind::Sse, out).with_usage(tokens))
        }
        Some(other) => Err(format!("unsupported stream_format {other:?}")),
    }
}

/// The uploaded audio `file`: its name and its length in seconds.
fn audio_file(request: &Value) -> Result<(&str, u64), String> {
    let file = request.get("file").filter(|f| f.is_object());
    let file = file.ok_or("`file` is required (an uploaded file)")?;
    let name = file
        .get("filename")
        .and_then(Value::as_str)
        .unwrap_or("audio");
    let size = file.get("size").and_then(Value::as_u64).unwrap_or(0);
    Ok((name, size.div_ceil(AUDIO_BYTES_PER_SECOND).max(1)))
}

/// A transcription of the uploaded `file`.
fn transcription(request: &Value) -> Result<Reply, String> {
    let model = model_of(request)?;
    let (name, seconds) = audio_file(request)?;
    let text = format!("Transcript of {name}, {seconds} seconds of speech.");
    let whisper = model.starts_with("whisper");
    let prompt = request.get("prompt").and_then(Value::as_str).unwrap_or("");
    let (audio_tokens, text_tokens) = (seconds * AUDIO_TOKENS_PER_SECOND, tokens_of_text(prompt));
    let tokens = Tokens {
        input: audio_tokens + text_tokens,
        output: tokens_of_text(&text),
        ..Tokens::default()
    };
    let usage = match whisper {
        true => json!({"type": "duration", "seconds": seconds}),
        false => json!({"type": "tokens", "input_tokens": tokens.input,
            "input_token_details": {"text_tokens": text_tokens, "audio_tokens": audio_tokens},
            "output_tokens": tokens.output, "total_tokens": tokens.input + tokens.output}),
    };
    let reported = |reply: Reply| match whisper {
        true => reply,
        false => reply.with_usage(tokens),
    };
    match request.get("response_format").and_then(Value::as_str) {
        Some("text" | "srt" | "vtt") => {
            return Ok(Reply::ok(
                Kind::Other("text/plain; charset=utf-8"),
                format!("{text}\n"),
            ));
        }
        None | Some("json" | "verbose_json") => {}
        Some(other) => return Err(format!("unsupported response_format {other:?}")),
    }
    if flag(request, "stream")? && !whisper {
        let mut out = String::new();
        for piece in pieces(&text) {
            let delta = json!({"type": "transcript.text.delta", "delta": piece});
            out.push_str(&format!("data: {delta}\n\n"));
        }
        let done = json!({"type": "transcript.text.done", "text": text, "usage": usage});
        out.push_str(&format!("data: {done}\n\n"));
        return Ok(reported(Reply::ok(Kind::Sse, out)));
    }
    let body = json!({"text": text, "usage": usage});
    Ok(reported(Reply::ok(Kind::Json, body.to_string())))
}

/// An English translation of the uploaded `file` (whisper-1 only; no usage, but a
/// `verbose_json` answer gives the audio's `duration`).
fn translation(request: &Value) -> Result<Reply, String> {
    let model = model_of(request)?;
    if !model.starts_with("whisper") {
        return Err(format!("{model} does not translate; use whisper-1"));
    }
    let (name, seconds) = audio_file(request)?;
    let text = format!("Translation of {name}, {seconds} seconds of speech.");
    let body = match request.get("response_format").and_then(Value::as_str) {
        Some("verbose_json") => {
            json!({"task": "translate", "language": "english", "duration": seconds, "text": text, "segments": []})
        }
        _ => json!({"text": text}),
    };
    Ok(Reply::ok(Kind::Json, body.to_string()))
}

/// A whole-number field, as JSON sends it or as a form does (text).
fn number(request: &Value, key: &str) -> Result<Option<u64>, String> {
    match request.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => text
            .parse()
            .map(Some)
            .map_err(|_| format!("`{key}` is not a number")),
        Some(value) => value
            .as_u64()
            .map(Some)
            .ok_or_else(|| format!("`{key}` is not a number")),
    }
}

/// A true/false field, as JSON sends it or as a form does (`true`, `false`).
fn flag(request: &Value, key: &str) -> Result<bool, String> {
    match request.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(set)) => Ok(*set),
        Some(Value::String(text)) if text == "true" || text == "false" => Ok(text == "true"),
        Some(_) => Err(format!("`{key}` must be true or false")),
    }
}
