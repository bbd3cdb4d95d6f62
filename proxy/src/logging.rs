//! Log setup. Logs go to stderr; `RUST_LOG` wins over `[log] level`, which defaults to `info`.
//!
//! Pingora logs whole upstream request headers at debug and trace level, and those carry the
//! provider's key. Credentials must never reach a log at any level, so those modules are held to
//! `info` whatever the filter asks for.

use tracing::{Level, Metadata};
use tracing_subscriber::filter::{filter_fn, EnvFilter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

/// Log targets that print request headers (with credentials) below `info`.
const HEADER_LOGGING_TARGETS: &[&str] = &[
    "pingora_proxy::proxy_h1",
    "pingora_proxy::proxy_h2",
    "pingora_core::protocols::http::v1::client",
    "pingora_core::protocols::http::v2::client",
];

/// Whether an event may be logged without risking a credential.
pub fn is_safe(metadata: &Metadata<'_>) -> bool {
    *metadata.level() <= Level::INFO
        || !HEADER_LOGGING_TARGETS
            .iter()
            .any(|target| metadata.target().starts_with(target))
}

/// Installs the global subscriber.
pub fn init(level: Option<&str>) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level.unwrap_or("info")))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_filter(filter)
        .with_filter(filter_fn(is_safe));
    tracing_subscriber::registry().with(layer).init();
}
