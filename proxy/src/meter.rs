//! Per-request metering: watches the response as it passes (status, first byte, the usage tap,
//! and the removal of a usage chunk tailmeter itself asked for), then says what the request used
//! and, when the provider's figures are missing, why.
//!
//! Every way a response can end gives exactly one [`Metered`]:
//! - the provider's final usage report arrived: its figures, `provider`;
//! - it did not (the client hung up, the upstream reset or went idle past its
//!   `idle_timeout`, an error event ended the stream, the proxy shut down, or the
//!   server never reports usage): whatever figures the provider did report are kept
//!   (e.g. Anthropic's `message_start` input and cache figures), the rest estimated
//!   ([`crate::usage::estimate`]: input from the request, output from the text that
//!   passed), `estimated`, with the reason. The input estimate can take milliseconds, so
//!   [`Meter::settle`] leaves it to the caller ([`InputPending`]), which makes it away from
//!   the worker thread;
//! - an error status with no usage: nothing was billed, `none`;
//! - a background Responses run that has not finished when its answer ends (a `queued` answer,
//!   or its stream cut): `none`, not estimated, since it runs on at the provider; its figures
//!   are counted when a later request retrieving it shows it finished ([`crate::stored`]);
//! - a stored response retrieved or cancelled ([`Meter::expect_reported_usage`]): the figures
//!   its answer reports, if any, never an estimate (it bills nothing of its own);
//! - never sent: `none`.
//!
//! A body the provider compressed although asked not to reaches the client as sent; the usage
//! tap reads a bounded, decoded copy ([`decode`]), and a coding it cannot read is a reason.
//!
//! The tap belongs to one upstream response: a second response header (a retried attempt)
//! replaces it, so an attempt is never counted on top of another.
//!
//! Client hang-up policy: when the client goes away tailmeter stops reading the upstream response
//! (Pingora ends the request and closes the upstream connection), so a provider that stops
//! generating on disconnect stops billing. Reading on to learn the exact usage would make the
//! provider finish, and bill, a response nobody reads; the usage of such a request is estimated.

mod decode;
mod pending;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::HeaderMap;
use tailmeter_exporters::{TokenCounts, UsageSource, NO_TOKEN_USAGE};

use self::decode::CodedTap;
pub use self::pending::InputPending;
use crate::usage::openai_chat::IncludeUsageStripper;
use crate::usage::{estimate, Dialect, Framing, Parts, ResponseHandle, Tokens, Usage, UsageTap};

/// The most bytes buffered to parse usage: a whole non-streamed response body (a larger one is
/// read by its small top-level members), or one event.
const JSON_BODY_LIMIT: usize = 16 * 1024 * 1024;

/// How a request ended, as far as metering cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// The request never reached a provider (refused, or the connection failed).
    NotSent,
    /// The response was delivered whole.
    Complete,
    /// The client went away before the response ended.
    ClientGone,
    /// The provider failed: reset the connection, or answered something unreadable.
    UpstreamFailed,
    /// The provider sent nothing for longer than its `idle_timeout`.
    UpstreamIdleTimeout,
    /// The provider's response header did not come within its `first_byte_timeout`.
    UpstreamFirstByteTimeout,
    /// tailmeter shut down before the response ended.
    Shutdown,
}

/// What a request used, as metered.
#[derive(Debug, Clone, PartialEq)]
pub struct Metered {
    /// The five figures.
    pub tokens: TokenCounts,
    /// Where they came from.
    pub source: UsageSource,
    /// Why the provider's usage is missing, when it is.
    pub missing_reason: Option<&'static str>,
    /// The model the provider said it used.
    pub response_model: Option<String>,
    /// What the provider reported the model bills apart from text tokens.
    pub parts: Parts,
}

/// What a request used, or all of it but its input, which is to be estimated from the request.
#[derive(Debug)]
pub enum Settled {
    /// Nothing is left to work out.
    Done(Metered),
    /// The input is estimated from the request body: see [`InputPending`] for where.
    NeedsInput(InputPending),
}

/// What the request was, for estimating its input.
struct Request {
    dialect: Dialect,
    model: Arc<str>,
    body: Bytes,
    /// Whether the request generates anything (not a retrieval, which bills nothing of its
    /// own): figures missing from its answer are usage missing.
    generates: bool,
}

/// The response-side state of one proxied request.
pub struct Meter {
    started: Instant,
    /// When the request was over (set by [`Meter::settle`]): its duration does not include the
    /// time its input estimate takes.
    ended: Option<Instant>,
    first_byte: Option<Instant>,
    upstream_status: Option<u16>,
    streaming: bool,
    request: Option<Request>,
    tap: Option<CodedTap>,
    stripper: Option<IncludeUsageStripper>,
    scratch: Vec<u8>,
}

impl Meter {
    /// A meter whose clock starts now.
    pub fn start() -> Self {
        Self {
            started: Instant::now(),
            ended: None,
            first_byte: None,
            upstream_status: None,
            streaming: false,
            request: None,
            tap: None,
            stripper: None,
            scratch: Vec::new(),
        }
    }

    /// When the request started.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// The request is being proxied to a metered endpoint whose responses are in `dialect`;
    /// `body` is what is sent upstream for `model` (kept to estimate input if need be, where the
    /// dialect can be estimated).
    pub fn expect_usage(&mut self, dialect: Dialect, model: Arc<str>, body: Bytes) {
        let body = match dialect.estimable() {
            true => {
                estimate::warm_up(&model);
                body
            }
            false => Bytes::new(),
        };
        self.request = Some(Request {
            dialect,
            model,
            body,
            generates: true,
        });
    }

    /// The request asks for something the provider made earlier (a stored response retrieved
    /// or cancelled), whose answer in `dialect` may report its figures: they are read, and
    /// nothing is estimated when it does not.
    pub fn expect_reported_usage(&mut self, dialect: Dialect, model: Arc<str>) {
        self.request = Some(Request {
            dialect,
            model,
            body: Bytes::new(),
            generates: false,
        });
    }

    /// The provider's response header arrived. `strip_injected_usage` is set when tailmeter
    /// added `include_usage` to a chat stream the client asked for without it.
    pub fn on_response_header(
        &mut self,
        status: u16,
        headers: &HeaderMap,
        strip_injected_usage: bool,
    ) {
        self.upstream_status = Some(status);
        let content_type = headers
            .get(http::header::CONTENT_TYPE)
            .map_or(&b""[..], |v| v.as_bytes());
        // After a `101` the bytes are the upgraded connection's (a Realtime WebSocket).
        let framing = match status {
            101 => Framing::WebSocket,
            _ => Framing::from_content_type(content_type),
        };
        self.streaming = framing.is_stream();
        self.tap = self.request.as_ref().map(|request| {
            let mut tap = UsageTap::new(request.dialect, framing, JSON_BODY_LIMIT);
            for (name, value) in headers {
                tap.header(name.as_str(), value.as_bytes());
            }
            CodedTap::new(tap, headers, JSON_BODY_LIMIT)
        });
        // A compressed stream cannot be edited without recompressing it: it passes as sent.
        let strip = strip_injected_usage && framing == Framing::Sse && status == 200;
        self.stripper = (strip && decode::is_identity(headers)).then(IncludeUsageStripper::new);
    }

    /// The provider's response status, once its header arrived.
    pub fn upstream_status(&self) -> Option<u16> {
        self.upstream_status
    }

    /// Whether the response is a stream.
    pub fn is_streaming(&self) -> bool {
        self.streaming
    }

    /// Whether the body is being rewritten (so its Content-Length no longer holds).
    pub fn rewrites_body(&self) -> bool {
        self.stripper.is_some()
    }

    /// A piece of the response body on its way to the client.
    pub fn on_body(&mut self, body: &mut Option<Bytes>, end_of_stream: bool) {
        if let Some(chunk) = body.as_ref().filter(|chunk| !chunk.is_empty()) {
            self.first_byte.get_or_insert_with(Instant::now);
            if let Some(tap) = self.tap.as_mut() {
                tap.feed(chunk);
            }
        }
        if let Some(stripper) = self.stripper.as_mut() {
            self.scratch.clear();
            if let Some(chunk) = body.as_ref() {
                stripper.filter(chunk, &mut self.scratch);
            }
            if end_of_stream {
                stripper.finish(&mut self.scratch);
            }
            *body = Some(Bytes::copy_from_slice(&self.scratch));
        }
        if end_of_stream {
            if let Some(tap) = self.tap.as_mut() {
                tap.finish();
            }
        }
    }

    /// The Responses object the response is, once seen.
    pub fn response_handle(&self) -> Option<&ResponseHandle> {
        self.tap
            .as_ref()
            .and_then(|coded| coded.tap().response_handle())
    }

    /// Whether the answer, metered as `metered`, shows its stored response over: it reports
    /// figures, or says it finished without any (cancelled). Such an answer is all there will
    /// be, so the first of them counts a background response's usage.
    pub fn shows_finished(&self, metered: &Metered) -> bool {
        metered.source == UsageSource::Provider
            || self.response_handle().is_some_and(|h| h.finished)
    }

    /// Milliseconds from start to the first response body byte, when one came.
    pub fn ttft_ms(&self) -> Option<f64> {
        self.first_byte
            .map(|at| at.duration_since(self.started).as_secs_f64() * 1000.0)
    }

    /// Milliseconds from the start to the end of the request, or to now while it lasts.
    pub fn elapsed_ms(&self) -> f64 {
        let until = self.ended.unwrap_or_else(Instant::now);
        until.duration_since(self.started).as_secs_f64() * 1000.0
    }

    /// What the request used, its input estimated on this thread. Call once, when the request
    /// is over.
    pub fn finish(&mut self, ending: Ending) -> Metered {
        match self.settle(ending) {
            Settled::Done(metered) => metered,
            Settled::NeedsInput(pending) => pending.estimate_here(),
        }
    }

    /// What the request used, but for an input estimate still to make. Call once, when the
    /// request is over.
    pub fn settle(&mut self, ending: Ending) -> Settled {
        self.ended.get_or_insert_with(Instant::now);
        let Some(request) = self.request.as_ref().filter(|_| ending != Ending::NotSent) else {
            return Settled::Done(nothing(None));
        };
        let pending = |reported, passed, reason, response_model| InputPending {
            model: Arc::clone(&request.model),
            body: request.body.clone(),
            reported,
            passed,
            reason,
            response_model,
        };
        let Some(coded) = self.tap.as_mut() else {
            if !request.generates {
                return Settled::Done(nothing(None));
            }
            // Sent, but no response header came back: the provider may have read the prompt.
            let reason = ending_reason(ending);
            if !request.dialect.estimable() {
                return Settled::Done(nothing(Some(reason)));
            }
            return Settled::NeedsInput(pending(Usage::default(), 0, reason, None));
        };
        coded.finish();
        let fault = coded.fault();
        let tap = coded.tap();
        let response_model = tap.response_model().map(str::to_owned);
        let reported = tap.usage();
        if let Some(tokens) = tap.final_tokens() {
            return Settled::Done(Metered {
                tokens: counts(tokens),
                source: UsageSource::Provider,
                missing_reason: None,
                response_model,
                parts: reported.parts,
            });
        }
        if !request.generates {
            // A retrieval bills nothing of its own: no figures is not usage missing.
            return Settled::Done(Metered {
                response_model,
                ..nothing(None)
            });
        }
        let reason = match (ending, fault) {
            (Ending::Complete, _) if tap.provider_error().is_some() => "upstream_error_event",
            (Ending::Complete, Some(fault)) => fault.reason(),
            (Ending::Complete, None) if tap.oversized() => "oversized",
            // An image or audio answer billed otherwise (per image, per second) or sent as
            // audio alone: no token figures to report, by design.
            (Ending::Complete, None) if !request.dialect.estimable() => NO_TOKEN_USAGE,
            (Ending::Complete, None) => "not_reported",
            (other, _) => ending_reason(other),
        };
        if self.upstream_status.is_some_and(|s| s >= 400) && reported.normalize().is_none() {
            // Providers do not bill a request they refused.
            return Settled::Done(Metered {
                response_model,
                ..nothing(Some("upstream_error_status"))
            });
        }
        if tap.response_handle().is_some_and(|r| r.background) {
            return Settled::Done(Metered {
                response_model,
                ..nothing(None)
            });
        }
        if !request.dialect.estimable() {
            return Settled::Done(Metered {
                response_model,
                parts: reported.parts,
                ..nothing(Some(reason))
            });
        }
        let passed = estimate::output_tokens(tap.content_bytes());
        let pending = pending(reported, passed, reason, response_model);
        match reported.input {
            Some(input) => Settled::Done(pending.with_input(input)),
            None => Settled::NeedsInput(pending),
        }
    }
}

/// The missing-usage reason for a response that did not complete.
fn ending_reason(ending: Ending) -> &'static str {
    match ending {
        Ending::ClientGone => "client_disconnect",
        Ending::UpstreamIdleTimeout => "upstream_idle_timeout",
        Ending::UpstreamFirstByteTimeout => "upstream_first_byte_timeout",
        Ending::Shutdown => "shutdown",
        Ending::UpstreamFailed | Ending::Complete | Ending::NotSent => "upstream_reset",
    }
}

fn counts(tokens: Tokens) -> TokenCounts {
    TokenCounts {
        input: tokens.input,
        output: tokens.output,
        cache_read: tokens.cache_read,
        cache_write: tokens.cache_write,
        reasoning: tokens.reasoning,
    }
}

fn nothing(missing_reason: Option<&'static str>) -> Metered {
    Metered {
        tokens: TokenCounts::default(),
        source: UsageSource::None,
        missing_reason,
        response_model: None,
        parts: Parts::default(),
    }
}
