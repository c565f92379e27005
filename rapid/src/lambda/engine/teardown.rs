//! Resets and shutdown: stop the runtime (SIGTERM, then SIGKILL after its
//! share), send SHUTDOWN to the subscribed extensions, SIGKILL whatever is
//! alive at the deadline, and wait until every process is reaped.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use interop::{ResetSuccess, ShutdownReason, ShutdownSuccess};
use nix::sys::signal::Signal;
use runtime_api::InvokeOutcome;
use tokio::time::timeout_at;

use super::{errors, ms, Engine, Phase};

/// The runtime's share of a graceful stop: SIGTERM, then SIGKILL after this.
const RUNTIME_SHARE: Duration = Duration::from_millis(300);
/// The whole shutdown budget when external extensions exist.
const EXTENSIONS_DEADLINE: Duration = Duration::from_millis(2000);
/// Longest a stop waits for buffered telemetry to reach subscribers.
const TELEMETRY_FLUSH: Duration = Duration::from_millis(500);
/// How long to wait for SIGKILLed processes to be reaped before moving on.
const KILL_WAIT: Duration = Duration::from_secs(2);

fn epoch_ms_in(d: Duration) -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|now| (now + d).as_millis() as u64)
        .unwrap_or(0)
}

/// What stopping a generation took.
struct Stopped {
    /// Something had to be SIGKILLed after its grace period.
    killed: bool,
    /// Time from SHUTDOWN to the last extension's exit.
    extensions: Duration,
}

impl Engine {
    /// Wait until every pid in `pids` is reaped or `until` passes; returns the
    /// pids still alive.
    async fn await_exits(&mut self, mut pids: Vec<i32>, until: Instant) -> Vec<i32> {
        while !pids.is_empty() {
            match timeout_at(until.into(), self.exits.recv()).await {
                Ok(Some(exit)) => pids.retain(|p| *p != exit.pid),
                Ok(None) | Err(_) => break,
            }
        }
        pids
    }

    /// Stop every process of the generation. `graceful` gives the runtime
    /// SIGTERM and its share first; otherwise it is SIGKILLed at once.
    async fn stop_processes(&mut self, reason: ShutdownReason, graceful: bool) -> Stopped {
        let start = Instant::now();
        let mut killed = false;
        if let Some(p) = self.proc.take() {
            if graceful {
                self.procs.signal_group(p.pid, Signal::SIGTERM);
                if !self
                    .await_exits(vec![p.pid], start + RUNTIME_SHARE)
                    .await
                    .is_empty()
                {
                    killed = true;
                    tracing::info!(pid = p.pid, "runtime ignored SIGTERM; sending SIGKILL");
                    self.procs.signal_group(p.pid, Signal::SIGKILL);
                    self.await_exits(vec![p.pid], Instant::now() + KILL_WAIT)
                        .await;
                }
            } else {
                self.procs.signal_group(p.pid, Signal::SIGKILL);
                self.await_exits(vec![p.pid], Instant::now() + KILL_WAIT)
                    .await;
            }
            // Descendants left behind (in the group or escaped with setsid) go with it.
            self.procs.kill_tree(p.pid);
        }
        // Subscribers (extensions) get what is buffered before their SHUTDOWN.
        self.hub.flush(TELEMETRY_FLUSH).await;
        if self.extensions.is_empty() {
            self.procs.kill_orphans(&[]);
            return Stopped {
                killed,
                extensions: Duration::ZERO,
            };
        }
        let extensions_started = Instant::now();
        let deadline = start + EXTENSIONS_DEADLINE;
        let remaining = deadline.saturating_duration_since(Instant::now());
        let subscribed: Vec<String> = self
            .runtime
            .extensions()
            .into_iter()
            .filter(|e| e.shutdown)
            .map(|e| e.name)
            .collect();
        let told = self
            .runtime
            .shutdown_extensions(reason, epoch_ms_in(remaining));
        tracing::info!(
            reason = reason.as_str(),
            told,
            "SHUTDOWN sent to extensions"
        );
        for p in &self.extensions {
            let name = p.extension.as_deref().unwrap_or_default();
            if !subscribed.iter().any(|s| s == name) {
                // Nothing tells it to stop: it does not wait for an event it never gets.
                self.procs.signal_group(p.pid, Signal::SIGKILL);
            }
        }
        let pids: Vec<i32> = self.extensions.iter().map(|p| p.pid).collect();
        let alive = self.await_exits(pids, deadline).await;
        if !alive.is_empty() {
            killed = true;
            tracing::warn!(
                ?alive,
                "extensions still alive at the shutdown deadline; sending SIGKILL"
            );
            for pid in &alive {
                self.procs.signal_group(*pid, Signal::SIGKILL);
            }
            self.await_exits(alive, Instant::now() + KILL_WAIT).await;
        }
        for p in self.extensions.drain(..) {
            self.procs.kill_tree(p.pid);
        }
        self.procs.kill_orphans(&[]);
        Stopped {
            killed,
            extensions: extensions_started.elapsed(),
        }
    }

    /// SIGKILL every process of the generation without waiting (their exits
    /// are reaped and ignored), and forget the generation.
    pub(super) fn kill_all_now(&mut self) {
        let procs = self
            .proc
            .take()
            .into_iter()
            .chain(self.extensions.drain(..));
        let mut any = false;
        for p in procs {
            self.procs.kill_tree(p.pid);
            any = true;
        }
        self.procs.kill_orphans(&[]);
        if any {
            self.generation = self.runtime.reset(runtime_api::reset_error());
        }
    }

    /// Reset: stop the generation's processes and forget it in the Runtime API.
    pub(super) async fn reset(&mut self, reason: ShutdownReason) -> ResetSuccess {
        let started = Instant::now();
        let stopped = self
            .stop_processes(reason, reason == ShutdownReason::Spindown)
            .await;
        self.generation = self.runtime.reset(runtime_api::reset_error());
        self.pending_init_duration = None;
        self.stats.reset();
        let done = ResetSuccess {
            reason,
            duration_ms: ms(started.elapsed()),
            extensions_reset_ms: ms(stopped.extensions),
        };
        tracing::info!(
            reason = reason.as_str(),
            duration_ms = done.duration_ms,
            "sandbox reset"
        );
        done
    }

    /// Shut down for good: refuse queued invokes, fail the running one, stop
    /// every process.
    pub(super) async fn shutdown(&mut self, reason: ShutdownReason) -> ShutdownSuccess {
        let started = Instant::now();
        tracing::info!(reason = reason.as_str(), "shutdown starting");
        self.invokes.close();
        while let Ok(req) = self.invokes.try_recv() {
            drop(req); // the front answers 503 when its reply is dropped
        }
        self.fail_serving(errors::shutting_down);
        match std::mem::replace(&mut self.phase, Phase::Stopped) {
            Phase::Invoking(mut run) => {
                let error = errors::shutting_down(&run.id);
                let error_type = error.error_type.clone();
                self.runtime.fail_current(error);
                self.finish_run(&mut run, Some(&error_type));
            }
            Phase::Initializing(init) => {
                if let Some(w) = init.waiting {
                    let _ = w
                        .reply
                        .send(InvokeOutcome::failure(errors::shutting_down(&w.id)));
                }
            }
            _ => {}
        }
        let killed = self.stop_processes(reason, true).await.killed;
        self.generation = self.runtime.reset(runtime_api::reset_error());
        let done = ShutdownSuccess {
            duration_ms: ms(started.elapsed()),
            killed,
        };
        tracing::info!(duration_ms = done.duration_ms, killed, "shutdown complete");
        done
    }
}
