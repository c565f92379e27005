//! The Extensions API calls (`/2020-01-01/extension/...`).

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use bytes::Bytes;
use http::{header, StatusCode};
use http_body_util::{BodyExt, Limited};

use crate::api::RuntimeApi;
use crate::body::header_str;
use crate::body::{json_response, ResponseBuilderExt};
use crate::error::ApiError;
use crate::headers as h;
use crate::rendezvous::{ExtensionErrorKind, ExtensionNext};

type Reply = Result<Response, ApiError>;

/// Extension request bodies are small JSON documents.
const BODY_LIMIT: usize = 1024 * 1024;

async fn read_body(body: Body) -> Result<Bytes, ApiError> {
    Limited::new(body, BODY_LIMIT)
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|e| ApiError::bad_request(format!("Could not read the request body: {e}")))
}

/// `POST /extension/register`.
pub(crate) async fn register(State(api): State<RuntimeApi>, req: Request) -> Reply {
    let (parts, body) = req.into_parts();
    let body = read_body(body).await?;
    let name = header_str(&parts.headers, h::EXTENSION_NAME);
    let id = api.rendezvous.register_extension(name, &body)?;
    let function = api.rendezvous.function();
    let mut answer = serde_json::json!({
        "functionName": function.name,
        "functionVersion": function.version,
        "handler": function.handler.unwrap_or_default(),
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
        .body_or_500(Body::from(serde_json::to_vec(&answer).unwrap_or_default())))
}

/// `GET /extension/event/next`.
pub(crate) async fn next(State(api): State<RuntimeApi>, req: Request) -> Reply {
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
        .body_or_500(Body::from(event.body.clone())))
}

/// `POST /extension/init/error` and `/exit/error`.
pub(crate) async fn error(
    State(api): State<RuntimeApi>,
    req: Request,
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
    Ok(json_response(
        StatusCode::ACCEPTED,
        &b"{\"status\":\"OK\"}"[..],
    ))
}

/// `PUT /2022-07-01/telemetry` and `PUT /2020-08-15/logs`.
pub(crate) async fn subscribe(
    State(api): State<RuntimeApi>,
    req: Request,
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
    Ok(json_response(StatusCode::OK, &b"\"OK\""[..]))
}
