//! rapid: a Lambda-style runtime and sandbox manager.
//!
//! `main` parses the command line ([`config`]) and calls [`run`], which binds
//! the APIs, starts the one reaper, the stdout writer and the lifecycle engine,
//! and waits for SIGTERM/SIGINT to shut down in order.

pub mod config;
pub mod control_api;
pub mod engine;
pub mod eventstream;
pub mod invoke_api;
pub mod output;
pub mod scratch;
pub mod supervisor;
pub mod telemetry_hub;
pub mod watchdog;

pub use runtime_api::gauge;

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use interop::ShutdownReason;
use runtime_api::{ApiConfig, Rendezvous, RuntimeApi, RuntimeHandle};
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, oneshot};

use crate::config::Config;
use crate::control_api::ControlApi;
use crate::engine::{Command, Engine};
use crate::invoke_api::InvokeApi;
use crate::output::Output;
use crate::supervisor::Reaper;

/// The signals rapid handles, each with its name.
pub(crate) struct Signals(Vec<(tokio::signal::unix::Signal, &'static str)>);

impl Signals {
    /// Handle SIGTERM, SIGINT, SIGHUP, SIGQUIT (and SIGUSR1/2 when `user`);
    /// a handler that cannot be installed is a set-up failure.
    pub(crate) fn install(user: bool) -> Result<Signals, ExitCode> {
        let mut kinds = vec![
            (SignalKind::terminate(), "SIGTERM"),
            (SignalKind::interrupt(), "SIGINT"),
            (SignalKind::hangup(), "SIGHUP"),
            (SignalKind::quit(), "SIGQUIT"),
        ];
        if user {
            kinds.push((SignalKind::user_defined1(), "SIGUSR1"));
            kinds.push((SignalKind::user_defined2(), "SIGUSR2"));
        }
        let mut signals = Vec::new();
        for (kind, name) in kinds {
            match signal(kind) {
                Ok(s) => signals.push((s, name)),
                Err(e) => {
                    eprintln!("rapid: cannot install the {name} handler: {e}");
                    return Err(ExitCode::from(exit_code::SETUP));
                }
            }
        }
        Ok(Signals(signals))
    }

    /// The name of the next signal to arrive.
    pub(crate) async fn next(&mut self) -> &'static str {
        std::future::poll_fn(|cx| {
            for (s, name) in self.0.iter_mut() {
                if s.poll_recv(cx).is_ready() {
                    return std::task::Poll::Ready(*name);
                }
            }
            std::task::Poll::Pending
        })
        .await
    }
}

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

pub(crate) async fn bind(addr: std::net::SocketAddr, what: &str) -> Result<TcpListener, ExitCode> {
    TcpListener::bind(addr).await.map_err(|e| {
        tracing::error!("cannot listen for the {what} on {addr}: {e}");
        eprintln!("rapid: cannot listen for the {what} on {addr}: {e}");
        ExitCode::from(exit_code::BIND)
    })
}

/// Run rapid until it is told to stop. Must run inside a current-thread tokio runtime.
pub async fn run(cfg: Config) -> ExitCode {
    become_subreaper();
    if let Some(wd) = cfg.watchdog {
        return watchdog::run(wd).await;
    }
    let cfg = Arc::new(cfg);
    // SIGTERM, SIGINT, SIGHUP and SIGQUIT all mean "stop in order" (as PID 1
    // nothing else would stop rapid cleanly); SIGUSR1/SIGUSR2 are caught and
    // logged so they never kill rapid by default.
    let mut signals = match Signals::install(true) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let reaper = match Reaper::start() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("rapid: cannot install the SIGCHLD handler: {e}");
            return ExitCode::from(exit_code::SETUP);
        }
    };
    let hub = telemetry_hub::Hub::new();
    let out = match Output::start(hub.clone()) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("rapid: cannot start the output thread: {e}");
            return ExitCode::from(exit_code::SETUP);
        }
    };

    let runtime_listener = match bind(cfg.runtime_api_address, "Runtime API").await {
        Ok(l) => l,
        Err(code) => return code,
    };

    let (rendezvous, events) = Rendezvous::new();
    let api = RuntimeApi::new(
        rendezvous.clone(),
        ApiConfig {
            stream_cap_bytes: cfg.stream_cap_bytes,
            stream_shaping: cfg.stream_shaping,
            function_name: cfg.function_name.clone(),
            function_version: cfg.function_version.clone(),
            handler: cfg.handler.clone(),
            account_id: cfg.account_id.clone(),
            init_caching: cfg.init_caching,
            credentials: cfg.credentials_token.as_ref().and_then(|token| {
                Some(runtime_api::Credentials {
                    authorization_token: token.clone(),
                    access_key_id: std::env::var("AWS_ACCESS_KEY_ID").ok()?,
                    secret_access_key: std::env::var("AWS_SECRET_ACCESS_KEY").ok()?,
                    session_token: std::env::var("AWS_SESSION_TOKEN").ok(),
                })
            }),
        },
    )
    .with_telemetry(hub.clone());
    tokio::spawn(runtime_api::server::serve_tagged(
        runtime_listener,
        "runtime",
        move |req| api.clone().handle(req),
    ));

    // The admission counter enforces --max-queue; the channel only needs room
    // for everything admitted (one running + the queue).
    let (queue_tx, queue_rx) = mpsc::channel(cfg.max_queue + 1);
    let admissions = engine::Admissions::default();
    let (cmd_tx, cmd_rx) = mpsc::channel(16);
    let shutting_down = Arc::new(AtomicBool::new(false));
    let queue_tx_control = queue_tx.clone();
    let front = InvokeApi::new(
        cfg.clone(),
        queue_tx,
        admissions.clone(),
        shutting_down.clone(),
    );
    let inflight = front.inflight();
    // The engine publishes the sandbox's health for the watchdog front.
    let (health_tx, health_rx) = tokio::sync::watch::channel(watchdog::Health::Starting);
    let watchdog_front = match cfg.watchdog_front.clone() {
        None => None,
        Some(wd) => match watchdog::front_over_lambda(
            wd,
            queue_tx_control.clone(),
            admissions.clone(),
            cfg.max_queue,
            health_rx,
        )
        .await
        {
            Ok(f) => Some(f),
            Err(code) => return code,
        },
    };
    if let Some(addr) = cfg.control_api_address {
        let listener = match bind(addr, "control API").await {
            Ok(l) => l,
            Err(code) => return code,
        };
        let control = ControlApi::new(cfg.clone(), queue_tx_control, admissions, cmd_tx.clone());
        tokio::spawn(runtime_api::server::serve(
            listener,
            "control",
            move |req| control.clone().handle(req),
        ));
        tracing::info!(control_api = %addr, "control API listening");
    }
    // The Invoke API is bound last: once it accepts connections, every other
    // API rapid serves does too (tests and platforms wait for it alone).
    let invoke_listener = match bind(cfg.invoke_address, "Invoke API").await {
        Ok(l) => l,
        Err(code) => return code,
    };
    tokio::spawn(runtime_api::server::serve(
        invoke_listener,
        "invoke",
        move |req| front.clone().handle(req),
    ));
    tracing::info!(
        invoke_api = %cfg.invoke_address,
        runtime_api = %cfg.runtime_api_address,
        function = %cfg.function_name,
        timeout_ms = cfg.timeout.as_millis() as u64,
        "rapid listening"
    );

    let mut engine = Engine::new(
        cfg.clone(),
        RuntimeHandle::new(rendezvous),
        engine::Inputs {
            events,
            invokes: queue_rx,
            commands: cmd_rx,
        },
        reaper,
        out,
        hub,
    );
    if watchdog_front.is_some() {
        engine.publish_health(health_tx);
    }
    let mut engine_task = engine::spawn(engine);

    let stop_signal = async {
        loop {
            let name = signals.next().await;
            if name.starts_with("SIGUSR") {
                tracing::info!(
                    signal = name,
                    "ignored (rapid stops on SIGTERM, SIGINT, SIGHUP, SIGQUIT)"
                );
                continue;
            }
            return name;
        }
    };
    let which = tokio::select! {
        name = stop_signal => name,
        _ = &mut engine_task => {
            // The engine stops on its own after `--one-shot=exit`'s invoke, or a
            // control-API shutdown with `?exit=true`.
            shutting_down.store(true, Ordering::Relaxed);
            // Let the answer of the one invoke reach its client.
            inflight.wait_idle(std::time::Duration::from_secs(10)).await;
            if let Some(front) = &watchdog_front {
                front.refuse();
                front.flush(std::time::Duration::from_secs(10)).await;
            }
            // Give the connection tasks (the answer to the invoke, or to the
            // control API's shutdown) a moment to flush what they wrote.
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            tracing::info!("the sandbox is shut down; exiting");
            return ExitCode::from(exit_code::OK);
        }
    };
    tracing::info!(signal = which, "shutting down");
    shutting_down.store(true, Ordering::Relaxed);
    if let Some(front) = &watchdog_front {
        front.refuse();
    }
    let (done_tx, done_rx) = oneshot::channel();
    let _ = cmd_tx
        .send(Command::Shutdown {
            reason: ShutdownReason::Spindown,
            exit: true,
            done: done_tx,
        })
        .await;
    let _ = done_rx.await;
    let _ = engine_task.await;
    if let Some(front) = &watchdog_front {
        front.flush(std::time::Duration::from_secs(5)).await;
    }
    ExitCode::from(exit_code::OK)
}
