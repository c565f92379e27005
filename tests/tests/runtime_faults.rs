//! Faults a hostile or broken runtime found in the Runtime API: an upload
//! that never finishes must not hold the invoker past its deadline (nor turn
//! the timeout into another error), a second concurrent `/next` is refused
//! without cutting the first, and an `/error` whose error type is not clean
//! text still answers the invoker with the right kind at once.

#![allow(clippy::unwrap_used)] // tests fail loudly on unexpected values

use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use rapid_tests::{read_response, Rapid, TempDir};

const NEXT: &str = "GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: rt\r\n\r\n";

/// A bootstrap that never speaks the Runtime API: the test is the runtime.
fn silent_runtime(dir: &TempDir) -> std::path::PathBuf {
    dir.script("bootstrap", "#!/bin/sh\nexec sleep 1000\n")
}

/// Call `/next` as the runtime and return the connection and the request id.
fn next(r: &Rapid) -> (TcpStream, String) {
    let mut s = TcpStream::connect(r.api).unwrap();
    s.write_all(NEXT.as_bytes()).unwrap();
    let resp = read_response(&mut BufReader::new(s.try_clone().unwrap()), |_| {});
    assert_eq!(resp.status, 200, "{}", resp.text());
    let id = resp
        .header("lambda-runtime-aws-request-id")
        .unwrap()
        .to_owned();
    (s, id)
}

#[test]
fn an_upload_held_open_by_another_process_does_not_hold_the_invoker_past_the_deadline() {
    let dir = TempDir::new("fault-held-upload");
    let r = Rapid::builder()
        .bootstrap(silent_runtime(&dir))
        .arg("--timeout")
        .arg("2")
        .start();
    std::thread::scope(|s| {
        let invoker = s.spawn(|| {
            let t = Instant::now();
            (r.invoke(b"{}"), t.elapsed())
        });
        let (_next, id) = next(&r);
        // 2 of 100 bytes, then the connection is held by a process rapid does not kill.
        let mut up = TcpStream::connect(r.api).unwrap();
        up.write_all(
            format!(
                "POST /2018-06-01/runtime/invocation/{id}/response HTTP/1.1\r\nHost: rt\r\nContent-Length: 100\r\n\r\nab"
            )
            .as_bytes(),
        )
        .unwrap();
        let (resp, took) = invoker.join().unwrap();
        assert_eq!(resp.error_type(), "Sandbox.Timedout", "{}", resp.text());
        assert!(
            resp.error_message()
                .ends_with("Task timed out after 2.00 seconds"),
            "{}",
            resp.text()
        );
        // The deadline is the behaviour: 2 s, with a generous margin.
        assert!(took < Duration::from_secs(6), "answered after {took:?}");
        drop(up);
    });
}

#[test]
fn a_timeout_during_the_runtimes_own_stalled_upload_is_a_timeout() {
    let dir = TempDir::new("fault-stalled-upload");
    let boot = dir.script(
        "bootstrap",
        r#"#!/bin/bash
host=${AWS_LAMBDA_RUNTIME_API%:*}; port=${AWS_LAMBDA_RUNTIME_API#*:}
exec 3<>/dev/tcp/$host/$port
printf 'GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: rt\r\n\r\n' >&3
id=
while IFS= read -r line <&3; do
  line=${line%$'\r'}
  [ -z "$line" ] && break
  case "${line,,}" in lambda-runtime-aws-request-id:*) id=${line#*: } ;; esac
done
exec 4<>/dev/tcp/$host/$port
printf "POST /2018-06-01/runtime/invocation/$id/response HTTP/1.1\r\nHost: rt\r\nContent-Length: 100\r\n\r\nab" >&4
sleep 1000
"#,
    );
    let r = Rapid::builder()
        .bootstrap(&boot)
        .arg("--timeout")
        .arg("1")
        .start();
    let resp = r.invoke(b"{}");
    assert_eq!(resp.header("x-amz-function-error"), Some("Unhandled"));
    assert_eq!(resp.error_type(), "Sandbox.Timedout", "{}", resp.text());
}

#[test]
fn a_second_concurrent_next_is_refused_and_the_first_keeps_its_place() {
    let dir = TempDir::new("fault-two-nexts");
    let r = Rapid::builder().bootstrap(silent_runtime(&dir)).start();
    let mut first = TcpStream::connect(r.api).unwrap();
    first.write_all(NEXT.as_bytes()).unwrap();
    // The first /next completes the init: it is parked from then on.
    assert!(
        r.wait_stderr("init complete", Duration::from_secs(5)),
        "{}",
        r.stderr()
    );
    let mut second = TcpStream::connect(r.api).unwrap();
    second.write_all(NEXT.as_bytes()).unwrap();
    let refused = read_response(&mut BufReader::new(second), |_| {});
    assert_eq!(refused.status, 403, "{}", refused.text());
    assert_eq!(refused.error_type(), "InvalidStateTransition");
    assert!(
        refused.error_message().contains("already waiting"),
        "{}",
        refused.text()
    );
    std::thread::scope(|s| {
        let invoker = s.spawn(|| r.invoke(br#"{"to":"first"}"#));
        let got = read_response(&mut BufReader::new(first.try_clone().unwrap()), |_| {});
        assert_eq!(
            got.status,
            200,
            "the first /next gets the event: {}",
            got.text()
        );
        assert_eq!(got.text(), r#"{"to":"first"}"#);
        let id = got.header("lambda-runtime-aws-request-id").unwrap();
        let body = br#""answered""#;
        first
            .write_all(
                format!(
                    "POST /2018-06-01/runtime/invocation/{id}/response HTTP/1.1\r\nHost: rt\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                )
                .as_bytes(),
            )
            .unwrap();
        first.write_all(body).unwrap();
        let answer = invoker.join().unwrap();
        assert_eq!(answer.status, 200);
        assert_eq!(answer.text(), r#""answered""#);
    });
}

/// A bash runtime that answers every invoke with an empty `/error` carrying
/// the error-type header `printf` makes of `escaped` (so the invoker's error
/// document is the one rapid makes of that header).
fn erroring_runtime(dir: &TempDir, escaped: &str) -> std::path::PathBuf {
    dir.script(
        "bootstrap",
        &format!(
            r#"#!/bin/bash
API="http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime"
T=$(printf '{escaped}')
while true; do
  H=$(mktemp)
  curl -s -D "$H" -o /dev/null "$API/invocation/next"
  ID=$(grep -i '^lambda-runtime-aws-request-id:' "$H" | cut -d' ' -f2 | tr -d '\r')
  curl -s -o /dev/null -H "Lambda-Runtime-Function-Error-Type: $T" \
    -d '' "$API/invocation/$ID/error"
done
"#
        ),
    )
}

#[test]
fn an_error_type_that_is_not_utf8_is_still_a_function_error() {
    let dir = TempDir::new("fault-utf8-type");
    let r = Rapid::builder()
        .bootstrap(erroring_runtime(&dir, r"Function.\xff\xfe"))
        .start();
    let resp = r.invoke(b"{}");
    assert_eq!(resp.header("x-amz-function-error"), Some("Unhandled"));
    assert_eq!(resp.error_type(), "Function.Unknown", "{}", resp.text());
}

#[test]
fn an_error_with_a_control_byte_in_its_type_answers_the_invoker_at_once() {
    let dir = TempDir::new("fault-ctl-type");
    let r = Rapid::builder()
        .bootstrap(erroring_runtime(&dir, r"Function.\001Bad"))
        .arg("--timeout")
        .arg("30")
        .start();
    let t = Instant::now();
    let resp = r.invoke(b"{}");
    let took = t.elapsed();
    assert_eq!(resp.header("x-amz-function-error"), Some("Unhandled"));
    assert_eq!(resp.error_type(), "Runtime.Unknown", "{}", resp.text());
    assert!(
        resp.error_message().contains("not valid HTTP"),
        "{}",
        resp.text()
    );
    assert!(
        took < Duration::from_secs(10),
        "not the 30 s deadline: {took:?}"
    );
}
