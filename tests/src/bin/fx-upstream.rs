//! Test fixture: an HTTP function for rapid's http mode.
//!
//! `fx-upstream PORT` listens on 127.0.0.1:PORT (after `FX_READY_DELAY_MS`,
//! if set) and answers:
//! * `GET /healthz` — 200 when the file `$FX_READY_FILE` exists, else 503;
//! * `/slow?ms=N` — waits N ms, then `slept N`;
//! * `/sse` — three `text/event-stream` events 100 ms apart;
//! * `/status/N` — status N;
//! * `/exit` — exits with status 3 without answering;
//! * `/ws` — `101 Switching Protocols` (upgrade `echo`), then echoes bytes;
//! * anything else — the request body back, with `x-seen-method`,
//!   `x-seen-path` (path and query), `x-seen-call-id` and `x-pid` headers.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).boxed()
}

async fn handle(mut req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    if path == "/healthz" {
        let ready =
            std::env::var_os("FX_READY_FILE").is_some_and(|f| std::path::Path::new(&f).exists());
        let mut r = Response::new(full(if ready { "ready" } else { "not ready" }));
        if !ready {
            *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        }
        return Ok(r);
    }
    if path == "/slow" {
        let ms: u64 = query
            .strip_prefix("ms=")
            .and_then(|v| v.parse().ok())
            .unwrap_or(100);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        return Ok(Response::new(full(format!("slept {ms}"))));
    }
    if path == "/sse" {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(4);
        tokio::spawn(async move {
            for i in 0..3 {
                let ev = format!("data: event {i}\n\n");
                if tx.send(Ok(Frame::data(Bytes::from(ev)))).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        let stream = ReceiverStream(rx);
        let mut r = Response::new(BodyExt::boxed(StreamBody::new(stream)));
        r.headers_mut()
            .insert("content-type", "text/event-stream".parse().expect("value"));
        return Ok(r);
    }
    if let Some(code) = path.strip_prefix("/status/") {
        let code = code.trim_end_matches('/').parse().unwrap_or(500);
        let mut r = Response::new(full(format!("status {code}")));
        *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return Ok(r);
    }
    if path == "/exit" {
        std::process::exit(3);
    }
    if path == "/ws" {
        let on = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            if let Ok(up) = on.await {
                let mut io = TokioIo::new(up);
                let mut buf = [0u8; 4096];
                while let Ok(n) = io.read(&mut buf).await {
                    if n == 0 || io.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
        });
        let mut r = Response::new(full(Bytes::new()));
        *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        r.headers_mut()
            .insert("upgrade", "echo".parse().expect("value"));
        r.headers_mut()
            .insert("connection", "upgrade".parse().expect("value"));
        return Ok(r);
    }
    let method = req.method().to_string();
    let call_id = req
        .headers()
        .get("x-call-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let seen = if query.is_empty() {
        path
    } else {
        format!("{path}?{query}")
    };
    let body = req
        .into_body()
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let mut r = Response::new(full(body));
    let h = r.headers_mut();
    h.insert("x-seen-method", method.parse().expect("value"));
    if let Ok(v) = seen.parse() {
        h.insert("x-seen-path", v);
    }
    if let Ok(v) = call_id.parse() {
        h.insert("x-seen-call-id", v);
    }
    h.insert("x-pid", std::process::id().into());
    Ok(r)
}

struct ReceiverStream(tokio::sync::mpsc::Receiver<Result<Frame<Bytes>, Infallible>>);

impl futures_core::Stream for ReceiverStream {
    type Item = Result<Frame<Bytes>, Infallible>;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("usage: fx-upstream PORT");
    if let Some(ms) = std::env::var("FX_READY_DELAY_MS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind");
    println!("fx-upstream listening on {port}");
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service_fn(handle))
                .with_upgrades()
                .await;
        });
    }
}
