//! The usage event as one row of the `requests` table, encoded as a JSON line.
//!
//! One encoding serves every sink: the embedded sink writes these lines to its files, the spool
//! keeps them, and the ClickHouse sink sends them as `INSERT … FORMAT JSONEachRow`. So a file
//! of the embedded sink loads into the table unchanged, and what is spooled is byte for byte
//! what is later inserted. Column names and order are [`COLUMNS`]; the DDL is built from them.

use std::fmt;
use std::net::IpAddr;

use serde::Serialize;

use crate::event::RequestEvent;

/// The table's columns, in order, as the contract lists them.
pub const COLUMNS: [&str; 24] = [
    "ts",
    "request_id",
    "trace_id",
    "identity",
    "login",
    "tags",
    "node",
    "src_ip",
    "provider",
    "model",
    "response_model",
    "endpoint",
    "stream",
    "status",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cost_usd",
    "duration_ms",
    "ttft_ms",
    "usage_source",
    "user_agent",
];

/// A row borrowing from its event; field order is [`COLUMNS`].
#[derive(Serialize)]
struct Row<'a> {
    ts: Timestamp,
    request_id: &'a str,
    trace_id: &'a str,
    identity: &'a str,
    login: &'a str,
    tags: &'a [String],
    node: &'a str,
    src_ip: IpText,
    provider: &'a str,
    model: &'a str,
    response_model: &'a str,
    endpoint: &'a str,
    stream: u8,
    status: u16,
    input_tokens: u64,
    output_tokens: u64,
    cache_read_tokens: u64,
    cache_write_tokens: u64,
    reasoning_tokens: u64,
    cost_usd: f64,
    duration_ms: f64,
    ttft_ms: Option<f64>,
    usage_source: &'static str,
    user_agent: &'a str,
}

/// Appends `event` to `out` as one JSON line (newline included).
pub fn encode_line(event: &RequestEvent<'_>, out: &mut Vec<u8>) -> serde_json::Result<()> {
    let row = Row {
        ts: Timestamp(event.ts_ms),
        request_id: event.request_id,
        trace_id: event.trace_id,
        identity: event.identity,
        login: event.login,
        tags: event.tags,
        node: event.node,
        src_ip: IpText(event.src_ip),
        provider: event.provider,
        model: event.model,
        response_model: event.response_model,
        endpoint: event.endpoint,
        stream: u8::from(event.stream),
        status: event.status,
        input_tokens: event.tokens.input,
        output_tokens: event.tokens.output,
        cache_read_tokens: event.tokens.cache_read,
        cache_write_tokens: event.tokens.cache_write,
        reasoning_tokens: event.tokens.reasoning,
        cost_usd: event.cost_usd,
        duration_ms: round3(event.duration_ms),
        ttft_ms: event.ttft_ms.map(round3),
        usage_source: event.usage_source.as_str(),
        user_agent: event.user_agent,
    };
    serde_json::to_writer(&mut *out, &row)?;
    out.push(b'\n');
    Ok(())
}

/// Milliseconds to microsecond precision: enough for a duration, short on disk.
fn round3(ms: f64) -> f64 {
    (ms * 1000.0).round() / 1000.0
}

/// A row's source address as text, empty when unknown; written straight into the row's line.
struct IpText(Option<IpAddr>);

impl Serialize for IpText {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match &self.0 {
            Some(ip) => serializer.collect_str(ip),
            None => serializer.serialize_str(""),
        }
    }
}

/// A row's time, milliseconds since the Unix epoch, shown as `YYYY-MM-DD HH:MM:SS.mmm` in UTC:
/// the text form ClickHouse's `DateTime64(3)` reads. It is written straight into the row's line,
/// without a string of its own.
struct Timestamp(u64);

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (secs, ms) = (self.0 / 1000, self.0 % 1000);
        let (days, rem) = (secs / 86_400, secs % 86_400);
        let (y, m, d) = civil_from_days(days);
        write!(
            f,
            "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{ms:03}",
            rem / 3600,
            rem % 3600 / 60,
            rem % 60
        )
    }
}

impl Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// `YYYY-MM-DD` of a timestamp, UTC.
pub fn format_day(ts_ms: u64) -> String {
    let (y, m, d) = civil_from_days(ts_ms / 86_400_000);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The proleptic Gregorian date `(year, month, day)` of a day count since 1970-01-01
/// (Howard Hinnant's algorithm).
pub fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::sample;

    #[test]
    fn timestamps_are_utc_with_milliseconds() {
        assert_eq!(Timestamp(0).to_string(), "1970-01-01 00:00:00.000");
        assert_eq!(
            Timestamp(1_714_558_272_345).to_string(),
            "2024-05-01 10:11:12.345"
        );
        assert_eq!(
            Timestamp(951_782_400_007).to_string(),
            "2000-02-29 00:00:00.007"
        );
        assert_eq!(
            Timestamp(4_102_444_799_999).to_string(),
            "2099-12-31 23:59:59.999"
        );
        assert_eq!(format_day(1_714_558_272_345), "2024-05-01");
    }

    #[test]
    fn a_line_has_every_column_in_order() {
        let mut out = Vec::new();
        encode_line(&sample("r1"), &mut out).unwrap();
        assert_eq!(out.last(), Some(&b'\n'));
        let text = String::from_utf8(out.clone()).unwrap();
        let positions: Vec<usize> = COLUMNS
            .iter()
            .map(|c| text.find(&format!("\"{c}\":")).unwrap())
            .collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{text}");
        let value: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(value.as_object().unwrap().len(), COLUMNS.len());
        assert!(text.starts_with(r#"{"ts":"2024-05-01 10:11:12.345","request_id":"r1","#));
        assert!(text.contains(r#""tags":["tag:ci","tag:k8s"]"#));
        assert!(text.contains(r#""stream":1,"status":200,"input_tokens":120"#));
        assert!(text.contains(r#""duration_ms":812.346,"ttft_ms":null"#));
        assert!(text.contains(r#""usage_source":"provider""#));
        assert!(text.contains(r#""node":"runner-1","src_ip":"100.64.0.7","#));
        out.clear();
        let unknown = RequestEvent {
            src_ip: None,
            ..sample("r2")
        };
        encode_line(&unknown, &mut out).unwrap();
        assert!(String::from_utf8(out).unwrap().contains(r#""src_ip":"","#));
    }
}
