//! What the Lambda engine may do to processes, as one interface: start a
//! child, signal its group, kill its tree and rapid's orphans, read its peak
//! memory. The reaper is the real one; the engine's unit tests drive a fake
//! that never starts anything.

use std::io;

use nix::sys::signal::Signal;
use tokio::sync::mpsc;

use super::reaper::{ChildExit, Reaper};
use super::spawn::{SpawnSpec, Spawned};

/// Process control for the engine.
pub trait ProcessControl: Send + Sync + 'static {
    /// Start `spec`; its exit goes to `exits`.
    fn spawn(
        &self,
        spec: &SpawnSpec,
        exits: mpsc::UnboundedSender<ChildExit>,
    ) -> io::Result<Spawned>;
    /// Send `sig` to the process group `pgid`.
    fn signal_group(&self, pgid: i32, sig: Signal);
    /// SIGKILL `pid`, its group and every descendant.
    fn kill_tree(&self, pid: i32);
    /// SIGKILL every child of rapid not in `keep` (orphans of the sandbox),
    /// sparing every process rapid started that still runs (other sandboxes'
    /// runtimes and extensions) and their process groups.
    fn kill_orphans(&self, keep: &[i32]);
    /// Peak memory of `pid`'s process tree, KiB.
    fn peak_kib(&self, pid: i32) -> u64;
}

impl ProcessControl for Reaper {
    fn spawn(
        &self,
        spec: &SpawnSpec,
        exits: mpsc::UnboundedSender<ChildExit>,
    ) -> io::Result<Spawned> {
        Reaper::spawn(self, spec, exits)
    }

    fn signal_group(&self, pgid: i32, sig: Signal) {
        super::spawn::kill_group(pgid, sig);
    }

    fn kill_tree(&self, pid: i32) {
        super::spawn::kill_tree(pid);
    }

    fn kill_orphans(&self, keep: &[i32]) {
        let live = self.registered();
        let mut spare = keep.to_vec();
        spare.extend_from_slice(&live);
        super::spawn::kill_orphans(&spare, &live);
    }

    fn peak_kib(&self, pid: i32) -> u64 {
        super::memory::tree_peak_kib(pid)
    }
}
