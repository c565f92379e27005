//! What orchestrators need of lambda mode: a graceful drain on SIGTERM
//! (`--drain-timeout`), and `PORT` (Knative, Cloud Run) for the front's port
//! — with the real `lambda_runtime` fixture and the http-mode upstream.

#![allow(clippy::unwrap_used)] // tests fail loudly on unexpected values

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use rapid_tests::{eventually, free_port, rapid_bin, request, Rapid, TempDir};

const FX: &str = env!("CARGO_BIN_EXE_fx-lambda");
const UPSTREAM: &str = env!("CARGO_BIN_EXE_fx-upstream");

/// A new invoke during the drain is refused: 503, or no connection at all
/// (the listener is closed, or the connection is closed unanswered) — never run.
fn refused(r: &Rapid) -> bool {
    let Ok(mut s) = TcpStream::connect(r.invoke) else {
        return true;
    };
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    let body = br#"{"print":"ran-during-drain"}"#;
    let head = format!(
        "POST /2015-03-31/functions/function/invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if s.write_all(head.as_bytes())
        .and_then(|()| s.write_all(body))
        .is_err()
    {
        return true;
    }
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    answer.is_empty() || answer.starts_with(b"HTTP/1.1 503")
}

fn queue_depth(port: u16) -> Option<f64> {
    let m = request(
        format!("127.0.0.1:{port}").parse().unwrap(),
        "GET",
        "/metrics",
        &[],
        b"",
    )
    .text();
    m.lines().find_map(|l| {
        l.strip_prefix(r#"rapid_queue_depth{function="test_function"} "#)?
            .parse()
            .ok()
    })
}

#[test]
fn with_a_drain_timeout_running_and_queued_invokes_finish_after_sigterm() {
    let metrics = free_port();
    let mut r = Rapid::builder()
        .bootstrap(FX)
        .arg("--drain-timeout")
        .arg("5s")
        .arg("--metrics-port")
        .arg(metrics.to_string())
        .start();
    std::thread::scope(|s| {
        let running = s.spawn(|| r.invoke(br#"{"sleep_ms":800}"#));
        assert!(r.wait_stdout("START RequestId", Duration::from_secs(5)));
        let queued = s.spawn(|| r.invoke(br#"{"print":"queued-ran"}"#));
        assert!(eventually(Duration::from_secs(5), || queue_depth(metrics) == Some(1.0)));
        r.signal(libc::SIGTERM);
        assert!(
            r.wait_stderr("draining", Duration::from_secs(5)),
            "{}",
            r.stderr()
        );
        assert!(refused(&r), "a new invoke during the drain is not run");
        let running = running.join().unwrap();
        assert_eq!(running.status, 200, "{}", running.text());
        assert!(
            running.header("x-amz-function-error").is_none(),
            "{}",
            running.text()
        );
        let queued = queued.join().unwrap();
        assert_eq!(queued.status, 200, "{}", queued.text());
    });
    let status = r.wait_exit(Duration::from_secs(10)).expect("rapid exits");
    assert_eq!(status.code(), Some(0));
    assert!(
        r.wait_stdout("queued-ran", Duration::from_secs(5)),
        "{}",
        r.stdout()
    );
    assert!(!r.stdout().contains("ran-during-drain"));
}

#[test]
fn without_a_drain_timeout_sigterm_cuts_the_running_invoke() {
    let mut r = Rapid::builder().bootstrap(FX).start();
    std::thread::scope(|s| {
        let running = s.spawn(|| r.invoke(br#"{"sleep_ms":3000}"#));
        assert!(r.wait_stdout("START RequestId", Duration::from_secs(5)));
        r.signal(libc::SIGTERM);
        let a = running.join().unwrap();
        let cut = a.status >= 500 || a.header("x-amz-function-error").is_some();
        assert!(cut, "{} {}", a.status, a.text());
    });
    assert_eq!(
        r.wait_exit(Duration::from_secs(5)).expect("exits").code(),
        Some(0)
    );
}

#[test]
fn port_sets_the_invoke_api_port_when_no_address_is_given() {
    let port = free_port();
    let api = free_port();
    let mut child = Command::new(rapid_bin())
        .env("PORT", port.to_string())
        .arg("--runtime-api-address")
        .arg(format!("127.0.0.1:{api}"))
        .arg("--extensions-dir")
        .arg("/nonexistent/rapid-test-extensions")
        .arg(FX)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let up = eventually(Duration::from_secs(10), || {
        std::net::TcpStream::connect(addr).is_ok()
    });
    let answer = up.then(|| {
        request(
            addr,
            "POST",
            "/2015-03-31/functions/function/invocations",
            &[],
            br#"{"on":"port"}"#,
        )
    });
    // SAFETY: signalling the child we started.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let _ = child.wait();
    let answer = answer.expect("the Invoke API listens on $PORT");
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.text(), r#"{"on":"port"}"#);
}

#[test]
fn in_http_mode_the_server_gets_port_set_to_its_upstream_port() {
    let tmp = TempDir::new("port-http");
    let upstream = free_port();
    // The server binds $PORT: rapid's own PORT (the orchestrator's) must not reach it.
    let r = Rapid::builder()
        .watchdog("http")
        .env("TMPDIR", &tmp.0.display().to_string())
        .env("PORT", &free_port().to_string())
        .arg("--upstream-url")
        .arg(format!("http://127.0.0.1:{upstream}"))
        .bootstrap("/bin/sh")
        .arg_after("-c")
        .arg_after(format!("exec {UPSTREAM} \"$PORT\""))
        .start();
    assert!(
        eventually(Duration::from_secs(10), || {
            request(r.invoke, "GET", "/_/health", &[], b"").status == 200
        }),
        "the server bound its upstream port: {}",
        r.stderr()
    );
    let resp = request(r.invoke, "POST", "/echo", &[], b"hello");
    assert_eq!(resp.status, 200, "{}", resp.text());
}
