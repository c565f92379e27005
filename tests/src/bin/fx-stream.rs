//! A streaming test function on the real `lambda_runtime` crate
//! (`Lambda-Runtime-Function-Response-Mode: streaming`). The event chooses:
//! `{"chunks": N, "size": S, "delay_ms": D}` — N chunks of S bytes (byte i of
//! the whole stream is `i % 251`), D ms apart; `"fail_after": K` — a mid-stream
//! error after K chunks; `"exit_after": K` — the process exits after K chunks.

use bytes::Bytes;
use lambda_runtime::streaming::{channel, Body, Response};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;

async fn handler(event: LambdaEvent<Value>) -> Result<Response<Body>, Error> {
    let p = event.payload;
    let num = |k: &str| p.get(k).and_then(Value::as_u64);
    let chunks = num("chunks").unwrap_or(3);
    let size = num("size").unwrap_or(16) as usize;
    let delay = num("delay_ms").unwrap_or(0);
    let fail_after = num("fail_after");
    let exit_after = num("exit_after");
    let (mut tx, rx) = channel();
    // The pattern is built once, so producing a chunk is one copy.
    let pattern: Vec<u8> = (0..size + 251).map(|i| (i % 251) as u8).collect();
    tokio::spawn(async move {
        let mut offset: usize = 0;
        for i in 0..chunks {
            if fail_after == Some(i) {
                tx.send_error(lambda_runtime_api_client::Error::new(
                    "fixture failed mid-stream",
                ));
                return;
            }
            if exit_after == Some(i) {
                std::process::exit(9);
            }
            let start = offset % 251;
            let chunk = Bytes::copy_from_slice(&pattern[start..start + size]);
            offset += size;
            if tx.send_data(chunk).await.is_err() {
                return;
            }
            if delay > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
            }
        }
    });
    Ok(Response::from(rx))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(handler)).await
}
