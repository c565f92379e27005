//! A Lambda Managed Instances test function: the real `lambda_runtime`
//! `run_concurrent` (feature `concurrency-tokio`), which starts
//! `AWS_LAMBDA_MAX_CONCURRENCY` workers polling `/next` in one process.
//! Per invoke the event chooses:
//!
//! * `{"sleep_ms": N}` — waits N ms (a timer, not a thread), then answers
//! * `{"exit": N}` — after the wait, the whole process exits with code N
//! * `{"error": "m"}` — after the wait, the handler returns an error
//!
//! The answer is `{"pid", "requestId", "env": {…}}`: which process served
//! it, which invoke, and the LMI variables the runtime got.

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::{json, Value};

async fn handler(event: LambdaEvent<Value>) -> Result<Value, Error> {
    let (payload, ctx) = event.into_parts();
    if let Some(ms) = payload.get("sleep_ms").and_then(Value::as_u64) {
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }
    if let Some(code) = payload.get("exit").and_then(Value::as_i64) {
        std::process::exit(code as i32);
    }
    if let Some(m) = payload.get("error").and_then(Value::as_str) {
        return Err(m.to_owned().into());
    }
    let env = |k: &str| std::env::var(k).ok();
    Ok(json!({
        "pid": std::process::id(),
        "requestId": ctx.request_id,
        "env": {
            "AWS_LAMBDA_MAX_CONCURRENCY": env("AWS_LAMBDA_MAX_CONCURRENCY"),
            "AWS_LAMBDA_INITIALIZATION_TYPE": env("AWS_LAMBDA_INITIALIZATION_TYPE"),
            "AWS_LAMBDA_LOG_FORMAT": env("AWS_LAMBDA_LOG_FORMAT"),
        },
    }))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::run_concurrent(service_fn(handler)).await
}
