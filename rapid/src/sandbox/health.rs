//! Where a sandbox stands, as every front sees it.

/// A sandbox's health.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// Starting (or restarting); invocations wait for it.
    Starting,
    /// Serving.
    Ready,
    /// Down (why): invocations fail at once.
    Unhealthy(String),
}

impl Health {
    /// Its name in `/v1/state`.
    pub fn name(&self) -> &'static str {
        match self {
            Health::Starting => "Starting",
            Health::Ready => "Ready",
            Health::Unhealthy(_) => "Unhealthy",
        }
    }

    /// Why it is unhealthy, if it is.
    pub fn why(&self) -> Option<&str> {
        match self {
            Health::Unhealthy(why) => Some(why),
            _ => None,
        }
    }
}
