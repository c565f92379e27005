//! A request to the function through the OpenFaaS front: limits, call id,
//! `X-Timeout`, metrics, and the plain-text answers of rapid's own.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::{Request, State};
use axum::response::Response;
use bytes::Bytes;
use http::{header, HeaderValue, Method, StatusCode};
use http_body::{Body as HttpBody, Frame};
use interop::RequestId;
use runtime_api::gauge::Held;
use tokio::time::Instant;
use tracing::Instrument;

use super::OpenFaas;
use crate::fronts::deadline::Deadline;
use crate::fronts::invoke::body::InvokeBody;
use crate::fronts::metrics::Outcome;
use crate::sandbox::{
    Body, BoxError, Budget, Invocation, InvokeError, LambdaContext, Reply, ReplyBody,
};

/// A `text/plain` answer; the body ends with a newline.
pub(super) fn text(status: StatusCode, message: impl Into<String>) -> Response {
    let mut m = message.into();
    if !m.ends_with('\n') {
        m.push('\n');
    }
    let mut r = Response::new(Body::from(m));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// How the front reads a sandbox's refusal or a function's failure: a
/// status and a plain-text answer that says what happened. A function that
/// posted its own error document gets it back as JSON.
fn failure(e: &InvokeError) -> Response {
    let status = match e {
        InvokeError::QueueFull { .. } | InvokeError::Throttled => StatusCode::TOO_MANY_REQUESTS,
        InvokeError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        InvokeError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        InvokeError::BadRequest(_) | InvokeError::TenantRequired => StatusCode::BAD_REQUEST,
        InvokeError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
        InvokeError::TimedOut(_) => StatusCode::GATEWAY_TIMEOUT,
        InvokeError::Function(_) => StatusCode::INTERNAL_SERVER_ERROR,
        InvokeError::Down(_) => StatusCode::BAD_GATEWAY,
    };
    let mut r = match e {
        InvokeError::Function(doc) if doc.payload.as_ref().is_some_and(|p| !p.is_empty()) => {
            let mut r = Response::new(Body::from(doc.body()));
            *r.status_mut() = status;
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            r
        }
        InvokeError::Function(doc) => text(
            status,
            format!(
                "{}: {}",
                doc.function_error.error_type, doc.function_error.error_message
            ),
        ),
        InvokeError::TimedOut(fe) => {
            text(status, format!("{}: {}", fe.error_type, fe.error_message))
        }
        other => text(status, other.to_string()),
    };
    if matches!(e, InvokeError::Function(_) | InvokeError::TimedOut(_)) {
        r.headers_mut().insert(
            "x-amz-function-error",
            HeaderValue::from_static("Unhandled"),
        );
    }
    r
}

/// Any path but the probes: the request goes to the function.
pub(super) async fn call(State(front): State<Arc<OpenFaas>>, req: Request) -> Response {
    if front.drain.is_closed() {
        front
            .metrics
            .finished(req.method(), 503, std::time::Duration::ZERO);
        let mut r = text(StatusCode::SERVICE_UNAVAILABLE, "rapid is shutting down");
        r.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return r;
    }
    let (serving, n) = front.in_flight.enter();
    let mut guard = Guard {
        front: front.clone(),
        method: req.method().clone(),
        code: 0,
        start: Instant::now(),
        _serving: serving,
    };
    if let Some(limit) = front.cfg.max_inflight {
        if n > limit {
            guard.code = 429;
            return text(
                StatusCode::TOO_MANY_REQUESTS,
                format!("Concurrent request limit exceeded. Max concurrent requests: {limit}"),
            );
        }
    }
    let id = RequestId::generate();
    let call_id = req
        .headers()
        .get("x-call-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .unwrap_or_else(|| id.to_string());
    let span = tracing::info_span!("call", call_id = %call_id);
    front
        .clone()
        .serve(req, id, call_id, guard)
        .instrument(span)
        .await
}

impl OpenFaas {
    async fn serve(
        self: Arc<Self>,
        req: Request,
        id: RequestId,
        call_id: String,
        mut guard: Guard,
    ) -> Response {
        let budget = match req.headers().get("x-timeout") {
            None => Budget::Function,
            Some(v) => match v
                .to_str()
                .map_err(|_| "not text".to_owned())
                .and_then(crate::parse::duration)
            {
                Ok(d) => Budget::Client(d),
                Err(why) => {
                    guard.code = 400;
                    return with_call_headers(
                        text(StatusCode::BAD_REQUEST, format!("X-Timeout: {why}")),
                        &call_id,
                        guard.start,
                    );
                }
            },
        };
        let read_timeout = self.cfg.read_timeout;
        let request =
            req.map(|b| Body::new(Deadline::new(b, read_timeout, "reading the request body")));
        let inv = Invocation {
            id: id.clone(),
            call_id: Some(call_id.clone()),
            request,
            context: LambdaContext::default(),
            budget,
            log_tail: false,
            typed_result: false,
        };
        // rapid's own refusals carry the call headers too, and count with their status.
        let reply = match self.function.sandbox.submit(inv).await {
            Ok(pending) => pending.await,
            Err(e) => {
                let r = failure(&e);
                guard.code = r.status().as_u16();
                return with_call_headers(r, &call_id, guard.start);
            }
        };
        let Reply { outcome, .. } = reply;
        let (status, headers, body) = match outcome {
            Ok(r) => {
                self.metrics.invoked(if r.status.is_server_error() {
                    Outcome::Error
                } else {
                    Outcome::Success
                });
                let body = match r.body {
                    ReplyBody::Http(b) => b,
                    ReplyBody::Full(b) => Body::from(b),
                    chunks => Body::new(InvokeBody::raw(chunks)),
                };
                (r.status, r.headers, body)
            }
            Err(e) => {
                match &e {
                    InvokeError::TimedOut(_) => self.metrics.invoked(Outcome::Timeout),
                    // Not a call that reached the function.
                    InvokeError::Unavailable(_)
                    | InvokeError::QueueFull { .. }
                    | InvokeError::Throttled => {}
                    _ => self.metrics.invoked(Outcome::Error),
                }
                let (parts, body) = failure(&e).into_parts();
                (parts.status, parts.headers, body)
            }
        };
        guard.code = status.as_u16();
        tracing::debug!(status = guard.code, "answered");
        let start = guard.start;
        let body = Tracked {
            inner: Deadline::new(body, self.cfg.write_timeout, "writing the response"),
            call_id: call_id.clone(),
            _guard: guard,
        };
        let mut r = Response::new(Body::new(body));
        *r.status_mut() = status;
        *r.headers_mut() = headers;
        with_call_headers(r, &call_id, start)
    }
}

fn with_call_headers(mut r: Response, call_id: &str, start: Instant) -> Response {
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(call_id) {
        h.insert("x-call-id", v);
    }
    let took = start.elapsed();
    // Seconds with six decimals, written as integers (cheaper than a float).
    let seconds = format!("{}.{:06}", took.as_secs(), took.subsec_micros());
    if let Ok(v) = HeaderValue::from_str(&seconds) {
        h.insert("x-duration-seconds", v);
    }
    r
}

/// Held while a request is served: its end updates the counters and leaves
/// the in-flight count (waking a drain waiting for idle).
struct Guard {
    front: Arc<OpenFaas>,
    method: Method,
    code: u16,
    start: Instant,
    _serving: Held,
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.front
            .metrics
            .finished(&self.method, self.code, self.start.elapsed());
    }
}

/// A response body that holds its request's [`Guard`] until it is sent or dropped.
struct Tracked<B> {
    inner: B,
    call_id: String,
    _guard: Guard,
}

impl<B> HttpBody for Tracked<B>
where
    B: HttpBody<Data = Bytes, Error = BoxError> + Unpin,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let r = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Err(e))) = &r {
            tracing::warn!(call_id = %self.call_id, error = %e, "response cut short");
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fatalerror::ErrorType;
    use interop::{ErrorInvokeResponse, FunctionError};

    #[test]
    fn failures_read_as_the_front_renders_them() {
        let t = failure(&InvokeError::exec_timeout(Some(
            std::time::Duration::from_millis(700),
        )));
        assert_eq!(t.status(), StatusCode::GATEWAY_TIMEOUT);
        let q = failure(&InvokeError::QueueFull { waiting: 2 });
        assert_eq!(q.status(), StatusCode::TOO_MANY_REQUESTS);
        let mut doc =
            ErrorInvokeResponse::from_error(FunctionError::new(ErrorType::FunctionUnknown, "m"));
        assert_eq!(
            failure(&InvokeError::Function(doc.clone())).headers()[header::CONTENT_TYPE],
            "text/plain; charset=utf-8"
        );
        doc.payload = Some(b"{\"errorMessage\":\"x\"}".to_vec());
        let f = failure(&InvokeError::Function(doc));
        assert_eq!(f.headers()[header::CONTENT_TYPE], "application/json");
        assert_eq!(f.headers()["x-amz-function-error"], "Unhandled");
        assert_eq!(
            failure(&InvokeError::Down("gone".into())).status(),
            StatusCode::BAD_GATEWAY
        );
    }
}
