//! The file's shape as serde sees it: every table denies unknown keys.
//!
//! Fields are `Option` (or defaulted) so that a missing key is reported by
//! validation, with its path and line, rather than by serde. Strings stay raw
//! here: `${VAR}` substitution and interpretation happen in `validate`.

use std::collections::BTreeMap;

use serde::de::{Deserializer, Visitor};
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawConfig {
    pub server: RawServer,
    pub identity: RawIdentity,
    pub providers: Vec<RawProvider>,
    pub grants: Vec<RawGrant>,
    pub budgets: Vec<RawBudget>,
    pub prices: BTreeMap<String, RawPrice>,
    pub metrics: RawMetrics,
    pub clickhouse: Option<RawClickHouse>,
    pub otlp: Option<RawOtlp>,
    pub events: RawEvents,
    pub log: RawLog,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default, expecting = "a [server] table")]
pub(super) struct RawServer {
    pub listen: Option<String>,
    pub admin_listen: Option<String>,
    pub max_request_body: Option<RawSize>,
    pub shutdown_grace: Option<String>,
    pub threads: Option<i64>,
    pub client_body_timeout: Option<String>,
    pub client_header_timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default, expecting = "an [identity] table")]
pub(super) struct RawIdentity {
    pub tailscale_socket: Option<String>,
    pub trust_serve_headers: Option<bool>,
    pub unknown: Option<String>,
    #[serde(rename = "static")]
    pub static_: Vec<RawStatic>,
    pub capability: Option<String>,
    pub whois_timeout: Option<String>,
    pub cache_ttl: Option<String>,
    pub negative_cache_ttl: Option<String>,
    pub on_tailscaled_down: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(
    deny_unknown_fields,
    default,
    expecting = "an [[identity.static]] table"
)]
pub(super) struct RawStatic {
    pub cidr: Option<String>,
    pub login: Option<String>,
    pub tags: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default, expecting = "a [[providers]] table")]
pub(super) struct RawProvider {
    pub name: Option<String>,
    pub kind: Option<String>,
    pub base_url: Option<String>,
    pub api_key: Option<String>,
    pub models: Option<Vec<String>>,
    pub idle_timeout: Option<String>,
    pub connect_timeout: Option<String>,
    pub first_byte_timeout: Option<String>,
    pub http2: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default, expecting = "a [[grants]] table")]
pub(super) struct RawGrant {
    pub src: Option<Vec<String>>,
    pub models: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default, expecting = "a [[budgets]] table")]
pub(super) struct RawBudget {
    pub name: Option<String>,
    pub tag: Option<String>,
    pub identity: Option<String>,
    pub tokens: Option<i64>,
    pub window: Option<String>,
    pub on_exceed: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default, expecting = "a [prices.MODEL] table")]
pub(super) struct RawPrice {
    pub input: Option<f64>,
    pub output: Option<f64>,
    pub cache_read: Option<f64>,
    pub cache_write: Option<f64>,
    pub audio_input: Option<f64>,
    pub image_input: Option<f64>,
    pub audio_output: Option<f64>,
    pub image_output: Option<f64>,
    pub cache_write_1h: Option<f64>,
    pub audio_minute: Option<f64>,
    pub characters: Option<f64>,
    pub image: Option<f64>,
    pub images: BTreeMap<String, f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default, expecting = "a [metrics] table")]
pub(super) struct RawMetrics {
    pub max_identities: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default, expecting = "a [clickhouse] table")]
pub(super) struct RawClickHouse {
    pub url: Option<String>,
    pub database: Option<String>,
    pub user: Option<String>,
    pub password: Option<String>,
    pub ttl: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default, expecting = "an [otlp] table")]
pub(super) struct RawOtlp {
    pub endpoint: Option<String>,
    pub protocol: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default, expecting = "an [events] table")]
pub(super) struct RawEvents {
    pub dir: Option<String>,
    pub enabled: Option<bool>,
    pub batch_rows: Option<i64>,
    pub batch_interval: Option<String>,
    pub spool_dir: Option<String>,
    pub spool_max_bytes: Option<RawSize>,
    pub rotate_size: Option<RawSize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default, expecting = "a [log] table")]
pub(super) struct RawLog {
    pub level: Option<String>,
}

/// A byte size as written: an integer count of bytes, or a string such as `"32MiB"`.
#[derive(Debug)]
pub(super) enum RawSize {
    Bytes(i64),
    Text(String),
}

impl<'de> Deserialize<'de> for RawSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SizeVisitor;

        impl Visitor<'_> for SizeVisitor {
            type Value = RawSize;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a size: a number of bytes or a string such as \"32MiB\"")
            }

            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<RawSize, E> {
                Ok(RawSize::Bytes(v))
            }

            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<RawSize, E> {
                i64::try_from(v)
                    .map(RawSize::Bytes)
                    .map_err(|_| E::custom(format!("size {v} is too large")))
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawSize, E> {
                Ok(RawSize::Text(v.to_owned()))
            }
        }

        deserializer.deserialize_any(SizeVisitor)
    }
}
