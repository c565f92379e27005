//! Reading an invocation's event off its request body, within a limit.

use bytes::Bytes;
use http_body_util::BodyExt;

use super::{Body, InvokeError};

/// The event: the request body, at most `limit` bytes. A body that comes in
/// one piece (the Invoke API's) is taken as it is, without a copy.
pub async fn read_event(mut body: Body, limit: usize) -> Result<Bytes, InvokeError> {
    let too_large = || InvokeError::TooLarge { limit, size: None };
    let mut first: Option<Bytes> = None;
    let mut rest: Option<bytes::BytesMut> = None;
    while let Some(frame) = body.frame().await {
        let frame = frame
            .map_err(|e| InvokeError::BadRequest(format!("cannot read the request body: {e}")))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        match (&mut first, &mut rest) {
            (None, _) => first = Some(data),
            (Some(f), None) => {
                let mut buf = bytes::BytesMut::with_capacity(f.len() + data.len());
                buf.extend_from_slice(f);
                buf.extend_from_slice(&data);
                rest = Some(buf);
            }
            (Some(_), Some(buf)) => buf.extend_from_slice(&data),
        }
        let len = rest
            .as_ref()
            .map_or_else(|| first.as_ref().map_or(0, Bytes::len), |b| b.len());
        if len > limit {
            return Err(too_large());
        }
    }
    Ok(match (first, rest) {
        (_, Some(buf)) => buf.freeze(),
        (Some(f), None) => f,
        (None, None) => Bytes::new(),
    })
}
