//! Where the sandbox is in its lifecycle, and what each phase allows.

use std::time::{Duration, Instant};

use interop::{ErrorInvokeResponse, RequestId};
use tokio::sync::oneshot;

use super::InvokeRequest;

/// An init in progress.
#[derive(Debug)]
pub struct Initializing {
    pub started: Instant,
    pub deadline: Instant,
    /// The budget (init timeout, or the function timeout for a suppressed init).
    pub timeout: Duration,
    /// The invoke a suppressed init runs for.
    pub waiting: Option<InvokeRequest>,
}

/// An invoke in progress.
#[derive(Debug)]
pub struct Running {
    pub id: RequestId,
    pub started: Instant,
    pub deadline: Instant,
    pub tail: Option<oneshot::Sender<Vec<u8>>>,
    pub init_duration: Option<Duration>,
    pub produced_bytes: u64,
}

/// The lifecycle phase (SPEC §2).
#[derive(Debug)]
pub enum Phase {
    /// The runtime (re)starts; invokes wait in the queue.
    Initializing(Initializing),
    /// The runtime waits on `/next`.
    Ready,
    /// An invoke runs.
    Invoking(Running),
    /// The last init failed; the next invoke runs a suppressed init.
    InitFailed(ErrorInvokeResponse),
    /// Shut down (or between steps of a transition).
    Stopped,
}

impl Phase {
    /// The instant at which this phase fails, if it has a budget.
    pub fn deadline(&self) -> Option<Instant> {
        match self {
            Phase::Initializing(i) => Some(i.deadline),
            Phase::Invoking(r) => Some(r.deadline),
            _ => None,
        }
    }

    /// Whether the next queued invoke may be taken now.
    pub fn accepts_invokes(&self) -> bool {
        matches!(self, Phase::Ready | Phase::InitFailed(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fatalerror::ErrorType;
    use interop::FunctionError;

    #[test]
    fn only_ready_and_failed_init_take_invokes() {
        let now = Instant::now();
        let init = Phase::Initializing(Initializing {
            started: now,
            deadline: now + Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            waiting: None,
        });
        let run = Phase::Invoking(Running {
            id: RequestId::generate(),
            started: now,
            deadline: now + Duration::from_secs(2),
            tail: None,
            init_duration: None,
            produced_bytes: 0,
        });
        let failed = Phase::InitFailed(ErrorInvokeResponse::from_error(FunctionError::new(
            ErrorType::RuntimeExitError,
            "x",
        )));
        assert!(!init.accepts_invokes());
        assert!(!run.accepts_invokes());
        assert!(Phase::Ready.accepts_invokes());
        assert!(failed.accepts_invokes());
        assert!(!Phase::Stopped.accepts_invokes());
        assert_eq!(init.deadline(), Some(now + Duration::from_secs(1)));
        assert_eq!(run.deadline(), Some(now + Duration::from_secs(2)));
        assert_eq!(Phase::Ready.deadline(), None);
        assert_eq!(failed.deadline(), None);
    }
}
