//! Every error-type string rapid produces or accepts, as one enum.
//!
//! The strings are part of the wire contract (SPEC §3–§5): they appear in the
//! `errorType` field of JSON error bodies on the Runtime, Extensions and Invoke
//! APIs. Runtime-supplied error types (the `Lambda-Runtime-Function-Error-Type`
//! header) are sanitised with [`ErrorType::from_runtime`]. No I/O, no async.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

macro_rules! error_types {
    ($( $(#[$doc:meta])* $variant:ident => $text:literal, )*) => {
        /// An error type known to rapid, or one a runtime reported.
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum ErrorType {
            $( $(#[$doc])* $variant, )*
            /// A runtime- or function-supplied type that passed sanitising
            /// (`Runtime.Xxx` / `Function.Xxx`, or a body's free-form type).
            Custom(String),
        }

        impl ErrorType {
            /// Every fixed variant, for exhaustive tests and documentation.
            pub const ALL: &'static [ErrorType] = &[ $( ErrorType::$variant, )* ];

            /// The wire string.
            pub fn as_str(&self) -> &str {
                match self {
                    $( ErrorType::$variant => $text, )*
                    ErrorType::Custom(s) => s,
                }
            }
        }

        impl FromStr for ErrorType {
            type Err = std::convert::Infallible;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Ok(match s {
                    $( $text => ErrorType::$variant, )*
                    other => ErrorType::Custom(other.to_owned()),
                })
            }
        }
    };
}

error_types! {
    // ----- Runtime API (SPEC §3) -----
    /// A call that the runtime's state machine does not allow now.
    InvalidStateTransition => "InvalidStateTransition",
    /// A response or error for an unknown or stale request id.
    InvalidRequestId => "InvalidRequestID",
    /// A response or error for an invoke that timed out or was reset (its
    /// invocation id is stale).
    InvokeTimeout => "InvokeTimeout",
    /// A buffered response body larger than the payload limit.
    RequestEntityTooLarge => "RequestEntityTooLarge",
    /// A `Lambda-Runtime-Function-Response-Mode` that is not `streaming`.
    InvalidFunctionResponseMode => "InvalidFunctionResponseMode",
    /// A body that could not be read or parsed.
    InvalidRequestFormat => "InvalidRequestFormat",
    /// A route that does not exist.
    NotFound => "NotFound",
    /// A known route called with the wrong HTTP method.
    MethodNotAllowed => "MethodNotAllowed",

    // ----- Runtime / function failures reported to the invoker (SPEC §4) -----
    /// The runtime process exited (init or invoke).
    RuntimeExitError => "Runtime.ExitError",
    /// No bootstrap could be found or executed.
    RuntimeInvalidEntrypoint => "Runtime.InvalidEntrypoint",
    /// A runtime-supplied error type that did not look like `Runtime.Xxx`.
    RuntimeUnknown => "Runtime.Unknown",
    /// The runtime's response body broke off before it was complete.
    RuntimeTruncatedResponse => "Runtime.TruncatedResponse",
    /// The runtime failed during Restore.
    RuntimeRestoreError => "Runtime.RestoreError",
    /// A function-supplied error type that did not look like `Function.Xxx`.
    FunctionUnknown => "Function.Unknown",
    /// The response exceeded the payload limit.
    FunctionResponseSizeTooLarge => "Function.ResponseSizeTooLarge",
    /// The invoke (or a suppressed init) ran past its deadline.
    SandboxTimedout => "Sandbox.Timedout",
    /// The sandbox failed for a reason outside the function (spawn failure, …).
    SandboxFailure => "Sandbox.Failure",
    /// The sandbox was shut down while the invoke was running.
    SandboxShutdown => "Sandbox.Shutdown",

    // ----- Extensions API (SPEC §5) -----
    /// An extension exited during init or invoke.
    ExtensionCrash => "Extension.Crash",
    /// An extension called `/init/error`.
    ExtensionInitError => "Extension.InitError",
    /// An extension called `/exit/error`.
    ExtensionExitError => "Extension.ExitError",
    /// Registration with an empty name.
    ExtensionInvalidExtensionName => "Extension.InvalidExtensionName",
    /// Registration for an event type that does not exist.
    ExtensionInvalidEventType => "Extension.InvalidEventType",
    /// A call not allowed in the extension's current state (registered twice, …).
    ExtensionInvalidExtensionState => "Extension.InvalidExtensionState",
    /// Registration after init completed.
    ExtensionRegistrationClosed => "Extension.RegistrationClosed",
    /// More than the allowed number of extensions.
    ExtensionTooManyExtensions => "Extension.TooManyExtensions",
    /// `Lambda-Extension-Identifier` header absent.
    ExtensionMissingExtensionIdentifier => "Extension.MissingExtensionIdentifier",
    /// `Lambda-Extension-Identifier` header not a valid id.
    ExtensionInvalidExtensionIdentifier => "Extension.InvalidExtensionIdentifier",
    /// `Lambda-Extension-Identifier` names no registered extension.
    ExtensionUnknownExtensionIdentifier => "Extension.UnknownExtensionIdentifier",
    /// A required header is absent.
    ExtensionMissingHeader => "Extension.MissingHeader",

    // ----- Telemetry API (SPEC §6) -----
    /// An invalid subscription.
    ValidationError => "ValidationError",

    // ----- Invoke API (SPEC §4) -----
    /// The function name in the path is not this function.
    ResourceNotFoundException => "ResourceNotFoundException",
    /// The invoke payload exceeds the limit.
    RequestEntityTooLargeException => "RequestEntityTooLargeException",
    /// The invoke queue is full.
    TooManyRequestsException => "TooManyRequestsException",
    /// A malformed invoke request (bad client context, bad header, …).
    InvalidRequestContentException => "InvalidRequestContentException",
    /// rapid cannot serve the invoke (shutting down, …).
    ServiceException => "ServiceException",
    /// A function name or qualifier that does not match AWS's pattern.
    ValidationException => "ValidationException",
    /// A parameter whose value is not acceptable (the path's qualifier and
    /// `?Qualifier=` disagree; no tenant id for a tenant-isolated function).
    InvalidParameterValueException => "InvalidParameterValueException",
    /// The client's request body made no progress within the body timeout.
    RequestTimeoutException => "RequestTimeoutException",
}

/// How a failure affects the sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consequence {
    /// The sandbox stays as it is (a handled function error, a bad request).
    None,
    /// The sandbox must be reset: its processes are killed and init runs again.
    Reset,
}

impl ErrorType {
    /// Sanitise a runtime-supplied error type (the `Lambda-Runtime-Function-Error-Type`
    /// header): kept if it looks like `Runtime.Xxx` or `Function.Xxx` (an upper-case
    /// letter after the dot, then letters and digits), otherwise reduced to
    /// `Function.Unknown` when it starts with `Function.`, else `Runtime.Unknown`.
    pub fn from_runtime(raw: &str) -> ErrorType {
        let well_formed = |rest: &str| {
            let mut chars = rest.chars();
            matches!(chars.next(), Some(c) if c.is_ascii_uppercase())
                && chars.all(|c| c.is_ascii_alphanumeric())
        };
        if let Some(rest) = raw.strip_prefix("Runtime.") {
            if well_formed(rest) {
                return ErrorType::from(raw);
            }
        } else if let Some(rest) = raw.strip_prefix("Function.") {
            if well_formed(rest) {
                return ErrorType::from(raw);
            }
            return ErrorType::FunctionUnknown;
        }
        ErrorType::RuntimeUnknown
    }

    /// Whether this failure, when it ends an invoke or an init, forces a sandbox reset.
    pub fn consequence(&self) -> Consequence {
        match self {
            ErrorType::RuntimeExitError
            | ErrorType::RuntimeInvalidEntrypoint
            | ErrorType::RuntimeTruncatedResponse
            | ErrorType::RuntimeRestoreError
            | ErrorType::SandboxTimedout
            | ErrorType::SandboxFailure
            | ErrorType::SandboxShutdown
            | ErrorType::ExtensionCrash
            | ErrorType::ExtensionInitError => Consequence::Reset,
            _ => Consequence::None,
        }
    }

    /// Whether this failure forces a reset (shorthand for [`ErrorType::consequence`]).
    pub fn forces_reset(&self) -> bool {
        self.consequence() == Consequence::Reset
    }
}

impl fmt::Display for ErrorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&str> for ErrorType {
    fn from(s: &str) -> Self {
        match s.parse() {
            Ok(t) => t,
            Err(never) => match never {},
        }
    }
}

impl Serialize for ErrorType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ErrorType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(ErrorType::from(s.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fixed_variant_round_trips_through_its_string() {
        for t in ErrorType::ALL {
            let parsed: ErrorType = t.as_str().into();
            assert_eq!(&parsed, t, "{t}");
            assert!(!matches!(parsed, ErrorType::Custom(_)), "{t}");
        }
    }

    #[test]
    fn strings_are_distinct() {
        let mut seen = std::collections::HashSet::new();
        for t in ErrorType::ALL {
            assert!(seen.insert(t.as_str()), "duplicate {t}");
        }
    }

    #[test]
    fn contract_strings() {
        assert_eq!(ErrorType::InvalidRequestId.as_str(), "InvalidRequestID");
        assert_eq!(ErrorType::RuntimeExitError.as_str(), "Runtime.ExitError");
        assert_eq!(ErrorType::SandboxTimedout.as_str(), "Sandbox.Timedout");
        assert_eq!(
            ErrorType::FunctionResponseSizeTooLarge.as_str(),
            "Function.ResponseSizeTooLarge"
        );
        assert_eq!(
            ErrorType::TooManyRequestsException.to_string(),
            "TooManyRequestsException"
        );
    }

    #[test]
    fn unknown_strings_are_custom() {
        assert_eq!(
            ErrorType::from("Runtime.MyOwn"),
            ErrorType::Custom("Runtime.MyOwn".into())
        );
    }

    #[test]
    fn sanitising_keeps_well_formed_types() {
        assert_eq!(
            ErrorType::from_runtime("Runtime.ConfigError").as_str(),
            "Runtime.ConfigError"
        );
        assert_eq!(
            ErrorType::from_runtime("Function.Oops2").as_str(),
            "Function.Oops2"
        );
        assert_eq!(
            ErrorType::from_runtime("Runtime.ExitError"),
            ErrorType::RuntimeExitError
        );
    }

    #[test]
    fn sanitising_reduces_everything_else() {
        for (raw, want) in [
            ("", ErrorType::RuntimeUnknown),
            ("Unhandled", ErrorType::RuntimeUnknown),
            ("alloc::string::String", ErrorType::RuntimeUnknown),
            ("Runtime.", ErrorType::RuntimeUnknown),
            ("Runtime.lower", ErrorType::RuntimeUnknown),
            ("Runtime.Has Space", ErrorType::RuntimeUnknown),
            ("Function.", ErrorType::FunctionUnknown),
            ("Function.bad-name", ErrorType::FunctionUnknown),
            ("runtime.Lower", ErrorType::RuntimeUnknown),
        ] {
            assert_eq!(ErrorType::from_runtime(raw), want, "{raw:?}");
        }
    }

    #[test]
    fn reset_rules() {
        assert!(ErrorType::RuntimeExitError.forces_reset());
        assert!(ErrorType::SandboxTimedout.forces_reset());
        assert!(ErrorType::ExtensionCrash.forces_reset());
        assert!(!ErrorType::FunctionUnknown.forces_reset());
        assert!(!ErrorType::FunctionResponseSizeTooLarge.forces_reset());
        assert!(!ErrorType::Custom("Function.X".into()).forces_reset());
    }

    #[test]
    fn serde_is_the_wire_string() {
        let json = serde_json::to_string(&ErrorType::SandboxTimedout).unwrap_or_default();
        assert_eq!(json, "\"Sandbox.Timedout\"");
        let back: ErrorType = serde_json::from_str(&json).unwrap_or(ErrorType::RuntimeUnknown);
        assert_eq!(back, ErrorType::SandboxTimedout);
    }
}
