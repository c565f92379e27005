//! The composition root: signals, the reaper, stdout, the sandbox, the
//! fronts, and the one drain every mode shares.
//!
//! Start-up binds every front first (a bind failure starts nothing), then
//! starts the sandbox, then serves. Shutdown — a stop signal, or the sandbox
//! ending on its own (one-shot exit, a shutdown that asked rapid to exit) —
//! goes: fronts unready (for the OpenFaaS front's drain delay after
//! SIGTERM), fronts closed (503; no new connections; open ones finish their
//! answer and close), requests in flight finish (bounded), the sandbox shuts
//! down, the last answers reach their clients (bounded), exit.

mod inproc;
mod signals;
mod watch;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use interop::ShutdownReason;
use runtime_api::gauge::Gauge;
use runtime_api::server::{default_max_connections, serve_with, Options, Slots};
use tokio::net::TcpListener;

pub use inproc::serve;
pub use signals::{Signal, Signals};

use crate::config::{BackendConfig, Config, DrainPolicy, Fronts, LambdaFunction};
use crate::fronts::metrics::Metrics;
use crate::fronts::openfaas::OpenFaas;
use crate::fronts::{self, Drain};
use crate::lambda::LambdaConfig;
use crate::net::{bind, BindError};
use crate::output::Output;
use crate::pool::Pool;
use crate::process::ProcessSandbox;
use crate::sandbox::{Command, FunctionTable, Member, Resolved, Sandbox, Scaling, Stats};
use crate::supervisor::Reaper;

/// Exit codes of the `rapid` binary.
pub mod exit_code {
    /// Clean shutdown after SIGTERM/SIGINT.
    pub const OK: u8 = 0;
    /// Invalid command line or environment (clap's usage errors use this too).
    pub const USAGE: u8 = 2;
    /// An address could not be bound.
    pub const BIND: u8 = 3;
    /// rapid could not set itself up (signals, threads, async runtime).
    pub const SETUP: u8 = 4;
    /// Init mode could not prepare the machine (and could not power it off).
    pub const INIT: u8 = 5;
}

fn setup_failed(what: impl std::fmt::Display) -> ExitCode {
    tracing::error!("{what}");
    eprintln!("rapid: {what}");
    ExitCode::from(exit_code::SETUP)
}

fn bind_failed(e: &BindError) -> ExitCode {
    tracing::error!("{e}");
    eprintln!("rapid: {e}");
    ExitCode::from(exit_code::BIND)
}

/// Become the reaper of orphaned descendants when rapid is not PID 1.
fn become_subreaper() {
    if std::process::id() == 1 {
        return;
    }
    // SAFETY: prctl with PR_SET_CHILD_SUBREAPER only changes a flag of this process.
    let rc = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    if rc != 0 {
        tracing::warn!(error = %std::io::Error::last_os_error(), "could not become a child subreaper");
    }
}

/// The fronts' listeners, bound before anything starts.
struct Listeners {
    metrics: Option<TcpListener>,
    control: Option<TcpListener>,
    openfaas: Option<TcpListener>,
    invoke: Option<TcpListener>,
    function_url: Option<TcpListener>,
}

async fn bind_opt(
    addr: Option<SocketAddr>,
    what: &'static str,
) -> Result<Option<TcpListener>, BindError> {
    match addr {
        Some(a) => bind(a, what).await.map(Some),
        None => Ok(None),
    }
}

impl Listeners {
    /// The primary front (the one callers wait for: the OpenFaaS front in a
    /// watchdog mode, the Invoke API otherwise) is bound last, so that once
    /// it accepts connections every other front does too.
    async fn bind(fronts: &Fronts, openfaas_primary: bool) -> Result<Listeners, BindError> {
        let metrics = bind_opt(fronts.metrics, "metrics endpoint").await?;
        let control = bind_opt(fronts.control.as_ref().map(|c| c.address), "control API").await?;
        let function_url = bind_opt(
            fronts.function_url.as_ref().map(|f| f.address),
            "function URL front",
        )
        .await?;
        let openfaas_addr = fronts.openfaas.as_ref().map(|f| f.address);
        let (openfaas, invoke) = if openfaas_primary {
            let invoke = bind_opt(fronts.invoke, "Invoke API").await?;
            (bind_opt(openfaas_addr, "watchdog front").await?, invoke)
        } else {
            let openfaas = bind_opt(openfaas_addr, "watchdog front").await?;
            (openfaas, bind_opt(fronts.invoke, "Invoke API").await?)
        };
        Ok(Listeners {
            metrics,
            control,
            openfaas,
            invoke,
            function_url,
        })
    }
}

/// Why a sandbox could not start.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StartError {
    /// Its listener could not be bound (exit code 3).
    #[error("{0}")]
    Bind(BindError),
    /// Anything else (exit code 4).
    #[error("{0}")]
    Setup(String),
}

/// What a sandbox is started with.
pub(crate) struct Plumbing {
    pub reaper: Arc<Reaper>,
    pub out: Output,
}

/// Run rapid until it is told to stop. Must run inside a current-thread
/// tokio runtime (the reaper registers children right after fork).
pub async fn run(cfg: Config) -> ExitCode {
    let Config {
        function,
        backend,
        fronts,
        drain,
        ..
    } = cfg;
    let openfaas_primary = matches!(backend, BackendConfig::Process(_));
    let start = move |p: Plumbing| async move {
        match backend {
            BackendConfig::Lambda(functions) => start_functions(functions, p).await,
            BackendConfig::Process(cfg) => {
                let stats = Arc::new(Stats::default());
                let backend = crate::process::backend_for(
                    &cfg.kind,
                    p.reaper,
                    p.out,
                    cfg.logs,
                    stats.clone(),
                )
                .ok_or_else(|| {
                    StartError::Setup("mode inproc needs a handler (rapid::watchdog::serve)".into())
                })?;
                let sandbox: Arc<dyn Sandbox> =
                    Arc::new(start_process(&cfg, backend, stats).await?);
                Ok(FunctionTable::single(function, sandbox))
            }
        }
    };
    run_sandbox(fronts, drain, openfaas_primary, start).await
}

/// Every function's pool, in the table's order. With more than one sandbox
/// in all, each sandbox's lines on stdout start with `[function/sandbox] `.
async fn start_functions(
    functions: Vec<LambdaFunction>,
    p: Plumbing,
) -> Result<FunctionTable, StartError> {
    let labelled = functions.len() > 1 || functions.iter().any(|f| f.scaling.concurrency > 1);
    let mut entries = Vec::new();
    for mut f in functions {
        f.config.shares_network = labelled;
        let id = f.config.function.clone();
        let pool = Arc::new(start_pool(f.config, f.scaling, labelled, &p).await?);
        if !f.watch.is_empty() {
            watch::follow(id.name.clone(), f.watch, Arc::downgrade(&pool))
                .map_err(|e| StartError::Setup(e.to_string()))?;
        }
        entries.push(Resolved { id, sandbox: pool });
    }
    Ok(FunctionTable::new(entries))
}

/// A function's pool of Lambda sandboxes. Sandbox 0 keeps the configured
/// Runtime API address (and is started here, so that a bind failure stops
/// rapid with its exit code); the others listen on free ports of the same
/// loopback. With several sandboxes each gets `<scratch-dir>/<n>/`. Each has
/// its own telemetry subscribers and log tail.
async fn start_pool(
    cfg: LambdaConfig,
    scaling: Scaling,
    labelled: bool,
    p: &Plumbing,
) -> Result<Pool, StartError> {
    let cfg = Arc::new(cfg);
    let pooled = scaling.concurrency > 1;
    let (reaper, out) = (p.reaper.clone(), p.out.clone());
    let make = move |index: usize| {
        let mut c = LambdaConfig::clone(&cfg);
        // The pool admits one invocation at a time to a sandbox.
        c.max_queue = 0;
        if index > 0 {
            c.runtime_api_address = SocketAddr::new(c.runtime_api_address.ip(), 0);
        }
        if pooled {
            c.scratch_dir = c.scratch_dir.map(|d| d.join(index.to_string()));
        }
        let hub = crate::telemetry_hub::Hub::new();
        let label = labelled.then(|| format!("{}/{index}", c.function.name));
        let deps = crate::lambda::Deps {
            procs: reaper.clone(),
            out: out.for_sandbox(label.as_deref(), hub.clone()),
            hub,
        };
        async move {
            if let Some(d) = &c.scratch_dir {
                std::fs::create_dir_all(d)
                    .map_err(|e| StartError::Setup(format!("scratch dir {}: {e}", d.display())))?;
            }
            let sandbox = crate::lambda::start(c, deps)
                .await
                .map_err(StartError::Bind)?;
            Ok::<_, StartError>(Arc::new(sandbox) as Arc<dyn Member>)
        }
    };
    let first = match scaling.min_warm {
        0 => None,
        _ => Some(make(0).await?),
    };
    let factory: crate::pool::Factory = Arc::new(move |index: usize| {
        let started = make(index);
        Box::pin(async move { started.await.map_err(|e| e.to_string()) })
    });
    Ok(Pool::start(scaling, interop::MAX_PAYLOAD, factory, first))
}

/// Start a process sandbox over `backend`.
pub(crate) async fn start_process(
    cfg: &crate::process::ProcessConfig,
    backend: Arc<dyn crate::process::Backend>,
    stats: Arc<Stats>,
) -> Result<ProcessSandbox, StartError> {
    ProcessSandbox::start(cfg, backend, stats)
        .await
        .map_err(|why| {
            StartError::Setup(format!(
                "cannot start the {} backend: {why}",
                cfg.kind.name()
            ))
        })
}

/// Set up, bind the fronts, start the functions' sandboxes with `start`,
/// serve until told to stop, drain. The primary front (bound last) is the
/// OpenFaaS front when `openfaas_primary`, the Invoke API otherwise.
pub(crate) async fn run_sandbox<F, Fut>(
    fronts: Fronts,
    policy: DrainPolicy,
    openfaas_primary: bool,
    start: F,
) -> ExitCode
where
    F: FnOnce(Plumbing) -> Fut,
    Fut: std::future::Future<Output = Result<FunctionTable, StartError>>,
{
    crate::supervisor::seal_inherited_fds();
    become_subreaper();
    let mut signals = match Signals::install() {
        Ok(s) => s,
        Err((s, e)) => {
            return setup_failed(format!("cannot install the {} handler: {e}", s.name()))
        }
    };
    let reaper = match Reaper::start() {
        Ok(r) => r,
        Err(e) => return setup_failed(format!("cannot install the SIGCHLD handler: {e}")),
    };
    let hub = crate::telemetry_hub::Hub::new();
    let out = match Output::start(hub) {
        Ok(o) => o,
        Err(e) => return setup_failed(format!("cannot start the output thread: {e}")),
    };
    // Kept to flush the runtime's last output before rapid exits.
    let output = out.clone();
    let listeners = match Listeners::bind(&fronts, openfaas_primary).await {
        Ok(l) => l,
        Err(e) => return bind_failed(&e),
    };
    let started = tokio::time::Instant::now();
    let table = match start(Plumbing { reaper, out }).await {
        Ok(t) => t,
        Err(StartError::Bind(e)) => return bind_failed(&e),
        Err(StartError::Setup(why)) => return setup_failed(why),
    };
    let served = serve_fronts(&fronts, table.clone(), listeners, !openfaas_primary);
    let names: Vec<&str> = table.iter().map(|f| f.id.name.as_str()).collect();
    tracing::info!(
        invoke_api = ?fronts.invoke,
        watchdog_front = ?fronts.openfaas.as_ref().map(|f| f.address),
        control_api = ?fronts.control.as_ref().map(|c| c.address),
        metrics = ?fronts.metrics,
        function_url = ?fronts.function_url.as_ref().map(|f| f.address),
        functions = %names.join(","),
        took_ms = started.elapsed().as_millis() as u64,
        "rapid listening"
    );
    let cause = tokio::select! {
        s = signals.next_stop() => Some(s),
        () = any_finished(&table) => None,
    };
    match cause {
        Some(s) => tracing::info!(signal = s.name(), "shutting down"),
        None => tracing::info!("the sandbox is done; shutting down"),
    }
    let delay = match (cause, &fronts.openfaas) {
        // SIGINT is someone at a terminal: no orchestrator to wait for.
        (Some(s), Some(f)) if s != Signal::Int => f.config.drain_delay,
        _ => Duration::ZERO,
    };
    drain(&served, &table, delay, policy).await;
    // Every byte the runtime and extensions wrote, on stdout before exiting.
    if !output.finish(policy.flush).await {
        tracing::warn!("output still arriving at the end of the drain; exiting anyway");
    }
    tracing::info!("stopped");
    ExitCode::from(exit_code::OK)
}

/// The fronts being served.
struct Served {
    drain: Drain,
    openfaas: Option<Arc<OpenFaas>>,
    /// Open connections of every front.
    connections: Arc<Gauge>,
}

fn serve_fronts(fronts: &Fronts, table: FunctionTable, l: Listeners, pools: bool) -> Served {
    let drain = Drain::default();
    let connections = Arc::new(Gauge::default());
    // One bound over every front callers outside the sandbox reach.
    let bound = fronts
        .limits
        .max_connections
        .unwrap_or_else(default_max_connections);
    let slots = Slots::new(bound);
    tracing::debug!(max_connections = bound, limits = ?fronts.limits.timeouts, "front limits");
    let opts = |read_timeout: Option<Duration>, half_close: bool| Options {
        read_timeout,
        // The Lambda-style fronts: an invoke runs to its end anyway, so a
        // client that half-closes gets its answer. The OpenFaaS front keeps
        // of-watchdog's contract: a client that leaves takes its forked
        // process with it (an end of file cannot tell the two apart).
        half_close,
        stop: Some(drain.stop_signal()),
        connections: Some(connections.clone()),
        limits: fronts.limits.timeouts,
        slots: Some(slots.clone()),
        ..Options::default()
    };
    let in_flight = Arc::new(Gauge::default());
    let metrics = Metrics::new(
        table.clone(),
        in_flight.clone(),
        pools,
        fronts.openfaas.is_some(),
    );
    if let Some(listener) = l.metrics {
        tokio::spawn(serve_with(
            listener,
            "metrics",
            opts(None, true),
            fronts::metrics::router(metrics.clone()),
        ));
    }
    if let (Some(listener), Some(c)) = (l.control, &fronts.control) {
        let router = fronts::control::router(table.clone(), c.token.clone(), drain.clone());
        tokio::spawn(serve_with(listener, "control", opts(None, true), router));
    }
    let mut openfaas = None;
    if let (Some(listener), Some(f), Some(function)) =
        (l.openfaas, &fronts.openfaas, table.default_function())
    {
        let front = OpenFaas::new(
            f.config.clone(),
            function.clone(),
            drain.clone(),
            metrics,
            in_flight,
        );
        if let Some(lock) = f.config.lock_file.clone() {
            tokio::spawn(fronts::openfaas::keep_lock_file(
                lock,
                function.clone(),
                drain.clone(),
            ));
        }
        let router = fronts::openfaas::router(front.clone());
        tokio::spawn(serve_with(
            listener,
            "watchdog",
            opts(f.config.read_timeout, false),
            router,
        ));
        openfaas = Some(front);
    }
    if let (Some(listener), Some(f)) = (l.function_url, &fronts.function_url) {
        let router = fronts::function_url::router(table.clone(), f.mode, drain.clone());
        let opts = Options {
            peer: true,
            ..opts(None, true)
        };
        tokio::spawn(serve_with(listener, "function-url", opts, router));
    }
    if let Some(listener) = l.invoke {
        let router = fronts::invoke::router(table, drain.clone());
        tokio::spawn(serve_with(listener, "invoke", opts(None, true), router));
    }
    Served {
        drain,
        openfaas,
        connections,
    }
}

/// When one function's sandbox ends on its own (one-shot exit, a shutdown
/// that asked rapid to exit): rapid stops.
async fn any_finished(table: &FunctionTable) {
    let ends: Vec<_> = table.iter().map(|f| f.sandbox.finished()).collect();
    if ends.is_empty() {
        return std::future::pending().await;
    }
    futures_util::future::select_all(ends).await;
}

/// Until no invocation runs or waits in any function (the drain timeout of
/// lambda mode), at most `limit`.
async fn wait_sandbox_idle(table: &FunctionTable, limit: Duration) {
    let t = tokio::time::Instant::now();
    let busy = || {
        table
            .iter()
            .map(|f| {
                let l = f.sandbox.load();
                l.busy + l.queued
            })
            .sum::<u64>()
    };
    if busy() == 0 {
        return;
    }
    tracing::info!(
        in_flight = busy(),
        limit_ms = limit.as_millis() as u64,
        "draining: invokes running or queued finish first"
    );
    while busy() > 0 && t.elapsed() < limit {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let left = busy();
    if left == 0 {
        tracing::info!(waited_ms = t.elapsed().as_millis() as u64, "drained");
    } else {
        tracing::warn!(
            left,
            waited_ms = t.elapsed().as_millis() as u64,
            "the drain timeout passed with invokes still running; shutting down"
        );
    }
}

/// The one drain of every mode.
async fn drain(served: &Served, table: &FunctionTable, delay: Duration, policy: DrainPolicy) {
    served.drain.begin();
    if !delay.is_zero() {
        tracing::info!(
            delay_ms = delay.as_millis() as u64,
            "unready; still serving"
        );
        tokio::time::sleep(delay).await;
    }
    served.drain.close();
    if let (Some(front), false) = (&served.openfaas, policy.in_flight.is_zero()) {
        let t = tokio::time::Instant::now();
        if front.wait_idle(policy.in_flight).await {
            tracing::info!(
                waited_ms = t.elapsed().as_millis() as u64,
                "in-flight requests finished"
            );
        } else {
            tracing::warn!(
                waited_ms = t.elapsed().as_millis() as u64,
                "in-flight requests still running; stopping anyway"
            );
        }
    }
    if !policy.in_flight.is_zero() {
        wait_sandbox_idle(table, policy.in_flight).await;
    }
    // Every function's sandboxes at once.
    let stops = table.iter().map(|f| async move {
        let stop = Command::Shutdown {
            reason: ShutdownReason::Spindown,
            exit: true,
        };
        if let Err(e) = f.sandbox.control(stop).await {
            // Already shut down (a control-API shutdown, one-shot exit).
            tracing::debug!(function = %f.id.name, "shutdown: {e}");
        }
    });
    futures_util::future::join_all(stops).await;
    // Every connection finishes what it is writing and closes.
    if !served.connections.wait_idle(policy.flush).await {
        tracing::warn!("connections still open at the end of the drain; exiting anyway");
    }
}
