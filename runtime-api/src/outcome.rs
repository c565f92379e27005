//! What an invoke produces for its invoker, handed from the Runtime API to the front.

use bytes::Bytes;
use fatalerror::ErrorType;
use interop::{ErrorInvokeResponse, FunctionError};
use tokio::sync::{mpsc, oneshot};

/// How many chunks of a streamed response may wait for a slow invoker before
/// the runtime's upload is paused (backpressure).
pub const STREAM_BUFFER_CHUNKS: usize = 16;

/// The result of one invoke, as the invoker receives it.
#[derive(Debug)]
pub enum InvokeOutcome {
    /// The runtime's response.
    Response(InvokeResponse),
    /// The function reported an error, or the sandbox failed the invoke.
    Error(ErrorInvokeResponse),
}

impl InvokeOutcome {
    /// An outcome built by rapid for a failure outside the function's control.
    pub fn failure(error: FunctionError) -> Self {
        InvokeOutcome::Error(ErrorInvokeResponse::from_error(error))
    }
}

/// A successful response.
#[derive(Debug)]
pub struct InvokeResponse {
    /// The runtime's `Content-Type`, if it sent one.
    pub content_type: Option<String>,
    /// The body.
    pub body: ResponseBody,
}

/// A response body: whole, or arriving chunk by chunk.
#[derive(Debug)]
pub enum ResponseBody {
    /// A buffered response (at most `MAX_PAYLOAD` bytes).
    Buffered(Bytes),
    /// A streamed response. The stream ends with `StreamItem::End` or
    /// `StreamItem::Error`; a stream that stops without either was cut off.
    Streaming(mpsc::Receiver<StreamItem>),
}

/// One item of a streamed response.
#[derive(Debug)]
pub enum StreamItem {
    /// Bytes of the body.
    Chunk(Bytes),
    /// The body is complete.
    End,
    /// The stream failed after it started (trailer error, runtime gone, cap hit).
    Error(FunctionError),
}

/// Where an invoke's outcome goes: the front that accepted the invoke.
pub type OutcomeSender = oneshot::Sender<InvokeOutcome>;

/// The failure of a response body that broke off.
pub(crate) fn truncated_error(detail: &str) -> FunctionError {
    FunctionError::new(
        ErrorType::RuntimeTruncatedResponse,
        format!("The runtime's response body was cut off: {detail}"),
    )
}
