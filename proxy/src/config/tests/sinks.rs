//! `[events]`, `[clickhouse]` and `[otlp]`: defaults, every key, and rejections naming line
//! and key.

use super::*;

#[test]
fn sink_defaults() {
    let c = ok("");
    let events = &c.events;
    assert!(events.enabled);
    assert_eq!(events.dir, Path::new("./tailmeter-data"));
    assert_eq!(events.spool_dir, Path::new("./tailmeter-data/spool"));
    assert_eq!(events.batch_rows, 10_000);
    assert_eq!(events.batch_interval, Duration::from_secs(1));
    assert_eq!(
        (events.spool_max_bytes, events.rotate_size),
        (1 << 30, 100 << 20)
    );
    let c = ok("[clickhouse]\nurl = \"http://ch:8123\"\n[otlp]\nendpoint = \"http://c:4317\"\n");
    assert_eq!(c.clickhouse.unwrap().ttl, None);
    assert_eq!(c.otlp.unwrap().protocol, OtlpProtocol::Grpc);
    // The spool follows `dir` unless placed explicitly.
    assert_eq!(
        ok("[events]\ndir = \"/d\"\n").events.spool_dir,
        Path::new("/d/spool")
    );
}

#[test]
fn every_sink_key_is_read() {
    let c = ok(r#"
[events]
dir = "/var/lib/tailmeter"
enabled = true
batch_rows = 200
batch_interval = "250ms"
spool_dir = "/var/spool/tailmeter"
spool_max_bytes = "2GiB"
rotate_size = 1048576

[clickhouse]
url = "http://127.0.0.1:8123"
database = "usage_2"
ttl = "400d"

[otlp]
endpoint = "http://127.0.0.1:4318"
protocol = "http"
"#);
    let events = &c.events;
    assert_eq!(events.batch_rows, 200);
    assert_eq!(events.batch_interval, Duration::from_millis(250));
    assert_eq!(events.spool_dir, Path::new("/var/spool/tailmeter"));
    assert_eq!(
        (events.spool_max_bytes, events.rotate_size),
        (2 << 30, 1 << 20)
    );
    let ch = c.clickhouse.as_ref().unwrap();
    assert_eq!(ch.database, "usage_2");
    assert_eq!(ch.ttl, Some(Duration::from_secs(400 * 86_400)));
    assert_eq!(c.otlp.as_ref().unwrap().protocol, OtlpProtocol::Http);
    let summary = c.summary();
    for needle in [
        "database usage_2, rows expire after 400d",
        "batches of 200 rows or 250ms, spool /var/spool/tailmeter up to 2GiB",
        "traces: OTLP http://127.0.0.1:4318 (HTTP)",
        "stored Responses (whose each is, background usage still to count): /var/lib/tailmeter/stored-responses.journal",
    ] {
        assert!(
            summary.contains(needle),
            "missing {needle:?} in:\n{summary}"
        );
    }
    let off = ok("[events]\nenabled = false\n").summary();
    assert!(off.contains("events: off (metrics only)"), "{off}");
}

#[test]
fn bad_sink_values_name_their_key() {
    rejects(
        "[events]\nbatch_rows = 0\n",
        2,
        "events.batch_rows",
        "greater than 0",
    );
    rejects(
        "[events]\nbatch_rows = -1\n",
        2,
        "events.batch_rows",
        "greater than 0",
    );
    rejects(
        "[events]\nbatch_interval = \"0s\"\n",
        2,
        "events.batch_interval",
        "longer than 0",
    );
    rejects(
        "[events]\nspool_max_bytes = \"1XB\"\n",
        2,
        "events.spool_max_bytes",
        "unknown unit",
    );
    rejects(
        "[events]\nspool_dir = \"\"\n",
        2,
        "events.spool_dir",
        "must not be empty",
    );
    rejects("[events]\nenabled = \"yes\"\n", 2, "events.enabled", "bool");
    rejects(
        "[events]\nbatch_size = 1\n",
        2,
        "events.batch_size",
        "unknown field",
    );
    let ch = "[clickhouse]\nurl = \"http://ch:8123\"\n";
    rejects(
        &format!("{ch}ttl = \"36h\"\n"),
        3,
        "clickhouse.ttl",
        "whole number of days",
    );
    rejects(
        &format!("{ch}database = \"usage-db\"\n"),
        3,
        "clickhouse.database",
        "not a database name",
    );
    rejects(
        &format!("{ch}database = \"1db\"\n"),
        3,
        "clickhouse.database",
        "not a database name",
    );
    rejects(
        "[otlp]\nendpoint = \"http://c:4317\"\nprotocol = \"udp\"\n",
        3,
        "otlp.protocol",
        "`udp` is not one of \"grpc\", \"http\"",
    );
}
