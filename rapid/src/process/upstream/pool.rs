//! Kept-alive connections to the upstream: checked out per request, back in
//! the pool once the response body has been read to its end.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{header, Request, Response};
use http_body::{Body as HttpBody, Frame};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

use crate::sandbox::{Body, BoxError};

/// Idle connections kept to the upstream.
const POOL_IDLE: usize = 64;

/// The upstream's address and its idle connections.
#[derive(Clone)]
pub(super) struct Pool {
    /// `host:port` to connect to.
    pub authority: String,
    /// A path prefix of the upstream URL (without the trailing slash).
    pub base_path: String,
    idle: Arc<Mutex<Vec<SendRequest<Body>>>>,
}

impl Pool {
    pub fn new(authority: String, base_path: String) -> Pool {
        Pool {
            authority,
            base_path,
            idle: Arc::default(),
        }
    }

    /// Forget every idle connection (the upstream process is gone).
    pub fn clear(&self) {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// A fresh connection.
    pub async fn connect(&self) -> Result<SendRequest<Body>, BoxError> {
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
    pub async fn checkout(&self) -> Result<SendRequest<Body>, BoxError> {
        let mut busy = Vec::new();
        let found = loop {
            let pooled = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
            let Some(mut s) = pooled else { break None };
            if s.is_closed() {
                continue;
            }
            let ready = std::future::poll_fn(|cx| Poll::Ready(s.poll_ready(cx))).await;
            match ready {
                Poll::Ready(Ok(())) => break Some(s),
                Poll::Ready(Err(_)) => continue,
                Poll::Pending => busy.push(s),
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

    /// Give a connection back (dropped if closed or the pool is full).
    pub fn checkin(&self, s: SendRequest<Body>) {
        if s.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < POOL_IDLE {
            idle.push(s);
        }
    }

    /// `GET path` on the upstream (readiness probes), the answer read whole.
    pub async fn get(&self, path: &str) -> Result<Response<Bytes>, BoxError> {
        let mut sender = self.checkout().await?;
        let req = Request::get(format!("{}{path}", self.base_path))
            .header(header::HOST, &self.authority)
            .header("user-agent", "rapid-readiness-probe")
            .body(Body::empty())?;
        let (parts, body) = sender.send_request(req).await?.into_parts();
        let bytes = body.collect().await?.to_bytes();
        self.checkin(sender);
        Ok(Response::from_parts(parts, bytes))
    }

    /// The upstream's response body, returning its connection to the pool
    /// when read to its end.
    pub fn returning(&self, body: Incoming, sender: SendRequest<Body>) -> PoolReturn {
        PoolReturn {
            inner: body,
            sender: Some(sender),
            pool: self.clone(),
        }
    }
}

/// The upstream's response body; once it has been read to the end its
/// connection goes back to the pool (a body dropped early closes it).
pub(super) struct PoolReturn {
    inner: Incoming,
    sender: Option<SendRequest<Body>>,
    pool: Pool,
}

impl PoolReturn {
    fn release(&mut self) {
        if let Some(s) = self.sender.take() {
            self.pool.checkin(s);
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
