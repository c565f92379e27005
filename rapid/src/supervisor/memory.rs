//! Peak memory of a process tree, from `/proc`.

use std::fs;

fn status_field_kib(pid: i32, field: &str) -> Option<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Direct children of `pid` (all its threads' children).
pub fn children(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for task in tasks.flatten() {
        let path = task.path().join("children");
        if let Ok(text) = fs::read_to_string(path) {
            out.extend(
                text.split_whitespace()
                    .filter_map(|p| p.parse::<i32>().ok()),
            );
        }
    }
    out
}

/// `pid` and all its descendants.
pub fn tree(pid: i32) -> Vec<i32> {
    let mut all = vec![pid];
    let mut i = 0;
    while i < all.len() && all.len() < 4096 {
        let kids = children(all[i]);
        all.extend(kids);
        i += 1;
    }
    all
}

/// The sum of the peak resident set sizes (VmHWM) of `pid` and its descendants,
/// in KiB: the memory the function's process tree has used at most.
pub fn tree_peak_kib(pid: i32) -> u64 {
    tree(pid)
        .into_iter()
        .filter_map(|p| status_field_kib(p, "VmHWM:"))
        .sum()
}

/// Current resident set size of `pid`, in KiB.
pub fn rss_kib(pid: i32) -> Option<u64> {
    status_field_kib(pid, "VmRSS:")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_memory_is_visible() {
        let me = std::process::id() as i32;
        assert!(tree_peak_kib(me) > 0);
        assert!(rss_kib(me).unwrap_or(0) > 0);
        assert!(tree(me).contains(&me));
    }
}
