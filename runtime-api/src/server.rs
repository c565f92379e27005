//! A small HTTP/1.1 accept loop shared by every front rapid serves.
//!
//! Every connection gets `TCP_NODELAY` and keep-alive, may upgrade
//! (websockets through the watchdog's http mode) and may half-close (a
//! client's `shutdown(SHUT_WR)` after a whole request still gets its
//! answer); a failing connection is logged and dropped without affecting the
//! others, and accept errors (`EMFILE`) back off. [`Options`] add what the
//! fronts callers outside the sandbox reach need: [`Limits`] (header, body
//! and idle timeouts), a bound on open connections ([`Slots`]), a stop that
//! lets open connections finish their answers, and a count of open
//! connections.

mod idle;
mod limits;
mod stalled;

pub use idle::Tracked;
pub use limits::{
    default_max_connections, Limits, Slot, Slots, BODY_TIMEOUT, FD_RESERVE, HEADER_TIMEOUT,
    IDLE_TIMEOUT,
};
pub use stalled::{BodyStalled, Stalling};

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
/// while a streamed body arrives). Only set by [`serve_tagged`], on requests
/// that carry `Lambda-Runtime-Function-Response-Mode` (a response that may
/// stream).
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
#[derive(Debug, Clone)]
pub struct Options {
    /// Requests that may stream a response carry their connection's [`ConnFd`].
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
    /// Header, body and idle timeouts ([`Limits::NONE`] by default: the
    /// sandbox's own APIs wait by design).
    pub limits: Limits,
    /// The bound on open connections (shared by the fronts that hold it).
    pub slots: Option<Arc<Slots>>,
    /// A client's end of file while its request is in flight is a
    /// half-close: it still gets the answer. Off, it means the client left
    /// and the request is dropped (the OpenFaaS front: a forked process
    /// goes with its client).
    pub half_close: bool,
    /// Told when a connection ends on a request hyper could not parse (it
    /// answered a bare 400/431 and closed): the Runtime API fails the invoke
    /// such a request was most likely answering.
    pub malformed: Option<MalformedHook>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            tag: false,
            read_timeout: None,
            stop: None,
            connections: None,
            peer: false,
            limits: Limits::NONE,
            slots: None,
            half_close: true,
            malformed: None,
        }
    }
}

/// What [`Options::malformed`] calls, with hyper's description of the fault.
#[derive(Clone)]
pub struct MalformedHook(pub Arc<dyn Fn(&str) + Send + Sync>);

impl std::fmt::Debug for MalformedHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MalformedHook")
    }
}

/// Like [`serve`], and requests that may stream a response carry their
/// connection's [`ConnFd`].
pub async fn serve_tagged<S, B>(listener: TcpListener, name: &'static str, service: S)
where
    S: Service<Request<axum::body::Body>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Body<Data = Bytes> + Send + Unpin + 'static,
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
    S: Service<Request<axum::body::Body>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Body<Data = Bytes> + Send + Unpin + 'static,
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
    S: Service<Request<axum::body::Body>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut stop = opts.stop.clone();
    let mut failures = 0u32;
    loop {
        let slot = match &opts.slots {
            None => None,
            Some(slots) => tokio::select! {
                s = slots.acquire() => Some(s),
                _ = stopped(stop.as_mut()) => {
                    tracing::debug!(api = name, "no longer accepting connections");
                    return;
                }
            },
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(pair) => {
                    failures = 0;
                    pair
                }
                Err(e) => {
                    // EMFILE and friends: back off (up to 1 s) instead of
                    // spinning; said once per run of failures.
                    if failures == 0 {
                        tracing::warn!(api = name, error = %e, "accept failed; backing off");
                    } else {
                        tracing::debug!(api = name, error = %e, failures, "accept failed");
                    }
                    let wait = idle::backoff(failures);
                    failures = failures.saturating_add(1);
                    drop(slot);
                    tokio::time::sleep(wait).await;
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
        let limits = opts.limits;
        let slots = opts.slots.clone();
        let half_close = opts.half_close;
        tokio::spawn(async move {
            let _live = live;
            let _slot = slot;
            let activity = limits.any().then(idle::Activity::new);
            let tracker = activity.clone();
            let svc = service_fn(move |req: Request<Incoming>| {
                let mut req = match limits.body {
                    Some(after) => req.map(|b| axum::body::Body::new(Stalling::new(b, after))),
                    None => req.map(axum::body::Body::new),
                };
                if with_peer {
                    req.extensions_mut()
                        .insert(axum::extract::ConnectInfo(peer));
                }
                // Only a response that may stream reads it (an extension
                // costs every other request a map of its own).
                if let Some(fd) =
                    fd.filter(|_| req.headers().contains_key(crate::headers::RESPONSE_MODE))
                {
                    req.extensions_mut().insert(fd);
                }
                let in_flight = tracker.as_ref().map(|a| a.begin());
                let call = service.clone().oneshot(req);
                async move {
                    let resp = call.await?;
                    Ok::<_, Infallible>(match in_flight {
                        Some(f) => resp.map(|b| Either::Tracked(Tracked::new(b, f))),
                        None => resp.map(Either::Plain),
                    })
                }
            });
            let mut builder = http1::Builder::new();
            builder
                .keep_alive(true)
                .half_close(half_close)
                .max_buf_size(1024 * 1024);
            if read_timeout.is_some() {
                builder
                    .timer(TokioTimer::new())
                    .header_read_timeout(read_timeout);
            }
            let io = match &activity {
                Some(a) => Io::Watched(idle::Watched::new(stream, a.clone())),
                None => Io::Plain(stream),
            };
            let conn = builder
                .serve_connection(TokioIo::new(io), svc)
                .with_upgrades();
            tokio::pin!(conn);
            // The connection's timeouts and the stop signal are watched by a
            // task of their own, so that the many wake-ups of a request poll
            // the connection alone (one cheap receiver beside it).
            let (end_tx, mut end_rx) = tokio::sync::oneshot::channel::<End>();
            let _watcher = (activity.is_some() || stop.is_some()).then(|| {
                let activity = activity.clone();
                let slots = slots.clone();
                AbortOnDrop(tokio::spawn(async move {
                    let expired = async {
                        match &activity {
                            Some(a) => a.expired(limits, slots.as_deref()).await,
                            None => std::future::pending().await,
                        }
                    };
                    let end = tokio::select! {
                        () = expired => End::Expired,
                        _ = stopped(stop.as_mut()) => End::Stop,
                    };
                    let _ = end_tx.send(end);
                }))
            });
            let ended = tokio::select! {
                r = conn.as_mut() => r,
                end = &mut end_rx => match end {
                    Ok(End::Expired) => {
                        tracing::debug!(api = name, %peer, "connection timed out (header or idle), or closed for a new one");
                        return;
                    }
                    Ok(End::Stop) => {
                        conn.as_mut().graceful_shutdown();
                        conn.await
                    }
                    // Nothing to watch: the connection runs to its end.
                    Err(_) => conn.await,
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

/// A connection's socket, watched when it has limits.
enum Io {
    Plain(tokio::net::TcpStream),
    Watched(idle::Watched<tokio::net::TcpStream>),
}

macro_rules! io_delegate {
    ($self:ident, $s:ident => $e:expr) => {
        match $self.get_mut() {
            Io::Plain($s) => {
                let $s = std::pin::Pin::new($s);
                $e
            }
            Io::Watched($s) => {
                let $s = std::pin::Pin::new($s);
                $e
            }
        }
    };
}

impl tokio::io::AsyncRead for Io {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        io_delegate!(self, s => s.poll_read(cx, buf))
    }
}

impl tokio::io::AsyncWrite for Io {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        io_delegate!(self, s => s.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        io_delegate!(self, s => s.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Io::Plain(s) => s.is_write_vectored(),
            Io::Watched(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        io_delegate!(self, s => s.poll_flush(cx))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        io_delegate!(self, s => s.poll_shutdown(cx))
    }
}

/// A response body, tracked when its connection has limits.
pub enum Either<B> {
    /// As the service gave it.
    Plain(B),
    /// Holding its request in flight until written.
    Tracked(Tracked<B>),
}

impl<B: Body<Data = Bytes> + Unpin> Body for Either<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, B::Error>>> {
        match self.get_mut() {
            Either::Plain(b) => std::pin::Pin::new(b).poll_frame(cx),
            Either::Tracked(b) => std::pin::Pin::new(b).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Either::Plain(b) => b.is_end_stream(),
            Either::Tracked(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match self {
            Either::Plain(b) => b.size_hint(),
            Either::Tracked(b) => b.size_hint(),
        }
    }
}

/// Resolves once `stop` is true (never without one, or once its sender is gone).
/// Why a connection ends before its client closes it.
enum End {
    /// A header or idle timeout, or idle under pressure: closed at once.
    Expired,
    /// The server stops: the answer in progress finishes, then it closes.
    Stop,
}

/// A task aborted when this is dropped (with the connection it watches).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

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
