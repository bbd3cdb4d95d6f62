//! What happens to a batch the sink rejects as bad data: it is split in halves, and each half
//! written again, until every row the sink refuses is alone. The good rows are delivered; only
//! the refused ones are lost (counted as dropped, logged loudly, kept in the spool directory as
//! `N.rejected` by the deliverer). One bad row therefore costs itself, not its batch, and never
//! blocks the rows behind it.
//!
//! The split is deterministic (always halves, in order), so if a transient failure interrupts
//! it and the whole batch is tried again later, the same pieces are written again with the same
//! content and hence the same deduplication token: pieces that had landed are dropped by
//! ClickHouse (modern servers) or collapse in the `ReplacingMergeTree`, never counted twice.
//! A batch of `n` rows with `k` bad ones costs about `2·k·log2(n)` writes.

use std::time::Duration;

use bytes::Bytes;

use crate::sink::{Batch, ErrorKind, Sink, SinkError};

/// The outcome of isolating the bad rows of a rejected batch.
#[derive(Debug, Default)]
pub(super) struct Isolated {
    /// Rows written to the sink.
    pub delivered: u64,
    /// The lines the sink refused alone, in their original order.
    pub rejected: Vec<u8>,
    /// How many lines those are.
    pub rejected_rows: u64,
    /// The sink's answer to the first refused row, for the log.
    pub first_error: Option<String>,
}

/// Writes one batch, bounded by `timeout` (a timeout is transient).
pub(super) async fn write(
    sink: &dyn Sink,
    batch: &Batch,
    timeout: Duration,
) -> Result<(), SinkError> {
    match tokio::time::timeout(timeout, sink.write(batch)).await {
        Ok(result) => result,
        Err(_) => Err(SinkError::transient(format!(
            "write took longer than {timeout:?}"
        ))),
    }
}

/// Splits `data` (whole lines, already rejected as one batch) until each refused row is alone.
/// A transient failure on the way stops the split and is returned: the caller retries the whole
/// batch later.
pub(super) async fn isolate(
    sink: &dyn Sink,
    data: &Bytes,
    timeout: Duration,
) -> Result<Isolated, SinkError> {
    let starts = line_starts(data);
    let rows = starts.len() - 1;
    let mut out = Isolated::default();
    // Pieces as [first, last) line ranges, processed in order: a stack popped from its end.
    let mut todo = halves(0, rows);
    while let Some((first, last)) = todo.pop() {
        let piece = Batch {
            data: data.slice(starts[first]..starts[last]),
            rows: (last - first) as u64,
        };
        match write(sink, &piece, timeout).await {
            Ok(()) => out.delivered += piece.rows,
            Err(e) if e.kind == ErrorKind::Rejected && piece.rows == 1 => {
                out.rejected.extend_from_slice(&piece.data);
                out.rejected_rows += 1;
                out.first_error.get_or_insert(e.message);
            }
            Err(e) if e.kind == ErrorKind::Rejected => todo.extend(halves(first, last)),
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// The two halves of `[first, last)`, as a stack: the first half is popped first. One row has
/// no halves: it is itself.
fn halves(first: usize, last: usize) -> Vec<(usize, usize)> {
    if last - first <= 1 {
        return vec![(first, last)];
    }
    let mid = first + (last - first) / 2;
    vec![(mid, last), (first, mid)]
}

/// Byte offsets where each line starts, plus the end: `n + 1` entries for `n` whole lines (a
/// last line without its newline counts too).
fn line_starts(data: &[u8]) -> Vec<usize> {
    let mut starts = vec![0];
    starts.extend(
        data.iter()
            .enumerate()
            .filter(|&(_, &b)| b == b'\n')
            .map(|(i, _)| i + 1),
    );
    if starts.last() != Some(&data.len()) {
        starts.push(data.len());
    }
    starts
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use async_trait::async_trait;

    use super::*;

    /// Refuses any batch containing a line with `bad`; fails transiently once when armed.
    #[derive(Default)]
    struct Picky {
        written: Mutex<Vec<String>>,
        writes: Mutex<u32>,
        transient_at: Option<u32>,
    }

    #[async_trait]
    impl Sink for Picky {
        fn name(&self) -> &'static str {
            "picky"
        }
        async fn healthcheck(&self) -> Result<(), SinkError> {
            Ok(())
        }
        async fn write(&self, batch: &Batch) -> Result<(), SinkError> {
            let n = {
                let mut writes = self.writes.lock().unwrap();
                *writes += 1;
                *writes
            };
            if self.transient_at == Some(n) {
                return Err(SinkError::transient("busy"));
            }
            let text = std::str::from_utf8(&batch.data).unwrap();
            if text.contains("bad") {
                return Err(SinkError::rejected(format!("refused {}", batch.rows)));
            }
            self.written
                .lock()
                .unwrap()
                .extend(text.lines().map(str::to_owned));
            Ok(())
        }
    }

    fn lines(names: &[&str]) -> Bytes {
        Bytes::from(names.iter().map(|n| format!("{n}\n")).collect::<String>())
    }

    #[tokio::test]
    async fn only_the_bad_rows_are_refused_and_the_rest_arrive_in_order() {
        let sink = Picky::default();
        let data = lines(&["a", "b", "bad1", "c", "d", "e", "bad2", "f"]);
        let out = isolate(&sink, &data, Duration::from_secs(1)).await.unwrap();
        assert_eq!(out.delivered, 6);
        assert_eq!(
            (out.rejected_rows, &out.rejected[..]),
            (2, &b"bad1\nbad2\n"[..])
        );
        assert_eq!(out.first_error.as_deref(), Some("refused 1"));
        assert_eq!(
            *sink.written.lock().unwrap(),
            ["a", "b", "c", "d", "e", "f"]
        );
    }

    #[tokio::test]
    async fn a_single_bad_row_is_refused_alone() {
        let sink = Picky::default();
        let out = isolate(&sink, &lines(&["bad"]), Duration::from_secs(1))
            .await
            .unwrap();
        assert_eq!((out.delivered, out.rejected_rows), (0, 1));
    }

    #[tokio::test]
    async fn a_transient_failure_stops_the_split() {
        let sink = Picky {
            transient_at: Some(2),
            ..Picky::default()
        };
        let err = isolate(
            &sink,
            &lines(&["a", "bad", "c", "d"]),
            Duration::from_secs(1),
        )
        .await
        .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Transient);
    }

    #[test]
    fn lines_are_found_with_or_without_a_final_newline() {
        assert_eq!(line_starts(b"a\nbc\n"), [0, 2, 5]);
        assert_eq!(line_starts(b"a\nbc"), [0, 2, 4]);
        assert_eq!(halves(0, 5), [(2, 5), (0, 2)]);
        assert_eq!(halves(3, 4), [(3, 4)]);
    }
}
