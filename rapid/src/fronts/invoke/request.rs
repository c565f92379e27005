//! Reading an Invoke API request: the invocation type, the client context,
//! the event.

use base64::Engine as _;
use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderName};
use http_body_util::BodyExt;

use super::InvokeApiError;
use crate::sandbox::{Body, InvokeError};

/// `X-Amz-Invocation-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvocationType {
    /// Wait for the answer (the default).
    RequestResponse,
    /// 202 at once; the invoke runs anyway.
    Event,
    /// 204; nothing runs.
    DryRun,
}

impl InvocationType {
    /// The header's value (absent = RequestResponse); the error names it.
    pub fn parse(v: Option<&str>) -> Result<Self, String> {
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

/// `X-Amz-Invocation-Type`.
pub(super) const INVOCATION_TYPE: HeaderName = HeaderName::from_static("x-amz-invocation-type");
/// `X-Amz-Log-Type`.
pub(super) const LOG_TYPE: HeaderName = HeaderName::from_static("x-amz-log-type");
/// `X-Amz-Client-Context`.
const CLIENT_CONTEXT: HeaderName = HeaderName::from_static("x-amz-client-context");

pub(super) fn header_str(h: &HeaderMap, name: HeaderName) -> Option<&str> {
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

/// The most base64 AWS takes in `X-Amz-Client-Context` (the API reference: "Up to
/// 3,583 bytes of base64-encoded data").
pub const MAX_CLIENT_CONTEXT: usize = 3583;

/// The request's client context, if it has one.
pub(super) fn client_context(h: &HeaderMap) -> Result<Option<String>, InvokeApiError> {
    match h.get(CLIENT_CONTEXT) {
        None => Ok(None),
        Some(v) if v.len() > MAX_CLIENT_CONTEXT => Err(InvokeApiError::InvalidRequest(format!(
            "Client context must be a valid Base64-encoded JSON object of at most {MAX_CLIENT_CONTEXT} bytes; this one is {} bytes",
            v.len()
        ))),
        Some(v) => {
            let raw = v.to_str().map_err(|_| {
                InvokeApiError::InvalidRequest(
                    "Client context must be a valid Base64-encoded JSON object: not valid text"
                        .into(),
                )
            })?;
            decode_client_context(raw)
                .map(Some)
                .map_err(InvokeApiError::InvalidRequest)
        }
    }
}

/// The largest synchronous request AWS takes (6 MiB; "Request must be smaller
/// than 6291456 bytes for the InvokeFunction operation").
pub const MAX_REQUEST: usize = 6 * 1024 * 1024;
/// The largest `Event` request AWS takes (1 MiB since October 2025).
pub const MAX_EVENT_REQUEST: usize = 1024 * 1024;

/// How much of a too-large request is read (and dropped) before it is answered.
const DISCARD_LIMIT: u64 = 4 * MAX_REQUEST as u64;

/// AWS's message for a request over `limit`.
pub(super) fn too_large_message(limit: usize, event: bool, size: Option<u64>) -> String {
    match (event, size) {
        (false, _) => {
            format!("Request must be smaller than {limit} bytes for the InvokeFunction operation")
        }
        (true, Some(n)) => {
            format!(
                "{n} byte payload is too large for the Event invocation type (limit {limit} bytes)"
            )
        }
        (true, None) => {
            format!("Request must be smaller than {limit} bytes for the Event invocation type")
        }
    }
}

/// Read the event, refusing more than AWS takes for the invocation type
/// before the runtime sees any, and anything that is not JSON (an empty body is).
pub(super) async fn read_payload(
    h: &HeaderMap,
    mut body: Body,
    event: bool,
) -> Result<Bytes, InvokeApiError> {
    let limit = if event {
        MAX_EVENT_REQUEST
    } else {
        MAX_REQUEST
    };
    let declared: Option<u64> =
        header_str(h, http::header::CONTENT_LENGTH).and_then(|v| v.trim().parse().ok());
    let mut buf = BytesMut::with_capacity(declared.unwrap_or(0).min(limit as u64) as usize);
    // Past the limit the rest is read and dropped (up to DISCARD_LIMIT), so the
    // client, still sending, gets the 413 instead of a broken pipe.
    let mut over: Option<u64> = declared.filter(|n| *n > limit as u64).map(|_| 0);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            let why = format!("Could not read the request body: {e}");
            if crate::sandbox::body_timed_out(&e) {
                InvokeApiError::Sandbox(InvokeError::RequestTimeout(why))
            } else {
                InvokeApiError::InvalidRequest(why)
            }
        })?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        match over.as_mut() {
            Some(seen) => *seen += data.len() as u64,
            None if buf.len() + data.len() > limit => {
                over = Some((buf.len() + data.len()) as u64);
                buf.clear();
            }
            None => buf.extend_from_slice(&data),
        }
        if over.is_some_and(|seen| seen > DISCARD_LIMIT) {
            return Err(InvokeApiError::TooLarge {
                limit,
                event,
                size: declared,
                complete: false,
            });
        }
    }
    if let Some(seen) = over {
        return Err(InvokeApiError::TooLarge {
            limit,
            event,
            size: Some(declared.unwrap_or(seen)),
            complete: true,
        });
    }
    check_json(&buf)?;
    Ok(buf.freeze())
}

/// Any JSON value, or nothing, as AWS takes it.
fn check_json(payload: &[u8]) -> Result<(), InvokeApiError> {
    if payload.iter().all(u8::is_ascii_whitespace) {
        return Ok(());
    }
    serde_json::from_slice::<serde::de::IgnoredAny>(payload)
        .map(|_| ())
        .map_err(|e| {
            InvokeApiError::InvalidRequest(format!(
                "Could not parse request body into json: Could not parse payload into json: {e}"
            ))
        })
}

/// The `Qualifier` query parameter, percent-decoded.
pub(super) fn qualifier(uri: &http::Uri) -> Option<String> {
    let query = uri.query()?;
    form_urlencoded_pairs(query)
        .into_iter()
        .find(|(k, _)| k == "Qualifier")
        .map(|(_, v)| v)
}

fn form_urlencoded_pairs(query: &str) -> Vec<(String, String)> {
    use axum::extract::Query;
    let uri: http::Uri = match format!("/?{query}").parse() {
        Ok(u) => u,
        Err(_) => return Vec::new(),
    };
    Query::<Vec<(String, String)>>::try_from_uri(&uri)
        .map(|q| q.0)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invocation_types() {
        assert_eq!(
            InvocationType::parse(None),
            Ok(InvocationType::RequestResponse)
        );
        assert_eq!(
            InvocationType::parse(Some("Event")),
            Ok(InvocationType::Event)
        );
        assert_eq!(
            InvocationType::parse(Some("DryRun")),
            Ok(InvocationType::DryRun)
        );
        assert!(InvocationType::parse(Some("event"))
            .unwrap_err()
            .contains("'event'"));
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
