//! A streamed `/response` (`Lambda-Runtime-Function-Response-Mode:
//! streaming`): forwarded chunk by chunk with backpressure, Lambda's optional
//! bandwidth shaping, the cap, and the error a runtime reports mid-stream
//! (HTTP trailers, or `lambda_runtime`'s in-band trailer chunk).

use axum::extract::Request;
use base64::Engine as _;
use fatalerror::ErrorType;
use http::{HeaderMap, HeaderValue};
use http_body_util::BodyExt;
use interop::{FunctionError, ResponseMode};
use tokio::sync::mpsc;

use crate::api::RuntimeApi;
use crate::body::{accepted, header_str};
use crate::error::ApiError;
use crate::headers as h;
use crate::outcome::truncated_error;
use crate::outcome::{
    InvokeOutcome, InvokeResponse, ResponseBody, StreamItem, STREAM_BUFFER_CHUNKS,
};

type Reply = Result<axum::response::Response, ApiError>;

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

pub(crate) async fn streaming_response(
    api: &RuntimeApi,
    ticket: crate::rendezvous::ResponseTicket,
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
    api.rendezvous
        .end_response(&ticket, produced, ResponseMode::Streaming, failure.clone());
    if over_cap {
        return Err(ApiError::too_large());
    }
    Ok(accepted())
}

#[cfg(test)]
mod tests {
    use super::*;

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
