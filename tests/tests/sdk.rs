//! The real AWS SDK for Rust (`aws-sdk-lambda`) against the real binary: an
//! endpoint URL on loopback, static test credentials, an explicit region, no
//! retries. Every answer is parsed the way a user's code would see it — typed
//! errors included.

#![allow(clippy::unwrap_used)] // tests fail loudly on unexpected values

use std::time::Duration;

use aws_sdk_lambda::config::http::HttpResponse;
use aws_sdk_lambda::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_lambda::error::ProvideErrorMetadata;
use aws_sdk_lambda::operation::invoke::InvokeError;
use aws_sdk_lambda::operation::RequestId;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{InvocationType, InvokeWithResponseStreamResponseEvent, LogType};
use aws_sdk_lambda::Client;
use base64::Engine as _;
use rapid_tests::Rapid;
use serde_json::{json, Value};

const FX: &str = env!("CARGO_BIN_EXE_fx-lambda");
const FX_STREAM: &str = env!("CARGO_BIN_EXE_fx-stream");
const ARN: &str = "arn:aws:lambda:us-east-1:012345678912:function:test_function";

/// A client as a user would point it at rapid.
fn client(r: &Rapid) -> Client {
    let conf = aws_sdk_lambda::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(format!("http://{}", r.invoke))
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            "AKIDRAPIDTEST",
            "secret",
            None,
            None,
            "test",
        ))
        .retry_config(aws_sdk_lambda::config::retry::RetryConfig::disabled())
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .build();
    Client::from_conf(conf)
}

fn rapid() -> Rapid {
    Rapid::builder().bootstrap(FX).start()
}

fn payload(v: &Value) -> Blob {
    Blob::new(serde_json::to_vec(v).unwrap())
}

fn json_of(b: Option<&Blob>) -> Value {
    serde_json::from_slice(b.unwrap().as_ref()).unwrap()
}

#[tokio::test]
async fn invoke_round_trip_and_function_error() {
    let r = rapid();
    let c = client(&r);
    let out = c
        .invoke()
        .function_name("function")
        .payload(payload(&json!({"hello": "sdk"})))
        .send()
        .await
        .unwrap();
    assert_eq!(out.status_code(), 200);
    assert_eq!(json_of(out.payload()), json!({"hello": "sdk"}));
    assert_eq!(out.executed_version(), Some("$LATEST"));
    assert_eq!(out.function_error(), None);
    assert!(out.request_id().is_some_and(|id| id.len() == 36));

    let out = c
        .invoke()
        .function_name("test_function")
        .payload(payload(&json!({"error": "it broke"})))
        .send()
        .await
        .unwrap();
    assert_eq!(out.status_code(), 200);
    assert_eq!(out.function_error(), Some("Unhandled"));
    let doc = json_of(out.payload());
    assert_eq!(doc["errorMessage"], "it broke");
    assert!(doc["errorType"].as_str().is_some_and(|t| !t.is_empty()));
}

#[tokio::test]
async fn event_dry_run_log_tail_and_client_context() {
    let r = rapid();
    let c = client(&r);
    let out = c
        .invoke()
        .function_name("function")
        .invocation_type(InvocationType::Event)
        .payload(payload(&json!({"print": "event-ran"})))
        .send()
        .await
        .unwrap();
    assert_eq!(out.status_code(), 202);
    assert!(r.wait_stdout("event-ran", Duration::from_secs(10)));

    let out = c
        .invoke()
        .function_name("function")
        .invocation_type(InvocationType::DryRun)
        .payload(payload(&json!({"print": "dry-run-ran"})))
        .send()
        .await
        .unwrap();
    assert_eq!(out.status_code(), 204);

    let out = c
        .invoke()
        .function_name("function")
        .log_type(LogType::Tail)
        .payload(payload(&json!({"print": "in-the-tail"})))
        .send()
        .await
        .unwrap();
    let tail = base64::engine::general_purpose::STANDARD
        .decode(out.log_result().unwrap())
        .unwrap();
    let tail = String::from_utf8(tail).unwrap();
    assert!(tail.contains("in-the-tail"), "{tail}");
    assert!(tail.contains("REPORT RequestId:"), "{tail}");
    assert!(!r.stdout().contains("dry-run-ran"), "DryRun ran nothing");

    let ctx = base64::engine::general_purpose::STANDARD
        .encode(r#"{"custom":{"who":"sdk"},"env":{"e":"1"}}"#);
    let out = c
        .invoke()
        .function_name("function")
        .client_context(ctx)
        .payload(payload(&json!({"context": true})))
        .send()
        .await
        .unwrap();
    let v = json_of(out.payload());
    assert_eq!(v["clientContext"]["custom"]["who"], "sdk", "{v}");
}

/// Invoke `name` (with `qualifier`) and return the ARN the runtime saw.
async fn invoked_arn(c: &Client, name: &str, qualifier: Option<&str>) -> (String, String) {
    let out = c
        .invoke()
        .function_name(name)
        .set_qualifier(qualifier.map(str::to_owned))
        .payload(payload(&json!({"context": true})))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{name} {qualifier:?}: {e:?}"));
    assert_eq!(out.function_error(), None);
    let v = json_of(out.payload());
    (
        v["arn"].as_str().unwrap().to_owned(),
        out.executed_version().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn every_name_qualifier_and_arn_form() {
    let r = Rapid::builder()
        .bootstrap(FX)
        .arg("--function-version")
        .arg("3")
        .start();
    let c = client(&r);
    let latest = format!("{ARN}:$LATEST");
    let three = format!("{ARN}:3");
    for (name, qualifier, expect) in [
        ("function", None, ARN),
        ("test_function", None, ARN),
        ("test_function:$LATEST", None, latest.as_str()),
        ("test_function:3", None, three.as_str()),
        ("test_function", Some("$LATEST"), latest.as_str()),
        ("test_function", Some("3"), three.as_str()),
        ("test_function:3", Some("3"), three.as_str()),
        (ARN, None, ARN),
        (latest.as_str(), None, latest.as_str()),
        (three.as_str(), None, three.as_str()),
        ("012345678912:function:test_function", None, ARN),
        (
            "012345678912:function:test_function:3",
            None,
            three.as_str(),
        ),
        ("function:test_function", None, ARN),
    ] {
        let (arn, version) = invoked_arn(&c, name, qualifier).await;
        assert_eq!(arn, expect, "{name} {qualifier:?}");
        assert_eq!(version, "3", "the version that ran: {name}");
    }

    // rapid has no aliases: any other qualifier is AWS's 404.
    for (name, qualifier, missing) in [
        ("test_function:live", None, format!("{ARN}:live")),
        ("test_function", Some("4"), format!("{ARN}:4")),
        (
            "arn:aws:lambda:us-east-1:012345678912:function:other",
            None,
            "arn:aws:lambda:us-east-1:012345678912:function:other:$LATEST".to_owned(),
        ),
        (
            "111111111111:function:test_function",
            None,
            "arn:aws:lambda:us-east-1:111111111111:function:test_function:$LATEST".to_owned(),
        ),
    ] {
        let err = c
            .invoke()
            .function_name(name)
            .set_qualifier(qualifier.map(str::to_owned))
            .send()
            .await
            .unwrap_err()
            .into_service_error();
        match err {
            InvokeError::ResourceNotFoundException(e) => {
                assert_eq!(
                    e.message(),
                    Some(format!("Function not found: {missing}").as_str())
                );
                assert_eq!(e.r#type(), Some("User"));
            }
            other => panic!("{name}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn unknown_function_is_a_typed_resource_not_found() {
    let r = rapid();
    let c = client(&r);
    let err = c.invoke().function_name("nope").send().await.unwrap_err();
    let raw = err.raw_response().unwrap();
    assert_eq!(raw.status().as_u16(), 404);
    let body: Value = serde_json::from_slice(raw.body().bytes().unwrap()).unwrap();
    // Both sets of fields: AWS's and rapid's own.
    assert_eq!(body["errorType"], "ResourceNotFoundException");
    assert_eq!(body["errorMessage"], body["Message"]);
    let err = err.into_service_error();
    assert!(err.request_id().is_some_and(|id| id.len() == 36), "{err:?}");
    match err {
        InvokeError::ResourceNotFoundException(e) => assert_eq!(
            e.message(),
            Some("Function not found: arn:aws:lambda:us-east-1:012345678912:function:nope:$LATEST")
        ),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn malformed_names_wrong_region_and_qualifier_mismatch() {
    let r = rapid();
    let c = client(&r);
    let err = c
        .invoke()
        .function_name("bad!name")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.raw_response().unwrap().status().as_u16(), 400);
    let err = err.into_service_error();
    // Not modeled for Invoke: the SDK keeps code and message.
    assert_eq!(err.code(), Some("ValidationException"));
    assert!(err.message().unwrap().starts_with(
        "1 validation error detected: Value 'bad!name' at 'functionName' failed to satisfy constraint: Member must satisfy regular expression pattern: (arn:(aws[a-zA-Z-]*)?:lambda:)?"
    ), "{err:?}");

    let err = c
        .invoke()
        .function_name("arn:aws:lambda:eu-west-1:012345678912:function:test_function")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    match err {
        InvokeError::ResourceNotFoundException(e) => assert_eq!(
            e.message(),
            Some("Functions from 'eu-west-1' are not reachable in this region ('us-east-1')")
        ),
        other => panic!("{other:?}"),
    }

    let err = c
        .invoke()
        .function_name("test_function:$LATEST")
        .qualifier("7")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    match err {
        InvokeError::InvalidParameterValueException(e) => assert_eq!(
            e.message(),
            Some("The derived qualifier from the function name does not match the specified qualifier.")
        ),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn bad_client_context_and_payloads_are_invalid_request_content() {
    let r = rapid();
    let c = client(&r);
    let invalid = |e: InvokeError| match e {
        InvokeError::InvalidRequestContentException(e) => e.message().unwrap().to_owned(),
        other => panic!("{other:?}"),
    };
    let e = c
        .invoke()
        .function_name("function")
        .client_context("not base64 at all!")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(invalid(e).starts_with("Client context must be a valid Base64-encoded JSON object"));

    // AWS takes up to 3,583 bytes of base64 in the header.
    let fits = base64::engine::general_purpose::STANDARD
        .encode(format!(r#"{{"custom":{{"k":"{}"}}}}"#, "a".repeat(2664)));
    assert_eq!(fits.len(), 3580);
    let out = c
        .invoke()
        .function_name("function")
        .client_context(fits)
        .payload(payload(&json!({"context": true})))
        .send()
        .await
        .unwrap();
    assert_eq!(
        json_of(out.payload())["clientContext"]["custom"]["k"]
            .as_str()
            .unwrap()
            .len(),
        2664
    );
    let over = base64::engine::general_purpose::STANDARD
        .encode(format!(r#"{{"custom":{{"k":"{}"}}}}"#, "a".repeat(2667)));
    assert_eq!(over.len(), 3584);
    let e = c
        .invoke()
        .function_name("function")
        .client_context(over)
        .payload(payload(&json!({"print": "over-sized-context-ran"})))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(invalid(e).contains("at most 3583 bytes"));

    for (kind, body) in [
        (InvocationType::RequestResponse, &b"not json"[..]),
        (InvocationType::Event, &b"{\"a\":"[..]),
        (InvocationType::RequestResponse, &[0x87, 0x99][..]),
    ] {
        let e = c
            .invoke()
            .function_name("function")
            .invocation_type(kind.clone())
            .payload(Blob::new(body))
            .send()
            .await
            .unwrap_err()
            .into_service_error();
        let m = invalid(e);
        assert!(
            m.starts_with("Could not parse request body into json: "),
            "{kind:?}: {m}"
        );
    }
    // Any JSON value is an event, and so is nothing.
    for body in [&b"\"a string\""[..], b"42", b"[1,2]", b"null", b""] {
        let out = c
            .invoke()
            .function_name("function")
            .payload(Blob::new(body))
            .send()
            .await
            .unwrap();
        assert_eq!(out.status_code(), 200, "{body:?}");
    }
    assert!(!r.stdout().contains("over-sized-context-ran"));
}

#[tokio::test]
async fn request_limits_are_aws_figures() {
    let r = rapid();
    let c = client(&r);
    // A JSON string of exactly n bytes.
    let event = |n: usize| Blob::new(format!("\"{}\"", "a".repeat(n - 2)));
    let out = c
        .invoke()
        .function_name("function")
        .payload(event(6_291_456))
        .send()
        .await
        .unwrap();
    assert_eq!(out.payload().unwrap().as_ref().len(), 6_291_456);
    let too_large = |e: aws_sdk_lambda::error::SdkError<InvokeError, HttpResponse>| {
        let status = e
            .raw_response()
            .unwrap_or_else(|| panic!("{e:?}"))
            .status()
            .as_u16();
        let e = e.into_service_error();
        (
            status,
            e.code().unwrap().to_owned(),
            e.message().unwrap().to_owned(),
        )
    };
    let e = c
        .invoke()
        .function_name("function")
        .payload(event(6_291_457))
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        too_large(e),
        (
            413,
            "RequestEntityTooLargeException".to_owned(),
            "Request must be smaller than 6291456 bytes for the InvokeFunction operation"
                .to_owned()
        )
    );
    let out = c
        .invoke()
        .function_name("function")
        .invocation_type(InvocationType::Event)
        .payload(event(1_048_576))
        .send()
        .await
        .unwrap();
    assert_eq!(out.status_code(), 202);
    let e = c
        .invoke()
        .function_name("function")
        .invocation_type(InvocationType::Event)
        .payload(event(1_048_577))
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        too_large(e),
        (
            413,
            "RequestEntityTooLargeException".to_owned(),
            "1048577 byte payload is too large for the Event invocation type (limit 1048576 bytes)"
                .to_owned()
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_is_a_typed_throttle() {
    let r = Rapid::builder()
        .bootstrap(FX)
        .arg("--max-queue")
        .arg("1")
        .start();
    let c = client(&r);
    let busy = {
        let c = c.clone();
        tokio::spawn(async move {
            c.invoke()
                .function_name("function")
                .payload(payload(&json!({"print": "busy-now", "sleep_ms": 2000})))
                .send()
                .await
        })
    };
    assert!(tokio::task::block_in_place(
        || r.wait_stdout("busy-now", Duration::from_secs(10))
    ));
    // One invoke runs, one may wait (--max-queue 1): of two more, one is refused.
    let (a, b) = tokio::join!(
        c.invoke().function_name("function").send(),
        c.invoke().function_name("function").send()
    );
    let (waited, err) = match (a, b) {
        (Ok(w), Err(e)) | (Err(e), Ok(w)) => (w, e),
        other => panic!("{other:?}"),
    };
    assert_eq!(waited.status_code(), 200);
    assert_eq!(err.raw_response().unwrap().status().as_u16(), 429);
    match err.into_service_error() {
        InvokeError::TooManyRequestsException(e) => {
            assert_eq!(
                e.reason().map(|r| r.as_str()),
                Some("ConcurrentInvocationLimitExceeded")
            );
            assert_eq!(e.retry_after_seconds(), Some("1"));
            assert!(e.message().unwrap().starts_with("Rate exceeded"));
        }
        other => panic!("{other:?}"),
    }
    let first = busy.await.unwrap().unwrap();
    assert_eq!(first.status_code(), 200);
}

/// Every event of a response stream, decoded by the SDK.
async fn stream_events(
    c: &Client,
    event: Value,
) -> (
    Vec<u8>,
    Option<aws_sdk_lambda::types::InvokeWithResponseStreamCompleteEvent>,
) {
    let mut out = c
        .invoke_with_response_stream()
        .function_name("function")
        .payload(payload(&event))
        .send()
        .await
        .unwrap();
    assert_eq!(out.status_code(), 200);
    let mut bytes = Vec::new();
    let mut complete = None;
    while let Some(ev) = out.event_stream.recv().await.unwrap() {
        match ev {
            InvokeWithResponseStreamResponseEvent::PayloadChunk(p) => {
                assert!(complete.is_none(), "a chunk after InvokeComplete");
                bytes.extend_from_slice(p.payload().unwrap().as_ref());
            }
            InvokeWithResponseStreamResponseEvent::InvokeComplete(done) => complete = Some(done),
            other => panic!("{other:?}"),
        }
    }
    (bytes, complete)
}

#[tokio::test]
async fn response_streaming_of_a_streaming_function() {
    let r = Rapid::builder().bootstrap(FX_STREAM).start();
    let c = client(&r);
    let (bytes, done) = stream_events(&c, json!({"chunks": 5, "size": 1000})).await;
    let expected: Vec<u8> = (0..5000).map(|i| (i % 251) as u8).collect();
    // lambda_runtime's prelude comes first, untouched (only function URLs strip it).
    let at = bytes.windows(8).position(|w| w == [0u8; 8]).unwrap();
    assert_eq!(&bytes[at + 8..], &expected[..]);
    let done = done.unwrap();
    assert_eq!(done.error_code(), None);
}

#[tokio::test]
async fn response_streaming_of_a_buffered_function_and_its_errors() {
    let r = rapid();
    let c = client(&r);
    let (bytes, done) = stream_events(&c, json!({"buffered": "yes"})).await;
    assert_eq!(
        serde_json::from_slice::<Value>(&bytes).unwrap(),
        json!({"buffered": "yes"})
    );
    assert_eq!(done.unwrap().error_code(), None);

    // The function's own error type, as the classic endpoint answers it.
    let classic = c
        .invoke()
        .function_name("function")
        .payload(payload(&json!({"error": "stream me"})))
        .send()
        .await
        .unwrap();
    let doc = json_of(classic.payload());
    let (bytes, done) = stream_events(&c, json!({"error": "stream me"})).await;
    assert!(bytes.is_empty());
    let done = done.unwrap();
    assert_eq!(done.error_code(), doc["errorType"].as_str());
    assert_ne!(done.error_code(), Some("Runtime.Unknown"));
    assert_eq!(done.error_details(), Some("stream me"));
}
