//! Log setup. Logs go to stderr ([`output`]: the access log's line per request, written by
//! [`access`], is batched);
//! `RUST_LOG` wins over `[log] level`, which defaults to `info`.
//!
//! Pingora logs whole request headers at debug and trace level, and those carry the client's
//! credential (downstream) or the provider's key (upstream). Credentials must never reach a log at any level, so those modules are held to
//! `info` whatever the filter asks for. And once the gateway is drained for shutdown, Pingora's
//! accept loops failing under their stopping runtimes are not logged as errors.

pub mod access;
mod output;

pub use output::{flush, ACCESS_TARGET};

use std::sync::atomic::{AtomicBool, Ordering};

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

/// Pingora's accept loops, which log a failed `accept()` as an error.
const LISTENER_TARGET: &str = "pingora_core::services::listening";

/// Set once the drained gateway hands over to Pingora's shutdown.
static RUNTIMES_STOPPING: AtomicBool = AtomicBool::new(false);

/// Whether an event may be logged without risking a credential.
pub fn is_safe(metadata: &Metadata<'_>) -> bool {
    *metadata.level() <= Level::INFO
        || !HEADER_LOGGING_TARGETS
            .iter()
            .any(|target| metadata.target().starts_with(target))
}

/// The gateway is drained and Pingora stops its runtimes now: an accept loop still polled as its
/// runtime goes fails ("A Tokio 1.x context was found, but it is being shutdown"), which Pingora
/// logs as an ERROR. That is the shutdown itself, not a fault, and is not logged from here on.
pub fn runtimes_stopping() {
    RUNTIMES_STOPPING.store(true, Ordering::Relaxed);
}

/// Whether an event is a listener's accept failing under a runtime that is stopping.
fn is_shutdown_noise(metadata: &Metadata<'_>) -> bool {
    metadata.target() == LISTENER_TARGET
        && *metadata.level() == Level::ERROR
        && RUNTIMES_STOPPING.load(Ordering::Relaxed)
}

/// Whether an event is logged at all: safe, and not shutdown noise.
fn is_logged(metadata: &Metadata<'_>) -> bool {
    is_safe(metadata) && !is_shutdown_noise(metadata)
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
        .with_filter(filter.and(filter_fn(is_logged).with_max_level_hint(hint)));
    tracing_subscriber::registry().with(layer).init();
    // A panic's message goes straight to stderr: what the access log buffered goes first.
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        flush();
        report(info);
    }));
}

#[cfg(test)]
mod tests {
    use tracing::callsite::DefaultCallsite;
    use tracing::field::FieldSet;
    use tracing::metadata::Kind;

    use super::*;

    static ACCEPT_FAILED: DefaultCallsite = DefaultCallsite::new(&ACCEPT_FAILED_META);
    static ACCEPT_FAILED_META: Metadata<'static> = Metadata::new(
        "accept failed",
        LISTENER_TARGET,
        Level::ERROR,
        None,
        None,
        None,
        FieldSet::new(&[], tracing::callsite::Identifier(&ACCEPT_FAILED)),
        Kind::EVENT,
    );

    #[test]
    fn a_listeners_accept_error_is_logged_until_the_runtimes_stop() {
        assert!(
            is_logged(&ACCEPT_FAILED_META),
            "a real accept failure (EMFILE) matters"
        );
        runtimes_stopping();
        assert!(!is_logged(&ACCEPT_FAILED_META));
    }
}
