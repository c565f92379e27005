//! A snapshot of one sandbox, as `/v1/state` lists it.

use interop::{InitResult, InvokeResult};

/// One sandbox's state.
#[derive(Debug, Clone, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SandboxState {
    /// The backend (`lambda`, `http`, `streaming`, …).
    pub mode: &'static str,
    /// The lifecycle phase (`NotStarted`, `Initializing`, `Ready`, `Invoking`,
    /// `InitFailed`, `Snapshotted`, `Restoring`, `Stopped`).
    pub phase: &'static str,
    /// `Starting`, `Ready` or `Unhealthy`.
    pub health: &'static str,
    /// Why it is unhealthy.
    pub why: Option<String>,
    /// Generation: how many times its processes were replaced.
    pub generation: u64,
    /// The pid of its runtime (or function server) process.
    pub runtime_pid: Option<i32>,
    /// Registered extensions' names.
    pub extensions: Vec<String>,
    /// Invocations being served now.
    pub in_flight: usize,
    /// Invocations admitted and waiting.
    pub queued: usize,
    /// Invocations it answered.
    pub invokes: u64,
    /// Milliseconds since it started.
    pub age_ms: u64,
    /// The last init's result.
    pub last_init: Option<InitResult>,
    /// The last invoke's result.
    pub last_invoke: Option<InvokeResult>,
    /// A pool of several sandboxes: each of them (numbered by `index`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sandboxes: Vec<SandboxState>,
    /// Its number in its function's pool.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
}
