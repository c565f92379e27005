//! The lifecycle engine: one task that owns the sandbox.
//!
//! It receives commands (invoke, shutdown) and events (runtime ready, init
//! error, extension calls, process exited, deadline passed) and moves the
//! sandbox through Init → Invoke* → Reset → Init … → Shutdown (SPEC §2).
//! Nothing else spawns or kills sandbox processes, and nothing else decides
//! what a failure means.
//!
//! * `init.rs` — starting a generation: extensions, then the runtime.
//! * `invoke.rs` — dispatching an invoke and closing it.
//! * `teardown.rs` — resets and shutdown: SIGTERM/SIGKILL, SHUTDOWN events.

mod control;
mod environment;
mod errors;
mod init;
mod invoke;
mod memory;
mod phase;
mod restore;
mod serving;
mod teardown;
mod telemetry;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use interop::{
    FunctionError, Init, InitResult, InvokeResult, RequestId, ResetResult, ShutdownReason,
    ShutdownSuccess,
};
use runtime_api::{ExtensionErrorKind, OutcomeSender, RuntimeEvent, RuntimeHandle};
use tokio::sync::{mpsc, oneshot};
use tokio::time::sleep_until;
use tracing::Instrument;

use super::config::{LambdaConfig, Lifecycle};
use crate::output::Output;
use crate::sandbox::{Admission, ControlError, Health, OneShot, SandboxState, Stats};
use crate::supervisor::{ChildExit, ProcessControl};

pub use phase::Phase;

/// One invoke as a front hands it to the engine.
#[derive(Debug)]
pub struct InvokeRequest {
    /// Its id.
    pub id: RequestId,
    /// The event.
    pub payload: Bytes,
    /// Content type of the event.
    pub content_type: String,
    /// `X-Amzn-Trace-Id`.
    pub trace_id: Option<String>,
    /// Decoded client context JSON.
    pub client_context: Option<String>,
    /// Cognito identity JSON.
    pub cognito_identity: Option<String>,
    /// `X-Amz-Tenant-Id`.
    pub tenant_id: Option<String>,
    /// The ARN as invoked (with the caller's qualifier); `None`: the function's.
    pub invoked_arn: Option<String>,
    /// Where the outcome goes.
    pub reply: OutcomeSender,
    /// Where the log tail goes, when the invoker asked for it.
    pub tail: Option<oneshot::Sender<Vec<u8>>>,
    /// Where the typed result goes (control API).
    pub result: Option<oneshot::Sender<InvokeResult>>,
    /// Its place in the queue bound, held until the invoke is over.
    pub admission: Option<Admission>,
    /// A budget for this invoke instead of the function timeout (control API).
    pub timeout: Option<Duration>,
}

/// Orders for the engine other than invokes.
#[derive(Debug)]
pub enum Command {
    /// Shut down for good; answer on `done` when every process is gone.
    /// `exit` ends the engine (rapid is stopping); otherwise the engine stays to
    /// refuse further commands (control API).
    Shutdown {
        /// Why.
        reason: ShutdownReason,
        /// Stop the engine afterwards.
        exit: bool,
        /// Completion, or the refusal when already shut down.
        done: oneshot::Sender<Result<ShutdownSuccess, ControlError>>,
    },
    /// Start a sandbox generation (control API).
    Init {
        /// Parameters; zero/empty fields keep the configured values.
        init: Box<Init>,
        /// The typed result.
        reply: oneshot::Sender<Result<InitResult, ControlError>>,
    },
    /// Reset the sandbox (control API); the next generation waits for Init.
    Reset {
        /// Why, and the budget.
        reset: interop::Reset,
        /// The typed result.
        reply: oneshot::Sender<Result<ResetResult, ControlError>>,
    },
    /// Restore a snapshotted sandbox (control API, init caching).
    Restore {
        /// The typed result.
        reply: oneshot::Sender<Result<interop::RestoreResult, ControlError>>,
    },
    /// Report the state.
    State {
        /// The snapshot.
        reply: oneshot::Sender<SandboxState>,
    },
}

/// A process of the sandbox.
#[derive(Debug, Clone)]
struct Proc {
    pid: i32,
    /// `None` for the runtime, the extension's name otherwise.
    extension: Option<String>,
}

/// The engine and everything it owns.
pub struct Engine {
    cfg: Arc<LambdaConfig>,
    runtime: RuntimeHandle,
    events: mpsc::UnboundedReceiver<RuntimeEvent>,
    invokes: mpsc::Receiver<InvokeRequest>,
    commands: mpsc::Receiver<Command>,
    procs: Arc<dyn ProcessControl>,
    exits_tx: mpsc::UnboundedSender<ChildExit>,
    exits: mpsc::UnboundedReceiver<ChildExit>,
    out: Output,
    hub: Arc<crate::telemetry_hub::Hub>,
    phase: Phase,
    /// The runtime process of this generation.
    proc: Option<Proc>,
    /// External extension processes of this generation.
    extensions: Vec<Proc>,
    generation: u64,
    /// Init duration to report with the first invoke after a cold start.
    pending_init_duration: Option<Duration>,
    /// One-shot: the invoke finished; recycle (or exit) before the next.
    sealed_invoke_done: bool,
    /// The parameters of the next init (from the configuration, or a control-API Init).
    init: Init,
    /// The function ARN of `init`, as the runtime is told it.
    arn: String,
    /// This generation's log stream name (its `instanceId`).
    log_stream: String,
    /// The last typed results, for `GET /v1/state`.
    last_init: Option<InitResult>,
    last_invoke: Option<InvokeResult>,
    /// A Shutdown completed; later commands are refused.
    shut_down: bool,
    /// The runtime's peak memory, read off the invoke path.
    memory: Arc<memory::PeakMemory>,
    /// Where the sandbox's health goes.
    health: tokio::sync::watch::Sender<Health>,
    /// The health last sent there.
    announced: Option<Health>,
    /// Counters for the metrics front.
    stats: Arc<Stats>,
    /// When the engine started.
    born: Instant,
    /// Invocations answered.
    invokes_served: u64,
}

/// What the engine works with besides its inputs.
pub struct Deps {
    /// Process control (the one reaper).
    pub procs: Arc<dyn ProcessControl>,
    /// rapid's stdout.
    pub out: Output,
    /// Telemetry subscribers.
    pub hub: Arc<crate::telemetry_hub::Hub>,
}

/// Where the engine's inputs come from.
pub struct Inputs {
    /// Calls of the runtime and extensions.
    pub events: mpsc::UnboundedReceiver<RuntimeEvent>,
    /// The invoke queue.
    pub invokes: mpsc::Receiver<InvokeRequest>,
    /// Commands (signals, control API).
    pub commands: mpsc::Receiver<Command>,
}

impl Engine {
    /// Assemble an engine; [`Engine::run`] starts it. Its health goes to
    /// `health`, its counters to `stats`.
    pub fn new(
        cfg: Arc<LambdaConfig>,
        runtime: RuntimeHandle,
        inputs: Inputs,
        deps: Deps,
        health: tokio::sync::watch::Sender<Health>,
        stats: Arc<Stats>,
    ) -> Engine {
        let Deps { procs, out, hub } = deps;
        let Inputs {
            events,
            invokes,
            commands,
        } = inputs;
        let (exits_tx, exits) = mpsc::unbounded_channel();
        let generation = runtime.generation();
        Engine {
            runtime,
            events,
            invokes,
            commands,
            procs,
            exits_tx,
            exits,
            out: out.with_log_controls(cfg.log_controls),
            hub,
            phase: Phase::Stopped,
            proc: None,
            extensions: Vec::new(),
            generation,
            pending_init_duration: None,
            sealed_invoke_done: false,
            init: Init {
                function_name: cfg.function.name.clone(),
                function_version: cfg.function.version.clone(),
                memory_size_mb: cfg.memory_size_mb,
                handler: cfg.handler.clone(),
                init_timeout_ms: cfg.init_timeout.as_millis() as u64,
                invoke_timeout_ms: cfg.timeout.as_millis() as u64,
                suppressed: false,
                environment: Default::default(),
            },
            arn: cfg.function.arn(),
            log_stream: environment::log_stream_name(&cfg.function.version),
            last_init: None,
            last_invoke: None,
            shut_down: false,
            memory: Arc::default(),
            health,
            announced: None,
            stats,
            born: Instant::now(),
            invokes_served: 0,
            cfg,
        }
    }

    /// Publish the phase's health when it changed (checked every turn of
    /// the loop, so the comparison is with the last one sent, not the watch).
    fn announce_health(&mut self) {
        let now = self.phase.health();
        if self.announced.as_ref() == Some(&now) {
            return;
        }
        self.health.send_replace(now.clone());
        self.announced = Some(now);
    }

    /// Run until shutdown: eager init (or wait for a platform's Init), then
    /// serve invokes.
    pub async fn run(mut self) {
        match self.cfg.lifecycle {
            Lifecycle::PlatformDriven => {
                tracing::info!("waiting for Init on the control API");
                self.phase = Phase::NotStarted;
            }
            Lifecycle::Eager => self.start_init(None),
        }
        loop {
            self.announce_health();
            let deadline = self.phase.deadline();
            let accepting = self.can_take_invoke();
            tokio::select! {
                biased;
                Some(cmd) = self.commands.recv() => {
                    if self.on_command(cmd).await.is_break() {
                        return;
                    }
                }
                Some(exit) = self.exits.recv() => self.on_exit(exit).await,
                Some(event) = self.events.recv() => self.on_runtime_event(event).await,
                () = sleep_until(deadline.unwrap_or_else(far_future).into()), if deadline.is_some() => {
                    self.on_deadline().await;
                }
                Some(req) = self.invokes.recv(), if accepting => self.on_invoke(req),
            }
            if std::mem::take(&mut self.sealed_invoke_done) && !self.end_sealed_invoke().await {
                return;
            }
        }
    }

    /// One-shot: after an invoke (any outcome), the sandbox is not reused.
    /// Returns false when rapid should stop (`--one-shot=exit`).
    async fn end_sealed_invoke(&mut self) -> bool {
        match self.cfg.one_shot {
            None => true,
            Some(OneShot::Exit) => {
                tracing::info!("one-shot: the invoke is done; shutting down");
                self.shutdown(ShutdownReason::Spindown).await;
                false
            }
            Some(OneShot::Recycle) => {
                if self.proc.is_some() || !self.extensions.is_empty() {
                    self.reset(ShutdownReason::Spindown).await;
                }
                self.wipe_scratch();
                self.start_init(None);
                true
            }
        }
    }

    fn wipe_scratch(&self) {
        if let Some(dir) = &self.cfg.scratch_dir {
            crate::scratch::wipe(dir);
        }
    }

    async fn on_runtime_event(&mut self, event: RuntimeEvent) {
        let generation = match &event {
            RuntimeEvent::Ready { generation }
            | RuntimeEvent::InitError { generation, .. }
            | RuntimeEvent::ResponseDone { generation, .. }
            | RuntimeEvent::ExtensionRegistered { generation, .. }
            | RuntimeEvent::ExtensionReady { generation }
            | RuntimeEvent::ExtensionError { generation, .. }
            | RuntimeEvent::RestoreReady { generation }
            | RuntimeEvent::RestoreError { generation, .. } => *generation,
        };
        if generation != self.generation {
            tracing::trace!(?event, "ignoring an event of an earlier generation");
            return;
        }
        match event {
            RuntimeEvent::Ready { .. } => {
                match &mut self.phase {
                    Phase::Initializing(init) => init.runtime_ready = true,
                    Phase::Invoking(run) => run.runtime_ready = true,
                    Phase::Restoring(_) => {
                        self.restore_complete();
                        return;
                    }
                    _ => {}
                }
                self.check_progress();
            }
            RuntimeEvent::ExtensionReady { .. } => self.check_progress(),
            RuntimeEvent::RestoreReady { .. } => {
                if let Phase::Initializing(init) = &mut self.phase {
                    init.runtime_ready = true;
                    init.snapshot_ready = true;
                }
                self.check_progress();
            }
            RuntimeEvent::RestoreError { error, .. } => {
                if matches!(self.phase, Phase::Restoring(_)) {
                    let mut fe = error.function_error;
                    if fe.error_type == fatalerror::ErrorType::RuntimeUnknown {
                        fe.error_type = fatalerror::ErrorType::RuntimeRestoreError;
                    }
                    self.fail_restore(fe, ShutdownReason::Failure).await;
                }
            }
            RuntimeEvent::ExtensionRegistered { name, external, .. } => {
                self.emit_extension(&name);
                self.on_registered(&name, external);
            }
            RuntimeEvent::InitError { error, .. } => {
                if matches!(self.phase, Phase::Initializing(_)) {
                    self.fail_init(error.function_error, error.payload, ShutdownReason::Failure)
                        .await;
                }
            }
            RuntimeEvent::ExtensionError {
                name,
                kind,
                error_type,
                ..
            } => {
                if kind == ExtensionErrorKind::Init && matches!(self.phase, Phase::Initializing(_))
                {
                    let err = errors::extension_init_error(&name, &error_type);
                    self.fail_init(err, None, ShutdownReason::Failure).await;
                }
            }
            RuntimeEvent::ResponseDone {
                id,
                produced_bytes,
                mode,
                function_error,
                ..
            } => {
                if matches!(self.phase, Phase::Serving(_)) {
                    self.worker_done(&id, produced_bytes, mode, function_error);
                } else if let Phase::Invoking(run) = &mut self.phase {
                    run.produced_bytes = produced_bytes;
                    run.response = Some((mode, run.started.elapsed()));
                    if let Some(fe) = &function_error {
                        tracing::debug!(request_id = %run.id, ?mode, error_type = %fe.error_type,
                            "invoke ended with an error");
                    }
                    run.function_error = function_error;
                }
            }
        }
    }

    /// Init or the invoke may have completed: everyone is waiting for work.
    fn check_progress(&mut self) {
        let extensions_ready = self.runtime.extensions_ready();
        match &self.phase {
            Phase::Initializing(init) if init.runtime_ready && extensions_ready => {
                self.init_complete()
            }
            Phase::Invoking(run) if run.runtime_ready && extensions_ready => self.invoke_complete(),
            _ => {}
        }
    }

    async fn on_exit(&mut self, exit: ChildExit) {
        let which = if self.proc.as_ref().is_some_and(|p| p.pid == exit.pid) {
            self.proc.take()
        } else if let Some(i) = self.extensions.iter().position(|p| p.pid == exit.pid) {
            Some(self.extensions.remove(i))
        } else {
            return;
        };
        let Some(proc) = which else { return };
        // The group may still hold descendants: they go with the process.
        self.procs
            .signal_group(proc.pid, nix::sys::signal::Signal::SIGKILL);
        if proc.extension.is_none() {
            // Orphans of the runtime were re-parented to rapid.
            let keep: Vec<i32> = self.extensions.iter().map(|p| p.pid).collect();
            self.procs.kill_orphans(&keep);
        }
        tracing::info!(pid = exit.pid, extension = ?proc.extension, reason = %exit.reason, "sandbox process exited");
        let id = self.phase.request_id().cloned();
        let error = match &proc.extension {
            None => errors::runtime_exit(id.as_ref(), exit.reason),
            Some(name)
                if self.cfg.shares_network && matches!(self.phase, Phase::Initializing(_)) =>
            {
                errors::extension_crash_shared_network(name, exit.reason)
            }
            Some(name) => errors::extension_crash(id.as_ref(), name, exit.reason),
        };
        match &self.phase {
            Phase::Serving(_) => {
                let ext = proc.extension.clone();
                let reason = exit.reason;
                self.serving_exit(|id| match &ext {
                    None => errors::runtime_exit(Some(id), reason),
                    Some(name) => errors::extension_crash(Some(id), name, reason),
                })
                .await;
            }
            Phase::Initializing(_) => self.fail_init(error, None, ShutdownReason::Failure).await,
            Phase::Restoring(_) => self.fail_restore(error, ShutdownReason::Failure).await,
            Phase::Invoking(_) => self.fail_invoke(error, ShutdownReason::Failure).await,
            Phase::Ready | Phase::Snapshotted => {
                tracing::warn!("a sandbox process exited while idle; starting a fresh sandbox");
                self.reset(ShutdownReason::Failure).await;
                self.start_init(None);
            }
            _ => {}
        }
    }

    async fn on_deadline(&mut self) {
        match &self.phase {
            Phase::Initializing(init) => {
                let err = match &init.waiting {
                    Some(w) => errors::timed_out(&w.id, init.timeout),
                    None => errors::init_timed_out(init.timeout),
                };
                self.fail_init(err, None, ShutdownReason::Timeout).await;
            }
            Phase::Invoking(run) => {
                let err = errors::timed_out(&run.id, run.timeout);
                tracing::warn!(request_id = %run.id, "invoke timed out");
                self.fail_invoke(err, ShutdownReason::Timeout).await;
            }
            Phase::Serving(_) => self.serving_deadline(),
            Phase::Restoring(r) => {
                let (err, reason) = match &r.cannot_start {
                    Some(e) => (e.clone(), ShutdownReason::Failure),
                    None => (
                        errors::restore_timed_out(r.timeout),
                        ShutdownReason::Timeout,
                    ),
                };
                self.fail_restore(err, reason).await;
            }
            _ => {}
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400 * 365)
}

/// A failure the engine itself reports as the sandbox's (not the function's).
fn sandbox_failure(message: impl Into<String>) -> FunctionError {
    FunctionError::new(fatalerror::ErrorType::SandboxFailure, message)
}

/// Spawn the engine on the current runtime, inside a span.
pub fn spawn(engine: Engine) -> tokio::task::JoinHandle<()> {
    tokio::spawn(engine.run().instrument(tracing::info_span!("engine")))
}
