//! inproc mode: a Rust handler linked into rapid (rapid used as a library).
//! The handler gets the whole request body and returns a whole response; it
//! runs in its own task, so a panic is a 500 and the exec timeout a 504 (the
//! handler's future is dropped).

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use fatalerror::ErrorType;
use http::{Request, Response};

use super::backend::{Backend, Call, CallResult};
use crate::sandbox::{Body, BoxFuture, InvokeError};

/// Largest request body handed to an in-process handler.
pub const MAX_BODY: usize = super::backend::MAX_BUFFERED_BODY;

/// A function served in-process.
pub trait Handler: Send + Sync + 'static {
    /// Answer one request.
    fn handle(&self, req: Request<Bytes>) -> BoxFuture<'static, Response<Bytes>>;
}

impl<F, Fut> Handler for F
where
    F: Fn(Request<Bytes>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<Bytes>> + Send + 'static,
{
    fn handle(&self, req: Request<Bytes>) -> BoxFuture<'static, Response<Bytes>> {
        Box::pin(self(req))
    }
}

/// The handler's task, aborted when the call is dropped (timeout, client gone).
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The inproc backend.
pub struct Inproc(pub Arc<dyn Handler>);

impl Backend for Inproc {
    fn call(&self, req: Request<Body>, call: Call) -> BoxFuture<'_, CallResult> {
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            let collected = tokio::select! {
                r = super::backend::read_body(body, MAX_BODY) => r,
                _ = call.expired() => return Err(call.timed_out()),
            };
            let bytes = collected?;
            let mut task = AbortOnDrop(tokio::spawn(
                self.0.handle(Request::from_parts(parts, bytes)),
            ));
            let joined = tokio::select! {
                r = &mut task.0 => r,
                _ = call.expired() => return Err(call.timed_out()),
            };
            match joined {
                Ok(r) => Ok(r.map(Body::from)),
                Err(e) => {
                    tracing::error!(error = %e, "the handler failed");
                    Err(InvokeError::function(
                        ErrorType::FunctionUnknown,
                        if e.is_panic() {
                            "the handler panicked".to_owned()
                        } else {
                            format!("the handler failed: {e}")
                        },
                    ))
                }
            }
        })
    }
}
