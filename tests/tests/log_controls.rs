//! Advanced logging controls and the Telemetry API schema `2025-01-29`,
//! against the real binary with a curl runtime: `--function-log-format`,
//! `--function-log-level`, `--function-system-log-level` reach the runtime,
//! JSON platform lines are parsed, function lines are filtered by level,
//! and each subscription gets its schema version's shapes.

#![allow(clippy::unwrap_used)] // tests fail loudly on unexpected values

use std::process::{Command, Stdio};
use std::time::Duration;

use rapid_tests::{
    eventually, post_sink, posted_records, rapid_bin, shell_runtime, Rapid, TempDir,
};
use serde_json::Value;

/// Prints a DEBUG, an ERROR (lower-case) and a plain line, then answers
/// `FORMAT|LEVEL|LOG_STREAM` from its environment; an invoke of tenant
/// `sleepy` first sleeps 5 s.
fn logging_runtime(dir: &TempDir) -> std::path::PathBuf {
    shell_runtime(
        dir,
        r#"echo '{"level":"DEBUG","message":"init-debug"}'"#,
        r#"  echo '{"level":"DEBUG","message":"fn-debug"}'
  echo '{"level":"error","message":"fn-error"}'
  echo 'fn-plain'
  case "$(cat "$H")" in *sleepy*) sleep 5 ;; esac
  curl -s -o /dev/null -X POST -d "\"${AWS_LAMBDA_LOG_FORMAT:-unset}|${AWS_LAMBDA_LOG_LEVEL:-unset}|$AWS_LAMBDA_LOG_STREAM_NAME\"" "$API/invocation/$ID/response""#,
    )
}

/// The stdout lines that are JSON platform records.
fn platform_lines(r: &Rapid) -> Vec<Value> {
    r.stdout()
        .lines()
        .filter(|l| l.starts_with(r#"{"record""#) || l.starts_with(r#"{"time""#))
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .filter(|v| {
            v["type"]
                .as_str()
                .is_some_and(|t| t.starts_with("platform."))
        })
        .collect()
}

fn of_type<'a>(lines: &'a [Value], t: &str) -> Vec<&'a Value> {
    lines.iter().filter(|l| l["type"] == t).collect()
}

#[test]
fn json_platform_lines_are_the_records_lambda_writes() {
    let dir = TempDir::new("logs-json");
    let r = Rapid::builder()
        .bootstrap(logging_runtime(&dir))
        .arg("--function-log-format")
        .arg("JSON")
        .arg("--memory-size")
        .arg("256")
        .start();
    let mut ids = Vec::new();
    for _ in 0..2 {
        let resp = r.invoke(b"{}");
        assert_eq!(resp.status, 200, "{}", resp.text());
        let answer: String = serde_json::from_str(&resp.text()).unwrap();
        let mut parts = answer.split('|');
        assert_eq!(parts.next(), Some("JSON"), "{answer}");
        assert_eq!(parts.next(), Some("unset"), "no level configured: {answer}");
        ids.push((
            resp.header("x-amzn-requestid").unwrap().to_owned(),
            parts.next().unwrap().to_owned(),
        ));
    }
    let last = ids[1].0.clone();
    assert!(eventually(Duration::from_secs(5), || platform_lines(&r)
        .iter()
        .any(
            |l| l["type"] == "platform.report" && l["record"]["requestId"] == last.as_str()
        )));
    let lines = platform_lines(&r);
    let out = r.stdout();
    assert!(!out.contains("START RequestId"), "no text lines: {out}");
    assert!(!out.contains("END RequestId"), "{out}");
    assert!(!out.contains("REPORT RequestId"), "{out}");
    for l in &lines {
        assert!(l["time"].as_str().unwrap().ends_with('Z'), "{l}");
    }
    // INFO (the default system level): initStart, start, report only.
    let mut types: Vec<&str> = lines.iter().map(|l| l["type"].as_str().unwrap()).collect();
    types.dedup();
    assert_eq!(
        types,
        [
            "platform.initStart",
            "platform.start",
            "platform.report",
            "platform.start",
            "platform.report"
        ],
        "{out}"
    );
    let init = &of_type(&lines, "platform.initStart")[0]["record"];
    assert_eq!(init["functionName"], "test_function");
    assert_eq!(init["functionVersion"], "$LATEST");
    assert_eq!(init["initializationType"], "on-demand");
    assert_eq!(init["phase"], "init");
    assert_eq!(init["instanceMaxMemory"], 256 * 1024 * 1024);
    assert_eq!(
        init["instanceId"], ids[0].1,
        "instanceId is the log stream name"
    );
    let starts = of_type(&lines, "platform.start");
    let reports = of_type(&lines, "platform.report");
    for (i, (id, _)) in ids.iter().enumerate() {
        let s = &starts[i]["record"];
        assert_eq!(s["requestId"], id.as_str());
        assert_eq!(s["version"], "$LATEST");
        assert_eq!(
            s["functionArn"],
            "arn:aws:lambda:us-east-1:012345678912:function:test_function"
        );
        let rep = &reports[i]["record"];
        assert_eq!(rep["requestId"], id.as_str());
        assert_eq!(rep["status"], "success");
        assert!(rep.get("errorType").is_none(), "{rep}");
        let m = &rep["metrics"];
        assert!(m["durationMs"].as_f64().unwrap() > 0.0, "{rep}");
        assert!(m["billedDurationMs"].as_u64().unwrap() >= 1, "{rep}");
        assert_eq!(m["memorySizeMB"], 256);
        assert!(m["maxMemoryUsedMB"].as_u64().unwrap() >= 1, "{rep}");
        assert_eq!(
            m.get("initDurationMs").is_some(),
            i == 0,
            "init duration on the cold invoke only: {rep}"
        );
    }
    // Function lines at INFO: DEBUG dropped, ERROR and the plain line kept.
    assert!(
        !out.contains("fn-debug") && !out.contains("init-debug"),
        "{out}"
    );
    assert_eq!(out.matches("fn-error").count(), 2, "{out}");
    assert_eq!(out.matches("fn-plain").count(), 2, "{out}");
}

#[test]
fn levels_filter_platform_and_function_lines_and_a_timeout_is_a_warn_record() {
    let dir = TempDir::new("logs-warn");
    let r = Rapid::builder()
        .bootstrap(logging_runtime(&dir))
        .arg("--function-log-format")
        .arg("json")
        .arg("--function-log-level")
        .arg("ERROR")
        .arg("--function-system-log-level")
        .arg("WARN")
        .arg("--timeout")
        .arg("1")
        .start();
    let ok = r.invoke(b"{}");
    let answer: String = serde_json::from_str(&ok.text()).unwrap();
    assert!(answer.starts_with("JSON|ERROR|"), "{answer}");
    let timed_out = r.invoke_with(b"{}", &[("X-Amz-Tenant-Id", "sleepy")]);
    assert_eq!(
        timed_out.error_type(),
        "Sandbox.Timedout",
        "{}",
        timed_out.text()
    );
    let id = timed_out.header("x-amzn-requestid").unwrap().to_owned();
    assert!(
        eventually(Duration::from_secs(5), || !platform_lines(&r).is_empty()),
        "{}",
        r.stdout()
    );
    let lines = platform_lines(&r);
    assert_eq!(lines.len(), 1, "WARN keeps only the failure: {lines:?}");
    let rec = &lines[0]["record"];
    assert_eq!(lines[0]["type"], "platform.report");
    assert_eq!(rec["requestId"], id.as_str());
    assert_eq!(rec["status"], "timeout");
    assert_eq!(rec["errorType"], "Sandbox.Timedout");
    assert!(
        rec["metrics"]["durationMs"].as_f64().unwrap() >= 1000.0,
        "{rec}"
    );
    let out = r.stdout();
    assert_eq!(
        out.matches("fn-error").count(),
        2,
        "ERROR lines kept: {out}"
    );
    assert!(!out.contains("fn-plain"), "INFO lines dropped: {out}");
    assert!(!out.contains("fn-debug"), "{out}");
}

#[test]
fn the_debug_system_level_adds_the_phase_records() {
    let dir = TempDir::new("logs-debug");
    let r = Rapid::builder()
        .bootstrap(logging_runtime(&dir))
        .arg("--function-log-format")
        .arg("JSON")
        .arg("--function-log-level")
        .arg("TRACE")
        .arg("--function-system-log-level")
        .arg("DEBUG")
        .start();
    let resp = r.invoke(b"{}");
    let id = resp.header("x-amzn-requestid").unwrap().to_owned();
    assert!(eventually(Duration::from_secs(5), || !of_type(
        &platform_lines(&r),
        "platform.report"
    )
    .is_empty()));
    let lines = platform_lines(&r);
    let done = of_type(&lines, "platform.runtimeDone");
    assert_eq!(done.len(), 1, "{lines:?}");
    assert_eq!(done[0]["record"]["requestId"], id.as_str());
    assert_eq!(done[0]["record"]["status"], "success");
    for t in ["platform.initRuntimeDone", "platform.initReport"] {
        let r = of_type(&lines, t);
        assert_eq!(r.len(), 1, "{t}: {lines:?}");
        assert_eq!(r[0]["record"]["status"], "success");
    }
    let out = r.stdout();
    assert!(
        out.contains("fn-debug") && out.contains("init-debug"),
        "{out}"
    );
}

#[test]
fn a_failed_init_is_a_warn_record_and_its_invoke_reported() {
    let dir = TempDir::new("logs-init-fail");
    let boot = dir.script("bootstrap", "#!/bin/sh\necho 'dying'\nexit 3\n");
    let r = Rapid::builder()
        .bootstrap(boot)
        .arg("--function-log-format")
        .arg("JSON")
        .arg("--function-system-log-level")
        .arg("WARN")
        .start();
    let resp = r.invoke(b"{}");
    assert_eq!(resp.error_type(), "Runtime.ExitError", "{}", resp.text());
    let id = resp.header("x-amzn-requestid").unwrap().to_owned();
    let report_of = |lines: &[Value]| {
        lines
            .iter()
            .find(|l| l["type"] == "platform.report" && l["record"]["requestId"] == id.as_str())
            .cloned()
    };
    assert!(
        eventually(Duration::from_secs(5), || report_of(&platform_lines(&r))
            .is_some()),
        "{}",
        r.stdout()
    );
    let lines = platform_lines(&r);
    let init = of_type(&lines, "platform.initReport");
    assert!(!init.is_empty(), "{lines:?}");
    assert_eq!(init[0]["record"]["status"], "failure", "{lines:?}");
    assert_eq!(init[0]["record"]["errorType"], "Runtime.ExitError");
    let rep = report_of(&lines).unwrap();
    assert_eq!(rep["record"]["status"], "failure", "{rep}");
    assert_eq!(rep["record"]["errorType"], "Runtime.ExitError", "{rep}");
    assert!(
        of_type(&lines, "platform.start").is_empty(),
        "INFO records dropped at WARN: {lines:?}"
    );
}

#[test]
fn text_stays_as_it_was_and_nothing_reaches_the_runtime() {
    let dir = TempDir::new("logs-text");
    let r = Rapid::builder().bootstrap(logging_runtime(&dir)).start();
    let resp = r.invoke(b"{}");
    let answer: String = serde_json::from_str(&resp.text()).unwrap();
    assert!(answer.starts_with("unset|unset|"), "{answer}");
    let id = resp.header("x-amzn-requestid").unwrap().to_owned();
    assert!(r.wait_stdout(&format!("REPORT RequestId: {id}\t"), Duration::from_secs(5)));
    let out = r.stdout();
    assert!(
        out.contains(&format!("START RequestId: {id} Version: $LATEST\n")),
        "{out}"
    );
    assert!(out.contains(&format!("END RequestId: {id}\n")), "{out}");
    assert!(
        out.contains("fn-debug") && out.contains("fn-plain"),
        "no filter: {out}"
    );
    assert!(platform_lines(&r).is_empty(), "{out}");
}

#[test]
fn refused_log_controls_are_start_up_errors() {
    let cases: [(&[&str], &str); 4] = [
        (
            &["--function-log-level", "DEBUG"],
            "LogLevel is not supported when LogFormat is set to \"Text\"",
        ),
        (
            &[
                "--function-log-format",
                "Text",
                "--function-system-log-level",
                "WARN",
            ],
            "--function-system-log-level",
        ),
        (&["--function-log-format", "XML"], "'XML'"),
        (
            &[
                "--function-log-format",
                "JSON",
                "--function-log-level",
                "VERBOSE",
            ],
            "'VERBOSE'",
        ),
    ];
    for (args, needle) in cases {
        let out = Command::new(rapid_bin())
            .args(args)
            .arg("--runtime-interface-emulator-address")
            .arg("127.0.0.1:1")
            .arg("/bin/true")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

/// An extension subscribing to platform and function records with
/// `schema`, delivered to `port`; registered for SHUTDOWN only.
fn subscriber(dir: &TempDir, name: &str, schema: &str, port: u16) {
    dir.script(
        &format!("extensions/{name}"),
        &format!(
            r#"#!/bin/sh
EXT="http://$AWS_LAMBDA_RUNTIME_API/2020-01-01/extension"
ID=$(curl -s -D - -o /dev/null -X POST -H "Lambda-Extension-Name: {name}" -d '{{"events":["SHUTDOWN"]}}' "$EXT/register" | tr -d '\r' | awk -F': ' 'tolower($1)=="lambda-extension-identifier"{{print $2}}')
curl -s -o /dev/null -X PUT -H "Lambda-Extension-Identifier: $ID" \
  -d '{{"schemaVersion":"{schema}","destination":{{"protocol":"HTTP","URI":"http://127.0.0.1:{port}"}},"types":["platform","function"],"buffering":{{"timeoutMs":25,"maxItems":1000,"maxBytes":262144}}}}' \
  "http://$AWS_LAMBDA_RUNTIME_API/2022-07-01/telemetry"
echo "$AWS_LAMBDA_LOG_FORMAT" > "$0.format"
curl -s -H "Lambda-Extension-Identifier: $ID" "$EXT/event/next" > /dev/null
"#
        ),
    );
}

#[test]
fn each_schema_version_gets_its_record_shapes() {
    let dir = TempDir::new("logs-schema");
    std::fs::create_dir_all(dir.path("extensions")).unwrap();
    let (new_port, new) = post_sink();
    let (old_port, old) = post_sink();
    subscriber(&dir, "new", "2025-01-29", new_port);
    subscriber(&dir, "old", "2022-12-13", old_port);
    let r = Rapid::builder()
        .bootstrap(logging_runtime(&dir))
        .extensions_dir(dir.path("extensions"))
        .arg("--function-log-format")
        .arg("JSON")
        .arg("--memory-size")
        .arg("512")
        .start();
    let resp = r.invoke_with(b"{}", &[("X-Amz-Tenant-Id", "tenant-7")]);
    assert_eq!(resp.status, 200, "{}", resp.text());
    let id = resp.header("x-amzn-requestid").unwrap().to_owned();
    let answer: String = serde_json::from_str(&resp.text()).unwrap();
    let stream = answer.rsplit('|').next().unwrap().to_owned();
    let of = |got: &std::sync::Mutex<String>, t: &str| {
        posted_records(got)
            .into_iter()
            .find(|r| r["type"] == t)
            .map(|r| r["record"].clone())
    };
    for got in [&new, &old] {
        assert!(
            eventually(Duration::from_secs(5), || of(got, "platform.report")
                .is_some()),
            "{:?}",
            posted_records(got)
        );
    }
    // 2025-01-29: the added fields.
    let init = of(&new, "platform.initStart").unwrap();
    assert_eq!(init["instanceId"], stream.as_str(), "{init}");
    assert_eq!(init["instanceMaxMemory"], 512 * 1024 * 1024);
    assert_eq!(init["functionName"], "test_function");
    assert_eq!(init["functionVersion"], "$LATEST");
    let start = of(&new, "platform.start").unwrap();
    assert_eq!(start["requestId"], id.as_str());
    assert_eq!(
        start["functionArn"],
        "arn:aws:lambda:us-east-1:012345678912:function:test_function"
    );
    let report = of(&new, "platform.initReport").unwrap();
    assert_eq!(report["status"], "success");
    // Extensions get the format too (as the Go emulator passes it).
    let seen = std::fs::read_to_string(dir.path("extensions/new.format")).unwrap();
    assert_eq!(seen.trim(), "JSON");
    // 2022-12-13: exactly as before.
    let old_init = of(&old, "platform.initStart").unwrap();
    assert!(old_init.get("instanceId").is_none(), "{old_init}");
    assert!(old_init.get("instanceMaxMemory").is_none(), "{old_init}");
    let old_start = of(&old, "platform.start").unwrap();
    assert!(old_start.get("functionArn").is_none(), "{old_start}");
    // Both: tenantId where present; JSON lines as objects (JSON log format).
    for got in [&new, &old] {
        for t in ["platform.start", "platform.runtimeDone", "platform.report"] {
            assert_eq!(of(got, t).unwrap()["tenantId"], "tenant-7", "{t}");
        }
        let lines: Vec<Value> = posted_records(got)
            .into_iter()
            .filter(|r| r["type"] == "function")
            .map(|r| r["record"].clone())
            .collect();
        assert!(
            lines.contains(&serde_json::json!({"level":"error","message":"fn-error"})),
            "{lines:?}"
        );
        assert!(lines.contains(&Value::from("fn-plain")), "{lines:?}");
        assert!(
            !lines.iter().any(|l| l.to_string().contains("fn-debug")),
            "filtered by level before telemetry too: {lines:?}"
        );
    }
}
