//! The lock file (`$TMPDIR/.lock`): present while the function is ready and
//! rapid is not draining, as of-watchdog's exec probes expect.

use std::path::{Path, PathBuf};

use crate::fronts::Drain;
use crate::sandbox::{Health, Resolved};

fn remove(lock: &Path) {
    match std::fs::remove_file(lock) {
        Ok(()) => tracing::debug!(lock = %lock.display(), "lock file removed"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(lock = %lock.display(), error = %e, "cannot remove the lock file"),
    }
}

/// Keep `lock` in step with the function's health and the drain, until the
/// drain begins (the file is then removed for good).
pub async fn keep_lock_file(lock: PathBuf, function: Resolved, drain: Drain) {
    let mut health = function.sandbox.health();
    let mut stage = drain.subscribe();
    let mut written = false;
    loop {
        let ready = *health.borrow_and_update() == Health::Ready;
        let draining = drain.is_draining();
        match (ready && !draining, written) {
            (true, false) => match std::fs::write(&lock, b"") {
                Ok(()) => {
                    tracing::debug!(lock = %lock.display(), "lock file written");
                    written = true;
                }
                Err(e) => {
                    tracing::warn!(lock = %lock.display(), error = %e, "cannot write the lock file")
                }
            },
            (false, true) => {
                remove(&lock);
                written = false;
            }
            _ => {}
        }
        if draining {
            remove(&lock);
            return;
        }
        tokio::select! {
            r = health.changed() => if r.is_err() { remove(&lock); return; },
            r = stage.changed() => if r.is_err() { remove(&lock); return; },
        }
    }
}
