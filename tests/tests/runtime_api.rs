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
    // rapid kills the runtime's group right after accepting /init/error, so
    // curl may die before it writes everything: whatever it wrote is the 202's.
    let text = std::fs::read_to_string(&out).unwrap_or_default();
    assert!(
        text.trim().is_empty() || text.contains(r#"{"status":"OK"}"#),
        "{text}"
    );
    assert!(
        !text.contains("errorType"),
        "the init error call was refused: {text}"
    );
}

#[test]
fn next_carries_the_invokes_content_type() {
    let dir = TempDir::new("ctype");
    let boot = bootstrap(
        &dir,
        "",
        &format!(
            r#"
  rec ctype sh -c "tr -d '\r' < $H | grep -i '^content-type:' | cut -d' ' -f2-"
  rec ok {CURL} -X POST -d '"ok"' "$API/invocation/$ID/response"
"#
        ),
    );
    let r = Rapid::builder().bootstrap(&boot).start();
    // No Content-Type on the invoke: the runtime sees application/json.
    assert_eq!(r.invoke(b"{}").text(), "\"ok\"");
    // The event must be JSON (AWS's rule); its declared type still reaches the runtime.
    let plain = r.invoke_with(b"\"plain words\"", &[("Content-Type", "text/plain")]);
    assert_eq!(plain.text(), "\"ok\"");
    let lines = recorded(&dir, 4);
    assert_eq!(lines[0], "ctype application/json", "{lines:?}");
    assert_eq!(lines[2], "ctype text/plain", "{lines:?}");
}

#[test]
fn error_type_header_without_a_body() {
    let dir = TempDir::new("errtype");
    let boot = bootstrap(
        &dir,
        "N=0",
        &format!(
            r#"
  N=$((N+1))
  case $N in
    1) rec err {CURL} -X POST -H 'Lambda-Runtime-Function-Error-Type: Function.Custom' "$API/invocation/$ID/error" ;;
    2) rec err {CURL} -X POST -H 'Lambda-Runtime-Function-Error-Type: Runtime.Custom' "$API/invocation/$ID/error" ;;
    3) rec err {CURL} -X POST "$API/invocation/$ID/error" ;;
    *) rec err {CURL} -X POST -H 'lambda-runtime-function-error-type: unhandled' \
         -d '{{"errorType":"&alloc::boxed::Box<dyn core::error::Error>","errorMessage":"as lambda_runtime posts it"}}' \
         "$API/invocation/$ID/error" ;;
  esac
"#
        ),
    );
    let r = Rapid::builder().bootstrap(&boot).start();
    let check = |want_type: &str| {
        let resp = r.invoke(b"{}");
        assert_eq!(resp.status, 200);
        assert_eq!(resp.header("x-amz-function-error"), Some("Unhandled"));
        assert_eq!(resp.error_type(), want_type, "{}", resp.text());
        resp
    };
    check("Function.Custom");
    check("Runtime.Custom");
    // Neither header nor body: still a JSON error, never an empty body.
    let none = r.invoke(b"{}");
    assert_eq!(none.header("x-amz-function-error"), Some("Unhandled"));
    assert!(!none.error_type().is_empty(), "{}", none.text());
    // lambda_runtime's shape: header "unhandled", the real type in the body.
    let lr = check("&alloc::boxed::Box<dyn core::error::Error>");
    assert_eq!(lr.error_message(), "as lambda_runtime posts it");
    let lines = recorded(&dir, 4);
    assert!(lines.iter().all(|l| l.ends_with(" 202")), "{lines:?}");
}

/// Bytes between the first and the last piece of a streamed answer.
fn spread(s: &rapid_tests::Streamed) -> Duration {
    let first = s.pieces.first().unwrap().0;
    let last = s.pieces.last().unwrap().0;
    last.duration_since(first)
}

#[test]
fn curl_streaming_response_is_forwarded_chunk_by_chunk() {
    let dir = TempDir::new("curlstream");
    let boot = bootstrap(
        &dir,
        "",
        &format!(
            r#"
  {{ printf 'one-'; sleep 0.4; printf 'two-'; sleep 0.4; printf 'three'; }} | \
    rec stream {CURL} -X POST -H 'Expect:' -H 'Transfer-Encoding: chunked' \
      -H 'Lambda-Runtime-Function-Response-Mode: streaming' -T - "$API/invocation/$ID/response"
"#
        ),
    );
    let r = Rapid::builder().bootstrap(&boot).start();
    let s = rapid_tests::stream(
        r.invoke,
        "/2015-03-31/functions/function/invocations",
        b"{}",
        None,
    );
    assert_eq!(s.status, 200);
    assert!(s.end.is_ok(), "{:?}", s.end);
    assert_eq!(String::from_utf8_lossy(&s.body()), "one-two-three");
    assert!(s.pieces.len() >= 3, "{:?}", s.pieces);
    assert!(
        spread(&s) >= Duration::from_millis(600),
        "not forwarded as produced: {:?}",
        spread(&s)
    );
    assert!(s.header("x-amz-function-error").is_none());
    let lines = recorded(&dir, 1);
    assert!(lines[0].ends_with(" 202"), "{lines:?}");
    // A buffered response still works afterwards.
    assert!(r.invoke(b"{}").status == 200);
}

/// A bash bootstrap that streams "hello", then ends the chunked body with real
/// HTTP trailers carrying an error.
fn trailer_bootstrap(dir: &TempDir) -> std::path::PathBuf {
    let out = dir.path("out.log");
    dir.script(
        "bootstrap",
        &format!(
            r#"#!/bin/bash
OUT={out}
API="http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime"
HOST=${{AWS_LAMBDA_RUNTIME_API%:*}}
PORT=${{AWS_LAMBDA_RUNTIME_API##*:}}
ERR=$(printf '%s' '{{"errorMessage":"failed after the first byte","errorType":"Function.LateFailure"}}' | base64 -w0)
while true; do
  H=$(mktemp)
  curl -s -D "$H" -o /dev/null "$API/invocation/next"
  ID=$(grep -i '^lambda-runtime-aws-request-id:' "$H" | cut -d' ' -f2 | tr -d '\r')
  exec 3<>"/dev/tcp/$HOST/$PORT"
  printf 'POST /2018-06-01/runtime/invocation/%s/response HTTP/1.1\r\nHost: %s\r\nLambda-Runtime-Function-Response-Mode: streaming\r\nTransfer-Encoding: chunked\r\nTrailer: Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body\r\n\r\n' "$ID" "$HOST" >&3
  printf '5\r\nhello\r\n' >&3
  sleep 0.2
  printf '0\r\nLambda-Runtime-Function-Error-Type: Function.LateFailure\r\nLambda-Runtime-Function-Error-Body: %s\r\n\r\n' "$ERR" >&3
  read -r STATUS <&3
  echo "trailers $STATUS" | tr -d '\r' >> "$OUT"
  exec 3>&-
done
"#,
            out = out.display()
        ),
    )
}

#[test]
fn error_trailers_after_the_first_byte_reach_the_client() {
    let dir = TempDir::new("trailers");
    let boot = trailer_bootstrap(&dir);
    let r = Rapid::builder().bootstrap(&boot).start();

    // Event-stream endpoint: the bytes, then InvokeComplete with the error.
    let s = rapid_tests::stream(
        r.invoke,
        "/2021-11-15/functions/function/response-streaming-invocations",
        b"{}",
        None,
    );
    assert_eq!(s.status, 200);
    let body = s.body();
    let text = String::from_utf8_lossy(&body);
    assert!(text.contains("hello"), "{text:?}");
    assert!(text.contains("InvokeComplete"), "{text:?}");
    assert!(text.contains("Function.LateFailure"), "{text:?}");
    assert!(text.contains("failed after the first byte"), "{text:?}");

    // Classic endpoint: the bytes, then not a clean success — either the
    // error as trailers or a cut body.
    let s = rapid_tests::stream(
        r.invoke,
        "/2015-03-31/functions/function/invocations",
        b"{}",
        None,
    );
    assert_eq!(s.status, 200);
    assert_eq!(String::from_utf8_lossy(&s.body()), "hello");
    let trailer = s
        .trailers
        .iter()
        .find(|(k, _)| k == "lambda-runtime-function-error-type");
    assert!(
        s.end.is_err() || trailer.is_some_and(|(_, v)| v == "Function.LateFailure"),
        "an error after the first byte must not end as a clean success: {:?} {:?}",
        s.end,
        s.trailers
    );
    let lines = recorded(&dir, 2);
    assert!(
        lines.iter().all(|l| l.starts_with("trailers HTTP/1.1 202")),
        "{lines:?}"
    );
}
