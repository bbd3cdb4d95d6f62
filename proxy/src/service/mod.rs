//! The one `ProxyHttp` of tailmeter. Each phase does one job and reads as a short list of calls
//! into named modules: `request_filter` identifies the caller, reads and checks the request and
//! picks its route; `upstream_peer` connects; `upstream_request_filter` swaps credentials;
//! `response_body_filter` taps usage as bytes pass; `logging` records the request exactly once,
//! whether it succeeded or failed.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::HttpPeer;
use pingora::protocols::Digest;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::{Error, ErrorSource, ErrorType, Result};

use crate::api_error::{ApiError, ErrorFormat};
use crate::endpoint::Endpoint;
use crate::gateway::{Gateway, SharedGateway};
use crate::identity::{Caller, Unresolved};
use crate::meter::{Ending, InputPending, Meter, Metered, Settled};
use crate::routing::Route;
use crate::timeouts::upstream::UpstreamTimeout;
use crate::trace_context::{TraceContext, TRACEPARENT};
use crate::upstream::{never_processed, ConnectAttempts};
use crate::{local, refusal};

mod prepare;
mod record;

pub(crate) use record::record_settled;

/// The header carrying tailmeter's request id on every response.
pub const REQUEST_ID_HEADER: &str = "x-tailmeter-request-id";
/// The longest `retry-after` the OpenAI and Anthropic SDKs wait out before retrying; past it
/// they retry after a few seconds unless told `x-should-retry: false`.
const SDK_LONGEST_RETRY_WAIT_S: u64 = 60;

/// The proxy service.
pub struct Proxy {
    gateway: SharedGateway,
}

impl Proxy {
    /// A proxy over shared gateway state; each request uses the generation current when it
    /// starts.
    pub fn new(gateway: SharedGateway) -> Self {
        Self { gateway }
    }
}

/// Per-request state, made by `new_ctx` and carried through every phase.
pub struct RequestCtx {
    /// The gateway generation this request started with (a reload does not change it).
    gateway: Arc<Gateway>,
    request_id: String,
    started_ms: u64,
    meter: Meter,
    endpoint: Option<Endpoint>,
    src_ip: Option<IpAddr>,
    caller: Option<Arc<Caller>>,
    route: Option<Route>,
    stream: bool,
    upstream_body: Option<Bytes>,
    /// The client's path with the provider's bare model in it (Gemini, Bedrock).
    upstream_path: Option<String>,
    /// The query the provider gets instead of the client's (a Realtime handshake's, its model
    /// named bare).
    upstream_query: Option<String>,
    /// The id of the stored response or conversation the request names (`/v1/responses/{id}…`,
    /// `/v1/conversations/{id}…`).
    stored_id: Option<String>,
    /// What an image or speech request asks for, priced per image or character.
    asked: Option<crate::pricing::Asked>,
    strip_injected_usage: bool,
    user_agent: String,
    local_status: Option<u16>,
    /// The provider addresses tried so far.
    connect_attempts: ConnectAttempts,
    connected: bool,
    trace: Option<TraceContext>,
    _inflight: Option<InflightGuard>,
    /// Set until the request is recorded: in `response_body_filter` as its last bytes pass, else
    /// in `logging`. A request dropped without reaching `logging`
    /// (its task cut when the shutdown grace ends) is recorded on drop instead, as ended by
    /// shutdown, so no request goes unaccounted.
    unrecorded: Option<Arc<Gateway>>,
    /// A request over but for its input estimate, with its status: settled in
    /// `response_body_filter` (delivered whole) or in `logging`, recorded by `logging` once the
    /// estimate is made (or by `Drop` if the task is cut first).
    awaiting_input: Option<(u16, InputPending)>,
}

impl Drop for RequestCtx {
    fn drop(&mut self) {
        if let Some(gateway) = self.unrecorded.take() {
            let (status, metered) = match self.awaiting_input.take() {
                Some((status, pending)) => (status, pending.estimate_here()),
                None => {
                    let status = self.local_status.or(self.meter.upstream_status());
                    let ending = if self.connected {
                        Ending::Shutdown
                    } else {
                        Ending::NotSent
                    };
                    (status.unwrap_or(0), self.meter.finish(ending))
                }
            };
            record::record(&gateway, self, status, metered);
        }
    }
}

/// Counts a request in `tailmeter_inflight_requests` for as long as it lives.
struct InflightGuard(prometheus::IntGauge);

impl InflightGuard {
    fn new(gauge: &prometheus::IntGauge) -> Self {
        gauge.inc();
        Self(gauge.clone())
    }
}

impl Drop for InflightGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[async_trait]
impl ProxyHttp for Proxy {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        let gateway = self.gateway.load_full();
        RequestCtx {
            unrecorded: Some(Arc::clone(&gateway)),
            awaiting_input: None,
            gateway,
            request_id: uuid::Uuid::now_v7().simple().to_string(),
            started_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            meter: Meter::start(),
            endpoint: None,
            src_ip: None,
            caller: None,
            route: None,
            stream: false,
            upstream_body: None,
            upstream_path: None,
            upstream_query: None,
            stored_id: None,
            asked: None,
            strip_injected_usage: false,
            user_agent: String::new(),
            local_status: None,
            connect_attempts: ConnectAttempts::default(),
            connected: false,
            trace: None,
            _inflight: None,
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        // Pipelined requests (sent before the previous answer was read) are answered in order
        // rather than dropped with the connection (RFC 9112 §9.3.2).
        session.downstream_session.set_pipelining_enabled(true);
        let gateway = Arc::clone(&ctx.gateway);
        let req = session.req_header();
        ctx.user_agent = header_str(req, "user-agent").to_owned();
        let traceparent = req.headers.get(TRACEPARENT).and_then(|v| v.to_str().ok());
        ctx.trace = TraceContext::start(traceparent, gateway.exporters.tracing());
        let peer = session.client_addr().and_then(|a| a.as_inet()).copied();
        ctx.src_ip = peer.map(|a| a.ip());
        let Some(endpoint) = Endpoint::classify(&req.method, req.uri.path()) else {
            let (refusal, format) = refusal::unknown_path(req.method.as_str(), req.uri.path());
            return self.refuse(session, ctx, refusal, format).await;
        };
        ctx.endpoint = Some(endpoint);
        let format = endpoint.error_format();
        if gateway.is_draining() {
            return self.refuse(session, ctx, refusal::draining(), format).await;
        }
        let resolved = match peer {
            Some(peer) => {
                let headers = &session.req_header().headers;
                gateway.resolver.resolve(peer, headers).await
            }
            None => Err(Unresolved::Unknown(
                "the connection has no IP address".to_owned(),
            )),
        };
        let caller = match resolved {
            Ok(caller) => caller,
            Err(why) => {
                let refusal = refusal::unidentified(ctx.src_ip, &why);
                return self.refuse(session, ctx, refusal, format).await;
            }
        };
        let answer = match endpoint {
            Endpoint::ListModels | Endpoint::GeminiListModels => {
                let headers = &session.req_header().headers;
                // Under /v1/, each SDK's list by the header only it sends.
                let format = if endpoint == Endpoint::GeminiListModels
                    || headers.contains_key("x-goog-api-key")
                {
                    ErrorFormat::Gemini
                } else if headers.contains_key("anthropic-version") {
                    ErrorFormat::Anthropic
                } else {
                    ErrorFormat::OpenAi
                };
                local::list_models(&gateway, &caller, format)
            }
            Endpoint::WhoAmI => {
                let src = ctx.src_ip.map(|ip| ip.to_string()).unwrap_or_default();
                local::whoami(&gateway, &caller, &src)
            }
            _ => {
                let prepared = match endpoint {
                    Endpoint::StoredResponse(_) | Endpoint::Conversation(_) => {
                        prepare::by_id(session, ctx, endpoint, &caller).await
                    }
                    _ => prepare::upstream_request(session, ctx, endpoint, &caller).await,
                };
                ctx.caller = Some(caller);
                return match prepared {
                    Ok(()) => Ok(false),
                    Err(refusal) => self.refuse(session, ctx, refusal, format).await,
                };
            }
        };
        ctx.caller = Some(caller);
        let body = Bytes::from(answer.to_string());
        self.answer(session, ctx, 200, body, None).await
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        let route = ctx
            .route
            .as_ref()
            .ok_or_else(|| Error::explain(ErrorType::InternalError, "no route chosen"))?;
        let mut peer = route
            .upstream
            .peer(&mut ctx.connect_attempts)
            .await
            .map_err(|e| {
                let etype = match e.kind() {
                    std::io::ErrorKind::TimedOut => ErrorType::ConnectTimedout,
                    _ => ErrorType::ConnectNoRoute,
                };
                Error::because(
                    etype,
                    format!(
                        "resolving provider {} ({})",
                        route.upstream.name, route.upstream.base.host
                    ),
                    e,
                )
                .into_up()
            })?;
        // A WebSocket is opened over HTTP/1.1, whatever the provider is otherwise spoken.
        if ctx.endpoint == Some(Endpoint::Realtime) {
            peer.options.set_http_version(1, 1);
        }
        Ok(peer)
    }

    /// A connect that failed is counted, then goes to the provider's next address, if it has one
    /// not tried yet: the request was never sent, so nothing can be billed twice.
    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut RequestCtx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        if let Some(route) = ctx.route.as_ref() {
            route
                .upstream
                .count_connect_failure(&ctx.gateway.metrics, &e);
            if route.upstream.fail_over(&mut ctx.connect_attempts, &e) {
                e.set_retry(true);
            }
        }
        e
    }

    async fn connected_to_upstream(
        &self,
        _session: &mut Session,
        _reused: bool,
        _peer: &HttpPeer,
        #[cfg(unix)] _fd: std::os::unix::io::RawFd,
        #[cfg(windows)] _sock: std::os::windows::io::RawSocket,
        _digest: Option<&Digest>,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        ctx.connected = true;
        Ok(())
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let (Some(route), Some(body)) = (ctx.route.as_ref(), ctx.upstream_body.as_ref()) else {
            return Err(Error::explain(
                ErrorType::InternalError,
                "request not prepared",
            ));
        };
        if ctx.upstream_path.is_some() || ctx.upstream_query.is_some() {
            let path = ctx
                .upstream_path
                .as_deref()
                .unwrap_or(upstream_request.uri.path());
            let query = ctx
                .upstream_query
                .as_deref()
                .or(upstream_request.uri.query());
            let target = match query {
                Some(query) => format!("{path}?{query}"),
                None => path.to_owned(),
            };
            let uri = target.parse::<http::Uri>().map_err(|e| {
                Error::because(ErrorType::InternalError, "bad upstream model path", e)
            })?;
            upstream_request.set_uri(uri);
        }
        route
            .upstream
            .rewrite_request(upstream_request, body.len())?;
        if ctx.endpoint == Some(Endpoint::Realtime) {
            // Compressed messages could not be read: the extension is never negotiated.
            upstream_request.remove_header("sec-websocket-extensions");
        }
        if let Some(traceparent) = ctx.trace.and_then(|t| t.upstream_traceparent()) {
            upstream_request.insert_header(TRACEPARENT, traceparent)?;
        }
        Ok(())
    }

    async fn request_body_filter(
        &self,
        session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        // The body was read whole in request_filter; Pingora replays its tail here, and the
        // whole (possibly rewritten) body goes in its place. An upgraded connection's bytes (a
        // Realtime session's client events) pass as they come.
        if session.was_upgraded() {
            return Ok(());
        }
        if let Some(full) = ctx.upstream_body.as_ref() {
            *body = end_of_stream.then(|| full.clone());
        }
        Ok(())
    }

    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        ctx.meter.on_response_header(
            upstream_response.status.as_u16(),
            &upstream_response.headers,
            ctx.strip_injected_usage,
        );
        if ctx.meter.rewrites_body() {
            upstream_response.remove_header(&http::header::CONTENT_LENGTH);
        }
        Ok(())
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        upstream_response.insert_header(REQUEST_ID_HEADER, &ctx.request_id)
    }

    fn response_body_filter(
        &self,
        session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<Option<std::time::Duration>> {
        ctx.meter.on_body(body, end_of_stream);
        if end_of_stream && ctx.unrecorded.is_some() && ctx.awaiting_input.is_none() {
            // Recorded before the last bytes go out, not in `logging`: a response the client
            // has whole then always has its usage row journaled, even if the process dies
            // the next instant. One whose input must be estimated is recorded in `logging`,
            // where the estimate does not hold up this thread.
            // The final header may not be written yet (only a `100 Continue` may have been).
            let status = session
                .response_written()
                .map(|r| r.status.as_u16())
                .filter(|status| *status >= 200)
                .or(ctx.meter.upstream_status())
                .unwrap_or(0);
            match ctx.meter.settle(Ending::Complete) {
                Settled::Done(metered) => record_now(ctx, status, metered),
                Settled::NeedsInput(pending) => ctx.awaiting_input = Some((status, pending)),
            }
        }
        Ok(None)
    }

    /// The request as error logs name it: method, path and host, never the query (a Gemini
    /// client may put its key there).
    fn request_summary(&self, session: &Session, ctx: &RequestCtx) -> String {
        let req = session.req_header();
        format!(
            "{} {} (request {})",
            req.method,
            req.uri.path(),
            ctx.request_id
        )
    }

    /// A client that hangs up (an Esc in a coding agent) is routine, not a fault of the gateway
    /// or the provider, and its access line already says so (`usage_missing=client_disconnect`):
    /// Pingora's error line for it is left out, so error logs show real failures only.
    fn suppress_error_log(&self, _session: &Session, _ctx: &RequestCtx, e: &Error) -> bool {
        *e.esource() == ErrorSource::Downstream
    }

    /// An error after the request went to the provider. Pingora's policy retries only
    /// idempotent methods, which an LLM call (a POST) is not; tailmeter also retries what the
    /// provider says it never processed ([`never_processed`]), on a new connection. The whole
    /// body is kept (`upstream_body`), so any attempt can send it again; the attempt that
    /// answers is the one metered.
    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        _ctx: &mut RequestCtx,
        client_reused: bool,
    ) -> Box<Error> {
        let mut e = e.more_context(format!("Peer: {peer}"));
        if never_processed(&e) {
            e.set_retry(true);
        } else if session.req_header().method.is_idempotent() {
            e.retry.decide_reuse(client_reused);
        } else {
            e.set_retry(false);
        }
        e
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        let failed = FailToProxy {
            error_code: 0,
            can_reuse_downstream: false,
        };
        if let Some(written) = session.response_written() {
            // Headers already went out (a stream broke mid-way): nothing more can be said.
            return FailToProxy {
                error_code: written.status.as_u16(),
                ..failed
            };
        }
        let Some(refusal) = refusal::from_proxy_error(e, ctx.route.as_ref()) else {
            return failed; // the client is gone
        };
        let status = refusal.status();
        let format = ctx
            .endpoint
            .map_or(ErrorFormat::OpenAi, Endpoint::error_format);
        if let Err(write_error) = self.refuse(session, ctx, refusal, format).await {
            tracing::debug!(error = %write_error, "could not send the error response");
        }
        FailToProxy {
            error_code: status,
            ..failed
        }
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut RequestCtx) {
        if ctx.unrecorded.is_none() {
            return; // recorded as its last bytes passed (response_body_filter)
        }
        if ctx.awaiting_input.is_none() {
            let status = session
                .response_written()
                .map(|r| r.status.as_u16())
                .or(ctx.local_status)
                .unwrap_or(0);
            let ending = ending(e, ctx);
            match ctx.meter.settle(ending) {
                Settled::Done(metered) => return record_now(ctx, status, metered),
                Settled::NeedsInput(pending) => ctx.awaiting_input = Some((status, pending)),
            }
        }
        // Kept in the context while the estimate runs: a task cut meanwhile (shutdown) still
        // records the request when it is dropped.
        let Some((_, pending)) = ctx.awaiting_input.as_ref() else {
            return;
        };
        let input = pending.estimate_elsewhere().await;
        if let Some((status, pending)) = ctx.awaiting_input.take() {
            record_now(ctx, status, pending.with_input(input));
        }
    }
}

/// How a request that reached `logging` ended (`e`: the error that ended it, if any).
fn ending(e: Option<&Error>, ctx: &RequestCtx) -> Ending {
    match e {
        _ if !ctx.connected => Ending::NotSent,
        None => Ending::Complete,
        Some(e) if *e.esource() == ErrorSource::Downstream => Ending::ClientGone,
        Some(_) if ctx.gateway.is_draining() => Ending::Shutdown,
        Some(e) => {
            let header_seen = ctx.meter.upstream_status().is_some();
            let route = ctx.route.as_ref();
            match route.and_then(|r| r.upstream.timed_out(e, header_seen)) {
                Some(UpstreamTimeout::FirstByte(_)) => Ending::UpstreamFirstByteTimeout,
                Some(UpstreamTimeout::Idle(_)) => Ending::UpstreamIdleTimeout,
                None => Ending::UpstreamFailed,
            }
        }
    }
}

/// Records the request now, once: it is no longer left for `Drop`.
fn record_now(ctx: &mut RequestCtx, status: u16, metered: Metered) {
    if ctx.unrecorded.take().is_some() {
        let gateway = Arc::clone(&ctx.gateway);
        record::record(&gateway, ctx, status, metered);
    }
}

impl Proxy {
    /// Answers `refusal` in `format` and ends the request.
    async fn refuse(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        refusal: ApiError,
        format: ErrorFormat,
    ) -> Result<bool> {
        let body = refusal.body(format);
        self.answer(session, ctx, refusal.status(), body, refusal.retry_after)
            .await
    }

    /// Writes a JSON response tailmeter made itself.
    async fn answer(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        status: u16,
        body: Bytes,
        retry_after: Option<u64>,
    ) -> Result<bool> {
        ctx.local_status = Some(status);
        let mut resp = ResponseHeader::build(status, Some(4))?;
        resp.insert_header(http::header::CONTENT_TYPE, "application/json")?;
        resp.insert_header(http::header::CONTENT_LENGTH, body.len().to_string())?;
        resp.insert_header(REQUEST_ID_HEADER, &ctx.request_id)?;
        if let Some(seconds) = retry_after {
            resp.insert_header(http::header::RETRY_AFTER, seconds.to_string())?;
            if seconds > SDK_LONGEST_RETRY_WAIT_S {
                // The OpenAI and Anthropic SDKs would retry at once instead (twice by default).
                resp.insert_header("x-should-retry", "false")?;
            }
        }
        if !session.as_downstream_mut().is_body_done() {
            // An unread body would be parsed as the next request on this connection.
            session.set_keepalive(None);
        }
        session.write_response_header(Box::new(resp), false).await?;
        session.write_response_body(Some(body), true).await?;
        Ok(true)
    }
}

/// A request header as text, empty when absent or not UTF-8.
fn header_str<'a>(req: &'a RequestHeader, name: &str) -> &'a str {
    req.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}
