//! A small HTTP/1.1 accept loop shared by every front rapid serves.
//!
//! Every connection gets `TCP_NODELAY` and keep-alive; a failing connection is
//! logged and dropped without affecting the others.

use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// The socket a request arrived on, for handlers that tune it (TCP_QUICKACK
/// while a streamed body arrives). Only set by [`serve_tagged`].
#[derive(Debug, Clone, Copy)]
pub struct ConnFd(pub std::os::fd::RawFd);

impl ConnFd {
    /// Acknowledge received data at once instead of after the delayed-ACK
    /// timer: a peer that writes small pieces with Nagle on (hyper's client
    /// does) would otherwise stall ~40 ms between them. Linux resets the
    /// option by itself, so callers set it before each read.
    pub fn quickack(self) {
        let one: libc::c_int = 1;
        // SAFETY: setsockopt on a socket fd that the connection owns for the
        // lifetime of the request; a stale fd only yields an error.
        unsafe {
            libc::setsockopt(
                self.0,
                libc::IPPROTO_TCP,
                libc::TCP_QUICKACK,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
}

/// Like [`serve`], and every request carries its connection's [`ConnFd`].
pub async fn serve_tagged<F, Fut, B>(listener: TcpListener, name: &'static str, handler: F)
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Response<B>> + Send + 'static,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    serve_inner(listener, name, true, handler).await
}

/// Serve `handler` on every connection accepted from `listener`, until the task
/// running this future is dropped.
pub async fn serve<F, Fut, B>(listener: TcpListener, name: &'static str, handler: F)
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Response<B>> + Send + 'static,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    serve_inner(listener, name, false, handler).await
}

async fn serve_inner<F, Fut, B>(listener: TcpListener, name: &'static str, tag: bool, handler: F)
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Response<B>> + Send + 'static,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(pair) => pair,
            Err(e) => {
                // EMFILE and friends: back off briefly instead of spinning.
                tracing::warn!(api = name, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(api = name, error = %e, "set TCP_NODELAY failed");
        }
        let handler = handler.clone();
        let fd = tag.then(|| ConnFd(std::os::fd::AsRawFd::as_raw_fd(&stream)));
        tokio::spawn(async move {
            let svc = service_fn(move |mut req: Request<Incoming>| {
                if let Some(fd) = fd {
                    req.extensions_mut().insert(fd);
                }
                let fut = handler(req);
                async move { Ok::<_, Infallible>(fut.await) }
            });
            let conn = http1::Builder::new()
                .keep_alive(true)
                .max_buf_size(1024 * 1024)
                .serve_connection(TokioIo::new(stream), svc);
            if let Err(e) = conn.await {
                tracing::debug!(api = name, %peer, error = %e, "connection ended with an error");
            }
        });
    }
}
