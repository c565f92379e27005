//! The routes of the Runtime API, the Extensions API and the Telemetry/Logs
//! APIs, as one axum router. Unknown routes are 404 `NotFound`, known routes
//! called with another method 405 `MethodNotAllowed`, both with the JSON
//! error body every other refusal has.
//!
//! The two calls of every invoke are taken before the router ([`Shortcut`]).

use axum::extract::{Request, State};
use axum::response::IntoResponse;
use axum::routing::{get, post, put};
use axum::Router;
use http::{Method, Uri};

use crate::api::RuntimeApi;
use crate::error::ApiError;
use crate::handlers::InvocationId;
use crate::rendezvous::ExtensionErrorKind;
use crate::shortcut::{Picked, Shortcut};
use crate::subscription::SubscriptionApi;
use crate::{extension_handlers as ext, handlers as rt, restore_calls as restore};

const NEXT: &str = "/2018-06-01/runtime/invocation/next";
const INVOCATION: &str = "/2018-06-01/runtime/invocation/";

/// The service serving `api` (give it to [`crate::server::serve_with`]):
/// `GET …/invocation/next` and `POST …/invocation/{id}/response`, the two
/// calls of every invoke, go straight to their handlers (an id that needs
/// percent-decoding goes through the router).
pub fn router(api: RuntimeApi) -> Shortcut<RuntimeApi> {
    Shortcut::new(api.clone(), hot, routes(api))
}

fn hot(api: &RuntimeApi, req: Request) -> Picked {
    let path = req.uri().path();
    let api = State(api.clone());
    match *req.method() {
        Method::GET if path == NEXT => {
            Picked::Hot(Box::pin(async move { rt::next(api).await.into_response() }))
        }
        Method::POST => {
            let id = path
                .strip_prefix(INVOCATION)
                .and_then(|p| p.strip_suffix("/response"))
                .filter(|id| !id.is_empty() && !id.bytes().any(|b| b == b'/' || b == b'%'));
            match id.map(str::to_owned) {
                Some(id) => Picked::Hot(Box::pin(async move {
                    rt::response(api, InvocationId(id), req)
                        .await
                        .into_response()
                })),
                None => Picked::Router(req),
            }
        }
        _ => Picked::Router(req),
    }
}

/// Every route, as the router serves them.
fn routes(api: RuntimeApi) -> Router {
    Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(rt::next))
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            post(rt::response),
        )
        .route(
            "/2018-06-01/runtime/invocation/{id}/error",
            post(rt::invocation_error),
        )
        .route("/2018-06-01/runtime/init/error", post(rt::init_error))
        .route(
            "/2018-06-01/runtime/restore/next",
            get(restore::restore_next),
        )
        .route(
            "/2018-06-01/runtime/restore/error",
            post(restore::restore_error),
        )
        .route("/2021-04-23/credentials", get(restore::credentials))
        .route("/2020-01-01/extension/register", post(ext::register))
        .route("/2020-01-01/extension/event/next", get(ext::next))
        .route(
            "/2020-01-01/extension/init/error",
            post(|api, req| ext::error(api, req, ExtensionErrorKind::Init)),
        )
        .route(
            "/2020-01-01/extension/exit/error",
            post(|api, req| ext::error(api, req, ExtensionErrorKind::Exit)),
        )
        .route(
            "/2022-07-01/telemetry",
            put(|api, req| ext::subscribe(api, req, SubscriptionApi::Telemetry)),
        )
        .route(
            "/2020-08-15/logs",
            put(|api, req| ext::subscribe(api, req, SubscriptionApi::Logs)),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(api)
}

async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::not_found(&method, uri.path())
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::method_not_allowed(&method, uri.path())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt;

    async fn status(method: Method, path: &str) -> u16 {
        let (r, _events) = crate::Rendezvous::new();
        let app = router(RuntimeApi::new(r, crate::ApiConfig::default()));
        let req = http::Request::builder()
            .method(method)
            .uri(path)
            .body(axum::body::Body::empty())
            .unwrap_or_default();
        match app.oneshot(req).await {
            Ok(resp) => resp.status().as_u16(),
            Err(never) => match never {},
        }
    }

    #[tokio::test]
    async fn routing_refusals() {
        let get = Method::GET;
        let post = Method::POST;
        for (m, p, want) in [
            // Route exists, wrong method.
            (&post, "/2018-06-01/runtime/invocation/next", 405),
            (&get, "/2018-06-01/runtime/invocation/x/response", 405),
            (&get, "/2018-06-01/runtime/init/error", 405),
            (&get, "/2020-01-01/extension/register", 405),
            (&post, "/2020-01-01/extension/event/next", 405),
            // No such route.
            (&get, "/", 404),
            (&post, "/2018-06-01/runtime/invocation//response", 404),
            (&post, "/2018-06-01/runtime/invocation/a/b/response", 404),
            (&post, "/2018-06-01/runtime/invocation/a/other", 404),
            (&get, "/2018-06-01/runtime/unknown", 404),
            (&get, "/2020-01-01/extension/other", 404),
            // Routes that reach their handler: an unknown id, no init caching.
            (&post, "/2018-06-01/runtime/invocation/abc-1/response", 400),
            (&post, "/2018-06-01/runtime/invocation/abc/error", 400),
            (&get, "/2018-06-01/runtime/restore/next", 404),
            (&get, "/2021-04-23/credentials", 404),
        ] {
            assert_eq!(status(m.clone(), p).await, want, "{m} {p}");
        }
    }
}
