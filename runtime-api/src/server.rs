//! A small HTTP/1.1 accept loop shared by every front rapid serves.
//!
//! Every connection gets `TCP_NODELAY` and keep-alive, and may upgrade
//! (websockets through the watchdog's http mode); a failing connection is
//! logged and dropped without affecting the others. [`Options`] add what the
//! watchdog front needs: a header read timeout, a stop that lets open
//! connections finish their answers, and a count of open connections.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::{Service, ServiceExt};

use crate::gauge::Gauge;

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

/// How [`serve_with`] runs connections.
#[derive(Debug, Default, Clone)]
pub struct Options {
    /// Every request carries its connection's [`ConnFd`].
    pub tag: bool,
    /// Deadline for a request's headers (none by default: no timer per request).
    pub read_timeout: Option<Duration>,
    /// When it turns true: stop accepting; open connections finish the answer
    /// they are writing and close.
    pub stop: Option<watch::Receiver<bool>>,
    /// Counts open connections, so an exit can wait for their answers.
    pub connections: Option<Arc<Gauge>>,
    /// Every request carries its [`Peer`] (the client's address).
    pub peer: bool,
    /// Told when a connection ends on a request hyper could not parse (it
    /// answered a bare 400/431 and closed): the Runtime API fails the invoke
    /// such a request was most likely answering.
    pub malformed: Option<MalformedHook>,
}

/// What [`Options::malformed`] calls, with hyper's description of the fault.
#[derive(Clone)]
pub struct MalformedHook(pub Arc<dyn Fn(&str) + Send + Sync>);

impl std::fmt::Debug for MalformedHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MalformedHook")
    }
}

/// Like [`serve`], and every request carries its connection's [`ConnFd`].
pub async fn serve_tagged<S, B>(listener: TcpListener, name: &'static str, service: S)
where
    S: Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let opts = Options {
        tag: true,
        ..Options::default()
    };
    serve_with(listener, name, opts, service).await
}

/// Serve `service` (an axum `Router`, say) on every connection accepted from
/// `listener`, until the task running this future is dropped.
pub async fn serve<S, B>(listener: TcpListener, name: &'static str, service: S)
where
    S: Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    serve_with(listener, name, Options::default(), service).await
}

/// The client's address, in every request's extensions (as axum's
/// `ConnectInfo` reads it).
pub type Peer = axum::extract::ConnectInfo<std::net::SocketAddr>;

/// Serve `service` on every connection accepted from `listener` (HTTP/1.1,
/// upgrades allowed), as `opts` says; until `opts.stop` turns true or the task
/// running this future is dropped.
pub async fn serve_with<S, B>(listener: TcpListener, name: &'static str, opts: Options, service: S)
where
    S: Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut stop = opts.stop.clone();
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(pair) => pair,
                Err(e) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    tracing::warn!(api = name, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            _ = stopped(stop.as_mut()) => {
                tracing::debug!(api = name, "no longer accepting connections");
                return;
            }
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(api = name, error = %e, "set TCP_NODELAY failed");
        }
        let service = service.clone();
        let fd = opts
            .tag
            .then(|| ConnFd(std::os::fd::AsRawFd::as_raw_fd(&stream)));
        let live = opts.connections.as_ref().map(|g| g.enter().0);
        let mut stop = opts.stop.clone();
        let read_timeout = opts.read_timeout;
        let with_peer = opts.peer;
        let malformed = opts.malformed.clone();
        tokio::spawn(async move {
            let _live = live;
            let svc = service_fn(move |mut req: Request<Incoming>| {
                if with_peer {
                    req.extensions_mut()
                        .insert(axum::extract::ConnectInfo(peer));
                }
                if let Some(fd) = fd {
                    req.extensions_mut().insert(fd);
                }
                service.clone().oneshot(req)
            });
            let mut builder = http1::Builder::new();
            builder.keep_alive(true).max_buf_size(1024 * 1024);
            if read_timeout.is_some() {
                builder
                    .timer(TokioTimer::new())
                    .header_read_timeout(read_timeout);
            }
            let conn = builder
                .serve_connection(TokioIo::new(stream), svc)
                .with_upgrades();
            tokio::pin!(conn);
            let ended = match stop.as_mut() {
                // Nothing to watch besides the connection (the Lambda fronts).
                None => conn.await,
                Some(stop) => tokio::select! {
                    r = conn.as_mut() => r,
                    _ = stopped(Some(stop)) => {
                        conn.as_mut().graceful_shutdown();
                        conn.await
                    }
                },
            };
            if let Err(e) = ended {
                tracing::debug!(api = name, %peer, error = %e, "connection ended with an error");
                if let (true, Some(hook)) = (e.is_parse(), &malformed) {
                    (hook.0)(&e.to_string());
                }
            }
        });
    }
}

/// Resolves once `stop` is true (never without one, or once its sender is gone).
async fn stopped(stop: Option<&mut watch::Receiver<bool>>) {
    let Some(stop) = stop else {
        return std::future::pending().await;
    };
    while !*stop.borrow_and_update() {
        if stop.changed().await.is_err() {
            return std::future::pending().await;
        }
    }
}
