//! The Lambda backend: one execution environment — a custom runtime and its
//! extensions behind the Runtime API — owned by one engine task.
//!
//! * `config.rs` — what it needs (identity, budgets, files, policies).
//! * `engine/` — the lifecycle: Init → Invoke* → Reset → … → Shutdown, Restore.
//! * `handle.rs` — the [`Sandbox`](crate::sandbox::Sandbox) every front speaks.

pub mod config;
mod engine;
mod handle;

use std::sync::Arc;

use runtime_api::{ApiConfig, Rendezvous, RuntimeApi, RuntimeHandle};
use tokio::sync::{mpsc, watch};

pub use config::{Bootstrap, InitCaching, LambdaConfig, Lifecycle};
pub use engine::Deps;
pub use handle::LambdaSandbox;

use crate::net::{bind, BindError};
use crate::sandbox::{Admissions, Health, Stats};

/// Start a Lambda sandbox: bind and serve its Runtime API, then start its
/// engine (which initialises at once, or waits for a platform's Init).
/// A port of 0 picks a free one (a pool's further sandboxes).
pub async fn start(mut cfg: LambdaConfig, deps: Deps) -> Result<LambdaSandbox, BindError> {
    let listener = bind(cfg.runtime_api_address, "Runtime API").await?;
    if let Ok(addr) = listener.local_addr() {
        cfg.runtime_api_address = addr;
    }
    let (rendezvous, events) = Rendezvous::with_concurrency(cfg.sandbox_concurrency);
    let api = RuntimeApi::new(
        rendezvous.clone(),
        ApiConfig {
            stream_cap_bytes: cfg.stream_cap_bytes,
            stream_shaping: cfg.stream_shaping,
            account_id: cfg.function.account.clone(),
            init_caching: cfg.init_caching.is_some(),
            credentials: cfg
                .init_caching
                .as_ref()
                .and_then(|c| c.credentials.clone()),
        },
    )
    .with_telemetry(deps.hub.clone());
    let on_malformed = rendezvous.clone();
    let opts = runtime_api::server::Options {
        tag: true,
        malformed: Some(runtime_api::server::MalformedHook(Arc::new(
            move |detail| on_malformed.malformed(detail),
        ))),
        ..runtime_api::server::Options::default()
    };
    let server = tokio::spawn(runtime_api::server::serve_with(
        listener,
        "runtime",
        opts,
        runtime_api::router(api),
    ));
    // The admission count enforces --max-queue; the channel only needs room
    // for everything admitted (one running, or N in LMI mode, + the queue).
    let lanes = cfg.sandbox_concurrency.unwrap_or(1);
    let (queue_tx, queue_rx) = mpsc::channel(cfg.max_queue + lanes);
    let (cmd_tx, cmd_rx) = mpsc::channel(16);
    let (health_tx, health_rx) = watch::channel(Health::Starting);
    let stats = Arc::new(Stats::default());
    let max_queue = cfg.max_queue;
    let engine = engine::Engine::new(
        Arc::new(cfg),
        RuntimeHandle::new(rendezvous),
        engine::Inputs {
            events,
            invokes: queue_rx,
            commands: cmd_rx,
        },
        deps,
        health_tx,
        stats.clone(),
    );
    let (finished_tx, finished_rx) = watch::channel(false);
    let task = engine::spawn(engine);
    tokio::spawn(async move {
        let _ = task.await;
        // The sandbox is gone: so is its Runtime API (a reclaimed sandbox of
        // a pool leaves no listener behind).
        server.abort();
        let _ = finished_tx.send(true);
    });
    Ok(LambdaSandbox::new(
        queue_tx,
        cmd_tx,
        Admissions::default(),
        handle::Capacity { max_queue, lanes },
        health_rx,
        stats,
        finished_rx,
    ))
}
