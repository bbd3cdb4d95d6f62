//! Parsing of the few URLs a config holds (`base_url`, ClickHouse, OTLP).
//!
//! Deliberately narrow: `http` or `https`, a host, an optional port and path.
//! No user info (keys belong in `api_key`/`password`, where they are
//! redacted), no query or fragment, so the proxy can append request paths
//! to the prefix without surprises.

use std::net::Ipv6Addr;

use super::model::BaseUrl;

/// Parses `http[s]://host[:port][/prefix]` into its parts.
pub(super) fn parse_base_url(text: &str) -> Result<BaseUrl, String> {
    let (scheme, rest) = text
        .split_once("://")
        .ok_or("not a URL: expected http://HOST[:PORT][/PATH] or https://…")?;
    let tls = match scheme.to_ascii_lowercase().as_str() {
        "https" => true,
        "http" => false,
        _ => {
            return Err(format!(
                "scheme `{scheme}` is not supported: use http or https"
            ))
        }
    };
    let (authority, path) = rest.split_at(rest.find(['/', '?', '#']).unwrap_or(rest.len()));
    if authority.contains('@') {
        return Err("credentials in the URL are not supported: \
                    use the key's own setting, where it is kept secret"
            .to_owned());
    }
    // Not echoed: a query may carry a secret.
    if path.contains(['?', '#']) {
        return Err("a query or fragment is not supported: \
                    give only scheme, host, port and path"
            .to_owned());
    }
    let (host, port) = split_host_port(authority)?;
    let port = match port {
        None => {
            if tls {
                443
            } else {
                80
            }
        }
        Some(port) => port
            .parse::<u16>()
            .ok()
            .filter(|&p| p != 0)
            .ok_or_else(|| format!("port `{port}` is not a number from 1 to 65535"))?,
    };
    Ok(BaseUrl {
        tls,
        host,
        port,
        path_prefix: path.trim_end_matches('/').to_owned(),
    })
}

/// Splits `host`, `host:port`, `[v6]` or `[v6]:port`; checks the host.
fn split_host_port(authority: &str) -> Result<(String, Option<&str>), String> {
    if let Some(bracketed) = authority.strip_prefix('[') {
        let (v6, after) = bracketed
            .split_once(']')
            .ok_or_else(|| format!("`{authority}`: missing `]` after the IPv6 address"))?;
        v6.parse::<Ipv6Addr>()
            .map_err(|_| format!("`{v6}` is not an IPv6 address"))?;
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':').ok_or_else(|| {
                format!("`{authority}`: expected `:PORT` after the IPv6 address")
            })?),
        };
        return Ok((v6.to_owned(), port));
    }
    let (host, port) = match authority.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    };
    if host.is_empty() {
        return Err("the URL has no host".to_owned());
    }
    if !host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
    {
        return Err(format!("`{host}` is not a valid host name"));
    }
    Ok((host.to_ascii_lowercase(), port))
}
