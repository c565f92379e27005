//! The one owner of the upstream process: start it, probe it until it
//! answers (only then is the backend ready), and when it exits either start
//! it again with back-off (`--restart always`) or leave the backend
//! unhealthy (`--restart never`).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::Inner;
use crate::process::config::Restart;
use crate::sandbox::Health;
use crate::supervisor::{kill_group, kill_tree, ChildExit, SpawnSpec};

/// Grace between SIGTERM and SIGKILL when the function is stopped or recycled.
const STOP_GRACE: Duration = Duration::from_secs(5);

impl Inner {
    pub(super) fn set_health(&self, h: Health) {
        self.health.send_replace(h);
    }

    /// Start the process once; its exits arrive on `exits`.
    fn spawn(&self, exits: mpsc::UnboundedSender<ChildExit>) -> Result<i32, String> {
        let spec = SpawnSpec {
            program: self.program.path.clone(),
            args: self.program.args.clone(),
            env: std::env::vars()
                .filter(|(k, _)| k != "PORT")
                .chain(std::iter::once(("PORT".to_owned(), self.port.to_string())))
                .collect(),
        };
        let child = self
            .reaper
            .spawn(&spec, exits)
            .map_err(|e| format!("cannot start {}: {e}", self.program.path.display()))?;
        self.logs.forward(child.stdout, "stdout", None, None);
        self.logs.forward(child.stderr, "stderr", None, None);
        *self.pid.lock().unwrap_or_else(|p| p.into_inner()) = Some(child.pid);
        Ok(child.pid)
    }

    /// Until the upstream answers: any HTTP answer on `/`, or a 2xx on the ready path.
    async fn probe_until_ready(&self) {
        let path = self.ready_path.clone().unwrap_or_else(|| "/".into());
        let mut pause = Duration::from_millis(2);
        loop {
            let attempt = tokio::time::timeout(Duration::from_secs(2), self.pool.get(&path)).await;
            match attempt.map(|r| r.map(|resp| resp.status())) {
                Ok(Ok(status)) if self.ready_path.is_none() || status.is_success() => return,
                Ok(Ok(status)) => tracing::debug!(%status, "upstream not ready yet"),
                Ok(Err(e)) => tracing::trace!(error = %e, "upstream not answering yet"),
                Err(_) => tracing::debug!("readiness probe timed out"),
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(100));
        }
    }

    /// Own the process: start, probe, restart or give up; returns when stopped.
    pub(super) async fn supervise(self: Arc<Self>) {
        let mut backoff = Duration::from_millis(100);
        loop {
            if self.stopping.load(Ordering::SeqCst) {
                self.set_health(Health::Unhealthy("stopped".into()));
                return;
            }
            let (exits_tx, mut exits) = mpsc::unbounded_channel();
            self.set_health(Health::Starting);
            let started = Instant::now();
            let reason = match self.spawn(exits_tx) {
                Err(why) => {
                    tracing::error!("{why}");
                    why
                }
                Ok(pid) => {
                    tracing::info!(pid, program = %self.program.path.display(), "function process started");
                    let exited = tokio::select! {
                        _ = self.probe_until_ready() => {
                            tracing::info!(
                                pid,
                                upstream = %self.pool.authority,
                                ready_ms = started.elapsed().as_millis() as u64,
                                "upstream ready"
                            );
                            self.set_health(Health::Ready);
                            exits.recv().await
                        }
                        e = exits.recv() => e,
                    };
                    *self.pid.lock().unwrap_or_else(|p| p.into_inner()) = None;
                    kill_group(pid, Signal::SIGKILL);
                    self.pool.clear();
                    let reason = exited.map_or_else(|| "lost".to_owned(), |e| e.reason.to_string());
                    format!("the function process exited ({reason})")
                }
            };
            if self.stopping.load(Ordering::SeqCst) {
                self.set_health(Health::Unhealthy("stopped".into()));
                return;
            }
            if self.replacing.swap(false, Ordering::SeqCst) {
                // The old process is gone; the next one gets a clean scratch.
                if let Some(dir) = self
                    .scratch
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .take()
                {
                    crate::scratch::wipe(&dir);
                }
                backoff = Duration::from_millis(100);
                continue;
            }
            match self.restart {
                Restart::Never => {
                    tracing::error!("{reason}; --restart never: the function stays down");
                    self.set_health(Health::Unhealthy(reason));
                    return;
                }
                Restart::Always => {
                    self.stats.reset();
                    if started.elapsed() > Duration::from_secs(10) {
                        backoff = Duration::from_millis(100);
                    }
                    tracing::warn!(
                        retry_in_ms = backoff.as_millis() as u64,
                        "{reason}; restarting it"
                    );
                    // A stop or a recycle cuts the back-off short.
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = self.wake.notified() => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    /// SIGTERM the process group, SIGKILL the tree after the grace period.
    pub(super) async fn terminate(&self) {
        let pid = *self.pid.lock().unwrap_or_else(|p| p.into_inner());
        let Some(pid) = pid else { return };
        kill_group(pid, Signal::SIGTERM);
        let mut health = self.health.subscribe();
        let gone = tokio::time::timeout(STOP_GRACE, async {
            loop {
                // Gone once the supervisor let go of it (it may already
                // have started the next one).
                if *self.pid.lock().unwrap_or_else(|p| p.into_inner()) != Some(pid) {
                    return;
                }
                if health.changed().await.is_err() {
                    return;
                }
            }
        })
        .await;
        if gone.is_err() {
            tracing::warn!(pid, "the function ignored SIGTERM; killing it");
            kill_tree(pid);
        }
    }
}
