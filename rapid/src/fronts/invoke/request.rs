//! Reading an Invoke API request: the invocation type, the client context,
//! the event.

use base64::Engine as _;
use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderName};
use http_body_util::BodyExt;
use interop::MAX_PAYLOAD;

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

/// The request's client context, if it has one.
pub(super) fn client_context(h: &HeaderMap) -> Result<Option<String>, InvokeApiError> {
    match h.get(CLIENT_CONTEXT) {
        None => Ok(None),
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

fn too_large(size: Option<u64>) -> InvokeApiError {
    InvokeApiError::Sandbox(InvokeError::TooLarge {
        limit: MAX_PAYLOAD,
        size,
    })
}

/// Read the event, refusing more than `MAX_PAYLOAD` bytes before the runtime sees any.
pub(super) async fn read_payload(h: &HeaderMap, mut body: Body) -> Result<Bytes, InvokeApiError> {
    let declared: Option<u64> =
        header_str(h, http::header::CONTENT_LENGTH).and_then(|v| v.trim().parse().ok());
    if let Some(n) = declared {
        if n > MAX_PAYLOAD as u64 {
            return Err(too_large(Some(n)));
        }
    }
    let mut buf = BytesMut::with_capacity(declared.unwrap_or(0) as usize);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            let why = format!("Could not read the request body: {e}");
            if crate::sandbox::body_timed_out(&e) {
                InvokeApiError::Sandbox(InvokeError::RequestTimeout(why))
            } else {
                InvokeApiError::InvalidRequest(why)
            }
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
