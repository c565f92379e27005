//! SPEC §4: the Invoke API, driven against the real binary with a
//! `lambda_runtime` function.

#![allow(clippy::unwrap_used)] // tests fail loudly on unexpected values

use base64::Engine as _;
use rapid_tests::{request, Rapid, Resp};
use std::time::Duration;

const FX: &str = env!("CARGO_BIN_EXE_fx-lambda");
const MAX_PAYLOAD: usize = 6_291_556;

fn rapid() -> Rapid {
    Rapid::builder().bootstrap(FX).start()
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[test]
fn success_echoes_with_ids() {
    let r = rapid();
    let resp = r.invoke(br#"{"hello":"world"}"#);
    assert_eq!(resp.status, 200);
    assert_eq!(resp.json(), serde_json::json!({"hello": "world"}));
    let id = resp.header("x-amzn-requestid").expect("request id");
    assert_eq!(id.len(), 36, "{id}");
    assert_eq!(resp.header("x-amz-executed-version"), Some("$LATEST"));
    assert_eq!(resp.header("x-amz-function-error"), None);
}

#[test]
fn configured_function_name_is_accepted_and_others_are_404() {
    let r = Rapid::builder()
        .bootstrap(FX)
        .arg("--function-name")
        .arg("my-fn")
        .start();
    let ok = request(
        r.invoke,
        "POST",
        "/2015-03-31/functions/my-fn/invocations",
        &[],
        b"{}",
    );
    assert_eq!(ok.status, 200);
    let missing = request(
        r.invoke,
        "POST",
        "/2015-03-31/functions/other/invocations",
        &[],
        b"{}",
    );
    assert_eq!(missing.status, 404);
    assert_eq!(missing.error_type(), "ResourceNotFoundException");
    let nowhere = request(r.invoke, "POST", "/nope", &[], b"{}");
    assert_eq!(nowhere.status, 404);
    assert_eq!(nowhere.error_type(), "ResourceNotFoundException");
    let get = request(
        r.invoke,
        "GET",
        "/2015-03-31/functions/function/invocations",
        &[],
        b"",
    );
    assert_eq!(get.status, 405);
    assert!(!get.error_message().is_empty());
}

#[test]
fn request_payload_limit() {
    let r = rapid();
    // AWS's synchronous request limit: exactly 6291456 bytes of JSON is
    // accepted (and echoed).
    const MAX_REQUEST: usize = 6_291_456;
    let mut ok = String::from("\"");
    ok.push_str(&"a".repeat(MAX_REQUEST - 2));
    ok.push('"');
    let resp = r.invoke(ok.as_bytes());
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body.len(), MAX_REQUEST);
    // One byte more never reaches the runtime.
    let mut big = String::from("\"");
    big.push_str(&"a".repeat(MAX_REQUEST - 1));
    big.push('"');
    let resp = r.invoke(big.as_bytes());
    assert_eq!(resp.status, 413);
    assert_eq!(resp.error_type(), "RequestEntityTooLargeException");
    assert_eq!(
        resp.error_message(),
        "Request must be smaller than 6291456 bytes for the InvokeFunction operation"
    );
    // rapid is still serving.
    assert_eq!(r.invoke(b"{}").status, 200);
}

#[test]
fn response_payload_limit() {
    let r = rapid();
    let resp = r.invoke(format!(r#"{{"big":{MAX_PAYLOAD}}}"#).as_bytes());
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("x-amz-function-error"), None);
    assert_eq!(resp.body.len(), MAX_PAYLOAD);

    let resp = r.invoke(format!(r#"{{"big":{}}}"#, MAX_PAYLOAD + 1).as_bytes());
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("x-amz-function-error"), Some("Unhandled"));
    assert_eq!(resp.error_type(), "Function.ResponseSizeTooLarge");
    assert_eq!(
        resp.error_message(),
        "Response payload size (6291557 bytes) exceeded maximum allowed payload size (6291556 bytes)."
    );
    // The sandbox keeps working.
    assert_eq!(r.invoke(br#"{"after":1}"#).json()["after"], 1);
}

#[test]
fn event_and_dry_run_invocation_types() {
    let r = rapid();
    let ev = r.invoke_with(
        br#"{"print":"event-ran"}"#,
        &[("X-Amz-Invocation-Type", "Event")],
    );
    assert_eq!(ev.status, 202);
    assert!(ev.header("x-amzn-requestid").is_some());
    assert!(
        r.wait_stdout("event-ran", Duration::from_secs(10)),
        "the Event invoke ran"
    );

    let dry = r.invoke_with(
        br#"{"print":"dry-ran"}"#,
        &[("X-Amz-Invocation-Type", "DryRun")],
    );
    assert_eq!(dry.status, 204);
    assert!(dry.body.is_empty());
    // A DryRun runs nothing: a later invoke's output appears, the dry one's never does.
    assert_eq!(r.invoke(br#"{"print":"after-dry"}"#).status, 200);
    assert!(r.wait_stdout("after-dry", Duration::from_secs(5)));
    assert!(!r.stdout().contains("dry-ran"));

    let bad = r.invoke_with(b"{}", &[("X-Amz-Invocation-Type", "Sometimes")]);
    assert_eq!(bad.status, 400);
    assert_eq!(bad.error_type(), "InvalidRequestContentException");
    assert!(bad.error_message().contains("Sometimes"));
}

#[test]
fn client_context_validation_and_delivery() {
    let r = rapid();
    for bad in ["%%%not-base64%%%", &b64("not json"), &b64("[1,2]")] {
        let resp = r.invoke_with(b"{}", &[("X-Amz-Client-Context", bad)]);
        assert_eq!(resp.status, 400, "{bad}");
        assert_eq!(resp.error_type(), "InvalidRequestContentException");
        assert!(!resp.error_message().is_empty());
    }
    let ctx = b64(
        r#"{"client":{"installationId":"i","appTitle":"t","appVersionName":"1","appVersionCode":"1","appPackageName":"p"},
            "custom":{"k":"v"},"environment":{"e":"1"}}"#,
    );
    let resp = r.invoke_with(
        br#"{"context":true}"#,
        &[
            ("X-Amz-Client-Context", &ctx),
            ("X-Amzn-Trace-Id", "Root=1-abc-def;Sampled=1"),
        ],
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    let v = resp.json();
    assert_eq!(v["clientContext"]["custom"]["k"], "v");
    assert_eq!(v["clientContext"]["env"]["e"], "1");
    assert_eq!(v["traceId"], "Root=1-abc-def;Sampled=1");
    assert_eq!(
        v["requestId"],
        resp.header("x-amzn-requestid").unwrap_or_default()
    );
    assert_eq!(
        v["arn"],
        "arn:aws:lambda:us-east-1:012345678912:function:test_function"
    );
    // The deadline is epoch ms in the future, about the 300 s default away.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let deadline = v["deadline"].as_u64().unwrap();
    assert!(
        deadline > now_ms + 290_000 && deadline < now_ms + 310_000,
        "{deadline} vs {now_ms}"
    );
}

#[test]
fn log_tail_contains_this_invokes_lines() {
    let r = rapid();
    let resp = r.invoke_with(
        br#"{"print":"tail-line-42"}"#,
        &[("X-Amz-Log-Type", "Tail")],
    );
    assert_eq!(resp.status, 200);
    let raw = resp.header("x-amz-log-result").expect("log result");
    let log = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(raw)
            .unwrap(),
    )
    .unwrap();
    let id = resp.header("x-amzn-requestid").unwrap();
    assert!(log.contains("tail-line-42"), "{log}");
    assert!(log.contains(&format!("START RequestId: {id}")), "{log}");
    assert!(log.contains(&format!("REPORT RequestId: {id}")), "{log}");
    // Without the header there is no log result.
    assert!(r.invoke(b"{}").header("x-amz-log-result").is_none());
}

fn invoke_in_thread(addr: std::net::SocketAddr, body: String) -> std::thread::JoinHandle<Resp> {
    std::thread::spawn(move || {
        request(
            addr,
            "POST",
            "/2015-03-31/functions/function/invocations",
            &[],
            body.as_bytes(),
        )
    })
}

fn statuses(resps: &[Resp]) -> Vec<(u16, String)> {
    resps.iter().map(|r| (r.status, r.text())).collect()
}

#[test]
fn queue_bound_answers_429_and_serves_the_rest() {
    let r = Rapid::builder()
        .bootstrap(FX)
        .arg("--max-queue")
        .arg("2")
        .start();
    // One invoke is running (its line is out) ...
    let running = invoke_in_thread(
        r.invoke,
        r#"{"print":"first-is-running","sleep_ms":600}"#.to_owned(),
    );
    assert!(r.wait_stdout("first-is-running", Duration::from_secs(10)));
    // ... so of seven more, exactly two may wait and five are refused.
    let handles: Vec<_> = (0..7)
        .map(|i| invoke_in_thread(r.invoke, format!(r#"{{"sleep_ms":10,"n":{i}}}"#)))
        .collect();
    let resps: Vec<Resp> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let first = running.join().unwrap();
    assert_eq!(first.status, 200);
    assert_eq!(first.json()["sleep_ms"], 600);
    let ok: Vec<_> = resps.iter().filter(|r| r.status == 200).collect();
    let limited: Vec<_> = resps.iter().filter(|r| r.status == 429).collect();
    assert_eq!((ok.len(), limited.len()), (2, 5), "{:?}", statuses(&resps));
    for l in limited {
        assert_eq!(l.error_type(), "TooManyRequestsException");
        assert!(!l.error_message().is_empty());
    }
    for o in ok {
        assert_eq!(o.json()["sleep_ms"], 10, "{}", o.text());
    }
    // The queue drained: rapid serves again.
    assert_eq!(r.invoke(br#"{"after":1}"#).json()["after"], 1);
}

#[test]
fn idle_burst_admits_one_running_plus_the_queue() {
    // A warm, idle sandbox and a burst of simultaneous invokes: one runs and
    // `--max-queue` wait, every round (the bound counts the *waiting* ones).
    let r = Rapid::builder()
        .bootstrap(FX)
        .arg("--max-queue")
        .arg("2")
        .start();
    for round in 0..4 {
        let warm = r.invoke(b"{}");
        let warm_id = warm.header("x-amzn-requestid").unwrap().to_owned();
        // The warm-up is complete (the runtime is back in /next) once its REPORT is out.
        assert!(r.wait_stdout(
            &format!("REPORT RequestId: {warm_id}"),
            Duration::from_secs(5)
        ));
        let handles: Vec<_> = (0..6)
            .map(|i| invoke_in_thread(r.invoke, format!(r#"{{"sleep_ms":150,"n":{i}}}"#)))
            .collect();
        let resps: Vec<Resp> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let ok = resps.iter().filter(|r| r.status == 200).count();
        let limited = resps.iter().filter(|r| r.status == 429).count();
        assert_eq!(
            (ok, limited),
            (3, 3),
            "round {round}: {:?}",
            statuses(&resps)
        );
    }
}

#[test]
fn concurrent_invokes_are_all_answered_with_their_own_response() {
    let r = rapid();
    let addr = r.invoke;
    let handles: Vec<_> = (0..50)
        .map(|i| {
            std::thread::spawn(move || {
                let body = format!(r#"{{"n":{i}}}"#);
                let resp = rapid_tests::request(
                    addr,
                    "POST",
                    "/2015-03-31/functions/function/invocations",
                    &[],
                    body.as_bytes(),
                );
                (i, resp)
            })
        })
        .collect();
    let mut ids = std::collections::HashSet::new();
    for h in handles {
        let (i, resp) = h.join().unwrap();
        assert_eq!(resp.status, 200);
        assert_eq!(resp.json()["n"], i);
        ids.insert(resp.header("x-amzn-requestid").unwrap().to_owned());
    }
    assert_eq!(ids.len(), 50);
}

#[test]
fn malformed_http_leaves_rapid_serving() {
    use std::io::{Read, Write};
    let r = rapid();
    let mut s = std::net::TcpStream::connect(r.invoke).unwrap();
    s.write_all(b"THIS IS NOT HTTP\r\n\r\n").unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    assert!(String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 400"));
    assert_eq!(r.invoke(b"{}").status, 200);
}

#[test]
fn every_answer_carries_the_request_id() {
    let r = rapid();
    let check = |resp: &Resp, version: bool| {
        let id = resp.header("x-amzn-requestid").unwrap_or_default();
        assert!(!id.is_empty(), "{} without X-Amzn-RequestId", resp.status);
        if version {
            assert_eq!(
                resp.header("x-amz-executed-version"),
                Some("$LATEST"),
                "{}",
                resp.status
            );
        }
    };
    check(&r.invoke(b"{}"), true);
    check(&r.invoke(br#"{"error":"e"}"#), true);
    check(&r.invoke(br#"{"exit":2}"#), true);
    check(
        &r.invoke_with(b"{}", &[("X-Amz-Invocation-Type", "Event")]),
        true,
    );
    check(
        &r.invoke_with(b"{}", &[("X-Amz-Invocation-Type", "DryRun")]),
        true,
    );
    let bad = r.invoke_with(b"{}", &[("X-Amz-Client-Context", "%%%")]);
    assert_eq!(bad.status, 400);
    check(&bad, false);
    let big = r.invoke(&vec![b' '; MAX_PAYLOAD + 1]);
    assert_eq!(big.status, 413);
    check(&big, false);
}

#[test]
fn timed_out_answer_carries_ids() {
    let r = Rapid::builder()
        .bootstrap(FX)
        .env("AWS_LAMBDA_FUNCTION_TIMEOUT", "1")
        .start();
    let resp = r.invoke(br#"{"sleep_ms":3000}"#);
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("x-amz-function-error"), Some("Unhandled"));
    assert_eq!(resp.header("x-amz-executed-version"), Some("$LATEST"));
    let id = resp.header("x-amzn-requestid").unwrap();
    assert_eq!(
        resp.error_message(),
        format!("RequestId: {id} Error: Task timed out after 1.00 seconds")
    );
    // The deadline the runtime saw was 1 s away.
    let ok = r.invoke(br#"{"context":true}"#);
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let deadline = ok.json()["deadline"].as_u64().unwrap();
    assert!(
        deadline > now_ms && deadline <= now_ms + 1_100,
        "{deadline} vs {now_ms}"
    );
}

#[test]
fn name_and_version_from_the_environment() {
    let r = Rapid::builder()
        .bootstrap(FX)
        .env("AWS_LAMBDA_FUNCTION_NAME", "env-fn")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "7")
        .start();
    let resp = request(
        r.invoke,
        "POST",
        "/2015-03-31/functions/env-fn/invocations",
        &[],
        br#"{"context":true}"#,
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.header("x-amz-executed-version"), Some("7"));
    let v = resp.json();
    assert_eq!(v["env"]["AWS_LAMBDA_FUNCTION_NAME"], "env-fn");
    assert_eq!(v["env"]["AWS_LAMBDA_FUNCTION_VERSION"], "7");
    assert!(
        v["arn"]
            .as_str()
            .unwrap()
            .starts_with("arn:aws:lambda:us-east-1:012345678912:function:env-fn"),
        "{v}"
    );
    let id = resp.header("x-amzn-requestid").unwrap();
    assert!(r.wait_stdout(
        &format!("START RequestId: {id} Version: 7"),
        Duration::from_secs(5)
    ));
    // `function` is always accepted; another name is not.
    assert_eq!(r.invoke(b"{}").status, 200);
    let other = request(
        r.invoke,
        "POST",
        "/2015-03-31/functions/test_function/invocations",
        &[],
        b"{}",
    );
    assert_eq!(other.status, 404);
    assert_eq!(other.error_type(), "ResourceNotFoundException");
}

#[test]
fn event_invokes_run_in_order_after_the_202() {
    let r = rapid();
    for i in 0..3 {
        let ev = r.invoke_with(
            format!(r#"{{"print":"event-{i}","sleep_ms":50}}"#).as_bytes(),
            &[("X-Amz-Invocation-Type", "Event")],
        );
        assert_eq!(ev.status, 202);
        assert!(ev.body.is_empty() || ev.text().trim().is_empty());
    }
    // A synchronous invoke queued behind them runs after all three.
    let sync = r.invoke(br#"{"print":"sync-after-events"}"#);
    assert_eq!(sync.status, 200);
    assert!(r.wait_stdout("sync-after-events", Duration::from_secs(5)));
    let out = r.stdout();
    let pos = |s: &str| out.find(s).unwrap_or(usize::MAX);
    assert!(pos("event-0") < pos("event-1"), "{out}");
    assert!(pos("event-1") < pos("event-2"), "{out}");
    assert!(pos("event-2") < pos("sync-after-events"), "{out}");
}
