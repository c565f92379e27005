//! The lifecycle engine: one task that owns the sandbox.
//!
//! It receives commands (invoke, shutdown) and events (runtime ready, init
//! error, response done, process exited, deadline passed) and moves the sandbox
//! through Init → Invoke* → Reset → Init … → Shutdown (SPEC §2). Nothing else
//! spawns or kills the runtime, and nothing else decides what a failure means.

mod environment;
mod errors;
mod phase;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use interop::{
    ErrorInvokeResponse, FunctionError, Init, InitFailure, InitMetrics, InitSuccess, Invoke,
    InvokeFailure, InvokeMetrics, InvokeSuccess, RequestId, ResetSuccess, ShutdownReason,
    ShutdownSuccess,
};
use nix::sys::signal::Signal;
use runtime_api::{InvokeOutcome, OutcomeSender, RuntimeEvent, RuntimeHandle};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{sleep_until, timeout};
use tracing::Instrument;

use crate::config::{Bootstrap, Config};
use crate::output::{Output, Report};
use crate::supervisor::{kill_group, ChildExit, ExitReason, Reaper, SpawnSpec};

pub use phase::Phase;
use phase::{Initializing, Running};

/// The runtime's share of a shutdown: SIGTERM, then SIGKILL after this.
const RUNTIME_SHUTDOWN_GRACE: Duration = Duration::from_millis(300);
/// How long to wait for a SIGKILLed process to be reaped before moving on.
const KILL_WAIT: Duration = Duration::from_secs(2);

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
    /// Where the outcome goes.
    pub reply: OutcomeSender,
    /// Where the log tail goes, when the invoker asked for it.
    pub tail: Option<oneshot::Sender<Vec<u8>>>,
}

/// Orders for the engine other than invokes.
#[derive(Debug)]
pub enum Command {
    /// Shut down for good; answer on `done` when every process is gone.
    Shutdown {
        /// Why.
        reason: ShutdownReason,
        /// Completion.
        done: oneshot::Sender<ShutdownSuccess>,
    },
}

/// The running runtime process.
#[derive(Debug, Clone, Copy)]
struct Proc {
    pid: i32,
}

/// The engine and everything it owns.
pub struct Engine {
    cfg: Arc<Config>,
    runtime: RuntimeHandle,
    events: mpsc::UnboundedReceiver<RuntimeEvent>,
    invokes: mpsc::Receiver<InvokeRequest>,
    commands: mpsc::Receiver<Command>,
    reaper: Arc<Reaper>,
    exits_tx: mpsc::UnboundedSender<ChildExit>,
    exits: mpsc::UnboundedReceiver<ChildExit>,
    out: Output,
    phase: Phase,
    proc: Option<Proc>,
    generation: u64,
    /// Init duration to report with the first invoke after a cold start.
    pending_init_duration: Option<Duration>,
}

impl Engine {
    /// Assemble an engine; [`Engine::run`] starts it.
    pub fn new(
        cfg: Arc<Config>,
        runtime: RuntimeHandle,
        events: mpsc::UnboundedReceiver<RuntimeEvent>,
        invokes: mpsc::Receiver<InvokeRequest>,
        commands: mpsc::Receiver<Command>,
        reaper: Arc<Reaper>,
        out: Output,
    ) -> Engine {
        let (exits_tx, exits) = mpsc::unbounded_channel();
        let generation = runtime.generation();
        Engine {
            cfg,
            runtime,
            events,
            invokes,
            commands,
            reaper,
            exits_tx,
            exits,
            out,
            phase: Phase::Stopped,
            proc: None,
            generation,
            pending_init_duration: None,
        }
    }

    /// Run until shutdown: eager init, then serve invokes.
    pub async fn run(mut self) {
        self.start_init(None);
        loop {
            let deadline = self.phase.deadline();
            let accepting = self.phase.accepts_invokes();
            tokio::select! {
                biased;
                Some(cmd) = self.commands.recv() => match cmd {
                    Command::Shutdown { reason, done } => {
                        let result = self.shutdown(reason).await;
                        let _ = done.send(result);
                        return;
                    }
                },
                Some(exit) = self.exits.recv() => self.on_exit(exit).await,
                Some(event) = self.events.recv() => self.on_runtime_event(event).await,
                () = sleep_until(deadline.unwrap_or_else(far_future).into()), if deadline.is_some() => {
                    self.on_deadline().await;
                }
                Some(req) = self.invokes.recv(), if accepting => self.on_invoke(req).await,
            }
        }
    }

    fn init_message(&self, suppressed: bool) -> Init {
        Init {
            function_name: self.cfg.function_name.clone(),
            function_version: self.cfg.function_version.clone(),
            memory_size_mb: self.cfg.memory_size_mb,
            handler: self.cfg.handler.clone(),
            init_timeout_ms: self.cfg.init_timeout.as_millis() as u64,
            invoke_timeout_ms: self.cfg.timeout.as_millis() as u64,
            suppressed,
            environment: Default::default(),
        }
    }

    /// Start a fresh sandbox generation. `waiting` is the invoke of a suppressed init.
    fn start_init(&mut self, waiting: Option<InvokeRequest>) {
        let init = self.init_message(waiting.is_some());
        let started = Instant::now();
        let budget = if init.suppressed {
            Duration::from_millis(init.invoke_timeout_ms)
        } else {
            Duration::from_millis(init.init_timeout_ms)
        };
        tracing::info!(
            generation = self.generation,
            suppressed = init.suppressed,
            budget_ms = budget.as_millis() as u64,
            "init starting"
        );
        let spec = match &self.cfg.bootstrap {
            Bootstrap::Missing(detail) => {
                let e = errors::invalid_entrypoint(waiting.as_ref().map(|w| &w.id), detail);
                self.init_failed(e, None, waiting, started);
                return;
            }
            Bootstrap::Command { program, args } => SpawnSpec {
                program: program.clone(),
                args: args.clone(),
                env: environment::runtime_env(&self.cfg, std::env::vars()),
            },
        };
        match self.reaper.spawn(&spec, self.exits_tx.clone()) {
            Ok(spawned) => {
                tracing::debug!(pid = spawned.pid, program = %spec.program.display(), "runtime started");
                self.out.forward(spawned.stdout, "stdout");
                self.out.forward(spawned.stderr, "stderr");
                self.proc = Some(Proc { pid: spawned.pid });
                self.phase = Phase::Initializing(Initializing {
                    started,
                    deadline: started + budget,
                    waiting,
                    timeout: budget,
                });
            }
            Err(e) => {
                let detail = format!("Couldn't start bootstrap {}: {e}", spec.program.display());
                tracing::error!("{detail}");
                let err = errors::invalid_entrypoint(waiting.as_ref().map(|w| &w.id), &detail);
                self.init_failed(err, None, waiting, started);
            }
        }
    }

    /// Init failed: record why; the next invoke performs a suppressed init.
    fn init_failed(
        &mut self,
        error: FunctionError,
        payload: Option<Vec<u8>>,
        waiting: Option<InvokeRequest>,
        started: Instant,
    ) {
        let failure = InitFailure {
            error: error.clone(),
            metrics: InitMetrics {
                init_duration_ms: ms(started.elapsed()),
                num_active_extensions: 0,
            },
        };
        tracing::warn!(
            error_type = %failure.error.error_type,
            duration_ms = failure.metrics.init_duration_ms,
            "init failed: {}",
            failure.error.error_message
        );
        let response = ErrorInvokeResponse {
            function_error: error,
            payload,
        };
        if let Some(w) = waiting {
            self.out.start_line(&w.id, &self.cfg.function_version);
            let _ = w.reply.send(InvokeOutcome::Error(response.clone()));
            self.finish_lines(&w.id, started.elapsed(), None, w.tail);
        }
        self.phase = Phase::InitFailed(response);
    }

    async fn on_invoke(&mut self, req: InvokeRequest) {
        match std::mem::replace(&mut self.phase, Phase::Stopped) {
            Phase::Ready => {
                let init = self.pending_init_duration.take();
                self.dispatch(req, init);
            }
            Phase::InitFailed(_) => {
                tracing::info!(request_id = %req.id, "suppressed init for this invoke");
                self.start_init(Some(req));
            }
            other => {
                // Not reachable: invokes are only taken in the two phases above.
                self.phase = other;
                let _ = req.reply.send(InvokeOutcome::failure(FunctionError::new(
                    fatalerror::ErrorType::SandboxFailure,
                    "The sandbox was not ready",
                )));
            }
        }
    }

    fn dispatch(&mut self, req: InvokeRequest, init_duration: Option<Duration>) {
        let invoke = Invoke {
            id: req.id.clone(),
            trace_id: req.trace_id,
            client_context: req.client_context,
            cognito_identity: req.cognito_identity,
            invoked_function_arn: self.cfg.function_arn.clone(),
            content_type: req.content_type,
            payload_size: req.payload.len(),
            timeout_ms: self.cfg.timeout.as_millis() as u64,
        };
        self.out.start_line(&req.id, &self.cfg.function_version);
        if req.tail.is_some() {
            self.out.capture_start();
        }
        let started = Instant::now();
        match self.runtime.dispatch(invoke, req.payload, req.reply) {
            Ok(()) => {
                tracing::debug!(request_id = %req.id, "invoke dispatched");
                self.phase = Phase::Invoking(Running {
                    id: req.id,
                    started,
                    deadline: started + self.cfg.timeout,
                    tail: req.tail,
                    init_duration,
                    produced_bytes: 0,
                });
            }
            Err((e, reply)) => {
                tracing::error!(request_id = %req.id, error = %e, "dispatch refused");
                let _ = reply.send(InvokeOutcome::failure(FunctionError::new(
                    fatalerror::ErrorType::SandboxFailure,
                    e.to_string(),
                )));
                self.finish_lines(&req.id, started.elapsed(), init_duration, req.tail);
                self.phase = Phase::Ready;
            }
        }
    }

    /// END and REPORT, then the log tail (which must include them).
    fn finish_lines(
        &self,
        id: &RequestId,
        duration: Duration,
        init_duration: Option<Duration>,
        tail: Option<oneshot::Sender<Vec<u8>>>,
    ) {
        self.out.end_line(id);
        self.out.report_line(Report {
            id: id.clone(),
            duration,
            init_duration,
            memory_size_mb: self.cfg.memory_size_mb,
            runtime_pid: self.proc.map(|p| p.pid),
        });
        if let Some(tail) = tail {
            self.out.capture_take(tail);
        }
    }

    async fn on_runtime_event(&mut self, event: RuntimeEvent) {
        match event {
            RuntimeEvent::Ready { generation } if generation == self.generation => {
                match std::mem::replace(&mut self.phase, Phase::Stopped) {
                    Phase::Initializing(init) => {
                        let took = init.started.elapsed();
                        let success = InitSuccess {
                            metrics: InitMetrics {
                                init_duration_ms: ms(took),
                                num_active_extensions: 0,
                            },
                        };
                        tracing::info!(
                            duration_ms = success.metrics.init_duration_ms,
                            "init complete"
                        );
                        match init.waiting {
                            Some(req) => {
                                self.phase = Phase::Ready;
                                self.dispatch(req, Some(took));
                            }
                            None => {
                                self.pending_init_duration = Some(took);
                                self.phase = Phase::Ready;
                            }
                        }
                    }
                    Phase::Invoking(run) => {
                        let metrics = run.metrics();
                        let success = InvokeSuccess {
                            id: run.id.clone(),
                            function_error: None,
                            metrics,
                        };
                        tracing::debug!(request_id = %success.id, duration_ms = success.metrics.duration_ms,
                            produced_bytes = success.metrics.produced_bytes, "invoke complete");
                        self.finish_lines(
                            &run.id,
                            run.started.elapsed(),
                            run.init_duration,
                            run.tail,
                        );
                        self.phase = Phase::Ready;
                    }
                    other => self.phase = other,
                }
            }
            RuntimeEvent::InitError { generation, error } if generation == self.generation => {
                if let Phase::Initializing(init) =
                    std::mem::replace(&mut self.phase, Phase::Stopped)
                {
                    self.kill_runtime().await;
                    let mut fe = error.function_error;
                    if let Some(w) = &init.waiting {
                        if fe.error_message.is_empty() {
                            fe.error_message = format!("RequestId: {} Error: init failed", w.id);
                        }
                    }
                    self.reset_generation(ShutdownReason::Failure);
                    self.init_failed(fe, error.payload, init.waiting, init.started);
                }
            }
            RuntimeEvent::ResponseDone {
                generation,
                produced_bytes,
                mode,
                function_error,
            } if generation == self.generation => {
                if let Phase::Invoking(run) = &mut self.phase {
                    run.produced_bytes = produced_bytes;
                    if let Some(fe) = function_error {
                        tracing::debug!(request_id = %run.id, ?mode, error_type = %fe.error_type, "invoke ended with an error");
                    }
                }
            }
            stale => tracing::trace!(?stale, "ignoring an event of an earlier generation"),
        }
    }

    async fn on_exit(&mut self, exit: ChildExit) {
        let Some(p) = self.proc else { return };
        if p.pid != exit.pid {
            return;
        }
        self.proc = None;
        // The group may still hold descendants: they go with the runtime.
        kill_group(p.pid, Signal::SIGKILL);
        tracing::info!(pid = exit.pid, reason = %exit.reason, "runtime exited");
        match std::mem::replace(&mut self.phase, Phase::Stopped) {
            Phase::Initializing(init) => {
                let err = errors::runtime_exit(init.waiting.as_ref().map(|w| &w.id), exit.reason);
                self.reset_generation(ShutdownReason::Failure);
                self.init_failed(err, None, init.waiting, init.started);
            }
            Phase::Invoking(run) => {
                let err = errors::runtime_exit(Some(&run.id), exit.reason);
                self.fail_invoke(run, err, ShutdownReason::Failure).await;
            }
            Phase::Ready => {
                tracing::warn!("runtime exited while idle; starting a fresh sandbox");
                self.reset_generation(ShutdownReason::Failure);
                self.start_init(None);
            }
            other => self.phase = other,
        }
    }

    async fn on_deadline(&mut self) {
        match std::mem::replace(&mut self.phase, Phase::Stopped) {
            Phase::Initializing(init) => {
                let err = match &init.waiting {
                    Some(w) => errors::timed_out(&w.id, init.timeout),
                    None => errors::init_timed_out(init.timeout),
                };
                self.kill_runtime().await;
                self.reset_generation(ShutdownReason::Timeout);
                self.init_failed(err, None, init.waiting, init.started);
            }
            Phase::Invoking(run) => {
                let err = errors::timed_out(&run.id, self.cfg.timeout);
                tracing::warn!(request_id = %run.id, "invoke timed out");
                self.fail_invoke(run, err, ShutdownReason::Timeout).await;
            }
            other => self.phase = other,
        }
    }

    /// The invoke failed in a way that needs a reset: answer the invoker (if it
    /// still waits), report, reset, and start a fresh init at once.
    async fn fail_invoke(&mut self, run: Running, error: FunctionError, reason: ShutdownReason) {
        let failure = InvokeFailure {
            id: run.id.clone(),
            error: error.clone(),
            metrics: run.metrics(),
            reset: true,
        };
        tracing::warn!(request_id = %failure.id, error_type = %failure.error.error_type,
            "invoke failed: {}", failure.error.error_message);
        self.runtime.fail_current(error);
        self.finish_lines(&run.id, run.started.elapsed(), run.init_duration, run.tail);
        self.kill_runtime().await;
        let reset = self.reset_generation(reason);
        tracing::info!(
            reason = reset.reason.as_str(),
            duration_ms = reset.duration_ms,
            "sandbox reset"
        );
        self.start_init(None);
    }

    /// SIGKILL the runtime's group and wait (bounded) until it is reaped.
    async fn kill_runtime(&mut self) {
        let Some(p) = self.proc.take() else { return };
        kill_group(p.pid, Signal::SIGKILL);
        self.await_exit(p.pid, KILL_WAIT).await;
    }

    /// Wait until `pid` is reaped, or `limit` passes.
    async fn await_exit(&mut self, pid: i32, limit: Duration) -> Option<ExitReason> {
        let wait = async {
            while let Some(exit) = self.exits.recv().await {
                if exit.pid == pid {
                    return Some(exit.reason);
                }
            }
            None
        };
        match timeout(limit, wait).await {
            Ok(r) => r,
            Err(_) => {
                tracing::error!(pid, "process not reaped in time after SIGKILL");
                None
            }
        }
    }

    /// Forget the old generation in the Runtime API; a waiting invoker gets an error.
    fn reset_generation(&mut self, reason: ShutdownReason) -> ResetSuccess {
        let started = Instant::now();
        self.generation = self.runtime.reset(runtime_api::reset_error());
        self.pending_init_duration = None;
        ResetSuccess {
            reason,
            duration_ms: ms(started.elapsed()),
        }
    }

    async fn shutdown(&mut self, reason: ShutdownReason) -> ShutdownSuccess {
        let started = Instant::now();
        tracing::info!(reason = reason.as_str(), "shutdown starting");
        self.invokes.close();
        while let Ok(req) = self.invokes.try_recv() {
            drop(req); // the front answers 503 when its reply is dropped
        }
        if let Phase::Invoking(run) = std::mem::replace(&mut self.phase, Phase::Stopped) {
            self.runtime.fail_current(errors::shutting_down(&run.id));
            self.finish_lines(&run.id, run.started.elapsed(), run.init_duration, run.tail);
        }
        let mut killed = false;
        if let Some(p) = self.proc.take() {
            kill_group(p.pid, Signal::SIGTERM);
            if self
                .await_exit(p.pid, RUNTIME_SHUTDOWN_GRACE)
                .await
                .is_none()
            {
                killed = true;
                kill_group(p.pid, Signal::SIGKILL);
                self.await_exit(p.pid, KILL_WAIT).await;
            } else {
                kill_group(p.pid, Signal::SIGKILL);
            }
        }
        self.runtime.reset(runtime_api::reset_error());
        let done = ShutdownSuccess {
            duration_ms: ms(started.elapsed()),
            killed,
        };
        tracing::info!(duration_ms = done.duration_ms, killed, "shutdown complete");
        done
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400 * 365)
}

impl Running {
    fn metrics(&self) -> InvokeMetrics {
        InvokeMetrics {
            duration_ms: ms(self.started.elapsed()),
            response_duration_ms: 0.0,
            produced_bytes: self.produced_bytes,
            response_mode: Default::default(),
            init_duration_ms: self.init_duration.map(ms),
            max_memory_used_mb: 0,
        }
    }
}

/// Spawn the engine on the current runtime, inside a span.
pub fn spawn(engine: Engine) -> tokio::task::JoinHandle<()> {
    tokio::spawn(engine.run().instrument(tracing::info_span!("engine")))
}
