//! The limits of the fronts callers outside the sandbox reach (the Invoke
//! API, the control API, the OpenFaaS front, /metrics): header, body and idle
//! timeouts and the bound on open connections. `0` turns a timeout off.

use std::time::Duration;

use runtime_api::server::{Limits, BODY_TIMEOUT, HEADER_TIMEOUT, IDLE_TIMEOUT};

use crate::parse::duration as parse_duration;

/// The command line of the limits.
#[derive(Debug, Clone, clap::Args)]
pub struct LimitArgs {
    /// Deadline for a request's headers, from its first byte (and for a new
    /// connection's first request); 0 = none.
    #[arg(long, env = "RAPID_HEADER_TIMEOUT", default_value = "10", value_parser = parse_duration, value_name = "DURATION")]
    pub header_timeout: Duration,

    /// A request body that makes no progress this long is answered 408; 0 = none.
    #[arg(long, env = "RAPID_BODY_TIMEOUT", default_value = "30", value_parser = parse_duration, value_name = "DURATION")]
    pub body_timeout: Duration,

    /// A kept-alive connection with no request this long is closed; 0 = none.
    #[arg(long, env = "RAPID_KEEPALIVE_TIMEOUT", default_value = "60", value_parser = parse_duration, value_name = "DURATION")]
    pub keepalive_timeout: Duration,

    /// Most connections open at once over all those fronts (default: half of
    /// what RLIMIT_NOFILE leaves after 64, at least 16). At the bound new
    /// connections wait in the listen backlog and idle ones are closed first.
    #[arg(long, env = "RAPID_MAX_CONNECTIONS", value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: Option<u32>,
}

/// The limits as the fronts' accept loops take them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrontLimits {
    /// The timeouts.
    pub timeouts: Limits,
    /// The connection bound (None: from the fd limit at start-up).
    pub max_connections: Option<usize>,
}

impl Default for FrontLimits {
    fn default() -> Self {
        FrontLimits {
            timeouts: Limits {
                header: Some(HEADER_TIMEOUT),
                body: Some(BODY_TIMEOUT),
                idle: Some(IDLE_TIMEOUT),
            },
            max_connections: None,
        }
    }
}

fn on(d: Duration) -> Option<Duration> {
    (!d.is_zero()).then_some(d)
}

impl From<&LimitArgs> for FrontLimits {
    fn from(a: &LimitArgs) -> Self {
        FrontLimits {
            timeouts: Limits {
                header: on(a.header_timeout),
                body: on(a.body_timeout),
                idle: on(a.keepalive_timeout),
            },
            max_connections: a.max_connections.map(|n| n as usize),
        }
    }
}
