//! The control API over a watchdog backend (`--control-api-address` in a
//! watchdog mode): a platform drives the function with the same routes and
//! typed messages as in lambda mode where they apply.
//!
//! | call | answer |
//! |---|---|
//! | `GET /v1/state` | `{"mode", "health", "inFlight", "draining"}` |
//! | `POST /v1/invoke` | the body goes to the function as `POST /` through the front; its answer comes back as is |
//! | `POST /v1/reset` (`Reset`) | a fresh function (`recycle`): `{"ResetSuccess"}` / `{"ResetFailure"}` |
//! | `POST /v1/shutdown` | drain, stop the function, `ShutdownSuccess`; rapid then exits |
//! | `POST /v1/init`, `/v1/restore` | 409 `InvalidStateTransition`: the function starts with rapid |

use std::sync::Arc;

use fatalerror::ErrorType;
use http::{Request, Response, StatusCode, Uri};
use hyper::body::Incoming;
use interop::{FunctionError, ResetFailure, ResetResult, ResetSuccess, ShutdownSuccess};
use tokio::sync::{mpsc, oneshot};

use super::backend::{boxed, Backend, Body, Health};
use super::config::WatchdogConfig;
use super::front::Front;
use super::metrics::Metrics;

/// A shutdown asked for over the control API; answered once everything stopped.
pub type ShutdownRequest = oneshot::Sender<ShutdownSuccess>;

/// The control front of a watchdog mode.
pub struct Control {
    pub(super) cfg: Arc<WatchdogConfig>,
    pub(super) front: Arc<Front>,
    pub(super) backend: Arc<dyn Backend>,
    pub(super) metrics: Arc<Metrics>,
    pub(super) shutdown: mpsc::UnboundedSender<ShutdownRequest>,
}

fn typed<T: serde::Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    boxed(crate::control_api::typed(status, value))
}

fn error(status: StatusCode, error_type: ErrorType, message: String) -> Response<Body> {
    boxed(crate::invoke_api::json(status, error_type, message))
}

impl Control {
    /// Answer one request.
    pub async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Response<Body> {
        if let Err((status, error_type, message)) =
            crate::control_api::gate(self.cfg.control_token.as_deref(), &req)
        {
            return error(status, error_type, message);
        }
        let path = req.uri().path().to_owned();
        match path.as_str() {
            "/v1/state" => self.state(),
            "/v1/invoke" => {
                let (mut parts, body) = self.front.with_read_deadline(req).into_parts();
                parts.uri = Uri::from_static("/");
                self.front
                    .clone()
                    .invoke(Request::from_parts(parts, body))
                    .await
            }
            "/v1/reset" => self.reset(req).await,
            "/v1/shutdown" => {
                let (tx, rx) = oneshot::channel();
                if self.shutdown.send(tx).is_err() {
                    return error(
                        StatusCode::CONFLICT,
                        ErrorType::InvalidStateTransition,
                        "rapid is already shutting down".into(),
                    );
                }
                match rx.await {
                    Ok(done) => typed(StatusCode::OK, &done),
                    Err(_) => error(
                        StatusCode::CONFLICT,
                        ErrorType::InvalidStateTransition,
                        "rapid is already shutting down".into(),
                    ),
                }
            }
            _ => error(
                StatusCode::CONFLICT,
                ErrorType::InvalidStateTransition,
                format!(
                    "{path} does not apply to watchdog mode {}: the function starts with rapid",
                    self.cfg.mode.name()
                ),
            ),
        }
    }

    fn state(&self) -> Response<Body> {
        let (health, why) = match self.backend.health() {
            Health::Ready => ("Ready", None),
            Health::Starting => ("Starting", None),
            Health::Unhealthy(why) => ("Unhealthy", Some(why)),
        };
        typed(
            StatusCode::OK,
            &serde_json::json!({
                "mode": self.cfg.mode.name(),
                "health": health,
                "why": why,
                "inFlight": self.metrics.in_flight(),
                "draining": self.front.is_draining(),
            }),
        )
    }

    async fn reset(&self, req: Request<Incoming>) -> Response<Body> {
        let reset: interop::Reset = match crate::control_api::read_json(req.into_body()).await {
            Ok(r) => r,
            Err((status, error_type, message)) => return error(status, error_type, message),
        };
        let t = tokio::time::Instant::now();
        let result = match tokio::time::timeout(
            super::RECYCLE_LIMIT,
            self.backend.recycle(self.cfg.scratch_dir.as_deref()),
        )
        .await
        .unwrap_or_else(|_| Err("the fresh function did not start in time".into()))
        {
            Ok(()) => {
                self.metrics.reset();
                ResetResult::ResetSuccess(ResetSuccess {
                    reason: reset.reason,
                    duration_ms: t.elapsed().as_secs_f64() * 1000.0,
                    extensions_reset_ms: 0.0,
                })
            }
            Err(why) => ResetResult::ResetFailure(ResetFailure {
                reason: reset.reason,
                error: FunctionError::new(ErrorType::SandboxFailure, why),
            }),
        };
        typed(StatusCode::OK, &result)
    }
}
