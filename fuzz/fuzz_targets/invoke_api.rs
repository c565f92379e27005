//! The Invoke API front over an echoing sandbox: arbitrary paths (function
//! names, ARNs, versions), methods, headers (invocation type, log type,
//! client context) and bodies. Never a panic; every answer a defined status;
//! a 200 echoes the event; every refusal is AWS's JSON error.
#![no_main]

use arbitrary::Arbitrary;
use axum::body::Body;
use base64::Engine as _;
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;

#[derive(Debug, Arbitrary)]
enum Name {
    Default,
    Served,
    Arn(String),
    Raw(String),
}

#[derive(Debug, Arbitrary)]
enum ClientContext {
    None,
    /// Base64 of these bytes (JSON or not).
    Encoded(Vec<u8>),
    /// Base64 of a JSON object built from these pairs.
    Object(Vec<(String, String)>),
    Raw(String),
}

#[derive(Debug, Arbitrary)]
struct Input {
    streaming: bool,
    method: u8,
    name: Name,
    suffix: Option<String>,
    invocation_type: Option<String>,
    log_type: Option<String>,
    client_context: ClientContext,
    extra: Vec<(String, String)>,
    body: Vec<u8>,
}

const METHODS: [&str; 4] = ["POST", "GET", "PUT", "DELETE"];

fuzz_target!(|input: Input| {
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
    else {
        return;
    };
    rt.block_on(async move {
        let name = match &input.name {
            Name::Default => "function".to_owned(),
            Name::Served => "fuzz".to_owned(),
            Name::Arn(v) => format!("arn:aws:lambda:us-east-1:000000000000:function:fuzz:{v}"),
            Name::Raw(s) => s.clone(),
        };
        let base = if input.streaming {
            "/2021-11-15/functions"
        } else {
            "/2015-03-31/functions"
        };
        let tail = if input.streaming {
            "response-streaming-invocations"
        } else {
            "invocations"
        };
        let suffix = input.suffix.as_deref().unwrap_or("");
        let uri = format!("{base}/{name}/{tail}{suffix}");
        let method = METHODS[input.method as usize % METHODS.len()];
        let mut b = http::Request::builder().method(method).uri(uri.as_str());
        if let Some(v) = &input.invocation_type {
            b = b.header("x-amz-invocation-type", v.as_str());
        }
        if let Some(v) = &input.log_type {
            b = b.header("x-amz-log-type", v.as_str());
        }
        let b64 = base64::engine::general_purpose::STANDARD;
        match &input.client_context {
            ClientContext::None => {}
            ClientContext::Encoded(bytes) => {
                b = b.header("x-amz-client-context", b64.encode(bytes))
            }
            ClientContext::Object(pairs) => {
                let obj: serde_json::Map<String, serde_json::Value> = pairs
                    .iter()
                    .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                    .collect();
                let json = serde_json::Value::Object(obj).to_string();
                b = b.header("x-amz-client-context", b64.encode(json));
            }
            ClientContext::Raw(s) => b = b.header("x-amz-client-context", s.as_str()),
        }
        for (k, v) in &input.extra {
            b = b.header(k.as_str(), v.as_str());
        }
        let Ok(request) = b.body(Body::from(Bytes::from(input.body.clone()))) else {
            return;
        };
        let Ok(resp) = rapid::fuzzing::invoke_router().oneshot(request).await;
        let status = resp.status();
        let function_error = resp.headers().contains_key("x-amz-function-error");
        let body = rapid::fuzzing::collect(resp.into_body()).await;
        match status.as_u16() {
            200 if !input.streaming && !function_error => assert_eq!(&body[..], &input.body[..]),
            200 | 202 | 204 => {}
            400 | 404 | 405 | 413 | 429 | 500 | 502 | 503 => {
                let v: serde_json::Value = serde_json::from_slice(&body)
                    .unwrap_or_else(|e| panic!("{status} without JSON ({e}): {body:?}"));
                assert!(
                    v.get("Type").is_some()
                        || v.get("message").is_some()
                        || v.get("errorType").is_some(),
                    "{v}"
                );
            }
            other => panic!("undefined status {other} for {method} {uri}"),
        }
    });
});
