//! The bundled example function: echoes the event it receives.
//!
//! Built on the `lambda_runtime` crate, so it speaks the Runtime API exactly as a
//! production Rust function does. `make run` serves it behind rapid.

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;

async fn echo(event: LambdaEvent<Value>) -> Result<Value, Error> {
    Ok(event.payload)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(echo)).await
}
