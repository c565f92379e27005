//! Commands from the control API and the signal handler: Init, Reset,
//! Shutdown, State. Out-of-order commands are refused, never queued or hung.

use std::ops::ControlFlow;
use std::time::Duration;

use interop::{FunctionError, InitResult, InvokeResult, ResetFailure, ResetResult};
use tokio::sync::oneshot;

use super::{Command, ControlError, Engine, Phase, SandboxState};

fn refuse(command: &'static str, phase: &Phase, why: &str) -> ControlError {
    ControlError::refused(command, phase.name(), why)
}

impl Engine {
    /// The invoke budget in force.
    pub(super) fn invoke_timeout(&self) -> Duration {
        Duration::from_millis(self.init.invoke_timeout_ms)
    }

    pub(super) fn record_init(
        &mut self,
        result: InitResult,
        reply: Option<oneshot::Sender<InitResult>>,
    ) {
        if let Some(r) = reply {
            let _ = r.send(result.clone());
        }
        self.last_init = Some(result);
    }

    pub(super) fn record_invoke(
        &mut self,
        result: InvokeResult,
        reply: Option<oneshot::Sender<InvokeResult>>,
    ) {
        if let Some(r) = reply {
            let _ = r.send(result.clone());
        }
        self.invokes_served += 1;
        self.last_invoke = Some(result);
    }

    fn state(&self) -> SandboxState {
        let health = self.phase.health();
        SandboxState {
            mode: "lambda",
            phase: self.phase.name(),
            health: health.name(),
            why: health.why().map(str::to_owned),
            generation: self.generation,
            runtime_pid: self.proc.as_ref().map(|p| p.pid),
            extensions: self
                .runtime
                .extensions()
                .into_iter()
                .map(|e| e.name)
                .collect(),
            in_flight: match &self.phase {
                Phase::Serving(s) => s.running.len(),
                p => usize::from(matches!(p, Phase::Invoking(_))),
            },
            queued: self.invokes.len(),
            invokes: self.invokes_served,
            age_ms: self.born.elapsed().as_millis() as u64,
            last_init: self.last_init.clone(),
            last_invoke: self.last_invoke.clone(),
            ..SandboxState::default()
        }
    }

    /// Handle one command; `Break` ends the engine.
    pub(super) async fn on_command(&mut self, cmd: Command) -> ControlFlow<()> {
        match cmd {
            Command::State { reply } => {
                let _ = reply.send(self.state());
            }
            Command::Shutdown { reason, exit, done } => {
                if matches!(self.phase, Phase::Stopped) && self.shut_down {
                    let _ = done.send(Err(refuse(
                        "Shutdown",
                        &self.phase,
                        "the sandbox is already shut down",
                    )));
                } else {
                    let result = self.shutdown(reason).await;
                    self.shut_down = true;
                    let _ = done.send(Ok(result));
                }
                if exit {
                    return ControlFlow::Break(());
                }
            }
            Command::Init { init, reply } => {
                if !matches!(self.phase, Phase::NotStarted) {
                    let why = "Init is allowed once, before any invoke, and again after a Reset";
                    let _ = reply.send(Err(refuse("Init", &self.phase, why)));
                    return ControlFlow::Continue(());
                }
                self.apply_init(*init);
                self.start_init(None);
                match &mut self.phase {
                    Phase::Initializing(i) => {
                        let (tx, rx) = oneshot::channel();
                        i.reply = Some(tx);
                        tokio::spawn(async move {
                            if let Ok(r) = rx.await {
                                let _ = reply.send(Ok(r));
                            }
                        });
                    }
                    // Init failed synchronously (no bootstrap, spawn failure).
                    _ => {
                        let result = self
                            .last_init
                            .clone()
                            .ok_or_else(|| refuse("Init", &self.phase, "init did not start"));
                        let _ = reply.send(result);
                    }
                }
            }
            Command::Restore { reply } => {
                if self.cfg.init_caching.is_none() {
                    let why = "init caching is off (--enable-init-caching)";
                    let _ = reply.send(Err(refuse("Restore", &self.phase, why)));
                } else if !matches!(self.phase, Phase::Snapshotted) {
                    let why = "Restore follows an init that ended in /restore/next";
                    let _ = reply.send(Err(refuse("Restore", &self.phase, why)));
                } else {
                    let (tx, rx) = oneshot::channel();
                    self.start_restore(Some(tx), None);
                    tokio::spawn(async move {
                        if let Ok(r) = rx.await {
                            let _ = reply.send(Ok(r));
                        }
                    });
                }
            }
            Command::Reset { reset, reply } => {
                let why = match &self.phase {
                    Phase::Ready
                    | Phase::InitFailed
                    | Phase::Invoking(_)
                    | Phase::Serving(_)
                    | Phase::Snapshotted => None,
                    Phase::Restoring(_) => Some("a restore is in progress"),
                    Phase::Initializing(_) => Some("an init is in progress"),
                    Phase::NotStarted => Some("there is no sandbox to reset"),
                    Phase::Stopped => Some("the sandbox is shut down"),
                };
                if let Some(why) = why {
                    let _ = reply.send(Err(refuse("Reset", &self.phase, why)));
                    return ControlFlow::Continue(());
                }
                self.fail_serving(super::errors::reset_during_invoke);
                if let Phase::Invoking(run) = &self.phase {
                    let err = super::errors::reset_during_invoke(&run.id);
                    self.fail_invoke_without_reinit(err, reset.reason).await;
                }
                let started = std::time::Instant::now();
                let mut done = self.reset(reset.reason).await;
                self.phase = Phase::NotStarted;
                let budget = Duration::from_millis(reset.deadline_ms);
                let result =
                    if started.elapsed() > budget || done.duration_ms > reset.deadline_ms as f64 {
                        ResetResult::ResetFailure(ResetFailure {
                            reason: reset.reason,
                            error: FunctionError::new(
                                fatalerror::ErrorType::SandboxTimedout,
                                format!(
                                "Reset deadline of {} ms exceeded: processes took {:.0} ms to stop",
                                reset.deadline_ms, done.duration_ms
                            ),
                            ),
                        })
                    } else {
                        done.duration_ms = done.duration_ms.max(0.0);
                        ResetResult::ResetSuccess(done)
                    };
                let _ = reply.send(Ok(result));
            }
        }
        ControlFlow::Continue(())
    }

    /// Replace the init parameters with a control-API Init; zero and empty
    /// fields keep the current values.
    fn apply_init(&mut self, init: interop::Init) {
        let cur = &mut self.init;
        if !init.function_name.is_empty() {
            cur.function_name = init.function_name;
        }
        if !init.function_version.is_empty() {
            cur.function_version = init.function_version;
        }
        if init.memory_size_mb > 0 {
            cur.memory_size_mb = init.memory_size_mb;
        }
        if init.handler.is_some() {
            cur.handler = init.handler;
        }
        if init.init_timeout_ms > 0 {
            cur.init_timeout_ms = init.init_timeout_ms;
        }
        if init.invoke_timeout_ms > 0 {
            cur.invoke_timeout_ms = init.invoke_timeout_ms;
        }
        cur.environment = init.environment;
        self.arn = self.cfg.function.arn_of(&self.init.function_name);
    }
}
