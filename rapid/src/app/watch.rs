//! `--watch`: a function's files followed with inotify (the `notify` crate);
//! a change reloads its pool — idle sandboxes are replaced at once, busy
//! ones after their invoke — so `cargo build` and invoke again, no restart.
//!
//! A file is watched through its directory (a rebuild replaces the file, and
//! a watch on the old inode would go quiet); a directory recursively. Bursts
//! of changes (a build writes a file several times) make one reload, once
//! the files have been quiet for [`QUIET`].

use std::path::{Path, PathBuf};
use std::sync::Weak;
use std::time::Duration;

use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::mpsc;

use crate::pool::Pool;

/// How long the files must be quiet before a reload.
const QUIET: Duration = Duration::from_millis(200);

/// A path `--watch` cannot follow.
#[derive(Debug, thiserror::Error)]
#[error("--watch {path}: {source}")]
pub struct WatchError {
    path: PathBuf,
    source: notify::Error,
}

/// What is watched: a file (through its directory) or a directory.
#[derive(Clone)]
struct Target {
    /// The file or directory, absolute.
    path: PathBuf,
    is_dir: bool,
}

impl Target {
    fn of(p: &Path) -> Target {
        let path = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
        Target {
            is_dir: path.is_dir(),
            path,
        }
    }

    /// Where the watch is put, and how.
    fn watch_point(&self) -> (&Path, RecursiveMode) {
        if self.is_dir {
            (&self.path, RecursiveMode::Recursive)
        } else {
            (
                self.path.parent().unwrap_or(Path::new("/")),
                RecursiveMode::NonRecursive,
            )
        }
    }

    fn covers(&self, changed: &Path) -> bool {
        if self.is_dir {
            changed.starts_with(&self.path)
        } else {
            changed == self.path
        }
    }
}

/// Follow `paths` of `function`; each change (after a quiet spell) renews
/// `pool`. The watch lasts as long as the pool.
pub fn follow(function: String, paths: Vec<PathBuf>, pool: Weak<Pool>) -> Result<(), WatchError> {
    let targets: Vec<Target> = paths.iter().map(|p| Target::of(p)).collect();
    let (tx, mut rx) = mpsc::unbounded_channel::<PathBuf>();
    let covered = targets.clone();
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        let Ok(event) = res else {
            return;
        };
        if matches!(event.kind, EventKind::Access(_)) {
            return;
        }
        for changed in event.paths {
            if covered.iter().any(|t| t.covers(&changed)) {
                let _ = tx.send(changed);
            }
        }
    })
    .map_err(|source| WatchError {
        path: PathBuf::from("."),
        source,
    })?;
    let mut points: Vec<(&Path, RecursiveMode)> = Vec::new();
    for t in &targets {
        let point = t.watch_point();
        if !points.contains(&point) {
            points.push(point);
        }
    }
    for (path, mode) in points {
        watcher.watch(path, mode).map_err(|source| WatchError {
            path: path.to_path_buf(),
            source,
        })?;
    }
    tracing::info!(
        function = %function,
        paths = ?targets.iter().map(|t| &t.path).collect::<Vec<_>>(),
        "watching for changes"
    );
    tokio::spawn(async move {
        // Kept for as long as this task runs: dropping it ends the watch.
        let _watcher = watcher;
        while let Some(first) = rx.recv().await {
            // One reload for a burst: wait until the files are quiet.
            let mut changed = 1usize;
            loop {
                match tokio::time::timeout(QUIET, rx.recv()).await {
                    Ok(Some(_)) => changed += 1,
                    Ok(None) => return,
                    Err(_) => break,
                }
            }
            let Some(pool) = pool.upgrade() else {
                return;
            };
            tracing::info!(
                function = %function,
                path = %first.display(),
                changes = changed,
                "changed on disk: reloading the function"
            );
            pool.renew();
        }
    });
    Ok(())
}
