//! Watchdog modes (SPEC §9): rapid hosts a function the way OpenFaaS's
//! of-watchdog does, behind one [`Backend`] interface.
//!
//! * `config.rs` — options, with of-watchdog's variable names.
//! * `backend.rs` — the interface and what backends share.
//! * `front.rs` — the OpenFaaS front: health, readiness, limits, headers, one-shot.
//! * `http_upstream.rs`, `fork.rs`, `static_files.rs`, `inproc.rs` — the backends.
//! * `logs.rs` — the function's output, line by line; `metrics.rs` — Prometheus.
//!
//! This module owns the watchdog's lifecycle: start the backend, serve, and on
//! SIGTERM drain (unready first, then finish in-flight requests, then stop the
//! function); with one-shot, exit or recycle after the one request.

pub mod backend;
pub mod config;
mod control;
pub mod fork;
pub mod front;
pub mod http_upstream;
pub mod inproc;
mod invoke_front;
pub mod lambda;
pub mod logs;
pub mod metrics;
pub mod static_files;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use backend::{Backend, Health};
pub use config::{Mode, WatchdogArgs, WatchdogConfig};
pub use inproc::Handler;

use runtime_api::server::{serve_with, Options};

use crate::bind;
use crate::config::OneShot;
use crate::exit_code;
use crate::output::Output;
use crate::supervisor::Reaper;
use front::Front;
use metrics::Metrics;

/// Run a process-backed or static watchdog mode until SIGTERM.
pub async fn run(cfg: WatchdogConfig) -> ExitCode {
    let cfg = Arc::new(cfg);
    let reaper = match Reaper::start() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("rapid: cannot install the SIGCHLD handler: {e}");
            return ExitCode::from(exit_code::SETUP);
        }
    };
    let out = match Output::start(crate::telemetry_hub::Hub::new()) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("rapid: cannot start the output thread: {e}");
            return ExitCode::from(exit_code::SETUP);
        }
    };
    let logs = logs::Logs::new(out, cfg.prefix_logs, cfg.log_buffer_size);
    let metrics = Arc::new(Metrics::default());
    let backend: Arc<dyn Backend> = match cfg.mode {
        Mode::Http => {
            let Some(upstream) = cfg.upstream.as_ref() else {
                eprintln!("rapid: mode http needs --upstream-url");
                return ExitCode::from(exit_code::USAGE);
            };
            Arc::new(http_upstream::HttpUpstream::new(
                &cfg.command,
                upstream,
                &cfg,
                reaper,
                logs,
                metrics.clone(),
            ))
        }
        Mode::Streaming | Mode::Serializing => Arc::new(fork::Fork::new(
            if cfg.mode == Mode::Streaming {
                fork::Style::Streaming
            } else {
                fork::Style::Serializing
            },
            &cfg.command,
            cfg.content_type.clone(),
            reaper,
            logs,
        )),
        Mode::Static => Arc::new(static_files::StaticFiles::new(
            cfg.static_path.clone().unwrap_or_default(),
        )),
        Mode::Lambda | Mode::Inproc => {
            eprintln!(
                "rapid: mode {} is not a watchdog backend here",
                cfg.mode.name()
            );
            return ExitCode::from(exit_code::USAGE);
        }
    };
    run_backend(cfg, backend, metrics).await
}

/// Serve `handler` in-process with the watchdog front: rapid used as a library.
///
/// Reads the watchdog options from the command line and the environment
/// (`port`, `exec_timeout`, `max_inflight`, `one_shot`, …, see `--help`),
/// serves until SIGTERM/SIGINT, and returns the exit code for `main`:
///
/// ```no_run
/// use bytes::Bytes;
/// use http::{Request, Response};
///
/// fn main() -> std::process::ExitCode {
///     rapid::watchdog::serve(|req: Request<Bytes>| async move {
///         Response::new(req.into_body())
///     })
/// }
/// ```
pub fn serve<H: Handler>(handler: H) -> ExitCode {
    use clap::Parser;
    config::apply_env_aliases();
    let args = InprocArgs::parse();
    // A plain level, not an EnvFilter: its regex engine would cost the small
    // in-process binary a good part of its memory.
    let level = args
        .log_level
        .parse::<tracing_subscriber::filter::LevelFilter>()
        .unwrap_or(tracing_subscriber::filter::LevelFilter::INFO);
    let _ = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(false)
        .try_init();
    let one_shot = OneShot::from_arg(args.one_shot.as_deref());
    let mut wd = args.watchdog;
    wd.mode = Mode::Inproc;
    let cfg = match WatchdogConfig::load(&wd, &[], one_shot, None) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{}: {e}", env!("CARGO_PKG_NAME"));
            return ExitCode::from(exit_code::USAGE);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::from(exit_code::SETUP);
        }
    };
    let backend = Arc::new(inproc::Inproc(Arc::new(handler)));
    runtime.block_on(run_backend(
        Arc::new(cfg),
        backend,
        Arc::new(Metrics::default()),
    ))
}

/// The options of an in-process function ([`serve`]).
#[derive(Debug, clap::Parser)]
#[command(
    version,
    about = "A function served in-process by rapid's watchdog front."
)]
struct InprocArgs {
    #[command(flatten)]
    watchdog: WatchdogArgs,
    /// Sealed execution: `exit` after one request, or `recycle`.
    #[arg(long, env = "RAPID_ONE_SHOT", num_args = 0..=1, default_missing_value = "exit",
          value_parser = ["recycle", "exit"], value_name = "MODE")]
    one_shot: Option<String>,
    /// Diagnostics level (stderr).
    #[arg(long, env = "LOG_LEVEL", default_value = "info", value_parser = ["error", "warn", "info", "debug", "trace"])]
    log_level: String,
}

async fn metrics_answer(metrics: Arc<Metrics>, req: Request<Incoming>) -> Response<backend::Body> {
    if req.uri().path() != "/metrics" {
        return backend::text(StatusCode::NOT_FOUND, "metrics are at /metrics");
    }
    let mut r = Response::new(backend::full(metrics.render()));
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    r
}

fn remove_lock(cfg: &WatchdogConfig) {
    if let Some(lock) = &cfg.lock_file {
        remove_lock_file(lock);
    }
}

fn remove_lock_file(lock: &std::path::Path) {
    match std::fs::remove_file(lock) {
        Ok(()) => tracing::debug!(lock = %lock.display(), "lock file removed"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(lock = %lock.display(), error = %e, "cannot remove the lock file"),
    }
}

/// Serve the front (and metrics) on the bound listeners; `true` on the
/// returned sender stops accepting.
fn serve_front(
    cfg: &Arc<WatchdogConfig>,
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    backend: Arc<dyn Backend>,
    metrics: Arc<Metrics>,
) -> Served {
    let (front, one_shot_done) = Front::new(cfg.clone(), backend, metrics.clone());
    let (stop_tx, stop_rx) = watch::channel(false);
    let connections = Arc::new(crate::gauge::Gauge::default());
    let f = front.clone();
    let front_opts = Options {
        read_timeout: cfg.read_timeout,
        stop: Some(stop_rx.clone()),
        connections: Some(connections.clone()),
        ..Options::default()
    };
    tokio::spawn(serve_with(listener, "watchdog", front_opts, move |req| {
        f.clone().handle(req)
    }));
    if let Some(l) = metrics_listener {
        let opts = Options {
            stop: Some(stop_rx),
            ..Options::default()
        };
        tokio::spawn(serve_with(l, "metrics", opts, move |req| {
            metrics_answer(metrics.clone(), req)
        }));
    }
    Served {
        front,
        one_shot_done,
        stop: stop_tx,
        connections,
    }
}

/// A front being served.
struct Served {
    front: Arc<Front>,
    /// Hears when the one-shot request is over.
    one_shot_done: tokio::sync::mpsc::UnboundedReceiver<()>,
    /// `true` stops accepting; open connections finish and close.
    stop: watch::Sender<bool>,
    /// The front's (and the Invoke API's) open connections.
    connections: Arc<crate::gauge::Gauge>,
}

/// The watchdog front over the Lambda engine (lambda mode with
/// `--watchdog-address`): bound and serving; the front is returned so the
/// caller can drain it at shutdown.
pub async fn front_over_lambda(
    cfg: WatchdogConfig,
    queue: tokio::sync::mpsc::Sender<crate::engine::InvokeRequest>,
    admissions: crate::engine::Admissions,
    max_queue: usize,
    health: watch::Receiver<Health>,
) -> Result<LambdaFront, ExitCode> {
    let cfg = Arc::new(cfg);
    let listener = bind(cfg.address, "watchdog front").await?;
    let metrics_listener = match cfg.metrics_address {
        Some(a) => Some(bind(a, "metrics endpoint").await?),
        None => None,
    };
    let backend = Arc::new(lambda::Lambda::new(queue, admissions, max_queue, health));
    let Served {
        front,
        stop,
        connections,
        ..
    } = serve_front(
        &cfg,
        listener,
        metrics_listener,
        backend,
        Arc::new(Metrics::default()),
    );
    tracing::info!(address = %cfg.address, metrics = ?cfg.metrics_address, "watchdog front listening");
    Ok(LambdaFront {
        front,
        stop,
        connections,
    })
}

/// The watchdog front over the Lambda engine, for rapid's shutdown.
pub struct LambdaFront {
    front: Arc<Front>,
    stop: watch::Sender<bool>,
    connections: Arc<crate::gauge::Gauge>,
}

impl LambdaFront {
    /// Refuse new requests (503) and stop accepting connections.
    pub fn refuse(&self) {
        self.front.close();
        let _ = self.stop.send(true);
    }

    /// Wait for in-flight requests, then for their answers to reach the
    /// clients (each at most `limit`).
    pub async fn flush(&self, limit: Duration) {
        if !self.front.wait_idle(limit).await {
            tracing::warn!("watchdog front: requests still in flight; stopping anyway");
        }
        if !self.connections.wait_idle(limit).await {
            tracing::warn!("watchdog front: connections still open; stopping anyway");
        }
    }
}

/// How long a one-shot recycle (or a control-API reset) may take.
pub(crate) const RECYCLE_LIMIT: Duration = Duration::from_secs(60);

/// The drain delay after the stop signal `name`: SIGINT is someone at a
/// terminal, with no orchestrator to wait for.
fn drain_delay_for(name: &str, cfg: &WatchdogConfig) -> Duration {
    if name == "SIGINT" {
        Duration::ZERO
    } else {
        cfg.drain_delay
    }
}

/// Serve `backend` behind the front until stopped; the shared lifecycle of
/// every watchdog mode.
async fn run_backend(
    cfg: Arc<WatchdogConfig>,
    backend: Arc<dyn Backend>,
    metrics: Arc<Metrics>,
) -> ExitCode {
    let mut signals = match crate::Signals::install(false) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let metrics_listener = match cfg.metrics_address {
        Some(a) => match bind(a, "metrics endpoint").await {
            Ok(l) => Some(l),
            Err(code) => return code,
        },
        None => None,
    };
    let invoke_listener = match cfg.invoke_address {
        Some(a) => match bind(a, "Invoke API").await {
            Ok(l) => Some(l),
            Err(code) => return code,
        },
        None => None,
    };
    let control_listener = match cfg.control_address {
        Some(a) => match bind(a, "control API").await {
            Ok(l) => Some(l),
            Err(code) => return code,
        },
        None => None,
    };
    // The front is bound last: once it accepts connections, so does everything else.
    let listener = match bind(cfg.address, "watchdog front").await {
        Ok(l) => l,
        Err(code) => return code,
    };
    let (shutdown_tx, mut shutdown_rx) = tokio::sync::mpsc::unbounded_channel();
    let started = tokio::time::Instant::now();
    if let Err(why) = backend.start().await {
        eprintln!("rapid: cannot start the {} backend: {why}", cfg.mode.name());
        return ExitCode::from(exit_code::SETUP);
    }
    let Served {
        front,
        mut one_shot_done,
        stop: stop_tx,
        connections,
    } = serve_front(
        &cfg,
        listener,
        metrics_listener,
        backend.clone(),
        metrics.clone(),
    );
    if let Some(l) = control_listener {
        let control = Arc::new(control::Control {
            cfg: cfg.clone(),
            front: front.clone(),
            backend: backend.clone(),
            metrics: metrics.clone(),
            shutdown: shutdown_tx,
        });
        // The control API outlives the drain (no stop): it answers the
        // shutdown it asked for.
        let opts = Options {
            read_timeout: cfg.read_timeout,
            ..Options::default()
        };
        tokio::spawn(serve_with(l, "control", opts, move |req| {
            control.clone().handle(req)
        }));
    }
    if let Some(l) = invoke_listener {
        let f = front.clone();
        let opts = Options {
            read_timeout: cfg.read_timeout,
            stop: Some(stop_tx.subscribe()),
            connections: Some(connections.clone()),
            ..Options::default()
        };
        tokio::spawn(serve_with(l, "invoke", opts, move |req| {
            invoke_front::handle(f.clone(), req)
        }));
    }
    tracing::info!(
        mode = cfg.mode.name(),
        address = %cfg.address,
        metrics = ?cfg.metrics_address,
        invoke_api = ?cfg.invoke_address,
        command = ?cfg.command,
        "rapid watchdog listening"
    );
    // The lock file exists while the function is ready (and rapid not draining).
    if let Some(lock) = cfg.lock_file.clone() {
        let (b, f) = (backend.clone(), front.clone());
        tokio::spawn(async move {
            loop {
                if b.settled().await != Health::Ready || f.is_draining() {
                    return;
                }
                match std::fs::write(&lock, b"") {
                    Ok(()) => tracing::debug!(lock = %lock.display(), "lock file written"),
                    Err(e) => {
                        tracing::warn!(lock = %lock.display(), error = %e, "cannot write the lock file")
                    }
                }
                loop {
                    let changed = b.health_changed();
                    if b.health() != Health::Ready {
                        break;
                    }
                    changed.await;
                }
                if f.is_draining() {
                    return;
                }
                remove_lock_file(&lock);
            }
        });
    }
    {
        let b = backend.clone();
        tokio::spawn(async move {
            if b.settled().await == Health::Ready {
                tracing::info!(
                    ready_ms = started.elapsed().as_millis() as u64,
                    "function ready"
                );
            }
        });
    }

    let stop_signal = async {
        let name = signals.next().await;
        tracing::info!(signal = name, "draining");
        name
    };
    tokio::pin!(stop_signal);
    let mut shutdown_replies = Vec::new();
    let drain_delay = loop {
        let recycle = tokio::select! {
            Some(reply) = shutdown_rx.recv() => {
                tracing::info!("shutdown asked for over the control API");
                shutdown_replies.push(reply);
                break Duration::ZERO;
            }
            // SIGINT is someone at a terminal: no orchestrator to wait for.
            name = &mut stop_signal => break drain_delay_for(name, &cfg),
            Some(()) = one_shot_done.recv() => match cfg.one_shot {
                Some(OneShot::Recycle) => true,
                _ => {
                    tracing::info!("one-shot: the request is served; exiting");
                    break Duration::ZERO;
                }
            },
        };
        if recycle {
            // A stop arriving meanwhile wins; a fresh function that never
            // comes up ends the sandbox instead of hanging it.
            let t = tokio::time::Instant::now();
            let replaced = tokio::select! {
                r = tokio::time::timeout(RECYCLE_LIMIT, backend.recycle(cfg.scratch_dir.as_deref())) => {
                    r.unwrap_or_else(|_| Err(format!("the fresh function did not start within {}", humantime::format_duration(RECYCLE_LIMIT))))
                }
                Some(reply) = shutdown_rx.recv() => {
                    shutdown_replies.push(reply);
                    break Duration::ZERO;
                }
                name = &mut stop_signal => break drain_delay_for(name, &cfg),
            };
            match replaced {
                Ok(()) => {
                    metrics.reset();
                    tracing::info!(
                        took_ms = t.elapsed().as_millis() as u64,
                        "one-shot: recycled"
                    );
                    front.reopen_gate();
                }
                Err(why) => {
                    tracing::error!("one-shot: cannot recycle: {why}; shutting down");
                    break Duration::ZERO;
                }
            }
        }
    };
    // Shutdowns asked for from now on are refused (409); those queued are answered at the end.
    shutdown_rx.close();
    while let Ok(reply) = shutdown_rx.try_recv() {
        shutdown_replies.push(reply);
    }
    // Unready first; requests are still served while the orchestrator notices.
    front.drain();
    remove_lock(&cfg);
    if !drain_delay.is_zero() {
        tracing::info!(
            delay_ms = drain_delay.as_millis() as u64,
            "unready; still serving"
        );
        tokio::time::sleep(drain_delay).await;
    }
    front.close();
    let _ = stop_tx.send(true);
    let limit = cfg.exec_timeout.unwrap_or(Duration::from_secs(30))
        + cfg.write_timeout.unwrap_or(Duration::from_secs(30));
    let t = tokio::time::Instant::now();
    if front.wait_idle(limit).await {
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
    backend.stop().await;
    remove_lock(&cfg);
    let answered_control = !shutdown_replies.is_empty();
    for reply in shutdown_replies {
        let _ = reply.send(interop::ShutdownSuccess {
            duration_ms: t.elapsed().as_secs_f64() * 1000.0,
            killed: false,
        });
    }
    if answered_control {
        // The control connection stays open (keep-alive): give its answer a moment.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Let the last answers reach their clients: every connection finishes
    // what it is writing and closes (bounded by the write timeout).
    let flush = cfg.write_timeout.unwrap_or(Duration::from_secs(30));
    if !connections.wait_idle(flush).await {
        tracing::warn!("connections still open after the write timeout; exiting anyway");
    }
    tracing::info!("stopped");
    ExitCode::from(exit_code::OK)
}
