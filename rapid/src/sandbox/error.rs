//! Why an invocation or a command got no answer from the function: one typed
//! error per case, each with its `fatalerror` kind. Fronts render them.

use std::time::Duration;

use fatalerror::ErrorType;
use interop::{ErrorInvokeResponse, FunctionError};

/// Why an invocation was refused or failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum InvokeError {
    /// The queue is at its bound (`--max-queue`).
    #[error("Rate exceeded: {waiting} invokes are already waiting (--max-queue)")]
    QueueFull {
        /// How many may wait.
        waiting: usize,
    },
    /// Every sandbox of the function is busy and none may wait
    /// (`--max-queue 0`): Lambda's throttle.
    #[error("Rate Exceeded.")]
    Throttled,
    /// Tenant isolation is on and the invocation names no tenant.
    #[error("The invoked function is enabled with tenancy configuration. Add a valid tenant ID in your request and try again.")]
    TenantRequired,
    /// The request is larger than the sandbox takes.
    #[error("{}", too_large(*limit, *size))]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
        /// The request's size, when known.
        size: Option<u64>,
    },
    /// The sandbox does not take invocations now.
    #[error("{0}")]
    Unavailable(Unavailable),
    /// The request could not be read (a body that broke off or stalled).
    #[error("{0}")]
    BadRequest(String),
    /// The client's request body stalled past the body timeout: the
    /// client's fault, not the function's (408).
    #[error("{0}")]
    RequestTimeout(String),
    /// The invocation ran past its budget.
    #[error("{}", .0.error_message)]
    TimedOut(FunctionError),
    /// The function failed: its own error, or its runtime's or process's failure.
    #[error("{}", .0.function_error.error_message)]
    Function(ErrorInvokeResponse),
    /// The function cannot be reached (its server is down or unreachable).
    #[error("{0}")]
    Down(String),
}

fn too_large(limit: usize, size: Option<u64>) -> String {
    match size {
        Some(n) => format!("{n} byte payload is too large ({limit} byte maximum)"),
        None => format!("Request payload is too large ({limit} byte maximum)"),
    }
}

/// A request body's deadline passed (the OpenFaaS front's `--read-timeout`).
#[derive(Debug, thiserror::Error)]
#[error("{0} timed out")]
pub struct BodyTimedOut(pub &'static str);

/// Whether reading a request body failed because the client was too slow
/// (the body timeout or the read timeout), anywhere in `e`'s causes.
pub fn body_timed_out(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(e) = cur {
        if e.is::<BodyTimedOut>() || e.is::<runtime_api::server::BodyStalled>() {
            return true;
        }
        cur = e.source();
    }
    false
}

/// Why a sandbox takes no invocation now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unavailable {
    /// rapid is shutting down (or the sandbox was shut down).
    #[error("rapid is shutting down; the invoke was not run")]
    ShuttingDown,
    /// The sandbox shut down while the invocation waited or ran.
    #[error("the sandbox shut down during the invoke")]
    ShutDownDuringInvoke,
    /// One-shot: this sandbox has served its invocation.
    #[error("one-shot: this sandbox has served its request and is being replaced")]
    OneShotUsed,
    /// The function did not become ready within the budget.
    #[error("the function did not become ready within the exec timeout")]
    NotReady,
}

impl InvokeError {
    /// The error's kind.
    pub fn error_type(&self) -> ErrorType {
        match self {
            InvokeError::QueueFull { .. } | InvokeError::Throttled => {
                ErrorType::TooManyRequestsException
            }
            InvokeError::TooLarge { .. } => ErrorType::RequestEntityTooLargeException,
            InvokeError::TenantRequired => ErrorType::InvalidParameterValueException,
            InvokeError::Unavailable(_) => ErrorType::ServiceException,
            InvokeError::BadRequest(_) => ErrorType::InvalidRequestContentException,
            InvokeError::RequestTimeout(_) => ErrorType::RequestTimeoutException,
            InvokeError::TimedOut(e) => e.error_type.clone(),
            InvokeError::Function(e) => e.function_error.error_type.clone(),
            InvokeError::Down(_) => ErrorType::SandboxFailure,
        }
    }

    /// AWS's `Reason` of a throttle.
    pub fn reason(&self) -> Option<&'static str> {
        match self {
            InvokeError::Throttled => Some("ReservedFunctionConcurrentInvocationLimitExceeded"),
            _ => None,
        }
    }

    /// The error as a Lambda error document: the function's own body when it
    /// posted one, else `{"errorMessage","errorType"}`.
    pub fn to_lambda(&self) -> ErrorInvokeResponse {
        match self {
            InvokeError::Function(e) => e.clone(),
            InvokeError::TimedOut(e) => ErrorInvokeResponse::from_error(e.clone()),
            other => ErrorInvokeResponse::from_error(FunctionError::new(
                other.error_type(),
                other.to_string(),
            )),
        }
    }

    /// A function failure of `error_type` with `message`.
    pub fn function(error_type: ErrorType, message: impl Into<String>) -> InvokeError {
        InvokeError::Function(ErrorInvokeResponse::from_error(FunctionError::new(
            error_type, message,
        )))
    }

    /// The exec timeout `budget` passed.
    pub fn exec_timeout(budget: Option<Duration>) -> InvokeError {
        let budget = budget.map_or_else(
            || "none".to_owned(),
            |b| humantime::format_duration(b).to_string(),
        );
        InvokeError::TimedOut(FunctionError::new(
            ErrorType::SandboxTimedout,
            format!("the function did not finish within the exec timeout ({budget})"),
        ))
    }
}

/// Why a control command was not carried out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    /// Out of order: not allowed in the sandbox's phase.
    #[error("{command} is not allowed in phase {phase}: {why}")]
    Refused {
        /// The command.
        command: &'static str,
        /// The phase it met.
        phase: String,
        /// Why not.
        why: String,
    },
    /// The sandbox is gone (rapid is stopping).
    #[error("rapid is shutting down")]
    Unavailable,
}

impl ControlError {
    /// A refusal of `command` in `phase`.
    pub fn refused(
        command: &'static str,
        phase: impl Into<String>,
        why: impl Into<String>,
    ) -> Self {
        ControlError::Refused {
            command,
            phase: phase.into(),
            why: why.into(),
        }
    }

    /// The error's kind.
    pub fn error_type(&self) -> ErrorType {
        match self {
            ControlError::Refused { .. } => ErrorType::InvalidStateTransition,
            ControlError::Unavailable => ErrorType::ServiceException,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_messages() {
        let q = InvokeError::QueueFull { waiting: 3 };
        assert_eq!(q.error_type(), ErrorType::TooManyRequestsException);
        assert_eq!(
            q.to_string(),
            "Rate exceeded: 3 invokes are already waiting (--max-queue)"
        );
        assert_eq!(InvokeError::Throttled.to_string(), "Rate Exceeded.");
        assert_eq!(
            InvokeError::Throttled.reason(),
            Some("ReservedFunctionConcurrentInvocationLimitExceeded")
        );
        assert_eq!(q.reason(), None);
        let t = InvokeError::exec_timeout(Some(Duration::from_millis(700)));
        assert_eq!(t.error_type(), ErrorType::SandboxTimedout);
        assert!(t.to_string().contains("(700ms)"), "{t}");
        let doc = t.to_lambda();
        assert_eq!(doc.function_error.error_type, ErrorType::SandboxTimedout);
        let r = ControlError::refused("Init", "Ready", "once");
        assert_eq!(r.to_string(), "Init is not allowed in phase Ready: once");
        assert_eq!(r.error_type(), ErrorType::InvalidStateTransition);
        let d = InvokeError::Down("gone".into()).to_lambda();
        assert_eq!(d.function_error.error_type, ErrorType::SandboxFailure);
        assert_eq!(d.function_error.error_message, "gone");
    }
}
