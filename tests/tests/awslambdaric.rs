//! The real Python runtime interface client, `awslambdaric` 4.2.2 (from
//! PyPI, in `target/py`: `make ric`), running `tests/fixtures/ric/ric_handler.py`
//! under rapid: ids and tenant ids in the context and in telemetry, the
//! invocation id echoed (a refused echo would end the client: its standard
//! mode exits on any non-2xx answer to `/response`), and its JSON log lines
//! filtered with the advanced logging controls; and in LMI mode, where it
//! forks AWS_LAMBDA_MAX_CONCURRENCY worker processes.
//!
//! Without the venv the tests are skipped with a message — except when
//! `RAPID_REQUIRE_AWSLAMBDARIC` is set (CI: `.ci/run`), where they fail.

#![allow(clippy::unwrap_used)] // tests fail loudly on unexpected values

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use rapid_tests::{eventually, fixture_script, post_sink, posted_records, Rapid, TempDir};
use serde_json::Value;

/// A python with awslambdaric: `$RAPID_AWSLAMBDARIC_PYTHON`, else the
/// repository's `target/py` venv.
fn ric_python(test: &str) -> Option<PathBuf> {
    let python = std::env::var_os("RAPID_AWSLAMBDARIC_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/py/bin/python"));
    let works = Command::new(&python)
        .args(["-c", "import awslambdaric"])
        .output()
        .is_ok_and(|o| o.status.success());
    if works {
        return Some(python);
    }
    let why = format!(
        "{test}: no awslambdaric at {} (run `make ric`: python3 -m venv target/py && target/py/bin/pip install awslambdaric==4.2.2)",
        python.display()
    );
    assert!(
        std::env::var_os("RAPID_REQUIRE_AWSLAMBDARIC").is_none(),
        "{why}; RAPID_REQUIRE_AWSLAMBDARIC is set"
    );
    eprintln!("SKIPPED {why}");
    None
}

/// rapid running the fixture handler under `python -m awslambdaric`.
fn ric(python: &Path) -> rapid_tests::Builder {
    Rapid::builder()
        .bootstrap(python)
        .arg_after("-m")
        .arg_after("awslambdaric")
        .arg_after("ric_handler.handler")
        .env("PYTHONPATH", &fixture_script("ric").display().to_string())
        .env("PYTHONUNBUFFERED", "1")
}

/// An extension subscribed to platform records (schema 2025-01-29) at `port`.
fn subscriber(dir: &TempDir, port: u16) -> PathBuf {
    let exts = dir.path("extensions");
    std::fs::create_dir_all(&exts).unwrap();
    dir.script(
        "extensions/watcher",
        &format!(
            r#"#!/bin/sh
EXT="http://$AWS_LAMBDA_RUNTIME_API/2020-01-01/extension"
ID=$(curl -s -D - -o /dev/null -X POST -H "Lambda-Extension-Name: watcher" -d '{{"events":["SHUTDOWN"]}}' "$EXT/register" | tr -d '\r' | awk -F': ' 'tolower($1)=="lambda-extension-identifier"{{print $2}}')
curl -s -o /dev/null -X PUT -H "Lambda-Extension-Identifier: $ID" \
  -d '{{"schemaVersion":"2025-01-29","destination":{{"protocol":"HTTP","URI":"http://127.0.0.1:{port}"}},"types":["platform"],"buffering":{{"timeoutMs":25,"maxItems":1000,"maxBytes":262144}}}}' \
  "http://$AWS_LAMBDA_RUNTIME_API/2022-07-01/telemetry"
curl -s -H "Lambda-Extension-Identifier: $ID" "$EXT/event/next" > /dev/null
"#
        ),
    );
    exts
}

#[test]
fn awslambdaric_reads_ids_and_tenant_ids_and_they_reach_telemetry() {
    let Some(python) = ric_python("awslambdaric_reads_ids_and_tenant_ids") else {
        return;
    };
    let dir = TempDir::new("ric-ids");
    let (port, got) = post_sink();
    let r = ric(&python).extensions_dir(subscriber(&dir, port)).start();
    let mut ids = std::collections::BTreeSet::new();
    let mut pids = std::collections::BTreeSet::new();
    for (i, tenant) in [Some("blue-tenant"), None, Some("red.tenant:1")]
        .into_iter()
        .enumerate()
    {
        let headers: Vec<(&str, &str)> = tenant
            .map(|t| vec![("X-Amz-Tenant-Id", t)])
            .unwrap_or_default();
        let resp = r.invoke_with(b"{}", &headers);
        assert_eq!(
            resp.status,
            200,
            "invoke {i}: {}\n{}",
            resp.text(),
            r.stderr()
        );
        let v = resp.json();
        let id = resp.header("x-amzn-requestid").unwrap();
        assert_eq!(v["requestId"], id, "{v}");
        assert!(ids.insert(id.to_owned()), "request id {id} reused");
        assert_eq!(
            v["tenantId"],
            tenant.map_or(Value::Null, Value::from),
            "{v}"
        );
        pids.insert(v["pid"].as_u64().unwrap());
    }
    assert_eq!(
        pids.len(),
        1,
        "one runtime process answered all: every echoed invocation id was accepted"
    );
    // The tenant ids in the platform records, none without one.
    let tenant_of = |id: &str, t: &str| {
        posted_records(&got)
            .into_iter()
            .find(|r| r["type"] == t && r["record"]["requestId"] == id)
            .map(|r| r["record"]["tenantId"].clone())
    };
    let ids: Vec<String> = ids.into_iter().collect();
    assert!(
        eventually(Duration::from_secs(5), || ids.iter().all(|id| tenant_of(
            id,
            "platform.report"
        )
        .is_some())),
        "{:?}",
        posted_records(&got)
    );
    let mut tenants: Vec<Value> = ids
        .iter()
        .map(|id| tenant_of(id, "platform.start").unwrap())
        .collect();
    tenants.sort_by_key(|t| t.to_string());
    assert_eq!(
        tenants,
        vec![
            Value::from("blue-tenant"),
            Value::from("red.tenant:1"),
            Value::Null
        ]
    );
    for id in &ids {
        assert_eq!(
            tenant_of(id, "platform.start"),
            tenant_of(id, "platform.runtimeDone")
        );
        assert_eq!(
            tenant_of(id, "platform.start"),
            tenant_of(id, "platform.report")
        );
    }
}

/// The stdout lines that parse as JSON objects.
fn json_lines(r: &Rapid) -> Vec<Value> {
    r.stdout()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(Value::is_object)
        .collect()
}

#[test]
fn awslambdaric_json_logs_are_filtered_and_platform_lines_are_records() {
    let Some(python) = ric_python("awslambdaric_json_logs_are_filtered") else {
        return;
    };
    let r = ric(&python)
        .arg("--function-log-format")
        .arg("JSON")
        .arg("--function-log-level")
        .arg("WARN")
        .arg("--timeout")
        .arg("2")
        .start();
    let resp = r.invoke_with(br#"{"log":true}"#, &[("X-Amz-Tenant-Id", "green")]);
    assert_eq!(resp.status, 200, "{}\n{}", resp.text(), r.stderr());
    let id = resp.header("x-amzn-requestid").unwrap().to_owned();
    let v = resp.json();
    assert_eq!(v["logFormat"], "JSON");
    assert_eq!(v["logLevel"], "WARN");
    let has = |t: &str, id: &str| {
        json_lines(&r)
            .into_iter()
            .find(|l| l["type"] == t && l["record"]["requestId"] == id)
    };
    assert!(
        eventually(Duration::from_secs(5), || has("platform.report", &id)
            .is_some()),
        "{}",
        r.stdout()
    );
    let out = r.stdout();
    // awslambdaric's own JSON record of the warning, with the ids.
    let warning = json_lines(&r)
        .into_iter()
        .find(|l| l["message"] == "logged-warning")
        .unwrap_or_else(|| panic!("no warning line:\n{out}"));
    assert_eq!(warning["level"], "WARNING", "{warning}");
    assert_eq!(warning["requestId"], id.as_str(), "{warning}");
    assert_eq!(warning["tenantId"], "green", "{warning}");
    assert!(
        !out.contains("logged-info") && !out.contains("logged-debug"),
        "{out}"
    );
    // Printed lines only rapid filters: ERROR kept, DEBUG and plain (INFO) dropped.
    assert!(out.contains("printed-error"), "{out}");
    assert!(!out.contains("printed-debug"), "{out}");
    assert!(!out.contains("printed-plain"), "{out}");
    // The platform lines: START/REPORT as records.
    let start = has("platform.start", &id).unwrap();
    assert_eq!(start["record"]["tenantId"], "green");
    assert_eq!(start["record"]["version"], "$LATEST");
    let report = has("platform.report", &id).unwrap();
    assert_eq!(report["record"]["status"], "success");
    assert_eq!(report["record"]["metrics"]["memorySizeMB"], 3008);
    assert!(!out.contains("START RequestId"), "{out}");
    // A timeout: the caller gets Sandbox.Timedout, the log a timeout record.
    let slow = r.invoke(br#"{"sleep":5}"#);
    assert_eq!(slow.error_type(), "Sandbox.Timedout", "{}", slow.text());
    let slow_id = slow.header("x-amzn-requestid").unwrap().to_owned();
    assert!(
        eventually(Duration::from_secs(5), || has("platform.report", &slow_id)
            .is_some()),
        "{}",
        r.stdout()
    );
    let rec = has("platform.report", &slow_id).unwrap()["record"].clone();
    assert_eq!(rec["status"], "timeout", "{rec}");
    assert_eq!(rec["errorType"], "Sandbox.Timedout", "{rec}");
    // And the re-initialised runtime answers again.
    let again = r.invoke(b"{}");
    assert_eq!(again.status, 200, "{}", again.text());
}

#[test]
fn awslambdaric_in_lmi_mode_forks_n_workers_that_serve_side_by_side() {
    let Some(python) = ric_python("awslambdaric_in_lmi_mode") else {
        return;
    };
    let r = ric(&python)
        .env("AWS_LAMBDA_MAX_CONCURRENCY", "3")
        .arg("--timeout")
        .arg("2")
        .start();
    // Ready once the first worker waits on /next.
    let first = r.invoke(b"{}");
    assert_eq!(first.status, 200, "{}\n{}", first.text(), r.stderr());
    assert_eq!(first.json()["logFormat"], "JSON", "LMI logs JSON");
    let invoke_all = |events: Vec<(String, Option<String>)>| {
        std::thread::scope(|s| {
            let hs: Vec<_> = events
                .iter()
                .map(|(e, t)| {
                    let r = &r;
                    s.spawn(move || {
                        let h: Vec<(&str, &str)> = t
                            .as_deref()
                            .map(|t| vec![("X-Amz-Tenant-Id", t)])
                            .unwrap_or_default();
                        r.invoke_with(e.as_bytes(), &h)
                    })
                })
                .collect();
            hs.into_iter()
                .map(|h| h.join().unwrap())
                .collect::<Vec<_>>()
        })
    };
    // Three 1-second invokes in about one second, by three worker processes,
    // each with its own request and tenant id.
    let t = std::time::Instant::now();
    let answers = invoke_all(
        (0..3)
            .map(|i| (r#"{"sleep":1}"#.to_owned(), Some(format!("tenant-{i}"))))
            .collect(),
    );
    let took = t.elapsed();
    let mut pids = std::collections::BTreeSet::new();
    let mut tenants = std::collections::BTreeSet::new();
    for a in &answers {
        assert_eq!(a.status, 200, "{}\n{}", a.text(), r.stderr());
        let v = a.json();
        assert_eq!(v["requestId"], a.header("x-amzn-requestid").unwrap());
        pids.insert(v["pid"].as_u64().unwrap());
        tenants.insert(v["tenantId"].as_str().unwrap().to_owned());
    }
    assert_eq!(pids.len(), 3, "three workers: {pids:?}");
    assert_eq!(tenants.len(), 3, "{tenants:?}");
    assert!(
        took < Duration::from_millis(2500),
        "took {took:?}: serialised"
    );
    // A timeout fails that invoke alone; its worker's late answer is refused
    // (410, which the client logs and carries on from) and the others go on.
    let answers = invoke_all(vec![
        (r#"{"sleep":3}"#.to_owned(), None),
        (r#"{"sleep":0.2}"#.to_owned(), None),
        (r#"{"sleep":0.2}"#.to_owned(), None),
    ]);
    assert_eq!(
        answers[0].error_type(),
        "Sandbox.Timedout",
        "{}",
        answers[0].text()
    );
    for a in &answers[1..] {
        assert_eq!(a.status, 200, "{}", a.text());
        assert!(
            pids.contains(&a.json()["pid"].as_u64().unwrap()),
            "same workers"
        );
    }
    // Once the slow worker has answered late, all three serve again, with
    // the same processes: the runtime was not reset (a reset starts new ones).
    assert!(
        eventually(Duration::from_secs(5), || {
            let again = invoke_all(
                (0..3)
                    .map(|_| (r#"{"sleep":0.3}"#.to_owned(), None))
                    .collect(),
            );
            let got: std::collections::BTreeSet<u64> = again
                .iter()
                .filter(|a| a.status == 200)
                .filter_map(|a| a.json()["pid"].as_u64())
                .collect();
            got == pids
        }),
        "{}",
        r.stderr()
    );
}
