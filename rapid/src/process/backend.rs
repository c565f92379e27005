//! The one interface every process backend implements (http, fork, static,
//! inproc), and what they share: the per-call context, whole-body reads and
//! plain-text answers.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Request, Response, StatusCode};
use http_body_util::BodyExt;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::sandbox::{Body, BoxFuture, Health, InvokeError};

/// One call's context.
#[derive(Debug, Clone)]
pub struct Call {
    /// `X-Call-Id` (the client's, or generated).
    pub id: String,
    /// When the function's work must be over (exec timeout, maybe shortened by `X-Timeout`).
    pub deadline: Option<Instant>,
    /// The budget behind `deadline`, for messages.
    pub budget: Option<Duration>,
}

impl Call {
    /// Sleep until the deadline (forever without one).
    pub async fn expired(&self) {
        match self.deadline {
            Some(d) => tokio::time::sleep_until(d).await,
            None => std::future::pending().await,
        }
    }

    /// The error when the deadline passed.
    pub fn timed_out(&self) -> InvokeError {
        InvokeError::exec_timeout(self.budget)
    }
}

/// What a call to a process backend gives: the function's HTTP answer, or
/// why there is none.
pub type CallResult = Result<Response<Body>, InvokeError>;

/// A `text/plain` response; the body ends with a newline.
pub fn text(status: StatusCode, message: impl Into<String>) -> Response<Body> {
    let mut m = message.into();
    if !m.ends_with('\n') {
        m.push('\n');
    }
    let mut r = Response::new(Body::from(m));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// The largest request body a backend buffers whole (serializing mode, http
/// mode with `http_buffer_req_body`, inproc); past it 413.
pub const MAX_BUFFERED_BODY: usize = 64 * 1024 * 1024;

/// The whole request body, at most `limit` bytes.
pub async fn read_body(mut body: Body, limit: usize) -> Result<Bytes, InvokeError> {
    let mut buf = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            let why = format!("cannot read the request body: {e}");
            // The body timeout is the client's: 408. (The read timeout's
            // total deadline stays 400 here, as it always answered.)
            if runtime_api::server::BodyStalled::caused(&e) {
                InvokeError::RequestTimeout(why)
            } else {
                InvokeError::BadRequest(why)
            }
        })?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > limit {
                return Err(InvokeError::TooLarge { limit, size: None });
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}

/// What the process sandbox drives: the http, fork, static and in-process
/// backends.
///
/// The defaults fit a backend with nothing to start or stop (always ready,
/// nothing to recycle): only `call` is required.
pub trait Backend: Send + Sync + 'static {
    /// Serve one request.
    fn call(&self, req: Request<Body>, call: Call) -> BoxFuture<'_, CallResult>;
    /// Start the function (if it is a process); resolves once started.
    fn start(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async { Ok(()) })
    }
    /// Its own health, when it has a process that comes and goes; `None`
    /// means ready whenever rapid is.
    fn health(&self) -> Option<watch::Receiver<Health>> {
        None
    }
    /// The function process, if one runs now.
    fn pid(&self) -> Option<i32> {
        None
    }
    /// `/_/ready` passed through to the function (http mode's ready path).
    fn ready_probe(&self) -> Option<BoxFuture<'_, Response<Body>>> {
        None
    }
    /// Replace the function with a fresh one (one-shot recycle, Reset),
    /// `scratch` emptied once the old one is gone and before the new one starts.
    fn recycle<'a>(&'a self, scratch: Option<&'a Path>) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            if let Some(dir) = scratch {
                crate::scratch::wipe(dir);
            }
            Ok(())
        })
    }
    /// Stop the function for good (SIGTERM, then SIGKILL after a grace period).
    fn stop(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}
