//! `/_/health` and `/_/ready`, as orchestrators call them.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use http::StatusCode;

use super::call::text;

/// The liveness probe's path.
pub(super) const HEALTH: &str = "/_/health";
/// The readiness probe's path.
pub(super) const READY: &str = "/_/ready";
use super::OpenFaas;
use crate::sandbox::Health;

/// 200 while the function is ready; 503 with why otherwise.
pub(super) async fn health(State(front): State<Arc<OpenFaas>>) -> Response {
    health_of(&front)
}

fn health_of(front: &OpenFaas) -> Response {
    if front.drain.is_draining() {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "draining: rapid is shutting down",
        );
    }
    let health = front.function.sandbox.health().borrow().clone();
    match health {
        Health::Ready => text(StatusCode::OK, "OK"),
        Health::Starting => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "starting: the function is not ready yet",
        ),
        Health::Unhealthy(why) => {
            text(StatusCode::SERVICE_UNAVAILABLE, format!("unhealthy: {why}"))
        }
    }
}

/// As `/_/health`, and 429 at `max_inflight`, 503 while the sandbox takes no
/// request (a one-shot sandbox serving its one); with a ready path, the
/// function's own answer there.
pub(super) async fn ready(State(front): State<Arc<OpenFaas>>) -> Response {
    if let Err(why) = front.function.sandbox.accepting() {
        return text(StatusCode::SERVICE_UNAVAILABLE, why.to_string());
    }
    if let Some(limit) = front.cfg.max_inflight {
        if front.in_flight.count() >= limit {
            return text(
                StatusCode::TOO_MANY_REQUESTS,
                format!("at max_inflight: {limit} requests in flight"),
            );
        }
    }
    let h = health_of(&front);
    if h.status() != StatusCode::OK {
        return h;
    }
    match front.function.sandbox.ready_probe() {
        Some(probe) => probe.await,
        None => h,
    }
}
