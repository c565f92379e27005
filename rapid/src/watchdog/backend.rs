//! The one interface every watchdog backend implements, and what they share:
//! the body type, plain-text error answers, and the per-call context.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{header, Request, Response, StatusCode};
use http_body::{Body as HttpBody, Frame};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use tokio::time::{Instant, Sleep};

/// Errors a body may end with.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// The body of every request a backend gets and every answer it gives.
pub type Body = UnsyncBoxBody<Bytes, BoxError>;
/// A boxed, sendable future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where a backend stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// Starting (or restarting) its process; requests wait.
    Starting,
    /// Serving.
    Ready,
    /// Down for good (why): requests fail at once.
    Unhealthy(String),
}

/// How one call ended, for the invoke counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The function answered.
    Success,
    /// The function failed (non-zero exit, unreachable upstream, error status).
    Error,
    /// The exec timeout fired.
    Timeout,
}

impl Outcome {
    /// The label value in metrics.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Error => "error",
            Outcome::Timeout => "timeout",
        }
    }
}

/// One request's context.
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

    /// The 504 answer when the deadline passed.
    pub fn timeout_answer(&self) -> Answer {
        let budget = self.budget.map(humantime::format_duration);
        Answer::failed(
            StatusCode::GATEWAY_TIMEOUT,
            format!(
                "the function did not finish within the exec timeout ({})",
                budget.map_or_else(|| "none".to_owned(), |b| b.to_string())
            ),
            Outcome::Timeout,
        )
    }
}

/// A backend's answer: the response and how the call went.
pub struct Answer {
    /// The HTTP response.
    pub response: Response<Body>,
    /// The outcome (for a streamed answer: how it started).
    pub outcome: Outcome,
}

impl Answer {
    /// A successful answer.
    pub fn ok(response: Response<Body>) -> Answer {
        Answer {
            response,
            outcome: Outcome::Success,
        }
    }

    /// A plain-text error answer.
    pub fn failed(status: StatusCode, message: impl Into<String>, outcome: Outcome) -> Answer {
        Answer {
            response: text(status, message),
            outcome,
        }
    }
}

/// A `text/plain` response; the body ends with a newline.
pub fn text(status: StatusCode, message: impl Into<String>) -> Response<Body> {
    let mut m = message.into();
    if !m.ends_with('\n') {
        m.push('\n');
    }
    let mut r = Response::new(full(m));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// A response with any body as a watchdog [`Body`] (rapid's own answers
/// rendered elsewhere, e.g. Lambda-style JSON errors).
pub fn boxed<B>(r: Response<B>) -> Response<Body>
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    r.map(|b| b.map_err(Into::into).boxed_unsync())
}

/// A whole body.
pub fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).map_err(|e| match e {}).boxed_unsync()
}

/// The largest request body a backend buffers whole (serializing mode, http
/// mode with `http_buffer_req_body`, inproc); past it 413.
pub const MAX_BUFFERED_BODY: usize = 64 * 1024 * 1024;

/// The whole request body, at most `limit` bytes (413 past it).
pub async fn read_body(mut body: Body, limit: usize) -> Result<Bytes, Answer> {
    let mut buf = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            Answer::failed(
                StatusCode::BAD_REQUEST,
                format!("cannot read the request body: {e}"),
                Outcome::Error,
            )
        })?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > limit {
                return Err(Answer::failed(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("the request body is over {limit} bytes"),
                    Outcome::Error,
                ));
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}

/// What the watchdog drives: the http, fork, static and in-process backends.
///
/// The defaults fit a backend with nothing to start or stop (always ready,
/// nothing to recycle): only `call` is required.
pub trait Backend: Send + Sync + 'static {
    /// Serve one request.
    fn call(&self, req: Request<Body>, call: Call) -> BoxFuture<'_, Answer>;
    /// Start the function (if it is a process); resolves once started.
    fn start(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async { Ok(()) })
    }
    /// Where it stands.
    fn health(&self) -> Health {
        Health::Ready
    }
    /// Wait until it is no longer starting.
    fn settled(&self) -> BoxFuture<'_, Health> {
        Box::pin(async move { self.health() })
    }
    /// Resolves when `health` may have changed after this call (never, by
    /// default); call it before reading `health` so no change is missed.
    fn health_changed(&self) -> BoxFuture<'_, ()> {
        Box::pin(std::future::pending())
    }
    /// `/_/ready` passed through to the function (http mode's ready path).
    fn ready_probe(&self) -> Option<BoxFuture<'_, Response<Body>>> {
        None
    }
    /// One-shot recycle: replace the function with a fresh one, `scratch`
    /// emptied once the old one is gone and before the new one starts.
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

/// A body that fails once `deadline` passes before it ended: the read
/// timeout on request bodies, the write timeout on responses.
///
/// The timer is only armed when the body first has to wait, so a body that
/// is all there (the common case) costs no timer.
pub struct Deadline<B> {
    inner: B,
    deadline: Option<Instant>,
    sleep: Option<Pin<Box<Sleep>>>,
    what: &'static str,
}

impl<B> Deadline<B> {
    /// Wrap `inner`; `None` means no deadline.
    pub fn new(inner: B, after: Option<Duration>, what: &'static str) -> Self {
        Deadline {
            inner,
            deadline: after.map(|d| Instant::now() + d),
            sleep: None,
            what,
        }
    }
}

/// The deadline of a [`Deadline`] body passed.
#[derive(Debug, thiserror::Error)]
#[error("{0} timed out")]
pub struct TimedOut(pub &'static str);

impl<B> HttpBody for Deadline<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(f) => Poll::Ready(f.map(|r| r.map_err(Into::into))),
            Poll::Pending => {
                let Some(deadline) = this.deadline else {
                    return Poll::Pending;
                };
                let sleep = this
                    .sleep
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if sleep.as_mut().poll(cx).is_ready() {
                    this.deadline = None;
                    this.sleep = None;
                    return Poll::Ready(Some(Err(Box::new(TimedOut(this.what)))));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The request's CGI-style environment for the fork modes: `Http_Method`,
/// `Http_Path`, `Http_Query`, `Http_ContentLength`, `Http_Host`, and every
/// header as `Http_<Name_With_Underscores>`.
pub fn cgi_environment<B>(req: &Request<B>) -> Vec<(String, String)> {
    let mut env = vec![
        ("Http_Method".to_owned(), req.method().to_string()),
        ("Http_Path".to_owned(), req.uri().path().to_owned()),
    ];
    if let Some(q) = req.uri().query() {
        env.push(("Http_Query".to_owned(), q.to_owned()));
    }
    if let Some(len) = req.headers().get(header::CONTENT_LENGTH) {
        if let Ok(v) = len.to_str() {
            env.push(("Http_ContentLength".to_owned(), v.to_owned()));
        }
    }
    if let Some(host) = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
    {
        env.push(("Http_Host".to_owned(), host.to_owned()));
    }
    for (name, value) in req.headers() {
        let Ok(v) = value.to_str() else { continue };
        let key: String = name
            .as_str()
            .split('-')
            .map(|part| {
                let mut c = part.chars();
                match c.next() {
                    Some(f) => f.to_ascii_uppercase().to_string() + c.as_str(),
                    None => String::new(),
                }
            })
            .collect::<Vec<_>>()
            .join("_");
        env.push((format!("Http_{key}"), v.to_owned()));
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgi_names() {
        let req = Request::post("/fn/x?a=1&b=2")
            .header("content-type", "text/plain")
            .header("x-call-id", "abc")
            .header("content-length", "3")
            .header("host", "h:8080")
            .body(())
            .unwrap();
        let env = cgi_environment(&req);
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("Http_Method"), Some("POST"));
        assert_eq!(get("Http_Path"), Some("/fn/x"));
        assert_eq!(get("Http_Query"), Some("a=1&b=2"));
        assert_eq!(get("Http_Content_Type"), Some("text/plain"));
        assert_eq!(get("Http_X_Call_Id"), Some("abc"));
        assert_eq!(get("Http_ContentLength"), Some("3"));
        assert_eq!(get("Http_Host"), Some("h:8080"));
    }

    #[tokio::test(start_paused = true)]
    async fn deadline_body_fails_when_the_deadline_passes() {
        let (mut tx, rx) = http_body_util::channel::Channel::<Bytes, BoxError>::new(1);
        let mut b = Deadline::new(rx, Some(Duration::from_secs(1)), "reading the request");
        tx.send_data(Bytes::from_static(b"a")).await.unwrap();
        assert_eq!(
            b.frame().await.unwrap().unwrap().into_data().unwrap(),
            Bytes::from_static(b"a")
        );
        let e = b.frame().await.unwrap().unwrap_err();
        assert_eq!(e.to_string(), "reading the request timed out");
        drop(tx);
    }
}
