//! The one reaper: the only place rapid calls `waitpid`.
//!
//! It reaps every child that exits — rapid's own children and, as PID 1 or a
//! child subreaper, every orphan re-parented to rapid — and routes the exit
//! status of a registered child to whoever spawned it.
//!
//! rapid runs on a current-thread tokio runtime, so registration (done right
//! after `fork` on the same thread) can never race with the reaping loop.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitReason {
    /// `exit(code)`.
    Code(i32),
    /// Killed by a signal.
    Signal(Signal),
}

impl fmt::Display for ExitReason {
    /// As Lambda words it: `exit status 3`, `signal: killed`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitReason::Code(c) => write!(f, "exit status {c}"),
            ExitReason::Signal(s) => write!(f, "signal: {}", signal_name(*s)),
        }
    }
}

/// Go-style signal names (`killed`, `terminated`, …), as Lambda prints them.
pub fn signal_name(s: Signal) -> &'static str {
    match s {
        Signal::SIGKILL => "killed",
        Signal::SIGTERM => "terminated",
        Signal::SIGINT => "interrupt",
        Signal::SIGSEGV => "segmentation fault",
        Signal::SIGABRT => "aborted",
        Signal::SIGBUS => "bus error",
        Signal::SIGFPE => "floating point exception",
        Signal::SIGILL => "illegal instruction",
        Signal::SIGPIPE => "broken pipe",
        Signal::SIGHUP => "hangup",
        Signal::SIGQUIT => "quit",
        Signal::SIGUSR1 => "user defined signal 1",
        Signal::SIGUSR2 => "user defined signal 2",
        Signal::SIGALRM => "alarm clock",
        Signal::SIGTRAP => "trace/breakpoint trap",
        Signal::SIGXCPU => "CPU time limit exceeded",
        Signal::SIGXFSZ => "file size limit exceeded",
        _ => s.as_str(),
    }
}

/// A registered child's exit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChildExit {
    /// Its pid.
    pub pid: i32,
    /// How it ended.
    pub reason: ExitReason,
}

/// Routes exit statuses; see the module docs.
pub struct Reaper {
    routes: Mutex<HashMap<i32, mpsc::UnboundedSender<ChildExit>>>,
}

impl Reaper {
    /// Install the SIGCHLD handler and start the reaping task. Must be called
    /// inside the tokio runtime, before any child is spawned.
    pub fn start() -> std::io::Result<Arc<Reaper>> {
        let mut sigchld = signal(SignalKind::child())?;
        let reaper = Arc::new(Reaper {
            routes: Mutex::new(HashMap::new()),
        });
        let r = reaper.clone();
        tokio::spawn(async move {
            loop {
                r.reap_all();
                if sigchld.recv().await.is_none() {
                    return;
                }
            }
        });
        Ok(reaper)
    }

    /// Route the exit of `pid` to `to`.
    pub fn register(&self, pid: i32, to: mpsc::UnboundedSender<ChildExit>) {
        self.routes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(pid, to);
    }

    /// The processes started and not yet reaped.
    pub fn registered(&self) -> Vec<i32> {
        self.routes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .copied()
            .collect()
    }

    fn reap_all(&self) {
        loop {
            let (pid, reason) = match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) => (pid, ExitReason::Code(code)),
                Ok(WaitStatus::Signaled(pid, sig, _)) => (pid, ExitReason::Signal(sig)),
                Ok(WaitStatus::StillAlive) => return,
                Ok(_) => continue, // stopped / continued: not an exit
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => return, // ECHILD: nothing left to wait for
            };
            let pid = pid.as_raw();
            let route = self
                .routes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&pid);
            match route {
                Some(tx) => {
                    tracing::debug!(pid, %reason, "child exited");
                    let _ = tx.send(ChildExit { pid, reason });
                }
                None => tracing::debug!(pid, %reason, "reaped an orphan"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_reason_wording() {
        assert_eq!(ExitReason::Code(3).to_string(), "exit status 3");
        assert_eq!(
            ExitReason::Signal(Signal::SIGKILL).to_string(),
            "signal: killed"
        );
        assert_eq!(
            ExitReason::Signal(Signal::SIGTERM).to_string(),
            "signal: terminated"
        );
    }
}
