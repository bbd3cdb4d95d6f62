//! Identity from `tailscale serve`: when tailscaled proxies a tailnet request to a local
//! backend, it connects from loopback and names the user in `Tailscale-User-Login` (and
//! `Tailscale-User-Name`). Those headers are believed only when `trust_serve_headers` is on and
//! the TCP peer is loopback; anyone else could type them. They never reach a provider
//! either way: `upstream` strips them with the client credentials.

use std::net::IpAddr;

use http::HeaderMap;

use super::Caller;
use crate::config::Who;

/// The header carrying the tailnet user's login name.
pub const LOGIN_HEADER: &str = "tailscale-user-login";
/// The header carrying the tailnet user's display name.
pub const NAME_HEADER: &str = "tailscale-user-name";
/// Longest login accepted from the header.
const MAX_LOGIN: usize = 256;

/// The caller named by serve headers, when they may be believed for a request from `peer`.
pub fn caller(trusted: bool, peer: IpAddr, headers: &HeaderMap) -> Option<Caller> {
    if !trusted || !peer.is_loopback() {
        return None;
    }
    let login = header(headers, LOGIN_HEADER).filter(|l| {
        l.len() <= MAX_LOGIN && !l.chars().any(|c| c.is_whitespace() || c.is_control())
    })?;
    let mut caller = Caller::from_who(&Who::Login(login.to_owned()), None);
    caller.display_name = header(headers, NAME_HEADER).map(str::to_owned);
    Some(caller)
}

/// A header's value as trimmed, non-empty text.
fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}
