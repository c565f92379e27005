//! The messages of the failures the engine reports (SPEC §4), in one place.

use std::time::Duration;

use fatalerror::ErrorType;
use interop::{FunctionError, RequestId};

use crate::supervisor::ExitReason;

fn prefixed(id: Option<&RequestId>, text: &str) -> String {
    match id {
        Some(id) => format!("RequestId: {id} Error: {text}"),
        None => text.to_owned(),
    }
}

/// The runtime process exited during an invoke (or a suppressed init, with the id).
pub fn runtime_exit(id: Option<&RequestId>, reason: ExitReason) -> FunctionError {
    let text = match reason {
        ExitReason::Code(0) => "Runtime exited without providing a reason".to_owned(),
        other => format!("Runtime exited with error: {other}"),
    };
    FunctionError::new(ErrorType::RuntimeExitError, prefixed(id, &text))
}

/// The invoke ran past the function timeout.
pub fn timed_out(id: &RequestId, timeout: Duration) -> FunctionError {
    FunctionError::new(
        ErrorType::SandboxTimedout,
        prefixed(
            Some(id),
            &format!("Task timed out after {:.2} seconds", timeout.as_secs_f64()),
        ),
    )
}

/// The (eager) init ran past the init timeout.
pub fn init_timed_out(timeout: Duration) -> FunctionError {
    FunctionError::new(
        ErrorType::SandboxTimedout,
        format!(
            "Init phase timed out after {:.2} seconds",
            timeout.as_secs_f64()
        ),
    )
}

/// The runtime's after-restore hooks ran past the restore timeout.
pub fn restore_timed_out(timeout: Duration) -> FunctionError {
    FunctionError::new(
        ErrorType::SandboxTimedout,
        format!(
            "Restore phase timed out after {:.2} seconds",
            timeout.as_secs_f64()
        ),
    )
}

/// The bootstrap could not be started.
pub fn invalid_entrypoint(id: Option<&RequestId>, detail: &str) -> FunctionError {
    FunctionError::new(ErrorType::RuntimeInvalidEntrypoint, prefixed(id, detail))
}

/// An extension process exited during init or an invoke.
pub fn extension_crash(id: Option<&RequestId>, name: &str, reason: ExitReason) -> FunctionError {
    FunctionError::new(
        ErrorType::ExtensionCrash,
        prefixed(id, &format!("Extension {name} exited with error: {reason}")),
    )
}

/// An extension process exited during init in a sandbox that shares the
/// host's network with other sandboxes: say what a fixed port does there.
pub fn extension_crash_shared_network(name: &str, reason: ExitReason) -> FunctionError {
    FunctionError::new(
        ErrorType::ExtensionCrash,
        format!(
            "Extension {name} exited with error: {reason} (this sandbox shares the network with \
             the other sandboxes of rapid: an extension that listens on a fixed port, such as \
             lambda-extension's 9002/9003, can run in one sandbox at a time; see docs/api.md)"
        ),
    )
}

/// An extension called `/init/error`.
pub fn extension_init_error(name: &str, error_type: &str) -> FunctionError {
    FunctionError::new(
        ErrorType::ExtensionInitError,
        format!("Extension {name} reported an init error: {error_type}"),
    )
}

/// An extension could not be started.
pub fn extension_launch(name: &str, detail: &str) -> FunctionError {
    FunctionError::new(
        ErrorType::ExtensionCrash,
        format!("Extension {name} could not be started: {detail}"),
    )
}

/// A control-API Reset arrived while the invoke ran.
pub fn reset_during_invoke(id: &RequestId) -> FunctionError {
    FunctionError::new(
        ErrorType::SandboxFailure,
        prefixed(
            Some(id),
            "The sandbox was reset by the platform during the invoke",
        ),
    )
}

/// rapid is shutting down while the invoke ran.
pub fn shutting_down(id: &RequestId) -> FunctionError {
    FunctionError::new(
        ErrorType::SandboxShutdown,
        prefixed(Some(id), "The sandbox is shutting down"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::signal::Signal;

    #[test]
    fn wording() {
        let id = RequestId::from_string("r1".into());
        assert_eq!(
            runtime_exit(Some(&id), ExitReason::Code(3)).error_message,
            "RequestId: r1 Error: Runtime exited with error: exit status 3"
        );
        assert_eq!(
            runtime_exit(Some(&id), ExitReason::Signal(Signal::SIGKILL)).error_message,
            "RequestId: r1 Error: Runtime exited with error: signal: killed"
        );
        assert_eq!(
            runtime_exit(Some(&id), ExitReason::Code(0)).error_message,
            "RequestId: r1 Error: Runtime exited without providing a reason"
        );
        assert_eq!(
            runtime_exit(None, ExitReason::Code(1)).error_message,
            "Runtime exited with error: exit status 1"
        );
        let t = timed_out(&id, Duration::from_secs(1));
        assert_eq!(t.error_type, ErrorType::SandboxTimedout);
        assert_eq!(
            t.error_message,
            "RequestId: r1 Error: Task timed out after 1.00 seconds"
        );
        assert_eq!(
            timed_out(&id, Duration::from_millis(1500)).error_message,
            "RequestId: r1 Error: Task timed out after 1.50 seconds"
        );
    }
}
