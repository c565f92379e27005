//! The Runtime API as 2026's runtime clients speak it: a fresh
//! `Lambda-Runtime-Invocation-Id` per delivery, echoed on `/response` and
//! `/error` (a stale one is 410, a wrong one 400), and the invoke's
//! `X-Amz-Tenant-Id` passed to the runtime and into telemetry — with the
//! real `lambda_runtime` 1.5 fixture and raw runtimes.

#![allow(clippy::unwrap_used)] // tests fail loudly on unexpected values

use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

use rapid_tests::{eventually, post_sink as sink, read_response, Rapid, Resp, TempDir};

const FX: &str = env!("CARGO_BIN_EXE_fx-lambda");
const NEXT: &str = "GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: rt\r\n\r\n";

fn silent(dir: &TempDir) -> std::path::PathBuf {
    dir.script("bootstrap", "#!/bin/sh\nexec sleep 1000\n")
}

/// `/next` as the runtime: the request id and the invocation id.
fn next(r: &Rapid) -> (String, String, Resp) {
    let mut s = TcpStream::connect(r.api).unwrap();
    s.write_all(NEXT.as_bytes()).unwrap();
    let resp = read_response(&mut BufReader::new(s), |_| {});
    assert_eq!(resp.status, 200, "{}", resp.text());
    let id = resp
        .header("lambda-runtime-aws-request-id")
        .unwrap()
        .to_owned();
    let inv = resp
        .header("lambda-runtime-invocation-id")
        .expect("Lambda-Runtime-Invocation-Id on /next")
        .to_owned();
    (id, inv, resp)
}

/// POST `what` (`response` or `error`) for `id`, echoing `inv` when given.
fn answer(r: &Rapid, what: &str, id: &str, inv: Option<&str>) -> Resp {
    let mut s = TcpStream::connect(r.api).unwrap();
    let echo = inv.map_or_else(String::new, |i| {
        format!("Lambda-Runtime-Invocation-Id: {i}\r\n")
    });
    let body = br#""done""#;
    s.write_all(
        format!(
            "POST /2018-06-01/runtime/invocation/{id}/{what} HTTP/1.1\r\nHost: rt\r\n{echo}Content-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    )
    .unwrap();
    s.write_all(body).unwrap();
    read_response(&mut BufReader::new(s), |_| {})
}

#[test]
fn every_delivery_has_a_fresh_invocation_id_and_the_echo_is_checked() {
    let dir = TempDir::new("ids-echo");
    let r = Rapid::builder().bootstrap(silent(&dir)).start();
    let mut seen = std::collections::BTreeSet::new();
    for round in 0..3 {
        std::thread::scope(|s| {
            let invoker = s.spawn(|| r.invoke(b"{}"));
            let (id, inv, _) = next(&r);
            assert!(uuid_like(&inv), "{inv}");
            assert!(seen.insert(inv.clone()), "round {round}: {inv} reused");
            // Wrong echoes change nothing: 400, and the invoke is still open.
            let wrong = answer(
                &r,
                "response",
                &id,
                Some("00000000-0000-4000-8000-000000000000"),
            );
            assert_eq!(wrong.status, 400, "{}", wrong.text());
            assert_eq!(wrong.error_type(), "InvalidRequestID");
            let other = answer(&r, "error", "not-the-request", Some(&inv));
            assert_eq!(other.status, 400, "{}", other.text());
            let ok = answer(&r, "response", &id, Some(&inv));
            assert_eq!(ok.status, 202, "{}", ok.text());
            let got = invoker.join().unwrap();
            assert_eq!(got.text(), r#""done""#);
            // A second answer to the same invoke: 403, as before.
            let again = answer(&r, "response", &id, Some(&inv));
            assert_eq!(again.status, 403, "{}", again.text());
        });
    }
}

fn uuid_like(s: &str) -> bool {
    s.len() == 36 && s.chars().filter(|c| *c == '-').count() == 4
}

#[test]
fn a_late_answer_after_a_timeout_is_410_and_reaches_nobody() {
    let dir = TempDir::new("ids-stale");
    let r = Rapid::builder()
        .bootstrap(silent(&dir))
        .arg("--timeout")
        .arg("1")
        .start();
    std::thread::scope(|s| {
        let invoker = s.spawn(|| r.invoke(b"{}"));
        let (id, inv, _) = next(&r);
        let timed_out = invoker.join().unwrap();
        assert_eq!(
            timed_out.error_type(),
            "Sandbox.Timedout",
            "{}",
            timed_out.text()
        );
        let late = answer(&r, "response", &id, Some(&inv));
        assert_eq!(late.status, 410, "{}", late.text());
        assert_eq!(
            late.json(),
            serde_json::json!({"errorMessage":"Invoke timeout","errorType":"InvokeTimeout"})
        );
        let late_error = answer(&r, "error", &id, Some(&inv));
        assert_eq!(late_error.status, 410, "{}", late_error.text());
    });
}

#[test]
fn lambda_runtime_echoes_the_id_and_reads_the_tenant() {
    let r = Rapid::builder().bootstrap(FX).start();
    let with = r.invoke_with(br#"{"context":true}"#, &[("X-Amz-Tenant-Id", "tenant-a")]);
    assert_eq!(with.status, 200, "{}", with.text());
    assert_eq!(with.json()["tenantId"], "tenant-a");
    let without = r.invoke(br#"{"context":true}"#);
    assert_eq!(without.status, 200, "{}", without.text());
    assert!(without.json()["tenantId"].is_null(), "{}", without.text());
    // Its /error with the echoed id is accepted too.
    let err = r.invoke(br#"{"error":"boom"}"#);
    assert_eq!(err.error_message(), "boom", "{}", err.text());
}

#[test]
fn the_tenant_id_is_in_the_platform_records_and_not_in_the_invoke_event() {
    let dir = TempDir::new("ids-tenant-telemetry");
    let (port, got) = sink();
    let exts = dir.path("extensions");
    std::fs::create_dir_all(&exts).unwrap();
    let events = dir.path("events.log");
    dir.script(
        "extensions/watcher",
        &format!(
            r#"#!/bin/sh
EXT="http://$AWS_LAMBDA_RUNTIME_API/2020-01-01/extension"
ID=$(curl -s -D - -o /dev/null -X POST -H "Lambda-Extension-Name: watcher" -d '{{"events":["INVOKE","SHUTDOWN"]}}' "$EXT/register" | tr -d '\r' | awk -F': ' 'tolower($1)=="lambda-extension-identifier"{{print $2}}')
curl -s -o /dev/null -X PUT -H "Lambda-Extension-Identifier: $ID" \
  -d '{{"schemaVersion":"2022-12-13","destination":{{"protocol":"HTTP","URI":"http://127.0.0.1:{port}"}},"types":["platform"],"buffering":{{"timeoutMs":25,"maxItems":1000,"maxBytes":262144}}}}' \
  "http://$AWS_LAMBDA_RUNTIME_API/2022-07-01/telemetry"
while true; do
  E=$(curl -s -H "Lambda-Extension-Identifier: $ID" "$EXT/event/next")
  echo "$E" >> '{}'
  case "$E" in *SHUTDOWN*) exit 0 ;; esac
done
"#,
            events.display()
        ),
    );
    let r = Rapid::builder().bootstrap(FX).extensions_dir(&exts).start();
    let resp = r.invoke_with(b"{}", &[("X-Amz-Tenant-Id", "tenant-b")]);
    assert_eq!(resp.status, 200, "{}", resp.text());
    let id = resp.header("x-amzn-requestid").unwrap().to_owned();
    let records = || -> Vec<serde_json::Value> {
        let text = got.lock().unwrap().clone();
        serde_json::Deserializer::from_str(&text)
            .into_iter::<Vec<serde_json::Value>>()
            .flatten()
            .flatten()
            .collect()
    };
    let of = |kind: &str| {
        records()
            .into_iter()
            .find(|r| r["type"] == kind && r["record"]["requestId"] == id.as_str())
    };
    assert!(
        eventually(Duration::from_secs(5), || of("platform.report").is_some()),
        "{:?}",
        records()
    );
    for kind in ["platform.start", "platform.runtimeDone", "platform.report"] {
        let rec = of(kind).unwrap_or_else(|| panic!("no {kind}"));
        assert_eq!(rec["record"]["tenantId"], "tenant-b", "{kind}: {rec}");
    }
    // An invoke without one carries none.
    let plain = r.invoke(b"{}");
    let plain_id = plain.header("x-amzn-requestid").unwrap().to_owned();
    assert!(eventually(Duration::from_secs(5), || records().iter().any(
        |r| r["type"] == "platform.report" && r["record"]["requestId"] == plain_id.as_str()
    )));
    let start = records()
        .into_iter()
        .find(|r| r["type"] == "platform.start" && r["record"]["requestId"] == plain_id.as_str())
        .unwrap();
    assert!(start["record"].get("tenantId").is_none(), "{start}");
    // The INVOKE event to extensions has no tenant id (as AWS's emulator sends none).
    let ev = std::fs::read_to_string(&events).unwrap_or_default();
    assert!(ev.contains(&id), "{ev}");
    assert!(!ev.contains("tenant"), "{ev}");
}
