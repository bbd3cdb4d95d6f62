//! The embedded default sink, used when no `[clickhouse]` is configured: JSON lines in a data
//! directory, one file per UTC day and size step (`requests-2026-05-01.0000.jsonl`, `.0001`, …),
//! each line exactly a row of the ClickHouse `requests` table, so a user can load them later:
//!
//! ```sh
//! clickhouse-client -q 'INSERT INTO tailmeter.requests FORMAT JSONEachRow' < requests-2026-05-01.0000.jsonl
//! ```

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;

use crate::row::format_day;
use crate::sink::{Batch, Sink, SinkError};

/// Where the embedded sink writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonSinkConfig {
    /// The data directory.
    pub dir: PathBuf,
    /// A file is closed and the next one started once it holds this many bytes.
    pub rotate_bytes: u64,
}

impl JsonSinkConfig {
    /// The sink (no I/O yet: the directory is made by the health check).
    pub fn build(&self) -> JsonSink {
        JsonSink {
            config: self.clone(),
            current: Mutex::new(None),
        }
    }
}

/// JSON-lines files rotated by size and UTC day.
#[derive(Debug)]
pub struct JsonSink {
    config: JsonSinkConfig,
    current: Mutex<Option<Current>>,
}

#[derive(Debug)]
struct Current {
    day: String,
    index: u32,
    bytes: u64,
    file: File,
}

impl JsonSink {
    fn path(&self, day: &str, index: u32) -> PathBuf {
        self.config
            .dir
            .join(format!("requests-{day}.{index:04}.jsonl"))
    }

    /// The file to append `len` bytes to: today's newest, unless it is full.
    fn file_for(&self, slot: &mut Option<Current>, len: u64) -> std::io::Result<()> {
        let day = format_day(now_ms());
        let rotate = |c: &Current| c.bytes > 0 && c.bytes + len > self.config.rotate_bytes;
        let mut index = match slot.as_ref() {
            Some(c) if c.day == day && !rotate(c) => return Ok(()),
            Some(c) if c.day == day => c.index + 1,
            _ => self.newest_index(&day),
        };
        loop {
            let path = self.path(&day, index);
            let file = OpenOptions::new().create(true).append(true).open(&path)?;
            let current = Current {
                bytes: file.metadata()?.len(),
                day: day.clone(),
                index,
                file,
            };
            if !rotate(&current) {
                *slot = Some(current);
                return Ok(());
            }
            index += 1;
        }
    }

    /// The highest index among today's files (0 when none), so a restart appends to it.
    fn newest_index(&self, day: &str) -> u32 {
        let prefix = format!("requests-{day}.");
        fs::read_dir(&self.config.dir)
            .into_iter()
            .flatten()
            .filter_map(|entry| {
                let name = entry.ok()?.file_name().into_string().ok()?;
                name.strip_prefix(&prefix)?
                    .strip_suffix(".jsonl")?
                    .parse::<u32>()
                    .ok()
            })
            .max()
            .unwrap_or(0)
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[async_trait]
impl Sink for JsonSink {
    fn name(&self) -> &'static str {
        "json"
    }

    /// The directory is made and today's file opened for appending, as the first write would:
    /// a directory that exists but cannot be written (a read-only mount, another owner) is
    /// unhealthy, not found out at the first row.
    async fn healthcheck(&self) -> Result<(), SinkError> {
        let mut slot = self.current.lock().unwrap_or_else(|e| e.into_inner());
        fs::create_dir_all(&self.config.dir)
            .and_then(|()| self.file_for(&mut slot, 0))
            .map_err(|e| {
                SinkError::transient(format!("writing to {}: {e}", self.config.dir.display()))
            })
    }

    /// Appends the batch's lines, as many to a file as fit under the size limit: a batch of
    /// several rows (a sink that caught up after a pause) is split between files at line ends,
    /// so no file passes the limit but for a single line larger than it.
    async fn write(&self, batch: &Batch) -> Result<(), SinkError> {
        let mut slot = self.current.lock().unwrap_or_else(|e| e.into_inner());
        let failed = |e: std::io::Error| {
            SinkError::transient(format!("writing to {}: {e}", self.config.dir.display()))
        };
        fs::create_dir_all(&self.config.dir).map_err(failed)?;
        let mut rest = &batch.data[..];
        while !rest.is_empty() {
            let first_line = rest
                .iter()
                .position(|&b| b == b'\n')
                .map_or(rest.len(), |end| end + 1);
            self.file_for(&mut slot, first_line as u64)
                .map_err(failed)?;
            let Some(current) = slot.as_mut() else {
                return Err(SinkError::transient("no open file"));
            };
            let room = self.config.rotate_bytes.saturating_sub(current.bytes) as usize;
            let fits = match rest.get(..room) {
                Some(head) => head
                    .iter()
                    .rposition(|&b| b == b'\n')
                    .map_or(0, |end| end + 1),
                None => rest.len(),
            };
            let piece = &rest[..fits.max(first_line)];
            if let Err(e) = current.file.write_all(piece) {
                // A partial write leaves a torn line: start a fresh file for the retry.
                *slot = None;
                return Err(failed(e));
            }
            current.bytes += piece.len() as u64;
            rest = &rest[piece.len()..];
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn batch(text: &'static str) -> Batch {
        Batch {
            data: Bytes::from_static(text.as_bytes()),
            rows: text.matches('\n').count() as u64,
        }
    }

    #[tokio::test]
    async fn rotates_by_size_and_resumes_after_a_restart() {
        let tmp = tempfile::tempdir().unwrap();
        let config = JsonSinkConfig {
            dir: tmp.path().join("events"),
            rotate_bytes: 10,
        };
        let sink = config.build();
        sink.healthcheck().await.unwrap();
        sink.write(&batch("aaaa\n")).await.unwrap();
        sink.write(&batch("bbbb\n")).await.unwrap(); // 10 bytes: still fits
        sink.write(&batch("cccc\n")).await.unwrap(); // rotates
        let day = format_day(now_ms());
        let read = |i: u32| fs::read_to_string(sink.path(&day, i)).unwrap();
        assert_eq!(read(0), "aaaa\nbbbb\n");
        assert_eq!(read(1), "cccc\n");
        // A new process appends to the newest file while it has room.
        let again = config.build();
        again.write(&batch("dd\n")).await.unwrap();
        assert_eq!(read(1), "cccc\ndd\n");
        again.write(&batch("eeeeeeeeeeee\n")).await.unwrap(); // bigger than a file: own file
        assert_eq!(read(2), "eeeeeeeeeeee\n");
        // Several rows at once are split between files at line ends.
        again
            .write(&batch("ff\ngggg\nhhh\niiiiiiiiiiiii\njj\n"))
            .await
            .unwrap();
        let files = [read(3), read(4), read(5)];
        assert_eq!(files, ["ff\ngggg\n", "hhh\n", "iiiiiiiiiiiii\n"]);
        assert_eq!(read(6), "jj\n");
    }

    #[tokio::test]
    async fn a_directory_it_cannot_write_to_is_unhealthy() {
        // Root writes anywhere, whatever the modes say: today's file made unopenable instead.
        let tmp = tempfile::tempdir().unwrap();
        let day = format_day(now_ms());
        fs::create_dir_all(tmp.path().join(format!("requests-{day}.0000.jsonl"))).unwrap();
        let sink = JsonSinkConfig {
            dir: tmp.path().to_owned(),
            rotate_bytes: 10,
        }
        .build();
        let error = sink.healthcheck().await.unwrap_err().message;
        assert!(error.starts_with("writing to "), "{error}");
    }
}
