//! Starting a child: its own process group, default signal dispositions, an
//! empty signal mask, killed if rapid dies, stdout/stderr piped to rapid.

use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::sync::mpsc;

use super::reaper::{ChildExit, Reaper};

/// What to start.
#[derive(Debug, Clone)]
pub struct SpawnSpec {
    /// The program.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// Its complete environment.
    pub env: Vec<(String, String)>,
}

/// A started child.
#[derive(Debug)]
pub struct Spawned {
    /// Its pid, which is also its process group id.
    pub pid: i32,
    /// Read end of its stdout.
    pub stdout: OwnedFd,
    /// Read end of its stderr.
    pub stderr: OwnedFd,
    /// Write end of its stdin, when asked for ([`Reaper::spawn_with_stdin`]).
    pub stdin: Option<OwnedFd>,
}

/// Runs in the child between fork and exec; only async-signal-safe calls.
fn child_setup() -> io::Result<()> {
    // SAFETY: plain libc calls on the child's own process state; all are
    // async-signal-safe and take no locks or allocations.
    unsafe {
        if libc::setpgid(0, 0) != 0 {
            return Err(io::Error::last_os_error());
        }
        for sig in 1..32 {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::signal(sig, libc::SIG_DFL);
            }
        }
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
        // If rapid itself dies, do not leave the function running.
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
        // Only 0, 1, 2 cross exec (std's own error pipe is close-on-exec
        // already, so it still reports a failed exec).
        cloexec_from_3();
    }
    Ok(())
}

/// `close_range(3, ~0, CLOSE_RANGE_CLOEXEC)`: every descriptor from 3 up is
/// closed at exec; whether the kernel did it (Linux 5.11+).
fn cloexec_from_3() -> bool {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    // SAFETY: a plain syscall on the process's own descriptor table;
    // async-signal-safe.
    unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, CLOSE_RANGE_CLOEXEC) == 0 }
}

/// Mark every descriptor rapid inherited from its parent (3 and up)
/// close-on-exec, once at start-up: the runtime, extensions and forked
/// processes get 0, 1 and 2 only. Everything rapid opens itself is
/// close-on-exec already.
pub fn seal_inherited_fds() {
    if cloexec_from_3() {
        return;
    }
    // Older kernels: one by one, from /proc/self/fd.
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    let fds: Vec<i32> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|fd| *fd > 2)
        .collect();
    for fd in fds {
        // SAFETY: F_GETFD/F_SETFD on a descriptor number; a closed one
        // (the directory's own) only yields EBADF.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags >= 0 {
                libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
            }
        }
    }
}

impl Reaper {
    /// Spawn `spec` and route its exit to `exits`.
    pub fn spawn(
        &self,
        spec: &SpawnSpec,
        exits: mpsc::UnboundedSender<ChildExit>,
    ) -> io::Result<Spawned> {
        self.spawn_inner(spec, exits, false)
    }

    /// Like [`Reaper::spawn`], with a pipe to the child's stdin, and started
    /// the fast way for a process per request: `posix_spawn` (vfork) instead
    /// of fork + setup code. The child still gets its own process group, an
    /// empty signal mask and default dispositions (exec resets handlers; the
    /// one ignored signal, SIGPIPE, is reset by the spawn), but no parent-death
    /// signal: rapid kills these trees itself on timeout and shutdown.
    pub fn spawn_with_stdin(
        &self,
        spec: &SpawnSpec,
        exits: mpsc::UnboundedSender<ChildExit>,
    ) -> io::Result<Spawned> {
        self.spawn_inner(spec, exits, true)
    }

    fn spawn_inner(
        &self,
        spec: &SpawnSpec,
        exits: mpsc::UnboundedSender<ChildExit>,
        stdin: bool,
    ) -> io::Result<Spawned> {
        let mut cmd = Command::new(&spec.program);
        cmd.args(&spec.args)
            .env_clear()
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(if stdin { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if stdin {
            cmd.process_group(0);
        } else {
            // SAFETY: child_setup only makes async-signal-safe calls.
            unsafe {
                cmd.pre_exec(child_setup);
            }
        }
        let mut child = cmd.spawn()?;
        let pid = child.id() as i32;
        self.register(pid, exits);
        let stdout = child
            .stdout
            .take()
            .map(OwnedFd::from)
            .ok_or_else(|| io::Error::other("child stdout missing"))?;
        let stderr = child
            .stderr
            .take()
            .map(OwnedFd::from)
            .ok_or_else(|| io::Error::other("child stderr missing"))?;
        let stdin = child.stdin.take().map(OwnedFd::from);
        // `child` is dropped without waiting: the reaper owns the wait.
        Ok(Spawned {
            pid,
            stdout,
            stderr,
            stdin,
        })
    }
}

/// SIGKILL a process, its whole group, and every descendant — including those
/// that left the group with `setsid` (found by walking `/proc` first, since
/// killing a parent re-parents its children).
pub fn kill_tree(pid: i32) {
    let tree = super::memory::tree(pid);
    kill_group(pid, Signal::SIGKILL);
    for p in tree {
        let _ = nix::sys::signal::kill(Pid::from_raw(p), Signal::SIGKILL);
        if let Ok(pgid) = nix::unistd::getpgid(Some(Pid::from_raw(p))) {
            if pgid.as_raw() == p {
                kill_group(p, Signal::SIGKILL);
            }
        }
    }
}

/// SIGKILL every child of rapid not in `keep` and not in one of the
/// process groups `groups`: orphans of the sandbox that were re-parented to
/// rapid (PID 1 or child subreaper), and their trees. `groups` are the live
/// process groups of other sandboxes, whose orphans are theirs.
pub fn kill_orphans(keep: &[i32], groups: &[i32]) {
    let me = std::process::id() as i32;
    for child in super::memory::children(me) {
        if keep.contains(&child) {
            continue;
        }
        let group = nix::unistd::getpgid(Some(Pid::from_raw(child))).map(Pid::as_raw);
        if group.is_ok_and(|g| groups.contains(&g)) {
            continue;
        }
        tracing::debug!(pid = child, "killing a leftover process of the sandbox");
        kill_tree(child);
    }
}

/// Send `sig` to the whole process group `pgid`. A group that is already gone
/// is not an error.
pub fn kill_group(pgid: i32, sig: Signal) {
    match killpg(Pid::from_raw(pgid), sig) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
        Err(e) => tracing::warn!(pgid, signal = %sig, error = %e, "killpg failed"),
    }
}
