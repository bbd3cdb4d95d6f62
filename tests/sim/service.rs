//! One request, end to end: read and record it, answer the simulator's own
//! `/_sim/requests`, check credentials, pick the fixture (or the fault's
//! error) and hand the answer to delivery under the requested faults.

use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use http::request::Parts;
use http::{Method, Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;
use serde_json::Value;

use crate::deliver::{deliver, Kind, PlannedBody, Reply};
use crate::dialect::{Dialect, Keys};
use crate::faults::Faults;
use crate::fixtures::Fixtures;
use crate::goaway::Ending;
use crate::record::{Record, Recorder};
use crate::routes::Route;
use crate::synth::Synth;

/// Largest request body read; larger ones get 413.
const MAX_BODY: usize = 64 << 20;
/// Request header naming a fixture file to serve instead of the default.
const FIXTURE_HEADER: &str = "x-sim-fixture";
/// The simulator's own request log endpoint.
const REQUESTS_PATH: &str = "/_sim/requests";

/// What every connection shares.
#[derive(Debug)]
pub struct State {
    /// The loaded fixtures.
    pub fixtures: Fixtures,
    /// The accepted keys.
    pub keys: Keys,
    /// The request log.
    pub recorder: Recorder,
    /// Faithful mode: synthesize answers instead of replaying recordings.
    pub synth: Option<Synth>,
    /// The IDs of the `once` faults already applied.
    pub once_seen: Mutex<HashSet<u64>>,
}

impl State {
    /// True the first time `id` (a `once` fault) is asked about.
    fn first_of_once(&self, id: u64) -> bool {
        let mut seen = self
            .once_seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        seen.insert(id)
    }
}

/// Answers one request; `ending` ends its connection (the `goaway` faults).
pub async fn handle(
    state: Arc<State>,
    ending: Arc<Ending>,
    request: Request<Incoming>,
) -> Result<Response<PlannedBody>, Infallible> {
    if crate::realtime::is_handshake(&request) {
        return Ok(crate::realtime::accept(state, request));
    }
    let (parts, body) = request.into_parts();
    let route = Route::resolve(&parts.method, parts.uri.path());
    let dialect = route.as_ref().map_or(Dialect::OpenAi, Route::dialect);
    let no_faults = Faults::default();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) => {
            let (status, message) = if error.is::<LengthLimitError>() {
                (StatusCode::PAYLOAD_TOO_LARGE, "request body too large")
            } else {
                (StatusCode::BAD_REQUEST, "unreadable request body")
            };
            let reply = dialect.error(status, message);
            return Ok(deliver(reply, &no_faults, Bytes::new()));
        }
    };
    if parts.uri.path() == REQUESTS_PATH {
        return Ok(deliver(
            requests_log(&state, &parts.method),
            &no_faults,
            Bytes::new(),
        ));
    }
    let content_type = parts.headers.get(http::header::CONTENT_TYPE);
    let form = content_type
        .and_then(|value| value.to_str().ok())
        .and_then(|value| crate::form::to_json(value, &body));
    let request_json: Option<Value> = form.or_else(|| serde_json::from_slice(&body).ok());
    let model = request_json
        .as_ref()
        .and_then(|json| json.get("model"))
        .and_then(Value::as_str)
        .or_else(|| route.as_ref().and_then(Route::path_model))
        .map(str::to_owned);
    let record = Record::new(&parts, &body, model);

    let faults = match Faults::from_headers(&parts.headers) {
        Ok(Faults { once: Some(id), .. }) if !state.first_of_once(id) => Faults::default(),
        Ok(faults) => faults,
        Err(message) => {
            state.recorder.push(record);
            let reply = dialect.error(StatusCode::BAD_REQUEST, &message);
            return Ok(deliver(reply, &no_faults, Bytes::new()));
        }
    };
    let reply = match route {
        Some(route) => answer(&state, &route, &parts, &faults, request_json.as_ref()),
        None => dialect.error(
            StatusCode::NOT_FOUND,
            &format!("Invalid URL ({} {})", parts.method, parts.uri.path()),
        ),
    };
    state.recorder.push(record.with_usage(reply.usage));
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    if let Some(stall) = faults.stall {
        tokio::time::sleep(stall).await;
    }
    if faults.goaway {
        ending.graceful.notify_one();
    }
    if let Some(after) = faults.close_after {
        let ending = Arc::clone(&ending);
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            ending.close.notify_one();
        });
    }
    let mut response = deliver(reply, &faults, dialect.stream_error_event());
    if let Some(code) = faults
        .goaway_error
        .filter(|_| parts.version == Version::HTTP_2)
    {
        match faults.cut_after {
            Some(_) => response.body_mut().abort_connection(ending, code),
            None => ending.abort(code),
        }
    }
    Ok(response)
}

/// The answer of a simulated endpoint, before delivery faults.
fn answer(
    state: &State,
    route: &Route,
    parts: &Parts,
    faults: &Faults,
    request_json: Option<&Value>,
) -> Reply {
    let dialect = route.dialect();
    if let Err(reason) = dialect.authorize(&state.keys, &parts.headers, parts.uri.query()) {
        return dialect.error(StatusCode::UNAUTHORIZED, reason);
    }
    if let Some(status) = faults.status {
        return dialect.error(status, "simulated failure");
    }
    if let Some(name) = parts.headers.get(FIXTURE_HEADER) {
        let named = name
            .to_str()
            .map_err(|_| format!("{FIXTURE_HEADER} is not ASCII"))
            .and_then(|name| state.fixtures.named(name));
        return named.unwrap_or_else(|message| dialect.error(StatusCode::BAD_REQUEST, &message));
    }
    // A stored response or a conversation is asked for by path alone (GET, DELETE, a bodiless
    // cancel).
    let by_path = matches!(route, Route::Stored { .. } | Route::Conversation { .. });
    let request_json = request_json.or(by_path.then_some(&Value::Null));
    let synthesized = state.synth.as_ref().zip(request_json);
    if let Some(reply) =
        synthesized.and_then(|(synth, json)| synth.answer(route, json, parts.uri.query()))
    {
        return reply;
    }
    match request_json {
        Some(json) => route.serve(&state.fixtures, json),
        None => dialect.error(StatusCode::BAD_REQUEST, "request body is not JSON"),
    }
}

/// `GET /_sim/requests` lists the log, `DELETE` clears it.
fn requests_log(state: &State, method: &Method) -> Reply {
    match *method {
        Method::GET => Reply::ok(Kind::Json, state.recorder.to_json()),
        Method::DELETE => {
            state.recorder.clear();
            Reply::ok(Kind::Json, "[]")
        }
        _ => Dialect::OpenAi.error(StatusCode::METHOD_NOT_ALLOWED, "use GET or DELETE"),
    }
}
