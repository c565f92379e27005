//! The one-hop floor: a minimal hyper HTTP/1.1 echo server (keep-alive,
//! TCP_NODELAY, current-thread runtime). `POST /stream/N` answers N bytes in
//! 64 KiB chunks: the direct loopback copy that streaming is compared with.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

async fn handle(req: Request<hyper::body::Incoming>) -> Result<Response<Body>, Infallible> {
    if let Some(n) = req
        .uri()
        .path()
        .strip_prefix("/stream/")
        .and_then(|n| n.parse::<usize>().ok())
    {
        let chunk = Bytes::from(vec![7u8; 64 * 1024]);
        let count = n / chunk.len();
        let stream = futures_lite_stream(chunk, count);
        return Ok(Response::new(BodyExt::boxed(StreamBody::new(stream))));
    }
    let body = req
        .into_body()
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    Ok(Response::new(BodyExt::boxed(Full::new(body))))
}

/// `count` copies of `chunk` as a body stream (yielding to the runtime between them).
fn futures_lite_stream(
    chunk: Bytes,
    count: usize,
) -> impl futures_core::Stream<Item = Result<Frame<Bytes>, Infallible>> + Send {
    struct Chunks {
        chunk: Bytes,
        left: usize,
    }
    impl futures_core::Stream for Chunks {
        type Item = Result<Frame<Bytes>, Infallible>;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            _cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Self::Item>> {
            if self.left == 0 {
                return std::task::Poll::Ready(None);
            }
            self.left -= 1;
            std::task::Poll::Ready(Some(Ok(Frame::data(self.chunk.clone()))))
        }
    }
    Chunks { chunk, left: count }
}

/// Serve until killed.
pub fn serve(addr: SocketAddr) -> std::io::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        loop {
            let (s, _) = listener.accept().await?;
            s.set_nodelay(true)?;
            tokio::spawn(async move {
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(s), service_fn(handle))
                    .await;
            });
        }
    })
}
