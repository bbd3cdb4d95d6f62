//! Log setup. Logs go to stderr ([`output`]: the access log's line per request, written by
//! [`access`], is batched);
//! `RUST_LOG` wins over `[log] level`, which defaults to `info`.
//!
//! Pingora logs whole request headers at debug and trace level, and those carry the client's
//! credential (downstream) or the provider's key (upstream). Credentials must never reach a log at any level, so those modules are held to
//! `info` whatever the filter asks for.

pub mod access;
mod output;

pub use output::{flush, ACCESS_TARGET};

use tracing::{Level, Metadata};
use tracing_subscriber::filter::{filter_fn, EnvFilter, FilterExt, LevelFilter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

/// Log targets (and everything under them) that print request headers, with the client's or
/// the provider's credential, below `info`: the proxy logs each downstream request header at
/// trace, the HTTP apps (the admin listener) too, and the HTTP clients the upstream request.
const HEADER_LOGGING_TARGETS: &[&str] = &[
    "pingora_proxy",
    "pingora_core::apps",
    "pingora_core::protocols::http",
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
    // The subscriber's level hint becomes the `log` crate's max level (Pingora logs through
    // `log`). Without it on the outer filter that level stays at TRACE, and every `trace!` in
    // Pingora evaluates its arguments before the filter drops the event: for each body chunk, a
    // lossy UTF-8 copy of the whole read buffer, half of a stream's CPU (tests/bench/RESULTS.md).
    let hint = filter.max_level_hint().unwrap_or(LevelFilter::TRACE);
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(output::LogOutput::get())
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        // One filter, not two nested: with nested per-layer filters `tracing::enabled!` says
        // yes when either does, and the access log asks it (`access::write`).
        .with_filter(filter.and(filter_fn(is_safe).with_max_level_hint(hint)));
    tracing_subscriber::registry().with(layer).init();
    // A panic's message goes straight to stderr: what the access log buffered goes first.
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        flush();
        report(info);
    }));
}
