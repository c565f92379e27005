//! Control commands: a platform drives a sandbox through its lifecycle.

use interop::{
    Init, InitResult, Reset, ResetResult, RestoreResult, ShutdownReason, ShutdownSuccess,
};

/// A control command.
#[derive(Debug)]
pub enum Command {
    /// Start a sandbox generation with these parameters (empty fields keep
    /// the configured values).
    Init(Box<Init>),
    /// Stop the sandbox's processes; the next generation waits for Init.
    Reset(Reset),
    /// Shut down for good; `exit`: rapid exits afterwards.
    Shutdown {
        /// Why.
        reason: ShutdownReason,
        /// rapid exits once the sandbox is down.
        exit: bool,
    },
    /// Resume a snapshotted sandbox (init caching).
    Restore,
}

impl Command {
    /// The command's name, for refusals.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Init(_) => "Init",
            Command::Reset(_) => "Reset",
            Command::Shutdown { .. } => "Shutdown",
            Command::Restore => "Restore",
        }
    }
}

/// The typed answer to a command.
#[derive(Debug, Clone)]
pub enum CommandReply {
    /// To Init.
    Init(InitResult),
    /// To Reset.
    Reset(ResetResult),
    /// To Shutdown.
    Shutdown(ShutdownSuccess),
    /// To Restore.
    Restore(RestoreResult),
}
