//! Lifecycle and scaling policies every backend knows.

use std::time::Duration;

/// Sealed execution: no invocation's sandbox is reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OneShot {
    /// A fresh sandbox for every invocation.
    Recycle,
    /// One invocation, then the sandbox ends (and rapid exits).
    Exit,
}

/// How many sandboxes a function gets and how invocations wait for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scaling {
    /// At most this many sandboxes (`--concurrency`).
    pub concurrency: usize,
    /// Sandboxes initialised at start and kept (`--min-warm`).
    pub min_warm: usize,
    /// Synchronous invocations that may wait for a sandbox (`--max-queue`);
    /// 0: one beyond the concurrency is throttled.
    pub max_queue: usize,
    /// `Event` invocations that may wait (`--max-event-queue`).
    pub max_event_queue: usize,
    /// Sandboxes beyond `min_warm` idle this long are shut down.
    pub idle_timeout: Option<Duration>,
    /// Which idle sandbox takes an invocation.
    pub order: Order,
    /// A sandbox serves one tenant (`X-Amz-Tenant-Id`) only; invocations
    /// without one are refused (`--tenant-isolation`, AWS's `PER_TENANT`).
    pub tenant_isolation: bool,
    /// Invocations one sandbox runs at once: 1, or `N` in Lambda Managed
    /// Instances mode (`AWS_LAMBDA_MAX_CONCURRENCY`).
    pub per_sandbox: usize,
}

/// Which idle sandbox an invocation goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// The most recently used (a burst reuses the warm ones; Lambda's way).
    MostRecent,
    /// The least recently used, ready ones first (one-shot: the one that has
    /// had the longest to initialise its fresh runtime).
    LeastRecent,
}

impl Default for Scaling {
    fn default() -> Self {
        Scaling {
            concurrency: 1,
            min_warm: 1,
            max_queue: 1024,
            max_event_queue: 1024,
            idle_timeout: None,
            order: Order::MostRecent,
            tenant_isolation: false,
            per_sandbox: 1,
        }
    }
}
