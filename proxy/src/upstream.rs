//! A provider as the proxy talks to it: where to connect, how to rewrite the request line and
//! headers, and which credential to send. Client credentials never pass: every header or query
//! parameter that can carry one is removed before the provider's own key is set.

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, HeaderValue};
use pingora::http::RequestHeader;
use pingora::upstreams::peer::HttpPeer;
use pingora::ErrorType;
use tailmeter_exporters::Metrics;

use crate::config::{BaseUrl, Provider, ProviderKind};
use crate::resolve::{Addresses, CachedAddr};
use crate::timeouts::upstream::{ResponseTimeouts, TimedConnector, UpstreamTimeout};

/// Where a request is among its provider's addresses, across its connect attempts (Pingora's
/// retries; at most [`crate::server`]'s attempts in all).
#[derive(Debug, Default)]
pub struct ConnectAttempts {
    /// The addresses as they were when the first attempt was made.
    addrs: Option<Addresses>,
    /// How many attempts failed to connect.
    failed: usize,
}

/// Request headers that carry a client's credential or identity claim; never forwarded.
const CLIENT_CREDENTIAL_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "x-api-key",
    "api-key",
    "x-goog-api-key",
    "tailscale-user-login",
    "tailscale-user-name",
    "tailscale-user-profile-pic",
    "tailscale-headers-info",
];

/// The Anthropic API version sent when the client did not name one.
const DEFAULT_ANTHROPIC_VERSION: &str = "2023-06-01";

/// A configured provider, ready to proxy to.
pub struct Upstream {
    /// The provider's configured name (the `provider` label).
    pub name: String,
    /// Its API family.
    pub kind: ProviderKind,
    /// Where it lives.
    pub base: BaseUrl,
    /// The models it serves, as configured.
    pub models: Vec<String>,
    /// The provider's credential header, built once and marked sensitive; `None` only for a
    /// key no header can carry, which configuration validation refuses.
    credential: Option<(&'static str, HeaderValue)>,
    /// The `Host` header for the base URL.
    host: HeaderValue,
    /// Longest wait for a connection.
    connect_timeout: Duration,
    /// The provider's `first_byte_timeout` and `idle_timeout`.
    timeouts: ResponseTimeouts,
    /// Connects with the two deadlines kept apart on the socket; only when they differ. With
    /// equal timeouts Pingora's own connector and per-read timeout do the same job without a
    /// wrapper around every read. Either way the connection is pooled (vendor/README.md,
    /// change 3: Pingora 0.9's own pool would refuse a custom connector's connections).
    connector: Option<Arc<TimedConnector>>,
    /// The base URL's host, resolved once per [`crate::resolve::FRESH_FOR`], waited for no
    /// longer than `connect_timeout`.
    addr: CachedAddr,
    /// Whether to speak HTTP/2 (h2c without TLS).
    http2: bool,
    /// Pingora's `group_key` for this provider's connections: see [`connection_group`].
    connection_group: u64,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("base", &self.base)
            .field("api_key", &"<redacted>")
            .finish()
    }
}

impl Upstream {
    /// The upstream for a `[[providers]]` entry.
    pub fn new(provider: &Provider) -> Self {
        let timeouts = ResponseTimeouts {
            first_byte: provider.first_byte_timeout,
            idle: provider.idle_timeout,
        };
        let connector = (timeouts.first_byte != timeouts.idle).then_some(TimedConnector {
            connect_timeout: provider.connect_timeout,
            timeouts,
            // HTTP/2 frames hide the response header's end as TLS does.
            plaintext: !provider.base_url.tls && !provider.http2,
        });
        Self {
            name: provider.name.clone(),
            kind: provider.kind,
            base: provider.base_url.clone(),
            models: provider.models.clone(),
            credential: credential_header(provider.kind, &provider.api_key),
            host: HeaderValue::from_str(&provider.base_url.authority())
                .unwrap_or_else(|_| HeaderValue::from_static("")),
            connect_timeout: provider.connect_timeout,
            timeouts,
            connection_group: connection_group(connector.as_ref(), provider.http2),
            connector: connector.map(Arc::new),
            addr: CachedAddr::new(&provider.base_url.host, provider.base_url.port),
            http2: provider.http2,
        }
    }

    /// This upstream with the address cache of the one in `previous` (the generation before a
    /// reload) at the same host and port, if any: a reload neither waits on a new lookup nor,
    /// while DNS is down, loses the addresses the last lookup found (or which of them failed).
    pub fn keeping_addresses_of(mut self, previous: &[&Upstream]) -> Self {
        let here = (&self.base.host, self.base.port);
        if let Some(same) = previous
            .iter()
            .find(|p| (&p.base.host, p.base.port) == here)
        {
            self.addr = same.addr.clone();
        }
        self
    }

    /// The peer for a request's next connect attempt: the provider's next address (the host
    /// name is resolved off the worker thread and cached; a lookup not answered within
    /// `connect_timeout` fails with `TimedOut`).
    pub async fn peer(&self, attempts: &mut ConnectAttempts) -> std::io::Result<Box<HttpPeer>> {
        let addrs = match attempts.addrs.take() {
            Some(addrs) => addrs,
            None => self.addr.get(self.connect_timeout).await?,
        };
        let addr = addrs[attempts.failed % addrs.len()];
        attempts.addrs = Some(addrs);
        let mut peer = HttpPeer::new(addr, self.base.tls, self.base.host.clone());
        let options = &mut peer.options;
        // The provider's `connect_timeout` for TCP, twice that with the TLS handshake.
        options.connection_timeout = Some(self.connect_timeout);
        options.total_connection_timeout = Some(self.connect_timeout * 2);
        // The provider's `first_byte_timeout` (for the response header) and `idle_timeout`
        // (between its pieces): when they differ they are kept on the socket
        // (crate::timeouts::upstream) and Pingora's per-read timeout is only a backstop; when
        // equal, Pingora's per-read timeout is both.
        options.read_timeout = Some(self.timeouts.first_byte.max(self.timeouts.idle));
        options.custom_l4 = self
            .connector
            .clone()
            .map(|connector| connector as Arc<dyn pingora::connectors::L4Connect + Send + Sync>);
        options.write_timeout = Some(Duration::from_secs(60));
        if self.http2 {
            // Over TLS ALPN may still settle on HTTP/1.1; without TLS there is nothing to
            // negotiate with, so HTTP/2 only: Pingora then speaks h2c by prior knowledge.
            options.set_http_version(2, if self.base.tls { 1 } else { 2 });
        }
        options.idle_timeout = Some(Duration::from_secs(90));
        peer.group_key = self.connection_group;
        Ok(Box::new(peer))
    }

    /// After a connect attempt failed with `e`: whether the request may try the provider's next
    /// address. The failed one goes last for the requests after it (crate::resolve). A TLS
    /// failure other than a timeout would fail the same way anywhere, so it is not tried again.
    pub fn fail_over(&self, attempts: &mut ConnectAttempts, e: &pingora::Error) -> bool {
        let Some(addrs) = attempts.addrs.as_ref() else {
            return false;
        };
        let retryable = matches!(
            e.etype(),
            ErrorType::ConnectTimedout
                | ErrorType::ConnectRefused
                | ErrorType::ConnectNoRoute
                | ErrorType::ConnectError
                | ErrorType::TLSHandshakeTimedout
        );
        if !retryable || addrs.len() == 1 {
            return false;
        }
        self.addr
            .connect_failed(addrs[attempts.failed % addrs.len()]);
        attempts.failed += 1;
        attempts.failed < addrs.len()
    }

    /// Counts a failed connect attempt in `tailmeter_upstream_connect_failures_total`, so an
    /// address that refuses or times out shows even when the request recovered on the next one.
    pub fn count_connect_failure(&self, metrics: &Metrics, e: &pingora::Error) {
        metrics
            .upstream_connect_failures
            .with_label_values(&[&self.name, connect_failure_reason(e.etype())])
            .inc();
    }

    /// Rewrites the request for this provider: path under the base URL's prefix, Host, the
    /// provider's credential instead of the client's, identity encoding (so usage can be read),
    /// and the framing and coding (none) of the body tailmeter sends.
    pub fn rewrite_request(&self, req: &mut RequestHeader, body_len: usize) -> pingora::Result<()> {
        let path = upstream_path(&self.base.path_prefix, req.uri.path(), req.uri.query());
        let uri = path.parse::<http::Uri>().map_err(|e| {
            pingora::Error::because(pingora::ErrorType::InternalError, "bad upstream path", e)
        })?;
        req.set_uri(uri);
        // One pass over the client's few headers finds the credentials present, rather than a
        // lookup (name parsed and hashed) per name that could carry one.
        let is_credential = |name: &HeaderName| CLIENT_CREDENTIAL_HEADERS.contains(&name.as_str());
        while let Some(name) = req.headers.keys().find(|name| is_credential(name)).cloned() {
            req.remove_header(&name);
        }
        req.insert_header(http::header::HOST, self.host.clone())?;
        let (name, value) = self.credential.clone().ok_or_else(|| {
            pingora::Error::explain(
                pingora::ErrorType::InternalError,
                "the provider's api_key cannot be sent in a header",
            )
        })?;
        req.insert_header(name, value)?;
        if self.kind == ProviderKind::Anthropic && req.headers.get("anthropic-version").is_none() {
            req.insert_header(
                "anthropic-version",
                HeaderValue::from_static(DEFAULT_ANTHROPIC_VERSION),
            )?;
        }
        req.insert_header(
            http::header::ACCEPT_ENCODING,
            HeaderValue::from_static("identity"),
        )?;
        req.remove_header(&http::header::TRANSFER_ENCODING);
        // A body the client compressed was decoded to be read, and goes on decoded.
        req.remove_header(&http::header::CONTENT_ENCODING);
        // tailmeter already read the body (and answered any 100-continue itself).
        req.remove_header(&http::header::EXPECT);
        // A request without a body says so by having no length, as a GET (a WebSocket handshake
        // among them) does.
        match body_len {
            0 if req.method == http::Method::GET => {
                req.remove_header(&http::header::CONTENT_LENGTH);
            }
            _ => {
                req.insert_header(http::header::CONTENT_LENGTH, HeaderValue::from(body_len))?;
            }
        }
        Ok(())
    }
}

impl Upstream {
    /// Which of the provider's timeouts a proxy error is, if it is one: the one the timed
    /// socket reported, else, for Pingora's own read timeout (a provider on Pingora's
    /// connector, or over HTTP/2), the one the response's progress implies.
    pub fn timed_out(&self, e: &pingora::Error, header_seen: bool) -> Option<UpstreamTimeout> {
        if let Some(timeout) = crate::timeouts::upstream::timed_out(e) {
            return Some(timeout);
        }
        let read_timeout = *e.etype() == pingora::ErrorType::ReadTimedout || h2_timed_out(e);
        match (read_timeout, header_seen) {
            (false, _) => None,
            (true, false) => Some(UpstreamTimeout::FirstByte(self.timeouts.first_byte)),
            (true, true) => Some(UpstreamTimeout::Idle(self.timeouts.idle)),
        }
    }
}

/// Sets apart, in the connection pool, connections to one address made for different settings:
/// by Pingora's connector or by tailmeter's with its deadlines (and which), over HTTP/1.1 or
/// HTTP/2. Pooled connections outlive a reload, and one made under the old settings must not
/// serve a request under the new (a connection without the new `first_byte_timeout`, say).
fn connection_group(connector: Option<&TimedConnector>, http2: bool) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    connector
        .map(|c| (c.timeouts, c.plaintext))
        .hash(&mut hasher);
    http2.hash(&mut hasher);
    hasher.finish()
}

/// Whether an HTTP/2 provider connection failed on a read timeout. The h2 crate keeps only the
/// kind and text of a connection's I/O error, so the [`crate::timeouts::upstream::Timed`]
/// socket's typed timeout is lost there; its kind remains. Over HTTP/2 the first frames back end
/// the header wait, so such a timeout is the `idle_timeout`.
/// The `reason` label of a failed connect attempt.
fn connect_failure_reason(etype: &ErrorType) -> &'static str {
    match etype {
        ErrorType::ConnectRefused => "refused",
        ErrorType::ConnectTimedout => "timeout",
        ErrorType::ConnectNoRoute => "no_route",
        ErrorType::TLSHandshakeTimedout => "tls_timeout",
        ErrorType::TLSHandshakeFailure
        | ErrorType::TLSWantX509Lookup
        | ErrorType::InvalidCert
        | ErrorType::HandshakeError => "tls",
        _ => "error",
    }
}

fn h2_timed_out(e: &pingora::Error) -> bool {
    e.root_cause()
        .downcast_ref::<h2::Error>()
        .and_then(h2::Error::get_io)
        .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
}

/// Whether the provider said it never processed the request: over HTTP/2, a stream above the
/// last one a GOAWAY names (whatever its error code), or one refused with REFUSED_STREAM
/// (RFC 9113, 6.8 and 8.7). Such a request can go again without being billed twice; Pingora
/// retries it only after a GOAWAY with NO_ERROR, and never for a POST.
pub fn never_processed(e: &pingora::Error) -> bool {
    e.root_cause()
        .downcast_ref::<h2::Error>()
        .is_some_and(|h2| {
            h2.is_remote()
                && (h2.is_go_away()
                    || (h2.is_reset() && h2.reason() == Some(h2::Reason::REFUSED_STREAM)))
        })
}

/// The header that carries the provider's key in its API family, marked sensitive so HTTP/2's
/// header compression never indexes it.
fn credential_header(kind: ProviderKind, api_key: &str) -> Option<(&'static str, HeaderValue)> {
    let (name, value) = match kind {
        ProviderKind::Anthropic => ("x-api-key", HeaderValue::from_str(api_key)),
        ProviderKind::Gemini => ("x-goog-api-key", HeaderValue::from_str(api_key)),
        ProviderKind::OpenAi | ProviderKind::OpenAiCompatible | ProviderKind::Bedrock => (
            "authorization",
            HeaderValue::from_str(&format!("Bearer {api_key}")),
        ),
    };
    let mut value = value.ok()?;
    value.set_sensitive(true);
    Some((name, value))
}

/// The path and query to send upstream: the base URL's prefix joined to the client's path
/// (without doubling a `/v1` the prefix already ends with), and without a `key=` parameter.
pub fn upstream_path(prefix: &str, path: &str, query: Option<&str>) -> String {
    let path = match prefix.strip_suffix("/v1") {
        Some(_) if path.starts_with("/v1/") => &path[3..],
        _ => path,
    };
    let mut out = String::with_capacity(prefix.len() + path.len() + query.map_or(0, str::len) + 1);
    out.push_str(prefix);
    out.push_str(path);
    let mut first = true;
    for pair in query.unwrap_or("").split('&') {
        if pair.is_empty() || pair == "key" || pair.starts_with("key=") {
            continue;
        }
        out.push(if first { '?' } else { '&' });
        out.push_str(pair);
        first = false;
    }
    out
}

#[cfg(test)]
mod tests;
