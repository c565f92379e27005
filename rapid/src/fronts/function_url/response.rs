//! The function's answer as the HTTP response a function URL sends: the
//! buffered mapping (a `{statusCode, headers, cookies, body, isBase64Encoded}`
//! object, or any other JSON as a 200 `application/json` body) and, in
//! `RESPONSE_STREAM`, the http-integration-response prelude.

use std::pin::Pin;
use std::task::{Context, Poll};

use base64::Engine as _;
use bytes::{Bytes, BytesMut};
use http::{header, HeaderName, HeaderValue, StatusCode};
use http_body::{Body as HttpBody, Frame};
use runtime_api::StreamItem;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::fronts::invoke::body::{InvokeBody, StreamFailed};
use crate::sandbox::Body;

/// The content type of a streamed answer that starts with the prelude.
pub const HTTP_INTEGRATION: &str = "application/vnd.awslambda.http-integration-response";
/// The prelude ends with 8 NUL bytes.
const DELIMITER: [u8; 8] = [0; 8];
/// The longest prelude read before giving up on it.
const MAX_PRELUDE: usize = 64 * 1024;

/// Why an answer cannot be an HTTP response (each a 502 to the client).
#[derive(Debug, thiserror::Error)]
pub enum BadAnswer {
    /// The answer is not JSON.
    #[error("the function's answer is not JSON: {0}")]
    NotJson(serde_json::Error),
    /// `statusCode` is not a number from 100 to 599.
    #[error("the function's statusCode is not a status from 100 to 599: {0}")]
    Status(Value),
    /// A header name or value that HTTP does not allow.
    #[error("the function's header {0:?} is not valid HTTP")]
    Header(String),
    /// `isBase64Encoded` with a body that is not base64.
    #[error("the function's body is not valid base64: {0}")]
    Base64(base64::DecodeError),
    /// The prelude is missing, too long or not JSON.
    #[error("the streamed response has no valid http-integration prelude: {0}")]
    Prelude(String),
    /// The stream broke before the prelude ended.
    #[error("the streamed response failed: {0}")]
    Stream(String),
}

/// Status, headers and cookies of an answer.
pub struct Head {
    status: StatusCode,
    headers: http::HeaderMap,
}

impl Head {
    /// The response with `body`.
    pub fn with_body(self, body: Body) -> http::Response<Body> {
        let mut r = http::Response::new(body);
        *r.status_mut() = self.status;
        *r.headers_mut() = self.headers;
        r
    }
}

/// The buffered mapping of a whole answer.
pub fn buffered(answer: &[u8]) -> Result<http::Response<Body>, BadAnswer> {
    let v: Value = serde_json::from_slice(answer).map_err(BadAnswer::NotJson)?;
    let json_200 = |body: Bytes| {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        Head {
            status: StatusCode::OK,
            headers,
        }
        .with_body(Body::from(body))
    };
    let obj = match v {
        Value::Object(o) if o.contains_key("statusCode") => o,
        // A JSON string is sent unquoted; anything else re-serialized.
        Value::String(s) => return Ok(json_200(Bytes::from(s))),
        other => return Ok(json_200(Bytes::from(other.to_string()))),
    };
    let mut head = head_of(&obj)?;
    head.headers
        .entry(header::CONTENT_TYPE)
        .or_insert(HeaderValue::from_static("application/json"));
    let body = match obj.get("body") {
        None | Some(Value::Null) => Bytes::new(),
        Some(Value::String(s)) if obj.get("isBase64Encoded") == Some(&Value::Bool(true)) => {
            Bytes::from(
                base64::engine::general_purpose::STANDARD
                    .decode(s)
                    .map_err(BadAnswer::Base64)?,
            )
        }
        Some(Value::String(s)) => Bytes::from(s.clone()),
        Some(other) => Bytes::from(other.to_string()),
    };
    Ok(head.with_body(Body::from(body)))
}

/// Status, `headers` (string or array values), `multiValueHeaders` and
/// `cookies` (each a `Set-Cookie`) of a response object or a prelude.
fn head_of(obj: &serde_json::Map<String, Value>) -> Result<Head, BadAnswer> {
    let status = match obj.get("statusCode") {
        None => StatusCode::OK,
        Some(s) => s
            .as_u64()
            .filter(|n| (100..=599).contains(n))
            .and_then(|n| StatusCode::from_u16(n as u16).ok())
            .ok_or_else(|| BadAnswer::Status(s.clone()))?,
    };
    let mut headers = http::HeaderMap::new();
    let mut add = |name: &str, value: &Value| -> Result<(), BadAnswer> {
        let text = match value {
            Value::String(s) => s.clone(),
            Value::Null => return Ok(()),
            other => other.to_string(),
        };
        let n = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| BadAnswer::Header(name.to_owned()))?;
        let v = HeaderValue::from_str(&text).map_err(|_| BadAnswer::Header(name.to_owned()))?;
        headers.append(n, v);
        Ok(())
    };
    if let Some(Value::Object(h)) = obj.get("headers") {
        for (k, v) in h {
            match v {
                Value::Array(vs) => vs.iter().try_for_each(|v| add(k, v))?,
                v => add(k, v)?,
            }
        }
    }
    if let Some(Value::Object(h)) = obj.get("multiValueHeaders") {
        for (k, vs) in h {
            if let Value::Array(vs) = vs {
                vs.iter().try_for_each(|v| add(k, v))?;
            }
        }
    }
    if let Some(Value::Array(cookies)) = obj.get("cookies") {
        cookies.iter().try_for_each(|c| add("set-cookie", c))?;
    }
    Ok(Head { status, headers })
}

/// A streamed answer that starts with the prelude: its head, and the body
/// that follows the delimiter (what was read past it, then the rest as it comes).
pub async fn streamed(
    mut rx: mpsc::Receiver<StreamItem>,
) -> Result<http::Response<Body>, BadAnswer> {
    let mut buf = BytesMut::new();
    let at = loop {
        if let Some(at) = buf.windows(DELIMITER.len()).position(|w| w == DELIMITER) {
            break at;
        }
        if buf.len() > MAX_PRELUDE {
            return Err(BadAnswer::Prelude(format!(
                "no delimiter in the first {MAX_PRELUDE} bytes"
            )));
        }
        match rx.recv().await {
            Some(StreamItem::Chunk(c)) => buf.extend_from_slice(&c),
            Some(StreamItem::End) => {
                return Err(BadAnswer::Prelude(
                    "the stream ended before the delimiter".into(),
                ))
            }
            Some(StreamItem::Error(e)) => {
                return Err(BadAnswer::Stream(format!(
                    "{}: {}",
                    e.error_type, e.error_message
                )))
            }
            None => return Err(BadAnswer::Stream("the stream broke off".into())),
        }
    };
    let prelude: Value =
        serde_json::from_slice(&buf[..at]).map_err(|e| BadAnswer::Prelude(e.to_string()))?;
    let Value::Object(obj) = prelude else {
        return Err(BadAnswer::Prelude("not a JSON object".into()));
    };
    let head = head_of(&obj)?;
    let rest = buf.split_off(at + DELIMITER.len()).freeze();
    Ok(head.with_body(Body::new(AfterPrelude {
        head: (!rest.is_empty()).then_some(rest),
        rest: InvokeBody::Chunks(rx),
    })))
}

/// The body after the prelude: the bytes already read, then the stream.
struct AfterPrelude {
    head: Option<Bytes>,
    rest: InvokeBody,
}

impl HttpBody for AfterPrelude {
    type Data = Bytes;
    type Error = StreamFailed;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, StreamFailed>>> {
        if let Some(b) = self.head.take() {
            return Poll::Ready(Some(Ok(Frame::data(b))));
        }
        Pin::new(&mut self.rest).poll_frame(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn map(answer: &str) -> (u16, Vec<(String, String)>, String) {
        let r = buffered(answer.as_bytes()).unwrap();
        let status = r.status().as_u16();
        let headers = r
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_owned()))
            .collect();
        let body = r.into_body().collect().await.unwrap().to_bytes();
        (status, headers, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn buffered_mapping() {
        let ct = |s: &str| vec![("content-type".to_owned(), s.to_owned())];
        assert_eq!(
            map(r#"{"hello": "world"}"#).await,
            (200, ct("application/json"), r#"{"hello":"world"}"#.into())
        );
        assert_eq!(
            map(r#""hello""#).await,
            (200, ct("application/json"), "hello".into())
        );
        assert_eq!(map("[1, true]").await.2, "[1,true]");
        let (s, h, b) = map(
            r#"{"statusCode": 201, "headers": {"x-a": "1", "content-type": "text/plain"},
                "multiValueHeaders": {}, "cookies": ["a=1", "b=2"], "body": "aGk=",
                "isBase64Encoded": true}"#,
        )
        .await;
        assert_eq!((s, b.as_str()), (201, "hi"));
        assert!(h.contains(&("set-cookie".into(), "b=2".into())), "{h:?}");
        assert!(h.contains(&("content-type".into(), "text/plain".into())));
        assert_eq!(map(r#"{"statusCode": 204}"#).await.0, 204);
        assert!(buffered(br#"{"statusCode": 7}"#).is_err());
        assert!(buffered(b"not json").is_err());
    }

    #[tokio::test]
    async fn prelude_then_stream() {
        let (tx, rx) = mpsc::channel(8);
        let prelude = br#"{"statusCode":202,"headers":{"x-b":["1","2"]},"cookies":["c=3"]}"#;
        let mut first = prelude.to_vec();
        first.extend_from_slice(&[0; 8]);
        first.extend_from_slice(b"he");
        tx.send(StreamItem::Chunk(Bytes::from(first)))
            .await
            .unwrap();
        tx.send(StreamItem::Chunk(Bytes::from_static(b"llo")))
            .await
            .unwrap();
        tx.send(StreamItem::End).await.unwrap();
        let r = streamed(rx).await.unwrap();
        assert_eq!(r.status(), 202);
        assert_eq!(r.headers().get_all("x-b").iter().count(), 2);
        assert_eq!(r.headers()["set-cookie"], "c=3");
        let body = r.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"hello");
    }
}
