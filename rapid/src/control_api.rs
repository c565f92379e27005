//! The control API: a platform drives the sandbox through its phases with the
//! typed `interop` messages (`--control-api-address`).
//!
//! | call | body | answer |
//! |---|---|---|
//! | `GET /v1/state` | — | phase, generation, pids, last results |
//! | `POST /v1/init` | `Init` (all fields optional) | `{"InitSuccess"}` / `{"InitFailure"}` |
//! | `POST /v1/invoke` | `{"id"?, "deadlineMs"?, "payload", "payloadBase64"?, "contentType"?, "traceId"?, "clientContext"?}` | the response, streamed; `Rapid-Invoke-Result` trailer |
//! | `POST /v1/reset` | `Reset` | `{"ResetSuccess"}` / `{"ResetFailure"}` |
//! | `POST /v1/shutdown[?exit=true]` | `Shutdown` | `ShutdownSuccess`; with `exit`, rapid then exits |
//! | `POST /v1/restore` | — | `RestoreResult` (init caching) |
//!
//! Out-of-order commands get 409 `InvalidStateTransition`; a missing or wrong
//! bearer token 401.

use std::sync::Arc;

use base64::Engine as _;
use bytes::Bytes;
use fatalerror::ErrorType;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use interop::{RequestId, MAX_PAYLOAD};
use runtime_api::ResponseBuilderExt;
use serde::Deserialize;
use tokio::sync::{mpsc, oneshot};

use crate::config::Config;
use crate::engine::{Command, ControlError, InvokeRequest};
use crate::invoke_api::{decode_client_context, json, queue_full, render, with_ids, InvokeBody};

/// The control API front.
#[derive(Clone)]
pub struct ControlApi {
    admissions: crate::engine::Admissions,
    cfg: Arc<Config>,
    queue: mpsc::Sender<InvokeRequest>,
    commands: mpsc::Sender<Command>,
}

type Answer = Response<InvokeBody>;

pub(crate) fn typed<T: serde::Serialize>(status: StatusCode, value: &T) -> Answer {
    let body = serde_json::to_vec(value).unwrap_or_default();
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body_or_500(InvokeBody::Full(Some(body.into())))
}

fn conflict(e: &ControlError) -> Answer {
    typed(StatusCode::CONFLICT, e)
}

fn engine_gone() -> Answer {
    json(
        StatusCode::SERVICE_UNAVAILABLE,
        ErrorType::ServiceException,
        "rapid is shutting down",
    )
}

/// The body of `POST /v1/invoke`.
#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
struct InvokeBodyJson {
    /// The request id to use (default: a fresh UUID).
    id: Option<String>,
    /// Epoch milliseconds by which the invoke must finish (default: the
    /// function timeout from now).
    deadline_ms: Option<u64>,
    payload: Option<serde_json::Value>,
    payload_base64: Option<String>,
    content_type: Option<String>,
    trace_id: Option<String>,
    client_context: Option<serde_json::Value>,
}

/// A control request's JSON body (empty = the type's default), bounded.
pub(crate) async fn read_json<T: for<'de> Deserialize<'de> + Default>(
    body: Incoming,
) -> Result<T, Refusal> {
    let bytes = Limited::new(body, MAX_PAYLOAD * 2)
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|e| {
            (
                StatusCode::BAD_REQUEST,
                ErrorType::InvalidRequestFormat,
                format!("Could not read the body: {e}"),
            )
        })?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(&bytes).map_err(|e| {
        (
            StatusCode::BAD_REQUEST,
            ErrorType::InvalidRequestFormat,
            format!("Invalid JSON body: {e}"),
        )
    })
}

fn refuse((status, error_type, message): Refusal) -> Answer {
    json(status, error_type, message)
}

/// Why a control request is refused before it is routed.
pub(crate) type Refusal = (StatusCode, ErrorType, String);

/// The checks every control request passes first, in lambda and watchdog
/// modes alike: the bearer token (when one is configured), a known route,
/// the route's method.
pub(crate) fn gate<B>(token: Option<&str>, req: &Request<B>) -> Result<(), Refusal> {
    if let Some(token) = token {
        let ok = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|t| t.trim() == token);
        if !ok {
            return Err((
                StatusCode::UNAUTHORIZED,
                ErrorType::InvalidRequestFormat,
                "Missing or wrong bearer token (Authorization: Bearer <token>)".into(),
            ));
        }
    }
    let (path, method) = (req.uri().path(), req.method());
    let known = matches!(
        path,
        "/v1/state" | "/v1/init" | "/v1/invoke" | "/v1/reset" | "/v1/shutdown" | "/v1/restore"
    );
    if !known {
        return Err((
            StatusCode::NOT_FOUND,
            ErrorType::NotFound,
            format!("No such route: {method} {path}"),
        ));
    }
    let want = if path == "/v1/state" {
        Method::GET
    } else {
        Method::POST
    };
    if method != want {
        return Err((
            StatusCode::METHOD_NOT_ALLOWED,
            ErrorType::MethodNotAllowed,
            format!("Method {method} is not allowed on {path}"),
        ));
    }
    Ok(())
}

impl ControlApi {
    /// A control front feeding `queue` (invokes) and `commands`.
    pub fn new(
        cfg: Arc<Config>,
        queue: mpsc::Sender<InvokeRequest>,
        admissions: crate::engine::Admissions,
        commands: mpsc::Sender<Command>,
    ) -> Self {
        ControlApi {
            admissions,
            cfg,
            queue,
            commands,
        }
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Option<T> {
        let (tx, rx) = oneshot::channel();
        self.commands.send(make(tx)).await.ok()?;
        rx.await.ok()
    }

    /// Answer one request.
    pub async fn handle(self, req: Request<Incoming>) -> Answer {
        if let Err(r) = gate(self.cfg.control_token.as_deref(), &req) {
            return refuse(r);
        }
        let path = req.uri().path().to_owned();
        let query = req.uri().query().unwrap_or("").to_owned();
        match path.as_str() {
            "/v1/state" => match self.ask(|reply| Command::State { reply }).await {
                Some(state) => typed(StatusCode::OK, &state),
                None => engine_gone(),
            },
            "/v1/init" => {
                let init: interop::Init = match read_json(req.into_body()).await {
                    Ok(i) => i,
                    Err(r) => return refuse(r),
                };
                let init = Box::new(init);
                match self.ask(|reply| Command::Init { init, reply }).await {
                    Some(Ok(result)) => typed(StatusCode::OK, &result),
                    Some(Err(e)) => conflict(&e),
                    None => engine_gone(),
                }
            }
            "/v1/reset" => {
                let reset: interop::Reset = match read_json(req.into_body()).await {
                    Ok(r) => r,
                    Err(r) => return refuse(r),
                };
                match self.ask(|reply| Command::Reset { reset, reply }).await {
                    Some(Ok(result)) => typed(StatusCode::OK, &result),
                    Some(Err(e)) => conflict(&e),
                    None => engine_gone(),
                }
            }
            "/v1/shutdown" => {
                let shutdown: interop::Shutdown = match read_json(req.into_body()).await {
                    Ok(s) => s,
                    Err(r) => return refuse(r),
                };
                let reason = shutdown.reason;
                // `?exit=true`: rapid itself stops afterwards (and, as a VM's
                // init, powers the machine off).
                let exit = query
                    .split('&')
                    .any(|kv| kv == "exit=true" || kv == "exit=1");
                match self
                    .ask(|done| Command::Shutdown { reason, exit, done })
                    .await
                {
                    Some(Ok(result)) => typed(StatusCode::OK, &result),
                    Some(Err(e)) => conflict(&e),
                    None => engine_gone(),
                }
            }
            "/v1/restore" => match self.ask(|reply| Command::Restore { reply }).await {
                Some(Ok(result)) => typed(StatusCode::OK, &result),
                Some(Err(e)) => conflict(&e),
                None => engine_gone(),
            },
            _ => self.invoke(req).await,
        }
    }

    async fn invoke(&self, req: Request<Incoming>) -> Answer {
        let Some(state) = self.ask(|reply| Command::State { reply }).await else {
            return engine_gone();
        };
        if matches!(state.phase, "NotStarted" | "Stopped") {
            return conflict(&ControlError {
                error_type: "InvalidStateTransition",
                error_message: format!(
                    "Invoke is not allowed in phase {}: send Init first",
                    state.phase
                ),
            });
        }
        let body: InvokeBodyJson = match read_json(req.into_body()).await {
            Ok(b) => b,
            Err(r) => return refuse(r),
        };
        let payload: Bytes = match (&body.payload_base64, &body.payload) {
            (Some(b64), _) => match base64::engine::general_purpose::STANDARD.decode(b64) {
                Ok(p) => p.into(),
                Err(e) => {
                    return json(
                        StatusCode::BAD_REQUEST,
                        ErrorType::InvalidRequestFormat,
                        format!("payloadBase64 is not base64: {e}"),
                    )
                }
            },
            (None, Some(v)) => serde_json::to_vec(v).unwrap_or_default().into(),
            (None, None) => Bytes::from_static(b"{}"),
        };
        if payload.len() > MAX_PAYLOAD {
            return json(
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorType::RequestEntityTooLargeException,
                format!(
                    "{} byte payload exceeds the {MAX_PAYLOAD} byte maximum",
                    payload.len()
                ),
            );
        }
        let client_context = match &body.client_context {
            None => None,
            Some(v) => {
                let raw = base64::engine::general_purpose::STANDARD.encode(v.to_string());
                match decode_client_context(&raw) {
                    Ok(c) => Some(c),
                    Err(m) => {
                        return json(
                            StatusCode::BAD_REQUEST,
                            ErrorType::InvalidRequestContentException,
                            m,
                        )
                    }
                }
            }
        };
        let id = match body.id {
            None => RequestId::generate(),
            Some(id)
                if !id.is_empty()
                    && id.len() <= 128
                    && id
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
            {
                RequestId::from_string(id)
            }
            Some(id) => {
                return json(
                    StatusCode::BAD_REQUEST,
                    ErrorType::InvalidRequestFormat,
                    format!("id {id:?} must be 1-128 letters, digits, '-' or '_'"),
                )
            }
        };
        let timeout = match body.deadline_ms {
            None => None,
            Some(deadline) => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_millis() as u64)
                    .unwrap_or(0);
                if deadline <= now {
                    return json(
                        StatusCode::BAD_REQUEST,
                        ErrorType::InvalidRequestFormat,
                        format!("deadlineMs {deadline} is not in the future (now {now})"),
                    );
                }
                Some(std::time::Duration::from_millis(deadline - now))
            }
        };
        let (reply_tx, reply_rx) = oneshot::channel();
        let (result_tx, result_rx) = oneshot::channel();
        let request = InvokeRequest {
            id: id.clone(),
            payload,
            content_type: body
                .content_type
                .unwrap_or_else(|| "application/json".into()),
            trace_id: body.trace_id,
            client_context,
            cognito_identity: None,
            reply: reply_tx,
            tail: None,
            result: Some(result_tx),
            admission: None,
            timeout,
        };
        let Some(admission) = self.admissions.try_admit(self.cfg.max_queue + 1) else {
            return queue_full(self.cfg.max_queue);
        };
        let request = InvokeRequest {
            admission: Some(admission),
            ..request
        };
        if let Err(e) = self.queue.try_send(request) {
            return match e {
                mpsc::error::TrySendError::Full(_) => queue_full(self.cfg.max_queue),
                mpsc::error::TrySendError::Closed(_) => engine_gone(),
            };
        }
        let Ok(outcome) = reply_rx.await else {
            return engine_gone();
        };
        let b = with_ids(Response::builder().status(StatusCode::OK), &id, &self.cfg);
        let mut resp = render(b, outcome)
            .map(|inner| InvokeBody::WithResult(Box::new(inner), Some(result_rx)));
        resp.headers_mut().insert(
            header::TRAILER,
            http::HeaderValue::from_static("rapid-invoke-result"),
        );
        resp
    }
}
