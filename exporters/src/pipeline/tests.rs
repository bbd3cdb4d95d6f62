//! The pipeline against a fake sink that can be switched off: batching by rows and interval,
//! spooling and in-order replay, shutdown flush, recovery of a crashed run's spool, the
//! spool's disk limit, and a row the sink refuses.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use super::*;
use crate::event::sample;
use crate::sink::{Batch, SinkError};

#[derive(Default)]
struct FakeSink {
    down: AtomicBool,
    /// A batch holding this request id is rejected as bad data.
    refuse: Mutex<Option<String>>,
    batches: Mutex<Vec<Vec<String>>>,
}

impl FakeSink {
    fn ids(&self) -> Vec<String> {
        self.batches.lock().unwrap().concat()
    }
    fn sizes(&self) -> Vec<usize> {
        self.batches.lock().unwrap().iter().map(Vec::len).collect()
    }
}

#[async_trait]
impl Sink for FakeSink {
    fn name(&self) -> &'static str {
        "fake"
    }
    async fn healthcheck(&self) -> Result<(), SinkError> {
        Ok(())
    }
    async fn write(&self, batch: &Batch) -> Result<(), SinkError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(SinkError::transient("down"));
        }
        let ids = std::str::from_utf8(&batch.data)
            .unwrap()
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["request_id"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect::<Vec<_>>();
        assert_eq!(ids.len() as u64, batch.rows);
        if let Some(bad) = self.refuse.lock().unwrap().as_ref() {
            if ids.contains(bad) {
                return Err(SinkError::rejected(format!("cannot parse {bad}")));
            }
        }
        self.batches.lock().unwrap().push(ids);
        Ok(())
    }
}

fn config(dir: &Path, batch_rows: usize, interval_ms: u64) -> PipelineConfig {
    PipelineConfig {
        batch_rows,
        batch_interval: Duration::from_millis(interval_ms),
        spool_dir: dir.to_owned(),
        spool_max_bytes: 1 << 20,
        write_timeout: Duration::from_secs(1),
    }
}

fn health() -> Health {
    Health::register(&prometheus::Registry::new(), "fake").unwrap()
}

fn send(sender: &EventSender, ids: std::ops::Range<u32>) {
    for i in ids {
        sender.send(&sample(&format!("r{i:03}")));
    }
}

fn expected(ids: std::ops::Range<u32>) -> Vec<String> {
    ids.map(|i| format!("r{i:03}")).collect()
}

/// Polls (bounded) until `check` holds.
async fn eventually(what: &str, check: impl Fn() -> bool) {
    for _ in 0..200 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never happened: {what}");
}

fn spool_files(dir: &Path) -> usize {
    std::fs::read_dir(dir).unwrap().count()
}

#[tokio::test]
async fn batches_by_rows_then_flushes_the_rest_at_shutdown() {
    let tmp = tempfile::tempdir().unwrap();
    let sink = Arc::new(FakeSink::default());
    let health = health();
    let (pipeline, sender) =
        Pipeline::start(&config(tmp.path(), 3, 60_000), sink.clone(), health.clone()).unwrap();
    send(&sender, 0..3);
    eventually("a full batch", || sink.sizes() == [3]).await;
    send(&sender, 3..6);
    eventually("another full batch", || sink.sizes() == [3, 3]).await;
    send(&sender, 6..7);
    pipeline.shutdown(Duration::from_secs(5)).await;
    assert_eq!(sink.sizes(), [3, 3, 1]);
    assert_eq!(sink.ids(), expected(0..7));
    assert_eq!(health.total(Outcome::Written), 7);
    assert_eq!(spool_files(tmp.path()), 0);
    assert_eq!(health.spool_bytes.get(), 0);
}

#[tokio::test]
async fn a_partial_batch_goes_after_the_interval() {
    let tmp = tempfile::tempdir().unwrap();
    let sink = Arc::new(FakeSink::default());
    let (pipeline, sender) =
        Pipeline::start(&config(tmp.path(), 1000, 50), sink.clone(), health()).unwrap();
    send(&sender, 0..2);
    eventually("the interval seals the batch", || sink.sizes() == [2]).await;
    pipeline.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_failing_sink_spools_and_replays_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    let sink = Arc::new(FakeSink::default());
    sink.down.store(true, Ordering::SeqCst);
    let health = health();
    let (pipeline, sender) =
        Pipeline::start(&config(tmp.path(), 2, 20), sink.clone(), health.clone()).unwrap();
    for i in 0..5 {
        send(&sender, i * 2..i * 2 + 2);
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    eventually("every row spooled", || health.total(Outcome::Spooled) == 10).await;
    assert!(spool_files(tmp.path()) >= 4, "batches wait on disk");
    assert!(health.spool_bytes.get() > 0);
    sink.down.store(false, Ordering::SeqCst);
    eventually("replayed", || health.total(Outcome::Replayed) == 10).await;
    assert_eq!(sink.ids(), expected(0..10));
    assert_eq!(health.total(Outcome::Written), 0);
    pipeline.shutdown(Duration::from_secs(1)).await;
    assert_eq!(spool_files(tmp.path()), 0);
}

#[tokio::test]
async fn what_a_run_could_not_deliver_is_delivered_by_the_next() {
    let tmp = tempfile::tempdir().unwrap();
    let sink = Arc::new(FakeSink::default());
    sink.down.store(true, Ordering::SeqCst);
    let (pipeline, sender) =
        Pipeline::start(&config(tmp.path(), 3, 20), sink.clone(), health()).unwrap();
    send(&sender, 0..5);
    eventually("the first batch sealed", || spool_files(tmp.path()) == 1).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    send(&sender, 5..8);
    pipeline.shutdown(Duration::from_millis(100)).await;
    assert_eq!(spool_files(tmp.path()), 2, "two sealed batches wait");

    let sink = Arc::new(FakeSink::default());
    let health = health();
    let (pipeline, sender) =
        Pipeline::start(&config(tmp.path(), 3, 20), sink.clone(), health.clone()).unwrap();
    send(&sender, 8..10);
    pipeline.shutdown(Duration::from_secs(5)).await;
    assert_eq!(sink.ids(), expected(0..10), "old rows first, then new ones");
    assert_eq!(health.total(Outcome::Replayed), 8);
    assert_eq!(health.total(Outcome::Written), 2);
}

#[tokio::test]
async fn a_row_is_on_disk_when_send_returns() {
    let tmp = tempfile::tempdir().unwrap();
    let sink = Arc::new(FakeSink::default());
    let health = health();
    let (pipeline, sender) = Pipeline::start(
        &config(tmp.path(), 100, 60_000),
        sink.clone(),
        health.clone(),
    )
    .unwrap();
    // The test runtime is single-threaded: no pipeline task has run yet.
    send(&sender, 0..3);
    let journal = std::fs::read_to_string(tmp.path().join("open.jsonl")).unwrap();
    assert_eq!(journal.lines().count(), 3);
    assert_eq!(health.queue_depth.get(), 3);
    pipeline.shutdown(Duration::from_secs(5)).await;
    assert_eq!(sink.ids(), expected(0..3));
    assert_eq!(health.queue_depth.get(), 0);
}

#[tokio::test]
async fn past_the_disk_limit_rows_are_dropped_and_counted() {
    let tmp = tempfile::tempdir().unwrap();
    let sink = Arc::new(FakeSink::default());
    sink.down.store(true, Ordering::SeqCst);
    let health = health();
    let mut cfg = config(tmp.path(), 1, 10);
    cfg.spool_max_bytes = 2_000; // about three rows
    let (pipeline, sender) = Pipeline::start(&cfg, sink.clone(), health.clone()).unwrap();
    send(&sender, 0..10);
    eventually("every row spooled or dropped", || {
        health.total(Outcome::Spooled) + health.total(Outcome::Dropped) == 10
    })
    .await;
    let kept = health.total(Outcome::Spooled);
    assert!((1..=3).contains(&kept), "{kept}");
    pipeline.shutdown(Duration::from_millis(50)).await;
}

#[tokio::test]
async fn a_refused_row_is_dropped_alone_and_later_batches_flow() {
    let tmp = tempfile::tempdir().unwrap();
    let sink = Arc::new(FakeSink::default());
    *sink.refuse.lock().unwrap() = Some("r003".to_owned());
    let health = health();
    let (pipeline, sender) =
        Pipeline::start(&config(tmp.path(), 8, 60_000), sink.clone(), health.clone()).unwrap();
    send(&sender, 0..16);
    eventually("both batches", || sink.ids().len() == 15).await;
    let mut want = expected(0..16);
    want.retain(|id| id != "r003");
    assert_eq!(
        sink.ids(),
        want,
        "the rest of the batch, in order, then the next one"
    );
    assert_eq!(health.total(Outcome::Written), 15);
    assert_eq!(health.total(Outcome::Dropped), 1);
    pipeline.shutdown(Duration::from_secs(1)).await;
    let kept = std::fs::read_to_string(tmp.path().join("00000000000000000000.rejected")).unwrap();
    assert_eq!(kept.lines().count(), 1);
    assert!(kept.contains("\"r003\""));
    assert_eq!(spool_files(tmp.path()), 1, "only the refused row is left");
    assert_eq!(health.spool_bytes.get(), 0);
}

#[tokio::test]
async fn a_spool_cleaned_away_loses_nothing_and_failed_seals_wait() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("spool");
    let sink = Arc::new(FakeSink::default());
    sink.down.store(true, Ordering::SeqCst);
    let (pipeline, sender) = Pipeline::start(&config(&dir, 2, 20), sink.clone(), health()).unwrap();
    send(&sender, 0..1);
    // The directory cleaned away and a file put in its place: every seal of the batch, full
    // from the next row on, fails (not a directory) for ten batch intervals.
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::write(&dir, b"").unwrap();
    send(&sender, 1..2);
    tokio::time::sleep(Duration::from_millis(200)).await;
    send(&sender, 2..3);
    // Gone altogether: the next seal writes the batch out of the open journal.
    std::fs::remove_file(&dir).unwrap();
    eventually("the batch sealed again", || {
        std::fs::read_dir(&dir).is_ok_and(|mut files| files.next().is_some())
    })
    .await;
    // Each failed seal took a batch number: a retry per interval, not a busy loop.
    let sealed = std::fs::read_dir(&dir).unwrap().next().unwrap().unwrap();
    let number: u64 = sealed.file_name().to_str().unwrap()[..20].parse().unwrap();
    assert!(number < 50, "{number} seals tried in 200 ms");
    sink.down.store(false, Ordering::SeqCst);
    eventually("delivered", || sink.ids().len() == 3).await;
    assert_eq!(sink.ids(), expected(0..3));
    pipeline.shutdown(Duration::from_secs(1)).await;
}
