//! The Runtime, Extensions and Telemetry APIs as one in-process router,
//! driven by arbitrary sequences of requests interleaved with the engine's
//! own moves (dispatch, reset, fail, restore). Never a panic; every answer a
//! defined status, and every refusal (4xx/5xx) a JSON error body.
#![no_main]

use std::time::Duration;

use arbitrary::Arbitrary;
use axum::body::Body;
use bytes::Bytes;
use interop::{ErrorType, FunctionError, Invoke, RequestId};
use libfuzzer_sys::fuzz_target;
use runtime_api::{ApiConfig, Credentials, Rendezvous, RuntimeApi, RuntimeHandle};
use tower::ServiceExt;

#[derive(Debug, Arbitrary)]
enum Route {
    Next,
    Response,
    Error,
    InitError,
    RestoreNext,
    RestoreError,
    Credentials,
    Register,
    EventNext,
    ExtInitError,
    ExtExitError,
    Telemetry,
    Logs,
    Raw(String),
}

#[derive(Debug, Arbitrary)]
enum Id {
    Current,
    Other(String),
}

#[derive(Debug, Arbitrary)]
struct Request {
    route: Route,
    id: Id,
    post: bool,
    headers: Vec<(u8, String)>,
    body: Vec<u8>,
}

#[derive(Debug, Arbitrary)]
enum Step {
    Call(Request),
    Dispatch(Vec<u8>),
    Reset,
    FailCurrent,
    Restore,
    /// Let parked calls run.
    Yield,
}

#[derive(Debug, Arbitrary)]
struct Input {
    init_caching: bool,
    steps: Vec<Step>,
}

const HEADERS: [&str; 10] = [
    "lambda-runtime-function-error-type",
    "lambda-runtime-function-response-mode",
    "lambda-extension-name",
    "lambda-extension-identifier",
    "lambda-extension-accept-feature",
    "lambda-extension-function-error-type",
    "content-type",
    "trailer",
    "authorization",
    "transfer-encoding",
];

fn path(route: &Route, id: &str) -> String {
    match route {
        Route::Next => "/2018-06-01/runtime/invocation/next".into(),
        Route::Response => format!("/2018-06-01/runtime/invocation/{id}/response"),
        Route::Error => format!("/2018-06-01/runtime/invocation/{id}/error"),
        Route::InitError => "/2018-06-01/runtime/init/error".into(),
        Route::RestoreNext => "/2018-06-01/runtime/restore/next".into(),
        Route::RestoreError => "/2018-06-01/runtime/restore/error".into(),
        Route::Credentials => "/2021-04-23/credentials".into(),
        Route::Register => "/2020-01-01/extension/register".into(),
        Route::EventNext => "/2020-01-01/extension/event/next".into(),
        Route::ExtInitError => "/2020-01-01/extension/init/error".into(),
        Route::ExtExitError => "/2020-01-01/extension/exit/error".into(),
        Route::Telemetry => "/2022-07-01/telemetry".into(),
        Route::Logs => "/2020-08-15/logs".into(),
        Route::Raw(p) => format!("/{p}"),
    }
}

fn invoke(n: u64) -> Invoke {
    Invoke {
        id: RequestId::from_string(format!("req-{n}")),
        trace_id: None,
        client_context: None,
        cognito_identity: None,
        tenant_id: None,
        invoked_function_arn: "arn:aws:lambda:us-east-1:000000000000:function:f".into(),
        content_type: "application/json".into(),
        payload_size: 0,
        timeout_ms: 1000,
    }
}

async fn check(resp: axum::response::Response) {
    let status = resp.status();
    let body = rapid::fuzzing::collect(resp.into_body()).await;
    if status.is_client_error() || status.is_server_error() {
        let v: serde_json::Value = serde_json::from_slice(&body)
            .unwrap_or_else(|e| panic!("{status} without a JSON body ({e}): {body:?}"));
        assert!(
            v.get("errorType").is_some() || v.get("errorMessage").is_some(),
            "{v}"
        );
    }
}

fuzz_target!(|input: Input| {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
    {
        Ok(rt) => rt,
        Err(_) => return,
    };
    rt.block_on(async move {
        let (r, mut events) = Rendezvous::new();
        let handle = RuntimeHandle::new(r.clone());
        let config = ApiConfig {
            init_caching: input.init_caching,
            credentials: input.init_caching.then(|| Credentials {
                authorization_token: "token".into(),
                access_key_id: "AKID".into(),
                secret_access_key: "secret".into(),
                session_token: Some("session".into()),
            }),
            ..ApiConfig::default()
        };
        let app = runtime_api::router(RuntimeApi::new(r, config));
        let mut calls = tokio::task::JoinSet::new();
        let mut outcomes = Vec::new();
        let mut n = 0u64;
        for step in input.steps.into_iter().take(64) {
            while events.try_recv().is_ok() {}
            match step {
                Step::Call(req) => {
                    let id = match &req.id {
                        Id::Current => handle
                            .current_id()
                            .map_or_else(|| "none".to_owned(), |i| i.as_str().to_owned()),
                        Id::Other(s) => s.clone(),
                    };
                    let mut b = http::Request::builder()
                        .method(if req.post { "POST" } else { "GET" })
                        .uri(path(&req.route, &id));
                    for (h, v) in &req.headers {
                        b = b.header(HEADERS[*h as usize % HEADERS.len()], v.as_str());
                    }
                    let Ok(request) = b.body(Body::from(Bytes::from(req.body))) else {
                        continue;
                    };
                    let app = app.clone();
                    calls.spawn(async move {
                        let Ok(resp) = app.oneshot(request).await;
                        check(resp).await;
                    });
                }
                Step::Dispatch(payload) => {
                    n += 1;
                    let (tx, rx) = tokio::sync::oneshot::channel();
                    if handle.dispatch(invoke(n), Bytes::from(payload), tx).is_ok() {
                        outcomes.push(rx);
                    }
                }
                Step::Reset => {
                    handle.reset(FunctionError::new(ErrorType::SandboxFailure, "reset"));
                }
                Step::FailCurrent => {
                    handle.fail_current(FunctionError::new(ErrorType::SandboxTimedout, "late"));
                }
                Step::Restore => {
                    let _ = handle.restore();
                }
                Step::Yield => {}
            }
            // Let every call run as far as it can (parked ones stay parked).
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        // A final reset releases whatever waits; every dispatched invoke has its one answer.
        handle.reset(FunctionError::new(ErrorType::SandboxFailure, "end"));
        for rx in outcomes {
            let answered = tokio::time::timeout(Duration::from_secs(3600), rx).await;
            assert!(
                matches!(answered, Ok(Ok(_))),
                "a dispatched invoke was never answered"
            );
        }
        calls.abort_all();
        while calls.join_next().await.is_some() {}
    });
});
