//! The retry policy of event delivery: how long to wait before trying a failed batch again.
//!
//! A batch that fails for a transient reason (the sink is down, slow, or refusing for now) is
//! retried forever, oldest first, with exponential backoff capped at [`Backoff::max`]; it is
//! safe on disk in the spool meanwhile. A batch the sink rejects as bad data is never retried
//! (retrying cannot fix it); see [`crate::sink::ErrorKind`].

use std::time::Duration;

/// Exponential backoff: `initial`, doubling per failure, capped at `max`; reset on success.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// A schedule starting at `initial` and never waiting longer than `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            next: initial,
        }
    }

    /// The delivery default: 100 ms, doubling up to 5 s, so a sink that comes back is noticed
    /// within seconds while a long outage costs one attempt every 5 s.
    pub fn delivery() -> Self {
        Self::new(Duration::from_millis(100), Duration::from_secs(5))
    }

    /// The longest wait.
    pub fn max(&self) -> Duration {
        self.max
    }

    /// The wait before the next attempt, advancing the schedule.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        delay
    }

    /// Back to the first step, after a success.
    pub fn reset(&mut self) {
        self.next = self.initial;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(700));
        let waits: Vec<u128> = (0..5).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(waits, [100, 200, 400, 700, 700]);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(100));
        assert_eq!(Backoff::delivery().max(), Duration::from_secs(5));
    }
}
