//! The Invoke API over a watchdog backend: `POST
//! /2015-03-31/functions/{name}/invocations` on `--runtime-interface-emulator-address`
//! runs the request through the watchdog front (same limits, call ids,
//! metrics, one-shot) as `POST /` with the event as the body, and answers the
//! way Lambda does: 200 with the function's answer, or 200 +
//! `X-Amz-Function-Error: Unhandled` + a JSON error body when it failed.

use std::sync::Arc;

use bytes::Bytes;
use fatalerror::ErrorType;
use http::{HeaderValue, Method, Request, Response, StatusCode, Uri};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use interop::MAX_PAYLOAD;

use super::backend::{boxed, full, read_body, Body};
use super::front::Front;
use crate::invoke_api::{parse_path, Endpoint, InvocationType as Invocation};

/// Bytes of a failed answer's body quoted in the error message.
const QUOTED: usize = 1024;

fn json(status: StatusCode, error_type: ErrorType, message: impl Into<String>) -> Response<Body> {
    boxed(crate::invoke_api::json(status, error_type, message))
}

fn function_error(error_type: ErrorType, message: String) -> Response<Body> {
    let mut r = json(StatusCode::OK, error_type, message);
    r.headers_mut().insert(
        "x-amz-function-error",
        HeaderValue::from_static("Unhandled"),
    );
    r
}

/// The start of a failed answer's body (at most [`QUOTED`] bytes; the rest
/// is not read).
async fn quote(mut body: Body) -> String {
    let mut buf = Vec::new();
    while buf.len() < QUOTED {
        match body.frame().await {
            Some(Ok(f)) => {
                if let Ok(d) = f.into_data() {
                    buf.extend_from_slice(&d);
                }
            }
            Some(Err(e)) => {
                buf.extend_from_slice(format!(" (the answer failed: {e})").as_bytes());
                break;
            }
            None => break,
        }
    }
    buf.truncate(QUOTED);
    String::from_utf8_lossy(&buf).trim_end().to_owned()
}

/// Answer one Invoke API request through `front`.
pub async fn handle(front: Arc<Front>, req: Request<Incoming>) -> Response<Body> {
    if !matches!(
        parse_path(req.uri().path()),
        Some((_, Endpoint::Invocations))
    ) {
        return json(
            StatusCode::NOT_FOUND,
            ErrorType::ResourceNotFoundException,
            format!("No route for {} {}", req.method(), req.uri().path()),
        );
    }
    if req.method() != Method::POST {
        return json(
            StatusCode::METHOD_NOT_ALLOWED,
            ErrorType::MethodNotAllowed,
            format!("Method {} is not allowed; invoke with POST", req.method()),
        );
    }
    let kind = req
        .headers()
        .get("x-amz-invocation-type")
        .map(|v| v.to_str().unwrap_or("?").to_owned());
    let kind = match Invocation::parse(kind.as_deref()) {
        Ok(k) => k,
        Err(msg) => {
            return json(
                StatusCode::BAD_REQUEST,
                ErrorType::InvalidRequestContentException,
                msg,
            )
        }
    };
    let req = front.with_read_deadline(req);
    let (mut parts, body) = req.into_parts();
    parts.uri = Uri::from_static("/");
    let req = Request::from_parts(parts, body);
    match kind {
        Invocation::RequestResponse => {}
        Invocation::DryRun => {
            let mut r = Response::new(full(Bytes::new()));
            *r.status_mut() = StatusCode::NO_CONTENT;
            return r;
        }
        Invocation::Event => {
            // The event is read before the 202, as Lambda does: a client told
            // "accepted" has handed over everything.
            let (parts, body) = req.into_parts();
            let event = match read_body(body, MAX_PAYLOAD).await {
                Ok(b) => b,
                Err(a) => {
                    let status = a.response.status();
                    let (_, body) = a.response.into_parts();
                    let text = quote(body).await;
                    let t = if status == StatusCode::PAYLOAD_TOO_LARGE {
                        ErrorType::RequestEntityTooLargeException
                    } else {
                        ErrorType::InvalidRequestContentException
                    };
                    return json(status, t, text);
                }
            };
            let req = Request::from_parts(parts, full(event));
            tokio::spawn(async move {
                let r = front.invoke(req).await;
                // Read the answer to its end so the call counts as finished.
                let _ = r.into_body().collect().await;
            });
            let mut r = Response::new(full(Bytes::new()));
            *r.status_mut() = StatusCode::ACCEPTED;
            return r;
        }
    }
    let answer = front.invoke(req).await;
    let status = answer.status();
    let call_id = answer.headers().get("x-call-id").cloned();
    let mut r = if status.is_success() {
        let (mut parts, body) = answer.into_parts();
        parts.status = StatusCode::OK;
        Response::from_parts(parts, body)
    } else {
        let (_, body) = answer.into_parts();
        let text = quote(body).await;
        match status {
            StatusCode::TOO_MANY_REQUESTS => {
                json(status, ErrorType::TooManyRequestsException, text)
            }
            StatusCode::PAYLOAD_TOO_LARGE => {
                json(status, ErrorType::RequestEntityTooLargeException, text)
            }
            StatusCode::GATEWAY_TIMEOUT => function_error(ErrorType::SandboxTimedout, text),
            StatusCode::SERVICE_UNAVAILABLE => json(status, ErrorType::ServiceException, text),
            _ => function_error(
                ErrorType::FunctionUnknown,
                format!("the function answered {status}: {text}"),
            ),
        }
    };
    if let Some(id) = call_id {
        r.headers_mut().insert("x-amzn-requestid", id);
    }
    r
}
