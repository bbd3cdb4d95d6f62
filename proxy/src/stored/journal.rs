//! The directory's journal on disk, so a restart keeps what it knew: whose each stored response
//! is, and which background responses still have their usage to count. One JSON line per
//! change, appended as it is made (a write to the page cache, which a killed process does not
//! lose); read back in order at start, then rewritten with only what is current, as it is again
//! whenever it has grown to several times that.

use std::borrow::Cow;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// One change to the directory.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub(super) enum Change<'a> {
    /// A response seen created. The creator's attribution (`login`, `tags`, `node`, `src_ip`,
    /// for the row of usage tailmeter counts for it) is left out when empty, and absent from
    /// journals written before it was kept.
    Remember {
        id: Cow<'a, str>,
        /// A conversation, not a response (absent: a response).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        conversation: bool,
        route: Cow<'a, str>,
        owner: Cow<'a, str>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        login: Option<Cow<'a, str>>,
        #[serde(default, skip_serializing_if = "<[_]>::is_empty")]
        tags: Cow<'a, [String]>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        node: Option<Cow<'a, str>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        src_ip: Option<IpAddr>,
        pending: bool,
    },
    /// A background response's usage counted.
    Claim { id: Cow<'a, str> },
    /// A response deleted.
    Forget { id: Cow<'a, str> },
}

/// The journal file, open for appending.
#[derive(Debug)]
pub(super) struct Journal {
    path: PathBuf,
    file: File,
    /// Lines in the file.
    lines: usize,
}

impl Journal {
    /// Opens the journal at `path` (made, with its directory, if missing) and reads its changes,
    /// in order. A line that does not read (the last one, torn by a crash) is skipped.
    pub(super) fn open(path: &Path) -> io::Result<(Journal, Vec<Change<'static>>)> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(path)?;
        let mut changes = Vec::new();
        let mut lines = 0;
        for line in BufReader::new(&file).lines() {
            lines += 1;
            // Without `#[serde(borrow)]` the strings are read owned.
            match serde_json::from_str::<Change<'static>>(&line?) {
                Ok(change) => changes.push(change),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "skipping an unreadable line of the stored-responses journal")
                }
            }
        }
        let journal = Journal {
            path: path.to_owned(),
            file,
            lines,
        };
        Ok((journal, changes))
    }

    /// Appends one change.
    pub(super) fn append(&mut self, change: &Change<'_>) -> io::Result<()> {
        let mut line = serde_json::to_vec(change).map_err(io::Error::other)?;
        line.push(b'\n');
        self.file.write_all(&line)?;
        self.lines += 1;
        Ok(())
    }

    /// Lines in the file.
    pub(super) fn lines(&self) -> usize {
        self.lines
    }

    /// Replaces the file with `changes` (what is current), through a new file renamed over it.
    pub(super) fn rewrite<'c>(
        &mut self,
        changes: impl Iterator<Item = Change<'c>>,
    ) -> io::Result<()> {
        let mut fresh = self.path.clone().into_os_string();
        fresh.push(".new");
        let mut out = io::BufWriter::new(File::create(&fresh)?);
        let mut lines = 0;
        for change in changes {
            serde_json::to_writer(&mut out, &change).map_err(io::Error::other)?;
            out.write_all(b"\n")?;
            lines += 1;
        }
        out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        fs::rename(&fresh, &self.path)?;
        self.file = OpenOptions::new().append(true).open(&self.path)?;
        self.lines = lines;
        Ok(())
    }
}
