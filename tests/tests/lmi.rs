//! Lambda Managed Instances (LMI) mode: `AWS_LAMBDA_MAX_CONCURRENCY=N` (or
//! `--sandbox-concurrency N`) lets N workers of one runtime process wait on
//! `/next` and serve invokes side by side — with the real `lambda_runtime`
//! 1.5 `run_concurrent`, a curl runtime with two workers, and raw workers.

#![allow(clippy::unwrap_used)] // tests fail loudly on unexpected values

use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use rapid_tests::{
    alive, eventually, free_port, metric, rapid_bin, read_response, request, Rapid, Resp, TempDir,
};

const FX: &str = env!("CARGO_BIN_EXE_fx-lmi");
const NEXT: &str = "GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: rt\r\n\r\n";

fn lmi(n: usize) -> rapid_tests::Builder {
    Rapid::builder()
        .bootstrap(FX)
        .env("AWS_LAMBDA_MAX_CONCURRENCY", &n.to_string())
}

/// Invoke with `event` from `n` threads at once; the answers and how long
/// the slowest took.
fn concurrently(r: &Rapid, events: &[String]) -> (Vec<Resp>, Duration) {
    let t = Instant::now();
    let out = std::thread::scope(|s| {
        let hs: Vec<_> = events
            .iter()
            .map(|e| s.spawn(move || r.invoke(e.as_bytes())))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    (out, t.elapsed())
}

fn sleeps(n: usize, ms: u64) -> Vec<String> {
    (0..n).map(|_| format!(r#"{{"sleep_ms":{ms}}}"#)).collect()
}

fn pid_of(resp: &Resp) -> u64 {
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert!(
        resp.header("x-amz-function-error").is_none(),
        "{}",
        resp.text()
    );
    resp.json()["pid"].as_u64().unwrap()
}

fn starts(r: &Rapid) -> usize {
    r.stdout()
        .lines()
        .filter(|l| l.contains("START RequestId: "))
        .count()
}

#[test]
fn n_invokes_run_side_by_side_in_one_runtime_process() {
    let r = lmi(4).start();
    assert_eq!(pid_of(&r.invoke(b"{}")), pid_of(&r.invoke(b"{}")));
    let (answers, took) = concurrently(&r, &sleeps(4, 1000));
    let pids: std::collections::BTreeSet<u64> = answers.iter().map(pid_of).collect();
    let ids: std::collections::BTreeSet<String> = answers
        .iter()
        .map(|a| a.json()["requestId"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(pids.len(), 1, "one runtime process served them: {pids:?}");
    assert_eq!(ids.len(), 4, "four invokes: {ids:?}");
    // Four 1-second invokes serialised take 4 s; side by side about 1 s.
    assert!(took < Duration::from_millis(2500), "took {took:?}");
    let env = &answers[0].json()["env"];
    assert_eq!(env["AWS_LAMBDA_MAX_CONCURRENCY"], "4");
    assert_eq!(
        env["AWS_LAMBDA_INITIALIZATION_TYPE"],
        "lambda-managed-instances"
    );
    assert_eq!(env["AWS_LAMBDA_LOG_FORMAT"], "JSON");
}

#[test]
fn the_flag_switches_lmi_on_and_without_it_invokes_take_turns() {
    let r = Rapid::builder()
        .bootstrap(FX)
        .arg("--sandbox-concurrency")
        .arg("2")
        .start();
    let (answers, took) = concurrently(&r, &sleeps(2, 800));
    assert_eq!(answers[0].json()["env"]["AWS_LAMBDA_MAX_CONCURRENCY"], "2");
    assert!(took < Duration::from_millis(1500), "took {took:?}");
    drop(r);
    // Classic mode: the same function takes one invoke at a time.
    let r = Rapid::builder().bootstrap(FX).start();
    let (answers, took) = concurrently(&r, &sleeps(2, 800));
    for a in &answers {
        pid_of(a);
    }
    let env = &answers[0].json()["env"];
    assert_eq!(env["AWS_LAMBDA_INITIALIZATION_TYPE"], "on-demand");
    assert!(env["AWS_LAMBDA_MAX_CONCURRENCY"].is_null());
    assert!(took >= Duration::from_millis(1600), "took {took:?}");
}

#[test]
fn a_timeout_fails_that_invoke_alone_and_the_runtime_keeps_running() {
    let r = lmi(3).arg("--timeout").arg("1").start();
    let pid = pid_of(&r.invoke(b"{}"));
    let events = [
        r#"{"sleep_ms":3000}"#.to_owned(),
        r#"{"sleep_ms":200}"#.to_owned(),
        r#"{"sleep_ms":600}"#.to_owned(),
    ];
    let (answers, _) = concurrently(&r, &events);
    assert_eq!(answers[0].status, 200);
    assert_eq!(answers[0].header("x-amz-function-error"), Some("Unhandled"));
    assert_eq!(answers[0].error_type(), "Sandbox.Timedout");
    assert_eq!(pid_of(&answers[1]), pid);
    assert_eq!(pid_of(&answers[2]), pid);
    // The late answer of the timed-out invoke (2 s later) is refused.
    let pid = pid as i32;
    assert!(alive(pid), "the runtime was not killed");
    assert!(
        r.wait_stderr("InvokeTimeout", Duration::from_secs(5)),
        "the late answer was not refused with 410: {}",
        r.stderr()
    );
    assert!(alive(pid));
    assert_eq!(pid_of(&r.invoke(b"{}")), pid as u64);
}

/// `/next` as a raw worker: the request id and the invocation id.
fn next(r: &Rapid) -> (String, String) {
    let mut s = TcpStream::connect(r.api).unwrap();
    s.write_all(NEXT.as_bytes()).unwrap();
    let resp = read_response(&mut BufReader::new(s), |_| {});
    assert_eq!(resp.status, 200, "{}", resp.text());
    let id = resp.header("lambda-runtime-aws-request-id").unwrap();
    let inv = resp.header("lambda-runtime-invocation-id").unwrap();
    (id.to_owned(), inv.to_owned())
}

fn post(r: &Rapid, path: &str, headers: &str, body: &[u8]) -> Resp {
    let mut s = TcpStream::connect(r.api).unwrap();
    s.write_all(
        format!(
            "POST /2018-06-01/runtime/invocation/{path} HTTP/1.1\r\nHost: rt\r\n{headers}Content-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    )
    .unwrap();
    s.write_all(body).unwrap();
    read_response(&mut BufReader::new(s), |_| {})
}

fn respond(r: &Rapid, id: &str, inv: Option<&str>, body: &str) -> Resp {
    let echo = inv.map_or_else(String::new, |i| {
        format!("Lambda-Runtime-Invocation-Id: {i}\r\n")
    });
    post(r, &format!("{id}/response"), &echo, body.as_bytes())
}

fn silent(dir: &TempDir) -> std::path::PathBuf {
    dir.script("bootstrap", "#!/bin/sh\nexec sleep 1000\n")
}

#[test]
fn raw_workers_a_late_answer_is_410_and_a_third_next_is_403() {
    let dir = TempDir::new("lmi-raw");
    let r = Rapid::builder()
        .bootstrap(silent(&dir))
        .arg("--sandbox-concurrency")
        .arg("2")
        .arg("--timeout")
        .arg("1")
        .start();
    std::thread::scope(|s| {
        let w1 = s.spawn(|| next(&r));
        let w2 = s.spawn(|| next(&r));
        // Both workers wait: a third /next is one too many.
        assert!(r.wait_stderr("workers_waiting=2", Duration::from_secs(5)));
        let mut c = TcpStream::connect(r.api).unwrap();
        c.write_all(NEXT.as_bytes()).unwrap();
        let third = read_response(&mut BufReader::new(c), |_| {});
        assert_eq!(third.status, 403, "{}", third.text());
        assert_eq!(third.error_type(), "InvalidStateTransition");
        let a = s.spawn(|| r.invoke(b"{\"n\":1}"));
        let b = s.spawn(|| r.invoke(b"{\"n\":2}"));
        let (id1, inv1) = w1.join().unwrap();
        let (id2, inv2) = w2.join().unwrap();
        assert_ne!(id1, id2);
        // One answered in time, each with its own invocation id.
        let wrong = respond(&r, &id2, Some(&inv1), "\"x\"");
        assert_eq!(wrong.status, 400, "{}", wrong.text());
        let ok = respond(&r, &id2, Some(&inv2), "\"two\"");
        assert_eq!(ok.status, 202, "{}", ok.text());
        let (a, b) = (a.join().unwrap(), b.join().unwrap());
        let (late, answered) = if b.text() == "\"two\"" {
            (a, b)
        } else {
            (b, a)
        };
        assert_eq!(answered.text(), "\"two\"");
        assert_eq!(late.error_type(), "Sandbox.Timedout", "{}", late.text());
        // The other one timed out: its late answer is gone, with or without the echo.
        let gone = respond(&r, &id1, Some(&inv1), "\"late\"");
        assert_eq!(gone.status, 410, "{}", gone.text());
        assert_eq!(gone.error_type(), "InvokeTimeout");
        let gone = post(&r, &format!("{id1}/error"), "", b"{}");
        assert_eq!(gone.status, 410, "{}", gone.text());
    });
}

#[test]
fn a_runtime_exit_fails_every_invoke_in_flight_and_the_sandbox_comes_back() {
    let r = lmi(3).start();
    let pid = pid_of(&r.invoke(b"{}"));
    let events = [
        r#"{"sleep_ms":3000}"#.to_owned(),
        r#"{"sleep_ms":3000}"#.to_owned(),
        r#"{"sleep_ms":300,"exit":3}"#.to_owned(),
    ];
    let (answers, took) = concurrently(&r, &events);
    for a in &answers {
        assert_eq!(a.error_type(), "Runtime.ExitError", "{}", a.text());
        assert!(
            a.error_message()
                .ends_with("Runtime exited with error: exit status 3"),
            "{}",
            a.text()
        );
    }
    assert!(took < Duration::from_millis(2500), "took {took:?}");
    assert!(eventually(Duration::from_secs(5), || !alive(pid as i32)));
    let again = pid_of(&r.invoke(b"{}"));
    assert_ne!(again, pid, "a fresh runtime");
    let (answers, _) = concurrently(&r, &sleeps(3, 300));
    for a in &answers {
        assert_eq!(pid_of(a), again);
    }
}

#[test]
fn sigterm_with_invokes_in_flight_answers_every_caller_and_leaves_nothing() {
    let mut r = lmi(3).start();
    let pid = pid_of(&r.invoke(b"{}")) as i32;
    std::thread::scope(|s| {
        let callers: Vec<_> = sleeps(3, 5000)
            .into_iter()
            .map(|e| {
                let r = &r;
                s.spawn(move || r.invoke(e.as_bytes()))
            })
            .collect();
        assert!(eventually(Duration::from_secs(5), || starts(&r) >= 4));
        r.signal(libc::SIGTERM);
        for c in callers {
            let a = c.join().unwrap();
            assert!(
                a.status == 200 || a.status >= 500,
                "{} {}",
                a.status,
                a.text()
            );
            assert_eq!(a.error_type(), "Sandbox.Shutdown", "{}", a.text());
        }
    });
    let status = r.wait_exit(Duration::from_secs(10)).expect("rapid exits");
    assert!(status.success(), "{status:?}");
    assert!(!alive(pid), "the runtime is gone");
}

#[test]
fn max_queue_0_throttles_the_invoke_past_n() {
    let r = lmi(2).arg("--max-queue").arg("0").start();
    std::thread::scope(|s| {
        let busy: Vec<_> = sleeps(2, 1500)
            .into_iter()
            .map(|e| {
                let r = &r;
                s.spawn(move || r.invoke(e.as_bytes()))
            })
            .collect();
        assert!(eventually(Duration::from_secs(5), || starts(&r) >= 2));
        let third = r.invoke(b"{}");
        assert_eq!(third.status, 429, "{}", third.text());
        assert_eq!(
            third.header("x-amzn-errortype"),
            Some("TooManyRequestsException")
        );
        assert_eq!(
            third.json()["Reason"],
            "ReservedFunctionConcurrentInvocationLimitExceeded"
        );
        for b in busy {
            pid_of(&b.join().unwrap());
        }
    });
    pid_of(&r.invoke(b"{}"));
}

#[test]
fn a_pool_holds_sandboxes_times_n() {
    let port = free_port();
    let r = lmi(2)
        .arg("--concurrency")
        .arg("2")
        .arg("--min-warm")
        .arg("2")
        .arg("--max-queue")
        .arg("0")
        .arg("--metrics-port")
        .arg(port.to_string())
        .start();
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    pid_of(&r.invoke(b"{}"));
    std::thread::scope(|s| {
        let busy: Vec<_> = sleeps(4, 1500)
            .into_iter()
            .map(|e| {
                let r = &r;
                s.spawn(move || r.invoke(e.as_bytes()))
            })
            .collect();
        assert!(eventually(Duration::from_secs(5), || starts(&r) >= 5));
        // Metrics count invocations, and each busy sandbox once.
        let m = request(addr, "GET", "/metrics", &[], b"").text();
        assert_eq!(
            metric(&m, r#"rapid_concurrency_in_use{function="test_function"}"#),
            Some(4.0),
            "{m}"
        );
        assert_eq!(
            metric(
                &m,
                r#"rapid_sandboxes{function="test_function",state="busy"}"#
            ),
            Some(2.0),
            "{m}"
        );
        let fifth = r.invoke(b"{}");
        assert_eq!(fifth.status, 429, "{}", fifth.text());
        let pids: std::collections::BTreeSet<u64> = busy
            .into_iter()
            .map(|b| pid_of(&b.join().unwrap()))
            .collect();
        assert_eq!(pids.len(), 2, "two sandboxes, two invokes each: {pids:?}");
    });
}

#[test]
fn an_extension_may_register_for_shutdown_only() {
    let dir = TempDir::new("lmi-ext");
    let exts = dir.path("extensions");
    std::fs::create_dir_all(&exts).unwrap();
    let out = dir.path("register.out");
    let o = out.display();
    dir.script(
        "extensions/watcher",
        &format!(
            "#!/bin/sh\nEXT=\"http://$AWS_LAMBDA_RUNTIME_API/2020-01-01/extension\"\n\
             curl -s -w ' %{{http_code}}\\n' -X POST -H 'Lambda-Extension-Name: watcher' \
             -d '{{\"events\":[\"INVOKE\",\"SHUTDOWN\"]}}' \"$EXT/register\" > {o}.tmp\n\
             ID=$(curl -s -D - -o /dev/null -X POST -H 'Lambda-Extension-Name: watcher' \
             -d '{{\"events\":[\"SHUTDOWN\"]}}' \"$EXT/register\" | tr -d '\\r' \
             | awk -F': ' 'tolower($1)==\"lambda-extension-identifier\"{{print $2}}')\n\
             mv {o}.tmp {o}\n\
             curl -s -o /dev/null -H \"Lambda-Extension-Identifier: $ID\" \"$EXT/event/next\"\n"
        ),
    );
    let r = lmi(2).extensions_dir(&exts).start();
    let (answers, took) = concurrently(&r, &sleeps(2, 800));
    for a in &answers {
        pid_of(a);
    }
    assert!(took < Duration::from_millis(1500), "took {took:?}");
    let got = std::fs::read_to_string(&out).unwrap();
    assert!(got.ends_with(" 403\n"), "{got}");
    assert!(got.contains("Extension.InvalidEventType"), "{got}");
    assert!(got.contains("INVOKE: ErrorInvalidEventType"), "{got}");
}

#[test]
fn a_curl_runtime_with_two_workers() {
    let dir = TempDir::new("lmi-curl");
    let bootstrap = dir.script(
        "bootstrap",
        r#"#!/bin/sh
API="http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime"
worker() {
  while true; do
    H=$(mktemp)
    curl -s -D "$H" -o /dev/null "$API/invocation/next"
    ID=$(grep -i '^lambda-runtime-aws-request-id:' "$H" | cut -d' ' -f2 | tr -d '\r')
    rm -f "$H"
    sleep 1
    curl -s -o /dev/null -X POST -d "\"worker $1 of $AWS_LAMBDA_MAX_CONCURRENCY\"" "$API/invocation/$ID/response"
  done
}
worker 1 &
worker 2 &
wait
"#,
    );
    let r = Rapid::builder()
        .bootstrap(bootstrap)
        .arg("--sandbox-concurrency")
        .arg("2")
        .start();
    let (answers, took) = concurrently(&r, &sleeps(2, 0));
    let mut texts: Vec<String> = answers.iter().map(Resp::text).collect();
    texts.sort();
    assert_eq!(texts, ["\"worker 1 of 2\"", "\"worker 2 of 2\""]);
    assert!(took < Duration::from_millis(1900), "took {took:?}");
}

#[test]
fn bad_values_are_start_up_errors_naming_them() {
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
    let cases: [Case; 7] = [
        (&[], &[("AWS_LAMBDA_MAX_CONCURRENCY", "abc")], "abc"),
        (&[], &[("AWS_LAMBDA_MAX_CONCURRENCY", "0")], "\"0\""),
        (
            &[],
            &[("AWS_LAMBDA_MAX_CONCURRENCY", "")],
            "AWS_LAMBDA_MAX_CONCURRENCY",
        ),
        (&["--sandbox-concurrency", "-2"], &[], "-2"),
        (&["--sandbox-concurrency", "0"], &[], "'0'"),
        // Managed Instances log JSON only.
        (
            &[
                "--sandbox-concurrency",
                "2",
                "--function-log-format",
                "Text",
            ],
            &[],
            "does not support the Text log format",
        ),
        (
            &[],
            &[
                ("AWS_LAMBDA_MAX_CONCURRENCY", "2"),
                ("AWS_LAMBDA_LOG_FORMAT", "text"),
            ],
            "does not support the Text log format",
        ),
    ];
    for (args, env, needle) in cases {
        let mut child = Command::new(rapid_bin())
            .args(args)
            .arg("--runtime-interface-emulator-address")
            .arg(format!("127.0.0.1:{}", rapid_tests::free_port()))
            .envs(env.iter().copied())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // One that serves instead of refusing is stopped, and the test fails.
        let stopped = eventually(Duration::from_secs(10), || {
            child.try_wait().ok().flatten().is_some()
        });
        if !stopped {
            let _ = child.kill();
        }
        let out = child.wait_with_output().unwrap();
        assert!(stopped, "rapid {args:?} {env:?} did not stop");
        assert_eq!(out.status.code(), Some(2), "{args:?} {env:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?} {env:?}: {err}");
    }
}

/// A worker's streamed `/response` of `id`, opened with its first chunk.
fn open_stream(r: &Rapid, id: &str, first: &str) -> TcpStream {
    let mut s = TcpStream::connect(r.api).unwrap();
    write!(
        s,
        "POST /2018-06-01/runtime/invocation/{id}/response HTTP/1.1\r\nHost: rt\r\n\
         Lambda-Runtime-Function-Response-Mode: streaming\r\nTransfer-Encoding: chunked\r\n\r\n\
         {:x}\r\n{first}\r\n",
        first.len()
    )
    .unwrap();
    s
}

fn close_stream(mut s: TcpStream, last: &str) -> Resp {
    write!(s, "{:x}\r\n{last}\r\n0\r\n\r\n", last.len()).unwrap();
    read_response(&mut BufReader::new(s), |_| {})
}

#[test]
fn two_invokes_stream_side_by_side() {
    let dir = TempDir::new("lmi-stream");
    let r = Rapid::builder()
        .bootstrap(silent(&dir))
        .arg("--sandbox-concurrency")
        .arg("2")
        .start();
    let path = "/2015-03-31/functions/function/invocations";
    std::thread::scope(|s| {
        let w1 = s.spawn(|| next(&r));
        let w2 = s.spawn(|| next(&r));
        assert!(r.wait_stderr("workers_waiting=2", Duration::from_secs(5)));
        let a = s.spawn(|| rapid_tests::stream(r.invoke, path, b"{}", None));
        let b = s.spawn(|| rapid_tests::stream(r.invoke, path, b"{}", None));
        let (id1, _) = w1.join().unwrap();
        let (id2, _) = w2.join().unwrap();
        // Both streams are open at once, their chunks interleaved.
        let s1 = open_stream(&r, &id1, &format!("{id1}:one;"));
        let s2 = open_stream(&r, &id2, &format!("{id2}:one;"));
        assert_eq!(close_stream(s1, "two").status, 202);
        assert_eq!(close_stream(s2, "two").status, 202);
        let mut bodies: Vec<String> = [a.join().unwrap(), b.join().unwrap()]
            .iter()
            .map(|st| {
                assert_eq!(st.status, 200);
                assert!(st.end.is_ok(), "{:?}", st.end);
                String::from_utf8_lossy(&st.body()).into_owned()
            })
            .collect();
        bodies.sort();
        let mut want = vec![format!("{id1}:one;two"), format!("{id2}:one;two")];
        want.sort();
        assert_eq!(bodies, want, "each caller got its own stream");
    });
    // Each invoke was closed on its own: two REPORT lines.
    let reported = || r.stdout().matches("REPORT RequestId").count() >= 2;
    assert!(
        eventually(Duration::from_secs(5), reported),
        "{}",
        r.stdout()
    );
}
