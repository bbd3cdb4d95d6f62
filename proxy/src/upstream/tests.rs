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
fn each_failed_connect_is_counted_by_provider_and_reason() {
    let metrics = Metrics::new(10);
    let upstream = Upstream::new(&provider(true, false));
    for etype in [
        ErrorType::ConnectRefused,
        ErrorType::ConnectRefused,
        ErrorType::ConnectTimedout,
        ErrorType::InvalidCert,
        ErrorType::SocketError,
    ] {
        upstream.count_connect_failure(&metrics, &pingora::Error::new(etype));
    }
    let text = String::from_utf8(metrics.render()).unwrap();
    for (reason, count) in [("refused", 2), ("timeout", 1), ("tls", 1), ("error", 1)] {
        let series = format!(
            r#"tailmeter_upstream_connect_failures_total{{provider="openai",reason="{reason}"}} {count}"#
        );
        assert!(text.contains(&series), "{series} in\n{text}");
    }
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
