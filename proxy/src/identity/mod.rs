//! Who is calling: the caller's identity, resolved from the TCP peer of each request.
//!
//! In order: `tailscale serve` headers (only when `trust_serve_headers` is on and the peer is
//! loopback, which is how serve hands a request on), then `[[identity.static]]` entries (the
//! most specific CIDR wins), then tailscaled's LocalAPI whois of the peer (cached), then the
//! `unknown` policy. A tagged node's identity is its tags sorted and joined with `,`, a user's
//! is its login. When tailscaled cannot answer, `on_tailscaled_down` decides: fail closed (the
//! default) or fall back to `unknown`. Every resolution is counted in
//! `tailmeter_identity_lookups_total{source,result}`.

mod cache;
mod serve_headers;
mod static_map;
mod whois;

#[cfg(test)]
mod socket_tests;
#[cfg(test)]
mod tests;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use http::HeaderMap;
use prometheus::{IntCounterVec, Opts, Registry};

pub use cache::{Served, WhoisCache};
pub use serve_headers::{LOGIN_HEADER, NAME_HEADER};
pub use static_map::StaticMap;
pub use whois::{WhoisAnswer, WhoisClient, WhoisError};

use crate::config::{Identity as IdentityConfig, TailscaledDown, UnknownPolicy, Who};

/// The identity of a caller whose identity could not be resolved, as a label value.
pub const UNIDENTIFIED: &str = "__unidentified__";
/// The identity every unidentified caller gets under `unknown = "anonymous"`.
pub const ANONYMOUS: &str = "anonymous";

/// A resolved caller.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Caller {
    /// The identity metrics, grants and budgets use: a login, tags joined with `,`, or `anonymous`.
    pub identity: String,
    /// The user's login name, when the caller is a user.
    pub login: Option<String>,
    /// The user's display name, when known.
    pub display_name: Option<String>,
    /// The node's tags, sorted; empty for a user.
    pub tags: Vec<String>,
    /// The node's name, when known.
    pub node: Option<String>,
    /// The node's `StableID`, when known.
    pub node_id: Option<String>,
    /// Model globs the tailnet policy grants through the configured app capability.
    pub capability_models: Vec<String>,
}

impl Caller {
    /// A caller from a `Who` of the configuration (or of a whois answer).
    pub fn from_who(who: &Who, node: Option<String>) -> Self {
        match who {
            Who::Login(login) => Caller {
                identity: login.clone(),
                login: Some(login.clone()),
                node,
                ..Caller::default()
            },
            Who::Tags(tags) => Caller {
                identity: tags.join(","),
                tags: tags.clone(),
                node,
                ..Caller::default()
            },
        }
    }

    /// The caller every unidentified request becomes under `unknown = "anonymous"`.
    pub fn anonymous() -> Self {
        Caller {
            identity: ANONYMOUS.to_owned(),
            ..Caller::default()
        }
    }

    /// Whether a grant or budget subject (`*`, an identity, a login or a tag) names this caller.
    pub fn is_named_by(&self, subject: &str) -> bool {
        subject == "*"
            || subject == self.identity
            || self.login.as_deref() == Some(subject)
            || self.tags.iter().any(|tag| tag == subject)
    }
}

/// Why a request has no caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unresolved {
    /// Nothing identifies the address and `unknown = "reject"`; says what was tried.
    Unknown(String),
    /// tailscaled could not answer and `on_tailscaled_down = "reject"`.
    TailscaledDown(WhoisError),
}

/// Resolves request peers to callers.
pub struct Resolver {
    statics: StaticMap,
    whois: Option<(WhoisClient, WhoisCache)>,
    trust_serve_headers: bool,
    unknown: UnknownPolicy,
    on_tailscaled_down: TailscaledDown,
    /// The caller every unidentified request shares under `unknown = "anonymous"`.
    anonymous: Arc<Caller>,
    lookups: IntCounterVec,
}

impl Resolver {
    /// A resolver for the `[identity]` section; its lookup counter is registered on `registry`.
    pub fn new(config: &IdentityConfig, registry: &Registry) -> Self {
        let lookups = IntCounterVec::new(
            Opts::new(
                "tailmeter_identity_lookups_total",
                "Caller identity resolutions, by where the answer came from (serve_header, static, cache, whois, policy) and its result.",
            ),
            &["source", "result"],
        )
        .expect("valid metric family");
        registry
            .register(Box::new(lookups.clone()))
            .expect("metric registered once");
        Self::with_lookups(config, lookups)
    }

    /// A resolver for a reloaded `[identity]` section, counting into this one's lookup counter
    /// (a metric family is registered once per process). Its whois cache starts empty.
    pub fn renewed(&self, config: &IdentityConfig) -> Self {
        Self::with_lookups(config, self.lookups.clone())
    }

    fn with_lookups(config: &IdentityConfig, lookups: IntCounterVec) -> Self {
        let whois = (!config.tailscale_socket.is_empty()).then(|| {
            (
                WhoisClient::new(
                    &config.tailscale_socket,
                    config.whois_timeout,
                    config.capability.clone(),
                ),
                WhoisCache::new(config.cache_ttl, config.negative_cache_ttl),
            )
        });
        Self {
            statics: StaticMap::new(&config.static_),
            whois,
            trust_serve_headers: config.trust_serve_headers,
            unknown: config.unknown,
            on_tailscaled_down: config.on_tailscaled_down,
            anonymous: Arc::new(Caller::anonymous()),
            lookups,
        }
    }

    fn count(&self, source: &str, result: &str) {
        self.lookups.with_label_values(&[source, result]).inc();
    }

    /// The caller behind a request from `peer` carrying `headers`.
    pub async fn resolve(
        &self,
        peer: SocketAddr,
        headers: &HeaderMap,
    ) -> Result<Arc<Caller>, Unresolved> {
        let ip = canonical(peer.ip());
        if let Some(caller) = serve_headers::caller(self.trust_serve_headers, ip, headers) {
            self.count("serve_header", "hit");
            return Ok(Arc::new(caller));
        }
        if let Some(caller) = self.statics.lookup(ip) {
            self.count("static", "hit");
            return Ok(Arc::clone(caller));
        }
        let tried = match &self.whois {
            None => "no identity.static entry matches it and tailscale whois is off".to_owned(),
            Some((client, cache)) => {
                let peer = SocketAddr::new(ip, peer.port());
                let (answer, served) = cache
                    .get_or_fetch(ip, Instant::now(), || client.whois(peer))
                    .await;
                let source = match served {
                    Served::Cache => "cache",
                    Served::Fetched => "whois",
                };
                match answer {
                    Ok(Some(caller)) => {
                        self.count(source, "found");
                        return Ok(caller);
                    }
                    Ok(None) => {
                        self.count(source, "not_found");
                        "no identity.static entry matches it and tailscaled knows no node at this address".to_owned()
                    }
                    Err(error) => {
                        self.count(source, error.label());
                        if self.on_tailscaled_down == TailscaledDown::Reject {
                            return Err(Unresolved::TailscaledDown(error));
                        }
                        format!("no identity.static entry matches it and {error}")
                    }
                }
            }
        };
        match self.unknown {
            UnknownPolicy::Anonymous => {
                self.count("policy", "anonymous");
                Ok(Arc::clone(&self.anonymous))
            }
            UnknownPolicy::Reject => {
                self.count("policy", "rejected");
                Err(Unresolved::Unknown(tried))
            }
        }
    }
}

/// An IPv4 address seen through an IPv6 socket (`::ffff:a.b.c.d`) as the IPv4 address it is.
pub fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
        v4 => v4,
    }
}
