//! The control API, one-shot sealed execution and Restore (init caching).

#![allow(clippy::unwrap_used)] // tests fail loudly on unexpected values

use std::collections::HashSet;
use std::time::Duration;

use rapid_tests::{alive, eventually, request, Rapid, TempDir};

const FX: &str = env!("CARGO_BIN_EXE_fx-lambda");

fn json(r: &rapid_tests::Resp) -> serde_json::Value {
    r.json()
}

#[test]
fn every_phase_through_the_control_api() {
    let r = Rapid::builder().bootstrap(FX).control().start();
    let state = r.control("GET", "/v1/state", "");
    assert_eq!(json(&state)["phase"], "NotStarted");

    // Out of order: invoke and reset before init.
    let early = r.control("POST", "/v1/invoke", r#"{"payload":{"a":1}}"#);
    assert_eq!(early.status, 409);
    assert_eq!(early.error_type(), "InvalidStateTransition");
    assert_eq!(r.control("POST", "/v1/reset", "{}").status, 409);

    let init = r.control("POST", "/v1/init", r#"{"invokeTimeoutMs":5000}"#);
    assert_eq!(init.status, 200, "{}", init.text());
    assert!(
        json(&init)["InitSuccess"]["metrics"]["initDurationMs"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    let twice = r.control("POST", "/v1/init", "{}");
    assert_eq!(twice.status, 409);
    assert!(twice.error_message().contains("Init"));

    // Invoke: the response streams, the typed result follows as a trailer.
    let addr = r.control.unwrap();
    let inv = request(
        addr,
        "POST",
        "/v1/invoke",
        &[("TE", "trailers")],
        br#"{"payload":{"k":"v"}}"#,
    );
    assert_eq!(inv.status, 200);
    assert_eq!(inv.json()["k"], "v");
    let (_, trailer) = inv
        .trailers
        .iter()
        .find(|(k, _)| k == "rapid-invoke-result")
        .expect("result trailer");
    let result: serde_json::Value = serde_json::from_str(trailer).unwrap();
    let success = &result["InvokeSuccess"];
    assert_eq!(success["id"], inv.header("x-amzn-requestid").unwrap());
    assert!(success["metrics"]["durationMs"].as_f64().unwrap() > 0.0);
    assert_eq!(success["metrics"]["producedBytes"], 9);
    // The Invoke API drives the same sandbox.
    assert_eq!(r.invoke(br#"{"b":2}"#).json()["b"], 2);

    let reset = r.control(
        "POST",
        "/v1/reset",
        r#"{"reason":"SPINDOWN","deadlineMs":2000}"#,
    );
    assert_eq!(reset.status, 200, "{}", reset.text());
    assert_eq!(json(&reset)["ResetSuccess"]["reason"], "SPINDOWN");
    assert_eq!(
        json(&r.control("GET", "/v1/state", ""))["phase"],
        "NotStarted"
    );
    assert_eq!(
        r.control("POST", "/v1/invoke", "{}").status,
        409,
        "invoke after reset needs init"
    );
    assert_eq!(r.control("POST", "/v1/init", "{}").status, 200);

    let down = r.control("POST", "/v1/shutdown", "{}");
    assert_eq!(down.status, 200);
    assert!(json(&down)["durationMs"].as_f64().is_some());
    for (m, p) in [
        ("POST", "/v1/init"),
        ("POST", "/v1/invoke"),
        ("POST", "/v1/reset"),
        ("POST", "/v1/shutdown"),
    ] {
        let resp = r.control(m, p, "{}");
        assert_eq!(resp.status, 409, "{p} after shutdown: {}", resp.text());
    }
    assert_eq!(r.control("GET", "/v1/nope", "").status, 404);
    assert_eq!(r.control("GET", "/v1/init", "").status, 405);
    assert_eq!(r.control("POST", "/v1/init", "{not json").status, 400);
}

#[test]
fn control_failure_messages() {
    // Init error.
    let r = Rapid::builder()
        .bootstrap(FX)
        .env("FX_INIT", "init-error")
        .control()
        .start();
    let init = r.control("POST", "/v1/init", "{}");
    let failure = &json(&init)["InitFailure"];
    assert_eq!(
        failure["error"]["errorType"],
        "Runtime.ConfigError",
        "{}",
        init.text()
    );
    assert_eq!(failure["error"]["errorMessage"], "fixture init failed");

    // Invoke timeout, with the invoke budget from Init.
    let r = Rapid::builder().bootstrap(FX).control().start();
    assert_eq!(
        r.control("POST", "/v1/init", r#"{"invokeTimeoutMs":300}"#)
            .status,
        200
    );
    let addr = r.control.unwrap();
    let inv = request(
        addr,
        "POST",
        "/v1/invoke",
        &[("TE", "trailers")],
        br#"{"payload":{"sleep_ms":5000}}"#,
    );
    assert_eq!(inv.error_type(), "Sandbox.Timedout");
    assert!(
        inv.error_message()
            .ends_with("Task timed out after 0.30 seconds"),
        "{}",
        inv.error_message()
    );
    let (_, trailer) = inv
        .trailers
        .iter()
        .find(|(k, _)| k == "rapid-invoke-result")
        .unwrap();
    let result: serde_json::Value = serde_json::from_str(trailer).unwrap();
    assert_eq!(
        result["InvokeFailure"]["error"]["errorType"],
        "Sandbox.Timedout"
    );
    assert_eq!(result["InvokeFailure"]["reset"], true);
}

#[test]
fn reset_deadline_exceeded() {
    let dir = TempDir::new("stubborn");
    let boot = dir.script(
        "bootstrap",
        r#"#!/bin/sh
trap '' TERM
API="http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime"
while true; do curl -s -o /dev/null "$API/invocation/next"; sleep 1; done
"#,
    );
    let r = Rapid::builder().bootstrap(&boot).control().start();
    assert_eq!(r.control("POST", "/v1/init", "{}").status, 200);
    let reset = r.control(
        "POST",
        "/v1/reset",
        r#"{"reason":"SPINDOWN","deadlineMs":100}"#,
    );
    assert_eq!(reset.status, 200);
    let f = &json(&reset)["ResetFailure"];
    assert_eq!(f["reason"], "SPINDOWN", "{}", reset.text());
    assert!(f["error"]["errorMessage"]
        .as_str()
        .unwrap()
        .contains("Reset deadline of 100 ms exceeded"));
}

#[test]
fn restore_with_lambda_runtime_in_snap_start_mode() {
    let r = Rapid::builder()
        .bootstrap(FX)
        .arg("--enable-init-caching")
        .control()
        .start();
    assert_eq!(
        r.control("POST", "/v1/restore", "").status,
        409,
        "restore before init"
    );
    assert_eq!(r.control("POST", "/v1/init", "{}").status, 200);
    assert!(eventually(Duration::from_secs(5), || json(&r.control(
        "GET",
        "/v1/state",
        ""
    ))["phase"]
        == "Snapshotted"));
    let restore = r.control("POST", "/v1/restore", "");
    assert_eq!(restore.status, 200, "{}", restore.text());
    let v = json(&restore);
    assert!(v["error"].is_null(), "{v}");
    assert!(v["durationMs"].as_f64().unwrap() >= 0.0);
    let ctx = r.invoke(br#"{"context":true}"#).json();
    assert_eq!(ctx["env"]["AWS_LAMBDA_INITIALIZATION_TYPE"], "snap-start");
    assert_eq!(
        r.control("POST", "/v1/restore", "").status,
        409,
        "restore twice"
    );
}

#[test]
fn restore_runs_by_itself_without_a_control_api() {
    let r = Rapid::builder()
        .bootstrap(FX)
        .arg("--enable-init-caching")
        .start();
    assert_eq!(r.invoke(br#"{"x":1}"#).json()["x"], 1);
    assert!(r.stderr().contains("restore complete"));
}

#[test]
fn restore_error_is_reported() {
    let dir = TempDir::new("restore-error");
    let boot = dir.script(
        "bootstrap",
        r#"#!/bin/sh
API="http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime"
curl -s -o /dev/null "$API/restore/next"
curl -s -o /dev/null -X POST -H 'Lambda-Runtime-Function-Error-Type: Runtime.AfterRestoreError' \
  -d '{"errorMessage":"hook failed","errorType":"Runtime.AfterRestoreError"}' "$API/restore/error"
sleep 30
"#,
    );
    let r = Rapid::builder()
        .bootstrap(&boot)
        .arg("--enable-init-caching")
        .control()
        .start();
    assert_eq!(r.control("POST", "/v1/init", "{}").status, 200);
    let restore = r.control("POST", "/v1/restore", "");
    let v = json(&restore);
    assert_eq!(v["error"]["errorType"], "Runtime.AfterRestoreError", "{v}");
    assert_eq!(v["error"]["errorMessage"], "hook failed");
    // Restore endpoints do not exist without init caching.
    let plain = Rapid::builder().bootstrap(FX).start();
    let resp = request(
        plain.api,
        "GET",
        "/2018-06-01/runtime/restore/next",
        &[],
        b"",
    );
    assert_eq!(resp.status, 404);
}

fn one_shot_bootstrap(dir: &TempDir, scratch: &std::path::Path) -> std::path::PathBuf {
    rapid_tests::shell_runtime(
        dir,
        "",
        &format!(
            r#"  if [ -e {s}/marker ]; then M=yes; else M=no; fi
  touch {s}/marker
  sleep 1000 &
  CHILD=$!
  FX_STATE="${{FX_STATE:-fresh}}"
  curl -s -o /dev/null -X POST -d "{{\"pid\":$$,\"marker\":\"$M\",\"child\":$CHILD,\"env\":\"$FX_STATE\"}}" "$API/invocation/$ID/response"
  export FX_STATE=changed"#,
            s = scratch.display()
        ),
    )
}

#[test]
fn one_shot_gives_every_invoke_a_fresh_sandbox() {
    let dir = TempDir::new("oneshot");
    let scratch = dir.path("scratch");
    std::fs::create_dir_all(&scratch).unwrap();
    let boot = one_shot_bootstrap(&dir, &scratch);
    let r = Rapid::builder()
        .bootstrap(&boot)
        .arg("--one-shot")
        .arg("--scratch-dir")
        .arg(scratch.display().to_string())
        .start();
    let mut pids = HashSet::new();
    let mut children = Vec::new();
    for _ in 0..5 {
        let v = r.invoke(b"{}").json();
        assert_eq!(
            v["marker"], "no",
            "a file from the previous invoke survived: {v}"
        );
        assert_eq!(v["env"], "fresh", "an environment change survived: {v}");
        pids.insert(v["pid"].as_u64().unwrap());
        children.push(v["child"].as_u64().unwrap() as i32);
    }
    assert_eq!(pids.len(), 5, "five invokes, five runtimes");
    for c in &children[..4] {
        assert!(
            eventually(Duration::from_secs(3), || !alive(*c)),
            "leftover child {c}"
        );
    }
}

#[test]
fn one_shot_exit_serves_one_invoke_then_exits_zero() {
    let mut r = Rapid::builder()
        .bootstrap(FX)
        .arg("--one-shot=exit")
        .start();
    assert_eq!(r.invoke(br#"{"once":true}"#).json()["once"], true);
    let status = r
        .wait_exit(Duration::from_secs(5))
        .expect("exits after one invoke");
    assert_eq!(status.code(), Some(0));
}

#[test]
fn credentials_endpoint_with_init_caching() {
    let dir = TempDir::new("creds");
    let boot = rapid_tests::shell_runtime(
        &dir,
        r#"curl -s -o /dev/null "$API/restore/next""#,
        r#"  C=$(curl -s -H "Authorization: $AWS_CONTAINER_AUTHORIZATION_TOKEN" "$AWS_CONTAINER_CREDENTIALS_FULL_URI")
  BAD=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: wrong" "$AWS_CONTAINER_CREDENTIALS_FULL_URI")
  curl -s -o /dev/null -X POST -d "{\"creds\":$C,\"bad\":$BAD}" "$API/invocation/$ID/response""#,
    );
    let r = Rapid::builder()
        .bootstrap(&boot)
        .arg("--enable-init-caching")
        .env("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
        .env("AWS_SECRET_ACCESS_KEY", "secret-example")
        .env("AWS_SESSION_TOKEN", "session-example")
        .start();
    let v = r.invoke(b"{}").json();
    assert_eq!(v["creds"]["AccessKeyId"], "AKIDEXAMPLE", "{v}");
    assert_eq!(v["creds"]["SecretAccessKey"], "secret-example");
    assert_eq!(v["creds"]["Token"], "session-example");
    assert!(v["creds"]["Expiration"].as_str().unwrap().ends_with('Z'));
    assert_eq!(v["bad"], 401);
}

#[test]
fn control_invoke_with_its_own_id_and_deadline() {
    let r = Rapid::builder().bootstrap(FX).control().start();
    assert_eq!(r.control("POST", "/v1/init", "{}").status, 200);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let body = format!(
        r#"{{"id":"platform-id-1","deadlineMs":{},"payload":{{"sleep_ms":3000}}}}"#,
        now + 400
    );
    let inv = r.control("POST", "/v1/invoke", &body);
    assert_eq!(inv.header("x-amzn-requestid"), Some("platform-id-1"));
    assert_eq!(inv.error_type(), "Sandbox.Timedout");
    // The budget is what was left of the deadline when rapid got the call
    // (at most 0.40 s; less on a loaded machine).
    let m = inv.error_message();
    let secs: f64 = m
        .strip_prefix("RequestId: platform-id-1 Error: Task timed out after ")
        .and_then(|t| t.strip_suffix(" seconds"))
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("{m}"));
    assert!(secs > 0.0 && secs <= 0.40, "{m}");
    assert_eq!(
        r.control("POST", "/v1/invoke", r#"{"id":"bad id!"}"#)
            .status,
        400
    );
    assert_eq!(
        r.control("POST", "/v1/invoke", r#"{"deadlineMs":1}"#)
            .status,
        400
    );
}

#[test]
fn init_parameters_reach_the_runtime_and_the_report_lines() {
    // One source of truth: an Init's memory size, version and handler are
    // what the runtime gets, what START and REPORT say, and what the typed
    // result measures.
    let r = Rapid::builder().bootstrap(FX).control().start();
    let init = r.control(
        "POST",
        "/v1/init",
        r#"{"memorySizeMb":512,"handler":"h.custom","functionVersion":"7"}"#,
    );
    assert_eq!(init.status, 200, "{}", init.text());
    let addr = r.control.unwrap();
    let inv = request(
        addr,
        "POST",
        "/v1/invoke",
        &[("TE", "trailers")],
        br#"{"payload":{"context":true}}"#,
    );
    assert_eq!(inv.status, 200, "{}", inv.text());
    let v = inv.json();
    assert_eq!(v["env"]["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"], "512", "{v}");
    assert_eq!(v["env"]["_HANDLER"], "h.custom", "{v}");
    assert_eq!(v["env"]["AWS_LAMBDA_FUNCTION_VERSION"], "7", "{v}");
    let id = inv.header("x-amzn-requestid").unwrap().to_owned();
    assert!(
        r.wait_stdout(&format!("REPORT RequestId: {id}"), Duration::from_secs(5)),
        "{}",
        r.stdout()
    );
    let out = r.stdout();
    assert!(
        out.contains(&format!("START RequestId: {id} Version: 7")),
        "{out}"
    );
    let report = out
        .lines()
        .find(|l| l.starts_with(&format!("REPORT RequestId: {id}")))
        .unwrap();
    assert!(report.contains("Memory Size: 512 MB"), "{report}");
    // The typed result's metrics are measured, not zeros.
    let (_, trailer) = inv
        .trailers
        .iter()
        .find(|(k, _)| k == "rapid-invoke-result")
        .expect("result trailer");
    let result: serde_json::Value = serde_json::from_str(trailer).unwrap();
    let m = &result["InvokeSuccess"]["metrics"];
    assert!(m["responseDurationMs"].as_f64().unwrap() > 0.0, "{m}");
    assert!(m["maxMemoryUsedMb"].as_u64().unwrap() > 0, "{m}");
    assert_eq!(m["responseMode"], "Buffered", "{m}");
}
