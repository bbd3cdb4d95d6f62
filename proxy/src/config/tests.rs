//! Tests of config loading: the contract's example, defaults, routing, and
//! that secrets never show. Rejections (each with its line and key) and the
//! small parsers have their own files under `tests/`.

mod access;
mod rejections;
mod sinks;
mod tailnet;
mod units;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use super::*;

const SECRET: &str = "sk-test-DO-NOT-PRINT-0123456789";

/// The example from CONTRACT.md, verbatim.
const EXAMPLE: &str = r#"[server]
listen = "127.0.0.1:8080"         # the LLM API (what clients point at)
admin_listen = "127.0.0.1:9090"   # /metrics, /healthz, /readyz only
max_request_body = "32MiB"

[identity]
tailscale_socket = "/var/run/tailscale/tailscaled.sock"  # LocalAPI; "" turns it off
trust_serve_headers = false       # honour Tailscale-User-Login only from loopback peers
unknown = "reject"                # or "anonymous": what an unidentified caller gets

[[identity.static]]               # fixed identities by source address (no tailnet, tests)
cidr = "127.0.0.2/32"
login = "alice@example.com"       # a user ...
# tags = ["tag:k8s"]              # ... or a tagged node

[[providers]]
name = "openai"                   # used in "provider/model" and in labels
kind = "openai"                   # openai | anthropic | gemini | bedrock | openai-compatible
base_url = "https://api.openai.com"
api_key = "${OPENAI_API_KEY}"
models = ["gpt-4.1-mini", "gpt-5-mini"]   # exact names: what /v1/models lists and labels may carry

[[grants]]                        # none at all: everyone may use every model
src = ["tag:k8s", "alice@example.com"]   # identities, tags, or "*"
models = ["openai/*", "anthropic/claude-haiku-*"]   # globs over provider/model

[[budgets]]
name = "k8s-daily"
tag = "tag:k8s"                   # or identity = "alice@example.com"
tokens = 2000000                  # input + output tokens
window = "24h"
on_exceed = "alert"               # or "reject"

[prices."gpt-4.1-mini"]           # USD per million tokens
input = 0.40
output = 1.60
cache_read = 0.10

[clickhouse]                      # absent: events go to the embedded default sink
url = "http://127.0.0.1:8123"
database = "tailmeter"

[otlp]                            # absent: no traces exported
endpoint = "http://127.0.0.1:4317"
"#;

/// A minimal valid provider, for tests about other sections.
const PROVIDER: &str = r#"
[[providers]]
name = "openai"
kind = "openai"
base_url = "https://api.openai.com"
api_key = "${OPENAI_API_KEY}"
models = ["gpt-4.1-mini"]
"#;

fn test_env(name: &str) -> Option<String> {
    match name {
        "OPENAI_API_KEY" => Some(SECRET.to_owned()),
        "CH_PASSWORD" => Some("hunter2-secret".to_owned()),
        "TRICKY" => Some("a\"b\\c\nd ${NOT_EXPANDED}".to_owned()),
        _ => None,
    }
}

fn parse_text(text: &str) -> Result<Config, ConfigError> {
    parse(Path::new("tailmeter.toml"), text, &test_env)
}

fn ok(text: &str) -> Config {
    parse_text(text).unwrap_or_else(|e| panic!("expected valid config, got: {e}"))
}

/// Asserts that `text` is rejected at `line`, naming `key`, with a message containing `needle`.
fn rejects(text: &str, line: usize, key: &str, needle: &str) -> ConfigError {
    let e = parse_text(text).expect_err("expected an error");
    assert_eq!((e.line, e.key.as_deref()), (Some(line), Some(key)), "{e}");
    assert!(e.message.contains(needle), "{e}");
    assert_eq!(
        e.to_string(),
        format!("tailmeter.toml:{line}: key `{key}`: {}", e.message)
    );
    e
}

#[test]
fn contract_example_parses() {
    let c = ok(EXAMPLE);
    assert_eq!(
        c.server.listen,
        "127.0.0.1:8080".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(
        c.server.admin_listen,
        "127.0.0.1:9090".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(c.server.max_request_body, 32 * 1024 * 1024);
    assert_eq!(c.server.shutdown_grace, Duration::from_secs(30));
    assert!(c.server.threads >= 1);
    assert_eq!(
        c.identity.tailscale_socket,
        "/var/run/tailscale/tailscaled.sock"
    );
    assert!(!c.identity.trust_serve_headers);
    assert_eq!(c.identity.unknown, UnknownPolicy::Reject);
    assert_eq!(
        c.identity.static_,
        vec![StaticIdentity {
            cidr: "127.0.0.2/32".parse().unwrap(),
            who: Who::Login("alice@example.com".to_owned()),
        }]
    );
    let p = &c.providers[0];
    assert_eq!(
        (p.name.as_str(), p.kind, p.api_key.as_str()),
        ("openai", ProviderKind::OpenAi, SECRET)
    );
    assert_eq!(p.base_url.to_string(), "https://api.openai.com");
    assert_eq!(
        (
            p.base_url.tls,
            p.base_url.port,
            p.base_url.path_prefix.as_str()
        ),
        (true, 443, "")
    );
    assert_eq!(p.base_url.authority(), "api.openai.com");
    assert_eq!(p.models, ["gpt-4.1-mini", "gpt-5-mini"]);
    assert_eq!(c.grants[0].src, ["tag:k8s", "alice@example.com"]);
    assert_eq!(c.grants[0].models, ["openai/*", "anthropic/claude-haiku-*"]);
    assert_eq!(
        c.budgets,
        vec![Budget {
            name: "k8s-daily".to_owned(),
            subject: BudgetSubject::Tag("tag:k8s".to_owned()),
            tokens: 2_000_000,
            window: Duration::from_secs(24 * 3600),
            on_exceed: OnExceed::Alert,
        }]
    );
    let price = Price {
        cache_read: Some(0.10),
        ..Price::tokens(0.40, 1.60)
    };
    assert_eq!(c.prices["gpt-4.1-mini"], price);
    let ch = c.clickhouse.as_ref().unwrap();
    assert_eq!(
        (ch.url.as_str(), ch.database.as_str(), &ch.user),
        ("http://127.0.0.1:8123", "tailmeter", &None)
    );
    assert_eq!(c.otlp.as_ref().unwrap().endpoint, "http://127.0.0.1:4317");
    assert_eq!(c.events.dir, Path::new("./tailmeter-data"));
    assert_eq!((c.metrics.max_identities, &c.log.level), (1000, &None));
}

#[test]
fn empty_file_and_providers_only_get_defaults() {
    let empty = ok("");
    assert!(empty.providers.is_empty() && empty.grants.is_empty());
    assert_eq!(empty.server, Server::default());
    assert!(empty.summary().contains("providers: none"));
    let c = ok(PROVIDER);
    assert_eq!(c.identity, Identity::default());
    assert_eq!((c.clickhouse, c.otlp), (None, None));
}

#[test]
fn summary_shows_routes_and_ambiguous_names() {
    let text = format!(
        "{PROVIDER}{}",
        r#"
[[providers]]
name = "local"
kind = "openai-compatible"
base_url = "http://[::1]:8000/v1/"
api_key = "x"
models = ["gpt-4.1-mini", "llama"]

[prices.llama]
input = 0
output = 0
"#
    );
    let c = ok(&text);
    let local = &c.providers[1];
    assert_eq!(
        (local.base_url.host.as_str(), local.base_url.port),
        ("::1", 8000)
    );
    assert_eq!(
        (
            local.base_url.path_prefix.as_str(),
            local.base_url.authority()
        ),
        ("/v1", "[::1]:8000".to_owned())
    );
    let summary = c.summary();
    assert!(
        summary
            .contains("gpt-4.1-mini -> openai/gpt-4.1-mini  (ambiguous: also local/gpt-4.1-mini"),
        "{summary}"
    );
    assert!(summary.contains("llama -> local/llama\n"), "{summary}");
    assert!(summary.contains("  llama: input 0, output 0,"), "{summary}");
    assert!(
        summary.contains("no price, counted at 0: openai/gpt-4.1-mini, local/gpt-4.1-mini\n"),
        "{summary}"
    );
}

#[test]
fn substitutes_env_without_breaking_toml() {
    let c = ok(&format!(
        "[log]\nlevel = \"${{TRICKY}} $${{LITERAL}} $5\"\n{PROVIDER}"
    ));
    assert_eq!(
        c.log.level.as_deref(),
        Some("a\"b\\c\nd ${NOT_EXPANDED} ${LITERAL} $5")
    );
    assert_eq!(c.providers[0].api_key, SECRET);
}

#[test]
fn secrets_never_reach_debug_or_summary() {
    let with_password = EXAMPLE.replace(
        "database = \"tailmeter\"",
        "database = \"tailmeter\"\npassword = \"${CH_PASSWORD}\"",
    );
    let c = ok(&with_password);
    assert_eq!(
        c.clickhouse.as_ref().unwrap().password.as_deref(),
        Some("hunter2-secret")
    );
    for shown in [format!("{c:?}"), format!("{c:#?}"), c.summary()] {
        assert!(
            !shown.contains(SECRET) && !shown.contains("hunter2"),
            "{shown}"
        );
    }
    assert!(format!("{c:?}").contains("<redacted>"));
    let summary = c.summary();
    assert!(
        summary.contains(&format!("api_key: set ({} chars)", SECRET.len())),
        "{summary}"
    );
    for needle in [
        "listen: 127.0.0.1:8080",
        "openai (openai) https://api.openai.com",
        "gpt-4.1-mini -> openai/gpt-4.1-mini",
        "tag:k8s, alice@example.com -> openai/*, anthropic/claude-haiku-*",
        "k8s-daily: tag tag:k8s, 2000000 tokens per 24h, on exceed: alert",
        "gpt-4.1-mini: input 0.4, output 1.6, cache_read 0.1, cache_write = input",
        "no price, counted at 0: openai/gpt-5-mini",
        "events: ClickHouse http://127.0.0.1:8123 database tailmeter password set",
        "traces: OTLP http://127.0.0.1:4317",
    ] {
        assert!(
            summary.contains(needle),
            "missing {needle:?} in:\n{summary}"
        );
    }
    assert!(ok("")
        .summary()
        .contains("no grants: every caller may use every model"));
}

#[test]
fn load_reads_files_and_reports_missing_ones() {
    let path =
        std::env::temp_dir().join(format!("tailmeter-config-test-{}.toml", std::process::id()));
    std::fs::write(&path, "[server]\nthreads = 2\n").unwrap();
    let loaded = load(&path);
    std::fs::remove_file(&path).unwrap();
    assert_eq!(loaded.unwrap().server.threads, 2);
    let e = load(Path::new("/nonexistent/tailmeter.toml")).expect_err("missing file");
    assert_eq!((e.line, &e.key), (None, &None));
    assert!(
        e.to_string()
            .starts_with("/nonexistent/tailmeter.toml: cannot read: "),
        "{e}"
    );
}

#[test]
fn providers_may_speak_http2() {
    let provider = |extra: &str| {
        format!(
            "[[providers]]\nname = \"p\"\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:8000\"\napi_key = \"k\"\nmodels = [\"m\"]\n{extra}"
        )
    };
    assert!(!ok(&provider("")).providers[0].http2);
    assert!(ok(&provider("http2 = true\n")).providers[0].http2);
    assert!(parse_text(&provider("http2 = \"yes\"\n")).is_err());
}

#[test]
fn providers_take_an_idle_timeout() {
    let provider = |extra: &str| {
        format!(
            "[[providers]]\nname = \"p\"\nkind = \"gemini\"\nbase_url = \"https://x\"\napi_key = \"k\"\nmodels = [\"m\"]\n{extra}"
        )
    };
    let default = ok(&provider(""));
    assert_eq!(default.providers[0].idle_timeout, Duration::from_secs(300));
    let set = ok(&provider("idle_timeout = \"90s\"\n"));
    assert_eq!(set.providers[0].idle_timeout, Duration::from_secs(90));
    assert_eq!(
        default.providers[0].connect_timeout,
        Duration::from_secs(10)
    );
    let set = ok(&provider("connect_timeout = \"2s\"\n"));
    assert_eq!(set.providers[0].connect_timeout, Duration::from_secs(2));
    rejects(
        &provider("idle_timeout = \"0s\"\n"),
        7,
        "providers[0].idle_timeout",
        "positive duration",
    );
    rejects(
        &provider("idle_timeout = \"soon\"\n"),
        7,
        "providers[0].idle_timeout",
        "positive duration",
    );
}

#[test]
fn first_byte_timeout_defaults_to_the_idle_timeout() {
    let provider = |extra: &str| {
        format!(
            "[[providers]]\nname = \"p\"\nkind = \"openai\"\nbase_url = \"http://x\"\napi_key = \"k\"\nmodels = [\"m\"]\n{extra}"
        )
    };
    let default = ok(&provider(""));
    assert_eq!(
        default.providers[0].first_byte_timeout,
        Duration::from_secs(300)
    );
    let idle = ok(&provider("idle_timeout = \"20s\"\n"));
    assert_eq!(
        idle.providers[0].first_byte_timeout,
        Duration::from_secs(20)
    );
    let set = ok(&provider(
        "idle_timeout = \"20s\"\nfirst_byte_timeout = \"10m\"\n",
    ));
    assert_eq!(
        set.providers[0].first_byte_timeout,
        Duration::from_secs(600)
    );
    assert_eq!(set.providers[0].idle_timeout, Duration::from_secs(20));
    rejects(
        &provider("first_byte_timeout = \"0s\"\n"),
        7,
        "providers[0].first_byte_timeout",
        "positive duration",
    );
}

#[test]
fn server_takes_a_client_header_timeout() {
    assert_eq!(ok("").server.client_header_timeout, Duration::from_secs(30));
    let set = ok("[server]\nclient_header_timeout = \"5s\"\n");
    assert_eq!(set.server.client_header_timeout, Duration::from_secs(5));
    rejects(
        "[server]\nclient_header_timeout = \"never\"\n",
        2,
        "server.client_header_timeout",
        "positive duration",
    );
    let shown = set.summary();
    assert!(shown.contains("client_header_timeout: 5s"), "{shown}");
}
