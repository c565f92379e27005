//! The process sandbox: a process backend behind the [`Sandbox`] contract.
//! It owns what every mode shares: admission (one-shot gate, shutting down, a
//! function that is down), the exec timeout, waiting for a function that is
//! still starting, the one-shot recycle or exit, Reset and Shutdown.

use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use fatalerror::ErrorType;
use http_body::{Body as HttpBody, Frame};
use interop::{FunctionError, ResetFailure, ResetResult, ResetSuccess, ShutdownSuccess};
use runtime_api::gauge::{Gauge, Held};
use tokio::sync::{mpsc, watch};

use super::backend::{Backend, Call};
use super::config::ProcessConfig;
use crate::sandbox::{
    Body, BoxError, BoxFuture, Budget, Command, CommandReply, ControlError, Health, Invocation,
    InvokeError, OneShot, Pending, Reply, ReplyBody, Response, Sandbox, SandboxState, Stats,
    Unavailable,
};

/// How long a one-shot recycle (or a Reset) may take.
const RECYCLE_LIMIT: Duration = Duration::from_secs(60);
/// How long a shutdown waits for calls in flight (the fronts have drained).
const SHUTDOWN_WAIT: Duration = Duration::from_secs(30);

/// A process sandbox (cheap to share behind an `Arc`).
pub struct ProcessSandbox(Arc<Inner>);

struct Inner {
    mode: &'static str,
    backend: Arc<dyn Backend>,
    exec_timeout: Option<Duration>,
    ready_path: Option<String>,
    one_shot: Option<OneShot>,
    scratch_dir: Option<PathBuf>,
    health: watch::Receiver<Health>,
    /// Set by this sandbox for backends without a health of their own.
    own_health: Option<watch::Sender<Health>>,
    /// One-shot: the one invocation was taken.
    gate: AtomicBool,
    /// Calls being served by the backend.
    calls: Arc<Gauge>,
    /// A shutdown began: invocations are refused.
    stopping: watch::Sender<bool>,
    stats: Arc<Stats>,
    finished: watch::Sender<bool>,
    /// One-shot: the invocation is over (its answer sent or abandoned).
    one_shot_done: mpsc::UnboundedSender<()>,
    invokes: AtomicU64,
    generation: AtomicU64,
    born: Instant,
}

impl ProcessSandbox {
    /// Start `backend` (the backend of `cfg.kind`, or an in-process handler)
    /// and serve it; counters go to `stats`.
    pub async fn start(
        cfg: &ProcessConfig,
        backend: Arc<dyn Backend>,
        stats: Arc<Stats>,
    ) -> Result<ProcessSandbox, String> {
        let started = Instant::now();
        backend.start().await?;
        let (health, own_health) = match backend.health() {
            Some(h) => (h, None),
            None => {
                let (tx, rx) = watch::channel(Health::Ready);
                (rx, Some(tx))
            }
        };
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        let inner = Arc::new(Inner {
            mode: cfg.kind.name(),
            backend,
            exec_timeout: cfg.exec_timeout,
            ready_path: cfg.kind.ready_path().map(str::to_owned),
            one_shot: cfg.one_shot,
            scratch_dir: cfg.scratch_dir.clone(),
            health,
            own_health,
            gate: AtomicBool::new(false),
            calls: Arc::default(),
            stopping: watch::Sender::new(false),
            stats,
            finished: watch::Sender::new(false),
            one_shot_done: done_tx,
            invokes: AtomicU64::new(0),
            generation: AtomicU64::new(0),
            born: started,
        });
        if inner.one_shot.is_some() {
            tokio::spawn(inner.clone().one_shot_lifecycle(done_rx));
        }
        {
            let mut health = inner.health.clone();
            tokio::spawn(async move {
                if settled(&mut health).await == Health::Ready {
                    tracing::info!(
                        ready_ms = started.elapsed().as_millis() as u64,
                        "function ready"
                    );
                }
            });
        }
        Ok(ProcessSandbox(inner))
    }
}

/// Wait until `health` is no longer starting.
async fn settled(health: &mut watch::Receiver<Health>) -> Health {
    match health.wait_for(|h| *h != Health::Starting).await {
        Ok(h) => h.clone(),
        Err(_) => Health::Unhealthy("stopped".into()),
    }
}

impl Inner {
    fn down(why: &str) -> InvokeError {
        InvokeError::Down(format!("the function is down: {why}"))
    }

    fn admit(self: &Arc<Self>, inv: Invocation) -> Result<Pending, InvokeError> {
        if *self.stopping.borrow() {
            return Err(InvokeError::Unavailable(Unavailable::ShuttingDown));
        }
        if let Health::Unhealthy(why) = &*self.health.borrow() {
            return Err(Self::down(why));
        }
        let probe = self.ready_path.as_deref() == Some(inv.request.uri().path());
        let one_shot = self.one_shot.is_some() && !probe;
        if one_shot && self.gate.swap(true, Ordering::SeqCst) {
            return Err(InvokeError::Unavailable(Unavailable::OneShotUsed));
        }
        let guard = CallGuard {
            inner: self.clone(),
            one_shot,
            _call: self.calls.enter().0,
        };
        Ok(Box::pin(self.clone().run(inv, guard)))
    }

    async fn run(self: Arc<Self>, inv: Invocation, guard: CallGuard) -> Reply {
        let start = tokio::time::Instant::now();
        let asked = match inv.budget {
            Budget::Function => None,
            Budget::Client(d) | Budget::Platform(d) => Some(d),
        };
        let budget = match (self.exec_timeout, asked) {
            (Some(e), Some(a)) => Some(e.min(a)),
            (e, a) => e.or(a),
        };
        let call = Call {
            id: inv.call_id.unwrap_or_else(|| inv.id.to_string()),
            // A budget too large to add is no deadline at all.
            deadline: budget.and_then(|b| start.checked_add(b)),
            budget,
        };
        // A function still starting (or restarting) gets until the deadline.
        let mut health = self.health.clone();
        let now = health.borrow().clone();
        let health = match now {
            Health::Starting => tokio::select! {
                h = settled(&mut health) => h,
                _ = call.expired() => Health::Starting,
            },
            h => h,
        };
        match health {
            Health::Ready => {}
            Health::Starting => {
                return Reply::new(Err(InvokeError::Unavailable(Unavailable::NotReady)))
            }
            Health::Unhealthy(why) => return Reply::new(Err(Self::down(&why))),
        }
        let result = self.backend.call(inv.request, call).await;
        self.invokes.fetch_add(1, Ordering::Relaxed);
        Reply::new(result.map(|r| {
            let (parts, body) = r.into_parts();
            Response {
                status: parts.status,
                headers: parts.headers,
                body: ReplyBody::Http(Body::new(Guarded {
                    inner: body,
                    _guard: guard,
                })),
            }
        }))
    }

    /// One-shot: after each invocation, replace the function (or end).
    async fn one_shot_lifecycle(self: Arc<Self>, mut done: mpsc::UnboundedReceiver<()>) {
        let mut stopping = self.stopping.subscribe();
        while done.recv().await.is_some() {
            if *stopping.borrow() {
                return;
            }
            if self.one_shot == Some(OneShot::Exit) {
                tracing::info!("one-shot: the request is served; exiting");
                self.finished.send_replace(true);
                return;
            }
            let t = Instant::now();
            // A stop arriving meanwhile wins; a fresh function that never
            // comes up ends the sandbox instead of hanging it.
            let replaced = tokio::select! {
                r = self.replace() => r,
                _ = stopping.wait_for(|s| *s) => return,
            };
            match replaced {
                Ok(()) => {
                    tracing::info!(
                        took_ms = t.elapsed().as_millis() as u64,
                        "one-shot: recycled"
                    );
                    self.gate.store(false, Ordering::SeqCst);
                }
                Err(why) => {
                    tracing::error!("one-shot: cannot recycle: {why}; shutting down");
                    self.finished.send_replace(true);
                    return;
                }
            }
        }
    }

    /// A fresh function (bounded), counted as a reset.
    async fn replace(&self) -> Result<(), String> {
        let recycled = tokio::time::timeout(
            RECYCLE_LIMIT,
            self.backend.recycle(self.scratch_dir.as_deref()),
        )
        .await;
        let r = recycled.unwrap_or_else(|_| {
            Err(format!(
                "the fresh function did not start within {}",
                humantime::format_duration(RECYCLE_LIMIT)
            ))
        });
        if r.is_ok() {
            self.stats.reset();
            self.generation.fetch_add(1, Ordering::Relaxed);
        }
        r
    }

    fn phase(&self) -> &'static str {
        if *self.stopping.borrow() {
            return "Stopped";
        }
        match &*self.health.borrow() {
            Health::Starting => "Initializing",
            Health::Unhealthy(_) => "Stopped",
            Health::Ready if self.calls.count() > 0 => "Invoking",
            Health::Ready => "Ready",
        }
    }

    async fn shutdown(&self) -> Result<CommandReply, ControlError> {
        if self.stopping.send_replace(true) {
            return Err(ControlError::refused(
                "Shutdown",
                "Stopped",
                "the sandbox is already shut down",
            ));
        }
        let t = Instant::now();
        if !self.calls.wait_idle(SHUTDOWN_WAIT).await {
            tracing::warn!("calls still running at shutdown; stopping the function anyway");
        }
        self.backend.stop().await;
        if let Some(h) = &self.own_health {
            h.send_replace(Health::Unhealthy("stopped".into()));
        }
        self.finished.send_replace(true);
        Ok(CommandReply::Shutdown(ShutdownSuccess {
            duration_ms: t.elapsed().as_secs_f64() * 1000.0,
            killed: false,
        }))
    }
}

/// Held while a call is served (until its answer's body ends or is
/// dropped): its place in the count of calls, and the one-shot turn.
struct CallGuard {
    inner: Arc<Inner>,
    one_shot: bool,
    _call: Held,
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        if self.one_shot {
            let _ = self.inner.one_shot_done.send(());
        }
    }
}

/// An answer's body that holds its call's [`CallGuard`].
struct Guarded {
    inner: Body,
    _guard: CallGuard,
}

impl HttpBody for Guarded {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        Pin::new(&mut self.inner)
            .poll_frame(cx)
            .map(|f| f.map(|r| r.map_err(Into::into)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl Sandbox for ProcessSandbox {
    fn submit(&self, inv: Invocation) -> BoxFuture<'_, Result<Pending, InvokeError>> {
        let r = self.0.admit(inv);
        Box::pin(async move { r })
    }

    fn accepting(&self) -> Result<(), Unavailable> {
        if *self.0.stopping.borrow() {
            return Err(Unavailable::ShuttingDown);
        }
        if self.0.one_shot.is_some() && self.0.gate.load(Ordering::SeqCst) {
            return Err(Unavailable::OneShotUsed);
        }
        Ok(())
    }

    fn control(&self, cmd: Command) -> BoxFuture<'_, Result<CommandReply, ControlError>> {
        Box::pin(async move {
            let inner = &self.0;
            match cmd {
                Command::Init(_) | Command::Restore => Err(ControlError::refused(
                    cmd.name(),
                    inner.phase(),
                    format!(
                        "it does not apply to watchdog mode {}: the function starts with rapid",
                        inner.mode
                    ),
                )),
                Command::Reset(reset) => {
                    let t = Instant::now();
                    let result = match inner.replace().await {
                        Ok(()) => ResetResult::ResetSuccess(ResetSuccess {
                            reason: reset.reason,
                            duration_ms: t.elapsed().as_secs_f64() * 1000.0,
                            extensions_reset_ms: 0.0,
                        }),
                        Err(why) => ResetResult::ResetFailure(ResetFailure {
                            reason: reset.reason,
                            error: FunctionError::new(ErrorType::SandboxFailure, why),
                        }),
                    };
                    Ok(CommandReply::Reset(result))
                }
                Command::Shutdown { .. } => inner.shutdown().await,
            }
        })
    }

    fn health(&self) -> watch::Receiver<Health> {
        self.0.health.clone()
    }

    fn state(&self) -> BoxFuture<'_, SandboxState> {
        let inner = &self.0;
        let health = inner.health.borrow().clone();
        let state = SandboxState {
            mode: inner.mode,
            phase: inner.phase(),
            health: health.name(),
            why: health.why().map(str::to_owned),
            generation: inner.generation.load(Ordering::Relaxed),
            runtime_pid: inner.backend.pid(),
            extensions: Vec::new(),
            in_flight: inner.calls.count(),
            queued: 0,
            invokes: inner.invokes.load(Ordering::Relaxed),
            age_ms: inner.born.elapsed().as_millis() as u64,
            last_init: None,
            last_invoke: None,
            ..SandboxState::default()
        };
        Box::pin(async move { state })
    }

    fn stats(&self) -> &Stats {
        &self.0.stats
    }

    fn ready_probe(&self) -> Option<BoxFuture<'_, http::Response<Body>>> {
        self.0.backend.ready_probe()
    }

    fn finished(&self) -> BoxFuture<'static, ()> {
        let mut rx = self.0.finished.subscribe();
        Box::pin(async move {
            let _ = rx.wait_for(|done| *done).await;
        })
    }
}
