//! Where tailmeter's per-request records go: Prometheus metrics, usage rows and trace spans.
//!
//! The proxy builds exactly one [`RequestEvent`] per request when it is over (as its last bytes
//! pass, or in the logging phase), counts it in [`Metrics::record`] and hands it to
//! [`Exporters::export`]; everything a dashboard or a bill needs is derived from that record, so
//! metrics, rows and spans can never disagree.
//!
//! Usage rows ([`row`]) go through one shared [`pipeline`] (an on-disk journal bounded in bytes,
//! the [`spool`], then batching and retry) into one [`sink::Sink`]: the embedded JSON-lines sink ([`jsonl`]) or
//! ClickHouse ([`clickhouse`]). Spans go to an OTLP collector ([`traces`]). Nothing on the
//! request path ever waits for either.
//!
//! Duplicates from a replay: every row carries its `request_id`; ClickHouse stores rows in a
//! `ReplacingMergeTree` keyed on it (works on every server version, collapses at merge time, so
//! exact queries use `FINAL`), and modern servers also get a per-batch
//! `insert_deduplication_token`, which drops an identical replayed batch at insert time so that
//! even plain `count()` is exact. See [`clickhouse::ddl`].
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod clickhouse;
pub mod event;
pub mod health;
pub mod jsonl;
pub mod labels;
pub mod metrics;
pub mod pipeline;
pub mod retry;
pub mod row;
pub mod runtime;
pub mod sink;
pub mod spool;
pub mod traces;

pub use event::{RequestEvent, SpanIds, TokenCounts, UsageSource, NO_TOKEN_USAGE};
pub use metrics::Metrics;
pub use runtime::{EventSink, Exporters, ExportersConfig, ExportersRuntime};
