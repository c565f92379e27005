//! The process table after the soak: nothing rapid started may still run.
//! A process is the soak's when it was a child of one of its rapids
//! (pid and start time sampled all along, so a reused pid is not mistaken
//! for one), when it runs one of the soak's binaries (rapid, the
//! function), or when its command line carries the soak's tag (the
//! extension and the stalling runtime are started with it).

use std::collections::BTreeMap;
use std::path::PathBuf;

/// Processes of the soak still alive (not zombies), described.
pub fn left(seen: &BTreeMap<i32, u64>, exes: &[PathBuf], tag: &str) -> Vec<String> {
    let me = std::process::id() as i32;
    let exes: Vec<PathBuf> = exes
        .iter()
        .filter_map(|e| std::fs::canonicalize(e).ok())
        .collect();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return vec!["/proc cannot be read".into()];
    };
    let mut out = Vec::new();
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        if pid == me || zombie(pid) {
            continue;
        }
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
            .unwrap_or_default();
        if cmdline.is_empty() {
            // Gone meanwhile, or a kernel thread.
            continue;
        }
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok();
        let ours = seen.get(&pid).is_some_and(|t| start_time(pid) == Some(*t))
            || exe.as_deref().is_some_and(|x| exes.iter().any(|e| e == x))
            || cmdline.contains(tag);
        if ours {
            out.push(format!("{pid} {}", cmdline.trim_end()));
        }
    }
    out
}

/// The fields of `/proc/PID/stat` after the command name.
fn stat_fields(pid: i32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    Some(after.split_whitespace().map(str::to_owned).collect())
}

fn zombie(pid: i32) -> bool {
    match stat_fields(pid).and_then(|f| f.first().cloned()) {
        Some(state) => state == "Z" || state == "X",
        None => true,
    }
}

/// When `pid` started (clock ticks after boot): with the pid, a process's identity.
pub fn start_time(pid: i32) -> Option<u64> {
    // Field 22 of stat; the 20th after the command name.
    stat_fields(pid)?.get(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_process_once_seen_is_left_and_a_reaped_one_is_not() {
        let mut child = match std::process::Command::new("sleep").arg("30").spawn() {
            Ok(c) => c,
            Err(e) => panic!("cannot start sleep: {e}"),
        };
        let pid = child.id() as i32;
        // Until it has exec'd, the child is a copy of this test binary.
        let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c.starts_with(b"sleep"))
            && std::time::Instant::now() < until
        {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let mut seen = BTreeMap::new();
        seen.insert(pid, start_time(pid).unwrap_or_default());
        let tag = "rapid-soak-test-no-such-tag";
        assert!(left(&seen, &[], tag)
            .iter()
            .any(|l| l.starts_with(&format!("{pid} "))));
        let _ = child.kill();
        let _ = child.wait();
        assert!(left(&seen, &[], tag).is_empty());
    }

    #[test]
    fn a_reused_pid_is_not_mistaken_for_one_seen() {
        let me = std::process::id() as i32;
        let parent = std::os::unix::process::parent_id() as i32;
        let mut seen = BTreeMap::new();
        // The parent's pid with another start time: a different process.
        seen.insert(parent, start_time(parent).unwrap_or_default() + 1);
        let found = left(&seen, &[], "rapid-soak-test-no-such-tag");
        assert!(!found.iter().any(|l| l.starts_with(&format!("{parent} "))));
        assert!(start_time(me).is_some());
    }
}
