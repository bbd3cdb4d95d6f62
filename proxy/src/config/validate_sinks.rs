//! Validation of where records go: `[events]` (the pipeline and the embedded sink),
//! `[clickhouse]` and `[otlp]`.

use std::path::PathBuf;
use std::time::Duration;

use super::error::{ConfigError, KeyPath};
use super::model::{ClickHouse, Events, Otlp, OtlpProtocol};
use super::raw::{RawClickHouse, RawEvents, RawOtlp, RawSize};
use super::size::{parse_duration, parse_size};
use super::validate::Ctx;

const DAY: u64 = 86_400;

/// A byte size written as a number of bytes or a string such as `"32MiB"`; must be > 0.
pub(super) fn byte_size(ctx: &Ctx<'_>, path: &KeyPath, raw: &RawSize) -> Result<u64, ConfigError> {
    let bytes = match raw {
        RawSize::Bytes(n) => *n,
        RawSize::Text(text) => {
            let text = ctx.text(path, text)?;
            let bytes = parse_size(&text).map_err(|e| ctx.error(path, e))?;
            i64::try_from(bytes).map_err(|_| ctx.error(path, format!("`{text}` is too large")))?
        }
    };
    ctx.positive(path, bytes)
}

/// A duration such as `"1s"`; must be > 0.
fn duration(ctx: &Ctx<'_>, path: &KeyPath, raw: &str) -> Result<Duration, ConfigError> {
    let value = parse_duration(&ctx.text(path, raw)?).map_err(|e| ctx.error(path, e))?;
    if value.is_zero() {
        return Err(ctx.error(path, "must be longer than 0"));
    }
    Ok(value)
}

/// A positive count that fits in memory.
fn count(ctx: &Ctx<'_>, path: &KeyPath, raw: i64) -> Result<usize, ConfigError> {
    let value = ctx.positive(path, raw)?;
    usize::try_from(value).map_err(|_| ctx.error(path, "is too large"))
}

pub(super) fn events(
    raw: &RawEvents,
    path: &KeyPath,
    ctx: &Ctx<'_>,
) -> Result<Events, ConfigError> {
    let mut events = Events::default();
    if let Some(dir) = &raw.dir {
        events.dir = PathBuf::from(ctx.non_empty(&path.key("dir"), dir)?);
    }
    events.spool_dir = match &raw.spool_dir {
        Some(dir) => PathBuf::from(ctx.non_empty(&path.key("spool_dir"), dir)?),
        None => events.dir.join("spool"),
    };
    events.enabled = raw.enabled.unwrap_or(events.enabled);
    if let Some(n) = raw.batch_rows {
        events.batch_rows = count(ctx, &path.key("batch_rows"), n)?;
    }
    if let Some(interval) = &raw.batch_interval {
        events.batch_interval = duration(ctx, &path.key("batch_interval"), interval)?;
    }
    if let Some(size) = &raw.spool_max_bytes {
        events.spool_max_bytes = byte_size(ctx, &path.key("spool_max_bytes"), size)?;
    }
    if let Some(size) = &raw.rotate_size {
        events.rotate_size = byte_size(ctx, &path.key("rotate_size"), size)?;
    }
    Ok(events)
}

pub(super) fn clickhouse(
    raw: &RawClickHouse,
    path: &KeyPath,
    ctx: &Ctx<'_>,
) -> Result<ClickHouse, ConfigError> {
    let url_path = path.key("url");
    let optional = |key: &str, value: &Option<String>| {
        value
            .as_ref()
            .map(|v| ctx.text(&path.key(key), v))
            .transpose()
    };
    let database = match &raw.database {
        Some(db) => {
            let db_path = path.key("database");
            let db = ctx.non_empty(&db_path, db)?;
            let identifier = db.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                && db.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !identifier {
                return Err(ctx.error(
                    &db_path,
                    format!("`{db}` is not a database name: use letters, digits and `_`"),
                ));
            }
            db
        }
        None => "tailmeter".to_owned(),
    };
    let ttl = raw
        .ttl
        .as_ref()
        .map(|ttl| {
            let ttl_path = path.key("ttl");
            let value = duration(ctx, &ttl_path, ttl)?;
            if value.as_secs() % DAY != 0 || value.subsec_nanos() != 0 {
                return Err(ctx.error(
                    &ttl_path,
                    "must be a whole number of days, such as \"400d\"",
                ));
            }
            Ok(value)
        })
        .transpose()?;
    Ok(ClickHouse {
        url: ctx.url(&url_path, ctx.required(&url_path, &raw.url)?)?,
        database,
        user: optional("user", &raw.user)?,
        password: optional("password", &raw.password)?,
        ttl,
    })
}

pub(super) fn otlp(raw: &RawOtlp, path: &KeyPath, ctx: &Ctx<'_>) -> Result<Otlp, ConfigError> {
    let endpoint_path = path.key("endpoint");
    let endpoint = ctx.required(&endpoint_path, &raw.endpoint)?;
    Ok(Otlp {
        endpoint: ctx.url(&endpoint_path, endpoint)?,
        protocol: match &raw.protocol {
            Some(protocol) => ctx.choice(
                &path.key("protocol"),
                protocol,
                &[("grpc", OtlpProtocol::Grpc), ("http", OtlpProtocol::Http)],
            )?,
            None => OtlpProtocol::Grpc,
        },
    })
}
