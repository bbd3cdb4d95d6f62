//! The ClickHouse sink, split like Vector's: [`config`] (what the user sets, `build` without
//! I/O), [`ddl`] (the table, per server dialect), [`service`] (health check, insert, and which
//! failures are worth retrying). Batching, spooling and retry are the shared pipeline's.
//!
//! Rows go over HTTP as `INSERT INTO requests FORMAT JSONEachRow`, the very lines the spool
//! holds, uncompressed (Debian's 18.16 server speaks no client-side LZ4 of the `clickhouse`
//! crate, and type validation is off for the same reason).

pub mod config;
pub mod ddl;
pub mod service;

pub use config::ClickHouseConfig;
pub use ddl::Dialect;
pub use service::ClickHouseSink;
