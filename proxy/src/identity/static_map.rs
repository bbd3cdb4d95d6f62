//! `[[identity.static]]`: fixed identities by source CIDR, the most specific entry winning.
//! Consulted before whois, so an explicit entry always overrides the tailnet.

use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;

use super::Caller;
use crate::config::StaticIdentity;

/// The static entries, most specific first.
#[derive(Debug, Default)]
pub struct StaticMap {
    entries: Vec<(IpNet, Arc<Caller>)>,
}

impl StaticMap {
    /// The map for `entries`.
    pub fn new(entries: &[StaticIdentity]) -> Self {
        let mut entries: Vec<(IpNet, Arc<Caller>)> = entries
            .iter()
            .map(|entry| (entry.cidr, Arc::new(Caller::from_who(&entry.who, None))))
            .collect();
        // Most specific first, so the first match is the longest prefix (stable for ties).
        entries.sort_by_key(|(net, _)| std::cmp::Reverse(net.prefix_len()));
        Self { entries }
    }

    /// The caller of the longest prefix containing `addr` (already canonical).
    pub fn lookup(&self, addr: IpAddr) -> Option<&Arc<Caller>> {
        self.entries
            .iter()
            .find(|(net, _)| net.contains(&addr))
            .map(|(_, caller)| caller)
    }
}
