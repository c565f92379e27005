//! Bodies of Invoke API answers: whole, streamed raw, or streamed as AWS
//! event-stream messages; and, for the control API, followed by the typed
//! result as a trailer.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use fatalerror::ErrorType;
use http_body::{Body as HttpBody, Frame};
use runtime_api::StreamItem;
use tokio::sync::{mpsc, oneshot};

use super::eventstream::{self, InvokeComplete};
use crate::sandbox::{Body, ReplyBody};

/// The body of an Invoke API answer.
pub enum InvokeBody {
    /// Whole (possibly empty).
    Full(Option<Bytes>),
    /// A Lambda runtime's chunks as they arrive (the classic endpoint).
    Chunks(mpsc::Receiver<StreamItem>),
    /// A process backend's body as it arrives (the classic endpoint).
    Http(Body),
    /// The answer as `PayloadChunk` events, then `InvokeComplete`.
    EventStream(EventStream),
    /// A body followed by the invoke's typed result as the HTTP trailer
    /// `Rapid-Invoke-Result` (control API; sent when the client accepts trailers).
    WithResult(
        Box<InvokeBody>,
        Option<oneshot::Receiver<interop::InvokeResult>>,
    ),
}

impl Default for InvokeBody {
    fn default() -> Self {
        InvokeBody::Full(None)
    }
}

impl InvokeBody {
    /// A reply's body, sent as it comes (the classic endpoint).
    pub fn raw(body: ReplyBody) -> InvokeBody {
        match body {
            ReplyBody::Full(b) => InvokeBody::Full(Some(b)),
            ReplyBody::Chunks(rx) => InvokeBody::Chunks(rx),
            ReplyBody::Http(b) => InvokeBody::Http(b),
        }
    }

    /// A reply's body as event-stream messages.
    pub fn events(body: ReplyBody) -> InvokeBody {
        InvokeBody::EventStream(match body {
            ReplyBody::Full(b) => EventStream::buffered(b),
            ReplyBody::Chunks(rx) => EventStream::Chunks(rx),
            ReplyBody::Http(b) => EventStream::Http(b),
        })
    }
}

/// A streamed response that failed after it started: the connection is cut so
/// the invoker sees an error instead of a silently truncated success.
#[derive(Debug, thiserror::Error)]
#[error("{0}: {1}")]
pub struct StreamFailed(pub ErrorType, pub String);

/// Source of an event-stream body.
pub enum EventStream {
    /// A Lambda runtime's chunks still to come.
    Chunks(mpsc::Receiver<StreamItem>),
    /// A process backend's body still to come.
    Http(Body),
    /// Pre-built messages (a buffered response or an error), sent in order.
    Ready(VecDeque<Bytes>),
}

impl EventStream {
    /// A whole buffered body as one chunk plus the completion.
    pub fn buffered(body: Bytes) -> Self {
        let mut q = VecDeque::new();
        if !body.is_empty() {
            q.push_back(eventstream::payload_chunk(&body));
        }
        q.push_back(eventstream::invoke_complete(&InvokeComplete::default()));
        EventStream::Ready(q)
    }

    /// An invoke that failed before any byte: only the completion with the error.
    pub fn failed(error_type: &str, details: &str) -> Self {
        let mut q = VecDeque::new();
        q.push_back(eventstream::invoke_complete(&InvokeComplete {
            error_code: Some(error_type),
            error_details: Some(details),
            log_result: None,
        }));
        EventStream::Ready(q)
    }

    /// The last message: `InvokeComplete`, with the error if any; nothing after it.
    fn complete(&mut self, error: Option<(&str, &str)>) -> Bytes {
        let done = eventstream::invoke_complete(&InvokeComplete {
            error_code: error.map(|e| e.0),
            error_details: error.map(|e| e.1),
            log_result: None,
        });
        *self = EventStream::Ready(VecDeque::new());
        done
    }

    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        match self {
            EventStream::Ready(q) => Poll::Ready(q.pop_front()),
            EventStream::Chunks(rx) => match rx.poll_recv(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(Some(StreamItem::Chunk(c))) => {
                    Poll::Ready(Some(eventstream::payload_chunk(&c)))
                }
                Poll::Ready(Some(StreamItem::End)) => Poll::Ready(Some(self.complete(None))),
                Poll::Ready(Some(StreamItem::Error(e))) => {
                    tracing::warn!(error_type = %e.error_type, "streamed response failed: {}", e.error_message);
                    let done = self.complete(Some((e.error_type.as_str(), &e.error_message)));
                    Poll::Ready(Some(done))
                }
                Poll::Ready(None) => Poll::Ready(Some(self.complete(Some((
                    ErrorType::RuntimeTruncatedResponse.as_str(),
                    "the response stream ended before it was complete",
                ))))),
            },
            EventStream::Http(body) => loop {
                match Pin::new(&mut *body).poll_frame(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Some(Ok(f))) => match f.into_data() {
                        Ok(d) if !d.is_empty() => {
                            return Poll::Ready(Some(eventstream::payload_chunk(&d)))
                        }
                        // Empty frames and trailers carry nothing for the invoker.
                        _ => continue,
                    },
                    Poll::Ready(Some(Err(e))) => {
                        let why = format!("the response failed: {e}");
                        tracing::warn!("{why}");
                        let kind = ErrorType::RuntimeTruncatedResponse;
                        return Poll::Ready(Some(self.complete(Some((kind.as_str(), &why)))));
                    }
                    Poll::Ready(None) => return Poll::Ready(Some(self.complete(None))),
                }
            },
        }
    }
}

impl HttpBody for InvokeBody {
    type Data = Bytes;
    type Error = StreamFailed;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, StreamFailed>>> {
        match &mut *self {
            InvokeBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            InvokeBody::Chunks(rx) => match rx.poll_recv(cx) {
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
            InvokeBody::Http(b) => match Pin::new(b).poll_frame(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Ready(Some(Ok(frame))) => Poll::Ready(Some(Ok(frame))),
                Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(StreamFailed(
                    ErrorType::RuntimeTruncatedResponse,
                    format!("the response failed: {e}"),
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
            InvokeBody::EventStream(es) => es.poll_next(cx).map(|m| m.map(|m| Ok(Frame::data(m)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            InvokeBody::Full(None) => true,
            InvokeBody::Http(b) => b.is_end_stream(),
            InvokeBody::EventStream(EventStream::Ready(q)) => q.is_empty(),
            _ => false,
        }
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match self {
            InvokeBody::Full(Some(b)) => http_body::SizeHint::with_exact(b.len() as u64),
            InvokeBody::Full(None) => http_body::SizeHint::with_exact(0),
            InvokeBody::Http(b) => b.size_hint(),
            _ => http_body::SizeHint::default(),
        }
    }
}
