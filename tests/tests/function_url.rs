//! The function URL front (`--function-url-address`): the payload format 2.0
//! event a function sees, the response mapping, and a real `lambda_http` app
//! served buffered and streaming (`--function-url-invoke-mode RESPONSE_STREAM`).

#![allow(clippy::unwrap_used)] // tests fail loudly on unexpected values

use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine as _;
use rapid_tests::{free_port, request, stream, Rapid, Resp};

const FX: &str = env!("CARGO_BIN_EXE_fx-lambda");
const FX_HTTP: &str = env!("CARGO_BIN_EXE_fx-http");

fn with_url(bootstrap: &str, mode: &str, extra: &[&str]) -> (Rapid, SocketAddr) {
    let url: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut b = Rapid::builder()
        .bootstrap(bootstrap)
        .arg("--function-url-address")
        .arg(url.to_string())
        .arg("--function-url-invoke-mode")
        .arg(mode);
    if mode == "RESPONSE_STREAM" {
        b = b.env("FX_HTTP", "stream");
    }
    for a in extra {
        b = b.arg(*a);
    }
    // The Invoke API is bound last: once it listens, so does the URL front.
    (b.start(), url)
}

fn all<'a>(r: &'a Resp, name: &str) -> Vec<&'a str> {
    r.headers
        .iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .collect()
}

#[test]
fn the_event_is_payload_format_2() {
    // fx-lambda echoes its event; an object without statusCode is a 200 JSON body.
    let (_r, url) = with_url(FX, "BUFFERED", &[]);
    let resp = request(
        url,
        "GET",
        "/some/pa%2Fth?b=2&m=foo&m=%2Fbar",
        &[
            ("ExTrA-HeadEr", "With CapS"),
            ("X-Dup", "1"),
            ("X-Dup", "2"),
            ("Cookie", "c1=1; c2=2"),
            ("User-Agent", "rapid-test"),
        ],
        b"",
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.header("content-type"), Some("application/json"));
    assert!(resp.header("x-amzn-requestid").is_some());
    let e = resp.json();
    assert_eq!(e["version"], "2.0");
    assert_eq!(e["routeKey"], "$default");
    assert_eq!(e["rawPath"], "/some/pa%2Fth");
    assert_eq!(e["rawQueryString"], "b=2&m=foo&m=%2Fbar");
    assert_eq!(e["queryStringParameters"]["m"], "foo,/bar");
    assert_eq!(e["queryStringParameters"]["b"], "2");
    assert_eq!(e["cookies"], serde_json::json!(["c1=1", "c2=2"]));
    assert_eq!(e["headers"]["extra-header"], "With CapS");
    assert_eq!(e["headers"]["x-dup"], "1,2");
    assert!(e["headers"].get("cookie").is_none(), "{e}");
    assert!(e.get("httpMethod").is_none(), "no REST v1 field");
    assert!(e.get("body").is_none(), "no body, no field");
    assert_eq!(e["isBase64Encoded"], false);
    let c = &e["requestContext"];
    assert_eq!(c["http"]["method"], "GET");
    assert_eq!(c["http"]["path"], "/some/pa%2Fth");
    assert_eq!(c["http"]["protocol"], "HTTP/1.1");
    assert_eq!(c["http"]["sourceIp"], "127.0.0.1");
    assert_eq!(c["http"]["userAgent"], "rapid-test");
    assert_eq!(c["stage"], "$default");
    assert_eq!(c["routeKey"], "$default");
    assert_eq!(c["domainName"], "127.0.0.1");
    assert_eq!(c["domainPrefix"], "127");
    assert_eq!(c["requestId"], resp.header("x-amzn-requestid").unwrap());
    assert!(c["timeEpoch"].is_u64(), "a number: {c}");
    let time = c["time"].as_str().unwrap();
    assert_eq!(time.len(), "07/Sep/2021:22:50:22 +0000".len(), "{time}");
    assert!(time.ends_with(" +0000"));

    // Text bodies arrive as text, anything else as base64.
    let text = request(
        url,
        "POST",
        "/t",
        &[("Content-Type", "application/json")],
        b"{\"a\":1}",
    )
    .json();
    assert_eq!(
        (text["body"].as_str(), text["isBase64Encoded"].as_bool()),
        (Some("{\"a\":1}"), Some(false))
    );
    let bin = request(
        url,
        "POST",
        "/b",
        &[("Content-Type", "application/octet-stream")],
        &[0, 159, 146, 150],
    )
    .json();
    assert_eq!(bin["isBase64Encoded"], true);
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(bin["body"].as_str().unwrap())
            .unwrap(),
        vec![0, 159, 146, 150]
    );
    // /lambda-url/NAME picks the function and is stripped from rawPath.
    let named = request(url, "GET", "/lambda-url/test_function/x/y", &[], b"").json();
    assert_eq!(named["rawPath"], "/x/y");
}

#[test]
fn a_lambda_http_app_buffered() {
    let (_r, url) = with_url(FX_HTTP, "BUFFERED", &[]);
    let teapot = request(url, "GET", "/status/418", &[], b"");
    assert_eq!((teapot.status, teapot.text().as_str()), (418, "status 418"));
    assert_eq!(teapot.header("content-type"), Some("text/plain"));

    let cookies = request(url, "GET", "/cookies", &[], b"");
    assert_eq!(cookies.status, 201);
    assert_eq!(all(&cookies, "set-cookie"), vec!["a=1; Path=/", "b=2"]);
    assert_eq!(cookies.header("x-fixture"), Some("cookies"));
    assert_eq!(cookies.text(), "two cookies");

    let body: Vec<u8> = (0..=255u8).rev().collect();
    let echo = request(
        url,
        "PUT",
        "/echo?q=1&q=two%20words",
        &[
            ("Content-Type", "application/octet-stream"),
            ("Cookie", "k=v"),
            ("X-Custom", "yes"),
        ],
        &body,
    );
    assert_eq!(echo.status, 200, "{}", echo.text());
    let v = echo.json();
    assert_eq!(v["method"], "PUT");
    assert_eq!(v["path"], "/echo");
    assert_eq!(v["q"], serde_json::json!(["1", "two words"]));
    assert_eq!(v["headers"]["x-custom"], "yes");
    assert_eq!(v["headers"]["cookie"], "k=v");
    assert_eq!(v["bodyLen"], 256);
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(v["bodyBase64"].as_str().unwrap())
            .unwrap(),
        body
    );

    // A binary answer travels base64 and reaches the client as bytes.
    let png = request(url, "GET", "/binary", &[], b"");
    assert_eq!(png.header("content-type"), Some("image/png"));
    assert_eq!(png.body, (0..=255u8).collect::<Vec<u8>>());

    let oops = request(url, "GET", "/oops", &[], b"");
    assert_eq!(
        (oops.status, oops.text().as_str()),
        (500, "oops from the function")
    );

    // The handler's error is AWS's 502.
    let fail = request(url, "GET", "/fail", &[], b"");
    assert_eq!(
        (fail.status, fail.text().as_str()),
        (502, "Internal Server Error")
    );
    // And the app keeps serving.
    assert_eq!(request(url, "GET", "/status/200", &[], b"").status, 200);
}

#[test]
fn a_lambda_http_app_streaming() {
    let (_r, url) = with_url(FX_HTTP, "RESPONSE_STREAM", &[]);
    let s = stream(url, "/chunks", b"", None);
    assert_eq!(s.status, 200);
    assert_eq!(s.end, Ok(()));
    assert_eq!(s.header("content-type"), Some("text/plain"));
    assert_eq!(s.header("x-streamed"), Some("yes"));
    assert_eq!(
        String::from_utf8(s.body()).unwrap(),
        "chunk 0\nchunk 1\nchunk 2\nchunk 3\n"
    );
    // The chunks reached the client as they were produced (100 ms apart).
    assert!(s.pieces.len() >= 3, "{:?}", s.pieces.len());
    let spread = s.pieces.last().unwrap().0 - s.pieces.first().unwrap().0;
    assert!(spread >= Duration::from_millis(200), "{spread:?}");

    let cookies = request(url, "GET", "/cookies", &[], b"");
    assert_eq!(cookies.status, 201);
    assert_eq!(all(&cookies, "set-cookie"), vec!["a=1; Path=/", "b=2"]);
    assert_eq!(cookies.text(), "two cookies");
    let png = request(url, "GET", "/binary", &[], b"");
    assert_eq!(png.header("content-type"), Some("image/png"));
    assert_eq!(png.body, (0..=255u8).collect::<Vec<u8>>());
    let teapot = request(url, "GET", "/status/418", &[], b"");
    assert_eq!((teapot.status, teapot.text().as_str()), (418, "status 418"));
    let fail = request(url, "GET", "/fail", &[], b"");
    assert_eq!(
        (fail.status, fail.text().as_str()),
        (502, "Internal Server Error")
    );
}

#[test]
fn throttles_and_too_large_bodies() {
    let (r, url) = with_url(FX_HTTP, "BUFFERED", &["--max-queue", "1"]);
    let too_big = request(url, "POST", "/echo", &[], &vec![b'a'; 6 * 1024 * 1024 + 1]);
    assert_eq!(too_big.status, 413);
    assert!(too_big.json()["Message"].as_str().is_some());
    // One runs (its line is out), one may wait: of two more, one is refused.
    let running = std::thread::spawn(move || request(url, "GET", "/sleep", &[], b""));
    assert!(r.wait_stdout("sleeping", Duration::from_secs(10)));
    let calls: Vec<_> = (0..2)
        .map(|_| std::thread::spawn(move || request(url, "GET", "/status/200", &[], b"")))
        .collect();
    let mut answers: Vec<Resp> = calls.into_iter().map(|c| c.join().unwrap()).collect();
    answers.sort_by_key(|a| a.status);
    assert_eq!(answers[0].status, 200);
    assert_eq!(answers[1].status, 429);
    assert!(answers[1].json()["Message"]
        .as_str()
        .unwrap()
        .starts_with("Rate exceeded"));
    assert_eq!(answers[1].header("retry-after"), Some("1"));
    assert_eq!(running.join().unwrap().text(), "slept");
}
