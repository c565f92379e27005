//! What a sandbox answers an invocation with.

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use interop::InvokeResult;
use runtime_api::StreamItem;
use tokio::sync::{mpsc, oneshot};

use super::{Body, InvokeError, Outcome};

/// The reply to one invocation.
pub struct Reply {
    /// The function's answer, or why there is none.
    pub outcome: Result<Response, InvokeError>,
    /// The invocation's log tail, when the caller asked for it and it was kept.
    pub log_tail: Option<Bytes>,
    /// The typed result, once the invocation is over (Lambda sandboxes).
    pub result: Option<oneshot::Receiver<InvokeResult>>,
}

impl Reply {
    /// A reply with only an outcome.
    pub fn new(outcome: Result<Response, InvokeError>) -> Reply {
        Reply {
            outcome,
            log_tail: None,
            result: None,
        }
    }

    /// How it ended, for the counters.
    pub fn outcome_kind(&self) -> Outcome {
        match &self.outcome {
            Ok(r) if r.status.is_success() => Outcome::Success,
            Err(InvokeError::TimedOut(_)) => Outcome::Timeout,
            _ => Outcome::Error,
        }
    }
}

/// A successful answer.
pub struct Response {
    /// Its status (a Lambda runtime's answer is 200).
    pub status: StatusCode,
    /// Its headers (`Content-Type` among them).
    pub headers: HeaderMap,
    /// Its body.
    pub body: ReplyBody,
}

/// The body of an answer.
pub enum ReplyBody {
    /// Whole.
    Full(Bytes),
    /// A Lambda runtime's streamed response: chunks, then the end or a typed error.
    Chunks(mpsc::Receiver<StreamItem>),
    /// Any HTTP body (process backends).
    Http(Body),
}
