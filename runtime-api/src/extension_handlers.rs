//! The Extensions API calls (`/2020-01-01/extension/...`).

use bytes::Bytes;
use http::{header, HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;

use crate::body::{full, ResponseBuilderExt};
use crate::error::ApiError;
use crate::headers as h;
use crate::rendezvous::{ExtensionErrorKind, ExtensionNext};
use crate::routes::RuntimeApi;

type Reply = Result<Response<Full<Bytes>>, ApiError>;

/// Extension request bodies are small JSON documents.
const BODY_LIMIT: usize = 1024 * 1024;

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

async fn read_body(body: Incoming) -> Result<Bytes, ApiError> {
    Limited::new(body, BODY_LIMIT)
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|e| ApiError::bad_request(format!("Could not read the request body: {e}")))
}

/// `POST /extension/register`.
pub(crate) async fn register(api: &RuntimeApi, req: Request<Incoming>) -> Reply {
    let (parts, body) = req.into_parts();
    let body = read_body(body).await?;
    let name = header_str(&parts.headers, h::EXTENSION_NAME);
    let id = api.rendezvous.register_extension(name, &body)?;
    let mut answer = serde_json::json!({
        "functionName": api.config.function_name,
        "functionVersion": api.config.function_version,
        "handler": api.config.handler.clone().unwrap_or_default(),
    });
    let wants_account = header_str(&parts.headers, h::EXTENSION_ACCEPT_FEATURE)
        .is_some_and(|v| v.split(',').any(|f| f.trim() == "accountId"));
    if wants_account {
        answer["accountId"] = serde_json::Value::String(api.config.account_id.clone());
    }
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header(h::EXTENSION_ID, id)
        .header(header::CONTENT_TYPE, "application/json")
        .body_or_500(full(serde_json::to_vec(&answer).unwrap_or_default())))
}

/// `GET /extension/event/next`.
pub(crate) async fn next(api: &RuntimeApi, req: Request<Incoming>) -> Reply {
    let id = header_str(req.headers(), h::EXTENSION_ID);
    let event = match api.rendezvous.extension_next(id)? {
        ExtensionNext::Now(e) => e,
        ExtensionNext::Wait(rx) => rx.await.map_err(|_| {
            ApiError::new(
                StatusCode::GONE,
                fatalerror::ErrorType::ExtensionInvalidExtensionState,
                "The sandbox was reset while this call waited for an event",
            )
        })?,
    };
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header(h::EXTENSION_EVENT_ID, event.id.as_str())
        .header(header::CONTENT_TYPE, "application/json")
        .body_or_500(full(event.body.clone())))
}

/// `POST /extension/init/error` and `/exit/error`.
pub(crate) async fn error(
    api: &RuntimeApi,
    req: Request<Incoming>,
    kind: ExtensionErrorKind,
) -> Reply {
    let (parts, body) = req.into_parts();
    // The body (an error document) is read so the connection stays usable, and logged.
    let body = read_body(body).await?;
    let id = header_str(&parts.headers, h::EXTENSION_ID);
    let error_type = header_str(&parts.headers, h::EXTENSION_ERROR_TYPE);
    api.rendezvous.extension_error(id, kind, error_type)?;
    if !body.is_empty() {
        tracing::info!(?kind, body = %String::from_utf8_lossy(&body), "extension error details");
    }
    Ok(Response::builder()
        .status(StatusCode::ACCEPTED)
        .header(header::CONTENT_TYPE, "application/json")
        .body_or_500(full(&b"{\"status\":\"OK\"}"[..])))
}

/// `PUT /2022-07-01/telemetry` and `PUT /2020-08-15/logs`.
pub(crate) async fn subscribe(
    api: &RuntimeApi,
    req: Request<Incoming>,
    which: crate::subscription::SubscriptionApi,
) -> Reply {
    let (parts, body) = req.into_parts();
    let body = read_body(body).await?;
    let name = api
        .rendezvous
        .extension_name(header_str(&parts.headers, h::EXTENSION_ID))?;
    if !api.rendezvous.registration_open() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            fatalerror::ErrorType::ValidationError,
            format!("Extension '{name}' subscribed after init completed; subscribe during init"),
        ));
    }
    let sub = crate::subscription::parse_subscription(which, &name, &body)?;
    let Some(sink) = &api.telemetry else {
        return Err(ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            fatalerror::ErrorType::ValidationError,
            "This rapid has no telemetry fan-out",
        ));
    };
    tracing::info!(extension = %name, ?which, "telemetry subscription");
    sink.subscribe(sub);
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body_or_500(full(&b"\"OK\""[..])))
}
