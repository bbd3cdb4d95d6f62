//! The access log's line per metered request, formatted without `tracing`'s formatter.
//!
//! Through `tracing`, the line's seventeen fields went through the fmt layer's field visitor one
//! `dyn` call at a time, and the timestamp through its own formatting: 3.4 % of a JSON request's
//! samples under `perf`, against 1.7 % written here (tests/bench/RESULTS.md, optimization log
//! 40). The line is written straight into a buffer kept per thread, in the very text the fmt
//! layer wrote (timestamp, level, target, message, fields), and handed to the batched output.
//! Whether it is written is still the subscriber's to say: `RUST_LOG` and `[log] level` filter
//! the `tailmeter::access` target as before.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use tailmeter_exporters::RequestEvent;

use super::output;
use super::ACCESS_TARGET;

/// Writes the access line of a metered request, if the log filter lets it through.
pub fn write(event: &RequestEvent<'_>) {
    if !tracing::enabled!(target: ACCESS_TARGET, tracing::Level::INFO) {
        return;
    }
    thread_local! {
        static LINE: RefCell<String> = RefCell::new(String::with_capacity(512));
    }
    LINE.with_borrow_mut(|line| {
        line.clear();
        timestamp(line, SystemTime::now());
        fields(line, event);
        output::access(line.as_bytes());
    });
}

/// `2026-11-27T22:26:46.555956Z`, as `tracing`'s fmt layer stamps a line.
fn timestamp(out: &mut String, now: SystemTime) {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (year, month, day) = tailmeter_exporters::row::civil_from_days(secs / 86_400);
    let of_day = secs % 86_400;
    let parts = [
        (year, 4, '-'),
        (month, 2, '-'),
        (day, 2, 'T'),
        (of_day / 3600, 2, ':'),
        (of_day % 3600 / 60, 2, ':'),
        (of_day % 60, 2, '.'),
        (u64::from(since.subsec_micros()), 6, 'Z'),
    ];
    for (value, width, then) in parts {
        zero_padded(out, value, width);
        out.push(then);
    }
}

/// The last `width` decimal digits of `value`, zero-padded.
fn zero_padded(out: &mut String, value: u64, width: u32) {
    for place in (0..width).rev() {
        let digit = value / 10u64.pow(place) % 10;
        out.push(char::from(b'0' + digit as u8));
    }
}

/// The rest of the line: the fmt layer's level, target and message, then the fields, with
/// strings that are not displayed as-is quoted as `Debug` quotes them. Strings and integers are
/// appended as they are; only the three floats go through `fmt`.
fn fields(out: &mut String, e: &RequestEvent<'_>) {
    let t = &e.tokens;
    let mut integer = itoa::Buffer::new();
    out.push_str("  INFO ");
    out.push_str(ACCESS_TARGET);
    out.push_str(": request");
    let stream = if e.stream { "true" } else { "false" };
    for (name, value) in [
        ("request_id", e.request_id),
        ("identity", e.identity),
        ("provider", e.provider),
        ("model", e.model),
        ("endpoint", e.endpoint),
        ("stream", stream),
        ("status", integer.format(e.status)),
    ] {
        field(out, name, value);
    }
    for (name, count) in [
        ("input", t.input),
        ("output", t.output),
        ("cache_read", t.cache_read),
        ("cache_write", t.cache_write),
        ("reasoning", t.reasoning),
    ] {
        field(out, name, integer.format(count));
    }
    let _ = write!(out, " cost_usd={:?}", e.cost_usd);
    // Names of tailmeter's own (plain snake_case): quoted as Debug quotes them, nothing to escape.
    for (name, value) in [
        ("usage_source", e.usage_source.as_str()),
        ("usage_missing", e.usage_missing_reason.unwrap_or("")),
    ] {
        field(out, name, "\"");
        out.push_str(value);
        out.push('"');
    }
    let _ = writeln!(
        out,
        " duration_ms={:.1} ttft_ms={:.1}",
        e.duration_ms,
        e.ttft_ms.unwrap_or(0.0),
    );
}

/// ` name=value`.
fn field(out: &mut String, name: &str, value: &str) {
    out.push(' ');
    out.push_str(name);
    out.push('=');
    out.push_str(value);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;
    use tailmeter_exporters::{TokenCounts, UsageSource};

    /// What the fmt layer wrote for the same fields, before this module wrote the line.
    fn through_tracing(e: &RequestEvent<'_>) -> String {
        #[derive(Clone, Default)]
        struct Sink(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Sink {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let sink = Sink::default();
        let writer = sink.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .without_time()
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(
                target: ACCESS_TARGET,
                request_id = %e.request_id,
                identity = %e.identity,
                provider = %e.provider,
                model = %e.model,
                endpoint = %e.endpoint,
                stream = e.stream,
                status = e.status,
                input = e.tokens.input,
                output = e.tokens.output,
                cache_read = e.tokens.cache_read,
                cache_write = e.tokens.cache_write,
                reasoning = e.tokens.reasoning,
                cost_usd = e.cost_usd,
                usage_source = e.usage_source.as_str(),
                usage_missing = e.usage_missing_reason.unwrap_or(""),
                duration_ms = format_args!("{:.1}", e.duration_ms),
                ttft_ms = format_args!("{:.1}", e.ttft_ms.unwrap_or(0.0)),
                "request"
            );
        });
        let text = sink.0.lock().unwrap().clone();
        String::from_utf8(text).unwrap()
    }

    fn event() -> RequestEvent<'static> {
        RequestEvent {
            ts_ms: 0,
            request_id: "01a21f1e429a72b6845b7a988193741c",
            trace_id: "",
            span: None,
            identity: "tag:k8s,tag:prod",
            login: "",
            tags: &[],
            node: "",
            src_ip: None,
            provider: "openai",
            provider_system: "openai",
            server_address: "",
            model: "gpt-4o",
            response_model: "",
            endpoint: "chat_completions",
            stream: true,
            status: 200,
            tokens: TokenCounts {
                input: 14,
                output: 180,
                cache_read: 3,
                reasoning: 64,
                ..TokenCounts::default()
            },
            cost_usd: 0.001835,
            priced: true,
            duration_ms: 1234.56,
            ttft_ms: Some(0.04),
            usage_source: UsageSource::Provider,
            usage_missing_reason: None,
            user_agent: "",
        }
    }

    #[test]
    fn the_line_is_the_one_tracing_wrote() {
        let mut cases = vec![event()];
        let mut missing = event();
        missing.usage_source = UsageSource::Estimated;
        missing.usage_missing_reason = Some("shutdown");
        missing.ttft_ms = None;
        missing.cost_usd = 0.0;
        missing.status = 0;
        cases.push(missing);
        let mut tiny = event();
        tiny.cost_usd = 1e-7;
        tiny.stream = false;
        tiny.tokens.cache_write = 7;
        tiny.duration_ms = 0.05;
        cases.push(tiny);
        for e in cases {
            let mut ours = String::new();
            fields(&mut ours, &e);
            assert_eq!(ours, format!(" {}", through_tracing(&e)));
        }
    }

    #[test]
    fn stamps_time_as_tracing_does() {
        let mut out = String::new();
        let at = UNIX_EPOCH + Duration::new(1_795_818_406, 555_956_789);
        timestamp(&mut out, at);
        assert_eq!(out, "2026-11-27T22:26:46.555956Z");
        out.clear();
        timestamp(
            &mut out,
            UNIX_EPOCH + Duration::from_micros(951_782_400_000_001),
        );
        assert_eq!(out, "2000-02-29T00:00:00.000001Z");
    }
}
