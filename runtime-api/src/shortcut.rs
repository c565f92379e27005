//! A router with its hottest requests taken before it.
//!
//! axum's `Router` clones its boxed route, boxes the handler's future and
//! decodes the path into a map of its own for every request. For the few
//! requests a server answers on every invoke, a path match in front of the
//! router and a direct call of the same handler cost a fraction of that;
//! everything else — other routes and methods, paths that need decoding,
//! every refusal of a route — goes through the router unchanged.

use std::convert::Infallible;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::response::Response;
use axum::Router;
use futures_util::future::{BoxFuture, Either};
use tower::Service;

/// A hot request's answer.
pub type Hot = BoxFuture<'static, Response>;

/// Where a request goes.
// The request is moved once per call; boxing it would cost every request an
// allocation, which is what this module saves.
#[allow(clippy::large_enum_variant)]
pub enum Picked {
    /// Answered here.
    Hot(Hot),
    /// Back to the router.
    Router(Request),
}

/// What picks the hot requests.
pub type Pick<S> = fn(&S, Request) -> Picked;

/// `router`, with the requests `pick` takes answered before it (over `state`).
#[derive(Clone)]
pub struct Shortcut<S> {
    state: S,
    pick: Pick<S>,
    router: Router,
}

impl<S> Shortcut<S> {
    /// The service.
    pub fn new(state: S, pick: Pick<S>, router: Router) -> Self {
        Shortcut {
            state,
            pick,
            router,
        }
    }
}

impl<S> Service<Request> for Shortcut<S> {
    type Response = Response;
    type Error = Infallible;
    type Future = Either<
        <Router as Service<Request>>::Future,
        futures_util::future::Map<Hot, fn(Response) -> Result<Response, Infallible>>,
    >;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request) -> Self::Future {
        use futures_util::FutureExt;
        match (self.pick)(&self.state, req) {
            Picked::Hot(hot) => {
                Either::Right(hot.map(Ok as fn(Response) -> Result<Response, Infallible>))
            }
            Picked::Router(req) => Either::Left(self.router.call(req)),
        }
    }
}
