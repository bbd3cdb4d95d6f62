//! From the raw file to a [`Config`]: substitution, defaults and checks.
//!
//! Every string goes through `${VAR}` substitution here, then is
//! interpreted; every failure names the key path and its line. The checks
//! on providers, grants, budgets and prices live in `validate_routes`.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use super::env::substitute;
use super::error::{ConfigError, KeyPath};
use super::index::KeyIndex;
use super::model::{
    Config, Identity, Log, Metrics, Server, StaticIdentity, TailscaledDown, UnknownPolicy, Who,
};
use super::raw::{RawConfig, RawIdentity, RawServer};
use super::size::parse_duration;
use super::url::parse_base_url;
use super::validate_routes::{budgets, grants, prices, providers};
use super::validate_sinks::{byte_size, clickhouse, events, otlp};

/// What validation needs besides the raw values: where keys are, and the environment.
pub(super) struct Ctx<'a> {
    /// The file, as errors name it.
    pub file: &'a Path,
    /// Where each key sits, for error lines.
    pub index: &'a KeyIndex,
    /// `${VAR}` look-ups.
    pub env: &'a dyn Fn(&str) -> Option<String>,
}

impl Ctx<'_> {
    /// An error about `path`, located at its line (or its nearest parent's).
    pub fn error(&self, path: &KeyPath, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.to_owned(),
            line: self.index.line_of(path),
            key: Some(path.as_str().to_owned()),
            message: message.into(),
        }
    }

    /// `value`, or an error saying the key is required.
    pub fn required<'v, T>(
        &self,
        path: &KeyPath,
        value: &'v Option<T>,
    ) -> Result<&'v T, ConfigError> {
        value
            .as_ref()
            .ok_or_else(|| self.error(path, "is required but missing"))
    }

    /// `raw` with `${VAR}`s substituted.
    pub fn text(&self, path: &KeyPath, raw: &str) -> Result<String, ConfigError> {
        substitute(raw, self.env).map_err(|e| self.error(path, e.to_string()))
    }

    /// Like [`Ctx::text`], and the result must not be empty.
    pub fn non_empty(&self, path: &KeyPath, raw: &str) -> Result<String, ConfigError> {
        let value = self.text(path, raw)?;
        if value.trim().is_empty() {
            return Err(self.error(path, "must not be empty"));
        }
        Ok(value)
    }

    /// A non-empty list of non-empty strings, each substituted.
    pub fn non_empty_list(
        &self,
        path: &KeyPath,
        raw: &[String],
    ) -> Result<Vec<String>, ConfigError> {
        if raw.is_empty() {
            return Err(self.error(path, "must list at least one entry"));
        }
        raw.iter()
            .enumerate()
            .map(|(i, item)| self.non_empty(&path.index(i), item))
            .collect()
    }

    /// One of `options`, by its name in the file.
    pub fn choice<T: Copy>(
        &self,
        path: &KeyPath,
        raw: &str,
        options: &[(&str, T)],
    ) -> Result<T, ConfigError> {
        let value = self.text(path, raw)?;
        options
            .iter()
            .find(|(name, _)| *name == value)
            .map(|&(_, v)| v)
            .ok_or_else(|| {
                let names: Vec<String> = options.iter().map(|(n, _)| format!("\"{n}\"")).collect();
                self.error(
                    path,
                    format!("`{value}` is not one of {}", names.join(", ")),
                )
            })
    }

    /// A positive integer.
    pub fn positive(&self, path: &KeyPath, value: i64) -> Result<u64, ConfigError> {
        u64::try_from(value)
            .ok()
            .filter(|&v| v > 0)
            .ok_or_else(|| self.error(path, format!("must be greater than 0, not {value}")))
    }

    /// A positive duration such as "60s" at `path`, or `default` when the key is absent.
    pub fn timeout(
        &self,
        path: &KeyPath,
        raw: &Option<String>,
        default: Duration,
    ) -> Result<Duration, ConfigError> {
        let Some(raw) = raw else {
            return Ok(default);
        };
        parse_duration(&self.text(path, raw)?)
            .ok()
            .filter(|d| !d.is_zero())
            .ok_or_else(|| self.error(path, "expected a positive duration such as \"60s\""))
    }

    /// An `http(s)://` URL, checked and returned as written (substituted).
    pub fn url(&self, path: &KeyPath, raw: &str) -> Result<String, ConfigError> {
        let value = self.text(path, raw)?;
        parse_base_url(&value).map_err(|e| self.error(path, e))?;
        Ok(value)
    }
}

/// Turns the raw file into a validated [`Config`].
pub(super) fn validate(raw: &RawConfig, ctx: &Ctx<'_>) -> Result<Config, ConfigError> {
    let root = KeyPath::default();
    // In file order, so the first error reported is usually the first in the file.
    let server = server(&raw.server, &root.key("server"), ctx)?;
    let identity = identity(&raw.identity, &root.key("identity"), ctx)?;
    let providers = providers(&raw.providers, &root.key("providers"), ctx)?;
    Ok(Config {
        server,
        identity,
        grants: grants(&raw.grants, &root.key("grants"), ctx)?,
        budgets: budgets(&raw.budgets, &root.key("budgets"), ctx)?,
        prices: prices(&raw.prices, &providers, &root.key("prices"), ctx)?,
        providers,
        metrics: metrics(raw.metrics.max_identities, &root.key("metrics"), ctx)?,
        clickhouse: raw
            .clickhouse
            .as_ref()
            .map(|ch| clickhouse(ch, &root.key("clickhouse"), ctx))
            .transpose()?,
        otlp: raw
            .otlp
            .as_ref()
            .map(|o| otlp(o, &root.key("otlp"), ctx))
            .transpose()?,
        events: events(&raw.events, &root.key("events"), ctx)?,
        log: Log {
            level: raw
                .log
                .level
                .as_ref()
                .map(|level| ctx.non_empty(&root.key("log").key("level"), level))
                .transpose()?,
        },
    })
}

fn server(raw: &RawServer, path: &KeyPath, ctx: &Ctx<'_>) -> Result<Server, ConfigError> {
    let mut server = Server::default();
    let address = |key: &str, raw: &Option<String>, default: SocketAddr| {
        let path = path.key(key);
        raw.as_ref().map_or(Ok(default), |raw| {
            let text = ctx.text(&path, raw)?;
            text.parse::<SocketAddr>().map_err(|_| {
                ctx.error(
                    &path,
                    format!("`{text}` is not an IP:PORT address such as 127.0.0.1:8080"),
                )
            })
        })
    };
    server.listen = address("listen", &raw.listen, server.listen)?;
    server.admin_listen = address("admin_listen", &raw.admin_listen, server.admin_listen)?;
    if server.listen == server.admin_listen && server.listen.port() != 0 {
        return Err(ctx.error(
            &path.key("admin_listen"),
            format!("must differ from listen ({})", server.listen),
        ));
    }
    if let Some(size) = &raw.max_request_body {
        server.max_request_body = byte_size(ctx, &path.key("max_request_body"), size)?;
    }
    if let Some(grace) = &raw.shutdown_grace {
        let path = path.key("shutdown_grace");
        let text = ctx.text(&path, grace)?;
        server.shutdown_grace = parse_duration(&text).map_err(|e| ctx.error(&path, e))?;
    }
    let positive = |key: &str, raw: &Option<String>, default: Duration| {
        ctx.timeout(&path.key(key), raw, default)
    };
    server.client_body_timeout = positive(
        "client_body_timeout",
        &raw.client_body_timeout,
        server.client_body_timeout,
    )?;
    server.client_header_timeout = positive(
        "client_header_timeout",
        &raw.client_header_timeout,
        server.client_header_timeout,
    )?;
    if let Some(threads) = raw.threads {
        let path = path.key("threads");
        let threads = ctx.positive(&path, threads)?;
        server.threads = usize::try_from(threads).map_err(|_| ctx.error(&path, "is too large"))?;
    }
    Ok(server)
}

fn identity(raw: &RawIdentity, path: &KeyPath, ctx: &Ctx<'_>) -> Result<Identity, ConfigError> {
    let defaults = Identity::default();
    let static_path = path.key("static");
    let duration = |key: &str, raw: &Option<String>, default: Duration, zero_ok: bool| {
        let path = path.key(key);
        let Some(raw) = raw else {
            return Ok(default);
        };
        let value = parse_duration(&ctx.text(&path, raw)?).map_err(|e| ctx.error(&path, e))?;
        if value.is_zero() && !zero_ok {
            return Err(ctx.error(&path, "must be longer than 0"));
        }
        Ok(value)
    };
    Ok(Identity {
        capability: raw
            .capability
            .as_ref()
            .map(|cap| {
                let path = path.key("capability");
                let cap = ctx.non_empty(&path, cap)?;
                if cap.contains('/') && !cap.contains(char::is_whitespace) {
                    Ok(cap)
                } else {
                    Err(ctx.error(
                        &path,
                        format!("`{cap}` is not an app capability name such as `example.com/cap/tailmeter`"),
                    ))
                }
            })
            .transpose()?,
        whois_timeout: duration("whois_timeout", &raw.whois_timeout, defaults.whois_timeout, false)?,
        cache_ttl: duration("cache_ttl", &raw.cache_ttl, defaults.cache_ttl, true)?,
        negative_cache_ttl: duration(
            "negative_cache_ttl",
            &raw.negative_cache_ttl,
            defaults.negative_cache_ttl,
            true,
        )?,
        on_tailscaled_down: match &raw.on_tailscaled_down {
            Some(policy) => ctx.choice(
                &path.key("on_tailscaled_down"),
                policy,
                &[
                    ("reject", TailscaledDown::Reject),
                    ("fallback", TailscaledDown::Fallback),
                ],
            )?,
            None => defaults.on_tailscaled_down,
        },
        tailscale_socket: match &raw.tailscale_socket {
            Some(socket) => ctx.text(&path.key("tailscale_socket"), socket)?,
            None => defaults.tailscale_socket,
        },
        trust_serve_headers: raw
            .trust_serve_headers
            .unwrap_or(defaults.trust_serve_headers),
        unknown: match &raw.unknown {
            Some(unknown) => ctx.choice(
                &path.key("unknown"),
                unknown,
                &[
                    ("reject", UnknownPolicy::Reject),
                    ("anonymous", UnknownPolicy::Anonymous),
                ],
            )?,
            None => defaults.unknown,
        },
        static_: raw
            .static_
            .iter()
            .enumerate()
            .map(|(i, entry)| {
                let path = static_path.index(i);
                let cidr_path = path.key("cidr");
                let cidr = ctx.text(&cidr_path, ctx.required(&cidr_path, &entry.cidr)?)?;
                let cidr = cidr
                    .parse::<ipnet::IpNet>()
                    .or_else(|_| cidr.parse::<IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| {
                        ctx.error(
                            &cidr_path,
                            format!("`{cidr}` is not an address or CIDR such as 100.64.0.0/10"),
                        )
                    })?;
                let who = match (&entry.login, &entry.tags) {
                    (Some(login), None) => Who::Login(ctx.non_empty(&path.key("login"), login)?),
                    (None, Some(tags)) => Who::Tags(tag_set(&path.key("tags"), tags, ctx)?),
                    _ => {
                        return Err(ctx.error(&path, "give exactly one of `login` or `tags`"));
                    }
                };
                Ok(StaticIdentity { cidr, who })
            })
            .collect::<Result<_, _>>()?,
    })
}

/// A non-empty list of `tag:…` names, sorted and deduplicated.
fn tag_set(path: &KeyPath, raw: &[String], ctx: &Ctx<'_>) -> Result<Vec<String>, ConfigError> {
    let mut tags = ctx.non_empty_list(path, raw)?;
    for (i, tag) in tags.iter().enumerate() {
        check_tag(&path.index(i), tag, ctx)?;
    }
    tags.sort();
    tags.dedup();
    Ok(tags)
}

/// A tag must look like `tag:NAME`.
pub(super) fn check_tag(path: &KeyPath, tag: &str, ctx: &Ctx<'_>) -> Result<(), ConfigError> {
    match tag.strip_prefix("tag:") {
        Some(name) if !name.is_empty() => Ok(()),
        _ => Err(ctx.error(
            path,
            format!("`{tag}` is not a tag: tags look like `tag:NAME`"),
        )),
    }
}

fn metrics(raw: Option<i64>, path: &KeyPath, ctx: &Ctx<'_>) -> Result<Metrics, ConfigError> {
    let Some(max) = raw else {
        return Ok(Metrics::default());
    };
    let path = path.key("max_identities");
    let max = ctx.positive(&path, max)?;
    Ok(Metrics {
        max_identities: usize::try_from(max).map_err(|_| ctx.error(&path, "is too large"))?,
    })
}
