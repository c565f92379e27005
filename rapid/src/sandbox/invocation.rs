//! An invocation as a front hands it to a sandbox.

use std::time::Duration;

use interop::RequestId;

use super::Body;

/// One invocation: an HTTP request (the Lambda event is its body) and what
/// the Lambda contract adds to it.
#[derive(Debug)]
pub struct Invocation {
    /// The request id (`X-Amzn-RequestId`, the runtime's request id).
    pub id: RequestId,
    /// The caller's correlation id (`X-Call-Id`), when it differs from the request id.
    pub call_id: Option<String>,
    /// Method, path, headers (`Content-Type`, `X-Amzn-Trace-Id`, …) and body.
    pub request: http::Request<Body>,
    /// What only a Lambda runtime sees.
    pub context: LambdaContext,
    /// Who may bound the invocation's time.
    pub budget: Budget,
    /// The caller wants the log tail (`X-Amz-Log-Type: Tail`).
    pub log_tail: bool,
    /// The caller wants the typed result (`InvokeResult`, the control API).
    pub typed_result: bool,
}

/// The Lambda-only parts of an invocation.
#[derive(Debug, Clone, Default)]
pub struct LambdaContext {
    /// The decoded client context JSON (`Lambda-Runtime-Client-Context`).
    pub client_context: Option<String>,
    /// Cognito identity JSON (`Lambda-Runtime-Cognito-Identity`).
    pub cognito_identity: Option<String>,
    /// The ARN as the caller named the function, with its qualifier
    /// (`Lambda-Runtime-Invoked-Function-Arn`); `None`: the function's own ARN.
    pub invoked_function_arn: Option<String>,
}

/// Who bounds an invocation's time, beyond the function's own timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    /// The function's timeout alone.
    Function,
    /// The platform (control API) sets the budget: a Lambda sandbox honours it.
    Platform(Duration),
    /// A client asks for a shorter one (`X-Timeout`): process backends honour
    /// it; a Lambda sandbox does not (a timeout resets it, which a client
    /// must not be able to force).
    Client(Duration),
}
