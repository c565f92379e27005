//! AWS event-stream framing, as `InvokeWithResponseStream` reads it.
//!
//! A message is
//!
//! ```text
//! total length u32 | headers length u32 | prelude CRC32 u32 | headers | payload | message CRC32 u32
//! ```
//!
//! (all big-endian; CRC32 is IEEE; the message CRC covers everything before it).
//! A header is `name length u8 | name | type u8 | value`; rapid only writes
//! string headers (type 7: `u16 length | bytes`).

use bytes::{BufMut, Bytes, BytesMut};
use serde::Serialize;

const PRELUDE_LEN: usize = 12;
const CRC_LEN: usize = 4;
const TYPE_STRING: u8 = 7;

/// The longest header name the format allows.
#[cfg_attr(not(feature = "fuzzing"), allow(dead_code))] // checked encoding: fuzz targets and tests
pub const MAX_HEADER_NAME: usize = 255;
/// The longest string header value decoders accept (`i16::MAX`, as the CRT,
/// Java, Go and Rust SDKs read it, though the length field is a `u16`).
#[cfg_attr(not(feature = "fuzzing"), allow(dead_code))] // checked encoding: fuzz targets and tests
pub const MAX_HEADER_VALUE: usize = i16::MAX as usize;

/// A message the format cannot carry.
#[cfg_attr(not(feature = "fuzzing"), allow(dead_code))] // checked encoding: fuzz targets and tests
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// A header name past 255 bytes.
    #[error("event-stream header name of {0} bytes (at most {MAX_HEADER_NAME})")]
    NameTooLong(usize),
    /// A header value past 32,767 bytes.
    #[error("event-stream header value of {0} bytes (at most {MAX_HEADER_VALUE})")]
    ValueTooLong(usize),
    /// A message whose length does not fit the prelude's `u32`.
    #[error("event-stream message of {0} bytes does not fit its length field")]
    TooLarge(usize),
}

/// Encode one message with string headers, refusing what the format cannot carry.
#[cfg_attr(not(feature = "fuzzing"), allow(dead_code))] // checked encoding: fuzz targets and tests
pub fn encode(headers: &[(&str, &str)], payload: &[u8]) -> Result<Bytes, FrameError> {
    for (name, value) in headers {
        if name.len() > MAX_HEADER_NAME {
            return Err(FrameError::NameTooLong(name.len()));
        }
        if value.len() > MAX_HEADER_VALUE {
            return Err(FrameError::ValueTooLong(value.len()));
        }
    }
    let total = PRELUDE_LEN + headers_len(headers) + payload.len() + CRC_LEN;
    if u32::try_from(total).is_err() {
        return Err(FrameError::TooLarge(total));
    }
    Ok(frame(headers, payload))
}

fn headers_len(headers: &[(&str, &str)]) -> usize {
    headers
        .iter()
        .map(|(n, v)| 1 + n.len() + 1 + 2 + v.len())
        .sum()
}

/// Write one message; the headers are within bounds (rapid's own, constant).
fn frame(headers: &[(&str, &str)], payload: &[u8]) -> Bytes {
    let headers_len = headers_len(headers);
    let total = PRELUDE_LEN + headers_len + payload.len() + CRC_LEN;
    let mut buf = BytesMut::with_capacity(total);
    buf.put_u32(total as u32);
    buf.put_u32(headers_len as u32);
    let prelude_crc = crc32fast::hash(&buf[..8]);
    buf.put_u32(prelude_crc);
    for (name, value) in headers {
        buf.put_u8(name.len() as u8);
        buf.put_slice(name.as_bytes());
        buf.put_u8(TYPE_STRING);
        buf.put_u16(value.len() as u16);
        buf.put_slice(value.as_bytes());
    }
    buf.put_slice(payload);
    let crc = crc32fast::hash(&buf);
    buf.put_u32(crc);
    buf.freeze()
}

/// A `PayloadChunk` event carrying response bytes.
pub fn payload_chunk(bytes: &[u8]) -> Bytes {
    frame(
        &[
            (":event-type", "PayloadChunk"),
            (":content-type", "application/octet-stream"),
            (":message-type", "event"),
        ],
        bytes,
    )
}

/// The body of the final `InvokeComplete` event.
#[derive(Debug, Default, Serialize)]
pub struct InvokeComplete<'a> {
    /// The error type, when the invoke failed.
    #[serde(rename = "ErrorCode", skip_serializing_if = "Option::is_none")]
    pub error_code: Option<&'a str>,
    /// The error message or body, when the invoke failed.
    #[serde(rename = "ErrorDetails", skip_serializing_if = "Option::is_none")]
    pub error_details: Option<&'a str>,
    /// Base64 log tail, when asked for.
    #[serde(rename = "LogResult", skip_serializing_if = "Option::is_none")]
    pub log_result: Option<&'a str>,
}

/// The `InvokeComplete` event that ends every stream.
pub fn invoke_complete(body: &InvokeComplete<'_>) -> Bytes {
    let json = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    frame(
        &[
            (":event-type", "InvokeComplete"),
            (":content-type", "application/json"),
            (":message-type", "event"),
        ],
        &json,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A known-good frame: an empty message with no headers and no payload is
    /// 16 bytes: `00000010 00000000 05c248eb 7d98c8ff` (the AWS test vector).
    #[test]
    fn empty_message_layout() {
        let m = frame(&[], b"");
        assert_eq!(m.len(), 16);
        assert_eq!(&m[..8], &[0, 0, 0, 16, 0, 0, 0, 0]);
        assert_eq!(&m[8..12], &0x05c2_48ebu32.to_be_bytes());
        assert_eq!(&m[12..16], &0x7d98_c8ffu32.to_be_bytes());
    }

    #[test]
    fn header_and_payload_layout() {
        let m = encode(&[("a", "bc")], b"xyz").expect("within bounds");
        // prelude 12 + header (1+1+1+2+2 = 7) + payload 3 + crc 4
        assert_eq!(m.len(), 26);
        assert_eq!(u32::from_be_bytes([m[0], m[1], m[2], m[3]]), 26);
        assert_eq!(u32::from_be_bytes([m[4], m[5], m[6], m[7]]), 7);
        assert_eq!(&m[12..19], &[1, b'a', 7, 0, 2, b'b', b'c']);
        assert_eq!(&m[19..22], b"xyz");
        assert_eq!(&m[22..], &crc32fast::hash(&m[..22]).to_be_bytes());
    }

    /// What the `eventstream` fuzz target's round trip requires: a header
    /// past the format's bounds was written with a truncated length (a
    /// corrupt frame); it is refused.
    #[test]
    fn out_of_bounds_headers_are_refused() {
        let long_name = "n".repeat(256);
        assert_eq!(
            encode(&[(&long_name, "v")], b""),
            Err(FrameError::NameTooLong(256))
        );
        let long_value = "v".repeat(MAX_HEADER_VALUE + 1);
        assert_eq!(
            encode(&[("n", &long_value)], b""),
            Err(FrameError::ValueTooLong(MAX_HEADER_VALUE + 1))
        );
        assert!(encode(&[(&"n".repeat(255), &"v".repeat(MAX_HEADER_VALUE))], b"").is_ok());
    }

    #[test]
    fn invoke_complete_body() {
        let m = invoke_complete(&InvokeComplete {
            error_code: Some("Sandbox.Timedout"),
            error_details: Some("late"),
            log_result: None,
        });
        let text = String::from_utf8_lossy(&m);
        assert!(text.contains("InvokeComplete"));
        assert!(text.contains("{\"ErrorCode\":\"Sandbox.Timedout\",\"ErrorDetails\":\"late\"}"));
        let ok = invoke_complete(&InvokeComplete::default());
        assert!(String::from_utf8_lossy(&ok).contains("{}"));
    }
}
