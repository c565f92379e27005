//! Response helpers: full bodies and JSON error bodies.

use bytes::Bytes;
use http::{header, Response, StatusCode};
use http_body_util::Full;

use crate::ApiError;

/// A complete response body.
pub fn full(bytes: impl Into<Bytes>) -> Full<Bytes> {
    Full::new(bytes.into())
}

/// Build a response whose body is the JSON error `{"errorMessage","errorType"}`.
pub fn json_error(e: &ApiError) -> Response<Full<Bytes>> {
    Response::builder()
        .status(e.status)
        .header(header::CONTENT_TYPE, "application/json")
        .body_or_500(full(e.body()))
}

/// `Response::builder().body(..)` only fails on invalid parts, which rapid
/// never builds from untrusted input unchecked; this keeps that one failure
/// path explicit instead of an `unwrap`.
pub trait ResponseBuilderExt {
    /// Finish the builder, or answer a bare 500 if its parts were invalid.
    fn body_or_500<B: Default>(self, body: B) -> Response<B>;
}

impl ResponseBuilderExt for http::response::Builder {
    fn body_or_500<B: Default>(self, body: B) -> Response<B> {
        match self.body(body) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "invalid response parts");
                let mut r = Response::new(B::default());
                *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                r
            }
        }
    }
}
