//! The body of `POST /v1/invoke`: a JSON envelope, or the payload itself.

use base64::Engine as _;
use bytes::Bytes;
use http::{header, HeaderValue, Request};
use interop::RequestId;
use serde::Deserialize;

use crate::fronts::invoke::decode_client_context;
use crate::sandbox::Body;

/// The envelope: every field optional.
#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
struct Envelope {
    /// The request id to use (default: a fresh UUID).
    id: Option<String>,
    /// Epoch milliseconds by which the invoke must finish (default: the
    /// function timeout from now).
    deadline_ms: Option<u64>,
    payload: Option<serde_json::Value>,
    payload_base64: Option<String>,
    content_type: Option<String>,
    trace_id: Option<String>,
    client_context: Option<serde_json::Value>,
}

/// A control-API invoke, read.
#[derive(Debug)]
pub struct ControlInvoke {
    /// Its id.
    pub id: RequestId,
    /// The request the function sees (`POST /`).
    pub request: Request<Body>,
    /// The decoded client context.
    pub client_context: Option<String>,
    /// The platform's budget, from `deadlineMs`.
    pub budget: Option<std::time::Duration>,
}

/// Why the body was refused (400 `InvalidRequestFormat` /
/// `InvalidRequestContentException`).
#[derive(Debug, PartialEq, Eq)]
pub enum BadEnvelope {
    /// A field's value is wrong.
    Format(String),
    /// The client context is not a JSON object.
    ClientContext(String),
}

/// Read the body: a JSON object of envelope fields is the envelope; anything
/// else (text, other JSON) is the payload itself, sent as it came.
pub fn parse(headers: &http::HeaderMap, body: Bytes) -> Result<ControlInvoke, BadEnvelope> {
    let blank = body.iter().all(u8::is_ascii_whitespace);
    let envelope = if blank {
        Some(Envelope::default())
    } else {
        serde_json::from_slice::<Envelope>(&body).ok()
    };
    let Some(env) = envelope else {
        let mut request = Request::post("/")
            .body(Body::from(body))
            .unwrap_or_default();
        *request.headers_mut() = headers.clone();
        return Ok(ControlInvoke {
            id: RequestId::generate(),
            request,
            client_context: None,
            budget: None,
        });
    };
    let payload: Bytes = match (&env.payload_base64, &env.payload) {
        (Some(b64), _) => base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|e| BadEnvelope::Format(format!("payloadBase64 is not base64: {e}")))?
            .into(),
        (None, Some(v)) => serde_json::to_vec(v).unwrap_or_default().into(),
        (None, None) => Bytes::from_static(b"{}"),
    };
    let client_context = match &env.client_context {
        None => None,
        Some(v) => {
            let raw = base64::engine::general_purpose::STANDARD.encode(v.to_string());
            Some(decode_client_context(&raw).map_err(BadEnvelope::ClientContext)?)
        }
    };
    let id = match env.id {
        None => RequestId::generate(),
        Some(id)
            if !id.is_empty()
                && id.len() <= 128
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
        {
            RequestId::from_string(id)
        }
        Some(id) => {
            return Err(BadEnvelope::Format(format!(
                "id {id:?} must be 1-128 letters, digits, '-' or '_'"
            )))
        }
    };
    let budget = match env.deadline_ms {
        None => None,
        Some(deadline) => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0);
            if deadline <= now {
                return Err(BadEnvelope::Format(format!(
                    "deadlineMs {deadline} is not in the future (now {now})"
                )));
            }
            Some(std::time::Duration::from_millis(deadline - now))
        }
    };
    let content_type = env
        .content_type
        .unwrap_or_else(|| "application/json".into());
    let mut request = Request::post("/")
        .body(Body::from(payload))
        .unwrap_or_default();
    let h = request.headers_mut();
    let ct = HeaderValue::from_str(&content_type).map_err(|_| {
        BadEnvelope::Format(format!(
            "contentType {content_type:?} is not a header value"
        ))
    })?;
    h.insert(header::CONTENT_TYPE, ct);
    if let Some(t) = env.trace_id {
        let v = HeaderValue::from_str(&t)
            .map_err(|_| BadEnvelope::Format(format!("traceId {t:?} is not a header value")))?;
        h.insert("x-amzn-trace-id", v);
    }
    Ok(ControlInvoke {
        id,
        request,
        client_context,
        budget,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn body_of(r: Request<Body>) -> Bytes {
        r.into_body()
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default()
    }

    #[tokio::test]
    async fn envelopes_and_raw_payloads() {
        let h = http::HeaderMap::new();
        let e = parse(
            &h,
            Bytes::from_static(br#"{"payload":{"k":"v"},"id":"abc"}"#),
        )
        .unwrap();
        assert_eq!(e.id.as_str(), "abc");
        assert_eq!(
            body_of(e.request).await,
            Bytes::from_static(br#"{"k":"v"}"#)
        );
        let e = parse(&h, Bytes::new()).unwrap();
        assert_eq!(body_of(e.request).await, Bytes::from_static(b"{}"));
        // Not an envelope: the payload as it came.
        let e = parse(&h, Bytes::from_static(b"payload")).unwrap();
        assert_eq!(body_of(e.request).await, Bytes::from_static(b"payload"));
        let e = parse(&h, Bytes::from_static(br#"{"other":1}"#)).unwrap();
        assert_eq!(
            body_of(e.request).await,
            Bytes::from_static(br#"{"other":1}"#)
        );
        assert!(matches!(
            parse(&h, Bytes::from_static(br#"{"id":"has space"}"#)),
            Err(BadEnvelope::Format(_))
        ));
        assert!(matches!(
            parse(&h, Bytes::from_static(br#"{"deadlineMs":1}"#)),
            Err(BadEnvelope::Format(m)) if m.contains("not in the future")
        ));
        assert!(matches!(
            parse(&h, Bytes::from_static(br#"{"clientContext":[1]}"#)),
            Err(BadEnvelope::ClientContext(_))
        ));
    }
}
