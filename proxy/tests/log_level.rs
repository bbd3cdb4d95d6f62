//! The log level hint tailmeter installs follows the configured filter. Pingora logs through the
//! `log` crate, whose max level is taken from that hint: left at TRACE, every Pingora `trace!`
//! evaluates its arguments (on each body chunk, a lossy UTF-8 copy of the read buffer) before
//! the filter drops the event. Its own process, since it installs the global subscriber.

use tracing::level_filters::LevelFilter;

#[test]
fn the_level_hint_follows_the_filter() {
    std::env::remove_var("RUST_LOG");
    tailmeter::logging::init(Some("info"));
    assert_eq!(LevelFilter::current(), LevelFilter::INFO);
}
