//! SPEC §9b: a table of functions (`--function NAME=COMMAND`, `--config
//! FILE`) — each its own pool, ARN, environment and settings, reached by
//! name on the Invoke API and the control API, its lines labelled on
//! stdout — and `--watch`, which replaces a function's sandboxes when its
//! bootstrap changes.

#![allow(clippy::unwrap_used)] // tests fail loudly on unexpected values

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rapid_tests::{eventually, rapid_bin, request, Rapid, Resp, TempDir};

const FX: &str = env!("CARGO_BIN_EXE_fx-lambda");

fn invoke_fn(r: &Rapid, name: &str, body: &str) -> Resp {
    request(
        r.invoke,
        "POST",
        &format!("/2015-03-31/functions/{name}/invocations"),
        &[],
        body.as_bytes(),
    )
}

fn two_functions() -> Rapid {
    Rapid::builder()
        .arg("--function")
        .arg(format!("alpha={FX}"))
        .arg("--function")
        .arg(format!("beta={FX} beta.handler"))
        .start()
}

#[test]
fn two_functions_by_name_each_with_its_own_runtime_and_identity() {
    let r = two_functions();
    let a = invoke_fn(&r, "alpha", r#"{"context":true}"#);
    let b = invoke_fn(&r, "beta", r#"{"context":true}"#);
    assert_eq!(
        (a.status, b.status),
        (200, 200),
        "{} {}",
        a.text(),
        b.text()
    );
    let (a, b) = (a.json(), b.json());
    assert_ne!(a["pid"], b["pid"], "each function has its own runtime");
    assert_eq!(a["env"]["AWS_LAMBDA_FUNCTION_NAME"], "alpha");
    assert_eq!(b["env"]["AWS_LAMBDA_FUNCTION_NAME"], "beta");
    assert!(
        a["arn"].as_str().unwrap().ends_with(":function:alpha"),
        "{a}"
    );
    assert!(
        b["arn"].as_str().unwrap().ends_with(":function:beta"),
        "{b}"
    );
    assert_eq!(
        b["env"]["_HANDLER"], "beta.handler",
        "the command's last word"
    );
    assert_ne!(
        a["env"]["AWS_LAMBDA_RUNTIME_API"], b["env"]["AWS_LAMBDA_RUNTIME_API"],
        "each sandbox has its own Runtime API"
    );
    // `function` in the path is the default (first) function.
    let d = invoke_fn(&r, "function", r#"{"context":true}"#).json();
    assert_eq!(d["env"]["AWS_LAMBDA_FUNCTION_NAME"], "alpha");
    // The ARN form reaches a function too.
    let arn = invoke_fn(
        &r,
        "arn:aws:lambda:us-east-1:012345678912:function:beta",
        r#"{"context":true}"#,
    );
    assert_eq!(arn.json()["env"]["AWS_LAMBDA_FUNCTION_NAME"], "beta");
    // An unknown name is AWS's 404.
    let none = invoke_fn(&r, "gamma", "{}");
    assert_eq!(none.status, 404, "{}", none.text());
    assert_eq!(none.error_type(), "ResourceNotFoundException");
    assert!(
        none.error_message().contains("function:gamma"),
        "{}",
        none.text()
    );
    // Their lines on stdout say whose they are.
    assert!(eventually(Duration::from_secs(5), || {
        r.stdout().contains("[beta/0] REPORT RequestId: ")
    }));
    let out = r.stdout();
    assert!(out.contains("[alpha/0] START RequestId: "), "{out}");
    assert!(out.contains("[alpha/0] END RequestId: "), "{out}");
    assert!(out.contains("[beta/0] START RequestId: "), "{out}");
    for l in out.lines() {
        assert!(
            l.starts_with("[alpha/0] ") || l.starts_with("[beta/0] "),
            "every line is labelled: {l:?}"
        );
    }
}

#[test]
fn a_config_file_gives_each_function_its_settings() {
    let dir = TempDir::new("functions-config");
    let ext = dir.path("ext");
    std::fs::create_dir_all(&ext).unwrap();
    let cfg = dir.path("rapid.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"
[functions.quick]
command = "{FX}"
timeout = "1s"
memory = 256
environment = {{ FX_CUSTOM = "from-the-file" }}

[functions.wide]
bootstrap = ["{FX}"]
concurrency = 2
min_warm = 0
"#
        ),
    )
    .unwrap();
    let r = Rapid::builder()
        .arg("--config")
        .arg(cfg.display().to_string())
        .start();
    let q = invoke_fn(&r, "quick", r#"{"context":true}"#).json();
    assert_eq!(q["env"]["FX_CUSTOM"], "from-the-file");
    assert_eq!(q["env"]["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"], "256");
    // Its own timeout: 1 s, where the default is 300 s.
    let t = Instant::now();
    let slow = invoke_fn(&r, "quick", r#"{"sleep_ms":3000}"#);
    assert_eq!(slow.error_type(), "Sandbox.Timedout", "{}", slow.text());
    assert!(
        t.elapsed() < Duration::from_millis(2500),
        "{:?}",
        t.elapsed()
    );
    // The other function keeps the defaults and has two sandboxes.
    let w = invoke_fn(&r, "wide", r#"{"context":true}"#).json();
    assert_eq!(w["env"]["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"], "3008");
    assert!(w["env"]["FX_CUSTOM"].is_null(), "{w}");
    let t = Instant::now();
    let pids: BTreeSet<u64> = std::thread::scope(|s| {
        let calls: Vec<_> = (0..2)
            .map(|_| s.spawn(|| invoke_fn(&r, "wide", r#"{"sleep_ms":700,"context":true}"#)))
            .collect();
        calls
            .into_iter()
            .map(|c| c.join().unwrap().json()["pid"].as_u64().unwrap())
            .collect()
    });
    assert_eq!(pids.len(), 2, "two sandboxes at once");
    assert!(
        t.elapsed() < Duration::from_millis(1300),
        "{:?}",
        t.elapsed()
    );
    // The control-less state lists both functions on stdout labels.
    assert!(eventually(Duration::from_secs(5), || r
        .stdout()
        .contains("[wide/1] REPORT RequestId: ")));
}

#[test]
fn the_positional_bootstrap_stays_the_default_function() {
    let r = Rapid::builder()
        .bootstrap(FX)
        .arg("--function-name")
        .arg("main")
        .arg("--function")
        .arg(format!("side={FX}"))
        .start();
    let d = r.invoke(br#"{"context":true}"#).json();
    assert_eq!(d["env"]["AWS_LAMBDA_FUNCTION_NAME"], "main");
    assert_eq!(
        d["env"]["AWS_LAMBDA_RUNTIME_API"],
        r.api.to_string(),
        "the default function's sandbox keeps --runtime-api-address"
    );
    let s = invoke_fn(&r, "side", r#"{"context":true}"#).json();
    assert_eq!(s["env"]["AWS_LAMBDA_FUNCTION_NAME"], "side");
    assert_eq!(
        invoke_fn(&r, "main", r#"{"context":true}"#).json()["pid"],
        d["pid"]
    );
}

#[test]
fn the_control_api_drives_one_function_and_reports_them_all() {
    let r = Rapid::builder()
        .control()
        .arg("--function")
        .arg(format!("alpha={FX}"))
        .arg("--function")
        .arg(format!("beta={FX}"))
        .start();
    let init = r.control("POST", "/v1/init?function=beta", "{}");
    assert_eq!(init.status, 200, "{}", init.text());
    assert!(init.text().contains("InitSuccess"), "{}", init.text());
    let state = r.control("GET", "/v1/state", "").json();
    let fns = state["functions"].as_array().unwrap();
    let phase = |name: &str| {
        let f = fns.iter().find(|f| f["name"] == name).unwrap();
        f["sandboxes"][0]["phase"].as_str().unwrap().to_owned()
    };
    assert_eq!(phase("alpha"), "NotStarted", "{state}");
    assert_ne!(phase("beta"), "NotStarted", "{state}");
    // beta answers; alpha waits for its own Init.
    assert_eq!(invoke_fn(&r, "beta", "{}").status, 200);
    let inv = r.control("POST", "/v1/invoke?function=alpha", "{}");
    assert_eq!(inv.status, 409, "{}", inv.text());
    let none = r.control("POST", "/v1/init?function=gamma", "{}");
    assert_eq!(none.status, 404, "{}", none.text());
    assert_eq!(none.error_type(), "ResourceNotFoundException");
    // A shutdown of one function leaves the other serving.
    let down = r.control("POST", "/v1/shutdown?function=beta", "{}");
    assert_eq!(down.status, 200, "{}", down.text());
    assert_eq!(
        r.control("POST", "/v1/init?function=alpha", "{}").status,
        200
    );
    assert_eq!(invoke_fn(&r, "alpha", "{}").status, 200);
}

/// rapid's exit code and stderr for `args`, which must refuse to start.
fn refused(args: &[&str]) -> (i32, String) {
    let out = Command::new(rapid_bin())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_tables_are_start_up_errors_naming_the_value() {
    let dir = TempDir::new("functions-bad");
    let bad = dir.path("bad.toml");
    std::fs::write(&bad, "[functions.a]\ncommand = \"x\"\ncolour = 1\n").unwrap();
    let bad_path = bad.display().to_string();
    let fx_a = format!("a={FX}");
    for (args, needle) in [
        (vec!["--function", "noequals"], "noequals"),
        (vec!["--function", "bad name=x"], "bad name"),
        (vec!["--function", "function=x"], "reserved"),
        (
            vec!["--function", &fx_a, "--function", &fx_a],
            "defined twice",
        ),
        (
            vec!["--config", "/nonexistent/rapid.toml"],
            "/nonexistent/rapid.toml",
        ),
        (vec!["--config", &bad_path], "colour"),
        (
            vec!["--one-shot=exit", "--function", &fx_a, FX],
            "one function",
        ),
        (
            vec!["--mode", "streaming", "--function", &fx_a, "cat"],
            "lambda mode",
        ),
    ] {
        let (code, err) = refused(&args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

/// A shell runtime answering `"<version>"` from the script itself.
fn versioned_bootstrap(dir: &TempDir, version: &str) -> std::path::PathBuf {
    let tmp = dir.path("bootstrap.new");
    std::fs::write(
        &tmp,
        format!(
            r#"#!/bin/sh
API="http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime"
while true; do
  H=$(mktemp)
  BODY=$(curl -s -D "$H" "$API/invocation/next")
  ID=$(grep -i '^lambda-runtime-aws-request-id:' "$H" | cut -d' ' -f2 | tr -d '\r')
  rm -f "$H"
  case "$BODY" in *slow*) sleep 1.5 ;; esac
  curl -s -o /dev/null -X POST -d '"{version}"' "$API/invocation/$ID/response"
done
"#
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).unwrap();
    // Replaced as a build replaces its output: a new file renamed over it.
    let path = dir.path("bootstrap");
    std::fs::rename(&tmp, &path).unwrap();
    path
}

#[test]
fn watch_replaces_idle_sandboxes_at_once_and_busy_ones_after_their_invoke() {
    let dir = TempDir::new("functions-watch");
    let boot = versioned_bootstrap(&dir, "v1");
    let r = Rapid::builder()
        .arg("--watch")
        .arg("--function")
        .arg(format!("dev={}", boot.display()))
        .start();
    assert_eq!(invoke_fn(&r, "dev", "{}").text(), r#""v1""#);
    versioned_bootstrap(&dir, "v2");
    assert!(
        r.wait_stderr("reloading the function", Duration::from_secs(10)),
        "{}",
        r.stderr()
    );
    assert!(eventually(Duration::from_secs(10), || invoke_fn(
        &r, "dev", "{}"
    )
    .text()
        == r#""v2""#));
    // A change while an invoke runs: that invoke finishes on the old runtime.
    std::thread::scope(|s| {
        let starts = r.stdout().matches("START RequestId").count();
        let slow = s.spawn(|| invoke_fn(&r, "dev", r#""slow""#));
        assert!(eventually(Duration::from_secs(5), || r
            .stdout()
            .matches("START RequestId")
            .count()
            > starts));
        let reloads = r.stderr().matches("reloading the function").count();
        versioned_bootstrap(&dir, "v3");
        assert!(eventually(Duration::from_secs(10), || r
            .stderr()
            .matches("reloading the function")
            .count()
            > reloads));
        let answer = slow.join().unwrap();
        assert_eq!(answer.status, 200, "{}", answer.text());
        assert_eq!(
            answer.text(),
            r#""v2""#,
            "the busy sandbox was not cut short"
        );
    });
    assert!(eventually(Duration::from_secs(10), || invoke_fn(
        &r, "dev", "{}"
    )
    .text()
        == r#""v3""#));
}

#[test]
fn the_function_url_front_reaches_each_function_by_name() {
    let dir = TempDir::new("functions-url");
    let side = rapid_tests::shell_runtime(
        &dir,
        "",
        r#"  curl -s -o /dev/null -X POST -d '{"statusCode":201,"body":"from side"}' "$API/invocation/$ID/response""#,
    );
    let url = format!("127.0.0.1:{}", rapid_tests::free_port());
    let _r = Rapid::builder()
        .arg("--function-url-address")
        .arg(&url)
        .arg("--function")
        .arg(format!("echo={FX}"))
        .arg("--function")
        .arg(format!("side={}", side.display()))
        .start();
    let url: std::net::SocketAddr = url.parse().unwrap();
    let s = request(url, "GET", "/lambda-url/side/x", &[], b"");
    assert_eq!((s.status, s.text().as_str()), (201, "from side"));
    // fx-lambda echoes its event: the path it sees has the prefix stripped.
    let e = request(url, "GET", "/lambda-url/echo/a/b", &[], b"");
    assert_eq!(e.status, 200, "{}", e.text());
    assert_eq!(e.json()["rawPath"], "/a/b");
    // Without the prefix: the default (first) function.
    assert_eq!(
        request(url, "GET", "/plain", &[], b"").json()["rawPath"],
        "/plain"
    );
}
