//! The control API: a platform drives the sandbox through its phases with the
//! typed `interop` messages (`--control-api-address`).
//!
//! | call | body | answer |
//! |---|---|---|
//! | `GET /v1/state` | — | the default sandbox's state, and every function's sandboxes |
//! | `POST /v1/init` | `Init` (all fields optional) | `{"InitSuccess"}` / `{"InitFailure"}` |
//! | `POST /v1/invoke` | an envelope `{"id"?, "deadlineMs"?, "payload", "payloadBase64"?, "contentType"?, "traceId"?, "clientContext"?}`, or the payload itself | the response, streamed; `Rapid-Invoke-Result` trailer |
//! | `POST /v1/reset` | `Reset` | `{"ResetSuccess"}` / `{"ResetFailure"}` |
//! | `POST /v1/shutdown[?exit=true]` | `Shutdown` | `ShutdownSuccess`; with `exit`, rapid then exits |
//! | `POST /v1/restore` | — | `RestoreResult` (init caching) |
//!
//! Out-of-order commands get 409 `InvalidStateTransition`; a missing or wrong
//! bearer token 401.
//!
//! With several functions, `?function=NAME` picks the one a call drives (the
//! default function without it; an unknown name is 404
//! `ResourceNotFoundException`); Init, Reset, Shutdown and Restore apply to
//! every sandbox of that function's pool.

mod envelope;
mod state;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, FromRequest, Query, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use fatalerror::ErrorType;
use http::{header, HeaderValue, Method, StatusCode, Uri};
use interop::MAX_PAYLOAD;
use runtime_api::ResponseBuilderExt;
use serde::Deserialize;

use super::aws;
use super::invoke::body::InvokeBody;
use super::Drain;
use crate::sandbox::{
    Body, Budget, Command, CommandReply, ControlError, FunctionTable, Invocation, LambdaContext,
    Resolved,
};

/// The control API's state.
struct ControlApi {
    table: FunctionTable,
    token: Option<String>,
    drain: Drain,
}

/// The control API's refusals: a status and `{"errorType","errorMessage"}`.
#[derive(Debug)]
enum Refusal {
    /// A command out of order, or the sandbox gone.
    Control(ControlError),
    /// A body that is not what the route takes (400 `InvalidRequestFormat`).
    Format(String),
    /// A bad client context (400 `InvalidRequestContentException`).
    Content(String),
    /// Missing or wrong bearer token (401).
    Unauthorized,
    /// No such route (404).
    NoRoute(Method, String),
    /// Wrong method (405).
    Method(Method, String),
    /// No function to drive (503).
    NoFunction,
    /// `?function=` names no function (404).
    UnknownFunction(crate::sandbox::ResolveError),
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let (status, error_type, message) = match self {
            Refusal::Control(e) => {
                let status = match e {
                    ControlError::Refused { .. } => StatusCode::CONFLICT,
                    ControlError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
                };
                (status, e.error_type(), e.to_string())
            }
            Refusal::Format(m) => (StatusCode::BAD_REQUEST, ErrorType::InvalidRequestFormat, m),
            Refusal::Content(m) => (
                StatusCode::BAD_REQUEST,
                ErrorType::InvalidRequestContentException,
                m,
            ),
            Refusal::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                ErrorType::InvalidRequestFormat,
                "Missing or wrong bearer token (Authorization: Bearer <token>)".into(),
            ),
            Refusal::NoRoute(m, p) => (
                StatusCode::NOT_FOUND,
                ErrorType::NotFound,
                format!("No such route: {m} {p}"),
            ),
            Refusal::Method(m, p) => (
                StatusCode::METHOD_NOT_ALLOWED,
                ErrorType::MethodNotAllowed,
                format!("Method {m} is not allowed on {p}"),
            ),
            Refusal::UnknownFunction(e) => (StatusCode::NOT_FOUND, e.error_type(), e.to_string()),
            Refusal::NoFunction => (
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorType::ServiceException,
                "rapid serves no function".into(),
            ),
        };
        aws::error_json(status, error_type, message).map(Body::new)
    }
}

/// The control API router over the functions of `table` (it drives the
/// default one), guarded by `token` when given.
pub fn router(table: FunctionTable, token: Option<String>, drain: Drain) -> Router {
    let api = Arc::new(ControlApi {
        table,
        token,
        drain,
    });
    Router::new()
        .route("/v1/state", get(state))
        .route("/v1/init", post(init))
        .route("/v1/invoke", post(invoke))
        .route("/v1/reset", post(reset))
        .route("/v1/shutdown", post(shutdown))
        .route("/v1/restore", post(restore))
        .fallback(|m: Method, u: Uri| async move { Refusal::NoRoute(m, u.path().to_owned()) })
        .method_not_allowed_fallback(|m: Method, u: Uri| async move {
            Refusal::Method(m, u.path().to_owned())
        })
        .layer(DefaultBodyLimit::max(MAX_PAYLOAD * 2))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .layer(axum::middleware::from_fn_with_state(api.clone(), gate))
        .with_state(api)
}

/// The bearer token, checked before anything else (routes included).
async fn gate(State(api): State<Arc<ControlApi>>, req: Request, next: Next) -> Response {
    if let Some(token) = &api.token {
        let ok = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|t| t.trim() == token);
        if !ok {
            return Refusal::Unauthorized.into_response();
        }
    }
    next.run(req).await
}

/// The query every command takes.
#[derive(Debug, Deserialize, Default)]
#[serde(default)]
struct Params {
    /// Which function (the default one when absent).
    function: Option<String>,
    /// Shutdown: `?exit=true`, rapid itself stops afterwards (and, as a
    /// VM's init, powers the machine off).
    exit: Option<String>,
}

impl ControlApi {
    fn function(&self, name: Option<&str>) -> Result<&Resolved, Refusal> {
        match name {
            None => self.table.default_function().ok_or(Refusal::NoFunction),
            Some(n) => self
                .table
                .resolve(n, None)
                .map(|t| t.function)
                .map_err(Refusal::UnknownFunction),
        }
    }

    async fn command(&self, which: &Params, cmd: Command) -> Result<Response, Refusal> {
        let reply = self
            .function(which.function.as_deref())?
            .sandbox
            .control(cmd)
            .await
            .map_err(Refusal::Control)?;
        Ok(match reply {
            CommandReply::Init(r) => typed(&r),
            CommandReply::Reset(r) => typed(&r),
            CommandReply::Shutdown(r) => typed(&r),
            CommandReply::Restore(r) => typed(&r),
        })
    }
}

/// A typed message as a 200 JSON answer.
fn typed<T: serde::Serialize>(value: &T) -> Response {
    runtime_api::json_response(
        StatusCode::OK,
        serde_json::to_vec(value).unwrap_or_default(),
    )
}

/// A request's whole body, bounded by the router's body limit.
struct Whole(Bytes);

impl<S: Send + Sync> FromRequest<S> for Whole {
    type Rejection = Refusal;

    async fn from_request(req: Request, state: &S) -> Result<Self, Refusal> {
        Bytes::from_request(req, state)
            .await
            .map(Whole)
            .map_err(|e| Refusal::Format(format!("Could not read the body: {e}")))
    }
}

/// A control request's typed JSON body (an empty body is the type's default).
struct JsonBody<T>(T);

impl<S: Send + Sync, T: for<'de> Deserialize<'de> + Default> FromRequest<S> for JsonBody<T> {
    type Rejection = Refusal;

    async fn from_request(req: Request, state: &S) -> Result<Self, Refusal> {
        let Whole(bytes) = Whole::from_request(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(JsonBody(T::default()));
        }
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| Refusal::Format(format!("Invalid JSON body: {e}")))
    }
}

async fn state(State(api): State<Arc<ControlApi>>) -> Response {
    typed(&state::report(&api.table, api.drain.is_draining()).await)
}

async fn init(
    State(api): State<Arc<ControlApi>>,
    Query(q): Query<Params>,
    JsonBody(init): JsonBody<interop::Init>,
) -> Result<Response, Refusal> {
    api.command(&q, Command::Init(Box::new(init))).await
}

async fn reset(
    State(api): State<Arc<ControlApi>>,
    Query(q): Query<Params>,
    JsonBody(reset): JsonBody<interop::Reset>,
) -> Result<Response, Refusal> {
    api.command(&q, Command::Reset(reset)).await
}

async fn restore(
    State(api): State<Arc<ControlApi>>,
    Query(q): Query<Params>,
) -> Result<Response, Refusal> {
    api.command(&q, Command::Restore).await
}

async fn shutdown(
    State(api): State<Arc<ControlApi>>,
    Query(q): Query<Params>,
    JsonBody(shutdown): JsonBody<interop::Shutdown>,
) -> Result<Response, Refusal> {
    let exit = matches!(q.exit.as_deref(), Some("true" | "1"));
    api.command(
        &q,
        Command::Shutdown {
            reason: shutdown.reason,
            exit,
        },
    )
    .await
}

async fn invoke(
    State(api): State<Arc<ControlApi>>,
    Query(q): Query<Params>,
    req: Request,
) -> Result<Response, Refusal> {
    let function = api.function(q.function.as_deref())?;
    let phase = function.sandbox.state().await.phase;
    if matches!(phase, "NotStarted" | "Stopped") {
        return Err(Refusal::Control(ControlError::refused(
            "Invoke",
            phase,
            "send Init first",
        )));
    }
    let headers = req.headers().clone();
    let Whole(body) = Whole::from_request(req, &()).await?;
    let inv = envelope::parse(&headers, body).map_err(|e| match e {
        envelope::BadEnvelope::Format(m) => Refusal::Format(m),
        envelope::BadEnvelope::ClientContext(m) => Refusal::Content(m),
    })?;
    let id = inv.id.clone();
    let invocation = Invocation {
        call_id: None,
        id: inv.id,
        request: inv.request,
        context: LambdaContext {
            client_context: inv.client_context,
            cognito_identity: None,
            invoked_function_arn: None,
        },
        budget: inv.budget.map_or(Budget::Function, Budget::Platform),
        log_tail: false,
        typed_result: true,
    };
    let pending = match function.sandbox.submit(invocation).await {
        Ok(p) => p,
        Err(e) => {
            let status = aws::service_status(&e).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            return Ok(aws::refusal(status, &e).map(Body::new));
        }
    };
    let reply = pending.await;
    // The function's answer as it is (a process backend's keeps its status).
    let answer = match reply.outcome {
        Ok(r) => {
            let mut a = http::Response::builder()
                .status(r.status)
                .body_or_500(InvokeBody::raw(r.body));
            a.headers_mut().extend(r.headers);
            a
        }
        Err(e) => aws::classic(None, Err(e)).await,
    };
    let mut resp = answer.map(|inner| InvokeBody::WithResult(Box::new(inner), reply.result));
    let h = resp.headers_mut();
    h.insert(
        header::TRAILER,
        HeaderValue::from_static("rapid-invoke-result"),
    );
    for (name, value) in [
        ("x-amzn-requestid", id.as_str()),
        ("x-call-id", id.as_str()),
        ("x-amz-executed-version", function.id.version.as_str()),
    ] {
        if let Ok(v) = HeaderValue::from_str(value) {
            h.entry(name).or_insert(v);
        }
    }
    Ok(resp.map(Body::new))
}
