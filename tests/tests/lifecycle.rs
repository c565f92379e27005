//! SPEC §2/§4: how every way a function can fail comes back, recovery, the
//! log lines, and shutdown — with the real `lambda_runtime` fixture.

#![allow(clippy::unwrap_used)] // tests fail loudly on unexpected values

use std::time::{Duration, Instant};

use rapid_tests::{alive, eventually, Rapid, TempDir};

const FX: &str = env!("CARGO_BIN_EXE_fx-lambda");

fn pid_of(r: &Rapid) -> u64 {
    let resp = r.invoke(br#"{"context":true}"#);
    assert_eq!(resp.status, 200, "{}", resp.text());
    resp.json()["pid"].as_u64().expect("pid")
}

#[test]
fn function_error_is_returned_as_posted_without_reset() {
    let r = Rapid::builder().bootstrap(FX).start();
    let before = pid_of(&r);
    let resp = r.invoke(br#"{"error":"boom"}"#);
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("x-amz-function-error"), Some("Unhandled"));
    assert_eq!(resp.error_message(), "boom");
    assert!(!resp.error_type().is_empty());
    assert_eq!(
        pid_of(&r),
        before,
        "a function error does not reset the sandbox"
    );
}

#[test]
fn panic_is_a_function_error() {
    let r = Rapid::builder().bootstrap(FX).start();
    let resp = r.invoke(br#"{"panic":"oh no"}"#);
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("x-amz-function-error"), Some("Unhandled"));
    assert!(resp.error_message().contains("oh no"), "{}", resp.text());
    assert_eq!(r.invoke(b"{}").status, 200);
}

#[test]
fn runtime_exit_mid_invoke_then_recovery() {
    let r = Rapid::builder().bootstrap(FX).start();
    let before = pid_of(&r);
    let resp = r.invoke(br#"{"exit":7}"#);
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("x-amz-function-error"), Some("Unhandled"));
    assert_eq!(resp.error_type(), "Runtime.ExitError");
    let id = resp.header("x-amzn-requestid").unwrap();
    assert_eq!(
        resp.error_message(),
        format!("RequestId: {id} Error: Runtime exited with error: exit status 7")
    );
    let after = pid_of(&r);
    assert_ne!(before, after, "a fresh runtime serves the next invoke");
    assert!(!alive(before as i32));
}

#[test]
fn runtime_killed_by_a_signal() {
    let r = Rapid::builder().bootstrap(FX).start();
    let resp = r.invoke(br#"{"kill":true}"#);
    assert_eq!(resp.error_type(), "Runtime.ExitError");
    assert!(
        resp.error_message()
            .ends_with("Error: Runtime exited with error: signal: killed"),
        "{}",
        resp.error_message()
    );
    assert_eq!(r.invoke(br#"{"x":1}"#).json()["x"], 1);
}

#[test]
fn runtime_exit_during_init_is_the_invoke_error() {
    let r = Rapid::builder()
        .bootstrap(FX)
        .env("FX_INIT", "exit:3")
        .start();
    for _ in 0..2 {
        let resp = r.invoke(b"{}");
        assert_eq!(resp.status, 200);
        assert_eq!(resp.header("x-amz-function-error"), Some("Unhandled"));
        assert_eq!(resp.error_type(), "Runtime.ExitError");
        let id = resp.header("x-amzn-requestid").unwrap();
        assert_eq!(
            resp.error_message(),
            format!("RequestId: {id} Error: Runtime exited with error: exit status 3")
        );
    }
}

#[test]
fn init_error_reported_by_the_runtime_is_the_invoke_error() {
    let r = Rapid::builder()
        .bootstrap(FX)
        .env("FX_INIT", "init-error")
        .start();
    let resp = r.invoke(b"{}");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("x-amz-function-error"), Some("Unhandled"));
    assert_eq!(resp.error_type(), "Runtime.ConfigError");
    assert_eq!(resp.error_message(), "fixture init failed");
}

#[test]
fn timeout_then_recovery_with_a_fresh_runtime() {
    let r = Rapid::builder()
        .bootstrap(FX)
        .arg("--timeout")
        .arg("1")
        .start();
    let before = pid_of(&r);
    let started = Instant::now();
    let resp = r.invoke(br#"{"sleep_ms":10000}"#);
    let took = started.elapsed();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("x-amz-function-error"), Some("Unhandled"));
    assert_eq!(resp.error_type(), "Sandbox.Timedout");
    let id = resp.header("x-amzn-requestid").unwrap();
    assert_eq!(
        resp.error_message(),
        format!("RequestId: {id} Error: Task timed out after 1.00 seconds")
    );
    assert!(
        took >= Duration::from_millis(950) && took < Duration::from_secs(5),
        "{took:?}"
    );
    let after = pid_of(&r);
    assert_ne!(before, after);
    assert!(eventually(Duration::from_secs(2), || !alive(before as i32)));
}

#[test]
fn humantime_timeout_is_accepted() {
    let r = Rapid::builder()
        .bootstrap(FX)
        .env("AWS_LAMBDA_FUNCTION_TIMEOUT", "1500ms")
        .start();
    let resp = r.invoke(br#"{"sleep_ms":5000}"#);
    assert_eq!(resp.error_type(), "Sandbox.Timedout");
    assert!(resp
        .error_message()
        .ends_with("Task timed out after 1.50 seconds"));
}

#[test]
fn init_timeout_and_suppressed_init_timeout() {
    let r = Rapid::builder()
        .bootstrap(FX)
        .env("FX_INIT", "sleep:5000")
        .arg("--init-timeout")
        .arg("300ms")
        .arg("--timeout")
        .arg("1")
        .start();
    assert!(
        r.wait_stderr("init failed", Duration::from_secs(5)),
        "{}",
        r.stderr()
    );
    let resp = r.invoke(b"{}");
    assert_eq!(resp.error_type(), "Sandbox.Timedout");
    assert!(resp
        .error_message()
        .ends_with("Task timed out after 1.00 seconds"));
}

#[test]
fn missing_bootstrap_is_invalid_entrypoint() {
    let r = Rapid::builder().bootstrap("/nonexistent/bootstrap").start();
    let resp = r.invoke(b"{}");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("x-amz-function-error"), Some("Unhandled"));
    assert_eq!(resp.error_type(), "Runtime.InvalidEntrypoint");
    assert!(resp.error_message().contains("/nonexistent/bootstrap"));
}

#[test]
fn start_end_report_lines_and_function_output() {
    let r = Rapid::builder().bootstrap(FX).start();
    let first = r.invoke(br#"{"print":"hello-from-the-function"}"#);
    let second = r.invoke(b"{}");
    let (a, b) = (
        first.header("x-amzn-requestid").unwrap().to_owned(),
        second.header("x-amzn-requestid").unwrap().to_owned(),
    );
    assert!(r.wait_stdout(&format!("REPORT RequestId: {b}"), Duration::from_secs(5)));
    let out = r.stdout();
    assert!(out.contains("hello-from-the-function"));
    assert!(out.contains(&format!("START RequestId: {a} Version: $LATEST")));
    assert!(out.contains(&format!("END RequestId: {a}")));
    let report = |id: &str| {
        out.lines()
            .find(|l| l.starts_with(&format!("REPORT RequestId: {id}")))
            .unwrap_or_else(|| panic!("no REPORT for {id}:\n{out}"))
            .to_owned()
    };
    let ra = report(&a);
    let rb = report(&b);
    let fields: Vec<&str> = ra.split('\t').collect();
    assert!(
        fields[1].starts_with("Duration: ") && fields[1].ends_with(" ms"),
        "{ra}"
    );
    assert!(fields[2].starts_with("Billed Duration: "), "{ra}");
    assert_eq!(fields[3], "Memory Size: 3008 MB");
    let mem: u64 = fields[4]
        .strip_prefix("Max Memory Used: ")
        .and_then(|s| s.strip_suffix(" MB"))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{ra}"));
    assert!(mem > 0, "{ra}");
    assert!(ra.contains("\tInit Duration: "), "cold start: {ra}");
    assert!(!rb.contains("Init Duration"), "warm: {rb}");
    // The order for one invoke: START, the function's line, END, REPORT.
    let pos = |needle: &str| out.find(needle).unwrap_or(usize::MAX);
    assert!(pos(&format!("START RequestId: {a}")) < pos("hello-from-the-function"));
    assert!(pos("hello-from-the-function") < pos(&format!("END RequestId: {a}")));
}

#[test]
fn runtime_environment() {
    let r = Rapid::builder()
        .bootstrap(FX)
        .env("FX_CUSTOM", "a=b=c")
        .arg("--handler")
        .arg("my.handler")
        .arg("--memory-size")
        .arg("512")
        .start();
    let v = r.invoke(br#"{"context":true}"#).json();
    let env = &v["env"];
    assert_eq!(env["AWS_LAMBDA_FUNCTION_NAME"], "test_function");
    assert_eq!(env["AWS_LAMBDA_FUNCTION_VERSION"], "$LATEST");
    assert_eq!(env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"], "512");
    assert_eq!(env["AWS_LAMBDA_RUNTIME_API"], r.api.to_string());
    assert_eq!(env["AWS_LAMBDA_INITIALIZATION_TYPE"], "on-demand");
    assert_eq!(env["_HANDLER"], "my.handler");
    assert_eq!(env["FX_CUSTOM"], "a=b=c");
    assert!(env["AWS_REGION"].is_string());
}

#[test]
fn sigterm_exits_zero_and_leaves_nothing_behind() {
    let mut r = Rapid::builder().bootstrap(FX).start();
    let runtime = pid_of(&r) as i32;
    r.signal(libc::SIGTERM);
    let status = r.wait_exit(Duration::from_secs(5)).expect("rapid exits");
    assert_eq!(status.code(), Some(0));
    assert!(eventually(Duration::from_secs(2), || !alive(runtime)));
    assert!(r.stderr().contains("shutdown complete"));
}

#[test]
fn sigterm_kills_a_setsid_grandchild() {
    let dir = TempDir::new("setsid");
    let pidfile = dir.path("grandchild.pid");
    let boot = rapid_tests::shell_runtime(
        &dir,
        &format!("setsid sleep 1000 &\necho $! > {}", pidfile.display()),
        rapid_tests::POST_OK,
    );
    let mut r = Rapid::builder().bootstrap(&boot).start();
    assert_eq!(r.invoke(b"{}").text(), "\"ok\"");
    let gc: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(alive(gc));
    r.signal(libc::SIGTERM);
    assert_eq!(
        r.wait_exit(Duration::from_secs(5)).and_then(|s| s.code()),
        Some(0)
    );
    assert!(
        eventually(Duration::from_secs(2), || !alive(gc)),
        "setsid grandchild {gc} survived"
    );
}

#[test]
fn a_reset_kills_a_setsid_grandchild() {
    let dir = TempDir::new("reset");
    let pidfile = dir.path("grandchild.pid");
    let boot = dir.script(
        "bootstrap",
        &format!(
            r#"#!/bin/sh
setsid sleep 1000 &
echo $! >> {pidfile}
API="http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime"
H=$(mktemp)
curl -s -D "$H" -o /dev/null "$API/invocation/next"
exit 4
"#,
            pidfile = pidfile.display()
        ),
    );
    let r = Rapid::builder().bootstrap(&boot).start();
    let resp = r.invoke(b"{}");
    assert_eq!(resp.error_type(), "Runtime.ExitError");
    assert!(resp.error_message().ends_with("exit status 4"));
    let first: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        eventually(Duration::from_secs(2), || !alive(first)),
        "grandchild {first} survived the reset"
    );
}

#[test]
fn lambda_runtime_error_and_panic_bodies_pass_through_exactly() {
    // lambda_runtime posts `{"errorType": <type name>, "errorMessage": ...}`
    // with the header `lambda-runtime-function-error-type: unhandled`; the
    // client gets the posted body, not the header.
    let r = Rapid::builder().bootstrap(FX).start();
    let err = r.invoke(br#"{"error":"boom"}"#);
    assert_eq!(err.header("x-amz-function-error"), Some("Unhandled"));
    assert_eq!(
        err.error_type(),
        std::any::type_name::<&lambda_runtime::Error>()
    );
    assert_eq!(err.error_message(), "boom");
    assert!(err.header("x-amzn-requestid").is_some());
    assert_eq!(err.header("x-amz-executed-version"), Some("$LATEST"));

    let panic = r.invoke(br#"{"panic":"oh no"}"#);
    assert_eq!(panic.header("x-amz-function-error"), Some("Unhandled"));
    assert_eq!(
        panic.error_type(),
        std::any::type_name::<&Box<dyn std::any::Any + Send>>()
    );
    assert_eq!(panic.error_message(), "Lambda panicked: oh no");
}

#[test]
fn runtime_exit_zero_mid_invoke() {
    let r = Rapid::builder().bootstrap(FX).start();
    let resp = r.invoke(br#"{"exit":0}"#);
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("x-amz-function-error"), Some("Unhandled"));
    assert_eq!(resp.error_type(), "Runtime.ExitError");
    let id = resp.header("x-amzn-requestid").unwrap();
    assert_eq!(
        resp.error_message(),
        format!("RequestId: {id} Error: Runtime exited without providing a reason")
    );
    assert_eq!(r.invoke(br#"{"y":2}"#).json()["y"], 2);
}

#[test]
fn a_crash_re_initialises_at_once_without_waiting_for_an_invoke() {
    let r = Rapid::builder().bootstrap(FX).start();
    let before = pid_of(&r) as i32;
    assert_eq!(r.invoke(br#"{"exit":7}"#).error_type(), "Runtime.ExitError");
    // A fresh runtime is started eagerly: it shows up as rapid's child before
    // anyone invokes again.
    assert!(
        eventually(Duration::from_secs(5), || {
            r.children().iter().any(|&p| p != before && alive(p))
        }),
        "no fresh runtime after the crash; children: {:?}",
        r.children()
    );
    let fresh = r.children();
    let after = pid_of(&r) as i32;
    assert!(fresh.contains(&after), "{fresh:?} vs {after}");
}

#[test]
fn a_failed_init_is_retried_only_when_an_invoke_asks() {
    let dir = TempDir::new("spin");
    let starts = dir.path("starts");
    let r = Rapid::builder()
        .bootstrap(FX)
        .env("FX_INIT", "exit:3")
        .env("FX_STARTS", &starts.display().to_string())
        .start();
    let count = || {
        std::fs::read_to_string(&starts)
            .map(|s| s.lines().count())
            .unwrap_or(0)
    };
    assert!(eventually(Duration::from_secs(5), || count() == 1));
    // Nothing asks for a new init: the crashing runtime is not restarted.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(count(), 1, "a crashing runtime must not spin");
    // Each invoke performs one suppressed init.
    for n in 2..=3 {
        let resp = r.invoke(b"{}");
        assert_eq!(resp.error_type(), "Runtime.ExitError");
        assert!(resp.error_message().ends_with("exit status 3"));
        assert!(
            eventually(Duration::from_secs(2), || count() >= n),
            "{}",
            count()
        );
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(count(), 3, "one init per invoke, no more");
}

#[test]
fn a_client_context_lambda_runtime_rejects_fails_only_that_invoke() {
    // Valid base64 JSON, but `custom` values must be strings for
    // lambda_runtime: its Context::new fails and the runtime exits.
    let r = Rapid::builder().bootstrap(FX).start();
    use base64::Engine as _;
    let ctx = base64::engine::general_purpose::STANDARD.encode(r#"{"custom":{"n":1}}"#);
    let resp = r.invoke_with(b"{}", &[("X-Amz-Client-Context", &ctx)]);
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.header("x-amz-function-error"), Some("Unhandled"));
    assert_eq!(resp.error_type(), "Runtime.ExitError", "{}", resp.text());
    assert!(
        resp.error_message().ends_with("exit status 1"),
        "{}",
        resp.error_message()
    );
    // A context it accepts (only `custom`, strings) works on the fresh runtime.
    let ctx = base64::engine::general_purpose::STANDARD.encode(r#"{"custom":{"n":"1"}}"#);
    let ok = r.invoke_with(br#"{"context":true}"#, &[("X-Amz-Client-Context", &ctx)]);
    assert_eq!(ok.status, 200);
    assert_eq!(ok.json()["clientContext"]["custom"]["n"], "1");
}

#[test]
fn runtime_environment_is_complete() {
    let r = Rapid::builder().bootstrap(FX).start();
    let v = r.invoke(br#"{"context":true}"#).json();
    let env = &v["allEnv"];
    let get = |k: &str| env[k].as_str().map(str::to_owned);
    for k in [
        "AWS_LAMBDA_RUNTIME_API",
        "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_LAMBDA_FUNCTION_VERSION",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        "AWS_LAMBDA_LOG_GROUP_NAME",
        "AWS_LAMBDA_LOG_STREAM_NAME",
        "AWS_LAMBDA_INITIALIZATION_TYPE",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "LAMBDA_TASK_ROOT",
        "LAMBDA_RUNTIME_DIR",
        "TZ",
    ] {
        assert!(get(k).is_some(), "{k} missing from {env}");
    }
    assert_eq!(get("AWS_REGION").as_deref(), Some("us-east-1"));
    assert_eq!(get("AWS_DEFAULT_REGION").as_deref(), Some("us-east-1"));
    assert_eq!(
        get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE").as_deref(),
        Some("3008")
    );
    assert_eq!(
        get("AWS_LAMBDA_LOG_GROUP_NAME").as_deref(),
        Some("/aws/lambda/test_function")
    );
    // The caller's environment is passed on.
    assert_eq!(get("PATH"), std::env::var("PATH").ok());
    // `_HANDLER` is set when a handler is known (see
    // `the_last_positional_argument_is_the_handler`); with neither
    // `--handler` nor a second positional argument there is none to give.
}

#[test]
fn the_last_positional_argument_is_the_handler() {
    let r = Rapid::builder()
        .bootstrap(FX)
        .arg_after("fx.handler")
        .start();
    let v = r.invoke(br#"{"context":true}"#).json();
    assert_eq!(v["env"]["_HANDLER"], "fx.handler");
    let r = Rapid::builder()
        .bootstrap(FX)
        .arg("--handler")
        .arg("explicit.handler")
        .arg_after("fx.handler")
        .start();
    let v = r.invoke(br#"{"context":true}"#).json();
    assert_eq!(v["env"]["_HANDLER"], "explicit.handler");
}

#[test]
fn without_a_bootstrap_the_default_paths_are_searched() {
    let defaults = [
        "/var/task/bootstrap",
        "/opt/bootstrap",
        "/var/runtime/bootstrap",
    ];
    if defaults.iter().any(|p| std::path::Path::new(p).exists()) {
        eprintln!("skipped: a default bootstrap exists on this machine");
        return;
    }
    let r = Rapid::builder().start();
    let resp = r.invoke(b"{}");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("x-amz-function-error"), Some("Unhandled"));
    assert_eq!(resp.error_type(), "Runtime.InvalidEntrypoint");
    assert!(!resp.error_message().is_empty());
}

#[test]
fn function_stderr_lines_reach_rapids_stdout() {
    let r = Rapid::builder().bootstrap(FX).start();
    assert_eq!(
        r.invoke(br#"{"eprint":"to-stderr-from-the-function"}"#)
            .status,
        200
    );
    assert!(
        r.wait_stdout("to-stderr-from-the-function", Duration::from_secs(5)),
        "stdout:\n{}\nstderr:\n{}",
        r.stdout(),
        r.stderr()
    );
}

#[test]
fn stdout_carries_no_diagnostics() {
    // rapid's own tracing goes to stderr (at debug level here); stdout holds
    // only the function's lines and START/END/REPORT.
    let r = Rapid::builder().bootstrap(FX).start();
    let resp = r.invoke(br#"{"print":"only-line"}"#);
    let id = resp.header("x-amzn-requestid").unwrap().to_owned();
    assert!(r.wait_stdout(&format!("REPORT RequestId: {id}"), Duration::from_secs(5)));
    for line in r.stdout().lines() {
        assert!(
            line == "only-line"
                || line.starts_with("START RequestId: ")
                || line.starts_with("END RequestId: ")
                || line.starts_with("REPORT RequestId: "),
            "unexpected stdout line {line:?}"
        );
    }
    assert!(!r.stderr().is_empty(), "diagnostics go to stderr");
}

#[test]
fn sigint_exits_zero_promptly() {
    let mut r = Rapid::builder().bootstrap(FX).start();
    let runtime = pid_of(&r) as i32;
    let t = Instant::now();
    r.signal(libc::SIGINT);
    let status = r.wait_exit(Duration::from_secs(5)).expect("rapid exits");
    assert_eq!(status.code(), Some(0));
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert!(eventually(Duration::from_secs(2), || !alive(runtime)));
}

#[test]
fn sigterm_is_prompt_even_when_the_runtime_ignores_it() {
    let dir = TempDir::new("deaf");
    let boot = rapid_tests::shell_runtime(
        &dir,
        "trap '' TERM",
        r#"  curl -s -o /dev/null -X POST -d "\"$$\"" "$API/invocation/$ID/response""#,
    );
    let mut r = Rapid::builder().bootstrap(&boot).start();
    let runtime: i32 = r.invoke(b"{}").json().as_str().unwrap().parse().unwrap();
    assert!(alive(runtime));
    let t = Instant::now();
    r.signal(libc::SIGTERM);
    let status = r.wait_exit(Duration::from_secs(5)).expect("rapid exits");
    assert_eq!(status.code(), Some(0));
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "SIGKILL follows after the runtime's share: {:?}",
        t.elapsed()
    );
    assert!(
        eventually(Duration::from_secs(2), || !alive(runtime)),
        "runtime {runtime} survived"
    );
}

#[test]
fn sighup_stops_in_order_and_sigusr1_is_ignored() {
    let mut r = Rapid::builder().bootstrap(FX).start();
    r.signal(libc::SIGUSR1);
    assert!(
        r.wait_stderr("ignored", Duration::from_secs(5)),
        "{}",
        r.stderr()
    );
    assert_eq!(r.invoke(br#"{"still":"here"}"#).json()["still"], "here");
    r.signal(libc::SIGHUP);
    assert_eq!(
        r.wait_exit(Duration::from_secs(5)).and_then(|s| s.code()),
        Some(0)
    );
    assert!(r.stderr().contains("shutdown complete"));
}
