//! http mode: the function is an HTTP server rapid starts once and proxies to.
//!
//! * `supervisor.rs` — the one owner of the process: start, probe, restart.
//! * `pool.rs` — kept-alive connections to the upstream.
//! * `proxy.rs` — forwarding one request (and upgrades).

mod pool;
mod proxy;
mod supervisor;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Request, Response, StatusCode, Uri};
use tokio::sync::watch;

use super::backend::{text, Backend, Call, CallResult};
use super::config::{Program, Restart};
use super::logs::Logs;
use crate::sandbox::{Body, BoxFuture, Health, Stats};
use crate::supervisor::Reaper;

/// The http backend.
pub struct HttpUpstream(Arc<Inner>);

struct Inner {
    program: Program,
    ready_path: Option<String>,
    buffer_request_body: bool,
    restart: Restart,
    reaper: Arc<Reaper>,
    logs: Logs,
    stats: Arc<Stats>,
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
    pool: pool::Pool,
    /// The upstream's port, the server's `PORT` (so that a server that reads
    /// `PORT`, as Knative's and Cloud Run's do, binds its own, not rapid's).
    port: u16,
}

/// What the http backend is made of.
pub struct HttpParts {
    /// The server process.
    pub program: Program,
    /// Where it listens.
    pub upstream: Uri,
    /// Read request bodies whole first.
    pub buffer_request_body: bool,
    /// `/_/ready` passes through to this path.
    pub ready_path: Option<String>,
    /// What to do when it exits.
    pub restart: Restart,
}

impl HttpUpstream {
    /// Proxy to `parts.upstream`, running `parts.program`; restarts count in `stats`.
    pub fn new(parts: HttpParts, reaper: Arc<Reaper>, logs: Logs, stats: Arc<Stats>) -> Self {
        let authority = parts.upstream.authority().map_or_else(String::new, |a| {
            if a.port().is_some() {
                a.to_string()
            } else {
                format!("{a}:80")
            }
        });
        let base_path = parts.upstream.path().trim_end_matches('/').to_owned();
        let port = parts.upstream.port_u16().unwrap_or(80);
        HttpUpstream(Arc::new(Inner {
            program: parts.program,
            ready_path: parts.ready_path,
            buffer_request_body: parts.buffer_request_body,
            restart: parts.restart,
            reaper,
            logs,
            stats,
            health: watch::Sender::new(Health::Starting),
            pid: Mutex::new(None),
            replacing: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            wake: tokio::sync::Notify::new(),
            scratch: Mutex::new(None),
            pool: pool::Pool::new(authority, base_path),
            port,
        }))
    }

    async fn settled(&self) -> Health {
        let mut rx = self.0.health.subscribe();
        let settled = rx
            .wait_for(|h| *h != Health::Starting)
            .await
            .map(|h| h.clone());
        settled.unwrap_or_else(|_| Health::Unhealthy("stopped".into()))
    }
}

impl Backend for HttpUpstream {
    fn start(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            tokio::spawn(self.0.clone().supervise());
            Ok(())
        })
    }

    fn call(&self, req: Request<Body>, call: Call) -> BoxFuture<'_, CallResult> {
        Box::pin(self.0.proxy(req, call))
    }

    fn health(&self) -> Option<watch::Receiver<Health>> {
        Some(self.0.health.subscribe())
    }

    fn pid(&self) -> Option<i32> {
        *self.0.pid.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn ready_probe(&self) -> Option<BoxFuture<'_, Response<Body>>> {
        let path = self.0.ready_path.clone()?;
        Some(Box::pin(async move {
            let exchange = self.0.pool.get(&path);
            match tokio::time::timeout(Duration::from_secs(5), exchange).await {
                Ok(Ok(r)) => r.map(Body::from),
                Ok(Err(e)) => text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("the ready path {path} failed: {e}"),
                ),
                Err(_) => text(
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
