//! Where tailmeter's per-request records go: Prometheus metrics and usage events.
//!
//! The proxy builds exactly one [`RequestEvent`] per request in its logging phase and hands it
//! to [`Metrics::record`]; everything a dashboard or a bill needs is derived from that record,
//! so metrics and event rows can never disagree.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod event;
pub mod labels;
pub mod metrics;

pub use event::{RequestEvent, TokenCounts, UsageSource};
pub use metrics::Metrics;
