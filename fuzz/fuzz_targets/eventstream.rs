//! The event-stream encoder round-trips through aws-smithy-eventstream's
//! decoder: the headers and payload rapid wrote are what a client reads.
#![no_main]

use arbitrary::Arbitrary;
use aws_smithy_eventstream::frame::{read_message_from, DecodedFrame, MessageFrameDecoder};
use aws_smithy_types::event_stream::HeaderValue;
use bytes::{Buf, BytesMut};
use libfuzzer_sys::fuzz_target;
use rapid::fuzzing::{
    encode, invoke_complete, payload_chunk, InvokeComplete, MAX_HEADER_NAME, MAX_HEADER_VALUE,
};

#[derive(Debug, Arbitrary)]
struct Input {
    headers: Vec<(String, String)>,
    payload: Vec<u8>,
    error: Option<(String, String)>,
    /// Split points for feeding the decoder in pieces.
    splits: Vec<u16>,
}

fn decode_all(mut bytes: BytesMut, splits: &[u16]) -> Vec<aws_smithy_types::event_stream::Message> {
    // Through the incremental decoder, in pieces.
    let mut decoder = MessageFrameDecoder::new();
    let mut out = Vec::new();
    let mut fed = BytesMut::new();
    let mut cuts = splits.iter();
    while !bytes.is_empty() {
        let n = cuts
            .next()
            .map_or(bytes.len(), |c| (*c as usize).clamp(1, bytes.len()));
        fed.extend_from_slice(&bytes.split_to(n));
        loop {
            match decoder.decode_frame(&mut fed) {
                Ok(DecodedFrame::Complete(m)) => out.push(m),
                Ok(DecodedFrame::Incomplete) => break,
                Err(e) => panic!("rapid wrote a frame the decoder refuses: {e}"),
            }
        }
    }
    assert!(fed.is_empty(), "bytes left over after the last frame");
    out
}

fuzz_target!(|input: Input| {
    let headers: Vec<(&str, &str)> = input
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let Ok(frame) = encode(&headers, &input.payload) else {
        // Refused only for a header past the format's bounds.
        assert!(headers
            .iter()
            .any(|(n, v)| n.len() > MAX_HEADER_NAME || v.len() > MAX_HEADER_VALUE));
        return;
    };
    // The one-shot reader agrees.
    let mut buf = &frame[..];
    let m = read_message_from(&mut buf).expect("one message");
    assert_eq!(buf.remaining(), 0);
    assert_eq!(&m.payload()[..], &input.payload[..]);
    assert_eq!(m.headers().len(), headers.len());
    for (h, (n, v)) in m.headers().iter().zip(&headers) {
        assert_eq!(h.name().as_str(), *n);
        match h.value() {
            HeaderValue::String(s) => assert_eq!(s.as_str(), *v),
            other => panic!("header {n} decoded as {other:?}"),
        }
    }
    // A stream as rapid writes it: chunks, then InvokeComplete.
    let mut stream = BytesMut::new();
    stream.extend_from_slice(&payload_chunk(&input.payload));
    stream.extend_from_slice(&frame);
    let complete = match &input.error {
        Some((code, details)) => InvokeComplete {
            error_code: Some(code),
            error_details: Some(details),
            log_result: None,
        },
        None => InvokeComplete::default(),
    };
    stream.extend_from_slice(&invoke_complete(&complete));
    let messages = decode_all(stream, &input.splits);
    assert_eq!(messages.len(), 3);
    assert_eq!(&messages[0].payload()[..], &input.payload[..]);
    let json: serde_json::Value =
        serde_json::from_slice(messages[2].payload()).expect("InvokeComplete is JSON");
    if let Some((code, details)) = &input.error {
        assert_eq!(json["ErrorCode"], code.as_str());
        assert_eq!(json["ErrorDetails"], details.as_str());
    } else {
        assert_eq!(json, serde_json::json!({}));
    }
});
