//! Lifecycle policies every backend knows.

/// Sealed execution: no invocation's sandbox is reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OneShot {
    /// A fresh sandbox for every invocation.
    Recycle,
    /// One invocation, then the sandbox ends (and rapid exits).
    Exit,
}
