//! Where log lines go: stderr, with the access log's line per request batched.
//!
//! A `write(2)` per request to stderr (a pipe to journald, a file, a terminal) cost about a
//! tenth of a JSON request's CPU (tests/bench/RESULTS.md, optimization log) and blocked the
//! request's thread whenever the reader of stderr was slow. Access-log lines are appended to a
//! bounded buffer instead, and a thread of their own writes the buffer out once per
//! [`FLUSH_INTERVAL`]. Every other line is written at once, after whatever access-log lines
//! are still buffered, so the log keeps its order and a warning or an error is never held
//! back. A buffer that stderr cannot drain fills up to [`BUFFER_LIMIT`]; past it access-log
//! lines are dropped and counted, and the count is logged with the next batch.

use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use tracing::Metadata;
use tracing_subscriber::fmt::MakeWriter;

/// The target of the access log's line per request, the one target that is batched.
pub const ACCESS_TARGET: &str = "tailmeter::access";

/// Longest an access-log line waits in the buffer.
const FLUSH_INTERVAL: Duration = Duration::from_millis(50);

/// Most bytes of access-log lines buffered: about 3,000 lines, well over a flush interval of
/// the busiest gateway.
const BUFFER_LIMIT: usize = 1 << 20;

/// The process's log output; [`flush`] reaches it from anywhere.
static OUTPUT: OnceLock<Arc<Output>> = OnceLock::new();

/// Stderr (or, in tests, any sink) with a buffer for access-log lines in front of it.
struct Output {
    /// Access-log lines not yet written, and how many were dropped since the last write.
    pending: Mutex<Pending>,
    /// Wakes the writer thread when the buffer stops being empty.
    filled: Condvar,
    /// Where lines go; held while writing, so batches and direct lines go out in order.
    sink: Mutex<Box<dyn Write + Send>>,
}

#[derive(Default)]
struct Pending {
    lines: Vec<u8>,
    dropped: u64,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Output {
    fn new(sink: Box<dyn Write + Send>) -> Self {
        Self {
            pending: Mutex::default(),
            filled: Condvar::new(),
            sink: Mutex::new(sink),
        }
    }

    /// Appends one access-log line; the request path's only work.
    fn buffer(&self, line: &[u8]) {
        let mut pending = lock(&self.pending);
        if pending.lines.len() + line.len() > BUFFER_LIMIT {
            pending.dropped += 1;
            return;
        }
        let was_empty = pending.lines.is_empty();
        pending.lines.extend_from_slice(line);
        if was_empty {
            self.filled.notify_one();
        }
    }

    /// Writes the buffered lines, then `line`.
    fn write_through(&self, line: &[u8]) -> io::Result<()> {
        let mut sink = lock(&self.sink);
        let (lines, dropped) = self.take();
        write_batch(&mut *sink, &lines, dropped)?;
        sink.write_all(line)
    }

    /// Writes what is buffered now, unless a writer holds the sink (a panic while writing).
    fn flush(&self) {
        if let Ok(mut sink) = self.sink.try_lock() {
            let (lines, dropped) = self.take();
            let _ = write_batch(&mut *sink, &lines, dropped);
        }
    }

    fn take(&self) -> (Vec<u8>, u64) {
        let mut pending = lock(&self.pending);
        let dropped = std::mem::take(&mut pending.dropped);
        (std::mem::take(&mut pending.lines), dropped)
    }

    /// The writer thread: waits for a line, lets the interval's lines gather, writes them.
    fn run(&self) {
        loop {
            {
                let mut pending = lock(&self.pending);
                while pending.lines.is_empty() && pending.dropped == 0 {
                    pending = self.filled.wait(pending).unwrap_or_else(|e| e.into_inner());
                }
            }
            std::thread::sleep(FLUSH_INTERVAL);
            let mut sink = lock(&self.sink);
            let (lines, dropped) = self.take();
            let _ = write_batch(&mut *sink, &lines, dropped);
        }
    }
}

fn write_batch(out: &mut impl Write, lines: &[u8], dropped: u64) -> io::Result<()> {
    if dropped > 0 {
        writeln!(
            out,
            "tailmeter: {dropped} access-log lines dropped: stderr is not keeping up"
        )?;
    }
    out.write_all(lines)
}

/// The [`MakeWriter`] for the log layer: access-log lines to the buffer, others straight out.
pub struct LogOutput(Arc<Output>);

impl LogOutput {
    /// The process's output, its writer thread started on first use.
    pub fn get() -> Self {
        Self(Arc::clone(
            OUTPUT.get_or_init(|| start(Box::new(io::stderr()))),
        ))
    }
}

/// An output to `sink` with its writer thread running.
fn start(sink: Box<dyn Write + Send>) -> Arc<Output> {
    let output = Arc::new(Output::new(sink));
    let writer = Arc::clone(&output);
    let started = std::thread::Builder::new()
        .name("tailmeter-log".to_owned())
        .spawn(move || writer.run());
    if let Err(e) = started {
        eprintln!("tailmeter: cannot start the log writer thread: {e}");
    }
    output
}

/// Buffers one access-log line ([`super::access`]); nothing before the log is set up.
pub(super) fn access(line: &[u8]) {
    if let Some(output) = OUTPUT.get() {
        output.buffer(line);
    }
}

/// Writes what the access log has buffered; for the end of the process and panics.
pub fn flush() {
    if let Some(output) = OUTPUT.get() {
        output.flush();
    }
}

/// One log line's writer (the log layer writes each line with one call).
pub struct LineWriter<'a> {
    output: &'a Output,
    /// An access-log line, for the buffer.
    access: bool,
}

impl Write for LineWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.access {
            self.output.buffer(buf);
        } else {
            self.output.write_through(buf)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LogOutput {
    type Writer = LineWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter {
            output: &self.0,
            access: false,
        }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Self::Writer {
        LineWriter {
            output: &self.0,
            access: meta.target() == ACCESS_TARGET,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sink the test can read.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            lock(&self.0).extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Shared {
        fn text(&self) -> String {
            String::from_utf8(lock(&self.0).clone()).unwrap()
        }
    }

    fn line(output: &Output, access: bool, text: &str) {
        LineWriter { output, access }
            .write_all(text.as_bytes())
            .unwrap();
    }

    #[test]
    fn access_lines_wait_and_other_lines_go_out_after_them() {
        let sink = Shared::default();
        let output = Output::new(Box::new(sink.clone()));
        line(&output, true, "request 1\n");
        line(&output, true, "request 2\n");
        assert_eq!(sink.text(), "");
        line(&output, false, "WARN something\n");
        assert_eq!(sink.text(), "request 1\nrequest 2\nWARN something\n");
        line(&output, true, "request 3\n");
        output.flush();
        assert!(sink.text().ends_with("WARN something\nrequest 3\n"));
    }

    #[test]
    fn a_full_buffer_drops_lines_and_says_how_many() {
        let sink = Shared::default();
        let output = Output::new(Box::new(sink.clone()));
        let long = "x".repeat(BUFFER_LIMIT / 2 - 1) + "\n";
        for _ in 0..5 {
            line(&output, true, &long);
        }
        output.flush();
        let text = sink.text();
        assert!(
            text.starts_with("tailmeter: 3 access-log lines dropped"),
            "{}",
            &text[..80]
        );
        assert_eq!(text.matches('x').count(), 2 * (BUFFER_LIMIT / 2 - 1));
        line(&output, true, "request\n");
        output.flush();
        assert!(sink.text().ends_with("\nrequest\n"));
    }

    #[test]
    fn the_writer_thread_writes_within_the_interval() {
        let sink = Shared::default();
        let output = start(Box::new(sink.clone()));
        line(&output, true, "request\n");
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while sink.text().is_empty() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(sink.text(), "request\n");
    }
}
