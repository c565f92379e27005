//! SPEC §3: the Runtime API, row by row, with shell + curl bootstraps that
//! record what rapid answered them.

#![allow(clippy::unwrap_used)] // tests fail loudly on unexpected values

use std::time::Duration;

use rapid_tests::{eventually, Rapid, TempDir};

/// A bootstrap whose loop body is `body`; `$API`, `$ID`, `$BODY`, `$H` (the
/// /next headers file) and `rec LABEL CMD...` (append "LABEL <output>" to
/// `$OUT`) are available.
fn bootstrap(dir: &TempDir, prelude: &str, body: &str) -> std::path::PathBuf {
    let out = dir.path("out.log");
    dir.script(
        "bootstrap",
        &format!(
            r#"#!/bin/sh
OUT={out}
API="http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime"
rec() {{ label=$1; shift; printf '%s %s\n' "$label" "$("$@")" >> "$OUT"; }}
{prelude}
while true; do
  H=$(mktemp)
  BODY=$(curl -s -D "$H" "$API/invocation/next")
  ID=$(grep -i '^lambda-runtime-aws-request-id:' "$H" | cut -d' ' -f2 | tr -d '\r')
{body}
done
"#,
            out = out.display()
        ),
    )
}

/// The recorded lines, once `want` of them are there.
fn recorded(dir: &TempDir, want: usize) -> Vec<String> {
    let path = dir.path("out.log");
    let ok = eventually(Duration::from_secs(10), || {
        std::fs::read_to_string(&path).map_or(0, |s| s.lines().count()) >= want
    });
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(ok, "expected {want} recorded lines, got:\n{text}");
    text.lines().map(str::to_owned).collect()
}

/// "LABEL {json} CODE" → (json, code).
fn parse(line: &str, label: &str) -> (serde_json::Value, u16) {
    let rest = line
        .strip_prefix(label)
        .unwrap_or_else(|| panic!("{line:?} is not {label}"))
        .trim();
    let (body, code) = rest.rsplit_once(' ').unwrap_or(("", rest));
    let json = if body.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{label}: {e}: {body:?}"))
    };
    (json, code.parse().unwrap_or_else(|_| panic!("{line:?}")))
}

const CURL: &str = "curl -s -w ' %{http_code}'";

#[test]
fn response_validation_rows() {
    let dir = TempDir::new("rows");
    let boot = bootstrap(
        &dir,
        "",
        &format!(
            r#"
  rec headers sh -c "tr -d '\r' < $H | grep -i '^lambda-runtime' | sort | tr '\n' '|'"
  rec badid {CURL} -X POST -d x "$API/invocation/not-the-id/response"
  rec badmode {CURL} -X POST -H 'Lambda-Runtime-Function-Response-Mode: bogus' -d x "$API/invocation/$ID/response"
  rec initerr {CURL} -X POST -d '{{}}' "$API/init/error"
  rec nextagain {CURL} "$API/invocation/next"
  rec first {CURL} -X POST -d "$BODY" "$API/invocation/$ID/response"
  rec second {CURL} -X POST -d "$BODY" "$API/invocation/$ID/response"
  rec errafter {CURL} -X POST -d '{{}}' "$API/invocation/$ID/error"
  rec route {CURL} "$API/no/such/route"
  rec method {CURL} -X DELETE "$API/invocation/next"
  if [ -n "$PREV" ]; then rec stale {CURL} -X POST -d x "$API/invocation/$PREV/response"; fi
  PREV=$ID
"#
        ),
    );
    let r = Rapid::builder().bootstrap(&boot).start();
    let resp = r.invoke_with(
        br#"{"k":1}"#,
        &[
            ("X-Amzn-Trace-Id", "Root=1-5f84c7a9-abc"),
            ("Content-Type", "application/json"),
        ],
    );
    // Every refused call above left the invoke as it was: the first response wins.
    assert_eq!(resp.status, 200);
    assert_eq!(resp.json(), serde_json::json!({"k": 1}));
    let id = resp.header("x-amzn-requestid").unwrap().to_owned();
    let lines = recorded(&dir, 10);

    let headers = lines[0]
        .strip_prefix("headers ")
        .unwrap()
        .to_ascii_lowercase();
    assert!(
        headers.contains(&format!("lambda-runtime-aws-request-id: {id}")),
        "{headers}"
    );
    assert!(
        headers.contains("lambda-runtime-deadline-ms: "),
        "{headers}"
    );
    assert!(
        headers.contains("lambda-runtime-invoked-function-arn: arn:aws:lambda:us-east-1:012345678912:function:test_function"),
        "{headers}"
    );
    assert!(
        headers.contains("lambda-runtime-trace-id: root=1-5f84c7a9-abc"),
        "{headers}"
    );

    let (j, c) = parse(&lines[1], "badid");
    assert_eq!(
        (c, j["errorType"].as_str()),
        (400, Some("InvalidRequestID"))
    );
    assert!(j["errorMessage"].as_str().unwrap().contains("not-the-id"));
    let (j, c) = parse(&lines[2], "badmode");
    assert_eq!(
        (c, j["errorType"].as_str()),
        (400, Some("InvalidFunctionResponseMode"))
    );
    assert!(j["errorMessage"].as_str().unwrap().contains("bogus"));
    let (j, c) = parse(&lines[3], "initerr");
    assert_eq!(
        (c, j["errorType"].as_str()),
        (403, Some("InvalidStateTransition"))
    );
    let (j, c) = parse(&lines[4], "nextagain");
    assert_eq!(
        (c, j["errorType"].as_str()),
        (403, Some("InvalidStateTransition"))
    );
    let (j, c) = parse(&lines[5], "first");
    assert_eq!((c, j["status"].as_str()), (202, Some("OK")));
    let (j, c) = parse(&lines[6], "second");
    assert_eq!(
        (c, j["errorType"].as_str()),
        (403, Some("InvalidStateTransition"))
    );
    let (j, c) = parse(&lines[7], "errafter");
    assert_eq!(
        (c, j["errorType"].as_str()),
        (403, Some("InvalidStateTransition"))
    );
    let (j, c) = parse(&lines[8], "route");
    assert_eq!((c, j["errorType"].as_str()), (404, Some("NotFound")));
    let (j, c) = parse(&lines[9], "method");
    assert_eq!(
        (c, j["errorType"].as_str()),
        (405, Some("MethodNotAllowed"))
    );

    // The next invoke: the previous id is now stale.
    assert_eq!(r.invoke(br#"{"k":2}"#).json()["k"], 2);
    let lines = recorded(&dir, 21);
    let (j, c) = parse(&lines[20], "stale");
    assert_eq!(
        (c, j["errorType"].as_str()),
        (400, Some("InvalidRequestID"))
    );
}

#[test]
fn error_posts_reach_the_invoker() {
    let dir = TempDir::new("errors");
    let boot = bootstrap(
        &dir,
        "N=0",
        &format!(
            r#"
  N=$((N+1))
  case $N in
    1) rec err {CURL} -X POST -H 'Lambda-Runtime-Function-Error-Type: Function.MyError' \
         -d '{{"errorMessage":"custom failure","errorType":"Function.MyError","stackTrace":["a"]}}' "$API/invocation/$ID/error" ;;
    2) rec err {CURL} -X POST -H 'Lambda-Runtime-Function-Error-Type: not a valid type' "$API/invocation/$ID/error" ;;
    *) rec ok {CURL} -X POST -d '"fine"' "$API/invocation/$ID/response" ;;
  esac
"#
        ),
    );
    let r = Rapid::builder().bootstrap(&boot).start();
    let first = r.invoke(b"{}");
    assert_eq!(first.header("x-amz-function-error"), Some("Unhandled"));
    assert_eq!(first.error_type(), "Function.MyError");
    assert_eq!(first.error_message(), "custom failure");
    assert_eq!(
        first.json()["stackTrace"][0],
        "a",
        "the posted body passes through untouched"
    );
    // No body and an invalid type: a body is built from the sanitised header.
    let second = r.invoke(b"{}");
    assert_eq!(second.header("x-amz-function-error"), Some("Unhandled"));
    assert_eq!(second.error_type(), "Runtime.Unknown");
    // A function error does not reset: the same runtime answers.
    assert_eq!(r.invoke(b"{}").text(), "\"fine\"");
    let lines = recorded(&dir, 3);
    assert!(
        lines[0].ends_with(" 202") && lines[1].ends_with(" 202"),
        "{lines:?}"
    );
}

#[test]
fn oversize_response_is_413_to_the_runtime() {
    let dir = TempDir::new("oversize");
    let big = dir.path("big.json");
    let boot = bootstrap(
        &dir,
        &format!("head -c 6291557 /dev/zero | tr '\\0' a > {}", big.display()),
        &format!(
            r#"
  rec big {CURL} -X POST --data-binary @{big} "$API/invocation/$ID/response"
"#,
            big = big.display()
        ),
    );
    let r = Rapid::builder().bootstrap(&boot).start();
    let resp = r.invoke(b"{}");
    assert_eq!(resp.error_type(), "Function.ResponseSizeTooLarge");
    assert!(resp
        .error_message()
        .starts_with("Response payload size (6291557 bytes)"));
    let lines = recorded(&dir, 1);
    let (j, c) = parse(&lines[0], "big");
    assert_eq!(c, 413);
    assert_eq!(j["errorType"], "RequestEntityTooLarge");
    assert_eq!(
        j["errorMessage"],
        "Exceeded maximum allowed payload size (6291556 bytes)."
    );
}

#[test]
fn init_error_from_a_shell_runtime() {
    let dir = TempDir::new("initerr");
    let out = dir.path("out.log");
    let boot = dir.script(
        "bootstrap",
        &format!(
            r#"#!/bin/sh
API="http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime"
curl -s -w ' %{{http_code}}' -X POST -H 'Lambda-Runtime-Function-Error-Type: Runtime.NoConfig' \
  -d '{{"errorMessage":"no config","errorType":"Runtime.NoConfig"}}' "$API/init/error" >> {out}
echo >> {out}
sleep 30
"#,
            out = out.display()
        ),
    );
    let r = Rapid::builder().bootstrap(&boot).start();
    let resp = r.invoke(b"{}");
    assert_eq!(resp.header("x-amz-function-error"), Some("Unhandled"));
    assert_eq!(resp.error_type(), "Runtime.NoConfig");
    assert_eq!(resp.error_message(), "no config");
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.lines().all(|l| l.ends_with(" 202")), "{text}");
}
