//! Per-request metering: watches the response as it passes (status, first byte, the usage tap,
//! and the removal of a usage chunk tailmeter itself asked for), then says what the request used
//! and, when the provider's figures are missing, why.

use std::time::Instant;

use bytes::Bytes;
use tailmeter_exporters::{TokenCounts, UsageSource};

use crate::usage::openai_chat::IncludeUsageStripper;
use crate::usage::{Dialect, UsageTap};

/// The most bytes of a non-streamed response body buffered to parse its usage.
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
    /// The provider failed (could not connect, reset, timed out).
    UpstreamFailed,
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
}

/// The response-side state of one proxied request.
pub struct Meter {
    started: Instant,
    first_byte: Option<Instant>,
    upstream_status: Option<u16>,
    streaming: bool,
    dialect: Option<Dialect>,
    tap: Option<UsageTap>,
    stripper: Option<IncludeUsageStripper>,
    scratch: Vec<u8>,
}

impl Meter {
    /// A meter whose clock starts now.
    pub fn start() -> Self {
        Self {
            started: Instant::now(),
            first_byte: None,
            upstream_status: None,
            streaming: false,
            dialect: None,
            tap: None,
            stripper: None,
            scratch: Vec::new(),
        }
    }

    /// When the request started.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// The request is being proxied to a metered endpoint whose responses are in `dialect`.
    pub fn expect_usage(&mut self, dialect: Dialect) {
        self.dialect = Some(dialect);
    }

    /// The provider's response header arrived. `strip_injected_usage` is set when tailmeter
    /// added `include_usage` to a chat stream the client asked for without it.
    pub fn on_response_header(
        &mut self,
        status: u16,
        content_type: &[u8],
        strip_injected_usage: bool,
    ) {
        self.upstream_status = Some(status);
        self.streaming = content_type
            .get(..17)
            .is_some_and(|prefix| prefix.eq_ignore_ascii_case(b"text/event-stream"));
        self.tap = self
            .dialect
            .map(|dialect| UsageTap::new(dialect, self.streaming, JSON_BODY_LIMIT));
        if strip_injected_usage && self.streaming && status == 200 {
            self.stripper = Some(IncludeUsageStripper::new());
        }
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

    /// Milliseconds from start to the first response body byte, when one came.
    pub fn ttft_ms(&self) -> Option<f64> {
        self.first_byte
            .map(|at| at.duration_since(self.started).as_secs_f64() * 1000.0)
    }

    /// Milliseconds since the start.
    pub fn elapsed_ms(&self) -> f64 {
        self.started.elapsed().as_secs_f64() * 1000.0
    }

    /// What the request used. Call once, when the request is over.
    pub fn finish(&mut self, ending: Ending) -> Metered {
        let nothing = |missing_reason| Metered {
            tokens: TokenCounts::default(),
            source: UsageSource::None,
            missing_reason,
            response_model: None,
        };
        if self.dialect.is_none() || ending == Ending::NotSent {
            return nothing(None);
        }
        let Some(tap) = self.tap.as_mut() else {
            return nothing(Some(match ending {
                Ending::ClientGone => "client_disconnect",
                _ => "upstream_failed",
            }));
        };
        tap.finish();
        let response_model = tap.response_model().map(str::to_owned);
        if let Some(tokens) = tap.usage().normalize() {
            return Metered {
                tokens: TokenCounts {
                    input: tokens.input,
                    output: tokens.output,
                    cache_read: tokens.cache_read,
                    cache_write: tokens.cache_write,
                    reasoning: tokens.reasoning,
                },
                source: UsageSource::Provider,
                missing_reason: None,
                response_model,
            };
        }
        let reason = match ending {
            Ending::ClientGone => "client_disconnect",
            Ending::UpstreamFailed | Ending::NotSent => "upstream_failed",
            Ending::Complete if tap.provider_error().is_some() => "upstream_error_event",
            Ending::Complete if self.upstream_status.is_some_and(|s| s >= 400) => {
                "upstream_error_status"
            }
            Ending::Complete => "not_reported",
        };
        Metered {
            response_model,
            ..nothing(Some(reason))
        }
    }
}
