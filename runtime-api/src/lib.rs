//! The HTTP face that processes inside the sandbox see: the Runtime API
//! (SPEC §3), the Extensions API (§5), the Telemetry and Logs APIs (§6), and
//! the rendezvous state they guard. It never spawns or kills processes; the
//! lifecycle engine drives it through [`RuntimeHandle`].

mod api;
mod body;
mod error;
mod extension_handlers;
pub mod extension_state;
pub mod gauge;
mod handlers;
mod outcome;
mod rendezvous;
mod restore_calls;
mod router;
pub mod server;
pub mod shortcut;
pub mod state;
mod stream_response;
pub mod subscription;

pub use api::{ApiConfig, Credentials, RuntimeApi};
pub use body::{json_response, ResponseBuilderExt};
pub use error::ApiError;
pub use outcome::{
    InvokeOutcome, InvokeResponse, OutcomeSender, ResponseBody, StreamItem, STREAM_BUFFER_CHUNKS,
};
pub use rendezvous::{
    reset_error, DispatchError, Dispatched, ExtensionErrorKind, ExtensionEvent, ExtensionInfo,
    ExtensionNext, FunctionInfo, NextCall, Rendezvous, ResponseTicket, RuntimeEvent, RuntimeHandle,
};
pub use router::router;

/// Header names of the Runtime API.
pub mod headers {
    use http::HeaderName;

    /// The invoke's request id.
    pub const REQUEST_ID: HeaderName = HeaderName::from_static("lambda-runtime-aws-request-id");
    /// Epoch milliseconds by which the invoke must finish.
    pub const DEADLINE_MS: HeaderName = HeaderName::from_static("lambda-runtime-deadline-ms");
    /// The function ARN.
    pub const FUNCTION_ARN: HeaderName =
        HeaderName::from_static("lambda-runtime-invoked-function-arn");
    /// X-Ray trace header.
    pub const TRACE_ID: HeaderName = HeaderName::from_static("lambda-runtime-trace-id");
    /// A fresh id per delivery of an event, echoed on `/response` and `/error`.
    pub const INVOCATION_ID: HeaderName = HeaderName::from_static("lambda-runtime-invocation-id");
    /// The invoke's tenant (`X-Amz-Tenant-Id`).
    pub const TENANT_ID: HeaderName = HeaderName::from_static("lambda-runtime-aws-tenant-id");
    /// Decoded client context JSON.
    pub const CLIENT_CONTEXT: HeaderName = HeaderName::from_static("lambda-runtime-client-context");
    /// Cognito identity JSON.
    pub const COGNITO_IDENTITY: HeaderName =
        HeaderName::from_static("lambda-runtime-cognito-identity");
    /// `streaming` for streamed responses.
    pub const RESPONSE_MODE: HeaderName =
        HeaderName::from_static("lambda-runtime-function-response-mode");
    /// Error type of `/error` and `/init/error` calls and of stream trailers.
    pub const ERROR_TYPE: HeaderName =
        HeaderName::from_static("lambda-runtime-function-error-type");
    /// Base64 error body in stream trailers.
    pub const ERROR_BODY: HeaderName =
        HeaderName::from_static("lambda-runtime-function-error-body");
    /// An extension's name at registration.
    pub const EXTENSION_NAME: HeaderName = HeaderName::from_static("lambda-extension-name");
    /// An extension's identifier.
    pub const EXTENSION_ID: HeaderName = HeaderName::from_static("lambda-extension-identifier");
    /// The id of an event handed to an extension.
    pub const EXTENSION_EVENT_ID: HeaderName =
        HeaderName::from_static("lambda-extension-event-identifier");
    /// Error type of an extension's error calls.
    pub const EXTENSION_ERROR_TYPE: HeaderName =
        HeaderName::from_static("lambda-extension-function-error-type");
    /// Optional features an extension accepts (`accountId`).
    pub const EXTENSION_ACCEPT_FEATURE: HeaderName =
        HeaderName::from_static("lambda-extension-accept-feature");
}
