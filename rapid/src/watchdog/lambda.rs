//! The `lambda` backend: a Lambda custom runtime behind the Runtime API, driven
//! through the lifecycle engine's invoke queue — the same queue the Invoke
//! API feeds — so the watchdog front (health, readiness, max_inflight, call
//! ids, metrics) can sit in front of a Lambda function too.
//!
//! Any request's body is the event; the runtime's response is the answer.
//! A function error is a 500 (a timeout a 504) with Lambda's JSON error body
//! and `X-Amz-Function-Error: Unhandled`.

use fatalerror::ErrorType;
use http::{HeaderValue, Request, Response, StatusCode};
use interop::{RequestId, MAX_PAYLOAD};
use runtime_api::InvokeOutcome;
use tokio::sync::{mpsc, oneshot};

use super::backend::{boxed, read_body, Answer, Backend, Body, BoxFuture, Call, Health, Outcome};
use crate::engine::{Admissions, InvokeRequest};

/// Invokes through the engine.
pub struct Lambda {
    queue: mpsc::Sender<InvokeRequest>,
    admissions: Admissions,
    max_queue: usize,
    /// The engine's view of the sandbox.
    health: tokio::sync::watch::Receiver<Health>,
}

impl Lambda {
    /// Queue invokes on `queue`, within the same bound as the Invoke API;
    /// `health` is published by the engine.
    pub fn new(
        queue: mpsc::Sender<InvokeRequest>,
        admissions: Admissions,
        max_queue: usize,
        health: tokio::sync::watch::Receiver<Health>,
    ) -> Self {
        Lambda {
            queue,
            admissions,
            max_queue,
            health,
        }
    }

    async fn invoke(&self, req: Request<Body>, _call: Call) -> Answer {
        let (parts, body) = req.into_parts();
        let payload = match read_body(body, MAX_PAYLOAD).await {
            Ok(p) => p,
            Err(a) => return a,
        };
        let header = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let Some(admission) = self.admissions.try_admit(self.max_queue + 1) else {
            return Answer::failed(
                StatusCode::TOO_MANY_REQUESTS,
                format!("the invoke queue is full ({} waiting)", self.max_queue),
                Outcome::Error,
            );
        };
        let (reply, outcome) = oneshot::channel();
        let id = RequestId::generate();
        let request = InvokeRequest {
            id: id.clone(),
            payload,
            content_type: header("content-type").unwrap_or_else(|| "application/json".into()),
            trace_id: header("x-amzn-trace-id"),
            client_context: None,
            cognito_identity: None,
            reply,
            tail: None,
            result: None,
            admission: Some(admission),
            // The function timeout is the Lambda contract, and a timeout resets
            // the sandbox: neither the front's exec timeout nor a client's
            // X-Timeout may shorten it.
            timeout: None,
        };
        if self.queue.try_send(request).is_err() {
            return Answer::failed(
                StatusCode::SERVICE_UNAVAILABLE,
                "the sandbox is shutting down",
                Outcome::Error,
            );
        }
        let outcome = match outcome.await {
            Ok(o) => o,
            Err(_) => {
                return Answer::failed(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the sandbox shut down during the invoke",
                    Outcome::Error,
                )
            }
        };
        let mut answer = render(outcome);
        if let Ok(v) = HeaderValue::from_str(id.as_str()) {
            answer.response.headers_mut().insert("x-amzn-requestid", v);
        }
        answer
    }
}

/// The Invoke API's rendering (content type, error body,
/// `X-Amz-Function-Error`), with the watchdog's status for a failure: 504 for
/// a timeout, 500 for anything else.
fn render(outcome: InvokeOutcome) -> Answer {
    let (status, result) = match &outcome {
        InvokeOutcome::Response(_) => (StatusCode::OK, Outcome::Success),
        InvokeOutcome::Error(e) if e.function_error.error_type == ErrorType::SandboxTimedout => {
            (StatusCode::GATEWAY_TIMEOUT, Outcome::Timeout)
        }
        InvokeOutcome::Error(_) => (StatusCode::INTERNAL_SERVER_ERROR, Outcome::Error),
    };
    let mut response = boxed(crate::invoke_api::render(Response::builder(), outcome));
    *response.status_mut() = status;
    Answer {
        response,
        outcome: result,
    }
}

impl Backend for Lambda {
    fn call(&self, req: Request<Body>, call: Call) -> BoxFuture<'_, Answer> {
        Box::pin(self.invoke(req, call))
    }

    fn health(&self) -> Health {
        if self.queue.is_closed() {
            return Health::Unhealthy("the lifecycle engine stopped".into());
        }
        self.health.borrow().clone()
    }

    fn settled(&self) -> BoxFuture<'_, Health> {
        let mut rx = self.health.clone();
        Box::pin(async move {
            let settled = rx
                .wait_for(|h| *h != Health::Starting)
                .await
                .map(|h| h.clone());
            settled.unwrap_or_else(|_| Health::Unhealthy("the lifecycle engine stopped".into()))
        })
    }

    fn health_changed(&self) -> BoxFuture<'_, ()> {
        let mut rx = self.health.clone();
        rx.mark_unchanged();
        Box::pin(async move {
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        })
    }
}
