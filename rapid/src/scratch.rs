//! The scratch directory of sealed execution: emptied between sandboxes.

use std::path::Path;

/// Remove everything inside `dir` (not `dir` itself); symbolic links are
/// removed, never followed. Failures are logged, not fatal.
pub fn wipe(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        tracing::warn!(dir = %dir.display(), "scratch dir cannot be read");
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let r = if e.file_type().is_ok_and(|t| t.is_dir()) {
            std::fs::remove_dir_all(&p)
        } else {
            std::fs::remove_file(&p)
        };
        if let Err(err) = r {
            tracing::warn!(path = %p.display(), error = %err, "could not wipe scratch entry");
        }
    }
}
