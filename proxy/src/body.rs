//! The request body: read whole (routing needs its `model` before `upstream_peer`), bounded by
//! `max_request_body`, parsed for the few fields tailmeter needs, and rewritten only when it must
//! be (a `provider/model` name, the `include_usage` tap).
//!
//! Pingora 0.9 has no phase that reads the body before `upstream_peer`, and a body read in
//! `request_filter` is consumed. tailmeter's Pingora (vendor/README.md, change 7) passes a body
//! read whole before proxying through `request_body_filter` once, as its end, where the proxy
//! puts the full (rewritten) body, whatever its length or framing (a chunked upload of
//! megabytes, as Open WebUI streams an audio file). A body the client compressed is decoded
//! first ([`coding`]). The endpoints that take a
//! `multipart/form-data` form (audio, image edits) have theirs read for the same fields
//! ([`form`]).

use std::borrow::Cow;
use std::ops::Range;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use pingora::proxy::Session;

use crate::api_error::{ApiError, ErrorKind};
use crate::usage::json::{splice, Edit};

pub mod coding;
pub mod form;
mod scan;

pub use scan::TopLevelScan;

/// A request body read whole, with its check as far as it got while the body arrived: a large
/// body is mostly checked before its last piece is in, so little of the check is left between
/// that piece and the request going on to the provider.
pub struct ReadBody {
    /// The body.
    pub bytes: Bytes,
    /// Its check so far as JSON, to be finished by [`parse_read`].
    pub scan: TopLevelScan,
    /// The boundary of a body sent as a `multipart/form-data` form (then not JSON).
    pub form_boundary: Option<Box<[u8]>>,
}

/// Reads the whole request body, refusing it past `limit` bytes or when the client takes longer
/// than `timeout` to send it all (a slowloris body holds a connection and a task while it lasts).
/// With `forms`, a body sent as `multipart/form-data` is read as a form, any other as JSON.
pub async fn read_whole_body(
    session: &mut Session,
    limit: u64,
    timeout: Duration,
    forms: bool,
) -> Result<ReadBody, ApiError> {
    tokio::time::timeout(timeout, read_body(session, limit, forms))
        .await
        .unwrap_or_else(|_| {
            Err(ApiError::new(
                ErrorKind::RequestTimeout,
                "request_body_timeout",
                format!(
                    "the request body did not arrive within this gateway's client_body_timeout of {}s",
                    timeout.as_secs_f64()
                ),
            ))
        })
}

async fn read_body(session: &mut Session, limit: u64, forms: bool) -> Result<ReadBody, ApiError> {
    let too_large = || {
        ApiError::new(
            ErrorKind::TooLarge,
            "request_too_large",
            format!(
                "the request body is larger than this gateway's max_request_body of {limit} bytes"
            ),
        )
    };
    let declared: Option<u64> = session
        .req_header()
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(too_large());
    }
    let headers = &session.req_header().headers;
    let coding = coding::coding(headers)?;
    let boundary = forms
        .then(|| headers.get(http::header::CONTENT_TYPE))
        .flatten()
        .and_then(|value| form::boundary(value.as_bytes()))
        .map(Box::<[u8]>::from);
    let downstream = &mut session.downstream_session;
    let expects_continue = downstream
        .get_header(http::header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    if expects_continue {
        // The client waits for this before sending its body (curl: a second, then sends anyway).
        downstream.write_continue_response().await.map_err(|e| {
            ApiError::new(
                ErrorKind::InvalidRequest,
                "body_read_failed",
                format!("could not answer Expect: 100-continue: {e}"),
            )
        })?;
    }
    let mut body = Joined::default();
    let mut scan = TopLevelScan::default();
    // A coded body is checked once decoded, a form at the end.
    let json = coding.is_none() && boundary.is_none();
    loop {
        let chunk = downstream.read_request_body().await.map_err(|e| {
            ApiError::new(
                ErrorKind::InvalidRequest,
                "body_read_failed",
                format!("could not read the request body: {e}"),
            )
        })?;
        let Some(chunk) = chunk else { break };
        if body.len() as u64 + chunk.len() as u64 > limit {
            return Err(too_large());
        }
        body.push(chunk, declared.unwrap_or(0) as usize);
        // The last piece of a body of known length is left to `finish`, like a body in one piece.
        if json && declared.is_none_or(|len| (body.len() as u64) < len) {
            scan.advance(body.as_slice());
        }
    }
    let bytes = match coding {
        None => body.into_bytes(),
        Some(coding) => coding::decode(coding, body.into_bytes(), limit).await?,
    };
    Ok(ReadBody {
        bytes,
        scan,
        form_boundary: boundary,
    })
}

/// A body's pieces joined into one buffer, or the one piece itself (no copy) when it came whole,
/// as a small request does.
#[derive(Default)]
struct Joined {
    whole: Option<Bytes>,
    joined: BytesMut,
}

impl Joined {
    fn len(&self) -> usize {
        self.whole.as_ref().map_or(0, Bytes::len) + self.joined.len()
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn as_slice(&self) -> &[u8] {
        self.whole.as_deref().unwrap_or(&self.joined)
    }

    /// Adds the next piece; `expected` is the body's declared length, if any.
    fn push(&mut self, piece: Bytes, expected: usize) {
        if self.is_empty() {
            self.whole = Some(piece);
            return;
        }
        if let Some(first) = self.whole.take() {
            self.joined.reserve(expected.max(first.len() + piece.len()));
            self.joined.extend_from_slice(&first);
        }
        self.joined.extend_from_slice(&piece);
    }

    fn into_bytes(self) -> Bytes {
        self.whole.unwrap_or_else(|| self.joined.freeze())
    }
}

/// The request fields tailmeter reads; everything else is checked and skipped.
#[derive(Debug, PartialEq, Eq)]
pub struct RequestFields<'a> {
    /// The requested model, as the client named it.
    pub model: Option<Cow<'a, str>>,
    /// Where the body holds `model`'s value, as sent (a JSON string, quotes included, or `null`).
    pub model_at: Option<Range<usize>>,
    /// Whether the client asked for a stream.
    pub stream: Option<bool>,
    /// Where `stream_options` is, for the `include_usage` rewrite.
    pub stream_options: StreamOptionsAt,
    /// The stored response a Responses call continues (`previous_response_id`).
    pub previous_response_id: Option<Cow<'a, str>>,
    /// The conversation a Responses call continues (`conversation`: its id, or an object with
    /// it).
    pub conversation: Option<Cow<'a, str>>,
    /// Whether the body is a form (whose values are written as they are, not as JSON).
    pub form: bool,
}

impl RequestFields<'_> {
    /// The fields of a request with no body (a WebSocket handshake): none.
    pub fn none() -> Self {
        RequestFields {
            model: None,
            model_at: None,
            stream: None,
            stream_options: StreamOptionsAt::Absent,
            previous_response_id: None,
            conversation: None,
            form: false,
        }
    }

    /// The edit that names `model` in the body's `model` value (used when the client named the
    /// model as `provider/model`: the provider sees the bare name). Only the value's bytes
    /// change: the rest (names, numbers, spacing, member order, a form's other parts) stays as
    /// the client sent it.
    pub fn model_edit(&self, model: &str) -> Option<Edit> {
        let value = match self.form {
            true => model.as_bytes().to_vec(),
            false => serde_json::Value::from(model).to_string().into_bytes(),
        };
        Some((self.model_at.clone()?, Cow::Owned(value)))
    }
}

/// Where a request's top-level `stream_options` is.
#[derive(Debug, PartialEq, Eq)]
pub enum StreamOptionsAt {
    /// Not given, in any spelling.
    Absent,
    /// Given once, its name spelled plainly: its value's bytes.
    At(Range<usize>),
    /// Given more than once, or once with its name spelled with escapes: not to be touched.
    Unsure,
}

/// Parses the fields tailmeter needs out of a body read by [`read_whole_body`]: a form with
/// `form_boundary`, or JSON whose check began with `scan`.
pub fn parse_read<'a>(
    body: &'a [u8],
    scan: TopLevelScan,
    form_boundary: Option<&[u8]>,
) -> Result<RequestFields<'a>, ApiError> {
    match form_boundary {
        Some(boundary) => parse_form(body, boundary),
        None => parse_scanned(body, scan),
    }
}

/// Parses the fields tailmeter needs out of a `multipart/form-data` body: the form must be
/// whole and well delimited, its `model` UTF-8 and its `stream` `true` or `false`.
fn parse_form<'a>(body: &'a [u8], boundary: &[u8]) -> Result<RequestFields<'a>, ApiError> {
    let invalid = |why: String| {
        ApiError::new(
            ErrorKind::InvalidRequest,
            "invalid_form",
            format!("the request body is not a multipart/form-data form tailmeter can read: {why}"),
        )
    };
    let fields = form::scan(body, boundary).map_err(invalid)?;
    let model = fields
        .model
        .clone()
        .map(|at| std::str::from_utf8(&body[at]).map(Cow::Borrowed))
        .transpose()
        .map_err(|e| invalid(format!("its `model` is not UTF-8 ({e})")))?;
    let stream = match fields.stream.map(|at| &body[at]) {
        None => None,
        Some(b"true") => Some(true),
        Some(b"false") => Some(false),
        Some(_) => return Err(invalid("its `stream` is not true or false".to_owned())),
    };
    Ok(RequestFields {
        model,
        model_at: fields.model,
        stream,
        stream_options: StreamOptionsAt::Absent,
        previous_response_id: None,
        conversation: None,
        form: true,
    })
}

/// Parses the fields tailmeter needs out of a JSON body. The whole body must be UTF-8 and one
/// well-formed JSON object nested at most [`scan::MAX_DEPTH`] deep: tailmeter must not forward
/// what it could not have parsed.
pub fn parse_fields(body: &[u8]) -> Result<RequestFields<'_>, ApiError> {
    parse_scanned(body, TopLevelScan::default())
}

/// [`parse_fields`] for a body whose check began while it arrived ([`ReadBody`]).
pub fn parse_scanned(body: &[u8], scan: TopLevelScan) -> Result<RequestFields<'_>, ApiError> {
    let invalid = |why: String| {
        ApiError::new(
            ErrorKind::InvalidRequest,
            "invalid_json",
            format!("the request body is not a JSON object tailmeter can read: {why}"),
        )
    };
    let top = scan.finish(body).map_err(|e| invalid(e.to_string()))?;
    let model = string_member(body, top.model.clone(), "model").map_err(invalid)?;
    let previous_response_id =
        string_member(body, top.previous_response_id, "previous_response_id").map_err(invalid)?;
    let conversation = conversation_member(body, top.conversation).map_err(invalid)?;
    let stream = match top.stream.map(|range| &body[range]) {
        None | Some(b"null") => None,
        Some(b"true") => Some(true),
        Some(b"false") => Some(false),
        Some(_) => return Err(invalid("its `stream` is not true or false".to_owned())),
    };
    Ok(RequestFields {
        model,
        model_at: top.model,
        stream,
        stream_options: match (top.stream_options, top.stream_options_plain) {
            (0, _) => StreamOptionsAt::Absent,
            (1, Some(value)) => StreamOptionsAt::At(value),
            _ => StreamOptionsAt::Unsure,
        },
        previous_response_id,
        conversation,
        form: false,
    })
}

/// The conversation id a `conversation` member (at `at`) names: a string, or an object whose
/// `id` is one.
fn conversation_member(
    body: &[u8],
    at: Option<Range<usize>>,
) -> Result<Option<Cow<'_, str>>, String> {
    /// `{"id": "conv_…", …}`
    #[derive(serde::Deserialize)]
    struct Named<'a> {
        #[serde(borrow)]
        id: Cow<'a, str>,
    }
    match at {
        Some(range) if body[range.start] == b'{' => {
            let named = serde_json::from_slice::<Named<'_>>(&body[range])
                .map_err(|_| "its `conversation` object has no string `id`".to_owned())?;
            Ok(Some(named.id))
        }
        at => string_member(body, at, "conversation"),
    }
}

/// A top-level member that must be a string or `null`, at `at` (its value's bytes), if given.
fn string_member<'a>(
    body: &'a [u8],
    at: Option<Range<usize>>,
    name: &str,
) -> Result<Option<Cow<'a, str>>, String> {
    // The scan accepts only UTF-8 text, so a value it found is text.
    let text = at.map(|range| {
        std::str::from_utf8(&body[range]).map_err(|e| format!("its `{name}` is not UTF-8 ({e})"))
    });
    match text.transpose()? {
        None | Some("null") => Ok(None),
        Some(quoted) if quoted.starts_with('"') => unquoted(quoted, name).map(Some),
        Some(_) => Err(format!("its `{name}` is not a string")),
    }
}

/// The text of a JSON string the scan passed, borrowed unless it has escapes to decode.
fn unquoted<'a>(quoted: &'a str, name: &str) -> Result<Cow<'a, str>, String> {
    let inner = &quoted[1..quoted.len() - 1];
    if !inner.contains('\\') {
        return Ok(Cow::Borrowed(inner));
    }
    serde_json::from_str::<String>(quoted)
        .map(Cow::Owned)
        .map_err(|e| format!("its `{name}` cannot be decoded ({e})"))
}

/// `body` with `edits` made ([`RequestFields::model_edit`], the `include_usage` rewrite), in one copy; the body
/// itself when there are none.
pub fn edited(body: &Bytes, edits: &mut [Edit]) -> Bytes {
    if edits.is_empty() {
        return body.clone();
    }
    Bytes::from(splice(body, edits))
}

#[cfg(test)]
mod tests;
