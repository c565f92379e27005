//! The watchdog's accept loop: HTTP/1.1 with upgrades (websockets pass
//! through), the read timeout on request headers, and a stop signal that
//! ends accepting while connections already open finish what they carry.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::backend::Body;
use crate::gauge::Gauge;

/// Serve `handler` on `listener` until `stop` turns true; then connections
/// finish the answer they are writing and close (keep-alive ends).
pub async fn serve<F, Fut>(
    listener: TcpListener,
    name: &'static str,
    read_timeout: Option<Duration>,
    mut stop: watch::Receiver<bool>,
    connections: Arc<Gauge>,
    handler: F,
) where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(api = name, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            _ = stopped(&mut stop) => {
                tracing::debug!(api = name, "no longer accepting connections");
                return;
            }
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(api = name, error = %e, "set TCP_NODELAY failed");
        }
        let handler = handler.clone();
        // Open connections are counted, so an exit can wait for their answers.
        let (live, _) = connections.enter();
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let _live = live;
            let svc = service_fn(move |req: Request<Incoming>| {
                let fut = handler(req);
                async move { Ok::<_, Infallible>(fut.await) }
            });
            let mut builder = http1::Builder::new();
            builder
                .keep_alive(true)
                .timer(TokioTimer::new())
                .header_read_timeout(read_timeout)
                .max_buf_size(1024 * 1024);
            let conn = builder
                .serve_connection(TokioIo::new(stream), svc)
                .with_upgrades();
            tokio::pin!(conn);
            let ended = tokio::select! {
                r = conn.as_mut() => r,
                _ = stopped(&mut stop) => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = ended {
                tracing::debug!(api = name, %peer, error = %e, "connection ended with an error");
            }
        });
    }
}

async fn stopped(stop: &mut watch::Receiver<bool>) {
    while !*stop.borrow_and_update() {
        if stop.changed().await.is_err() {
            return;
        }
    }
}
