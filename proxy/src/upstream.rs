//! A provider as the proxy talks to it: where to connect, how to rewrite the request line and
//! headers, and which credential to send. Client credentials never pass: every header or query
//! parameter that can carry one is removed before the provider's own key is set.

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, HeaderValue};
use pingora::http::RequestHeader;
use pingora::upstreams::peer::HttpPeer;
use pingora::ErrorType;

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

    /// Rewrites the request for this provider: path under the base URL's prefix, Host, the
    /// provider's credential instead of the client's, identity encoding (so usage can be read),
    /// and the framing of the body tailmeter sends.
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
        // tailmeter already read the body (and answered any 100-continue itself).
        req.remove_header(&http::header::EXPECT);
        req.insert_header(http::header::CONTENT_LENGTH, HeaderValue::from(body_len))?;
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
mod tests {
    use super::*;
    use pingora::upstreams::peer::Peer;

    fn provider(tls: bool, http2: bool) -> Provider {
        Provider {
            name: "openai".to_owned(),
            kind: ProviderKind::OpenAi,
            base_url: BaseUrl {
                tls,
                host: "127.0.0.1".to_owned(),
                port: 443,
                path_prefix: String::new(),
            },
            api_key: "k".to_owned(),
            models: vec!["gpt-4o".to_owned()],
            idle_timeout: Provider::DEFAULT_IDLE_TIMEOUT,
            connect_timeout: Provider::DEFAULT_CONNECT_TIMEOUT,
            first_byte_timeout: Provider::DEFAULT_IDLE_TIMEOUT,
            http2,
        }
    }

    #[test]
    fn debug_output_never_shows_the_key() {
        let upstream = Upstream::new(&Provider {
            api_key: "sk-provider-secret".to_owned(),
            ..provider(true, false)
        });
        let shown = format!("{upstream:?}");
        assert!(
            shown.contains("<redacted>") && !shown.contains("sk-provider-secret"),
            "{shown}"
        );
    }

    #[tokio::test]
    async fn connections_made_under_other_settings_are_pooled_apart() {
        let reuse = |provider: Provider| async move {
            Upstream::new(&provider)
                .peer(&mut ConnectAttempts::default())
                .await
                .unwrap()
                .reuse_hash()
        };
        let plain = reuse(provider(false, false)).await;
        assert_eq!(plain, reuse(provider(false, false)).await);
        let first_byte_apart = Provider {
            first_byte_timeout: Duration::from_secs(5),
            ..provider(false, false)
        };
        let shorter = Provider {
            first_byte_timeout: Duration::from_secs(2),
            ..provider(false, false)
        };
        let others = [
            reuse(first_byte_apart).await,
            reuse(shorter).await,
            reuse(provider(false, true)).await,
        ];
        assert!(!others.contains(&plain), "{plain} in {others:?}");
        assert!(others[0] != others[1] && others[1] != others[2] && others[0] != others[2]);
        let connect_timeout = Provider {
            connect_timeout: Duration::from_secs(1),
            ..provider(false, false)
        };
        assert_eq!(
            reuse(connect_timeout).await,
            plain,
            "an open connection has no connect timeout"
        );
    }

    #[tokio::test]
    async fn a_failed_connect_goes_on_to_each_other_address_once() {
        let (a, b) = (
            "192.0.2.1:443".parse().unwrap(),
            "192.0.2.2:443".parse().unwrap(),
        );
        let mut upstream = Upstream::new(&provider(true, false));
        upstream.addr = CachedAddr::answering("api.example.com", 443, &[a, b]);
        let failed = |etype| pingora::Error::new(etype);
        let mut attempts = ConnectAttempts::default();
        assert_eq!(
            upstream.peer(&mut attempts).await.unwrap()._address,
            a.into()
        );
        let tls = failed(ErrorType::TLSHandshakeFailure);
        assert!(
            !upstream.fail_over(&mut attempts, &tls),
            "fails the same anywhere"
        );
        assert!(upstream.fail_over(&mut attempts, &failed(ErrorType::ConnectRefused)));
        assert_eq!(
            upstream.peer(&mut attempts).await.unwrap()._address,
            b.into()
        );
        let timeout = failed(ErrorType::ConnectTimedout);
        assert!(!upstream.fail_over(&mut attempts, &timeout), "both tried");
        let mut next = ConnectAttempts::default();
        let first = upstream.peer(&mut next).await.unwrap();
        assert_eq!(first._address, a.into(), "both failed lately: as resolved");

        let literal = Upstream::new(&provider(true, false));
        let mut attempts = ConnectAttempts::default();
        literal.peer(&mut attempts).await.unwrap();
        let refused = failed(ErrorType::ConnectRefused);
        assert!(!literal.fail_over(&mut attempts, &refused), "one address");
    }

    #[test]
    fn a_reloaded_provider_keeps_the_addresses_of_the_same_host_and_port() {
        let named = |host: &str, port| {
            let mut named = provider(true, false);
            (named.base_url.host, named.base_url.port) = (host.to_owned(), port);
            Upstream::new(&named)
        };
        let previous = named("api.example.com", 443);
        let kept = named("api.example.com", 443).keeping_addresses_of(&[&previous]);
        assert!(kept.addr.is_shared_with(&previous.addr));
        for (host, port) in [("api.example.com", 8443), ("api.example.org", 443)] {
            let other = named(host, port).keeping_addresses_of(&[&previous]);
            assert!(!other.addr.is_shared_with(&previous.addr), "{host}:{port}");
        }
    }

    #[tokio::test]
    async fn verifies_upstream_tls_certificates_by_default() {
        let peer = Upstream::new(&provider(true, false))
            .peer(&mut ConnectAttempts::default())
            .await
            .unwrap();
        assert!(peer.options.verify_cert, "certificate verification is off");
        assert!(
            peer.options.verify_hostname,
            "host name verification is off"
        );
        assert_eq!(peer.sni, "127.0.0.1");
        assert_eq!(peer.options.alpn.get_max_http_version(), 1);
    }

    #[tokio::test]
    async fn http2_is_offered_over_tls_and_spoken_by_prior_knowledge_without() {
        let alpn = |tls| async move {
            let peer = Upstream::new(&provider(tls, true))
                .peer(&mut ConnectAttempts::default())
                .await
                .unwrap();
            let alpn = &peer.options.alpn;
            (alpn.get_max_http_version(), alpn.get_min_http_version())
        };
        assert_eq!(alpn(true).await, (2, 1));
        assert_eq!(alpn(false).await, (2, 2));
    }

    #[test]
    fn every_client_credential_is_replaced_by_the_provider_key() {
        let mut req = RequestHeader::build("POST", b"/v1/chat/completions", None).unwrap();
        for (name, value) in [
            ("Authorization", "Bearer client"),
            ("X-Api-Key", "client"),
            ("authorization", "Bearer second"),
            ("Tailscale-User-Login", "mallory@example.com"),
            ("x-goog-api-key", "client"),
            ("X-Request-Id", "kept"),
            ("api-key", "client"),
        ] {
            req.append_header(name, value).unwrap();
        }
        Upstream::new(&provider(false, false))
            .rewrite_request(&mut req, 2)
            .unwrap();
        let mut names: Vec<_> = req.headers.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "accept-encoding",
                "authorization",
                "content-length",
                "host",
                "x-request-id"
            ]
        );
        let sent: Vec<_> = req.headers.get_all("authorization").iter().collect();
        assert_eq!(sent, ["Bearer k"]);
    }

    #[test]
    fn joins_prefix_and_drops_client_key() {
        assert_eq!(
            upstream_path("", "/v1/messages", Some("beta=true")),
            "/v1/messages?beta=true"
        );
        assert_eq!(
            upstream_path("/api", "/v1/chat/completions", None),
            "/api/v1/chat/completions"
        );
        assert_eq!(
            upstream_path("/api/v1", "/v1/chat/completions", None),
            "/api/v1/chat/completions"
        );
        assert_eq!(
            upstream_path(
                "",
                "/v1beta/models/x:generateContent",
                Some("key=secret&alt=sse")
            ),
            "/v1beta/models/x:generateContent?alt=sse"
        );
    }
}
