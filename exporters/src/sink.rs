//! The one small trait every event sink implements, Vector-style: a config builds a sink (no
//! I/O), the sink checks its own health, and it writes whole batches. Batching, spooling, retry
//! and the health counters are shared (in [`crate::pipeline`]), so a sink only says how one
//! batch of JSON lines gets written and whether a failure is worth retrying.

use async_trait::async_trait;
use bytes::Bytes;

/// One batch of rows, as JSON lines in the table's column shape.
#[derive(Debug, Clone)]
pub struct Batch {
    /// The lines, each ending with `\n`.
    pub data: Bytes,
    /// How many lines.
    pub rows: u64,
}

impl Batch {
    /// A token identifying this batch's content: the same rows give the same token, so a sink
    /// that supports it (ClickHouse's `insert_deduplication_token`) can drop a replayed copy.
    /// FNV-1a over the bytes, stable across builds and versions (unlike std's hasher).
    pub fn dedup_token(&self) -> String {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for &byte in self.data.iter() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        format!("tailmeter-{hash:016x}-{}-{}", self.rows, self.data.len())
    }
}

/// Whether a failed write may succeed later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The sink is down, slow or busy: keep the batch and retry with backoff.
    Transient,
    /// The sink refused the data itself: retrying cannot help; the batch is set aside.
    Rejected,
}

/// A sink failure, with whether to retry.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct SinkError {
    /// Retry or not.
    pub kind: ErrorKind,
    /// What went wrong, for the log.
    pub message: String,
}

impl SinkError {
    /// A failure worth retrying.
    pub fn transient(message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Transient,
            message: message.into(),
        }
    }

    /// A failure retrying cannot fix.
    pub fn rejected(message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Rejected,
            message: message.into(),
        }
    }
}

/// Where batches of usage rows go.
#[async_trait]
pub trait Sink: Send + Sync {
    /// The `sink` label value of the exporter metrics (`json`, `clickhouse`).
    fn name(&self) -> &'static str;

    /// Checks the sink can take writes (and prepares it: ClickHouse creates its table).
    async fn healthcheck(&self) -> Result<(), SinkError>;

    /// Writes one batch, whole or not at all.
    async fn write(&self, batch: &Batch) -> Result<(), SinkError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_follows_the_content() {
        let batch = |data: &'static [u8], rows| Batch {
            data: Bytes::from_static(data),
            rows,
        };
        let a = batch(b"{\"request_id\":\"a\"}\n", 1);
        assert_eq!(a.dedup_token(), a.clone().dedup_token());
        assert_ne!(
            a.dedup_token(),
            batch(b"{\"request_id\":\"b\"}\n", 1).dedup_token()
        );
        assert_eq!(
            batch(b"", 0).dedup_token(),
            "tailmeter-cbf29ce484222325-0-0"
        );
    }
}
