//! The spool: the on-disk journal of every usage row not yet delivered to its sink, and the
//! pipeline's only queue.
//!
//! Every row is appended to `open.jsonl` by the request's own thread, in the logging phase, with
//! one `write(2)` of one line: the row is in the kernel's page cache before the request is done,
//! so a crash of the process (even SIGKILL) loses nothing that was metered. A full batch is
//! sealed by renaming the journal to a numbered file (`00000000000000000042.jsonl`), delivered,
//! and only then deleted; batches that cannot be delivered stay, and are delivered in number
//! order when the sink returns, or at the next start.
//!
//! The total size of the directory is bounded by `max_bytes`: past it, rows are dropped and
//! counted, never buffered without limit.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use bytes::Bytes;

const OPEN: &str = "open.jsonl";
const SEALED_SUFFIX: &str = ".jsonl";
const REJECTED_SUFFIX: &str = ".rejected";

/// A sealed batch file awaiting delivery.
#[derive(Debug)]
pub struct Sealed {
    /// Its number: batches are delivered in this order.
    pub seq: u64,
    /// Rows in it.
    pub rows: u64,
    /// Its size.
    pub bytes: u64,
    /// Whether it has been counted as spooled (its delivery had to wait for a failing sink).
    pub spooled: bool,
}

/// The spool directory.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    bytes: AtomicU64,
    rows: AtomicU64,
    next_seq: AtomicU64,
    open: Mutex<Journal>,
}

/// The open batch's journal.
#[derive(Debug, Default)]
struct Journal {
    file: Option<File>,
    rows: u64,
    bytes: u64,
}

impl Spool {
    /// Opens (creating) the spool in `dir` and returns what a previous run left undelivered,
    /// oldest first: its sealed batches, then its journal, sealed now.
    pub fn open(dir: &Path, max_bytes: u64) -> io::Result<(Self, Vec<Sealed>)> {
        fs::create_dir_all(dir)?;
        let spool = Self {
            dir: dir.to_owned(),
            max_bytes,
            bytes: AtomicU64::new(0),
            rows: AtomicU64::new(0),
            next_seq: AtomicU64::new(0),
            open: Mutex::new(Journal::default()),
        };
        let mut found = Vec::new();
        for entry in fs::read_dir(dir)? {
            let name = entry?.file_name();
            let seq = name
                .to_str()
                .and_then(|n| n.strip_suffix(SEALED_SUFFIX))
                .and_then(|n| n.parse::<u64>().ok());
            if let Some(seq) = seq {
                found.push(seq);
            }
        }
        found.sort_unstable();
        spool
            .next_seq
            .store(found.last().map_or(0, |s| s + 1), Ordering::SeqCst);
        let mut left = Vec::new();
        for seq in found {
            let data = fs::read(spool.sealed_path(seq))?;
            left.push(spool.recovered(seq, &data));
        }
        if let Some(sealed) = spool.seal_leftover()? {
            left.push(sealed);
        }
        Ok((spool, left))
    }

    /// A leftover journal, cut back to its last whole line and sealed; `None` when empty.
    fn seal_leftover(&self) -> io::Result<Option<Sealed>> {
        let path = self.dir.join(OPEN);
        let mut data = match fs::read(&path) {
            Ok(data) => data,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let whole = data.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        if whole == 0 {
            fs::remove_file(&path)?;
            return Ok(None);
        }
        if whole < data.len() {
            data.truncate(whole);
            fs::write(&path, &data)?;
        }
        let seq = self.next_seq.fetch_add(1, Ordering::SeqCst);
        fs::rename(&path, self.sealed_path(seq))?;
        Ok(Some(self.recovered(seq, &data)))
    }

    fn recovered(&self, seq: u64, data: &[u8]) -> Sealed {
        let bytes = data.len() as u64;
        let rows = data.iter().filter(|&&b| b == b'\n').count() as u64;
        self.bytes.fetch_add(bytes, Ordering::SeqCst);
        self.rows.fetch_add(rows, Ordering::SeqCst);
        Sealed {
            seq,
            rows,
            bytes,
            spooled: true,
        }
    }

    fn sealed_path(&self, seq: u64) -> PathBuf {
        self.dir.join(format!("{seq:020}{SEALED_SUFFIX}"))
    }

    /// Bytes on disk now.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Rows on disk now (journaled or sealed, not yet delivered).
    pub fn rows(&self) -> u64 {
        self.rows.load(Ordering::Relaxed)
    }

    /// Claims `n` bytes of the limit; false (claiming nothing) when they do not fit.
    fn reserve(&self, n: u64) -> bool {
        self.bytes
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |used| {
                (used + n <= self.max_bytes).then_some(used + n)
            })
            .is_ok()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Journal> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends one row's line to the journal with one write; returns the rows now in the open
    /// batch, or `None` when the line does not fit under the disk limit.
    pub fn journal(&self, line: &[u8]) -> io::Result<Option<u64>> {
        let len = line.len() as u64;
        if !self.reserve(len) {
            return Ok(None);
        }
        let mut open = self.lock();
        if open.file.is_none() {
            let path = self.dir.join(OPEN);
            // Readable too: a journal whose name is removed can still be sealed from it.
            match OpenOptions::new()
                .create(true)
                .read(true)
                .append(true)
                .open(path)
            {
                Ok(file) => open.file = Some(file),
                Err(e) => {
                    self.release(len, 0);
                    return Err(e);
                }
            }
        }
        let written = match open.file.as_mut() {
            Some(file) => file.write_all(line),
            None => Err(io::Error::other("journal not open")),
        };
        if let Err(e) = written {
            // A full disk can take part of the line: cut the journal back to its last whole
            // line, so the next row does not land glued to a torn one (a torn line left by a
            // crash is cut off at the next start instead).
            let whole = open.bytes;
            if let Some(Err(cut)) = open.file.as_ref().map(|f| f.set_len(whole)) {
                tracing::error!(error = %cut, "cannot cut a torn line off the spool journal");
            }
            open.file = None;
            self.release(len, 0);
            return Err(e);
        }
        open.rows += 1;
        open.bytes += len;
        self.rows.fetch_add(1, Ordering::SeqCst);
        Ok(Some(open.rows))
    }

    /// Rows in the open batch.
    pub fn open_rows(&self) -> u64 {
        self.lock().rows
    }

    /// Seals the open batch as the next numbered file; `None` when it is empty.
    pub fn seal(&self) -> io::Result<Option<Sealed>> {
        let mut open = self.lock();
        if open.rows == 0 {
            return Ok(None);
        }
        let seq = self.next_seq.fetch_add(1, Ordering::SeqCst);
        let to = self.sealed_path(seq);
        match fs::rename(self.dir.join(OPEN), &to) {
            Ok(()) => {}
            // The journal's name was removed under the running process (the directory cleaned
            // by hand or by a tmp cleaner); its rows are still in the open file.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let Some(file) = open.file.as_mut() else {
                    return Err(e);
                };
                rewrite_journal(file, &self.dir, &to)?;
                tracing::warn!(
                    dir = %self.dir.display(),
                    rows = open.rows,
                    "the spool journal was removed while open; its rows were sealed from the open file"
                );
            }
            Err(e) => return Err(e),
        }
        let sealed = Sealed {
            seq,
            rows: open.rows,
            bytes: open.bytes,
            spooled: false,
        };
        *open = Journal::default();
        Ok(Some(sealed))
    }

    /// The content of a sealed batch (from the page cache, usually).
    pub fn read(&self, sealed: &Sealed) -> io::Result<Bytes> {
        let mut data = Vec::with_capacity(sealed.bytes as usize);
        File::open(self.sealed_path(sealed.seq))?.read_to_end(&mut data)?;
        Ok(Bytes::from(data))
    }

    /// Deletes a delivered batch.
    pub fn remove(&self, sealed: &Sealed) -> io::Result<()> {
        fs::remove_file(self.sealed_path(sealed.seq))?;
        self.release(sealed.bytes, sealed.rows);
        Ok(())
    }

    /// Retires a batch the sink has taken all it will of: the `rejected` lines (all of the
    /// batch, or the rows it refused alone) are kept as `N.rejected` for inspection, out of the
    /// limit, and the batch leaves the spool.
    pub fn reject(&self, sealed: &Sealed, rejected: &[u8]) -> io::Result<PathBuf> {
        let to = self
            .dir
            .join(format!("{:020}{REJECTED_SUFFIX}", sealed.seq));
        let from = self.sealed_path(sealed.seq);
        if rejected.len() as u64 == sealed.bytes {
            fs::rename(&from, &to)?;
        } else {
            fs::write(&to, rejected)?;
            fs::remove_file(&from)?;
        }
        self.release(sealed.bytes, sealed.rows);
        Ok(to)
    }

    fn release(&self, bytes: u64, rows: u64) {
        // Saturating: the gauges must never wrap.
        for (counter, n) in [(&self.bytes, bytes), (&self.rows, rows)] {
            let _ = counter.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| {
                Some(v.saturating_sub(n))
            });
        }
    }
}

/// Writes what the open journal `file` holds to `to`, making its directory again if it is gone.
/// A write that fails leaves no partial batch behind: the next seal writes the whole journal
/// again under a new number, and a partial copy would deliver its rows twice.
fn rewrite_journal(file: &mut File, dir: &Path, to: &Path) -> io::Result<()> {
    let mut data = Vec::new();
    file.seek(SeekFrom::Start(0))?;
    file.read_to_end(&mut data)?;
    fs::create_dir_all(dir)?;
    fs::write(to, data).inspect_err(|_| {
        let _ = fs::remove_file(to);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn rows_are_journaled_sealed_and_removed() {
        let tmp = tempfile::tempdir().unwrap();
        let (spool, left) = Spool::open(tmp.path(), 1 << 20).unwrap();
        assert!(left.is_empty());
        assert!(spool.seal().unwrap().is_none(), "nothing to seal");
        assert_eq!(spool.journal(b"{\"a\":1}\n").unwrap(), Some(1));
        assert_eq!(spool.journal(b"{\"a\":2}\n").unwrap(), Some(2));
        assert_eq!(names(tmp.path()), ["open.jsonl"]);
        let sealed = spool.seal().unwrap().unwrap();
        assert_eq!((sealed.seq, sealed.rows, sealed.spooled), (0, 2, false));
        assert_eq!((spool.bytes(), spool.rows(), spool.open_rows()), (16, 2, 0));
        assert_eq!(names(tmp.path()), ["00000000000000000000.jsonl"]);
        assert_eq!(&spool.read(&sealed).unwrap()[..], b"{\"a\":1}\n{\"a\":2}\n");
        spool.remove(&sealed).unwrap();
        assert!(names(tmp.path()).is_empty());
        assert_eq!((spool.bytes(), spool.rows()), (0, 0));
    }

    #[test]
    fn a_crash_leaves_everything_for_the_next_start_in_order() {
        let tmp = tempfile::tempdir().unwrap();
        {
            let (spool, _) = Spool::open(tmp.path(), 1 << 20).unwrap();
            for line in [&b"1\n"[..], b"2\n"] {
                spool.journal(line).unwrap();
            }
            spool.seal().unwrap();
            spool.journal(b"3\n").unwrap();
            spool.seal().unwrap();
            spool.journal(b"4\n").unwrap();
        }
        // Killed in the middle of a write: a torn last line.
        let open = tmp.path().join("open.jsonl");
        fs::write(&open, [fs::read(&open).unwrap(), b"5".to_vec()].concat()).unwrap();
        let (spool, left) = Spool::open(tmp.path(), 1 << 20).unwrap();
        let order: Vec<(u64, u64)> = left.iter().map(|s| (s.seq, s.rows)).collect();
        assert_eq!(order, [(0, 2), (1, 1), (2, 1)]);
        assert!(left.iter().all(|s| s.spooled));
        assert_eq!(&spool.read(&left[2]).unwrap()[..], b"4\n");
        assert_eq!((spool.bytes(), spool.rows()), (8, 4));
        // New batches continue the numbering.
        spool.journal(b"6\n").unwrap();
        assert_eq!(spool.seal().unwrap().unwrap().seq, 3);
    }

    #[test]
    fn a_journal_removed_while_open_is_sealed_from_the_open_file() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("spool");
        let (spool, _) = Spool::open(&dir, 1 << 20).unwrap();
        spool.journal(b"1\n").unwrap();
        spool.journal(b"2\n").unwrap();
        // The whole directory is cleaned away; rows keep coming to the open file.
        fs::remove_dir_all(&dir).unwrap();
        spool.journal(b"3\n").unwrap();
        let sealed = spool.seal().unwrap().unwrap();
        assert_eq!((sealed.seq, sealed.rows), (0, 3));
        assert_eq!(&spool.read(&sealed).unwrap()[..], b"1\n2\n3\n");
        // The next batch opens a new journal in the directory made again.
        spool.journal(b"4\n").unwrap();
        assert_eq!(names(&dir), ["00000000000000000000.jsonl", "open.jsonl"]);
        assert_eq!(
            &spool.read(&spool.seal().unwrap().unwrap()).unwrap()[..],
            b"4\n"
        );
    }

    #[test]
    fn the_limit_refuses_what_does_not_fit() {
        let tmp = tempfile::tempdir().unwrap();
        let (spool, _) = Spool::open(tmp.path(), 10).unwrap();
        assert_eq!(spool.journal(b"12345678\n").unwrap(), Some(1));
        assert_eq!(spool.journal(b"12\n").unwrap(), None);
        assert_eq!((spool.bytes(), spool.rows()), (9, 1));
        let sealed = spool.seal().unwrap().unwrap();
        let path = spool.reject(&sealed, b"12345678\n").unwrap();
        assert!(path.ends_with("00000000000000000000.rejected"));
        assert_eq!((spool.bytes(), spool.rows()), (0, 0));
        assert_eq!(spool.journal(b"12\n").unwrap(), Some(1), "room again");
    }

    #[test]
    fn a_partly_refused_batch_keeps_only_the_refused_lines() {
        let tmp = tempfile::tempdir().unwrap();
        let (spool, _) = Spool::open(tmp.path(), 1 << 20).unwrap();
        for line in [&b"ok\n"[..], b"bad\n", b"ok2\n"] {
            spool.journal(line).unwrap();
        }
        let sealed = spool.seal().unwrap().unwrap();
        let path = spool.reject(&sealed, b"bad\n").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"bad\n");
        assert_eq!(names(tmp.path()), ["00000000000000000000.rejected"]);
        assert_eq!((spool.bytes(), spool.rows()), (0, 0));
    }
}
