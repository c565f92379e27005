//! The Runtime API calls: `/next`, `/response`, `/error`, `/init/error`.

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::response::Response;
use base64::Engine as _;
use bytes::{Bytes, BytesMut};
use fatalerror::ErrorType;
use http::{header, HeaderMap, HeaderValue, StatusCode};
use http_body_util::BodyExt;
use interop::{ErrorInvokeResponse, FunctionError, ResponseMode, MAX_PAYLOAD};
use tokio::sync::mpsc;

use crate::api::RuntimeApi;
use crate::body::{json_response, ResponseBuilderExt};
use crate::error::ApiError;
use crate::headers as h;
use crate::outcome::{
    InvokeOutcome, InvokeResponse, ResponseBody, StreamItem, STREAM_BUFFER_CHUNKS,
};
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

fn accepted() -> Response {
    json_response(StatusCode::ACCEPTED, &b"{\"status\":\"OK\"}"[..])
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    header_str(headers, "content-length").and_then(|v| v.trim().parse().ok())
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
    // These were validated as header values when the invoke was accepted.
    for (name, value) in [
        (h::TRACE_ID, &inv.trace_id),
        (h::CLIENT_CONTEXT, &inv.client_context),
        (h::COGNITO_IDENTITY, &inv.cognito_identity),
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
    let content_type = header_str(req.headers(), "content-type").map(str::to_owned);
    let span = tracing::debug_span!("response", request_id = %ticket.id, ?mode);
    let _enter = span.enter();
    match mode {
        ResponseMode::Buffered => buffered_response(&api, ticket, content_type, req).await,
        ResponseMode::Streaming => streaming_response(&api, ticket, content_type, req).await,
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

fn truncated_error(detail: &str) -> FunctionError {
    FunctionError::new(
        ErrorType::RuntimeTruncatedResponse,
        format!("The runtime's response body was cut off: {detail}"),
    )
}

async fn buffered_response(
    api: &RuntimeApi,
    mut ticket: crate::rendezvous::ResponseTicket,
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
                .end_response(ticket.generation, produced, ResponseMode::Buffered, None);
            Ok(accepted())
        }
        Err(ReadError::TooLarge(size)) => {
            let err = too_large_error(size);
            tracing::info!(size, "response rejected: larger than the payload limit");
            send(InvokeOutcome::failure(err.clone()));
            api.rendezvous
                .end_response(ticket.generation, 0, ResponseMode::Buffered, Some(err));
            Err(ApiError::too_large())
        }
        Err(ReadError::Broken(detail)) => {
            let err = truncated_error(&detail);
            send(InvokeOutcome::failure(err.clone()));
            api.rendezvous
                .end_response(ticket.generation, 0, ResponseMode::Buffered, Some(err));
            Err(ApiError::bad_request(format!(
                "Could not read the response body: {detail}"
            )))
        }
    }
}

/// Lambda's shaping of streamed responses: the first 6 MiB unthrottled, then
/// at most 2 MiB/s.
struct Shaper {
    started: Option<tokio::time::Instant>,
}

const SHAPING_FREE_BYTES: u64 = 6 * 1024 * 1024;
const SHAPING_BYTES_PER_SEC: f64 = 2.0 * 1024.0 * 1024.0;

impl Shaper {
    fn new() -> Self {
        Shaper { started: None }
    }

    /// Wait until `produced` bytes are within the allowed rate.
    async fn pace(&mut self, produced: u64) {
        if produced <= SHAPING_FREE_BYTES {
            return;
        }
        let started = *self.started.get_or_insert_with(tokio::time::Instant::now);
        let due = std::time::Duration::from_secs_f64(
            (produced - SHAPING_FREE_BYTES) as f64 / SHAPING_BYTES_PER_SEC,
        );
        tokio::time::sleep_until(started + due).await;
    }
}

/// A streamed piece smaller than this re-arms TCP_QUICKACK before the next read.
const QUICKACK_BELOW: usize = 16 * 1024;

/// Some runtimes (the Rust `lambda_runtime` crate, 1.x) report a mid-stream
/// error by sending the trailer lines as a body chunk:
/// `Lambda-Runtime-Function-Error-Type: T\r\nLambda-Runtime-Function-Error-Body: B64\r\n`.
/// Such a chunk is the error, not response data.
fn in_band_trailer(chunk: &[u8]) -> Option<FunctionError> {
    const PREFIX: &[u8] = b"Lambda-Runtime-Function-Error-Type: ";
    if chunk.len() > 64 * 1024 || !chunk.starts_with(PREFIX) || !chunk.ends_with(b"\r\n") {
        return None;
    }
    let text = std::str::from_utf8(chunk).ok()?;
    let mut headers = HeaderMap::new();
    for line in text.split("\r\n").filter(|l| !l.is_empty()) {
        let (name, value) = line.split_once(": ")?;
        let name = http::HeaderName::from_bytes(name.as_bytes()).ok()?;
        headers.insert(name, HeaderValue::from_str(value).ok()?);
    }
    trailer_error(&headers)
}

/// Decode the error a streaming runtime reports in its trailers.
fn trailer_error(trailers: &HeaderMap) -> Option<FunctionError> {
    let raw_type = header_str(trailers, h::ERROR_TYPE)?;
    let error_type = ErrorType::from_runtime(raw_type);
    let message = header_str(trailers, h::ERROR_BODY)
        .and_then(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        })
        .map(
            |bytes| match serde_json::from_slice::<serde_json::Value>(&bytes) {
                Ok(v) => v
                    .get("errorMessage")
                    .and_then(|m| m.as_str())
                    .map(str::to_owned)
                    .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned()),
                Err(_) => String::from_utf8_lossy(&bytes).into_owned(),
            },
        )
        .unwrap_or_default();
    Some(FunctionError::new(error_type, message))
}

async fn streaming_response(
    api: &RuntimeApi,
    mut ticket: crate::rendezvous::ResponseTicket,
    content_type: Option<String>,
    req: Request,
) -> Reply {
    let (tx, rx) = mpsc::channel(STREAM_BUFFER_CHUNKS);
    if let Some(reply) = ticket.reply.take() {
        let _ = reply.send(InvokeOutcome::Response(InvokeResponse {
            content_type,
            body: ResponseBody::Streaming(rx),
        }));
    }
    let fd = req.extensions().get::<crate::server::ConnFd>().copied();
    let cap = api.config.stream_cap_bytes;
    let mut shaper = api.config.stream_shaping.then(Shaper::new);
    let mut body = req.into_body();
    let mut produced: u64 = 0;
    let mut client_gone = false;
    let mut failure: Option<FunctionError> = None;
    let mut over_cap = false;
    let mut error_sent = false;
    // Forward until the body ends; keep reading after the invoker left or the cap
    // was hit so the runtime is never stuck mid-upload.
    // Small pieces (the first ones, tokens of a slow stream) are where a peer's
    // Nagle meets our delayed ACK; a bulk transfer of full frames needs no help.
    let mut last_len = 0usize;
    loop {
        if let (Some(fd), true) = (fd, last_len < QUICKACK_BELOW) {
            fd.quickack();
        }
        let item = match body.frame().await {
            None => break,
            Some(Err(e)) => {
                failure = Some(truncated_error(&e.to_string()));
                break;
            }
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => {
                    if let Some(err) = in_band_trailer(&data) {
                        // lambda_runtime writes its mid-stream error "trailers" as a body chunk.
                        if failure.is_none() {
                            failure = Some(err.clone());
                            error_sent = true;
                            if !client_gone && tx.send(StreamItem::Error(err)).await.is_err() {
                                client_gone = true;
                            }
                        }
                        continue;
                    }
                    last_len = data.len();
                    produced += data.len() as u64;
                    if over_cap || failure.is_some() {
                        continue;
                    }
                    if produced > cap {
                        over_cap = true;
                        let err = FunctionError::new(
                            ErrorType::FunctionResponseSizeTooLarge,
                            format!("Response payload size exceeded maximum allowed payload size ({cap} bytes)."),
                        );
                        failure = Some(err.clone());
                        error_sent = true;
                        StreamItem::Error(err)
                    } else {
                        StreamItem::Chunk(data)
                    }
                }
                Err(frame) => match frame.into_trailers() {
                    Ok(trailers) => match trailer_error(&trailers) {
                        Some(err) if failure.is_none() => {
                            failure = Some(err.clone());
                            error_sent = true;
                            StreamItem::Error(err)
                        }
                        _ => continue,
                    },
                    Err(_) => continue,
                },
            },
        };
        if let (Some(s), StreamItem::Chunk(_)) = (shaper.as_mut(), &item) {
            s.pace(produced).await;
        }
        if !client_gone && tx.send(item).await.is_err() {
            client_gone = true;
            tracing::debug!("invoker went away; draining the rest of the stream");
        }
    }
    if !client_gone {
        let last = match &failure {
            None => Some(StreamItem::End),
            Some(err) if !error_sent => Some(StreamItem::Error(err.clone())),
            Some(_) => None,
        };
        if let Some(last) = last {
            let _ = tx.send(last).await;
        }
    }
    api.rendezvous.end_response(
        ticket.generation,
        produced,
        ResponseMode::Streaming,
        failure.clone(),
    );
    if over_cap {
        return Err(ApiError::too_large());
    }
    Ok(accepted())
}

/// Error type and message of an `/error` or `/init/error` call.
fn reported_error(headers: &HeaderMap, body: &[u8]) -> FunctionError {
    let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let field = |k: &str| {
        parsed
            .as_ref()
            .and_then(|v| v.get(k))
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    };
    let error_type = match header_str(headers, h::ERROR_TYPE) {
        Some(t) => ErrorType::from_runtime(t),
        None => field("errorType")
            .map(|t| ErrorType::from_runtime(&t))
            .unwrap_or(ErrorType::RuntimeUnknown),
    };
    let message = field("errorMessage").unwrap_or_default();
    FunctionError::new(error_type, message)
}

async fn read_error_body(req: Request) -> Result<(HeaderMap, Bytes), ApiError> {
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

/// `GET /2021-04-23/credentials`: the configured credentials, for a caller
/// that presents the sandbox's authorization token.
pub(crate) async fn credentials(State(api): State<RuntimeApi>, req: Request) -> Reply {
    let not_found = || ApiError::not_found(req.method(), req.uri().path());
    let creds = api.config.credentials.as_ref().ok_or_else(not_found)?;
    let presented = header_str(req.headers(), "authorization");
    if presented != Some(creds.authorization_token.as_str()) {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            ErrorType::InvalidRequestFormat,
            "Missing or wrong Authorization header (AWS_CONTAINER_AUTHORIZATION_TOKEN)",
        ));
    }
    let expiration = std::time::SystemTime::now() + std::time::Duration::from_secs(6 * 3600);
    let body = serde_json::json!({
        "AccessKeyId": creds.access_key_id,
        "SecretAccessKey": creds.secret_access_key,
        "Token": creds.session_token.clone().unwrap_or_default(),
        "Expiration": httpdate_rfc3339(expiration),
    });
    Ok(json_response(
        StatusCode::OK,
        serde_json::to_vec(&body).unwrap_or_default(),
    ))
}

/// RFC 3339 UTC (seconds) of a time, without a date crate.
fn httpdate_rfc3339(t: std::time::SystemTime) -> String {
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Civil from days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// `GET /runtime/restore/next`: answers 200 once the sandbox is restored.
/// The restore routes exist only with init caching.
fn init_caching(api: &RuntimeApi, path: &str) -> Result<(), ApiError> {
    if api.config.init_caching {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::NOT_FOUND,
        ErrorType::NotFound,
        format!("{path} needs init caching (--enable-init-caching)"),
    ))
}

pub(crate) async fn restore_next(State(api): State<RuntimeApi>, uri: http::Uri) -> Reply {
    init_caching(&api, uri.path())?;
    let rx = api.rendezvous.restore_next()?;
    rx.await.map_err(|_| {
        ApiError::new(
            StatusCode::GONE,
            ErrorType::InvalidStateTransition,
            "The sandbox was reset while this call waited for a restore",
        )
    })?;
    Ok(json_response(StatusCode::OK, &b"{}"[..]))
}

/// `POST /runtime/restore/error`.
pub(crate) async fn restore_error(State(api): State<RuntimeApi>, req: Request) -> Reply {
    init_caching(&api, req.uri().path())?;
    api.rendezvous.check_restore_error()?;
    let (headers, body) = read_error_body(req).await?;
    let error = reported_error(&headers, &body);
    tracing::warn!(error_type = %error.error_type, "runtime reported a restore error");
    let payload = (!body.is_empty()).then(|| body.to_vec());
    api.rendezvous.restore_error(ErrorInvokeResponse {
        function_error: error,
        payload,
    })?;
    Ok(accepted())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_dates() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_795_408_792);
        assert_eq!(httpdate_rfc3339(t), "2026-11-23T04:39:52Z");
        assert_eq!(
            httpdate_rfc3339(std::time::UNIX_EPOCH),
            "1970-01-01T00:00:00Z"
        );
    }

    #[test]
    fn in_band_trailer_from_lambda_runtime() {
        let body = base64::engine::general_purpose::STANDARD.encode("boom in the middle");
        let chunk = format!(
            "Lambda-Runtime-Function-Error-Type: Runtime.StreamError\r\nLambda-Runtime-Function-Error-Body: {body}\r\n"
        );
        let err = in_band_trailer(chunk.as_bytes()).unwrap();
        assert_eq!(err.error_type.as_str(), "Runtime.StreamError");
        assert_eq!(err.error_message, "boom in the middle");
        assert!(in_band_trailer(b"ordinary data").is_none());
        assert!(in_band_trailer(b"Lambda-Runtime-Function-Error-Type: no line end").is_none());
    }

    #[test]
    fn trailer_error_reads_json_bodies() {
        let mut h = HeaderMap::new();
        h.insert(h::ERROR_TYPE, HeaderValue::from_static("Function.Bad"));
        let body = base64::engine::general_purpose::STANDARD
            .encode(r#"{"errorMessage":"m","errorType":"x"}"#);
        h.insert(h::ERROR_BODY, HeaderValue::from_str(&body).unwrap());
        let e = trailer_error(&h).unwrap();
        assert_eq!(e.error_type.as_str(), "Function.Bad");
        assert_eq!(e.error_message, "m");
        assert!(trailer_error(&HeaderMap::new()).is_none());
    }
}
