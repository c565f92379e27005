//! SPEC §5/§6 and the shutdown sequence: external extensions on the real
//! `lambda-extension` crate and shell + curl extensions for the error rows.

#![allow(clippy::unwrap_used)] // tests fail loudly on unexpected values

use std::time::{Duration, Instant};

use rapid_tests::{alive, eventually, free_port, Rapid, TempDir};

const FX: &str = env!("CARGO_BIN_EXE_fx-lambda");
const EXT: &str = env!("CARGO_BIN_EXE_fx-extension");

/// An extensions dir holding `name`, a wrapper that runs the fixture extension
/// with `env` (so its registered name is its file name).
fn ext_dir(dir: &TempDir, name: &str, env: &[(&str, &str)]) -> std::path::PathBuf {
    let exts = dir.path("extensions");
    std::fs::create_dir_all(&exts).unwrap();
    let mut script = String::from("#!/bin/sh\n");
    for (k, v) in env {
        script.push_str(&format!("export {k}='{v}'\n"));
    }
    script.push_str(&format!("export FX_EXT_NAME={name}\nexec {EXT}\n"));
    let p = exts.join(name);
    std::fs::write(&p, script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    exts
}

fn shell_ext(dir: &TempDir, name: &str, body: &str) -> std::path::PathBuf {
    let exts = dir.path("extensions");
    std::fs::create_dir_all(&exts).unwrap();
    let p = exts.join(name);
    std::fs::write(
        &p,
        format!(
            "#!/bin/sh\nEXT=\"http://$AWS_LAMBDA_RUNTIME_API/2020-01-01/extension\"\n\
             register() {{ curl -s -D - -o /dev/null -X POST -H \"Lambda-Extension-Name: {name}\" -d \"$1\" \"$EXT/register\" \
             | tr -d '\\r' | awk -F': ' 'tolower($1)==\"lambda-extension-identifier\"{{print $2}}'; }}\n{body}\n"
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    exts
}

fn lines(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn invoke_events_match_and_shutdown_on_sigterm() {
    let dir = TempDir::new("ext-record");
    let log = dir.path("events.log");
    let exts = ext_dir(
        &dir,
        "recorder",
        &[("FX_EXT_LOG", &log.display().to_string())],
    );
    let mut r = Rapid::builder().bootstrap(FX).extensions_dir(&exts).start();
    let ids: Vec<String> = (0..3)
        .map(|i| {
            let resp = r.invoke(format!(r#"{{"n":{i}}}"#).as_bytes());
            assert_eq!(resp.json()["n"], i);
            resp.header("x-amzn-requestid").unwrap().to_owned()
        })
        .collect();
    assert!(eventually(Duration::from_secs(5), || lines(&log).len() >= 3));
    let got = lines(&log);
    for (line, id) in got.iter().zip(&ids) {
        assert!(line.starts_with(&format!("INVOKE {id} ")), "{line} vs {id}");
    }
    let ext_pid = r.children().into_iter().find(|p| *p != 0).unwrap();
    let t = Instant::now();
    r.signal(libc::SIGTERM);
    assert_eq!(
        r.wait_exit(Duration::from_secs(5)).and_then(|s| s.code()),
        Some(0)
    );
    let took = t.elapsed();
    let got = lines(&log);
    let shutdown = got
        .iter()
        .find(|l| l.starts_with("SHUTDOWN"))
        .expect("SHUTDOWN event");
    let parts: Vec<&str> = shutdown.split(' ').collect();
    assert_eq!(parts[1], "SPINDOWN");
    let deadline: u64 = parts[2].parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert!(
        deadline > now.saturating_sub(3_000) && deadline < now + 3_000,
        "{deadline} vs {now}"
    );
    assert!(
        took < Duration::from_millis(1500),
        "prompt extension: {took:?}"
    );
    assert!(!alive(ext_pid));
}

#[test]
fn shutdown_reasons_on_timeout_and_crash() {
    let dir = TempDir::new("ext-reasons");
    let log = dir.path("events.log");
    let exts = ext_dir(
        &dir,
        "recorder",
        &[("FX_EXT_LOG", &log.display().to_string())],
    );
    let r = Rapid::builder()
        .bootstrap(FX)
        .extensions_dir(&exts)
        .arg("--timeout")
        .arg("1")
        .start();
    assert_eq!(
        r.invoke(br#"{"sleep_ms":5000}"#).error_type(),
        "Sandbox.Timedout"
    );
    assert!(eventually(Duration::from_secs(5), || lines(&log)
        .iter()
        .any(|l| l.starts_with("SHUTDOWN TIMEOUT"))));
    // A fresh generation (with a fresh extension) serves the next invoke.
    assert_eq!(r.invoke(br#"{"ok":1}"#).json()["ok"], 1);
    assert_eq!(r.invoke(br#"{"exit":2}"#).error_type(), "Runtime.ExitError");
    assert!(eventually(Duration::from_secs(5), || lines(&log)
        .iter()
        .any(|l| l.starts_with("SHUTDOWN FAILURE"))));
}

#[test]
fn registration_comes_before_the_runtime_and_errors_are_exact() {
    let dir = TempDir::new("ext-rows");
    let out = dir.path("rows.log");
    let o = out.display();
    let exts = shell_ext(
        &dir,
        "rows",
        &format!(
            r#"
C="curl -s -w ' %{{http_code}}'"
rec() {{ label=$1; shift; printf '%s %s\n' "$label" "$(sh -c "$*")" >> {o}; }}
rec noname "$C -X POST -d '{{}}' $EXT/register"
rec badevent "$C -X POST -H 'Lambda-Extension-Name: x' -d '{{\"events\":[\"BOGUS\"]}}' $EXT/register"
rec badjson "$C -X POST -H 'Lambda-Extension-Name: y' -d '{{nope' $EXT/register"
rec internalshutdown "$C -X POST -H 'Lambda-Extension-Name: internal-one' -d '{{\"events\":[\"SHUTDOWN\"]}}' $EXT/register"
ID=$(register '{{"events":["INVOKE"]}}')
rec twice "$C -X POST -H 'Lambda-Extension-Name: rows' -d '{{}}' $EXT/register"
rec missingid "$C $EXT/event/next"
rec invalidid "$C -H 'Lambda-Extension-Identifier: zzz' $EXT/event/next"
rec unknownid "$C -H 'Lambda-Extension-Identifier: 00000000-0000-4000-8000-000000000000' $EXT/event/next"
rec missingheader "$C -X POST -H 'Lambda-Extension-Identifier: $ID' -d '{{}}' $EXT/exit/error"
rec badsub "$C -X PUT -H 'Lambda-Extension-Identifier: $ID' -d '{{\"schemaVersion\":\"2022-12-13\",\"types\":[\"nope\"]}}' http://$AWS_LAMBDA_RUNTIME_API/2022-07-01/telemetry"
date +%s%N > {o}.registered
while true; do curl -s -o /dev/null -H "Lambda-Extension-Identifier: $ID" $EXT/event/next; done
"#
        ),
    );
    let r = Rapid::builder().bootstrap(FX).extensions_dir(&exts).start();
    let resp = r.invoke(br#"{"context":true}"#);
    assert_eq!(resp.status, 200, "{}", resp.text());
    // The runtime started only after the extension registered (rapid's log order).
    let registered: u128 = std::fs::read_to_string(dir.path("rows.log.registered"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let err = r.stderr();
    let reg = err
        .find("extension registered")
        .expect("registration logged");
    let run = err.find("runtime started").expect("runtime start logged");
    assert!(
        reg < run,
        "the runtime must start after registration:\n{err}"
    );
    assert!(registered > 0);

    let rows = lines(&out);
    let row = |label: &str| -> (String, u16) {
        let l = rows
            .iter()
            .find(|l| l.starts_with(&format!("{label} ")))
            .unwrap_or_else(|| panic!("{label}: {rows:?}"));
        let rest = &l[label.len() + 1..];
        let (body, code) = rest.rsplit_once(' ').unwrap();
        let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
        (
            v["errorType"].as_str().unwrap_or_default().to_owned(),
            code.parse().unwrap(),
        )
    };
    assert_eq!(
        row("noname"),
        ("Extension.InvalidExtensionName".into(), 403)
    );
    assert_eq!(row("badevent"), ("Extension.InvalidEventType".into(), 403));
    assert_eq!(row("badjson"), ("InvalidRequestFormat".into(), 403));
    assert_eq!(
        row("internalshutdown"),
        ("Extension.InvalidEventType".into(), 403)
    );
    assert_eq!(
        row("twice"),
        ("Extension.InvalidExtensionState".into(), 403)
    );
    assert_eq!(
        row("missingid"),
        ("Extension.MissingExtensionIdentifier".into(), 403)
    );
    assert_eq!(
        row("invalidid"),
        ("Extension.InvalidExtensionIdentifier".into(), 403)
    );
    assert_eq!(
        row("unknownid"),
        ("Extension.UnknownExtensionIdentifier".into(), 403)
    );
    assert_eq!(
        row("missingheader"),
        ("Extension.MissingHeader".into(), 403)
    );
    assert_eq!(row("badsub"), ("ValidationError".into(), 400));
}

#[test]
fn registration_after_init_is_closed() {
    let dir = TempDir::new("ext-late");
    let out = dir.path("late.log");
    let exts = shell_ext(
        &dir,
        "early",
        &format!(
            r#"
ID=$(register '{{"events":["INVOKE"]}}')
curl -s -o /dev/null -H "Lambda-Extension-Identifier: $ID" $EXT/event/next
curl -s -w ' %{{http_code}}' -X POST -H 'Lambda-Extension-Name: late' -d '{{}}' $EXT/register > {out}
while true; do curl -s -o /dev/null -H "Lambda-Extension-Identifier: $ID" $EXT/event/next; done
"#,
            out = out.display()
        ),
    );
    let r = Rapid::builder().bootstrap(FX).extensions_dir(&exts).start();
    assert_eq!(r.invoke(b"{}").status, 200);
    assert!(eventually(Duration::from_secs(5), || {
        std::fs::read_to_string(&out).is_ok_and(|s| s.ends_with(" 403"))
    }));
    assert!(std::fs::read_to_string(&out)
        .unwrap()
        .contains("Extension.RegistrationClosed"));
}

#[test]
fn extension_crash_during_init() {
    let dir = TempDir::new("ext-crash-init");
    let exts = shell_ext(
        &dir,
        "crasher",
        "register '{\"events\":[\"INVOKE\"]}' >/dev/null\nexit 5",
    );
    let r = Rapid::builder().bootstrap(FX).extensions_dir(&exts).start();
    let resp = r.invoke(b"{}");
    assert_eq!(resp.header("x-amz-function-error"), Some("Unhandled"));
    assert_eq!(resp.error_type(), "Extension.Crash");
    assert!(
        resp.error_message().contains("crasher"),
        "{}",
        resp.error_message()
    );
    assert!(
        resp.error_message().contains("exit status 5"),
        "{}",
        resp.error_message()
    );
}

#[test]
fn extension_init_error() {
    let dir = TempDir::new("ext-init-error");
    let exts = shell_ext(
        &dir,
        "fails",
        "ID=$(register '{\"events\":[]}')\n\
         curl -s -o /dev/null -X POST -H \"Lambda-Extension-Identifier: $ID\" \
         -H 'Lambda-Extension-Function-Error-Type: Extension.ConfigMissing' -d '{}' $EXT/init/error\nsleep 30",
    );
    let r = Rapid::builder().bootstrap(FX).extensions_dir(&exts).start();
    let resp = r.invoke(b"{}");
    assert_eq!(resp.error_type(), "Extension.InitError");
    assert!(
        resp.error_message().contains("Extension.ConfigMissing"),
        "{}",
        resp.error_message()
    );
}

#[test]
fn extension_crash_during_invoke_fails_it_and_resets() {
    let dir = TempDir::new("ext-crash-invoke");
    let exts = shell_ext(
        &dir,
        "dies",
        "ID=$(register '{\"events\":[\"INVOKE\"]}')\n\
         curl -s -o /dev/null -H \"Lambda-Extension-Identifier: $ID\" $EXT/event/next\nexit 9",
    );
    let r = Rapid::builder().bootstrap(FX).extensions_dir(&exts).start();
    let resp = r.invoke(br#"{"sleep_ms":1000}"#);
    assert_eq!(resp.error_type(), "Extension.Crash", "{}", resp.text());
    let id = resp.header("x-amzn-requestid").unwrap();
    assert!(resp
        .error_message()
        .starts_with(&format!("RequestId: {id} Error: Extension dies")));
    // The sandbox was reset: a fresh generation answers (and its extension dies again).
    let again = r.invoke(br#"{"sleep_ms":1000}"#);
    assert_eq!(again.error_type(), "Extension.Crash");
}

#[test]
fn a_hanging_extension_is_killed_at_the_deadline() {
    let dir = TempDir::new("ext-hang");
    let pidfile = dir.path("hang.pid");
    let exts = shell_ext(
        &dir,
        "hangs",
        &format!(
            "trap '' TERM\necho $$ > {}\nID=$(register '{{\"events\":[\"SHUTDOWN\"]}}')\n\
             curl -s -o /dev/null -H \"Lambda-Extension-Identifier: $ID\" $EXT/event/next\n\
             while true; do sleep 1; done",
            pidfile.display()
        ),
    );
    let mut r = Rapid::builder().bootstrap(FX).extensions_dir(&exts).start();
    assert_eq!(r.invoke(b"{}").status, 200);
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let t = Instant::now();
    r.signal(libc::SIGTERM);
    assert_eq!(
        r.wait_exit(Duration::from_secs(6)).and_then(|s| s.code()),
        Some(0)
    );
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(1800) && took < Duration::from_secs(4),
        "{took:?}"
    );
    assert!(
        eventually(Duration::from_secs(1), || !alive(pid)),
        "hanging extension survived"
    );
}

#[test]
fn an_extension_that_registers_for_nothing_does_not_block_invokes() {
    let dir = TempDir::new("ext-quiet");
    let exts = ext_dir(&dir, "quiet", &[("FX_EXT_QUIET", "1")]);
    let mut r = Rapid::builder().bootstrap(FX).extensions_dir(&exts).start();
    for i in 0..3 {
        assert_eq!(
            r.invoke(format!(r#"{{"i":{i}}}"#).as_bytes()).json()["i"],
            i
        );
    }
    let t = Instant::now();
    r.signal(libc::SIGTERM);
    assert_eq!(
        r.wait_exit(Duration::from_secs(5)).and_then(|s| s.code()),
        Some(0)
    );
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "not subscribed to SHUTDOWN: killed at once"
    );
}

#[test]
fn telemetry_batches_carry_the_invokes_records_and_function_lines() {
    let dir = TempDir::new("ext-telemetry");
    let log = dir.path("events.log");
    let tel = dir.path("telemetry.log");
    let port = free_port().to_string();
    let exts = ext_dir(
        &dir,
        "agent",
        &[
            ("FX_EXT_LOG", &log.display().to_string()),
            ("FX_EXT_TELEMETRY", &tel.display().to_string()),
            ("FX_EXT_TELEMETRY_PORT", &port),
        ],
    );
    let mut r = Rapid::builder().bootstrap(FX).extensions_dir(&exts).start();
    let resp = r.invoke(br#"{"print":"hello-telemetry"}"#);
    assert_eq!(resp.status, 200);
    let id = resp.header("x-amzn-requestid").unwrap().to_owned();
    // Records arrive within the default 1 s batching window; SIGTERM flushes the rest.
    let has = |needle: &str| lines(&tel).iter().any(|l| l.contains(needle));
    eventually(Duration::from_secs(3), || has("platform.report"));
    r.signal(libc::SIGTERM);
    r.wait_exit(Duration::from_secs(5));
    let got = lines(&tel);
    let find = |kind: &str| {
        got.iter()
            .find(|l| l.starts_with(&format!("{kind} ")) && (kind == "function" || l.contains(&id)))
            .unwrap_or_else(|| panic!("no {kind} record for {id}:\n{}", got.join("\n")))
            .clone()
    };
    find("platform.start");
    let done = find("platform.runtimeDone");
    assert!(done.contains("\"status\":\"success\""), "{done}");
    let report = find("platform.report");
    assert!(report.contains("\"maxMemoryUsedMB\""), "{report}");
    assert!(find("function").contains("hello-telemetry"));
    assert!(
        got.iter().any(|l| l.starts_with("platform.initStart")),
        "init records replayed: {got:?}"
    );
    assert!(got
        .iter()
        .any(|l| l.starts_with("platform.telemetrySubscription")));
}

#[test]
fn a_subscriber_that_never_answers_does_not_slow_invokes() {
    // A listener that accepts connections into its backlog and never answers.
    let sink = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = sink.local_addr().unwrap().port();
    let dir = TempDir::new("ext-deaf");
    let exts = shell_ext(
        &dir,
        "deaf",
        &format!(
            "ID=$(register '{{\"events\":[]}}')\n\
             curl -s -o /dev/null -X PUT -H \"Lambda-Extension-Identifier: $ID\" \
             -d '{{\"schemaVersion\":\"2022-12-13\",\"types\":[\"platform\",\"function\"],\"buffering\":{{\"timeoutMs\":25}},\
             \"destination\":{{\"protocol\":\"HTTP\",\"URI\":\"http://sandbox.localdomain:{port}/\"}}}}' \
             http://$AWS_LAMBDA_RUNTIME_API/2022-07-01/telemetry\n\
             curl -s -o /dev/null -H \"Lambda-Extension-Identifier: $ID\" $EXT/event/next"
        ),
    );
    let r = Rapid::builder().bootstrap(FX).extensions_dir(&exts).start();
    let plain = Rapid::builder().bootstrap(FX).start();
    let p50 = |r: &Rapid| {
        let mut v: Vec<Duration> = (0..60)
            .map(|_| {
                let t = Instant::now();
                assert_eq!(r.invoke(br#"{"print":"x"}"#).status, 200);
                t.elapsed()
            })
            .collect();
        v.sort();
        v[v.len() / 2]
    };
    let with = p50(&r);
    let without = p50(&plain);
    assert!(
        with < without * 3 + Duration::from_millis(5),
        "a dead subscriber slowed invokes: {with:?} vs {without:?}"
    );
    drop(sink);
}

#[test]
fn restore_records_reach_a_tcp_subscriber() {
    use std::io::BufRead;
    let sink = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = sink.local_addr().unwrap().port();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        if let Ok((s, _)) = sink.accept() {
            for line in std::io::BufReader::new(s).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        }
    });
    let dir = TempDir::new("ext-restore");
    let exts = shell_ext(
        &dir,
        "tcp-agent",
        &format!(
            "ID=$(register '{{\"events\":[]}}')\n\
             curl -s -o /dev/null -X PUT -H \"Lambda-Extension-Identifier: $ID\" \
             -d '{{\"schemaVersion\":\"2022-12-13\",\"types\":[\"platform\"],\"buffering\":{{\"timeoutMs\":25}},\
             \"destination\":{{\"protocol\":\"TCP\",\"port\":{port}}}}}' \
             http://$AWS_LAMBDA_RUNTIME_API/2022-07-01/telemetry\n\
             curl -s -o /dev/null -H \"Lambda-Extension-Identifier: $ID\" $EXT/event/next"
        ),
    );
    let r = Rapid::builder()
        .bootstrap(FX)
        .extensions_dir(&exts)
        .arg("--enable-init-caching")
        .start();
    assert_eq!(r.invoke(b"{}").status, 200);
    let mut types = Vec::new();
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until && !types.iter().any(|t: &String| t == "platform.report") {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            types.push(v["type"].as_str().unwrap().to_owned());
        }
    }
    for t in [
        "platform.initStart",
        "platform.initRuntimeDone",
        "platform.initReport",
        "platform.restoreStart",
        "platform.restoreRuntimeDone",
        "platform.restoreReport",
        "platform.start",
        "platform.runtimeDone",
        "platform.report",
    ] {
        assert!(types.iter().any(|x| x == t), "no {t} in {types:?}");
    }
}
