//! Routing of the Runtime API (`/2018-06-01/runtime/...`).

use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;

use crate::body::json_error;
use crate::error::ApiError;
use crate::rendezvous::Rendezvous;
use crate::{extension_handlers, handlers};

/// Settings of the Runtime API.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Largest streamed response, in bytes.
    pub stream_cap_bytes: u64,
    /// Lambda's bandwidth shaping of streamed responses: unlimited for the first
    /// 6 MiB, then 2 MiB/s. Off by default.
    pub stream_shaping: bool,
    /// Function name, for extension registration answers.
    pub function_name: String,
    /// Function version.
    pub function_version: String,
    /// Handler.
    pub handler: Option<String>,
    /// Account id (answered to extensions that accept the `accountId` feature).
    pub account_id: String,
    /// Init caching (SnapStart): `/restore/next` and `/restore/error` exist.
    pub init_caching: bool,
    /// Credentials served at `/2021-04-23/credentials` (init caching only).
    pub credentials: Option<Credentials>,
}

/// AWS credentials a snap-start runtime fetches after a restore, guarded by a
/// per-sandbox authorization token.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// `AWS_CONTAINER_AUTHORIZATION_TOKEN` the caller must present.
    pub authorization_token: String,
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
    /// Session token, if any.
    pub session_token: Option<String>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            stream_cap_bytes: 200 * 1024 * 1024,
            stream_shaping: false,
            function_name: "test_function".into(),
            function_version: "$LATEST".into(),
            handler: None,
            account_id: "012345678912".into(),
            init_caching: false,
            credentials: None,
        }
    }
}

/// The Runtime API service: cheap to clone, one per connection.
#[derive(Clone)]
pub struct RuntimeApi {
    pub(crate) rendezvous: Arc<Rendezvous>,
    pub(crate) config: Arc<ApiConfig>,
    pub(crate) telemetry: Option<Arc<dyn crate::subscription::TelemetrySink>>,
}

const PREFIX: &str = "/2018-06-01/runtime/";
const EXTENSION_PREFIX: &str = "/2020-01-01/extension/";

#[derive(Debug)]
enum Route<'a> {
    Next,
    Response(&'a str),
    Error(&'a str),
    InitError,
    RestoreNext,
    RestoreError,
    Register,
    EventNext,
    ExtensionInitError,
    ExtensionExitError,
    Subscribe(crate::subscription::SubscriptionApi),
    Credentials,
}

fn extension_route<'a>(method: &Method, path: &'a str, rest: &str) -> Result<Route<'a>, ApiError> {
    let (route, want) = match rest {
        "register" => (Route::Register, Method::POST),
        "event/next" => (Route::EventNext, Method::GET),
        "init/error" => (Route::ExtensionInitError, Method::POST),
        "exit/error" => (Route::ExtensionExitError, Method::POST),
        _ => return Err(ApiError::not_found(method, path)),
    };
    if *method != want {
        return Err(ApiError::method_not_allowed(method, path));
    }
    Ok(route)
}

fn route<'a>(method: &Method, path: &'a str) -> Result<Route<'a>, ApiError> {
    let not_found = || ApiError::not_found(method, path);
    if let Some(rest) = path.strip_prefix(EXTENSION_PREFIX) {
        return extension_route(method, path, rest);
    }
    if path == "/2021-04-23/credentials" {
        if *method != Method::GET {
            return Err(ApiError::method_not_allowed(method, path));
        }
        return Ok(Route::Credentials);
    }
    let subscribe = match path {
        "/2022-07-01/telemetry" => Some(crate::subscription::SubscriptionApi::Telemetry),
        "/2020-08-15/logs" => Some(crate::subscription::SubscriptionApi::Logs),
        _ => None,
    };
    if let Some(api) = subscribe {
        if *method != Method::PUT {
            return Err(ApiError::method_not_allowed(method, path));
        }
        return Ok(Route::Subscribe(api));
    }
    let rest = path.strip_prefix(PREFIX).ok_or_else(not_found)?;
    let (route, want) = match rest {
        "invocation/next" => (Route::Next, Method::GET),
        "init/error" => (Route::InitError, Method::POST),
        "restore/next" => (Route::RestoreNext, Method::GET),
        "restore/error" => (Route::RestoreError, Method::POST),
        _ => {
            let inv = rest.strip_prefix("invocation/").ok_or_else(not_found)?;
            let (id, action) = inv.rsplit_once('/').ok_or_else(not_found)?;
            if id.is_empty() || id.contains('/') {
                return Err(not_found());
            }
            match action {
                "response" => (Route::Response(id), Method::POST),
                "error" => (Route::Error(id), Method::POST),
                _ => return Err(not_found()),
            }
        }
    };
    if *method != want {
        return Err(ApiError::method_not_allowed(method, path));
    }
    Ok(route)
}

impl RuntimeApi {
    /// A Runtime API over `rendezvous`.
    pub fn new(rendezvous: Arc<Rendezvous>, config: ApiConfig) -> Self {
        RuntimeApi {
            rendezvous,
            config: Arc::new(config),
            telemetry: None,
        }
    }

    /// Accept Telemetry and Logs API subscriptions and hand them to `sink`.
    pub fn with_telemetry(mut self, sink: Arc<dyn crate::subscription::TelemetrySink>) -> Self {
        self.telemetry = Some(sink);
        self
    }

    /// Answer one request.
    pub async fn handle(self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let path = req.uri().path().to_owned();
        let result = match route(req.method(), &path) {
            Err(e) => Err(e),
            Ok(Route::Next) => handlers::next(&self).await,
            Ok(Route::Response(id)) => handlers::response(&self, id, req).await,
            Ok(Route::Error(id)) => handlers::invocation_error(&self, id, req).await,
            Ok(Route::InitError) => handlers::init_error(&self, req).await,
            Ok(Route::RestoreNext | Route::RestoreError) if !self.config.init_caching => {
                Err(ApiError::new(
                    http::StatusCode::NOT_FOUND,
                    fatalerror::ErrorType::NotFound,
                    format!("{path} needs init caching (--enable-init-caching)"),
                ))
            }
            Ok(Route::RestoreNext) => handlers::restore_next(&self).await,
            Ok(Route::RestoreError) => handlers::restore_error(&self, req).await,
            Ok(Route::Register) => extension_handlers::register(&self, req).await,
            Ok(Route::EventNext) => extension_handlers::next(&self, req).await,
            Ok(Route::ExtensionInitError) => {
                extension_handlers::error(&self, req, crate::ExtensionErrorKind::Init).await
            }
            Ok(Route::Credentials) => handlers::credentials(&self, &req),
            Ok(Route::Subscribe(which)) => extension_handlers::subscribe(&self, req, which).await,
            Ok(Route::ExtensionExitError) => {
                extension_handlers::error(&self, req, crate::ExtensionErrorKind::Exit).await
            }
        };
        match result {
            Ok(resp) => resp,
            Err(e) => {
                tracing::debug!(%path, status = %e.status, error_type = %e.error_type, "runtime API call rejected: {}", e.message);
                json_error(&e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let get = Method::GET;
        let post = Method::POST;
        assert!(matches!(
            route(&get, "/2018-06-01/runtime/invocation/next"),
            Ok(Route::Next)
        ));
        assert!(matches!(
            route(&post, "/2018-06-01/runtime/invocation/abc-1/response"),
            Ok(Route::Response("abc-1"))
        ));
        assert!(matches!(
            route(&post, "/2018-06-01/runtime/invocation/abc/error"),
            Ok(Route::Error("abc"))
        ));
        assert!(matches!(
            route(&post, "/2018-06-01/runtime/init/error"),
            Ok(Route::InitError)
        ));
    }

    #[test]
    fn bad_routes() {
        let get = Method::GET;
        let post = Method::POST;
        for (m, p, status) in [
            (&post, "/2018-06-01/runtime/invocation/next", 405),
            (&get, "/2018-06-01/runtime/invocation/x/response", 405),
            (&get, "/2018-06-01/runtime/init/error", 405),
            (&get, "/", 404),
            (&post, "/2018-06-01/runtime/invocation//response", 404),
            (&post, "/2018-06-01/runtime/invocation/a/b/response", 404),
            (&post, "/2018-06-01/runtime/invocation/a/other", 404),
            (&get, "/2018-06-01/runtime/unknown", 404),
            (&get, "/2020-01-01/extension/register", 405),
            (&post, "/2020-01-01/extension/event/next", 405),
            (&get, "/2020-01-01/extension/other", 404),
        ] {
            let e = route(m, p).err().map(|e| e.status.as_u16());
            assert_eq!(e, Some(status), "{m} {p}");
        }
    }
}
