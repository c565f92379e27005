//! The control API's JSON: arbitrary bodies (structured near the real
//! messages, or raw bytes) on every route, with and without the token, over
//! an echoing sandbox. Never a panic; every answer a defined status; every
//! refusal a JSON error.
#![no_main]

use arbitrary::Arbitrary;
use axum::body::Body;
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;

#[derive(Debug, Arbitrary)]
enum Json {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(Key, Json)>),
}

/// Field names the control messages use, so objects get past the first key.
#[derive(Debug, Arbitrary)]
enum Key {
    Known(u8),
    Other(String),
}

const KEYS: [&str; 24] = [
    "id",
    "deadlineMs",
    "payload",
    "payloadBase64",
    "contentType",
    "traceId",
    "clientContext",
    "reason",
    "timeoutMs",
    "initTimeoutMs",
    "functionName",
    "functionVersion",
    "memorySizeMb",
    "handler",
    "environment",
    "runtimeApiAddress",
    "accountId",
    "region",
    "invokeTimeoutMs",
    "restoreTimeoutMs",
    "custom",
    "env",
    "client",
    "deadline",
];

impl Json {
    fn value(&self, depth: u8) -> serde_json::Value {
        use serde_json::Value as V;
        if depth > 8 {
            return V::Null;
        }
        match self {
            Json::Null => V::Null,
            Json::Bool(b) => V::Bool(*b),
            Json::Int(i) => V::from(*i),
            Json::Float(f) => serde_json::Number::from_f64(*f).map_or(V::Null, V::Number),
            Json::Str(s) => V::String(s.clone()),
            Json::Arr(a) => V::Array(a.iter().map(|j| j.value(depth + 1)).collect()),
            Json::Obj(o) => V::Object(
                o.iter()
                    .map(|(k, v)| {
                        let k = match k {
                            Key::Known(i) => KEYS[*i as usize % KEYS.len()].to_owned(),
                            Key::Other(s) => s.clone(),
                        };
                        (k, v.value(depth + 1))
                    })
                    .collect(),
            ),
        }
    }
}

#[derive(Debug, Arbitrary)]
enum Payload {
    Json(Json),
    Raw(Vec<u8>),
}

#[derive(Debug, Arbitrary)]
struct Input {
    route: u8,
    query: Option<String>,
    get: bool,
    token: Option<bool>,
    content_type: Option<String>,
    body: Payload,
}

const ROUTES: [&str; 7] = [
    "/v1/state",
    "/v1/init",
    "/v1/invoke",
    "/v1/reset",
    "/v1/shutdown",
    "/v1/restore",
    "/v1/other",
];

fuzz_target!(|input: Input| {
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
    else {
        return;
    };
    rt.block_on(async move {
        let route = ROUTES[input.route as usize % ROUTES.len()];
        let uri = match &input.query {
            Some(q) => format!("{route}?{q}"),
            None => route.to_owned(),
        };
        let mut b = http::Request::builder()
            .method(if input.get { "GET" } else { "POST" })
            .uri(uri.as_str());
        match input.token {
            Some(true) => b = b.header("authorization", "Bearer secret"),
            Some(false) => b = b.header("authorization", "Bearer wrong"),
            None => {}
        }
        if let Some(ct) = &input.content_type {
            b = b.header("content-type", ct.as_str());
        }
        let body = match &input.body {
            Payload::Json(j) => serde_json::to_vec(&j.value(0)).unwrap_or_default(),
            Payload::Raw(r) => r.clone(),
        };
        let Ok(request) = b.body(Body::from(Bytes::from(body))) else {
            return;
        };
        let router = rapid::fuzzing::control_router(Some("secret".into()));
        let Ok(resp) = router.oneshot(request).await;
        let status = resp.status();
        let body = rapid::fuzzing::collect(resp.into_body()).await;
        if input.token != Some(true) {
            assert_eq!(
                status.as_u16(),
                401,
                "a call without the token got {status}"
            );
        }
        match status.as_u16() {
            200 | 202 | 204 => {}
            400 | 401 | 403 | 404 | 405 | 409 | 413 | 415 | 429 | 500 | 502 | 503 => {
                let v: serde_json::Value = serde_json::from_slice(&body)
                    .unwrap_or_else(|e| panic!("{status} without JSON ({e}): {body:?}"));
                assert!(v.get("errorType").is_some(), "{status}: {v}");
            }
            other => panic!("undefined status {other} for {uri}"),
        }
    });
});
