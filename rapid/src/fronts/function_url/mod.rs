//! The function URL front (`--function-url-address`): any HTTP request
//! becomes a Lambda function URL event (payload format 2.0), and the
//! function's answer the HTTP response, as a function URL maps it —
//! buffered, or (`RESPONSE_STREAM`) streamed after the http-integration
//! prelude. `/lambda-url/NAME/…` picks a function of the table by name and is
//! stripped from `rawPath`.

mod event;
mod response;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::Router;
use bytes::{Bytes, BytesMut};
use fatalerror::ErrorType;
use http::{header, HeaderValue, StatusCode};
use http_body_util::BodyExt;
use interop::RequestId;
use runtime_api::StreamItem;

use super::Drain;
use crate::sandbox::{
    Body, Budget, FunctionTable, Invocation, InvokeError, LambdaContext, ReplyBody, Resolved,
};

/// AWS's `InvokeMode` of a function URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InvokeMode {
    /// The whole answer, mapped (the default).
    #[default]
    Buffered,
    /// A streaming function's answer as it is produced, after its prelude.
    ResponseStream,
}

/// The largest request body a function URL takes (6 MiB, as a synchronous invoke).
pub const MAX_REQUEST: usize = 6 * 1024 * 1024;
/// The largest buffered answer (the runtime's payload limit).
const MAX_ANSWER: usize = interop::MAX_PAYLOAD;

/// `X-Amzn-RequestId`.
const REQUEST_ID: http::HeaderName = http::HeaderName::from_static("x-amzn-requestid");

struct FunctionUrl {
    table: FunctionTable,
    mode: InvokeMode,
    drain: Drain,
}

/// Why a request got no answer from the function, rendered as a function URL does.
#[derive(Debug, thiserror::Error)]
pub enum UrlError {
    /// The function failed or crashed, or its answer cannot be a response
    /// (502 `Internal Server Error`, as AWS answers).
    #[error("the function failed: {0}")]
    Function(String),
    /// The sandbox refused the invocation (429, 413, 503, 400).
    #[error("{0}")]
    Refused(InvokeError),
    /// The request body is larger than a function URL takes (413).
    #[error("Request must be smaller than {MAX_REQUEST} bytes")]
    TooLarge,
    /// The request body could not be read (400).
    #[error("Could not read the request body: {0}")]
    BadBody(String),
    /// rapid is shutting down (503).
    #[error("rapid is shutting down")]
    ShuttingDown,
}

impl IntoResponse for UrlError {
    fn into_response(self) -> Response {
        let (status, kind) = match &self {
            UrlError::Function(why) => {
                tracing::info!("function URL answered 502: {why}");
                let mut r = Response::new(Body::from("Internal Server Error"));
                *r.status_mut() = StatusCode::BAD_GATEWAY;
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                );
                return r;
            }
            UrlError::Refused(e) => match e {
                InvokeError::QueueFull { .. } | InvokeError::Throttled => {
                    (StatusCode::TOO_MANY_REQUESTS, e.error_type())
                }
                InvokeError::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, e.error_type()),
                InvokeError::RequestTimeout(_) => (StatusCode::REQUEST_TIMEOUT, e.error_type()),
                InvokeError::BadRequest(_) | InvokeError::TenantRequired => {
                    (StatusCode::BAD_REQUEST, e.error_type())
                }
                _ => (StatusCode::SERVICE_UNAVAILABLE, ErrorType::ServiceException),
            },
            UrlError::TooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorType::RequestEntityTooLargeException,
            ),
            UrlError::BadBody(_) => (
                StatusCode::BAD_REQUEST,
                ErrorType::InvalidRequestContentException,
            ),
            UrlError::ShuttingDown => {
                (StatusCode::SERVICE_UNAVAILABLE, ErrorType::ServiceException)
            }
        };
        let body = serde_json::json!({ "Message": self.to_string() }).to_string();
        let mut r = Response::new(Body::from(body));
        *r.status_mut() = status;
        let h = r.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Ok(v) = HeaderValue::from_str(kind.as_str()) {
            h.insert(super::aws::ERROR_TYPE, v);
        }
        if status == StatusCode::TOO_MANY_REQUESTS {
            h.insert(
                header::RETRY_AFTER,
                HeaderValue::from_static(super::aws::RETRY_AFTER_SECONDS),
            );
        }
        r
    }
}

/// The function URL router over the functions of `table`.
pub fn router(table: FunctionTable, mode: InvokeMode, drain: Drain) -> Router {
    let state = Arc::new(FunctionUrl { table, mode, drain });
    Router::new().fallback(serve).with_state(state)
}

async fn serve(State(url): State<Arc<FunctionUrl>>, req: Request) -> Response {
    let id = RequestId::generate();
    let mut answer = match url.call(&id, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    if let Ok(v) = HeaderValue::from_str(id.as_str()) {
        answer.headers_mut().entry(REQUEST_ID).or_insert(v);
    }
    answer
}

impl FunctionUrl {
    /// The function a path picks, and the path it sees.
    fn route<'a>(&'a self, path: &'a str) -> Option<(&'a Resolved, &'a str)> {
        if let Some(rest) = path.strip_prefix("/lambda-url/") {
            let (name, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            if let Ok(t) = self.table.resolve(name, None) {
                let tail = if tail.is_empty() { "/" } else { tail };
                return Some((t.function, tail));
            }
        }
        self.table.default_function().map(|f| (f, path))
    }

    async fn call(&self, id: &RequestId, req: Request) -> Result<Response, UrlError> {
        if self.drain.is_closed() {
            return Err(UrlError::ShuttingDown);
        }
        let peer = req
            .extensions()
            .get::<runtime_api::server::Peer>()
            .map(|p| p.0);
        let (parts, body) = req.into_parts();
        let body = read_body(body).await?;
        let path = parts.uri.path().to_owned();
        let (function, path) = self.route(&path).ok_or(UrlError::ShuttingDown)?;
        let event = event::build(
            &parts,
            &body,
            &event::Source {
                request_id: id.as_str(),
                peer,
                path,
            },
        );
        let mut request = http::Request::new(Body::from(event.to_string()));
        *request.method_mut() = http::Method::POST;
        request.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(trace) = parts.headers.get("x-amzn-trace-id") {
            request
                .headers_mut()
                .insert("x-amzn-trace-id", trace.clone());
        }
        let inv = Invocation {
            id: id.clone(),
            call_id: None,
            request,
            context: LambdaContext::default(),
            budget: Budget::Function,
            log_tail: false,
            typed_result: false,
        };
        let pending = function
            .sandbox
            .submit(inv)
            .await
            .map_err(refused_or_failed)?;
        let r = pending.await.outcome.map_err(refused_or_failed)?;
        if !r.status.is_success() {
            return Err(UrlError::Function(format!("it answered {}", r.status)));
        }
        let prelude = r
            .headers
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes() == response::HTTP_INTEGRATION.as_bytes());
        match (self.mode, r.body, prelude) {
            (InvokeMode::ResponseStream, ReplyBody::Chunks(rx), true) => response::streamed(rx)
                .await
                .map_err(|e| UrlError::Function(e.to_string())),
            (InvokeMode::ResponseStream, ReplyBody::Chunks(rx), false) => {
                // A stream without the prelude: as it is, 200.
                let mut resp = Response::new(Body::new(
                    crate::fronts::invoke::body::InvokeBody::Chunks(rx),
                ));
                if let Some(ct) = r.headers.get(header::CONTENT_TYPE) {
                    resp.headers_mut().insert(header::CONTENT_TYPE, ct.clone());
                }
                Ok(resp)
            }
            (_, body, true) => {
                // Buffered mode over a streaming function: the prelude still sets the head.
                let whole = collect(body).await?;
                let (tx, rx) = tokio::sync::mpsc::channel(2);
                let _ = tx.try_send(StreamItem::Chunk(whole));
                let _ = tx.try_send(StreamItem::End);
                let resp = response::streamed(rx)
                    .await
                    .map_err(|e| UrlError::Function(e.to_string()))?;
                let (head, body) = resp.into_parts();
                let bytes = body
                    .collect()
                    .await
                    .map_err(|e| UrlError::Function(e.to_string()))?
                    .to_bytes();
                Ok(Response::from_parts(head, Body::from(bytes)))
            }
            (_, body, false) => {
                let whole = collect(body).await?;
                response::buffered(&whole).map_err(|e| UrlError::Function(e.to_string()))
            }
        }
    }
}

fn refused_or_failed(e: InvokeError) -> UrlError {
    match e {
        InvokeError::QueueFull { .. }
        | InvokeError::Throttled
        | InvokeError::TenantRequired
        | InvokeError::TooLarge { .. }
        | InvokeError::Unavailable(_)
        | InvokeError::BadRequest(_)
        | InvokeError::RequestTimeout(_) => UrlError::Refused(e),
        InvokeError::TimedOut(_) | InvokeError::Function(_) | InvokeError::Down(_) => {
            UrlError::Function(e.to_string())
        }
    }
}

/// The request body, at most [`MAX_REQUEST`] bytes. Past it the rest is read
/// and dropped (up to four times the limit), so a client still sending gets
/// the 413 rather than a broken pipe.
async fn read_body(mut body: Body) -> Result<Bytes, UrlError> {
    let mut buf = BytesMut::new();
    let mut over: Option<usize> = None;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| UrlError::BadBody(e.to_string()))?;
        let Ok(d) = frame.into_data() else {
            continue;
        };
        match over.as_mut() {
            Some(seen) => *seen += d.len(),
            None if buf.len() + d.len() > MAX_REQUEST => {
                over = Some(buf.len() + d.len());
                buf.clear();
            }
            None => buf.extend_from_slice(&d),
        }
        if over.is_some_and(|seen| seen > 4 * MAX_REQUEST) {
            break;
        }
    }
    match over {
        Some(_) => Err(UrlError::TooLarge),
        None => Ok(buf.freeze()),
    }
}

/// A whole answer, at most [`MAX_ANSWER`] bytes.
async fn collect(body: ReplyBody) -> Result<Bytes, UrlError> {
    let mut b = crate::fronts::invoke::body::InvokeBody::raw(body);
    let mut buf = BytesMut::new();
    while let Some(frame) = b.frame().await {
        let frame = frame.map_err(|e| UrlError::Function(e.to_string()))?;
        if let Ok(d) = frame.into_data() {
            if buf.len() + d.len() > MAX_ANSWER {
                return Err(UrlError::Function(format!(
                    "the answer is over {MAX_ANSWER} bytes"
                )));
            }
            buf.extend_from_slice(&d);
        }
    }
    Ok(buf.freeze())
}

/// The function URL front's settings.
#[derive(Debug, Clone, Copy)]
pub struct FunctionUrlConfig {
    /// Where it listens.
    pub address: SocketAddr,
    /// `BUFFERED` or `RESPONSE_STREAM`.
    pub mode: InvokeMode,
}
