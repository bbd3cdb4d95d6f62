//! The `requests` table's DDL, adapted to the server it runs on.
//!
//! Modern servers (22.3 and later) get `DateTime64(3, 'UTC')`, `LowCardinality`, column codecs,
//! an optional TTL and a monthly partition. Older ones (Debian's 18.16) get the same columns in
//! the types they have: `DateTime` (whole seconds), plain `String`s (their `LowCardinality` is
//! experimental), no codecs and no TTL.
//!
//! Duplicates from a replay are not counted twice, by two means (see the crate docs): the engine
//! is a `ReplacingMergeTree` whose sorting key ends in `request_id`, on every server; and on
//! modern servers each batch also carries an `insert_deduplication_token` (its content hash),
//! with `non_replicated_deduplication_window` set, so a replayed copy of a batch that did land
//! is dropped at insert time and plain `count()` is exact without `FINAL`.

use crate::row::COLUMNS;

/// The table name (fixed; the database comes from the config and is never formatted into SQL on
/// servers that take identifiers as query parameters).
pub const TABLE: &str = "requests";

/// How many recent insert tokens a modern server remembers for deduplication.
const DEDUP_WINDOW: u32 = 1000;

/// Which DDL a server gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// 22.3 or later.
    Modern,
    /// Anything older (or a version that cannot be read).
    Legacy,
}

impl Dialect {
    /// The dialect of a `SELECT version()` answer such as `26.9.1.1` or `18.16.1`.
    pub fn of_version(version: &str) -> Self {
        let mut parts = version.trim().split('.').map(|p| p.parse::<u32>().ok());
        match (parts.next().flatten(), parts.next().flatten()) {
            (Some(major), Some(minor)) if (major, minor) >= (22, 3) => Dialect::Modern,
            _ => Dialect::Legacy,
        }
    }
}

/// A column's type in each dialect.
fn column_type(name: &str, dialect: Dialect) -> Option<&'static str> {
    let (modern, legacy) = match name {
        "ts" => ("DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1))", "DateTime"),
        "request_id" | "trace_id" => ("String CODEC(ZSTD(1))", "String"),
        "identity" | "login" | "node" | "src_ip" | "provider" | "model" | "response_model"
        | "endpoint" | "usage_source" | "user_agent" => ("LowCardinality(String)", "String"),
        "tags" => ("Array(LowCardinality(String))", "Array(String)"),
        "stream" => ("UInt8", "UInt8"),
        "status" => ("UInt16", "UInt16"),
        "input_tokens" | "output_tokens" | "cache_read_tokens" | "cache_write_tokens"
        | "reasoning_tokens" => ("UInt64 CODEC(T64, ZSTD(1))", "UInt64"),
        "cost_usd" | "duration_ms" => ("Float64 CODEC(Gorilla, ZSTD(1))", "Float64"),
        "ttft_ms" => ("Nullable(Float64)", "Nullable(Float64)"),
        _ => return None,
    };
    Some(match dialect {
        Dialect::Modern => modern,
        Dialect::Legacy => legacy,
    })
}

/// `CREATE DATABASE`: the name is the query parameter `db` on modern servers; older ones take
/// no parameters, so it is quoted as an identifier (the config only admits `[A-Za-z0-9_]`).
pub fn create_database(dialect: Dialect, database: &str) -> String {
    match dialect {
        Dialect::Modern => "CREATE DATABASE IF NOT EXISTS {db:Identifier}".to_owned(),
        Dialect::Legacy => format!("CREATE DATABASE IF NOT EXISTS `{}`", quote_ident(database)),
    }
}

fn quote_ident(name: &str) -> String {
    name.replace('\\', "\\\\").replace('`', "\\`")
}

/// `CREATE TABLE IF NOT EXISTS requests …`, run with the database as the session's default.
/// `ttl_days` expires rows that old (modern servers only).
pub fn create_table(dialect: Dialect, ttl_days: Option<u32>) -> String {
    let columns: Vec<String> = COLUMNS
        .iter()
        .map(|name| {
            // Every column has a type: the unit test below holds COLUMNS and this list together.
            let ty = column_type(name, dialect).unwrap_or("String");
            format!("    {name} {ty}")
        })
        .collect();
    let mut sql = format!(
        "CREATE TABLE IF NOT EXISTS {TABLE}\n(\n{}\n)\nENGINE = ReplacingMergeTree\n\
         PARTITION BY toYYYYMM(ts)\nORDER BY (toDate(ts), identity, request_id)",
        columns.join(",\n")
    );
    if dialect == Dialect::Modern {
        if let Some(days) = ttl_days {
            sql.push_str(&format!("\nTTL toDateTime(ts) + INTERVAL {days} DAY"));
        }
        sql.push_str(&format!(
            "\nSETTINGS non_replicated_deduplication_window = {DEDUP_WINDOW}"
        ));
    }
    sql
}

/// The settings an insert of one batch carries.
pub fn insert_settings(dialect: Dialect, token: String) -> Vec<(&'static str, String)> {
    match dialect {
        Dialect::Modern => vec![("insert_deduplication_token", token)],
        // `DateTime` there cannot read the milliseconds of the row's text; best effort can.
        Dialect::Legacy => vec![("date_time_input_format", "best_effort".to_owned())],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The DDL as users (and the chdb test, tests/python/test_clickhouse_ddl.py) see it, kept in
    /// files beside this module. `TAILMETER_BLESS=1 cargo test` rewrites them.
    #[test]
    fn checked_in_ddl_is_what_the_sink_runs() {
        // The checkout the test runs in, not the one the binary was built from (checkouts that
        // share a target directory share unchanged test binaries).
        let root = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
        let dir = std::path::Path::new(&root).join("src/clickhouse");
        for (file, sql) in [
            (
                "requests.modern.sql",
                create_table(Dialect::Modern, Some(400)),
            ),
            ("requests.legacy.sql", create_table(Dialect::Legacy, None)),
        ] {
            let path = dir.join(file);
            let text = format!("{sql};\n");
            if std::env::var_os("TAILMETER_BLESS").is_some() {
                std::fs::write(&path, &text).unwrap();
            }
            let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
            assert_eq!(
                on_disk,
                text,
                "{} is stale: run with TAILMETER_BLESS=1",
                path.display()
            );
        }
    }

    #[test]
    fn versions_pick_the_dialect() {
        assert_eq!(Dialect::of_version("18.16.1"), Dialect::Legacy);
        assert_eq!(Dialect::of_version("22.2.9.1"), Dialect::Legacy);
        assert_eq!(Dialect::of_version("22.3.1"), Dialect::Modern);
        assert_eq!(Dialect::of_version("26.9.1.1\n"), Dialect::Modern);
        assert_eq!(Dialect::of_version("garbage"), Dialect::Legacy);
    }

    #[test]
    fn every_column_has_a_type_in_both_dialects() {
        for name in COLUMNS {
            assert!(column_type(name, Dialect::Modern).is_some(), "{name}");
            assert!(column_type(name, Dialect::Legacy).is_some(), "{name}");
        }
    }

    #[test]
    fn modern_ddl_has_codecs_ttl_and_dedup() {
        let sql = create_table(Dialect::Modern, Some(400));
        assert!(sql.contains("    ts DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),\n"));
        assert!(sql.contains("    tags Array(LowCardinality(String)),\n"));
        assert!(sql.contains("TTL toDateTime(ts) + INTERVAL 400 DAY"));
        assert!(sql.contains("non_replicated_deduplication_window"));
        assert!(!create_table(Dialect::Modern, None).contains("TTL"));
    }

    #[test]
    fn legacy_ddl_uses_old_types_only() {
        let sql = create_table(Dialect::Legacy, Some(30));
        for absent in ["DateTime64", "LowCardinality", "CODEC", "TTL", "SETTINGS"] {
            assert!(!sql.contains(absent), "{absent} in {sql}");
        }
        assert!(sql.contains("    ts DateTime,\n"));
        assert!(sql.contains("ENGINE = ReplacingMergeTree"));
        assert_eq!(
            create_database(Dialect::Legacy, "a`b"),
            "CREATE DATABASE IF NOT EXISTS `a\\`b`"
        );
    }
}
