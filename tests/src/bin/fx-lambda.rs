//! The test function, built on the real `lambda_runtime` crate. What it does
//! is chosen per invoke by the event (and at init by `FX_INIT`):
//!
//! * `{"error": "m"}` — the handler returns an error (`/invocation/{id}/error`)
//! * `{"panic": "m"}` — the handler panics
//! * `{"sleep_ms": N}` — sleeps, then echoes
//! * `{"exit": N}` — the process exits with code N mid-invoke
//! * `{"kill": true}` — the process SIGKILLs itself mid-invoke
//! * `{"big": N}` — answers a JSON string of exactly N bytes (quotes included)
//! * `{"print": "line"}` — prints the line to stdout first, then goes on
//! * `{"eprint": "line"}` — prints the line to stderr first, then goes on
//! * `{"context": true}` — answers the invoke's context and selected env vars
//! * anything else — echoes the event
//!
//! `FX_INIT=exit:N` exits before the first `/next`; `FX_INIT=init-error` posts
//! `/runtime/init/error` and exits; `FX_INIT=sleep:MS` sleeps before starting.

use std::io::{Read, Write};

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::{json, Value};

async fn handler(event: LambdaEvent<Value>) -> Result<Value, Error> {
    let (payload, ctx) = event.into_parts();
    if let Some(line) = payload.get("print").and_then(Value::as_str) {
        println!("{line}");
    }
    if let Some(line) = payload.get("eprint").and_then(Value::as_str) {
        eprintln!("{line}");
    }
    if let Some(m) = payload.get("error").and_then(Value::as_str) {
        return Err(m.to_owned().into());
    }
    if let Some(m) = payload.get("panic").and_then(Value::as_str) {
        panic!("{m}");
    }
    if let Some(ms) = payload.get("sleep_ms").and_then(Value::as_u64) {
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }
    if let Some(code) = payload.get("exit").and_then(Value::as_i64) {
        std::process::exit(code as i32);
    }
    if payload.get("kill").is_some() {
        // SAFETY: signalling our own process.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
    if let Some(n) = payload.get("big").and_then(Value::as_u64) {
        return Ok(Value::String("a".repeat(n.saturating_sub(2) as usize)));
    }
    if payload.get("context").is_some() {
        let env = |k: &str| std::env::var(k).ok();
        return Ok(json!({
            "requestId": ctx.request_id,
            "deadline": ctx.deadline,
            "arn": ctx.invoked_function_arn,
            "traceId": ctx.xray_trace_id,
            "clientContext": ctx.client_context.map(|c| json!({"custom": c.custom, "env": c.environment})),
            "pid": std::process::id(),
            "tenantId": ctx.tenant_id,
            "env": {
                "AWS_LAMBDA_FUNCTION_NAME": env("AWS_LAMBDA_FUNCTION_NAME"),
                "AWS_LAMBDA_FUNCTION_VERSION": env("AWS_LAMBDA_FUNCTION_VERSION"),
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE"),
                "AWS_LAMBDA_RUNTIME_API": env("AWS_LAMBDA_RUNTIME_API"),
                "AWS_LAMBDA_INITIALIZATION_TYPE": env("AWS_LAMBDA_INITIALIZATION_TYPE"),
                "AWS_REGION": env("AWS_REGION"),
                "_HANDLER": env("_HANDLER"),
                "FX_CUSTOM": env("FX_CUSTOM"),
            },
            "allEnv": std::env::vars().collect::<std::collections::BTreeMap<String, String>>(),
        }));
    }
    Ok(payload)
}

/// POST /runtime/init/error with a raw HTTP/1.1 request.
fn post_init_error() {
    let Ok(api) = std::env::var("AWS_LAMBDA_RUNTIME_API") else {
        return;
    };
    let body = r#"{"errorMessage":"fixture init failed","errorType":"Runtime.ConfigError"}"#;
    let req = format!(
        "POST /2018-06-01/runtime/init/error HTTP/1.1\r\nHost: {api}\r\nLambda-Runtime-Function-Error-Type: Runtime.ConfigError\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    if let Ok(mut s) = std::net::TcpStream::connect(&api) {
        let _ = s.write_all(req.as_bytes());
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    if let Some(path) = std::env::var_os("FX_STARTS") {
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(f, "{}", std::process::id());
        }
    }
    match std::env::var("FX_INIT").ok().as_deref() {
        Some("init-error") => {
            post_init_error();
            std::process::exit(1);
        }
        Some(other) => {
            if let Some(code) = other.strip_prefix("exit:") {
                std::process::exit(code.parse().unwrap_or(1));
            }
            if let Some(ms) = other.strip_prefix("sleep:") {
                std::thread::sleep(std::time::Duration::from_millis(ms.parse().unwrap_or(0)));
            }
        }
        None => {}
    }
    lambda_runtime::run(service_fn(handler)).await
}
