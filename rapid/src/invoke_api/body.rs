//! Bodies of Invoke API answers: whole, streamed raw, or streamed as AWS
//! event-stream messages.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use fatalerror::ErrorType;
use http_body::{Body, Frame};
use runtime_api::StreamItem;
use tokio::sync::mpsc;

use crate::eventstream::{self, InvokeComplete};

/// The body of an Invoke API answer.
pub enum InvokeBody {
    /// Whole (possibly empty).
    Full(Option<Bytes>),
    /// The runtime's chunks as they arrive (the classic invocations endpoint).
    Stream(mpsc::Receiver<StreamItem>),
    /// The runtime's chunks as `PayloadChunk` events, then `InvokeComplete`.
    EventStream(EventStream),
    /// A body followed by the invoke's typed result as the HTTP trailer
    /// `Rapid-Invoke-Result` (control API; sent when the client accepts trailers).
    WithResult(
        Box<InvokeBody>,
        Option<tokio::sync::oneshot::Receiver<interop::InvokeResult>>,
    ),
}

impl Default for InvokeBody {
    fn default() -> Self {
        InvokeBody::Full(None)
    }
}

/// A streamed response that failed after it started: the connection is cut so
/// the invoker sees an error instead of a silently truncated success.
#[derive(Debug, thiserror::Error)]
#[error("{0}: {1}")]
pub struct StreamFailed(pub ErrorType, pub String);

/// Source of an event-stream body.
pub enum EventStream {
    /// Chunks still to come.
    Live(mpsc::Receiver<StreamItem>),
    /// Pre-built messages (a buffered response or an error), sent in order.
    Ready(std::collections::VecDeque<Bytes>),
}

impl EventStream {
    /// A whole buffered body as one chunk plus the completion.
    pub fn buffered(body: Bytes) -> Self {
        let mut q = std::collections::VecDeque::new();
        if !body.is_empty() {
            q.push_back(eventstream::payload_chunk(&body));
        }
        q.push_back(eventstream::invoke_complete(&InvokeComplete::default()));
        EventStream::Ready(q)
    }

    /// An invoke that failed before any byte: only the completion with the error.
    pub fn failed(error_type: &str, details: &str) -> Self {
        let mut q = std::collections::VecDeque::new();
        q.push_back(eventstream::invoke_complete(&InvokeComplete {
            error_code: Some(error_type),
            error_details: Some(details),
            log_result: None,
        }));
        EventStream::Ready(q)
    }
}

fn complete_with(e: &interop::FunctionError) -> Bytes {
    eventstream::invoke_complete(&InvokeComplete {
        error_code: Some(e.error_type.as_str()),
        error_details: Some(&e.error_message),
        log_result: None,
    })
}

impl Body for InvokeBody {
    type Data = Bytes;
    type Error = StreamFailed;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, StreamFailed>>> {
        match &mut *self {
            InvokeBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            InvokeBody::Stream(rx) => match rx.poll_recv(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(Some(StreamItem::Chunk(c))) => Poll::Ready(Some(Ok(Frame::data(c)))),
                Poll::Ready(Some(StreamItem::End)) => {
                    rx.close();
                    Poll::Ready(None)
                }
                Poll::Ready(Some(StreamItem::Error(e))) => {
                    tracing::warn!(error_type = %e.error_type, "streamed response failed: {}", e.error_message);
                    Poll::Ready(Some(Err(StreamFailed(e.error_type, e.error_message))))
                }
                Poll::Ready(None) => Poll::Ready(Some(Err(StreamFailed(
                    ErrorType::RuntimeTruncatedResponse,
                    "the response stream ended before it was complete".into(),
                )))),
            },
            InvokeBody::WithResult(inner, result) => {
                if !inner.is_end_stream() {
                    match Pin::new(inner.as_mut()).poll_frame(cx) {
                        Poll::Ready(None) => **inner = InvokeBody::Full(None),
                        other => return other,
                    }
                }
                let Some(rx) = result.as_mut() else {
                    return Poll::Ready(None);
                };
                match Pin::new(rx).poll(cx) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(r) => {
                        *result = None;
                        let json = r.ok().and_then(|r| serde_json::to_string(&r).ok());
                        match json.and_then(|j| http::HeaderValue::from_str(&j).ok()) {
                            Some(v) => {
                                let mut trailers = http::HeaderMap::new();
                                trailers.insert("rapid-invoke-result", v);
                                Poll::Ready(Some(Ok(Frame::trailers(trailers))))
                            }
                            None => Poll::Ready(None),
                        }
                    }
                }
            }
            InvokeBody::EventStream(es) => match es {
                EventStream::Ready(q) => Poll::Ready(q.pop_front().map(|m| Ok(Frame::data(m)))),
                EventStream::Live(rx) => match rx.poll_recv(cx) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(Some(StreamItem::Chunk(c))) => {
                        Poll::Ready(Some(Ok(Frame::data(eventstream::payload_chunk(&c)))))
                    }
                    Poll::Ready(Some(StreamItem::End)) => {
                        let done = eventstream::invoke_complete(&InvokeComplete::default());
                        *es = EventStream::Ready(Default::default());
                        Poll::Ready(Some(Ok(Frame::data(done))))
                    }
                    Poll::Ready(Some(StreamItem::Error(e))) => {
                        tracing::warn!(error_type = %e.error_type, "streamed response failed: {}", e.error_message);
                        let done = complete_with(&e);
                        *es = EventStream::Ready(Default::default());
                        Poll::Ready(Some(Ok(Frame::data(done))))
                    }
                    Poll::Ready(None) => {
                        let done = complete_with(&interop::FunctionError::new(
                            ErrorType::RuntimeTruncatedResponse,
                            "the response stream ended before it was complete",
                        ));
                        *es = EventStream::Ready(Default::default());
                        Poll::Ready(Some(Ok(Frame::data(done))))
                    }
                },
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            InvokeBody::Full(None) => true,
            InvokeBody::EventStream(EventStream::Ready(q)) => q.is_empty(),
            _ => false,
        }
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match self {
            InvokeBody::Full(Some(b)) => http_body::SizeHint::with_exact(b.len() as u64),
            InvokeBody::Full(None) => http_body::SizeHint::with_exact(0),
            _ => http_body::SizeHint::default(),
        }
    }
}

/// An answer's body that holds its place in the Invoke API's count of
/// answers being written (so rapid can let them finish before it exits).
pub struct TrackedBody {
    body: InvokeBody,
    _held: crate::gauge::Held,
}

impl TrackedBody {
    /// Track `body` in `inflight`.
    pub fn new(body: InvokeBody, inflight: &std::sync::Arc<crate::gauge::Gauge>) -> Self {
        TrackedBody {
            body,
            _held: inflight.enter().0,
        }
    }
}

impl Body for TrackedBody {
    type Data = Bytes;
    type Error = StreamFailed;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, StreamFailed>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}
