//! The typed messages of each lifecycle phase.

use std::collections::BTreeMap;

use fatalerror::ErrorType;
use serde::{Deserialize, Serialize};

use crate::RequestId;

/// How the runtime delivers a response body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum ResponseMode {
    /// One body, at most [`crate::MAX_PAYLOAD`] bytes.
    #[default]
    Buffered,
    /// Chunked; forwarded as it arrives.
    Streaming,
}

impl ResponseMode {
    /// Parse the `Lambda-Runtime-Function-Response-Mode` header value. Only
    /// `streaming` is valid (case-insensitive); absence means buffered.
    pub fn from_header(value: Option<&str>) -> Result<ResponseMode, String> {
        match value {
            None => Ok(ResponseMode::Buffered),
            Some(v) if v.eq_ignore_ascii_case("streaming") => Ok(ResponseMode::Streaming),
            Some(v) => Err(v.to_owned()),
        }
    }
}

/// Why a sandbox is reset or shut down (the `shutdownReason` of a SHUTDOWN event).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ShutdownReason {
    /// Orderly: rapid is stopping, or one-shot recycling.
    Spindown,
    /// An invoke or init ran past its deadline.
    Timeout,
    /// A process crashed or the sandbox failed.
    Failure,
}

impl ShutdownReason {
    /// The wire string (`SPINDOWN`, `TIMEOUT`, `FAILURE`).
    pub fn as_str(self) -> &'static str {
        match self {
            ShutdownReason::Spindown => "SPINDOWN",
            ShutdownReason::Timeout => "TIMEOUT",
            ShutdownReason::Failure => "FAILURE",
        }
    }
}

/// An error as the function or runtime reported it, or as rapid built it:
/// `{"errorMessage": ..., "errorType": ...}` on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionError {
    /// The error type.
    #[serde(rename = "errorType")]
    pub error_type: ErrorType,
    /// A human-readable message.
    #[serde(rename = "errorMessage")]
    pub error_message: String,
}

impl FunctionError {
    /// Build an error from a type and a message.
    pub fn new(error_type: ErrorType, error_message: impl Into<String>) -> Self {
        FunctionError {
            error_type,
            error_message: error_message.into(),
        }
    }

    /// The JSON body (`errorMessage` first, as Lambda writes it).
    pub fn to_json(&self) -> Vec<u8> {
        #[derive(Serialize)]
        struct Wire<'a> {
            #[serde(rename = "errorMessage")]
            error_message: &'a str,
            #[serde(rename = "errorType")]
            error_type: &'a str,
        }
        serde_json::to_vec(&Wire {
            error_message: &self.error_message,
            error_type: self.error_type.as_str(),
        })
        .unwrap_or_default()
    }
}

/// An invoke that ended in an error, as the invoker receives it: the runtime's own
/// posted body when it gave one, else a JSON body built from [`FunctionError`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorInvokeResponse {
    /// The (sanitised) error type and message.
    pub function_error: FunctionError,
    /// The runtime's posted body, passed through untouched when present.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub payload: Option<Vec<u8>>,
}

impl ErrorInvokeResponse {
    /// An error built by rapid itself (timeout, crash, size violation, …).
    pub fn from_error(error: FunctionError) -> Self {
        ErrorInvokeResponse {
            function_error: error,
            payload: None,
        }
    }

    /// The body to send to the invoker.
    pub fn body(&self) -> Vec<u8> {
        match &self.payload {
            Some(p) if !p.is_empty() => p.clone(),
            _ => self.function_error.to_json(),
        }
    }
}

/// Start a sandbox generation. Every field may be omitted in a control-API
/// request; omitted values come from rapid's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct Init {
    /// Function name (`AWS_LAMBDA_FUNCTION_NAME`).
    pub function_name: String,
    /// Function version (`AWS_LAMBDA_FUNCTION_VERSION`).
    pub function_version: String,
    /// Memory size in MB (`AWS_LAMBDA_FUNCTION_MEMORY_SIZE`).
    pub memory_size_mb: u64,
    /// The `_HANDLER` value, if any.
    pub handler: Option<String>,
    /// Budget for init, in milliseconds.
    pub init_timeout_ms: u64,
    /// Budget for each invoke, in milliseconds.
    pub invoke_timeout_ms: u64,
    /// True when this init runs inside an invoke after an earlier init failed.
    pub suppressed: bool,
    /// Extra environment variables for the runtime (beyond the standard ones).
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
}

/// Timing of an init.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct InitMetrics {
    /// From the start of init until the runtime's first `/next`.
    pub init_duration_ms: f64,
    /// Extensions that took part.
    pub num_active_extensions: usize,
}

/// Init completed: the runtime waits on `/next`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InitSuccess {
    /// Timing.
    pub metrics: InitMetrics,
}

/// Init failed; the next invoke performs a suppressed init.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InitFailure {
    /// What failed.
    pub error: FunctionError,
    /// Timing up to the failure.
    pub metrics: InitMetrics,
}

/// One invoke, as dispatched to the runtime.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Invoke {
    /// The request id.
    pub id: RequestId,
    /// `X-Amzn-Trace-Id` of the invoke, passed as `Lambda-Runtime-Trace-Id`.
    pub trace_id: Option<String>,
    /// The decoded client context JSON, passed as `Lambda-Runtime-Client-Context`.
    pub client_context: Option<String>,
    /// Cognito identity JSON, passed as `Lambda-Runtime-Cognito-Identity`.
    pub cognito_identity: Option<String>,
    /// The function ARN.
    pub invoked_function_arn: String,
    /// Content type of the payload.
    pub content_type: String,
    /// Size of the payload in bytes.
    pub payload_size: usize,
    /// Budget for this invoke, in milliseconds.
    pub timeout_ms: u64,
    /// `X-Amz-Tenant-Id` of the invoke, passed as `Lambda-Runtime-Aws-Tenant-Id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
}

/// Timing and size of an invoke.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct InvokeMetrics {
    /// From dispatch until the runtime was ready again (or the failure).
    pub duration_ms: f64,
    /// From dispatch until the response was complete.
    pub response_duration_ms: f64,
    /// Bytes the runtime produced for the invoker.
    pub produced_bytes: u64,
    /// How the response was delivered.
    pub response_mode: ResponseMode,
    /// Init duration, when this invoke followed a cold start.
    pub init_duration_ms: Option<f64>,
    /// Peak memory of the runtime's process tree, in MiB.
    pub max_memory_used_mb: u64,
}

/// The invoke completed with the runtime's response or a function error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InvokeSuccess {
    /// The request id.
    pub id: RequestId,
    /// The function's error, if it reported one via `/error` (no reset).
    pub function_error: Option<FunctionError>,
    /// Timing.
    pub metrics: InvokeMetrics,
}

/// The invoke failed in a way that requires a reset (timeout, crash, …).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InvokeFailure {
    /// The request id.
    pub id: RequestId,
    /// What the invoker received.
    pub error: FunctionError,
    /// Timing.
    pub metrics: InvokeMetrics,
    /// Whether the sandbox is reset because of it.
    pub reset: bool,
}

/// Reset the sandbox: kill its processes so a fresh init can start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Reset {
    /// Why.
    pub reason: ShutdownReason,
    /// Budget for the reset, in milliseconds.
    pub deadline_ms: u64,
}

impl Default for Reset {
    fn default() -> Self {
        Reset {
            reason: ShutdownReason::Spindown,
            deadline_ms: 2000,
        }
    }
}

/// The reset completed: no process of the old generation is alive.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResetSuccess {
    /// Why it was reset.
    pub reason: ShutdownReason,
    /// How long it took.
    pub duration_ms: f64,
    /// Of that, how long the extensions took to stop (SHUTDOWN to exit).
    pub extensions_reset_ms: f64,
}

/// The reset did not complete within its deadline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResetFailure {
    /// Why it was reset.
    pub reason: ShutdownReason,
    /// What went wrong.
    pub error: FunctionError,
}

/// Shut the sandbox down for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Shutdown {
    /// Why.
    pub reason: ShutdownReason,
    /// Budget, in milliseconds.
    pub deadline_ms: u64,
}

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown {
            reason: ShutdownReason::Spindown,
            deadline_ms: 2000,
        }
    }
}

/// Shutdown completed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShutdownSuccess {
    /// How long it took.
    pub duration_ms: f64,
    /// Whether any process had to be SIGKILLed.
    pub killed: bool,
}

/// Resume a sandbox restored from a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Restore {
    /// Budget for the restore hooks, in milliseconds.
    pub restore_timeout_ms: u64,
}

/// How an init ended, as one typed message: `{"InitSuccess": …}` or `{"InitFailure": …}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum InitResult {
    /// Init completed.
    InitSuccess(InitSuccess),
    /// Init failed.
    InitFailure(InitFailure),
}

/// How an invoke ended, as one typed message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum InvokeResult {
    /// The runtime answered (possibly with a function error).
    InvokeSuccess(InvokeSuccess),
    /// The invoke failed and the sandbox was reset.
    InvokeFailure(InvokeFailure),
}

/// How a reset ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ResetResult {
    /// Every process of the generation is gone.
    ResetSuccess(ResetSuccess),
    /// The reset needed SIGKILL past its deadline.
    ResetFailure(ResetFailure),
}

/// Outcome of a Restore.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreResult {
    /// How long it took.
    pub duration_ms: f64,
    /// The error, if restore failed.
    pub error: Option<FunctionError>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_error_wire_form() {
        let e = FunctionError::new(ErrorType::SandboxTimedout, "late");
        let v: serde_json::Value = serde_json::from_slice(&e.to_json()).unwrap();
        assert_eq!(v["errorType"], "Sandbox.Timedout");
        assert_eq!(v["errorMessage"], "late");
        let back: FunctionError = serde_json::from_slice(&e.to_json()).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn error_invoke_response_prefers_the_runtime_payload() {
        let e = FunctionError::new(ErrorType::FunctionUnknown, "m");
        let mut r = ErrorInvokeResponse::from_error(e.clone());
        assert_eq!(r.body(), e.to_json());
        r.payload = Some(b"{\"custom\":1}".to_vec());
        assert_eq!(r.body(), b"{\"custom\":1}");
        r.payload = Some(Vec::new());
        assert_eq!(r.body(), e.to_json());
    }

    #[test]
    fn response_mode_header() {
        assert_eq!(ResponseMode::from_header(None), Ok(ResponseMode::Buffered));
        assert_eq!(
            ResponseMode::from_header(Some("streaming")),
            Ok(ResponseMode::Streaming)
        );
        assert_eq!(
            ResponseMode::from_header(Some("Streaming")),
            Ok(ResponseMode::Streaming)
        );
        assert_eq!(
            ResponseMode::from_header(Some("buffered")),
            Err("buffered".into())
        );
        assert_eq!(ResponseMode::from_header(Some("")), Err(String::new()));
    }

    #[test]
    fn shutdown_reason_strings() {
        assert_eq!(
            serde_json::to_string(&ShutdownReason::Spindown).unwrap(),
            "\"SPINDOWN\""
        );
        assert_eq!(ShutdownReason::Timeout.as_str(), "TIMEOUT");
        assert_eq!(ShutdownReason::Failure.as_str(), "FAILURE");
    }

    #[test]
    fn results_are_externally_tagged() {
        let r = InitResult::InitSuccess(InitSuccess {
            metrics: InitMetrics::default(),
        });
        let v = serde_json::to_value(&r).unwrap();
        assert!(v.get("InitSuccess").is_some());
        let init: Init = serde_json::from_str("{\"invokeTimeoutMs\": 5}").unwrap();
        assert_eq!(init.invoke_timeout_ms, 5);
        assert_eq!(init.init_timeout_ms, 0);
        let reset: Reset = serde_json::from_str("{\"reason\": \"TIMEOUT\"}").unwrap();
        assert_eq!(reset.reason, ShutdownReason::Timeout);
        assert_eq!(reset.deadline_ms, 2000);
    }

    #[test]
    fn messages_round_trip_as_json() {
        let inv = Invoke {
            id: RequestId::from_string("abc".into()),
            trace_id: Some("Root=1".into()),
            client_context: None,
            cognito_identity: None,
            invoked_function_arn: "arn".into(),
            content_type: "application/json".into(),
            payload_size: 3,
            timeout_ms: 1000,
            tenant_id: None,
        };
        let json = serde_json::to_string(&inv).unwrap();
        assert!(json.contains("\"invokedFunctionArn\":\"arn\""));
        let back: Invoke = serde_json::from_str(&json).unwrap();
        assert_eq!(back, inv);
    }
}
