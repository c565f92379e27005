//! The OpenFaaS watchdog front (of-watchdog conventions): any path invokes
//! the function; `/_/health` and `/_/ready`; `max_inflight` (429);
//! `X-Call-Id`, `X-Duration-Seconds`, `X-Timeout`; read and write timeouts;
//! the lock file; metrics for every request.
//!
//! * `call.rs` — a request to the function, and how its failures read.
//! * `probes.rs` — `/_/health`, `/_/ready`.
//! * `lock.rs` — `$TMPDIR/.lock` while the function is ready.

mod call;
mod lock;
mod probes;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::routing::any;
use axum::Router;
use runtime_api::gauge::Gauge;
use runtime_api::shortcut::{Picked, Shortcut};

use super::metrics::Metrics;
use super::Drain;
use crate::sandbox::Resolved;

pub use lock::keep_lock_file;

/// The front's settings.
#[derive(Debug, Clone)]
pub struct OpenFaasConfig {
    /// Deadline for reading a request's headers and body (None = none).
    pub read_timeout: Option<Duration>,
    /// Deadline for writing a response body once it started (None = none).
    pub write_timeout: Option<Duration>,
    /// Requests served at once; past it 429 (None = no limit).
    pub max_inflight: Option<usize>,
    /// Written while the function is ready (None = suppressed).
    pub lock_file: Option<PathBuf>,
    /// On SIGTERM: how long it is unready while still serving.
    pub drain_delay: Duration,
}

/// The front's state.
pub struct OpenFaas {
    cfg: OpenFaasConfig,
    function: Resolved,
    drain: Drain,
    metrics: Arc<Metrics>,
    /// Requests being served (until their answer's body ends).
    in_flight: Arc<Gauge>,
}

impl OpenFaas {
    /// A front over `function`; `in_flight` counts its requests (the metrics
    /// read it too).
    pub fn new(
        cfg: OpenFaasConfig,
        function: Resolved,
        drain: Drain,
        metrics: Arc<Metrics>,
        in_flight: Arc<Gauge>,
    ) -> Arc<OpenFaas> {
        Arc::new(OpenFaas {
            cfg,
            function,
            drain,
            metrics,
            in_flight,
        })
    }

    /// Wait until no request is in flight, at most `limit`; whether it got there.
    pub async fn wait_idle(&self, limit: Duration) -> bool {
        self.in_flight.wait_idle(limit).await
    }
}

/// The front over `front`: the probes through a router, every other request
/// straight to the function's handler (a router's catch-all fallback would
/// cost each call a path match, a URL-parameter map and a boxed route: a
/// tenth of what the front itself spends on a request).
pub fn router(front: Arc<OpenFaas>) -> Shortcut<Arc<OpenFaas>> {
    let probes = Router::new()
        .route(probes::HEALTH, any(probes::health))
        .route(probes::READY, any(probes::ready))
        .with_state(front.clone());
    Shortcut::new(front, hot, probes)
}

fn hot(front: &Arc<OpenFaas>, req: Request) -> Picked {
    if matches!(req.uri().path(), probes::HEALTH | probes::READY) {
        return Picked::Router(req);
    }
    Picked::Hot(Box::pin(call::call(State(front.clone()), req)))
}
