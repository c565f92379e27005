//! The Runtime API calls: `/next`, `/response` (buffered here, streamed in
//! `stream_response.rs`), `/error`, `/init/error`.

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::response::Response;
use bytes::{Bytes, BytesMut};
use fatalerror::ErrorType;
use http::{header, HeaderMap, HeaderValue, StatusCode};
use http_body_util::BodyExt;
use interop::{ErrorInvokeResponse, FunctionError, ResponseMode, MAX_PAYLOAD};

use crate::api::RuntimeApi;
use crate::body::{accepted, header_str, ResponseBuilderExt};
use crate::error::ApiError;
use crate::headers as h;
use crate::outcome::{truncated_error, InvokeOutcome, InvokeResponse, ResponseBody};
use crate::rendezvous::{Dispatched, NextCall};

type Reply = Result<Response, ApiError>;

/// The `{id}` of `/invocation/{id}/...`: a non-empty path segment (an empty
/// one is no route at all: 404, as for any unknown path).
pub(crate) struct InvocationId(pub String);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for InvocationId {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        match Path::<String>::from_request_parts(parts, state).await {
            Ok(Path(id)) if !id.is_empty() => Ok(InvocationId(id)),
            _ => Err(ApiError::not_found(&parts.method, parts.uri.path())),
        }
    }
}

/// How far past the limit a too-large buffered body is read to report its size.
const OVERSIZE_COUNT_LIMIT: u64 = 1 << 30;

fn content_length(headers: &HeaderMap) -> Option<u64> {
    header_str(headers, http::header::CONTENT_LENGTH).and_then(|v| v.trim().parse().ok())
}

/// `GET /runtime/invocation/next`.
pub(crate) async fn next(State(api): State<RuntimeApi>) -> Reply {
    let dispatched = match api.rendezvous.next()? {
        NextCall::Now(d) => d,
        NextCall::Wait(rx) => rx.await.map_err(|_| {
            ApiError::new(
                StatusCode::GONE,
                ErrorType::InvalidStateTransition,
                "The sandbox was reset while this call waited for an invoke",
            )
        })?,
    };
    Ok(next_response(&dispatched))
}

fn next_response(d: &Dispatched) -> Response {
    let inv = &d.invoke;
    let mut b = Response::builder()
        .status(StatusCode::OK)
        .header(h::REQUEST_ID, inv.id.as_str())
        .header(h::DEADLINE_MS, d.deadline_epoch_ms)
        .header(h::FUNCTION_ARN, inv.invoked_function_arn.as_str())
        .header(header::CONTENT_TYPE, inv.content_type.as_str());
    if let Ok(v) = HeaderValue::from_str(&d.invocation_id) {
        b = b.header(h::INVOCATION_ID, v);
    }
    // These were validated as header values when the invoke was accepted.
    for (name, value) in [
        (h::TRACE_ID, &inv.trace_id),
        (h::CLIENT_CONTEXT, &inv.client_context),
        (h::COGNITO_IDENTITY, &inv.cognito_identity),
        (h::TENANT_ID, &inv.tenant_id),
    ] {
        if let Some(v) = value.as_deref().and_then(|v| HeaderValue::from_str(v).ok()) {
            b = b.header(name, v);
        }
    }
    b.body_or_500(Body::from(d.payload.clone()))
}

/// `POST /runtime/invocation/{id}/response`.
pub(crate) async fn response(
    State(api): State<RuntimeApi>,
    InvocationId(id): InvocationId,
    req: Request,
) -> Reply {
    let id = id.as_str();
    api.rendezvous
        .check_echo(id, header_str(req.headers(), h::INVOCATION_ID))?;
    let mode =
        ResponseMode::from_header(header_str(req.headers(), h::RESPONSE_MODE).or_else(|| {
            // A present header that is not valid text is still "present and not streaming".
            req.headers().get(h::RESPONSE_MODE).map(|_| "<non-text>")
        }));
    let ticket = api.rendezvous.begin_response(id, || match &mode {
        Ok(_) => Ok(()),
        Err(v) => Err(ApiError::invalid_response_mode(v)),
    })?;
    let mode = mode.unwrap_or_default();
    let content_type = header_str(req.headers(), header::CONTENT_TYPE).map(str::to_owned);
    let span = tracing::debug_span!("response", request_id = %ticket.id, ?mode);
    let _enter = span.enter();
    match mode {
        ResponseMode::Buffered => buffered_response(&api, ticket, content_type, req).await,
        ResponseMode::Streaming => {
            crate::stream_response::streaming_response(&api, ticket, content_type, req).await
        }
    }
}

enum ReadError {
    TooLarge(u64),
    Broken(String),
}

/// Read a body of at most `limit` bytes. Past the limit, keep counting (without
/// storing) so the error can say how large the body was.
async fn read_limited(mut body: Body, limit: usize) -> Result<Bytes, ReadError> {
    let mut buf = BytesMut::new();
    let mut total: u64 = 0;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ReadError::Broken(e.to_string()))?;
        if let Ok(data) = frame.into_data() {
            total += data.len() as u64;
            if total <= limit as u64 {
                buf.extend_from_slice(&data);
            } else if total > OVERSIZE_COUNT_LIMIT {
                return Err(ReadError::TooLarge(total));
            }
        }
    }
    if total > limit as u64 {
        return Err(ReadError::TooLarge(total));
    }
    Ok(buf.freeze())
}

fn too_large_error(size: u64) -> FunctionError {
    FunctionError::new(
        ErrorType::FunctionResponseSizeTooLarge,
        format!("Response payload size ({size} bytes) exceeded maximum allowed payload size ({MAX_PAYLOAD} bytes)."),
    )
}

async fn buffered_response(
    api: &RuntimeApi,
    ticket: crate::rendezvous::ResponseTicket,
    content_type: Option<String>,
    req: Request,
) -> Reply {
    let declared = content_length(req.headers());
    let result = match declared {
        Some(n) if n > MAX_PAYLOAD as u64 => Err(ReadError::TooLarge(n)),
        _ => read_limited(req.into_body(), MAX_PAYLOAD).await,
    };
    let reply = ticket.reply.take();
    let send = |outcome| {
        if let Some(r) = reply {
            let _ = r.send(outcome);
        }
    };
    match result {
        Ok(body) => {
            let produced = body.len() as u64;
            send(InvokeOutcome::Response(InvokeResponse {
                content_type,
                body: ResponseBody::Buffered(body),
            }));
            api.rendezvous
                .end_response(&ticket, produced, ResponseMode::Buffered, None);
            Ok(accepted())
        }
        Err(ReadError::TooLarge(size)) => {
            let err = too_large_error(size);
            tracing::info!(size, "response rejected: larger than the payload limit");
            send(InvokeOutcome::failure(err.clone()));
            api.rendezvous
                .end_response(&ticket, 0, ResponseMode::Buffered, Some(err));
            Err(ApiError::too_large())
        }
        Err(ReadError::Broken(detail)) => {
            let err = truncated_error(&detail);
            send(InvokeOutcome::failure(err.clone()));
            api.rendezvous
                .end_response(&ticket, 0, ResponseMode::Buffered, Some(err));
            Err(ApiError::bad_request(format!(
                "Could not read the response body: {detail}"
            )))
        }
    }
}

/// Error type and message of an `/error` or `/init/error` call.
pub(crate) fn reported_error(headers: &HeaderMap, body: &[u8]) -> FunctionError {
    let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let field = |k: &str| {
        parsed
            .as_ref()
            .and_then(|v| v.get(k))
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    };
    // Bytes that are not UTF-8 still name the kind (`Function.\xff` is a
    // `Function.Unknown`), so the header is read lossily.
    let header = headers
        .get(h::ERROR_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()));
    let error_type = match header.as_deref() {
        Some(t) => ErrorType::from_runtime(t),
        None => field("errorType")
            .map(|t| ErrorType::from_runtime(&t))
            .unwrap_or(ErrorType::RuntimeUnknown),
    };
    let message = field("errorMessage").unwrap_or_default();
    FunctionError::new(error_type, message)
}

pub(crate) async fn read_error_body(req: Request) -> Result<(HeaderMap, Bytes), ApiError> {
    let (parts, body) = req.into_parts();
    if content_length(&parts.headers).is_some_and(|n| n > MAX_PAYLOAD as u64) {
        return Err(ApiError::too_large());
    }
    match read_limited(body, MAX_PAYLOAD).await {
        Ok(b) => Ok((parts.headers, b)),
        Err(ReadError::TooLarge(_)) => Err(ApiError::too_large()),
        Err(ReadError::Broken(d)) => Err(ApiError::bad_request(format!(
            "Could not read the body: {d}"
        ))),
    }
}

/// `POST /runtime/invocation/{id}/error`.
pub(crate) async fn invocation_error(
    State(api): State<RuntimeApi>,
    InvocationId(id): InvocationId,
    req: Request,
) -> Reply {
    let id = id.as_str();
    api.rendezvous
        .check_echo(id, header_str(req.headers(), h::INVOCATION_ID))?;
    api.rendezvous.check_error(id)?;
    let (headers, body) = read_error_body(req).await?;
    let error = reported_error(&headers, &body);
    tracing::debug!(request_id = id, error_type = %error.error_type, "function reported an error");
    let payload = (!body.is_empty()).then(|| body.to_vec());
    api.rendezvous.invocation_error(
        id,
        ErrorInvokeResponse {
            function_error: error,
            payload,
        },
    )?;
    Ok(accepted())
}

/// `POST /runtime/init/error`.
pub(crate) async fn init_error(State(api): State<RuntimeApi>, req: Request) -> Reply {
    api.rendezvous.check_init_error()?;
    let (headers, body) = read_error_body(req).await?;
    let error = reported_error(&headers, &body);
    tracing::info!(error_type = %error.error_type, "runtime reported an init error");
    let payload = (!body.is_empty()).then(|| body.to_vec());
    api.rendezvous.init_error(ErrorInvokeResponse {
        function_error: error,
        payload,
    })?;
    Ok(accepted())
}
