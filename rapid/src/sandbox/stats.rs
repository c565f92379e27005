//! Counters a sandbox keeps for the metrics front.

use std::sync::atomic::{AtomicU64, Ordering};

/// A sandbox's counters.
#[derive(Debug, Default)]
pub struct Stats {
    resets: AtomicU64,
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
}
