//! What the Lambda backend needs to run a function: its identity, its
//! budgets, its files, and the lifecycle policies. No front's setting.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::sandbox::{FunctionId, OneShot};

/// The bootstrap to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bootstrap {
    /// A program and its arguments.
    Command {
        /// The program.
        program: PathBuf,
        /// Its arguments.
        args: Vec<String>,
    },
    /// Nothing executable was found: every init fails with `Runtime.InvalidEntrypoint`.
    Missing(String),
}

/// Who starts the first init.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifecycle {
    /// The sandbox initialises at once and restores by itself (SPEC §2).
    Eager,
    /// A platform drives it: init waits for an Init command, a snapshot for a
    /// Restore command.
    PlatformDriven,
}

/// SnapStart-style init caching.
#[derive(Debug, Clone)]
pub struct InitCaching {
    /// The restore budget.
    pub restore_timeout: Duration,
    /// Credentials served to the restored runtime, when configured.
    pub credentials: Option<runtime_api::Credentials>,
}

/// The Lambda backend's configuration.
#[derive(Debug, Clone)]
pub struct LambdaConfig {
    /// The function.
    pub function: FunctionId,
    /// Memory size, MB (reported, not enforced).
    pub memory_size_mb: u64,
    /// `_HANDLER`.
    pub handler: Option<String>,
    /// The function timeout.
    pub timeout: Duration,
    /// The init timeout.
    pub init_timeout: Duration,
    /// Invocations that may wait while one runs.
    pub max_queue: usize,
    /// Where the sandbox's Runtime API listens (its `AWS_LAMBDA_RUNTIME_API`).
    pub runtime_api_address: SocketAddr,
    /// External extensions.
    pub extensions_dir: PathBuf,
    /// What to run.
    pub bootstrap: Bootstrap,
    /// The function's own variables, over rapid's environment (a
    /// control-API Init's come on top).
    pub environment: Vec<(String, String)>,
    /// Largest streamed response, bytes.
    pub stream_cap_bytes: u64,
    /// Lambda's streaming bandwidth shaping.
    pub stream_shaping: bool,
    /// Init caching, when on.
    pub init_caching: Option<InitCaching>,
    /// Sealed execution.
    pub one_shot: Option<OneShot>,
    /// Emptied between one-shot sandboxes.
    pub scratch_dir: Option<PathBuf>,
    /// Who starts the first init.
    pub lifecycle: Lifecycle,
    /// Other sandboxes share this one's network (a pool, several
    /// functions): an extension's fixed port may be taken.
    pub shares_network: bool,
    /// The function's log format and levels.
    pub log_controls: crate::log_controls::LogControls,
    /// Lambda Managed Instances: the runtime takes up to this many invokes
    /// at once (`AWS_LAMBDA_MAX_CONCURRENCY`); `None`: one at a time.
    pub sandbox_concurrency: Option<usize>,
}
