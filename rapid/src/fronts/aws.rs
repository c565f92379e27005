//! How the AWS-style fronts (the Invoke API and the control API) answer: a
//! function's failure is `200` + `X-Amz-Function-Error: Unhandled` + its
//! Lambda error document; anything the sandbox refused is a service error
//! with its status and a JSON body.

use bytes::Bytes;
use fatalerror::ErrorType;
use http::{header, HeaderName, HeaderValue, Response, StatusCode};
use http_body_util::BodyExt;
use interop::{ErrorInvokeResponse, FunctionError};
use runtime_api::ResponseBuilderExt;

use crate::fronts::invoke::body::InvokeBody;
use crate::sandbox::{Body, InvokeError, ReplyBody, Unavailable};

/// An AWS-style answer.
pub type Answer = Response<InvokeBody>;

/// `X-Amzn-RequestId`.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-amzn-requestid");
/// `X-Amz-Executed-Version`.
pub const EXECUTED_VERSION: HeaderName = HeaderName::from_static("x-amz-executed-version");
/// `X-Amz-Function-Error`.
pub const FUNCTION_ERROR: HeaderName = HeaderName::from_static("x-amz-function-error");
/// `X-Amz-Log-Result`.
const LOG_RESULT: HeaderName = HeaderName::from_static("x-amz-log-result");
const UNHANDLED: HeaderValue = HeaderValue::from_static("Unhandled");
const JSON: HeaderValue = HeaderValue::from_static("application/json");

/// A JSON error body `{"errorMessage","errorType"}` with `status`.
pub fn error_json(status: StatusCode, error_type: ErrorType, message: impl Into<String>) -> Answer {
    let body = FunctionError::new(error_type, message).to_json();
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body_or_500(InvokeBody::Full(Some(body.into())))
}

/// The status of a refusal; `None` for the function's own failures, which
/// are answered `200` + `X-Amz-Function-Error`.
pub fn service_status(e: &InvokeError) -> Option<StatusCode> {
    match e {
        InvokeError::QueueFull { .. } => Some(StatusCode::TOO_MANY_REQUESTS),
        InvokeError::TooLarge { .. } => Some(StatusCode::PAYLOAD_TOO_LARGE),
        InvokeError::Unavailable(_) => Some(StatusCode::SERVICE_UNAVAILABLE),
        InvokeError::BadRequest(_) => Some(StatusCode::BAD_REQUEST),
        InvokeError::RequestTimeout(_) => Some(StatusCode::REQUEST_TIMEOUT),
        InvokeError::TimedOut(_) | InvokeError::Function(_) | InvokeError::Down(_) => None,
    }
}

/// A refusal as a service error.
pub fn refusal(status: StatusCode, e: &InvokeError) -> Answer {
    if let InvokeError::QueueFull { .. } = e {
        tracing::info!("invoke rejected: queue full");
    }
    error_json(status, e.error_type(), e.to_string())
}

/// A function's failure: its error document, marked `Unhandled`.
pub fn function_failure(b: http::response::Builder, doc: &ErrorInvokeResponse) -> Answer {
    tracing::debug!(error_type = %doc.function_error.error_type, "invoke answered with an error");
    b.header(FUNCTION_ERROR, UNHANDLED)
        .header(header::CONTENT_TYPE, JSON)
        .body_or_500(InvokeBody::Full(Some(doc.body().into())))
}

/// The classic answer: the body as the function produced it, or its failure.
/// A process backend's non-2xx answer is the function failing
/// (`Function.Unknown` quoting the status and the start of the answer).
pub async fn classic(
    tail: Option<&Bytes>,
    outcome: Result<crate::sandbox::Response, InvokeError>,
) -> Answer {
    let outcome = match outcome {
        Ok(r) if !r.status.is_success() => Err(answered(r).await),
        other => other,
    };
    match outcome {
        Ok(r) => {
            // The function's headers as they are: no second map.
            let mut resp = Response::new(InvokeBody::raw(r.body));
            *resp.headers_mut() = r.headers;
            let h = resp.headers_mut();
            h.entry(header::CONTENT_TYPE).or_insert(JSON);
            if let Some(v) = tail.and_then(log_result) {
                h.insert(LOG_RESULT, v);
            }
            resp
        }
        Err(e) => match service_status(&e) {
            Some(status) => refusal(status, &e),
            None => function_failure(ok_with_tail(tail), &e.to_lambda()),
        },
    }
}

/// A `200` builder carrying the log tail, if there is one.
pub fn ok_with_tail(tail: Option<&Bytes>) -> http::response::Builder {
    let b = Response::builder().status(StatusCode::OK);
    match tail.and_then(log_result) {
        Some(v) => b.header(LOG_RESULT, v),
        None => b,
    }
}

/// Set `name` unless the answer has it (the ids every invoke answer carries).
pub fn ensure_header(r: &mut Answer, name: HeaderName, value: &str) {
    if let http::header::Entry::Vacant(slot) = r.headers_mut().entry(name) {
        if let Ok(v) = HeaderValue::from_str(value) {
            slot.insert(v);
        }
    }
}

/// Bytes of a failed answer's body quoted in the error message.
const QUOTED: usize = 1024;

/// A function's non-2xx HTTP answer as its failure.
pub async fn answered(r: crate::sandbox::Response) -> InvokeError {
    let text = match r.body {
        ReplyBody::Full(b) => quote_bytes(&b),
        ReplyBody::Http(body) => quote(body).await,
        ReplyBody::Chunks(_) => String::new(),
    };
    InvokeError::function(
        ErrorType::FunctionUnknown,
        format!("the function answered {}: {text}", r.status),
    )
}

fn quote_bytes(b: &[u8]) -> String {
    String::from_utf8_lossy(&b[..b.len().min(QUOTED)])
        .trim_end()
        .to_owned()
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
    quote_bytes(&buf)
}

/// 503 with the AWS-style body: rapid is shutting down.
pub fn shutting_down() -> Answer {
    refusal(
        StatusCode::SERVICE_UNAVAILABLE,
        &InvokeError::Unavailable(Unavailable::ShuttingDown),
    )
}

/// Base64 of the log tail, as `X-Amz-Log-Result` carries it.
pub fn log_result(tail: &Bytes) -> Option<HeaderValue> {
    use base64::Engine as _;
    HeaderValue::from_str(&base64::engine::general_purpose::STANDARD.encode(tail)).ok()
}
