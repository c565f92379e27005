//! Errors the Runtime API answers with: a status code and a JSON body.

use fatalerror::ErrorType;
use http::StatusCode;
use interop::{FunctionError, MAX_PAYLOAD};

use crate::state::InvalidTransition;

/// A rejected Runtime API call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status} {error_type}: {message}")]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// The `errorType` of the body.
    pub error_type: ErrorType,
    /// The `errorMessage` of the body.
    pub message: String,
}

impl ApiError {
    /// Any error.
    pub fn new(status: StatusCode, error_type: ErrorType, message: impl Into<String>) -> Self {
        ApiError {
            status,
            error_type,
            message: message.into(),
        }
    }

    /// 403 `InvalidStateTransition`.
    pub fn transition(e: InvalidTransition) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            ErrorType::InvalidStateTransition,
            e.to_string(),
        )
    }

    /// 400 `InvalidRequestID`.
    pub fn invalid_request_id(id: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            ErrorType::InvalidRequestId,
            format!("Invalid request ID: '{id}'"),
        )
    }

    /// 413 `RequestEntityTooLarge`.
    pub fn too_large() -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorType::RequestEntityTooLarge,
            format!("Exceeded maximum allowed payload size ({MAX_PAYLOAD} bytes)."),
        )
    }

    /// 400 `InvalidFunctionResponseMode`.
    pub fn invalid_response_mode(value: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            ErrorType::InvalidFunctionResponseMode,
            format!(
                "Invalid function response mode '{value}': the only supported mode is 'streaming'."
            ),
        )
    }

    /// 400 `InvalidRequestFormat`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            ErrorType::InvalidRequestFormat,
            message,
        )
    }

    /// 404 `NotFound`.
    pub fn not_found(method: &http::Method, path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            ErrorType::NotFound,
            format!("No such route: {method} {path}"),
        )
    }

    /// 405 `MethodNotAllowed`.
    pub fn method_not_allowed(method: &http::Method, path: &str) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            ErrorType::MethodNotAllowed,
            format!("Method {method} is not allowed on {path}"),
        )
    }

    /// The JSON body.
    pub fn body(&self) -> Vec<u8> {
        FunctionError::new(self.error_type.clone(), self.message.clone()).to_json()
    }
}

/// The one renderer of Runtime API refusals: the status and the JSON body
/// `{"errorMessage","errorType"}`.
impl axum::response::IntoResponse for ApiError {
    fn into_response(self) -> axum::response::Response {
        tracing::debug!(status = %self.status, error_type = %self.error_type, "runtime API call rejected: {}", self.message);
        crate::body::json_response(self.status, self.body())
    }
}
