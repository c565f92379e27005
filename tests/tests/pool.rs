//! SPEC §9b: a pool of sandboxes per function — concurrency, warm reuse,
//! cold starts, throttling, the bounded queue, isolation of a crash, idle
//! reclaim, one-shot pre-warming, the pool's state and metrics, shutdown —
//! with the real `lambda_runtime` fixture.

#![allow(clippy::unwrap_used)] // tests fail loudly on unexpected values

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use rapid_tests::{alive, eventually, free_port, metric, request, Rapid, Resp, TempDir};

const FX: &str = env!("CARGO_BIN_EXE_fx-lambda");
const EXT: &str = env!("CARGO_BIN_EXE_fx-extension");

fn pool(args: &[&str]) -> Rapid {
    let mut b = Rapid::builder().bootstrap(FX);
    for a in args {
        b = b.arg(*a);
    }
    b.start()
}

/// `n` invokes of `body` at once; their answers, in order.
fn burst(r: &Rapid, n: usize, body: &str) -> Vec<Resp> {
    std::thread::scope(|s| {
        let calls: Vec<_> = (0..n)
            .map(|_| s.spawn(|| r.invoke(body.as_bytes())))
            .collect();
        calls.into_iter().map(|c| c.join().unwrap()).collect()
    })
}

fn pids(answers: &[Resp]) -> BTreeSet<u64> {
    answers
        .iter()
        .map(|a| {
            assert_eq!(a.status, 200, "{}", a.text());
            a.json()["pid"].as_u64().expect("pid")
        })
        .collect()
}

/// The Runtime API address each answer's sandbox gave its runtime.
fn runtime_apis(answers: &[Resp]) -> Vec<String> {
    answers
        .iter()
        .map(|a| {
            a.json()["env"]["AWS_LAMBDA_RUNTIME_API"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

const SLEEP_PID: &str = r#"{"sleep_ms":600,"context":true}"#;

#[test]
fn concurrent_invokes_run_in_distinct_sandboxes_at_once() {
    let r = pool(&["--concurrency", "4", "--min-warm", "4"]);
    // Every sandbox is warm before the burst.
    assert!(eventually(Duration::from_secs(10), || {
        r.stderr().matches("init complete").count() >= 4
    }));
    let t = Instant::now();
    let answers = burst(&r, 4, SLEEP_PID);
    let took = t.elapsed();
    assert_eq!(pids(&answers).len(), 4, "four runtimes");
    // One after another they would take 2.4 s.
    assert!(took < Duration::from_millis(1800), "took {took:?}");
    // Each sandbox has its own Runtime API: the first keeps the configured one.
    let apis: BTreeSet<String> = runtime_apis(&answers).into_iter().collect();
    assert_eq!(apis.len(), 4, "{apis:?}");
    assert!(apis.contains(&r.api.to_string()), "{apis:?}");
}

#[test]
fn a_second_wave_reuses_the_warm_sandboxes_and_one_at_a_time_needs_one() {
    let r = pool(&["--concurrency", "3"]);
    let first = pids(&burst(&r, 3, SLEEP_PID));
    assert_eq!(
        first.len(),
        3,
        "a burst starts sandboxes up to the concurrency"
    );
    let second = pids(&burst(&r, 3, SLEEP_PID));
    assert_eq!(first, second, "no new runtime for the second wave");
    // Sequential invokes: warm sandboxes, no cold start.
    let one: BTreeSet<u64> = (0..4)
        .map(|_| {
            r.invoke(br#"{"context":true}"#).json()["pid"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert!(first.is_superset(&one), "{one:?} ⊄ {first:?}");
    assert_eq!(
        r.stderr().matches("sandbox starting").count(),
        2,
        "the burst's two cold starts only"
    );
}

#[test]
fn a_cold_start_happens_only_when_no_sandbox_is_idle() {
    let r = pool(&["--concurrency", "4", "--min-warm", "1"]);
    for _ in 0..3 {
        assert_eq!(r.invoke(b"{}").status, 200);
    }
    let starts = |r: &Rapid| r.stderr().matches("sandbox starting").count();
    assert_eq!(starts(&r), 0, "sequential invokes fit the warm sandbox");
    let two = burst(&r, 2, SLEEP_PID);
    assert_eq!(pids(&two).len(), 2);
    assert_eq!(
        starts(&r),
        1,
        "one cold start for the second concurrent invoke"
    );
    // The cold start's REPORT carries its Init Duration (as does sandbox 0's first).
    let with_init = |r: &Rapid| {
        r.stdout()
            .lines()
            .filter(|l| l.contains("REPORT RequestId") && l.contains("Init Duration"))
            .count()
    };
    assert!(
        eventually(Duration::from_secs(5), || with_init(&r) == 2),
        "{}",
        r.stdout()
    );
}

#[test]
fn max_queue_zero_throttles_beyond_the_concurrency_as_aws() {
    let r = pool(&["--concurrency", "1", "--max-queue", "0"]);
    std::thread::scope(|s| {
        let busy = s.spawn(|| r.invoke(br#"{"sleep_ms":800}"#));
        assert!(r.wait_stdout("START RequestId", Duration::from_secs(5)));
        let t = r.invoke(b"{}");
        assert_eq!(t.status, 429, "{}", t.text());
        assert_eq!(t.error_type(), "TooManyRequestsException");
        assert_eq!(t.error_message(), "Rate Exceeded.");
        assert_eq!(
            t.json()["Reason"],
            "ReservedFunctionConcurrentInvocationLimitExceeded"
        );
        // An Event waits in its own queue instead.
        let ev = r.invoke_with(
            br#"{"print":"event-ran"}"#,
            &[("X-Amz-Invocation-Type", "Event")],
        );
        assert_eq!(ev.status, 202, "{}", ev.text());
        assert_eq!(busy.join().unwrap().status, 200);
    });
    assert!(r.wait_stdout("event-ran", Duration::from_secs(5)));
}

#[test]
fn beyond_the_concurrency_invokes_wait_in_a_bounded_queue() {
    let port = free_port();
    let r = pool(&[
        "--concurrency",
        "2",
        "--min-warm",
        "2",
        "--max-queue",
        "1",
        "--metrics-port",
        &port.to_string(),
    ]);
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let depth = || {
        let m = request(addr, "GET", "/metrics", &[], b"").text();
        metric(&m, r#"rapid_queue_depth{function="test_function"}"#)
    };
    std::thread::scope(|s| {
        let running: Vec<_> = (0..2)
            .map(|_| s.spawn(|| r.invoke(br#"{"sleep_ms":1500}"#)))
            .collect();
        assert!(eventually(Duration::from_secs(5), || {
            r.stdout().matches("START RequestId").count() == 2
        }));
        let queued = s.spawn(|| r.invoke(br#"{"print":"queued-ran"}"#));
        assert!(eventually(Duration::from_secs(5), || depth() == Some(1.0)));
        let full = r.invoke(b"{}");
        assert_eq!(full.status, 429, "{}", full.text());
        assert_eq!(full.error_type(), "TooManyRequestsException");
        assert!(
            full.error_message()
                .contains("1 invokes are already waiting"),
            "{}",
            full.text()
        );
        for c in running {
            assert_eq!(c.join().unwrap().status, 200);
        }
        assert_eq!(queued.join().unwrap().status, 200, "the queued one ran");
    });
    assert!(r.wait_stdout("queued-ran", Duration::from_secs(5)));
}

#[test]
fn a_crash_in_one_sandbox_leaves_the_others_running() {
    let r = pool(&["--concurrency", "2", "--min-warm", "2"]);
    std::thread::scope(|s| {
        let long = s.spawn(|| r.invoke(SLEEP_PID.as_bytes()));
        assert!(r.wait_stdout("START RequestId", Duration::from_secs(5)));
        let crash = r.invoke(br#"{"exit":3}"#);
        assert_eq!(crash.error_type(), "Runtime.ExitError", "{}", crash.text());
        let long = long.join().unwrap();
        assert_eq!(long.status, 200, "{}", long.text());
        assert!(long.header("x-amz-function-error").is_none());
        assert!(alive(long.json()["pid"].as_u64().unwrap() as i32));
    });
    assert_eq!(r.invoke(b"{}").status, 200, "the crashed sandbox recovers");
}

#[test]
fn idle_sandboxes_beyond_min_warm_are_reclaimed_with_spindown() {
    let dir = TempDir::new("pool-reclaim");
    let log = dir.path("ext.log");
    let exts = dir.path("extensions");
    std::fs::create_dir_all(&exts).unwrap();
    dir.script(
        "extensions/logger",
        &format!(
            "#!/bin/sh\nexport FX_EXT_NAME=logger FX_EXT_LOG='{}'\nexec {EXT}\n",
            log.display()
        ),
    );
    let r = Rapid::builder()
        .bootstrap(FX)
        .extensions_dir(&exts)
        .arg("--concurrency")
        .arg("3")
        .arg("--min-warm")
        .arg("1")
        .arg("--idle-timeout")
        .arg("500ms")
        .start();
    let answers = burst(&r, 3, SLEEP_PID);
    let used = pids(&answers);
    assert_eq!(used.len(), 3);
    assert!(
        eventually(Duration::from_secs(10), || {
            used.iter().filter(|p| alive(**p as i32)).count() == 1
        }),
        "two of three runtimes reclaimed"
    );
    // Nothing of a reclaimed sandbox stays: its Runtime API listener is gone too.
    let apis = runtime_apis(&answers);
    assert!(
        eventually(Duration::from_secs(5), || {
            apis.iter()
                .filter(|a| std::net::TcpStream::connect(a.as_str()).is_ok())
                .count()
                == 1
        }),
        "{apis:?}"
    );
    // Their extensions get SHUTDOWN SPINDOWN (after the runtime is stopped).
    // Two extensions append to one file at once: count the records, not lines.
    let spindowns = || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .matches("SHUTDOWN SPINDOWN")
            .count()
    };
    assert!(
        eventually(Duration::from_secs(5), || spindowns() == 2),
        "{}\n{}",
        std::fs::read_to_string(&log).unwrap_or_default(),
        r.stderr()
    );
    // min-warm stays: the survivor answers without a cold start.
    let p = r.invoke(br#"{"context":true}"#).json()["pid"]
        .as_u64()
        .unwrap();
    assert!(used.contains(&p));
}

#[test]
fn one_shot_with_a_pool_answers_from_a_sandbox_prepared_in_advance() {
    let dir = TempDir::new("pool-oneshot");
    // A runtime whose init takes 1 s.
    let slow = dir.script("bootstrap", &format!("#!/bin/sh\nsleep 1\nexec {FX}\n"));
    let r = Rapid::builder()
        .bootstrap(&slow)
        .arg("--one-shot")
        .arg("--concurrency")
        .arg("3")
        .arg("--min-warm")
        .arg("3")
        .start();
    assert!(eventually(Duration::from_secs(10), || {
        r.stderr().matches("init complete").count() >= 3
    }));
    let mut seen = BTreeSet::new();
    for i in 0..6 {
        let t = Instant::now();
        let a = r.invoke(br#"{"context":true}"#);
        let took = t.elapsed();
        assert_eq!(a.status, 200, "{}", a.text());
        assert!(
            seen.insert(a.json()["pid"].as_u64().unwrap()),
            "invoke {i}: a runtime served twice"
        );
        // A fresh init would take 1 s: the sandbox was ready before.
        assert!(
            took < Duration::from_millis(700),
            "invoke {i} took {took:?}"
        );
        std::thread::sleep(Duration::from_millis(450));
    }
}

#[test]
fn the_pool_state_lists_every_sandbox_and_init_reaches_them_all() {
    let r = Rapid::builder()
        .bootstrap(FX)
        .control()
        .arg("--concurrency")
        .arg("2")
        .arg("--min-warm")
        .arg("2")
        .start();
    let init = r.control("POST", "/v1/init", r#"{"memorySizeMb":256}"#);
    assert_eq!(init.status, 200, "{}", init.text());
    let answers = burst(&r, 2, SLEEP_PID);
    assert_eq!(pids(&answers).len(), 2);
    for a in &answers {
        assert_eq!(a.json()["env"]["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"], "256");
    }
    // Each sandbox records its invoke once the runtime asks for the next.
    let state = || r.control("GET", "/v1/state", "").json();
    let boxes = |s: &serde_json::Value| {
        s["functions"][0]["sandboxes"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    let total = |s: &serde_json::Value| {
        boxes(s)
            .iter()
            .map(|b| b["invokes"].as_u64().unwrap_or(0))
            .sum::<u64>()
    };
    assert!(
        eventually(Duration::from_secs(5), || total(&state()) == 2),
        "{}",
        state()
    );
    let state = state();
    let boxes = boxes(&state);
    assert_eq!(boxes.len(), 2, "{state}");
    for b in &boxes {
        assert_eq!(b["invokes"], 1, "one each: {state}");
        assert_eq!(b["phase"], "Ready", "{state}");
        assert!(b["runtimePid"].as_u64().is_some(), "{state}");
    }
    assert_eq!(
        state["index"], 0,
        "the top level is the first sandbox: {state}"
    );
    let indexes: BTreeSet<u64> = boxes.iter().map(|b| b["index"].as_u64().unwrap()).collect();
    assert_eq!(indexes, BTreeSet::from([0, 1]));
}

#[test]
fn the_pool_metrics_are_served_on_the_metrics_port() {
    let port = free_port();
    let r = pool(&[
        "--concurrency",
        "2",
        "--max-queue",
        "0",
        "--function-name",
        "pooled",
        "--metrics-port",
        &port.to_string(),
    ]);
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    std::thread::scope(|s| {
        let calls: Vec<_> = (0..2)
            .map(|_| s.spawn(|| r.invoke(br#"{"sleep_ms":700}"#)))
            .collect();
        assert!(eventually(Duration::from_secs(5), || {
            let m = request(addr, "GET", "/metrics", &[], b"").text();
            metric(&m, r#"rapid_concurrency_in_use{function="pooled"}"#) == Some(2.0)
        }));
        let m = request(addr, "GET", "/metrics", &[], b"").text();
        assert_eq!(
            metric(&m, r#"rapid_sandboxes{function="pooled",state="busy"}"#),
            Some(2.0),
            "{m}"
        );
        assert_eq!(r.invoke(b"{}").status, 429, "the third is throttled");
        for c in calls {
            assert_eq!(c.join().unwrap().status, 200);
        }
    });
    let m = request(addr, "GET", "/metrics", &[], b"").text();
    assert_eq!(
        metric(&m, r#"rapid_cold_starts_total{function="pooled"}"#),
        Some(2.0),
        "{m}"
    );
    assert_eq!(
        metric(&m, r#"rapid_throttles_total{function="pooled"}"#),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        metric(
            &m,
            r#"rapid_invokes_total{function="pooled",outcome="success"}"#
        ),
        Some(2.0),
        "{m}"
    );
    assert_eq!(
        metric(
            &m,
            r#"rapid_invoke_duration_seconds_count{function="pooled"}"#
        ),
        Some(2.0),
        "{m}"
    );
    assert_eq!(
        metric(&m, r#"rapid_queue_depth{function="pooled"}"#),
        Some(0.0),
        "{m}"
    );
    // Both idle once their runtimes asked for the next event.
    let idle = || {
        let m = request(addr, "GET", "/metrics", &[], b"").text();
        metric(&m, r#"rapid_sandboxes{function="pooled",state="idle"}"#)
    };
    assert!(
        eventually(Duration::from_secs(5), || idle() == Some(2.0)),
        "{m}"
    );
}

#[test]
fn without_metrics_port_lambda_mode_serves_one_port() {
    let r = pool(&["--concurrency", "2"]);
    assert!(
        r.wait_stderr("metrics=None", Duration::from_secs(5)),
        "no metrics endpoint unless asked: {}",
        r.stderr()
    );
}

#[test]
fn sigterm_with_every_sandbox_busy_leaves_nothing_behind() {
    let mut r = pool(&["--concurrency", "3", "--min-warm", "3"]);
    let warm = pids(&burst(&r, 3, r#"{"context":true}"#));
    std::thread::scope(|s| {
        let calls: Vec<_> = (0..3)
            .map(|_| s.spawn(|| r.invoke(br#"{"sleep_ms":5000}"#)))
            .collect();
        assert!(eventually(Duration::from_secs(5), || {
            r.stdout().matches("START RequestId").count() >= 6
        }));
        r.signal(libc::SIGTERM);
        for c in calls {
            let a = c.join().unwrap();
            // Each caller gets an answer: the shutdown's error, not a success.
            let failed = a.status >= 500 || a.header("x-amz-function-error").is_some();
            assert!(failed, "{} {}", a.status, a.text());
        }
    });
    let status = r.wait_exit(Duration::from_secs(5)).expect("rapid exits");
    assert_eq!(status.code(), Some(0));
    for p in warm {
        assert!(!alive(p as i32), "runtime {p} left behind");
    }
}

#[test]
fn with_tenant_isolation_two_tenants_never_share_a_runtime() {
    let port = free_port();
    let r = pool(&[
        "--concurrency",
        "2",
        "--tenant-isolation",
        "--metrics-port",
        &port.to_string(),
    ]);
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let pid = |tenant: &str| {
        let a = r.invoke_with(br#"{"context":true}"#, &[("X-Amz-Tenant-Id", tenant)]);
        assert_eq!(a.status, 200, "{}", a.text());
        assert_eq!(a.json()["tenantId"], tenant);
        a.json()["pid"].as_u64().unwrap()
    };
    let a = pid("tenant-a");
    let b = pid("tenant-b");
    assert_ne!(a, b, "b does not run in a's sandbox");
    assert_eq!(pid("tenant-a"), a, "a's sandbox serves a again");
    assert_eq!(pid("tenant-b"), b);
    // Without a tenant id: refused, as AWS answers.
    let none = r.invoke(b"{}");
    assert_eq!(none.status, 400, "{}", none.text());
    assert_eq!(none.error_type(), "InvalidParameterValueException");
    // Both sandboxes idle (a sandbox is free once its runtime asks for the
    // next invoke, which a loaded machine may delay) and taken by others:
    // the least recently used (a's) makes room.
    assert!(
        eventually(Duration::from_secs(15), || {
            let m = request(addr, "GET", "/metrics", &[], b"").text();
            metric(
                &m,
                r#"rapid_sandboxes{function="test_function",state="idle"}"#,
            ) == Some(2.0)
        }),
        "both sandboxes idle"
    );
    let c = pid("tenant-c");
    assert!(c != a && c != b);
    assert!(
        eventually(Duration::from_secs(15), || !alive(a as i32)),
        "a's runtime was shut down to make room"
    );
    assert!(alive(b as i32));
}

/// Sandboxes share the host's network here (no namespace per sandbox): an
/// extension that listens on a fixed port runs in one of them; in the next
/// one it cannot bind, and that sandbox's init fails with Extension.Crash
/// saying why — the other sandbox keeps serving.
#[test]
fn an_extension_on_a_fixed_port_fails_a_second_sandbox_with_a_clear_error() {
    let dir = TempDir::new("pool-fixed-port");
    let exts = dir.path("extensions");
    std::fs::create_dir_all(&exts).unwrap();
    let port = rapid_tests::free_port();
    dir.script(
        "extensions/listener",
        &format!(
            r#"#!/usr/bin/env python3
import json, os, socket, urllib.request
api = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2020-01-01/extension"
req = urllib.request.Request(api + "/register", data=json.dumps({{"events": []}}).encode(),
                             headers={{"Lambda-Extension-Name": "listener"}}, method="POST")
ident = urllib.request.urlopen(req).headers["Lambda-Extension-Identifier"]
s = socket.socket()
s.bind(("127.0.0.1", {port}))  # a fixed port, as lambda-extension's log listener
s.listen()
while True:
    nxt = urllib.request.Request(api + "/event/next", headers={{"Lambda-Extension-Identifier": ident}})
    if json.load(urllib.request.urlopen(nxt)).get("eventType") == "SHUTDOWN":
        break
"#
        ),
    );
    let r = Rapid::builder()
        .bootstrap(FX)
        .extensions_dir(&exts)
        .arg("--concurrency")
        .arg("2")
        .start();
    assert_eq!(r.invoke(b"{}").status, 200, "{}", r.stderr());
    std::thread::scope(|s| {
        let busy = s.spawn(|| r.invoke(br#"{"sleep_ms":1500}"#));
        // Sandbox 0 holds that invoke.
        assert!(eventually(Duration::from_secs(5), || {
            r.stdout().matches("START RequestId").count() == 2
        }));
        let second = r.invoke(b"{}");
        assert_eq!(second.error_type(), "Extension.Crash", "{}", second.text());
        assert!(
            second.error_message().contains("fixed port"),
            "{}",
            second.text()
        );
        assert_eq!(busy.join().unwrap().status, 200, "sandbox 0 is untouched");
    });
}

/// `--enable-init-caching` with a pool: every sandbox goes through its own
/// snapshot and restore (a platform's Restore reaches them all).
#[test]
fn init_caching_restores_each_sandbox_of_a_pool() {
    let r = Rapid::builder()
        .bootstrap(FX)
        .arg("--enable-init-caching")
        .arg("--concurrency")
        .arg("2")
        .arg("--min-warm")
        .arg("2")
        .control()
        .start();
    assert_eq!(r.control("POST", "/v1/init", "{}").status, 200);
    let phases = |r: &Rapid| -> Vec<String> {
        r.control("GET", "/v1/state", "").json()["functions"][0]["sandboxes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["phase"].as_str().unwrap().to_owned())
            .collect()
    };
    assert!(
        eventually(Duration::from_secs(10), || phases(&r)
            == ["Snapshotted", "Snapshotted"]),
        "{:?}",
        phases(&r)
    );
    let restore = r.control("POST", "/v1/restore", "");
    assert_eq!(restore.status, 200, "{}", restore.text());
    assert!(restore.json()["error"].is_null(), "{}", restore.text());
    assert!(eventually(Duration::from_secs(5), || {
        r.stderr().matches("restore complete").count() == 2
    }));
    let answers = burst(&r, 2, SLEEP_PID);
    assert_eq!(pids(&answers).len(), 2, "both restored sandboxes serve");
    for a in &answers {
        assert_eq!(
            a.json()["env"]["AWS_LAMBDA_INITIALIZATION_TYPE"],
            "snap-start"
        );
    }
}
