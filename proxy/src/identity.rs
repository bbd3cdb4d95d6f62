//! Who is calling: the caller's identity resolved from its source address.
//!
//! Static entries map a source CIDR to a login or to tags (the most specific CIDR wins); an
//! unresolved caller is rejected or becomes `anonymous`, as `identity.unknown` says. A tagged
//! caller's identity is its tags, sorted and joined with `,`.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::config::{Identity as IdentityConfig, UnknownPolicy, Who};

/// The identity of a caller whose identity could not be resolved, as a label value.
pub const UNIDENTIFIED: &str = "__unidentified__";

/// A resolved caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The identity metrics and grants use: a login, or tags joined with `,`, or `anonymous`.
    pub identity: String,
    /// The user's login name, when the caller is a user.
    pub login: Option<String>,
    /// The node's tags, sorted; empty for a user.
    pub tags: Vec<String>,
    /// The node's name, when known.
    pub node: Option<String>,
}

impl Caller {
    /// A caller from a `Who` of the configuration (or of a whois answer).
    pub fn from_who(who: &Who, node: Option<String>) -> Self {
        match who {
            Who::Login(login) => Caller {
                identity: login.clone(),
                login: Some(login.clone()),
                tags: Vec::new(),
                node,
            },
            Who::Tags(tags) => Caller {
                identity: tags.join(","),
                login: None,
                tags: tags.clone(),
                node,
            },
        }
    }

    /// The caller every unidentified request becomes under `unknown = "anonymous"`.
    pub fn anonymous() -> Self {
        Caller {
            identity: "anonymous".to_owned(),
            login: None,
            tags: Vec::new(),
            node: None,
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

/// Resolves source addresses to callers.
#[derive(Debug)]
pub struct Resolver {
    statics: Vec<(IpNet, Caller)>,
    unknown: UnknownPolicy,
}

impl Resolver {
    /// A resolver for the `[identity]` section.
    pub fn new(config: &IdentityConfig) -> Self {
        let mut statics: Vec<(IpNet, Caller)> = config
            .static_
            .iter()
            .map(|entry| (entry.cidr, Caller::from_who(&entry.who, None)))
            .collect();
        // Most specific first, so the first match is the longest prefix.
        statics.sort_by_key(|(net, _)| std::cmp::Reverse(net.prefix_len()));
        Self {
            statics,
            unknown: config.unknown,
        }
    }

    /// The caller at `addr`, or None when it is unidentified and the policy rejects it.
    pub fn resolve(&self, addr: IpAddr) -> Option<Caller> {
        let addr = canonical(addr);
        if let Some((_, caller)) = self.statics.iter().find(|(net, _)| net.contains(&addr)) {
            return Some(caller.clone());
        }
        match self.unknown {
            UnknownPolicy::Anonymous => Some(Caller::anonymous()),
            UnknownPolicy::Reject => None,
        }
    }
}

/// An IPv4 address seen through an IPv6 socket (`::ffff:a.b.c.d`) as the IPv4 address it is.
fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StaticIdentity;

    fn config(unknown: UnknownPolicy) -> IdentityConfig {
        IdentityConfig {
            tailscale_socket: String::new(),
            trust_serve_headers: false,
            unknown,
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
        }
    }

    #[test]
    fn most_specific_entry_wins_and_tags_join() {
        let resolver = Resolver::new(&config(UnknownPolicy::Reject));
        let tagged = resolver.resolve("127.0.0.2".parse().unwrap()).unwrap();
        assert_eq!(tagged.identity, "tag:ci,tag:k8s");
        assert_eq!(tagged.login, None);
        let user = resolver.resolve("127.0.0.5".parse().unwrap()).unwrap();
        assert_eq!(user.identity, "everyone@example.com");
        let mapped = resolver
            .resolve("::ffff:127.0.0.2".parse().unwrap())
            .unwrap();
        assert_eq!(mapped.identity, "tag:ci,tag:k8s");
    }

    #[test]
    fn unknown_policy_applies() {
        let reject = Resolver::new(&config(UnknownPolicy::Reject));
        assert_eq!(reject.resolve("10.1.2.3".parse().unwrap()), None);
        let anonymous = Resolver::new(&config(UnknownPolicy::Anonymous));
        assert_eq!(
            anonymous
                .resolve("10.1.2.3".parse().unwrap())
                .unwrap()
                .identity,
            "anonymous"
        );
    }
}
