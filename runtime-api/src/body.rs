//! Request and response helpers: header text, JSON bodies, the 202 of an
//! accepted call, and a builder that never panics.

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::{header, HeaderMap, StatusCode};

/// A response with a JSON (or any `application/json`) body.
pub fn json_response(status: StatusCode, body: impl Into<Bytes>) -> Response {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body_or_500(Body::from(body.into()))
}

/// `Response::builder().body(..)` only fails on invalid parts, which rapid
/// never builds from untrusted input unchecked; this keeps that one failure
/// path explicit instead of an `unwrap`.
pub trait ResponseBuilderExt {
    /// Finish the builder, or answer a bare 500 if its parts were invalid.
    fn body_or_500<B: Default>(self, body: B) -> http::Response<B>;
}

impl ResponseBuilderExt for http::response::Builder {
    fn body_or_500<B: Default>(self, body: B) -> http::Response<B> {
        match self.body(body) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "invalid response parts");
                let mut r = http::Response::new(B::default());
                *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                r
            }
        }
    }
}

/// `202 {"status":"OK"}`: a call the Runtime API accepted.
pub(crate) fn accepted() -> Response {
    json_response(StatusCode::ACCEPTED, &b"{\"status\":\"OK\"}"[..])
}

/// A header's value as text, if it is text.
pub(crate) fn header_str(
    headers: &HeaderMap,
    name: impl http::header::AsHeaderName,
) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}
