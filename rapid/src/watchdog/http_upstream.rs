//! http mode: the function is an HTTP server rapid starts once and proxies to.
//!
//! A supervisor task owns the process: it starts it, probes the upstream until
//! it answers (only then is the backend ready), and when the process exits it
//! either starts it again with back-off (`--restart always`) or leaves the
//! backend unhealthy (`--restart never`). Requests are proxied over a pool of
//! kept-alive connections with method, path, query, headers and body streamed
//! both ways; `Connection: upgrade` requests (websockets) are relayed byte for
//! byte after the upstream's 101.

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode, Uri};
use http_body::{Body as HttpBody, Frame};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use nix::sys::signal::Signal;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::backend::{Answer, Backend, Body, BoxError, BoxFuture, Call, Health, Outcome};
use super::config::Restart;
use super::logs::Logs;
use super::metrics::Metrics;
use crate::supervisor::{kill_group, kill_tree, ChildExit, Reaper, SpawnSpec};

/// Idle connections kept to the upstream.
const POOL_IDLE: usize = 64;
/// Grace between SIGTERM and SIGKILL when the function is stopped or recycled.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// The http backend.
pub struct HttpUpstream(Arc<Inner>);

struct Inner {
    program: PathBuf,
    args: Vec<String>,
    /// `host:port` to connect to.
    authority: String,
    /// A path prefix of the upstream URL (without the trailing slash).
    base_path: String,
    ready_path: Option<String>,
    buffer_request_body: bool,
    restart: Restart,
    reaper: Arc<Reaper>,
    logs: Logs,
    metrics: Arc<Metrics>,
    health: watch::Sender<Health>,
    /// The running process, if any.
    pid: Mutex<Option<i32>>,
    /// A recycle or stop is under way: an exit is expected.
    replacing: AtomicBool,
    stopping: AtomicBool,
    /// Wakes the supervisor out of its back-off (stop, recycle).
    wake: tokio::sync::Notify,
    /// Emptied between a replaced process and the next (one-shot recycle).
    scratch: Mutex<Option<PathBuf>>,
    pool: Pool,
}

type Pool = Arc<Mutex<Vec<SendRequest<Body>>>>;

/// Headers that belong to one connection, never forwarded.
const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

fn is_upgrade(h: &HeaderMap) -> bool {
    h.get(header::CONNECTION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
        })
        && h.contains_key(header::UPGRADE)
}

/// Drop hop-by-hop headers (those named in `Connection` too), unless the
/// request is an upgrade, whose `Connection`/`Upgrade` must reach the upstream.
fn strip_hop_by_hop(h: &mut HeaderMap, keep_upgrade: bool) {
    let named: Vec<HeaderName> = h
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|t| t.trim().to_ascii_lowercase()))
        .filter(|t| !t.is_empty() && t != "upgrade")
        .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
        .collect();
    for n in named {
        h.remove(n);
    }
    for n in HOP_BY_HOP {
        if keep_upgrade && (n == header::CONNECTION || n == header::UPGRADE) {
            continue;
        }
        h.remove(n);
    }
}

impl HttpUpstream {
    /// Proxy to `upstream`, running `command`.
    pub fn new(
        command: &[String],
        upstream: &Uri,
        cfg: &super::config::WatchdogConfig,
        reaper: Arc<Reaper>,
        logs: Logs,
        metrics: Arc<Metrics>,
    ) -> HttpUpstream {
        let (program, args) = command.split_first().map_or_else(
            || (PathBuf::new(), Vec::new()),
            |(p, a)| (PathBuf::from(p), a.to_vec()),
        );
        let authority = upstream.authority().map_or_else(String::new, |a| {
            if a.port().is_some() {
                a.to_string()
            } else {
                format!("{a}:80")
            }
        });
        HttpUpstream(Arc::new(Inner {
            program,
            args,
            authority,
            base_path: upstream.path().trim_end_matches('/').to_owned(),
            ready_path: cfg.ready_path.clone(),
            buffer_request_body: cfg.buffer_request_body,
            restart: cfg.restart,
            reaper,
            logs,
            metrics,
            health: watch::Sender::new(Health::Starting),
            pid: Mutex::new(None),
            replacing: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            wake: tokio::sync::Notify::new(),
            scratch: Mutex::new(None),
            pool: Pool::default(),
        }))
    }
}

impl Inner {
    fn set_health(&self, h: Health) {
        self.health.send_replace(h);
    }

    /// Start the process once; its exits arrive on `exits`.
    fn spawn(&self, exits: mpsc::UnboundedSender<ChildExit>) -> Result<i32, String> {
        let spec = SpawnSpec {
            program: self.program.clone(),
            args: self.args.clone(),
            env: std::env::vars().collect(),
        };
        let child = self
            .reaper
            .spawn(&spec, exits)
            .map_err(|e| format!("cannot start {}: {e}", self.program.display()))?;
        self.logs.forward(child.stdout, "stdout", None, None);
        self.logs.forward(child.stderr, "stderr", None, None);
        *self.pid.lock().unwrap_or_else(|p| p.into_inner()) = Some(child.pid);
        Ok(child.pid)
    }

    /// Until the upstream answers: any HTTP answer on `/`, or a 2xx on the ready path.
    async fn probe_until_ready(&self) {
        let path = self.ready_path.clone().unwrap_or_else(|| "/".into());
        let mut pause = Duration::from_millis(2);
        loop {
            let attempt = tokio::time::timeout(Duration::from_secs(2), self.get(&path)).await;
            match attempt.map(|r| r.map(|resp| resp.status())) {
                Ok(Ok(status)) if self.ready_path.is_none() || status.is_success() => return,
                Ok(Ok(status)) => tracing::debug!(%status, "upstream not ready yet"),
                Ok(Err(e)) => tracing::trace!(error = %e, "upstream not answering yet"),
                Err(_) => tracing::debug!("readiness probe timed out"),
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(100));
        }
    }

    /// `GET path` on the upstream (readiness probes), the answer read whole.
    async fn get(&self, path: &str) -> Result<Response<Bytes>, BoxError> {
        let mut sender = self.checkout().await?;
        let req = Request::get(format!("{}{path}", self.base_path))
            .header(header::HOST, &self.authority)
            .header("user-agent", "rapid-readiness-probe")
            .body(super::backend::full(Bytes::new()))?;
        let (parts, body) = sender.send_request(req).await?.into_parts();
        let bytes = body.collect().await?.to_bytes();
        self.checkin(sender);
        Ok(Response::from_parts(parts, bytes))
    }

    async fn connect(&self) -> Result<SendRequest<Body>, BoxError> {
        let stream = tokio::net::TcpStream::connect(&self.authority).await?;
        let _ = stream.set_nodelay(true);
        let (sender, conn) = hyper::client::conn::http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(error = %e, "upstream connection ended with an error");
            }
        });
        Ok(sender)
    }

    /// A ready connection from the pool, or a new one. A pooled connection
    /// still busy (an upstream that answered before it read the whole request
    /// body) is kept for later, not waited for.
    async fn checkout(&self) -> Result<SendRequest<Body>, BoxError> {
        let mut busy = Vec::new();
        let found = loop {
            let pooled = self.pool.lock().unwrap_or_else(|p| p.into_inner()).pop();
            let Some(mut s) = pooled else { break None };
            if s.is_closed() {
                continue;
            }
            let ready = std::future::poll_fn(|cx| std::task::Poll::Ready(s.poll_ready(cx))).await;
            match ready {
                std::task::Poll::Ready(Ok(())) => break Some(s),
                std::task::Poll::Ready(Err(_)) => continue,
                std::task::Poll::Pending => busy.push(s),
            }
        };
        for s in busy {
            self.checkin(s);
        }
        match found {
            Some(s) => Ok(s),
            None => self.connect().await,
        }
    }

    fn checkin(&self, s: SendRequest<Body>) {
        checkin(&self.pool, s);
    }

    /// Own the process: start, probe, restart or give up; returns when stopped.
    async fn supervise(self: Arc<Self>) {
        let mut backoff = Duration::from_millis(100);
        loop {
            if self.stopping.load(Ordering::SeqCst) {
                self.set_health(Health::Unhealthy("stopped".into()));
                return;
            }
            let (exits_tx, mut exits) = mpsc::unbounded_channel();
            self.set_health(Health::Starting);
            let started = Instant::now();
            let reason = match self.spawn(exits_tx) {
                Err(why) => {
                    tracing::error!("{why}");
                    why
                }
                Ok(pid) => {
                    tracing::info!(pid, program = %self.program.display(), "function process started");
                    let exited = tokio::select! {
                        _ = self.probe_until_ready() => {
                            tracing::info!(
                                pid,
                                upstream = %self.authority,
                                ready_ms = started.elapsed().as_millis() as u64,
                                "upstream ready"
                            );
                            self.set_health(Health::Ready);
                            exits.recv().await
                        }
                        e = exits.recv() => e,
                    };
                    *self.pid.lock().unwrap_or_else(|p| p.into_inner()) = None;
                    kill_group(pid, Signal::SIGKILL);
                    self.pool.lock().unwrap_or_else(|p| p.into_inner()).clear();
                    let reason = exited.map_or_else(|| "lost".to_owned(), |e| e.reason.to_string());
                    format!("the function process exited ({reason})")
                }
            };
            if self.stopping.load(Ordering::SeqCst) {
                self.set_health(Health::Unhealthy("stopped".into()));
                return;
            }
            if self.replacing.swap(false, Ordering::SeqCst) {
                // The old process is gone; the next one gets a clean scratch.
                if let Some(dir) = self
                    .scratch
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .take()
                {
                    crate::scratch::wipe(&dir);
                }
                backoff = Duration::from_millis(100);
                continue;
            }
            match self.restart {
                Restart::Never => {
                    tracing::error!("{reason}; --restart never: the function stays down");
                    self.set_health(Health::Unhealthy(reason));
                    return;
                }
                Restart::Always => {
                    self.metrics.reset();
                    if started.elapsed() > Duration::from_secs(10) {
                        backoff = Duration::from_millis(100);
                    }
                    tracing::warn!(
                        retry_in_ms = backoff.as_millis() as u64,
                        "{reason}; restarting it"
                    );
                    // A stop or a recycle cuts the back-off short.
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = self.wake.notified() => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    /// SIGTERM the process group, SIGKILL the tree after the grace period.
    async fn terminate(&self) {
        let pid = *self.pid.lock().unwrap_or_else(|p| p.into_inner());
        let Some(pid) = pid else { return };
        kill_group(pid, Signal::SIGTERM);
        let mut health = self.health.subscribe();
        let gone = tokio::time::timeout(STOP_GRACE, async {
            loop {
                // Gone once the supervisor let go of it (it may already
                // have started the next one).
                if *self.pid.lock().unwrap_or_else(|p| p.into_inner()) != Some(pid) {
                    return;
                }
                if health.changed().await.is_err() {
                    return;
                }
            }
        })
        .await;
        if gone.is_err() {
            tracing::warn!(pid, "the function ignored SIGTERM; killing it");
            kill_tree(pid);
        }
    }

    async fn proxy(&self, mut req: Request<Body>, call: Call) -> Answer {
        let upgrade = is_upgrade(req.headers());
        let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
        let (mut parts, body) = req.into_parts();
        strip_hop_by_hop(&mut parts.headers, upgrade);
        if let Ok(v) = HeaderValue::from_str(&call.id) {
            parts.headers.insert("x-call-id", v);
        }
        let pq = parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
        parts.uri = if self.base_path.is_empty() {
            Uri::from(pq)
        } else {
            match format!("{}{pq}", self.base_path).parse::<Uri>() {
                Ok(u) => u,
                Err(e) => {
                    return Answer::failed(
                        StatusCode::BAD_REQUEST,
                        format!("cannot forward the path {pq:?}: {e}"),
                        Outcome::Error,
                    )
                }
            }
        };
        parts.version = http::Version::HTTP_11;
        if !parts.headers.contains_key(header::HOST) {
            if let Ok(v) = HeaderValue::from_str(&self.authority) {
                parts.headers.insert(header::HOST, v);
            }
        }
        let body = if self.buffer_request_body {
            let collected = tokio::select! {
                r = super::backend::read_body(body, super::backend::MAX_BUFFERED_BODY) => r,
                _ = call.expired() => return call.timeout_answer(),
            };
            match collected {
                Ok(b) => {
                    parts.headers.remove(header::TRANSFER_ENCODING);
                    parts
                        .headers
                        .insert(header::CONTENT_LENGTH, HeaderValue::from(b.len()));
                    super::backend::full(b)
                }
                Err(answer) => return answer,
            }
        } else {
            body
        };
        let forwarded = Request::from_parts(parts, body);
        let exchange = async {
            let mut sender = self
                .checkout()
                .await
                .map_err(|e| format!("cannot reach the upstream at {}: {e}", self.authority))?;
            let failed =
                |e: &hyper::Error| format!("the upstream at {} failed: {e}", self.authority);
            let resp = match sender.try_send_request(forwarded).await {
                Ok(r) => r,
                // A pooled connection the upstream closed before the request
                // went out: the request comes back and goes on a fresh one.
                Err(mut e) => match e.take_message() {
                    Some(again) => {
                        tracing::debug!(error = %e.error(), "pooled connection unusable; reconnecting");
                        sender = self.connect().await.map_err(|e| {
                            format!("cannot reach the upstream at {}: {e}", self.authority)
                        })?;
                        sender.send_request(again).await.map_err(|e| failed(&e))?
                    }
                    None => return Err(failed(e.error())),
                },
            };
            Ok::<_, String>((sender, resp))
        };
        let (sender, mut resp) = tokio::select! {
            r = exchange => match r {
                Ok(pair) => pair,
                Err(why) => {
                    tracing::warn!("{why}");
                    return Answer::failed(StatusCode::BAD_GATEWAY, why, Outcome::Error);
                }
            },
            _ = call.expired() => return call.timeout_answer(),
        };
        let outcome = if resp.status().is_server_error() {
            Outcome::Error
        } else {
            Outcome::Success
        };
        if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
            if let Some(client) = client_upgrade {
                let upstream = hyper::upgrade::on(&mut resp);
                tokio::spawn(relay_upgraded(client, upstream));
            }
            let (parts, _) = resp.into_parts();
            return Answer {
                response: Response::from_parts(parts, super::backend::full(Bytes::new())),
                outcome,
            };
        }
        let (mut parts, body) = resp.into_parts();
        strip_hop_by_hop(&mut parts.headers, false);
        let body = PoolReturn {
            inner: body,
            sender: Some(sender),
            pool: self.pool.clone(),
        };
        Answer {
            response: Response::from_parts(parts, body.boxed_unsync()),
            outcome,
        }
    }
}

fn checkin(pool: &Pool, s: SendRequest<Body>) {
    if s.is_closed() {
        return;
    }
    let mut pool = pool.lock().unwrap_or_else(|p| p.into_inner());
    if pool.len() < POOL_IDLE {
        pool.push(s);
    }
}

/// The upstream's response body; once it has been read to the end its
/// connection goes back to the pool (a body dropped early closes it).
struct PoolReturn {
    inner: Incoming,
    sender: Option<SendRequest<Body>>,
    pool: Pool,
}

impl PoolReturn {
    fn release(&mut self) {
        if let Some(s) = self.sender.take() {
            checkin(&self.pool, s);
        }
    }
}

impl Drop for PoolReturn {
    fn drop(&mut self) {
        // A server that saw `is_end_stream` never polls to the end.
        if self.inner.is_end_stream() {
            self.release();
        }
    }
}

impl HttpBody for PoolReturn {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let r = Pin::new(&mut self.inner).poll_frame(cx);
        match r {
            Poll::Ready(None) => {
                self.release();
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(e))) => {
                self.sender = None;
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Ready(Some(Ok(f))) => {
                if self.inner.is_end_stream() {
                    self.release();
                }
                Poll::Ready(Some(Ok(f)))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// After a 101: copy bytes both ways between the client and the upstream.
async fn relay_upgraded(client: hyper::upgrade::OnUpgrade, upstream: hyper::upgrade::OnUpgrade) {
    let (client, upstream) = match tokio::try_join!(client, upstream) {
        Ok(pair) => pair,
        Err(e) => {
            tracing::warn!(error = %e, "upgrade failed");
            return;
        }
    };
    let mut client = TokioIo::new(client);
    let mut upstream = TokioIo::new(upstream);
    match tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
        Ok((up, down)) => tracing::debug!(up, down, "upgraded connection closed"),
        Err(e) => tracing::debug!(error = %e, "upgraded connection ended with an error"),
    }
}

impl Backend for HttpUpstream {
    fn start(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            tokio::spawn(self.0.clone().supervise());
            Ok(())
        })
    }

    fn call(&self, req: Request<Body>, call: Call) -> BoxFuture<'_, Answer> {
        Box::pin(self.0.proxy(req, call))
    }

    fn health(&self) -> Health {
        self.0.health.borrow().clone()
    }

    fn settled(&self) -> BoxFuture<'_, Health> {
        Box::pin(async move {
            let mut rx = self.0.health.subscribe();
            let settled = rx
                .wait_for(|h| *h != Health::Starting)
                .await
                .map(|h| h.clone());
            settled.unwrap_or_else(|_| Health::Unhealthy("stopped".into()))
        })
    }

    fn health_changed(&self) -> BoxFuture<'_, ()> {
        // Subscribed now, not when first polled: a change after this call counts.
        let mut rx = self.0.health.subscribe();
        Box::pin(async move {
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        })
    }

    fn ready_probe(&self) -> Option<BoxFuture<'_, Response<Body>>> {
        let path = self.0.ready_path.clone()?;
        Some(Box::pin(async move {
            let exchange = self.0.get(&path);
            match tokio::time::timeout(Duration::from_secs(5), exchange).await {
                Ok(Ok(r)) => r.map(super::backend::full),
                Ok(Err(e)) => super::backend::text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("the ready path {path} failed: {e}"),
                ),
                Err(_) => super::backend::text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("the ready path {path} did not answer within 5s"),
                ),
            }
        }))
    }

    fn recycle<'a>(&'a self, scratch: Option<&'a Path>) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let inner = &self.0;
            // Unhealthy is final: stopped, or down with `--restart never`.
            if matches!(*inner.health.borrow(), Health::Unhealthy(_)) {
                return Err("the function is down and not restarted".into());
            }
            let running = inner
                .pid
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .is_some();
            inner.set_health(Health::Starting);
            if running {
                // The supervisor wipes the scratch once the old process is gone.
                *inner.scratch.lock().unwrap_or_else(|p| p.into_inner()) =
                    scratch.map(Path::to_path_buf);
                inner.replacing.store(true, Ordering::SeqCst);
                inner.terminate().await;
            } else {
                // Between a crash and its restart: nothing runs, start now.
                if let Some(dir) = scratch {
                    crate::scratch::wipe(dir);
                }
                inner.wake.notify_one();
            }
            match self.settled().await {
                Health::Ready => Ok(()),
                Health::Starting => Err("the fresh function did not start".into()),
                Health::Unhealthy(why) => Err(format!("the fresh function did not start: {why}")),
            }
        })
    }

    fn stop(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let inner = &self.0;
            inner.stopping.store(true, Ordering::SeqCst);
            inner.wake.notify_one();
            inner.terminate().await;
            let mut health = inner.health.subscribe();
            let stopped = health.wait_for(|h| matches!(h, Health::Unhealthy(_)));
            let _ = tokio::time::timeout(Duration::from_secs(1), stopped).await;
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_stay_behind() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        h.insert("x-kept", HeaderValue::from_static("yes"));
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-kept"));
    }

    #[test]
    fn upgrades_keep_their_headers() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        assert!(is_upgrade(&h));
        strip_hop_by_hop(&mut h, true);
        assert!(h.contains_key(header::CONNECTION) && h.contains_key(header::UPGRADE));
    }
}
