//! The `[identity]` keys for tailscale whois: capability grants, timeouts, cache lifetimes and
//! the policy when tailscaled is down.

use super::*;

#[test]
fn whois_defaults_fail_closed() {
    let c = ok(PROVIDER);
    let id = &c.identity;
    assert_eq!(id.tailscale_socket, "/var/run/tailscale/tailscaled.sock");
    assert_eq!(id.capability, None);
    assert_eq!(id.whois_timeout, Duration::from_secs(1));
    assert_eq!(id.cache_ttl, Duration::from_secs(60));
    assert_eq!(id.negative_cache_ttl, Duration::from_secs(5));
    assert_eq!(id.on_tailscaled_down, TailscaledDown::Reject);
    let summary = c.summary();
    assert!(
        summary.contains("when tailscaled is down: reject (503)"),
        "{summary}"
    );
    assert!(
        summary.contains("grants from tailnet capability: off"),
        "{summary}"
    );
}

#[test]
fn whois_keys_parse() {
    let text = format!(
        "[identity]\ncapability = \"example.com/cap/tailmeter\"\nwhois_timeout = \"250ms\"\ncache_ttl = \"5m\"\nnegative_cache_ttl = \"0s\"\non_tailscaled_down = \"fallback\"\n{PROVIDER}"
    );
    let c = ok(&text);
    let id = &c.identity;
    assert_eq!(id.capability.as_deref(), Some("example.com/cap/tailmeter"));
    assert_eq!(id.whois_timeout, Duration::from_millis(250));
    assert_eq!(id.cache_ttl, Duration::from_secs(300));
    assert_eq!(id.negative_cache_ttl, Duration::ZERO);
    assert_eq!(id.on_tailscaled_down, TailscaledDown::Fallback);
    let summary = c.summary();
    assert!(
        summary.contains(
            "timeout 250ms, cache 5m, negative cache 0s, when tailscaled is down: fallback"
        ),
        "{summary}"
    );
    assert!(
        summary.contains("grants from tailnet capability: example.com/cap/tailmeter"),
        "{summary}"
    );
}

#[test]
fn whois_key_rejections() {
    let with = |line: &str| format!("[identity]\n{line}\n{PROVIDER}");
    rejects(
        &with("capability = \"tailmeter\""),
        2,
        "identity.capability",
        "not an app capability name",
    );
    rejects(
        &with("capability = \"\""),
        2,
        "identity.capability",
        "must not be empty",
    );
    rejects(
        &with("whois_timeout = \"0s\""),
        2,
        "identity.whois_timeout",
        "longer than 0",
    );
    rejects(
        &with("cache_ttl = \"soon\""),
        2,
        "identity.cache_ttl",
        "expected a duration",
    );
    rejects(
        &with("on_tailscaled_down = \"open\""),
        2,
        "identity.on_tailscaled_down",
        "`open` is not one of \"reject\", \"fallback\"",
    );
    rejects(
        &with("whois_cache = \"1s\""),
        2,
        "identity.whois_cache",
        "unknown field `whois_cache`",
    );
}
