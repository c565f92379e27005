//! How the AWS-style fronts (the Invoke API and the control API) answer: a
//! function's failure is `200` + `X-Amz-Function-Error: Unhandled` + its
//! Lambda error document; anything the sandbox refused is a service error
//! with its status and a JSON body.

use bytes::Bytes;
use fatalerror::ErrorType;
use http::{header, HeaderName, HeaderValue, Response, StatusCode};
use http_body_util::BodyExt;
use interop::ErrorInvokeResponse;
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

/// `X-Amzn-ErrorType`: where every AWS SDK reads the error's code first.
pub const ERROR_TYPE: HeaderName = HeaderName::from_static("x-amzn-errortype");
/// The throttle reason rapid's full queue is (`TooManyRequestsException.Reason`).
pub const THROTTLE_REASON: &str = "ConcurrentInvocationLimitExceeded";
/// Seconds a throttled caller is told to wait (`Retry-After`).
pub const RETRY_AFTER_SECONDS: &str = "1";

/// An AWS error answer with `status`: header `X-Amzn-ErrorType: <code>`, and a
/// JSON body with AWS's members — `Type` (`User`, or `Service` for a 5xx),
/// the message as the API model spells it (`Message` for
/// `ResourceNotFoundException` and `ServiceException`, `message` otherwise),
/// `Reason` on a throttle — plus rapid's own `errorType`/`errorMessage`.
pub fn error_json(status: StatusCode, error_type: ErrorType, message: impl Into<String>) -> Answer {
    error_json_reason(status, error_type, message, None)
}

/// [`error_json`] with the throttle's `Reason` when it is not a full queue's
/// (`ReservedFunctionConcurrentInvocationLimitExceeded` with `--max-queue 0`).
pub fn error_json_reason(
    status: StatusCode,
    error_type: ErrorType,
    message: impl Into<String>,
    reason: Option<&str>,
) -> Answer {
    let message = message.into();
    let code = error_type.as_str();
    let mut body = serde_json::Map::new();
    let fault = if status.is_server_error() {
        "Service"
    } else {
        "User"
    };
    body.insert("Type".into(), fault.into());
    let message_key = match error_type {
        ErrorType::ResourceNotFoundException | ErrorType::ServiceException => "Message",
        _ => "message",
    };
    body.insert(message_key.into(), message.clone().into());
    let throttled = error_type == ErrorType::TooManyRequestsException;
    if throttled {
        body.insert("Reason".into(), reason.unwrap_or(THROTTLE_REASON).into());
    }
    body.insert("errorType".into(), code.into());
    body.insert("errorMessage".into(), message.into());
    let json = serde_json::Value::Object(body).to_string();
    let mut b = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json");
    if let Ok(v) = HeaderValue::from_str(code) {
        b = b.header(ERROR_TYPE, v);
    }
    if throttled {
        b = b.header(header::RETRY_AFTER, RETRY_AFTER_SECONDS);
    }
    b.body_or_500(InvokeBody::Full(Some(json.into())))
}

/// The status of a refusal; `None` for the function's own failures, which
/// are answered `200` + `X-Amz-Function-Error`.
pub fn service_status(e: &InvokeError) -> Option<StatusCode> {
    match e {
        InvokeError::QueueFull { .. } | InvokeError::Throttled => {
            Some(StatusCode::TOO_MANY_REQUESTS)
        }
        InvokeError::TooLarge { .. } => Some(StatusCode::PAYLOAD_TOO_LARGE),
        InvokeError::Unavailable(_) => Some(StatusCode::SERVICE_UNAVAILABLE),
        InvokeError::BadRequest(_) | InvokeError::TenantRequired => Some(StatusCode::BAD_REQUEST),
        InvokeError::RequestTimeout(_) => Some(StatusCode::REQUEST_TIMEOUT),
        InvokeError::TimedOut(_) | InvokeError::Function(_) | InvokeError::Down(_) => None,
    }
}

/// A refusal as a service error.
pub fn refusal(status: StatusCode, e: &InvokeError) -> Answer {
    match e {
        InvokeError::QueueFull { .. } => tracing::info!("invoke rejected: queue full"),
        InvokeError::Throttled => tracing::info!("invoke throttled: every sandbox is busy"),
        _ => {}
    }
    error_json_reason(status, e.error_type(), e.to_string(), e.reason())
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

/// A failure's error type and message as the function reported them: the
/// `errorType`/`errorMessage` of the body it posted (what the classic
/// endpoint answers), else rapid's sanitised type and message; with no
/// message, the whole body.
pub fn reported_error(doc: &ErrorInvokeResponse) -> (String, String) {
    let fe = &doc.function_error;
    let posted: Option<serde_json::Value> = doc
        .payload
        .as_deref()
        .and_then(|p| serde_json::from_slice(p).ok());
    let field = |k: &str| {
        posted
            .as_ref()
            .and_then(|v| v.get(k))
            .and_then(serde_json::Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let code = field("errorType").unwrap_or_else(|| fe.error_type.as_str().to_owned());
    let message = field("errorMessage")
        .or_else(|| (!fe.error_message.is_empty()).then(|| fe.error_message.clone()))
        .unwrap_or_else(|| String::from_utf8_lossy(&doc.body()).into_owned());
    (code, message)
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

#[cfg(test)]
mod tests {
    use super::*;

    async fn parts(a: Answer) -> (StatusCode, http::HeaderMap, serde_json::Value) {
        let (head, body) = a.into_parts();
        let bytes = body.collect().await.unwrap_or_default().to_bytes();
        let json = serde_json::from_slice(&bytes).unwrap_or_default();
        (head.status, head.headers, json)
    }

    #[tokio::test]
    async fn aws_members_beside_rapids() {
        let (s, h, j) = parts(error_json(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorType::ServiceException,
            "down",
        ))
        .await;
        assert_eq!(s, 503);
        assert_eq!(
            h.get(ERROR_TYPE).map(|v| v.as_bytes()),
            Some(&b"ServiceException"[..])
        );
        assert_eq!(j["Type"], "Service");
        assert_eq!(j["Message"], "down");
        assert_eq!(j["errorType"], "ServiceException");
        assert_eq!(j["errorMessage"], "down");
        assert!(j.get("message").is_none());

        let (_, h, j) = parts(error_json(
            StatusCode::TOO_MANY_REQUESTS,
            ErrorType::TooManyRequestsException,
            "Rate exceeded",
        ))
        .await;
        assert_eq!(j["Type"], "User");
        assert_eq!(j["message"], "Rate exceeded");
        assert_eq!(j["Reason"], THROTTLE_REASON);
        assert_eq!(
            h.get(header::RETRY_AFTER).map(|v| v.as_bytes()),
            Some(&b"1"[..])
        );

        let (_, _, j) = parts(error_json(
            StatusCode::NOT_FOUND,
            ErrorType::ResourceNotFoundException,
            "Function not found: x",
        ))
        .await;
        assert_eq!(j["Message"], "Function not found: x");
    }
}
