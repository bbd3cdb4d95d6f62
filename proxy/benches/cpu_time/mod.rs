//! A criterion [`Measurement`] of the benchmark thread's CPU time
//! (`clock_gettime(CLOCK_THREAD_CPUTIME_ID)`) instead of wall time.
//!
//! Why: the machine the figures are taken on has two cores shared with other
//! builds and benchmarks, so wall time counts the time the thread waited for
//! a core. Thread CPU time counts only the time it ran, which is what "bytes/s
//! per core" means. Caches and memory bandwidth are still shared, so figures
//! under load remain a little lower than on a quiet machine.

use std::time::Duration;

use criterion::measurement::{Measurement, ValueFormatter};
use criterion::Throughput;
use nix::time::{clock_gettime, ClockId};

/// CPU time of the calling thread.
pub struct ThreadCpuTime;

/// The calling thread's CPU time so far; zero if the clock cannot be read
/// (Linux always can).
fn now() -> Duration {
    clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID).map_or(Duration::ZERO, Duration::from)
}

impl Measurement for ThreadCpuTime {
    type Intermediate = Duration;
    type Value = Duration;

    fn start(&self) -> Duration {
        now()
    }

    fn end(&self, start: Duration) -> Duration {
        now().saturating_sub(start)
    }

    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }

    fn zero(&self) -> Duration {
        Duration::ZERO
    }

    fn to_f64(&self, value: &Duration) -> f64 {
        value.as_nanos() as f64
    }

    fn formatter(&self) -> &dyn ValueFormatter {
        &CpuFormatter
    }
}

/// Prints CPU nanoseconds as times, and throughputs per CPU-second.
struct CpuFormatter;

impl ValueFormatter for CpuFormatter {
    fn scale_values(&self, typical_ns: f64, values: &mut [f64]) -> &'static str {
        let (divisor, unit) = [(1e9, "s"), (1e6, "ms"), (1e3, "µs")]
            .into_iter()
            .find(|&(divisor, _)| typical_ns >= divisor)
            .unwrap_or((1.0, "ns"));
        values.iter_mut().for_each(|v| *v /= divisor);
        unit
    }

    fn scale_throughputs(
        &self,
        typical_ns: f64,
        throughput: &Throughput,
        values: &mut [f64],
    ) -> &'static str {
        let (per_iteration, units) = match *throughput {
            Throughput::Bytes(n) | Throughput::BytesDecimal(n) => (
                n as f64,
                [
                    (1024.0 * 1024.0 * 1024.0, "GiB/s"),
                    (1024.0 * 1024.0, "MiB/s"),
                    (1024.0, "KiB/s"),
                ],
            ),
            Throughput::Bits(n)
            | Throughput::Elements(n)
            | Throughput::ElementsAndBytes { elements: n, .. } => {
                (n as f64, [(1e9, "G/s"), (1e6, "M/s"), (1e3, "K/s")])
            }
        };
        let typical = per_iteration * 1e9 / typical_ns;
        let (divisor, unit) = units
            .into_iter()
            .find(|&(divisor, _)| typical >= divisor)
            .unwrap_or((1.0, "/s"));
        values
            .iter_mut()
            .for_each(|v| *v = per_iteration * 1e9 / *v / divisor);
        unit
    }

    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "ns"
    }
}

/// A benchmark binary's `main`, running each target (a `fn(&mut Criterion<ThreadCpuTime>)`) with
/// the bench thread's CPU time as the measurement.
#[macro_export]
macro_rules! cpu_time_main {
    ($($target:path),+) => {
        criterion::criterion_group! {
            name = benches;
            config = criterion::Criterion::default().with_measurement($crate::cpu_time::ThreadCpuTime);
            targets = $($target),+
        }
        criterion::criterion_main!(benches);
    };
}
