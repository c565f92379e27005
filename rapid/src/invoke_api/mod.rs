//! The Invoke API (SPEC §4): `POST /2015-03-31/functions/{name}/invocations`.
//!
//! Validates the request, queues it for the engine (bounded: 429 past the
//! bound), and turns the outcome into the HTTP answer. Every failure of the
//! function or the sandbox is `200` + `X-Amz-Function-Error: Unhandled` + a JSON
//! body.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use base64::Engine as _;
use bytes::{Bytes, BytesMut};
use fatalerror::ErrorType;
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use interop::{FunctionError, RequestId, MAX_PAYLOAD};
use runtime_api::{InvokeOutcome, ResponseBody, ResponseBuilderExt};
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;

mod body;

pub use body::{EventStream, InvokeBody, StreamFailed, TrackedBody};

use crate::gauge::Gauge;

use crate::config::Config;
use crate::engine::InvokeRequest;

/// The two invoke endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// `POST /2015-03-31/functions/{name}/invocations`.
    Invocations,
    /// `POST /2021-11-15/functions/{name}/response-streaming-invocations`.
    ResponseStreaming,
}

/// The function name and endpoint of a path, if it is an invoke path.
pub(crate) fn parse_path(path: &str) -> Option<(&str, Endpoint)> {
    let (name, endpoint) = if let Some(rest) = path.strip_prefix("/2015-03-31/functions/") {
        (rest.strip_suffix("/invocations")?, Endpoint::Invocations)
    } else {
        let rest = path.strip_prefix("/2021-11-15/functions/")?;
        (
            rest.strip_suffix("/response-streaming-invocations")?,
            Endpoint::ResponseStreaming,
        )
    };
    (!name.is_empty() && !name.contains('/')).then_some((name, endpoint))
}

/// The Invoke API front.
#[derive(Clone)]
pub struct InvokeApi {
    admissions: crate::engine::Admissions,
    inflight: Arc<Gauge>,
    cfg: Arc<Config>,
    queue: mpsc::Sender<InvokeRequest>,
    shutting_down: Arc<AtomicBool>,
}

type Answer = Response<InvokeBody>;

pub(crate) fn json(
    status: StatusCode,
    error_type: ErrorType,
    message: impl Into<String>,
) -> Answer {
    let body = FunctionError::new(error_type, message).to_json();
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body_or_500(InvokeBody::Full(Some(body.into())))
}

fn header_str<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// Decode `X-Amz-Client-Context`: base64 of a JSON object, passed on as compact JSON.
pub fn decode_client_context(raw: &str) -> Result<String, String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(raw.trim())
        .map_err(|e| format!("Client context must be a valid Base64-encoded JSON object: {e}"))?;
    let value: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| format!("Client context must be a valid Base64-encoded JSON object: {e}"))?;
    if !value.is_object() {
        return Err(
            "Client context must be a valid Base64-encoded JSON object: not an object".into(),
        );
    }
    serde_json::to_string(&value).map_err(|e| e.to_string())
}

/// `X-Amz-Invocation-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InvocationType {
    /// Wait for the answer (the default).
    RequestResponse,
    /// 202 at once; the invoke runs anyway.
    Event,
    /// 204; nothing runs.
    DryRun,
}

impl InvocationType {
    /// The header's value (absent = RequestResponse); the error names it.
    pub(crate) fn parse(v: Option<&str>) -> Result<Self, String> {
        match v {
            None | Some("RequestResponse") => Ok(InvocationType::RequestResponse),
            Some("Event") => Ok(InvocationType::Event),
            Some("DryRun") => Ok(InvocationType::DryRun),
            Some(other) => Err(format!(
                "Invalid X-Amz-Invocation-Type '{other}': use RequestResponse, Event or DryRun"
            )),
        }
    }
}

impl InvokeApi {
    /// A front that queues invokes on `queue`.
    pub fn new(
        cfg: Arc<Config>,
        queue: mpsc::Sender<InvokeRequest>,
        admissions: crate::engine::Admissions,
        shutting_down: Arc<AtomicBool>,
    ) -> Self {
        InvokeApi {
            admissions,
            inflight: Arc::default(),
            cfg,
            queue,
            shutting_down,
        }
    }

    /// Answers still being written.
    pub fn inflight(&self) -> Arc<Gauge> {
        self.inflight.clone()
    }

    /// Answer one request.
    pub async fn handle(self, req: Request<Incoming>) -> Response<TrackedBody> {
        let inflight = self.inflight.clone();
        self.answer(req)
            .await
            .map(|b| TrackedBody::new(b, &inflight))
    }

    async fn answer(self, req: Request<Incoming>) -> Answer {
        let path = req.uri().path();
        let Some((name, endpoint)) = parse_path(path) else {
            return json(
                StatusCode::NOT_FOUND,
                ErrorType::ResourceNotFoundException,
                format!("No route for {} {path}", req.method()),
            );
        };
        if req.method() != Method::POST {
            return json(
                StatusCode::METHOD_NOT_ALLOWED,
                ErrorType::MethodNotAllowed,
                format!("Method {} is not allowed; invoke with POST", req.method()),
            );
        }
        if name != "function" && name != self.cfg.function_name {
            return json(
                StatusCode::NOT_FOUND,
                ErrorType::ResourceNotFoundException,
                format!(
                    "Function not found: {}",
                    self.cfg.function_arn.replace(&self.cfg.function_name, name)
                ),
            );
        }
        let id = RequestId::generate();
        let span = tracing::debug_span!("invoke", request_id = %id);
        let version = self.cfg.function_version.clone();
        let mut answer = self
            .invoke(id.clone(), endpoint, req)
            .instrument(span)
            .await;
        // Every answer to an invoke carries its ids, errors included.
        let h = answer.headers_mut();
        if !h.contains_key("x-amzn-requestid") {
            if let Ok(v) = HeaderValue::from_str(id.as_str()) {
                h.insert("x-amzn-requestid", v);
            }
        }
        if !h.contains_key("x-amz-executed-version") {
            if let Ok(v) = HeaderValue::from_str(&version) {
                h.insert("x-amz-executed-version", v);
            }
        }
        answer
    }

    async fn invoke(self, id: RequestId, endpoint: Endpoint, req: Request<Incoming>) -> Answer {
        let (parts, body) = req.into_parts();
        let h = &parts.headers;
        if self.shutting_down.load(Ordering::Relaxed) {
            return unavailable(&id, &self.cfg);
        }
        let kind = match InvocationType::parse(header_str(h, "x-amz-invocation-type")) {
            Ok(k) => k,
            Err(msg) => {
                return json(
                    StatusCode::BAD_REQUEST,
                    ErrorType::InvalidRequestContentException,
                    msg,
                )
            }
        };
        let client_context = match header_str(h, "x-amz-client-context") {
            None => None,
            Some(raw) => match decode_client_context(raw) {
                Ok(c) => Some(c),
                Err(msg) => {
                    return json(
                        StatusCode::BAD_REQUEST,
                        ErrorType::InvalidRequestContentException,
                        msg,
                    )
                }
            },
        };
        if h.get("x-amz-client-context").is_some() && client_context.is_none() {
            return json(
                StatusCode::BAD_REQUEST,
                ErrorType::InvalidRequestContentException,
                "Client context must be a valid Base64-encoded JSON object: not valid text",
            );
        }
        let payload = match read_payload(h, body).await {
            Ok(p) => p,
            Err(answer) => return answer,
        };
        if let InvocationType::DryRun = kind {
            return with_ids(
                Response::builder().status(StatusCode::NO_CONTENT),
                &id,
                &self.cfg,
            )
            .body_or_500(InvokeBody::default());
        }
        let want_tail =
            header_str(h, "x-amz-log-type").is_some_and(|v| v.eq_ignore_ascii_case("Tail"));
        let (reply_tx, reply_rx) = oneshot::channel();
        let (tail_tx, tail_rx) = if want_tail {
            let (t, r) = oneshot::channel();
            (Some(t), Some(r))
        } else {
            (None, None)
        };
        let request = InvokeRequest {
            id: id.clone(),
            payload,
            content_type: header_str(h, "content-type")
                .unwrap_or("application/json")
                .to_owned(),
            trace_id: header_str(h, "x-amzn-trace-id").map(str::to_owned),
            client_context,
            cognito_identity: None,
            reply: reply_tx,
            tail: tail_tx,
            result: None,
            admission: None,
            timeout: None,
        };
        let Some(admission) = self.admissions.try_admit(self.cfg.max_queue + 1) else {
            return queue_full(self.cfg.max_queue);
        };
        let request = InvokeRequest {
            admission: Some(admission),
            ..request
        };
        match self.queue.try_send(request) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => return queue_full(self.cfg.max_queue),
            Err(mpsc::error::TrySendError::Closed(_)) => return unavailable(&id, &self.cfg),
        }
        if let InvocationType::Event = kind {
            return with_ids(
                Response::builder().status(StatusCode::ACCEPTED),
                &id,
                &self.cfg,
            )
            .body_or_500(InvokeBody::default());
        }
        let outcome = match reply_rx.await {
            Ok(o) => o,
            Err(_) => return unavailable(&id, &self.cfg),
        };
        let mut b = with_ids(Response::builder().status(StatusCode::OK), &id, &self.cfg);
        let streaming = matches!(
            &outcome,
            InvokeOutcome::Response(r) if matches!(r.body, ResponseBody::Streaming(_))
        );
        if let (Some(rx), false) = (tail_rx, streaming) {
            if let Ok(tail) = rx.await {
                let encoded = base64::engine::general_purpose::STANDARD.encode(tail);
                if let Ok(v) = HeaderValue::from_str(&encoded) {
                    b = b.header("x-amz-log-result", v);
                }
            }
        }
        match endpoint {
            Endpoint::Invocations => render(b, outcome),
            Endpoint::ResponseStreaming => render_event_stream(b, outcome),
        }
    }
}

/// The classic answer: the body as the runtime produced it.
pub(crate) fn render(b: http::response::Builder, outcome: InvokeOutcome) -> Answer {
    match outcome {
        InvokeOutcome::Response(r) => {
            let ct = r.content_type.as_deref().unwrap_or("application/json");
            let ct =
                HeaderValue::from_str(ct).unwrap_or(HeaderValue::from_static("application/json"));
            let body = match r.body {
                ResponseBody::Buffered(bytes) => InvokeBody::Full(Some(bytes)),
                ResponseBody::Streaming(rx) => InvokeBody::Stream(rx),
            };
            b.header(header::CONTENT_TYPE, ct).body_or_500(body)
        }
        InvokeOutcome::Error(e) => {
            tracing::debug!(error_type = %e.function_error.error_type, "invoke answered with an error");
            b.header("x-amz-function-error", "Unhandled")
                .header(header::CONTENT_TYPE, "application/json")
                .body_or_500(InvokeBody::Full(Some(e.body().into())))
        }
    }
}

/// The response-streaming answer: AWS event-stream messages.
fn render_event_stream(b: http::response::Builder, outcome: InvokeOutcome) -> Answer {
    let b = b.header(header::CONTENT_TYPE, "application/vnd.amazon.eventstream");
    match outcome {
        InvokeOutcome::Response(r) => {
            let ct = r
                .content_type
                .as_deref()
                .unwrap_or("application/octet-stream");
            let b = match HeaderValue::from_str(ct) {
                Ok(v) => b.header("x-amzn-response-content-type", v),
                Err(_) => b,
            };
            let es = match r.body {
                ResponseBody::Buffered(bytes) => EventStream::buffered(bytes),
                ResponseBody::Streaming(rx) => EventStream::Live(rx),
            };
            b.body_or_500(InvokeBody::EventStream(es))
        }
        InvokeOutcome::Error(e) => {
            let fe = &e.function_error;
            tracing::debug!(error_type = %fe.error_type, "streaming invoke answered with an error");
            let details = if fe.error_message.is_empty() {
                String::from_utf8_lossy(&e.body()).into_owned()
            } else {
                fe.error_message.clone()
            };
            b.header("x-amz-function-error", "Unhandled")
                .body_or_500(InvokeBody::EventStream(EventStream::failed(
                    fe.error_type.as_str(),
                    &details,
                )))
        }
    }
}

/// 429: the invoke queue is at its bound.
pub(crate) fn queue_full(max_queue: usize) -> Answer {
    tracing::info!("invoke rejected: queue full");
    json(
        StatusCode::TOO_MANY_REQUESTS,
        ErrorType::TooManyRequestsException,
        format!("Rate exceeded: {max_queue} invokes are already waiting (--max-queue)"),
    )
}

pub(crate) fn with_ids(
    b: http::response::Builder,
    id: &RequestId,
    cfg: &Config,
) -> http::response::Builder {
    b.header("x-amzn-requestid", id.as_str())
        .header("x-amz-executed-version", cfg.function_version.as_str())
}

fn unavailable(id: &RequestId, cfg: &Config) -> Answer {
    let body = FunctionError::new(
        ErrorType::ServiceException,
        "rapid is shutting down; the invoke was not run",
    )
    .to_json();
    with_ids(
        Response::builder().status(StatusCode::SERVICE_UNAVAILABLE),
        id,
        cfg,
    )
    .header(header::CONTENT_TYPE, "application/json")
    .body_or_500(InvokeBody::Full(Some(body.into())))
}

fn too_large(size: Option<u64>) -> Answer {
    let msg = match size {
        Some(n) => format!("{n} byte payload is too large for the RequestResponse invocation type ({MAX_PAYLOAD} byte maximum)"),
        None => format!("Request payload is too large ({MAX_PAYLOAD} byte maximum)"),
    };
    json(
        StatusCode::PAYLOAD_TOO_LARGE,
        ErrorType::RequestEntityTooLargeException,
        msg,
    )
}

/// Read the event, refusing more than `MAX_PAYLOAD` bytes before the runtime sees any.
async fn read_payload(h: &HeaderMap, mut body: Incoming) -> Result<Bytes, Answer> {
    let declared: Option<u64> = header_str(h, "content-length").and_then(|v| v.trim().parse().ok());
    if let Some(n) = declared {
        if n > MAX_PAYLOAD as u64 {
            return Err(too_large(Some(n)));
        }
    }
    let mut buf = BytesMut::with_capacity(declared.unwrap_or(0) as usize);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            json(
                StatusCode::BAD_REQUEST,
                ErrorType::InvalidRequestContentException,
                format!("Could not read the request body: {e}"),
            )
        })?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > MAX_PAYLOAD {
                return Err(too_large(None));
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(
            parse_path("/2015-03-31/functions/function/invocations"),
            Some(("function", Endpoint::Invocations))
        );
        assert_eq!(
            parse_path("/2021-11-15/functions/f/response-streaming-invocations"),
            Some(("f", Endpoint::ResponseStreaming))
        );
        assert_eq!(parse_path("/2015-03-31/functions//invocations"), None);
        assert_eq!(parse_path("/2015-03-31/functions/a/b/invocations"), None);
        assert_eq!(parse_path("/2021-11-15/functions/f/invocations"), None);
        assert_eq!(parse_path("/"), None);
    }

    #[test]
    fn client_context_decoding() {
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        assert_eq!(
            decode_client_context(&b64("{\"custom\": {\"a\": 1}}")),
            Ok("{\"custom\":{\"a\":1}}".to_owned())
        );
        assert!(decode_client_context("%%%").is_err());
        assert!(decode_client_context(&b64("not json")).is_err());
        assert!(decode_client_context(&b64("[1,2]")).is_err());
    }
}
