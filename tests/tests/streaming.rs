//! Response streaming end to end, with a streaming `lambda_runtime` function.
//! Event-stream frames are decoded with an independent decoder
//! (`aws-smithy-eventstream`, the one the AWS SDKs use).

#![allow(clippy::unwrap_used)] // tests fail loudly on unexpected values

use std::time::Duration;

use aws_smithy_eventstream::frame::read_message_from;
use aws_smithy_types::event_stream::Message;
use rapid_tests::{stream, Rapid};

const FX: &str = env!("CARGO_BIN_EXE_fx-stream");
const INVOKE: &str = "/2015-03-31/functions/function/invocations";
const STREAMING: &str = "/2021-11-15/functions/function/response-streaming-invocations";

/// lambda_runtime's http-integration-response prelude: JSON, then 8 NUL bytes.
fn split_prelude(body: &[u8]) -> (serde_json::Value, &[u8]) {
    let at = body
        .windows(8)
        .position(|w| w == [0u8; 8])
        .expect("prelude delimiter");
    let prelude = serde_json::from_slice(&body[..at]).expect("prelude JSON");
    (prelude, &body[at + 8..])
}

fn expected(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

fn header<'a>(m: &'a Message, name: &str) -> Option<&'a str> {
    m.headers()
        .iter()
        .find(|h| h.name().as_str() == name)
        .and_then(|h| h.value().as_string().ok())
        .map(|s| s.as_str())
}

/// Decode every message of an event-stream body.
fn decode(mut body: &[u8]) -> Vec<Message> {
    let mut out = Vec::new();
    while !body.is_empty() {
        out.push(read_message_from(&mut body).expect("valid event-stream message"));
    }
    out
}

#[test]
fn chunks_arrive_as_they_are_produced() {
    let r = Rapid::builder().bootstrap(FX).start();
    let s = stream(
        r.invoke,
        INVOKE,
        br#"{"chunks":4,"size":10,"delay_ms":250}"#,
        None,
    );
    assert_eq!(s.status, 200);
    assert!(s.end.is_ok(), "{:?}", s.end);
    let body = s.body();
    let (prelude, data) = split_prelude(&body);
    assert_eq!(
        prelude["statusCode"], 200,
        "the prelude passes through untouched"
    );
    assert_eq!(data, expected(40).as_slice());
    // Time to first byte is well before the end: the stream was not buffered.
    let first = s.pieces.first().unwrap().0;
    let last = s.pieces.last().unwrap().0;
    assert!(
        last.duration_since(first) >= Duration::from_millis(500),
        "{:?}",
        last.duration_since(first)
    );
    assert!(s.pieces.len() >= 4, "{} pieces", s.pieces.len());
}

#[test]
fn event_stream_frames_decode_with_the_sdk_decoder() {
    let r = Rapid::builder().bootstrap(FX).start();
    let s = stream(r.invoke, STREAMING, br#"{"chunks":3,"size":1000}"#, None);
    assert_eq!(s.status, 200);
    assert_eq!(
        s.header("content-type"),
        Some("application/vnd.amazon.eventstream")
    );
    assert!(s.header("x-amzn-requestid").is_some());
    let msgs = decode(&s.body());
    let (last, chunks) = msgs.split_last().unwrap();
    assert_eq!(header(last, ":event-type"), Some("InvokeComplete"));
    let done: serde_json::Value = serde_json::from_slice(last.payload()).unwrap();
    assert!(done.get("ErrorCode").is_none(), "{done}");
    let mut payload = Vec::new();
    for m in chunks {
        assert_eq!(header(m, ":event-type"), Some("PayloadChunk"));
        assert_eq!(header(m, ":message-type"), Some("event"));
        payload.extend_from_slice(m.payload());
    }
    let (_, data) = split_prelude(&payload);
    assert_eq!(data, expected(3000).as_slice());
}

#[test]
fn buffered_function_through_the_streaming_endpoint() {
    let r = Rapid::builder()
        .bootstrap(env!("CARGO_BIN_EXE_fx-lambda"))
        .start();
    let s = stream(r.invoke, STREAMING, br#"{"a":1}"#, None);
    let msgs = decode(&s.body());
    assert_eq!(msgs.len(), 2);
    assert_eq!(msgs[0].payload().as_ref(), br#"{"a":1}"#);
    assert_eq!(header(&msgs[1], ":event-type"), Some("InvokeComplete"));
    // A function error: InvokeComplete carries ErrorCode and ErrorDetails.
    let s = stream(r.invoke, STREAMING, br#"{"error":"bad thing"}"#, None);
    assert_eq!(s.header("x-amz-function-error"), Some("Unhandled"));
    let msgs = decode(&s.body());
    let done: serde_json::Value = serde_json::from_slice(msgs.last().unwrap().payload()).unwrap();
    assert!(done["ErrorCode"].is_string(), "{done}");
    assert!(
        done["ErrorDetails"].as_str().unwrap().contains("bad thing"),
        "{done}"
    );
}

#[test]
fn large_stream_arrives_intact() {
    let r = Rapid::builder().bootstrap(FX).start();
    // 100 MiB in 64 KiB chunks.
    let s = stream(r.invoke, INVOKE, br#"{"chunks":1600,"size":65536}"#, None);
    assert!(s.end.is_ok(), "{:?}", s.end);
    let body = s.body();
    let (_, data) = split_prelude(&body);
    assert_eq!(data.len(), 100 * 1024 * 1024);
    assert!(data == expected(data.len()).as_slice(), "content differs");
}

#[test]
fn mid_stream_error_reaches_the_client() {
    let r = Rapid::builder().bootstrap(FX).start();
    // Event-stream endpoint: the error is in InvokeComplete.
    let s = stream(
        r.invoke,
        STREAMING,
        br#"{"chunks":5,"size":10,"fail_after":2}"#,
        None,
    );
    let msgs = decode(&s.body());
    let done: serde_json::Value = serde_json::from_slice(msgs.last().unwrap().payload()).unwrap();
    assert_eq!(done["ErrorCode"], "Runtime.StreamError", "{done}");
    assert!(
        done["ErrorDetails"]
            .as_str()
            .unwrap()
            .contains("fixture failed mid-stream"),
        "{done}"
    );
    let data: Vec<u8> = msgs[..msgs.len() - 1]
        .iter()
        .flat_map(|m| m.payload().to_vec())
        .collect();
    let (_, data) = split_prelude(&data);
    assert_eq!(
        data,
        expected(20).as_slice(),
        "the bytes before the error, and not the error text"
    );
    // Classic endpoint: the body is cut instead of ending as a success.
    let s = stream(
        r.invoke,
        INVOKE,
        br#"{"chunks":5,"size":10,"fail_after":2}"#,
        None,
    );
    assert!(s.end.is_err(), "a failed stream must not end cleanly");
    // The sandbox is still usable.
    let s = stream(r.invoke, INVOKE, br#"{"chunks":1,"size":5}"#, None);
    assert!(s.end.is_ok());
}

#[test]
fn runtime_death_mid_stream_is_an_error_then_recovery() {
    let r = Rapid::builder().bootstrap(FX).start();
    let s = stream(
        r.invoke,
        STREAMING,
        br#"{"chunks":5,"size":10,"exit_after":2,"delay_ms":20}"#,
        None,
    );
    let msgs = decode(&s.body());
    let done: serde_json::Value = serde_json::from_slice(msgs.last().unwrap().payload()).unwrap();
    assert!(
        done["ErrorCode"].is_string(),
        "a dying runtime is an error: {done}"
    );
    let s = stream(
        r.invoke,
        INVOKE,
        br#"{"chunks":5,"size":10,"exit_after":2,"delay_ms":20}"#,
        None,
    );
    assert!(s.end.is_err(), "not a silently truncated success");
    let s = stream(r.invoke, INVOKE, br#"{"chunks":2,"size":3}"#, None);
    assert!(
        s.end.is_ok(),
        "a fresh runtime serves the next invoke: {:?}",
        s.end
    );
}

#[test]
fn client_disconnect_mid_stream_then_a_normal_invoke() {
    let r = Rapid::builder().bootstrap(FX).start();
    let s = stream(
        r.invoke,
        INVOKE,
        br#"{"chunks":40,"size":1024,"delay_ms":10}"#,
        Some(4096),
    );
    assert!(s.end.is_err());
    let s = stream(r.invoke, INVOKE, br#"{"chunks":3,"size":7}"#, None);
    assert!(s.end.is_ok(), "{:?}", s.end);
    let body = s.body();
    let (_, data) = split_prelude(&body);
    assert_eq!(data, expected(21).as_slice());
}

#[test]
fn stream_cap_cuts_the_stream() {
    let r = Rapid::builder()
        .bootstrap(FX)
        .arg("--stream-cap")
        .arg("100000")
        .start();
    let s = stream(r.invoke, STREAMING, br#"{"chunks":20,"size":10000}"#, None);
    let msgs = decode(&s.body());
    let done: serde_json::Value = serde_json::from_slice(msgs.last().unwrap().payload()).unwrap();
    assert_eq!(done["ErrorCode"], "Function.ResponseSizeTooLarge", "{done}");
}

#[test]
fn bandwidth_shaping_after_the_first_6_mib() {
    let r = Rapid::builder()
        .bootstrap(FX)
        .arg("--stream-shaping")
        .start();
    // 7 MiB: the first 6 MiB unthrottled, the last MiB at 2 MiB/s: ≥ ~0.5 s.
    let t = std::time::Instant::now();
    let s = stream(r.invoke, INVOKE, br#"{"chunks":112,"size":65536}"#, None);
    let took = t.elapsed();
    assert!(s.end.is_ok(), "{:?}", s.end);
    assert!(
        took >= Duration::from_millis(450),
        "shaping not applied: {took:?}"
    );
    // Without shaping the same stream is much faster.
    let plain = Rapid::builder().bootstrap(FX).start();
    let t = std::time::Instant::now();
    let s = stream(
        plain.invoke,
        INVOKE,
        br#"{"chunks":112,"size":65536}"#,
        None,
    );
    assert!(s.end.is_ok());
    assert!(t.elapsed() < took, "{:?} vs shaped {took:?}", t.elapsed());
}

#[test]
fn a_slow_client_slows_the_runtime_instead_of_filling_memory() {
    use std::io::{Read, Write};
    let r = Rapid::builder().bootstrap(FX).start();
    let rss = |pid: i32| -> u64 {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    let before = rss(r.pid());
    // 64 MiB requested; the client reads a little, then stalls for a second.
    let mut s = std::net::TcpStream::connect(r.invoke).unwrap();
    let body = br#"{"chunks":1024,"size":65536}"#;
    let head = format!(
        "POST {INVOKE} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut buf = vec![0u8; 256 * 1024];
    let mut got = s.read(&mut buf).unwrap();
    std::thread::sleep(Duration::from_secs(1));
    let during = rss(r.pid());
    assert!(
        during < before + 24 * 1024,
        "rapid buffered the stream for a stalled client: {before} kB -> {during} kB"
    );
    // Then it reads everything: nothing was lost.
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut tail: Vec<u8> = Vec::new();
    loop {
        let n = s.read(&mut buf).unwrap();
        got += n;
        // The chunked terminator may straddle two reads.
        tail.extend_from_slice(&buf[..n]);
        let keep = tail.len().saturating_sub(5);
        tail.drain(..keep);
        if n == 0 || tail.ends_with(b"0\r\n\r\n") {
            break;
        }
    }
    assert!(got > 64 * 1024 * 1024, "{got} bytes");
}
