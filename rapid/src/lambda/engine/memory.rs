//! The runtime's peak memory for the typed results and telemetry reports,
//! read from `/proc` off the invoke path: the first reading of a runtime is
//! taken at once, later ones are refreshed on a blocking thread when the last
//! is over 20 ms old (VmHWM only grows, so a fresh-enough reading is a tight
//! lower bound) and the invoke uses the latest one.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::supervisor::ProcessControl;

/// How long a reading is used before a refresh is started.
const TTL: Duration = Duration::from_millis(20);

/// The last reading: (pid, when, KiB).
#[derive(Default)]
pub(super) struct PeakMemory {
    last: Mutex<Option<(i32, Instant, u64)>>,
    refreshing: AtomicBool,
}

impl PeakMemory {
    /// The runtime `pid`'s peak, KiB.
    pub(super) fn kib(self: &Arc<Self>, pid: i32, procs: &Arc<dyn ProcessControl>) -> u64 {
        let last = *self.last.lock().unwrap_or_else(|p| p.into_inner());
        match last {
            Some((p, at, kib)) if p == pid => {
                if at.elapsed() >= TTL && !self.refreshing.swap(true, Ordering::AcqRel) {
                    let (me, procs) = (self.clone(), procs.clone());
                    tokio::task::spawn_blocking(move || {
                        let kib = procs.peak_kib(pid);
                        me.store(pid, kib);
                        me.refreshing.store(false, Ordering::Release);
                    });
                }
                kib
            }
            _ => {
                let kib = procs.peak_kib(pid);
                self.store(pid, kib);
                kib
            }
        }
    }

    fn store(&self, pid: i32, kib: u64) {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        // A reading never goes down for the same process (a late refresh
        // after it exited reads 0).
        let kib = match *last {
            Some((p, _, k)) if p == pid => k.max(kib),
            _ => kib,
        };
        *last = Some((pid, Instant::now(), kib));
    }
}
