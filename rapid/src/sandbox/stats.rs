//! Counters a sandbox keeps for the metrics front, and the load snapshot a
//! scaler reads.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How an invocation that reached the function ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The function answered.
    Success,
    /// The function failed.
    Error,
    /// It ran past its budget.
    Timeout,
}

impl Outcome {
    /// Every outcome, in the order of [`Stats::invokes`].
    pub const ALL: [Outcome; 3] = [Outcome::Success, Outcome::Error, Outcome::Timeout];

    /// Its metric label.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Error => "error",
            Outcome::Timeout => "timeout",
        }
    }
}

/// Upper bounds of the invoke duration histogram, seconds (Prometheus'
/// default buckets).
pub const DURATION_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A sandbox's counters.
#[derive(Debug, Default)]
pub struct Stats {
    resets: AtomicU64,
    inits: AtomicU64,
    throttles: AtomicU64,
    invokes: [AtomicU64; 3],
    /// Durations: one count per bucket (the last: above every bound), and
    /// the sum in microseconds.
    buckets: [AtomicU64; DURATION_BUCKETS.len() + 1],
    sum_us: AtomicU64,
}

/// The duration histogram, read at once.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Durations {
    /// (upper bound, count in that bucket alone); the last bound is `f64::MAX`.
    pub buckets: Vec<(f64, u64)>,
    /// Every observation.
    pub count: u64,
    /// Their sum, seconds.
    pub sum_seconds: f64,
}

impl Stats {
    /// The function's processes were replaced (a reset, a restart after a
    /// crash, a one-shot recycle).
    pub fn reset(&self) {
        self.resets.fetch_add(1, Ordering::Relaxed);
    }

    /// Replacements so far.
    pub fn resets(&self) -> u64 {
        self.resets.load(Ordering::Relaxed)
    }

    /// An init began (a cold start).
    pub fn init(&self) {
        self.inits.fetch_add(1, Ordering::Relaxed);
    }

    /// Inits so far.
    pub fn inits(&self) -> u64 {
        self.inits.load(Ordering::Relaxed)
    }

    /// An invocation was throttled or found the queue full.
    pub fn throttled(&self) {
        self.throttles.fetch_add(1, Ordering::Relaxed);
    }

    /// Throttles so far.
    pub fn throttles(&self) -> u64 {
        self.throttles.load(Ordering::Relaxed)
    }

    /// An invocation ended with `outcome` after `took`.
    pub fn invoked(&self, outcome: Outcome, took: Duration) {
        self.invokes[outcome as usize].fetch_add(1, Ordering::Relaxed);
        let secs = took.as_secs_f64();
        let i = DURATION_BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(DURATION_BUCKETS.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_us
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }

    /// Invocations that ended with `outcome`.
    pub fn invokes(&self, outcome: Outcome) -> u64 {
        self.invokes[outcome as usize].load(Ordering::Relaxed)
    }

    /// The duration histogram.
    pub fn durations(&self) -> Durations {
        let bounds = DURATION_BUCKETS
            .iter()
            .copied()
            .chain(std::iter::once(f64::MAX));
        let buckets: Vec<(f64, u64)> = bounds
            .zip(&self.buckets)
            .map(|(b, n)| (b, n.load(Ordering::Relaxed)))
            .collect();
        Durations {
            count: buckets.iter().map(|(_, n)| n).sum(),
            buckets,
            sum_seconds: self.sum_us.load(Ordering::Relaxed) as f64 / 1e6,
        }
    }
}

/// How busy a function's sandboxes are, as a scaler reads it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Load {
    /// Sandboxes initialising.
    pub starting: u64,
    /// Sandboxes waiting for an invocation.
    pub idle: u64,
    /// Sandboxes running one (or, in LMI mode, at least one).
    pub busy: u64,
    /// Invocations running now: `busy`, or more in LMI mode where a busy
    /// sandbox runs up to N at once.
    pub running: u64,
    /// Invocations waiting for a sandbox.
    pub queued: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_fall_in_their_buckets() {
        let s = Stats::default();
        s.invoked(Outcome::Success, Duration::from_millis(3));
        s.invoked(Outcome::Error, Duration::from_millis(30));
        s.invoked(Outcome::Timeout, Duration::from_secs(20));
        let d = s.durations();
        assert_eq!(d.count, 3);
        assert_eq!(d.buckets[0], (0.005, 1), "3 ms ≤ 5 ms");
        assert_eq!(d.buckets[2].1, 0, "30 ms > 25 ms");
        assert_eq!(d.buckets[3], (0.05, 1), "30 ms ≤ 50 ms");
        assert_eq!(
            d.buckets.last(),
            Some(&(f64::MAX, 1)),
            "20 s is above every bound"
        );
        assert!((d.sum_seconds - 20.033).abs() < 1e-6);
        assert_eq!(
            Outcome::ALL.map(|o| s.invokes(o)),
            [1, 1, 1],
            "one of each outcome"
        );
    }
}
