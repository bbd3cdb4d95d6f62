//! The LocalAPI client against a stand-in tailscaled on a unix socket (answering, 404,
//! stalled, missing), and the resolver's order and policies on top of it.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::HeaderMap;
use prometheus::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixListener;

use super::tests::{CAP, TAGGED_JSON, USER_JSON};
use super::*;
use crate::config::StaticIdentity;

/// A stand-in tailscaled: answers whois from `answers` (by IP), records each request head.
struct FakeTailscaled {
    _dir: TempDir,
    path: PathBuf,
    requests: Arc<std::sync::Mutex<Vec<String>>>,
}

/// A directory removed on drop.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn temp_dir() -> TempDir {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "tm-tsd-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    TempDir(dir)
}

impl FakeTailscaled {
    fn start(answers: Vec<(&'static str, &'static str)>, stall: bool) -> Self {
        let dir = temp_dir();
        let path = dir.0.join("tailscaled.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let requests = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = requests.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let (answers, seen) = (answers.clone(), seen.clone());
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.ends_with(b"\r\n\r\n") {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&head).into_owned();
                    seen.lock().unwrap().push(head.clone());
                    if stall {
                        tokio::time::sleep(Duration::from_secs(30)).await;
                        return;
                    }
                    let found = answers
                        .iter()
                        .find(|(ip, _)| head.contains(&format!("addr={ip}:")));
                    let (status, body) = match found {
                        Some((_, json)) => ("200 OK", json.to_string()),
                        None => ("404 Not Found", "no match for IP:port\n".to_owned()),
                    };
                    let reply = format!(
                        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = stream.write_all(reply.as_bytes()).await;
                });
            }
        });
        Self {
            _dir: dir,
            path,
            requests,
        }
    }

    fn client(&self) -> WhoisClient {
        WhoisClient::new(&self.path, Duration::from_millis(300), Some(CAP.to_owned()))
    }
}

#[tokio::test]
async fn client_asks_the_localapi_and_reads_answers() {
    let tsd = FakeTailscaled::start(
        vec![
            ("100.101.102.103", USER_JSON),
            ("100.88.17.42", TAGGED_JSON),
        ],
        false,
    );
    let client = tsd.client();
    let alice = client
        .whois("100.101.102.103:51234".parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(alice.identity, "alice@example.com");
    let tagged = client
        .whois("100.88.17.42:40000".parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(tagged.identity, "tag:ci,tag:k8s");
    assert_eq!(
        client.whois("100.64.9.9:1".parse().unwrap()).await,
        Ok(None)
    );
    assert_eq!(
        client
            .whois("[fd7a:115c:a1e0::1]:443".parse().unwrap())
            .await,
        Ok(None)
    );
    let requests = tsd.requests.lock().unwrap().clone();
    assert!(
        requests[0].starts_with("GET /localapi/v0/whois?addr=100.101.102.103:51234 HTTP/1.1\r\n"),
        "{}",
        requests[0]
    );
    assert!(requests[0]
        .to_ascii_lowercase()
        .contains("host: local-tailscaled.sock\r\n"));
    assert!(
        requests[3].contains("addr=%5Bfd7a:115c:a1e0::1%5D:443 "),
        "{}",
        requests[3]
    );
}

#[tokio::test]
async fn client_fails_on_a_stalled_or_missing_socket() {
    let tsd = FakeTailscaled::start(vec![], true);
    let started = Instant::now();
    let stalled = tsd.client().whois("100.64.0.1:1".parse().unwrap()).await;
    assert_eq!(
        stalled,
        Err(WhoisError::Timeout(Duration::from_millis(300)))
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    let missing = WhoisClient::new(
        Path::new("/nonexistent/tailscaled.sock"),
        Duration::from_secs(1),
        None,
    );
    let error = missing
        .whois("100.64.0.1:1".parse().unwrap())
        .await
        .unwrap_err();
    assert!(matches!(error, WhoisError::Unreachable(_)), "{error:?}");
    assert_eq!(error.label(), "unreachable");
}

fn config(
    socket: &Path,
    unknown: UnknownPolicy,
    down: TailscaledDown,
    trust: bool,
) -> IdentityConfig {
    IdentityConfig {
        tailscale_socket: socket.to_string_lossy().into_owned(),
        trust_serve_headers: trust,
        unknown,
        on_tailscaled_down: down,
        capability: Some(CAP.to_owned()),
        static_: vec![
            StaticIdentity {
                cidr: "127.0.0.0/8".parse().unwrap(),
                who: Who::Login("everyone@example.com".into()),
            },
            StaticIdentity {
                cidr: "127.0.0.2/32".parse().unwrap(),
                who: Who::Tags(vec!["tag:ci".into(), "tag:k8s".into()]),
            },
        ],
        ..IdentityConfig::default()
    }
}

fn lookups(registry: &Registry, source: &str, result: &str) -> u64 {
    let families = registry.gather();
    let Some(family) = families
        .iter()
        .find(|f| f.name() == "tailmeter_identity_lookups_total")
    else {
        return 0;
    };
    family
        .get_metric()
        .iter()
        .filter(|m| {
            let labels: Vec<(&str, &str)> = m
                .get_label()
                .iter()
                .map(|l| (l.name(), l.value()))
                .collect();
            labels.contains(&("source", source)) && labels.contains(&("result", result))
        })
        .map(|m| m.get_counter().get_value() as u64)
        .sum()
}

#[tokio::test]
async fn resolution_order_and_policies() {
    let tsd = FakeTailscaled::start(vec![("100.101.102.103", USER_JSON)], false);
    let registry = Registry::new();
    let resolver = Resolver::new(
        &config(
            &tsd.path,
            UnknownPolicy::Reject,
            TailscaledDown::Reject,
            false,
        ),
        &registry,
    );
    let none = HeaderMap::new();
    let resolve = |addr: &str| resolver.resolve(addr.parse().unwrap(), &none);
    assert_eq!(
        resolve("127.0.0.2:1").await.unwrap().identity,
        "tag:ci,tag:k8s"
    );
    assert_eq!(
        resolve("127.0.0.5:1").await.unwrap().identity,
        "everyone@example.com"
    );
    assert_eq!(
        resolve("[::ffff:127.0.0.2]:1").await.unwrap().identity,
        "tag:ci,tag:k8s"
    );
    for _ in 0..3 {
        let alice = resolve("100.101.102.103:999").await.unwrap();
        assert_eq!(alice.capability_models, vec!["openai/gpt-4o"]);
    }
    assert!(matches!(
        resolve("100.64.1.1:1").await,
        Err(Unresolved::Unknown(_))
    ));
    assert_eq!(lookups(&registry, "static", "hit"), 3);
    assert_eq!(lookups(&registry, "whois", "found"), 1);
    assert_eq!(lookups(&registry, "cache", "found"), 2);
    assert_eq!(lookups(&registry, "whois", "not_found"), 1);
    assert_eq!(lookups(&registry, "policy", "rejected"), 1);

    // tailscaled gone: fail closed, or fall back to `unknown`.
    let gone = Path::new("/nonexistent/tailscaled.sock");
    let closed = Resolver::new(
        &config(
            gone,
            UnknownPolicy::Anonymous,
            TailscaledDown::Reject,
            false,
        ),
        &Registry::new(),
    );
    let peer = "100.64.1.1:1".parse().unwrap();
    assert!(matches!(
        closed.resolve(peer, &none).await,
        Err(Unresolved::TailscaledDown(_))
    ));
    let open = Resolver::new(
        &config(
            gone,
            UnknownPolicy::Anonymous,
            TailscaledDown::Fallback,
            false,
        ),
        &Registry::new(),
    );
    assert_eq!(open.resolve(peer, &none).await.unwrap().identity, ANONYMOUS);
}

#[tokio::test]
async fn serve_headers_count_only_from_loopback_when_trusted() {
    let off = Path::new("");
    let mut headers = HeaderMap::new();
    headers.insert(LOGIN_HEADER, "mallory@example.com".parse().unwrap());
    headers.insert(NAME_HEADER, "Mallory".parse().unwrap());
    let trusting = Resolver::new(
        &config(off, UnknownPolicy::Reject, TailscaledDown::Reject, true),
        &Registry::new(),
    );
    let served = trusting
        .resolve("127.0.0.1:5".parse().unwrap(), &headers)
        .await
        .unwrap();
    assert_eq!(served.identity, "mallory@example.com");
    assert_eq!(served.display_name.as_deref(), Some("Mallory"));
    let remote = trusting
        .resolve("100.64.0.1:5".parse().unwrap(), &headers)
        .await;
    assert!(
        matches!(remote, Err(Unresolved::Unknown(_))),
        "not loopback: ignored"
    );
    let distrusting = Resolver::new(
        &config(off, UnknownPolicy::Reject, TailscaledDown::Reject, false),
        &Registry::new(),
    );
    let local = distrusting
        .resolve("127.0.0.1:5".parse().unwrap(), &headers)
        .await
        .unwrap();
    assert_eq!(
        local.identity, "everyone@example.com",
        "option off: the static entry"
    );
    headers.insert(LOGIN_HEADER, "two words".parse().unwrap());
    let odd = trusting
        .resolve("127.0.0.1:5".parse().unwrap(), &headers)
        .await
        .unwrap();
    assert_eq!(
        odd.identity, "everyone@example.com",
        "an unusable login is ignored"
    );
}
