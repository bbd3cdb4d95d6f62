//! OpenAI's Realtime API over a WebSocket (`GET /v1/realtime?model=…` with `Upgrade:
//! websocket`), in faithful mode: the handshake (the provider's key checked, `model` required),
//! `session.created`, then what the API answers each client event with. A conversation of text
//! items and sound (`conversation.item.create` with `input_text` or `input_audio`, or
//! `input_audio_buffer.append` then `.commit`) is answered on `response.create` with text, or
//! sound and its transcript when the session's `output_modalities` ask for audio, then
//! `response.done` with the response's usage: every item of the conversation as input (text and
//! audio tokens, the prompt of the response before cached once it reaches 1,024 tokens), the
//! answer as output. The session's summed figures go to the request log when it closes.

use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use http::header::{CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, UPGRADE};
use http::{HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Message, Role};
use tokio_tungstenite::WebSocketStream;

use crate::deliver::{deliver, Kind, PlannedBody, Reply};
use crate::dialect::Dialect;
use crate::faults::Faults;
use crate::record::Record;
use crate::service::State;
use crate::synth::answer::pieces;
use crate::synth::prompt::{tokens_of_text, MIN_CACHED};
use crate::synth::Tokens;

/// Where the Realtime API is.
pub const PATH: &str = "/v1/realtime";
/// Bytes of 24 kHz 16-bit sound per audio token (ten tokens a second).
const AUDIO_BYTES_PER_TOKEN: u64 = 4_800;
/// Audio tokens the answer's sound takes per token of its transcript.
const AUDIO_PER_TEXT_TOKEN: u64 = 5;

/// Whether `request` opens a Realtime WebSocket.
pub fn is_handshake(request: &Request<Incoming>) -> bool {
    let upgrade = request.headers().get(UPGRADE).and_then(|v| v.to_str().ok());
    request.uri().path() == PATH && upgrade.is_some_and(|u| u.eq_ignore_ascii_case("websocket"))
}

/// Answers the handshake: 101 and the session on the upgraded connection, or the error.
pub fn accept(state: Arc<State>, mut request: Request<Incoming>) -> Response<PlannedBody> {
    let refuse = |status, message: &str| {
        deliver(
            Dialect::OpenAi.error(status, message),
            &Faults::default(),
            Default::default(),
        )
    };
    let (headers, query) = (request.headers(), request.uri().query());
    if let Err(reason) = Dialect::OpenAi.authorize(&state.keys, headers, query) {
        return refuse(StatusCode::UNAUTHORIZED, reason);
    }
    let model = query.and_then(|q| q.split('&').find_map(|p| p.strip_prefix("model=")));
    let Some(model) = model.filter(|m| !m.is_empty()).map(str::to_owned) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "provider-sim: `model` is required in the query",
        );
    };
    let Some(key) = headers
        .get(SEC_WEBSOCKET_KEY)
        .map(|k| derive_accept_key(k.as_bytes()))
    else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "provider-sim: no Sec-WebSocket-Key",
        );
    };
    if headers.contains_key("sec-websocket-extensions") {
        return refuse(
            StatusCode::BAD_REQUEST,
            "provider-sim: no extension is offered here",
        );
    }
    if state.synth.is_none() {
        let message = "provider-sim answers Realtime sessions only in faithful mode (--synthesize)";
        return refuse(StatusCode::NOT_IMPLEMENTED, message);
    }
    let upgraded = hyper::upgrade::on(&mut request);
    let (parts, _) = request.into_parts();
    let record = Record::new(&parts, b"", Some(model.clone()));
    tokio::spawn(async move {
        let Ok(upgraded) = upgraded.await else {
            return;
        };
        let socket = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None);
        let used = Session::new(&state, model).run(socket.await).await;
        state.recorder.push(record.with_usage(Some(used)));
    });
    let mut reply = Reply::ok(Kind::Json, "");
    reply.status = StatusCode::SWITCHING_PROTOCOLS;
    let mut response = deliver(reply, &Faults::default(), Default::default());
    let headers = response.headers_mut();
    headers.remove(http::header::CONTENT_TYPE);
    headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(accept) = HeaderValue::from_str(&key) {
        headers.insert(SEC_WEBSOCKET_ACCEPT, accept);
    }
    response
}

/// One session: its conversation so far and what its responses used.
struct Session<'a> {
    state: &'a State,
    model: String,
    audio_out: bool,
    /// Tokens of the conversation's text and sound.
    text: u64,
    audio: u64,
    /// The last response's prompt (text, sound), cached for the next.
    prompt_before: (u64, u64),
    /// Bytes of sound appended and not yet committed.
    buffered: u64,
    used: Tokens,
}

impl<'a> Session<'a> {
    fn new(state: &'a State, model: String) -> Self {
        Session {
            state,
            model,
            audio_out: false,
            text: 0,
            audio: 0,
            prompt_before: (0, 0),
            buffered: 0,
            used: Tokens::default(),
        }
    }

    /// Answers the client's events until it closes; what the responses used, summed.
    async fn run<S>(mut self, mut socket: WebSocketStream<S>) -> Tokens
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        let created = json!({"type": "session.created", "event_id": self.id("event"),
            "session": self.session()});
        if socket
            .send(Message::text(created.to_string()))
            .await
            .is_err()
        {
            return self.used;
        }
        while let Some(Ok(message)) = socket.next().await {
            let event = match message {
                Message::Text(text) => serde_json::from_str::<Value>(&text).unwrap_or(Value::Null),
                Message::Close(_) => break,
                _ => continue,
            };
            for answer in self.answer(&event) {
                if socket
                    .send(Message::text(answer.to_string()))
                    .await
                    .is_err()
                {
                    return self.used;
                }
            }
        }
        self.used
    }

    fn id(&self, prefix: &str) -> String {
        self.state
            .synth
            .as_ref()
            .map_or_else(String::new, |synth| synth.id(prefix))
    }

    fn session(&self) -> Value {
        let modalities = if self.audio_out { "audio" } else { "text" };
        json!({"type": "realtime", "object": "realtime.session", "id": "sess_sim",
            "model": self.model, "output_modalities": [modalities]})
    }

    /// The server events answering one client event.
    fn answer(&mut self, event: &Value) -> Vec<Value> {
        let event_id = self.id("event");
        match event.get("type").and_then(Value::as_str).unwrap_or("") {
            "session.update" => {
                let modalities = event.pointer("/session/output_modalities");
                self.audio_out = modalities
                    .and_then(Value::as_array)
                    .is_some_and(|m| m.iter().any(|m| m == "audio"));
                vec![
                    json!({"type": "session.updated", "event_id": event_id, "session": self.session()}),
                ]
            }
            "conversation.item.create" => {
                let item = event.get("item").cloned().unwrap_or(Value::Null);
                let content = item.get("content").and_then(Value::as_array);
                for part in content.into_iter().flatten() {
                    match part.get("type").and_then(Value::as_str) {
                        Some("input_text") => {
                            self.text += tokens_of_text(part["text"].as_str().unwrap_or(""));
                        }
                        Some("input_audio") => {
                            self.audio += audio_tokens(part["audio"].as_str().unwrap_or(""));
                        }
                        _ => {}
                    }
                }
                let id = self.id("item");
                let added = |kind| {
                    json!({"type": kind, "event_id": self.id("event"),
                    "previous_item_id": null, "item": {"id": id, "status": "completed", "content": item["content"],
                        "type": item["type"], "role": item["role"]}})
                };
                vec![
                    added("conversation.item.added"),
                    added("conversation.item.done"),
                ]
            }
            "input_audio_buffer.append" => {
                let audio = event.get("audio").and_then(Value::as_str).unwrap_or("");
                self.buffered += STANDARD.decode(audio).map_or(0, |a| a.len() as u64);
                Vec::new()
            }
            "input_audio_buffer.commit" => {
                self.audio += self.buffered.div_ceil(AUDIO_BYTES_PER_TOKEN);
                self.buffered = 0;
                vec![
                    json!({"type": "input_audio_buffer.committed", "event_id": event_id,
                    "previous_item_id": null, "item_id": self.id("item")}),
                ]
            }
            "response.create" => self.respond(),
            "response.cancel" => Vec::new(),
            other => vec![json!({"type": "error", "event_id": event_id, "error": {
                "type": "invalid_request_error", "code": "invalid_value",
                "message": format!("provider-sim: unknown event type {other:?}"), "param": "type"}})],
        }
    }

    /// A response to the conversation so far: its events, `response.done` last.
    fn respond(&mut self) -> Vec<Value> {
        let response_id = self.id("resp");
        let item_id = self.id("item");
        let text = "This is a simulated reply from provider-sim.";
        let (prompt_text, prompt_audio) = (self.text, self.audio);
        let (before_text, before_audio) = self.prompt_before;
        let (cached_text, cached_audio) = match before_text + before_audio >= MIN_CACHED {
            true => (before_text, before_audio),
            false => (0, 0),
        };
        let out_text = tokens_of_text(text);
        let out_audio = if self.audio_out {
            out_text * AUDIO_PER_TEXT_TOKEN
        } else {
            0
        };
        let usage = json!({
            "total_tokens": prompt_text + prompt_audio + out_text + out_audio,
            "input_tokens": prompt_text + prompt_audio, "output_tokens": out_text + out_audio,
            "input_token_details": {"text_tokens": prompt_text, "audio_tokens": prompt_audio,
                "image_tokens": 0, "cached_tokens": cached_text + cached_audio,
                "cached_tokens_details": {"text_tokens": cached_text, "audio_tokens": cached_audio, "image_tokens": 0}},
            "output_token_details": {"text_tokens": out_text, "audio_tokens": out_audio}});
        self.used.input += prompt_text + prompt_audio;
        self.used.output += out_text + out_audio;
        self.used.cache_read += cached_text + cached_audio;
        self.prompt_before = (prompt_text, prompt_audio);
        // The answer joins the conversation.
        self.text += out_text;
        self.audio += out_audio;

        let mut events = vec![
            json!({"type": "response.created", "event_id": self.id("event"),
            "response": {"object": "realtime.response", "id": response_id, "status": "in_progress", "output": []}}),
        ];
        let (delta, done) = match self.audio_out {
            true => (
                "response.output_audio_transcript.delta",
                "response.output_audio_transcript.done",
            ),
            false => ("response.output_text.delta", "response.output_text.done"),
        };
        for piece in pieces(text) {
            if self.audio_out {
                let sound = STANDARD.encode(vec![0u8; 2 * AUDIO_BYTES_PER_TOKEN as usize]);
                events.push(json!({"type": "response.output_audio.delta", "event_id": self.id("event"),
                    "response_id": response_id, "item_id": item_id, "output_index": 0, "content_index": 0,
                    "delta": sound}));
            }
            events.push(
                json!({"type": delta, "event_id": self.id("event"), "response_id": response_id,
                "item_id": item_id, "output_index": 0, "content_index": 0, "delta": piece}),
            );
        }
        let content_type = if self.audio_out {
            "output_audio"
        } else {
            "output_text"
        };
        events.push(json!({"type": done, "event_id": self.id("event"), "response_id": response_id,
            "item_id": item_id, "output_index": 0, "content_index": 0, "text": text, "transcript": text}));
        events.push(json!({"type": "response.done", "event_id": self.id("event"), "response": {
            "object": "realtime.response", "id": response_id, "status": "completed",
            "output": [{"id": item_id, "type": "message", "role": "assistant", "status": "completed",
                "content": [{"type": content_type, "text": text, "transcript": text}]}],
            "usage": usage}}));
        events
    }
}

/// Audio tokens of base64 sound.
fn audio_tokens(audio: &str) -> u64 {
    let bytes = STANDARD.decode(audio).map_or(0, |a| a.len() as u64);
    bytes.div_ceil(AUDIO_BYTES_PER_TOKEN)
}
