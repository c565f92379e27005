//! An in-process function: rapid's watchdog front (port 8080, /_/health,
//! /_/ready, max_inflight, exec_timeout, metrics on 8081, one-shot, drain on
//! SIGTERM) with a Rust handler in the same process — no second process, no
//! extra hop.
//!
//! * `POST /` (any path) — the body back, with `x-handled-by: inproc`;
//! * `/sleep?ms=N` — waits N ms first (to see the exec timeout at work);
//! * `/panic` — panics (the front answers 500 and keeps serving).
//!
//! Run: `cargo run --release -p inproc-function -- --watchdog-address 127.0.0.1:8080`.

use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};

async fn handle(req: Request<Bytes>) -> Response<Bytes> {
    match req.uri().path() {
        "/panic" => panic!("the handler was asked to panic"),
        "/sleep" => {
            let ms = req
                .uri()
                .query()
                .and_then(|q| q.strip_prefix("ms="))
                .and_then(|v| v.parse().ok())
                .unwrap_or(100);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Response::new(Bytes::from(format!("slept {ms}")))
        }
        _ => {
            let mut r = Response::new(req.into_body());
            r.headers_mut()
                .insert("x-handled-by", http::HeaderValue::from_static("inproc"));
            r
        }
    }
}

fn main() -> std::process::ExitCode {
    rapid::watchdog::serve(handle)
}
