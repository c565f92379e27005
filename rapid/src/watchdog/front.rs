//! The watchdog front (OpenFaaS conventions): any path invokes the function;
//! `/_/health` and `/_/ready`; `max_inflight` (429); `X-Call-Id`,
//! `X-Duration-Seconds`, `X-Timeout`; the one-shot gate; metrics for every
//! request, counted when its body has been sent (or abandoned).

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body::{Body as HttpBody, Frame};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::Instrument;

use super::backend::{text, Backend, Body, BoxError, Call, Deadline, Health};
use super::config::WatchdogConfig;
use super::metrics::Metrics;

/// The one-shot gate's states.
const GATE_OPEN: u8 = 0;
const GATE_TAKEN: u8 = 1;

/// The front's shared state.
pub struct Front {
    cfg: Arc<WatchdogConfig>,
    backend: Arc<dyn Backend>,
    metrics: Arc<Metrics>,
    /// SIGTERM arrived: health and readiness answer 503.
    draining: AtomicBool,
    /// The drain delay is over: requests answer 503.
    closed: AtomicBool,
    gate: AtomicU8,
    /// The one-shot request finished.
    one_shot_done: mpsc::UnboundedSender<()>,
}

impl Front {
    /// A front over `backend`; the receiver hears when the one-shot request is over.
    pub fn new(
        cfg: Arc<WatchdogConfig>,
        backend: Arc<dyn Backend>,
        metrics: Arc<Metrics>,
    ) -> (Arc<Front>, mpsc::UnboundedReceiver<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let front = Arc::new(Front {
            cfg,
            backend,
            metrics,
            draining: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            gate: AtomicU8::new(GATE_OPEN),
            one_shot_done: tx,
        });
        (front, rx)
    }

    /// Unready from now on (requests are still served).
    pub fn drain(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// Whether SIGTERM (or a shutdown) made it unready.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Refuse requests from now on.
    pub fn close(&self) {
        self.draining.store(true, Ordering::SeqCst);
        self.closed.store(true, Ordering::SeqCst);
    }

    /// Let the next one-shot request in (after a recycle).
    pub fn reopen_gate(&self) {
        self.gate.store(GATE_OPEN, Ordering::SeqCst);
    }

    /// Wait until no request is in flight, at most `limit`; whether it got there.
    pub async fn wait_idle(&self, limit: Duration) -> bool {
        self.metrics.in_flight.wait_idle(limit).await
    }

    fn health(&self) -> Response<Body> {
        if self.draining.load(Ordering::SeqCst) {
            return text(
                StatusCode::SERVICE_UNAVAILABLE,
                "draining: rapid is shutting down",
            );
        }
        match self.backend.health() {
            Health::Ready => text(StatusCode::OK, "OK"),
            Health::Starting => text(
                StatusCode::SERVICE_UNAVAILABLE,
                "starting: the function is not ready yet",
            ),
            Health::Unhealthy(why) => {
                text(StatusCode::SERVICE_UNAVAILABLE, format!("unhealthy: {why}"))
            }
        }
    }

    async fn ready(&self) -> Response<Body> {
        if self.cfg.one_shot.is_some() && self.gate.load(Ordering::SeqCst) != GATE_OPEN {
            return text(
                StatusCode::SERVICE_UNAVAILABLE,
                "one-shot: this sandbox is serving its one request",
            );
        }
        if let Some(limit) = self.cfg.max_inflight {
            if self.metrics.in_flight() >= limit {
                return text(
                    StatusCode::TOO_MANY_REQUESTS,
                    format!("at max_inflight: {limit} requests in flight"),
                );
            }
        }
        let h = self.health();
        if h.status() != StatusCode::OK {
            return h;
        }
        match self.backend.ready_probe() {
            Some(probe) => probe.await,
            None => h,
        }
    }

    /// Answer one request.
    pub async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Response<Body> {
        match req.uri().path() {
            "/_/health" => self.health(),
            "/_/ready" => self.ready().await,
            _ => {
                let req = self.with_read_deadline(req);
                self.invoke(req).await
            }
        }
    }

    /// The request with its body bounded by the read timeout.
    pub fn with_read_deadline(&self, req: Request<Incoming>) -> Request<Body> {
        let read_timeout = self.cfg.read_timeout;
        req.map(|b| Deadline::new(b, read_timeout, "reading the request body").boxed_unsync())
    }

    fn is_probe(&self, path: &str) -> bool {
        self.cfg.ready_path.as_deref() == Some(path)
    }

    /// Serve one request to the function (not a probe path).
    pub async fn invoke(self: Arc<Self>, req: Request<Body>) -> Response<Body> {
        if self.closed.load(Ordering::SeqCst) {
            self.metrics
                .finished(req.method().as_str(), 503, Duration::ZERO);
            let mut r = text(StatusCode::SERVICE_UNAVAILABLE, "rapid is shutting down");
            r.headers_mut()
                .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
            return r;
        }
        let one_shot = self.cfg.one_shot.is_some() && !self.is_probe(req.uri().path());
        if one_shot
            && self
                .gate
                .compare_exchange(GATE_OPEN, GATE_TAKEN, Ordering::SeqCst, Ordering::SeqCst)
                .is_err()
        {
            self.metrics
                .finished(req.method().as_str(), 503, Duration::ZERO);
            return text(
                StatusCode::SERVICE_UNAVAILABLE,
                "one-shot: this sandbox has served its request and is being replaced",
            );
        }
        let (serving, n) = self.metrics.in_flight.enter();
        let guard = Guard {
            front: self.clone(),
            method: req.method().as_str().to_owned(),
            code: 0,
            start: Instant::now(),
            one_shot,
            _serving: serving,
        };
        if let Some(limit) = self.cfg.max_inflight {
            if n > limit {
                let mut g = guard;
                g.one_shot = false;
                if one_shot {
                    self.reopen_gate();
                }
                g.code = 429;
                return text(
                    StatusCode::TOO_MANY_REQUESTS,
                    format!("Concurrent request limit exceeded. Max concurrent requests: {limit}"),
                );
            }
        }
        let call_id = req
            .headers()
            .get("x-call-id")
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
            .unwrap_or_else(|| interop::RequestId::generate().to_string());
        let span = tracing::info_span!("call", call_id = %call_id);
        self.clone()
            .invoke_inner(req, call_id, guard)
            .instrument(span)
            .await
    }

    async fn invoke_inner(
        self: Arc<Self>,
        req: Request<Body>,
        call_id: String,
        mut guard: Guard,
    ) -> Response<Body> {
        // rapid's own refusals carry the call headers too, and count with their status.
        let refuse = |guard: &mut Guard, status: StatusCode, message: String| {
            guard.code = status.as_u16();
            with_call_headers(text(status, message), &call_id, guard.start)
        };
        let mut budget = self.cfg.exec_timeout;
        if let Some(v) = req.headers().get("x-timeout") {
            match v
                .to_str()
                .map_err(|_| "not text".to_owned())
                .and_then(crate::config::parse_duration)
            {
                Ok(d) => budget = Some(budget.map_or(d, |b| b.min(d))),
                Err(why) => {
                    return refuse(
                        &mut guard,
                        StatusCode::BAD_REQUEST,
                        format!("X-Timeout: {why}"),
                    )
                }
            }
        }
        let call = Call {
            id: call_id.clone(),
            // A budget too large to add is no deadline at all.
            deadline: budget.and_then(|b| guard.start.checked_add(b)),
            budget,
        };
        // A function still starting (or restarting) gets until the deadline.
        let health = match self.backend.health() {
            Health::Starting => {
                tokio::select! {
                    h = self.backend.settled() => h,
                    _ = call.expired() => Health::Starting,
                }
            }
            h => h,
        };
        match health {
            Health::Ready => {}
            Health::Starting => {
                return refuse(
                    &mut guard,
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the function did not become ready within the exec timeout".into(),
                )
            }
            Health::Unhealthy(why) => {
                return refuse(
                    &mut guard,
                    StatusCode::BAD_GATEWAY,
                    format!("the function is down: {why}"),
                )
            }
        }
        let answer = self.backend.call(req, call).await;
        self.metrics.invoked(answer.outcome.label());
        let (parts, body) = answer.response.into_parts();
        guard.code = parts.status.as_u16();
        tracing::debug!(
            status = guard.code,
            outcome = answer.outcome.label(),
            "answered"
        );
        let start = guard.start;
        let body = Tracked {
            inner: Deadline::new(body, self.cfg.write_timeout, "writing the response"),
            call_id: call_id.clone(),
            _guard: guard,
        };
        with_call_headers(
            Response::from_parts(parts, body.boxed_unsync()),
            &call_id,
            start,
        )
    }
}

fn with_call_headers(mut r: Response<Body>, call_id: &str, start: Instant) -> Response<Body> {
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(call_id) {
        h.insert("x-call-id", v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("{:.6}", start.elapsed().as_secs_f64())) {
        h.insert("x-duration-seconds", v);
    }
    r
}

/// Held while a request is served: its end updates the counters, leaves the
/// in-flight gauge (waking a drain waiting for idle), and reports the
/// one-shot request done.
struct Guard {
    front: Arc<Front>,
    method: String,
    code: u16,
    start: Instant,
    one_shot: bool,
    _serving: crate::gauge::Held,
}

impl Drop for Guard {
    fn drop(&mut self) {
        let f = &self.front;
        f.metrics
            .finished(&self.method, self.code, self.start.elapsed());
        if self.one_shot {
            let _ = f.one_shot_done.send(());
        }
    }
}

/// A response body that holds its request's [`Guard`] until it is sent or dropped.
struct Tracked<B> {
    inner: B,
    call_id: String,
    _guard: Guard,
}

impl<B> HttpBody for Tracked<B>
where
    B: HttpBody<Data = Bytes, Error = BoxError> + Unpin,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let r = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Err(e))) = &r {
            tracing::warn!(call_id = %self.call_id, error = %e, "response cut short");
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
