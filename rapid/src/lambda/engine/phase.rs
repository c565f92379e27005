//! Where the sandbox is in its lifecycle, and what each phase allows.

use std::time::{Duration, Instant};

use interop::{
    FunctionError, InitResult, InvokeMetrics, InvokeResult, RequestId, ResponseMode, RestoreResult,
};
use tokio::sync::oneshot;

use super::{ms, InvokeRequest};

/// An init in progress.
#[derive(Debug)]
pub struct Initializing {
    pub started: Instant,
    pub deadline: Instant,
    /// The budget (init timeout, or the function timeout for a suppressed init).
    pub timeout: Duration,
    /// The invoke a suppressed init runs for.
    pub waiting: Option<InvokeRequest>,
    /// External extensions that have not registered yet; the runtime starts when empty.
    pub awaiting_registration: Vec<String>,
    /// The runtime process was started.
    pub runtime_started: bool,
    /// The runtime called `/next`.
    pub runtime_ready: bool,
    /// A control-API caller waiting for the typed result.
    pub reply: Option<oneshot::Sender<InitResult>>,
    /// Init caching: the runtime ended its init in `/restore/next`.
    pub snapshot_ready: bool,
}

/// A Restore in progress.
#[derive(Debug)]
pub struct Restoring {
    pub started: Instant,
    pub deadline: Instant,
    /// The budget the deadline came from (for the timeout message).
    pub timeout: Duration,
    /// The restore could not even start: it fails with this at once.
    pub cannot_start: Option<FunctionError>,
    /// A control-API caller waiting for the result.
    pub reply: Option<oneshot::Sender<RestoreResult>>,
    /// The invoke of a suppressed init that waits for this restore.
    pub waiting: Option<InvokeRequest>,
}

/// An invoke in progress.
#[derive(Debug)]
pub struct Running {
    pub id: RequestId,
    pub started: Instant,
    pub deadline: Instant,
    /// The budget the deadline came from (for the timeout message).
    pub timeout: Duration,
    pub tail: Option<oneshot::Sender<Vec<u8>>>,
    pub init_duration: Option<Duration>,
    pub produced_bytes: u64,
    /// How the response came, and when it was complete.
    pub response: Option<(ResponseMode, Duration)>,
    /// The runtime called `/next` again.
    pub runtime_ready: bool,
    /// The function's error, if it reported one.
    pub function_error: Option<FunctionError>,
    /// A control-API caller waiting for the typed result.
    pub result: Option<oneshot::Sender<InvokeResult>>,
    /// Its place in the queue bound, released when the invoke is over.
    pub _admission: Option<crate::sandbox::Admission>,
    /// `X-Amz-Tenant-Id`, for the telemetry records.
    pub tenant_id: Option<String>,
}

impl Running {
    /// The invoke's metrics; `peak_mb` is the runtime tree's peak memory.
    pub fn metrics(&self, peak_mb: u64) -> InvokeMetrics {
        let (mode, responded) = self.response.unwrap_or_default();
        InvokeMetrics {
            duration_ms: ms(self.started.elapsed()),
            response_duration_ms: ms(responded),
            produced_bytes: self.produced_bytes,
            response_mode: mode,
            init_duration_ms: self.init_duration.map(ms),
            max_memory_used_mb: peak_mb,
        }
    }
}

/// Lambda Managed Instances: the runtime's workers serve up to `max`
/// invokes at once, each with its own deadline.
#[derive(Debug)]
pub struct Serving {
    /// `AWS_LAMBDA_MAX_CONCURRENCY`.
    pub max: usize,
    /// The invokes the workers hold, in dispatch order.
    pub running: Vec<Running>,
}

impl Serving {
    /// The earliest deadline of the running invokes.
    pub fn deadline(&self) -> Option<Instant> {
        self.running.iter().map(|r| r.deadline).min()
    }

    /// Whether another invoke may be dispatched (a worker must wait, too).
    pub fn has_room(&self) -> bool {
        self.running.len() < self.max
    }

    /// Take the running invoke `id` out.
    pub fn take(&mut self, id: &RequestId) -> Option<Running> {
        let i = self.running.iter().position(|r| r.id == *id)?;
        Some(self.running.remove(i))
    }

    /// Take out every invoke whose deadline is at or before `now`.
    pub fn expired(&mut self, now: Instant) -> Vec<Running> {
        let (gone, kept) = std::mem::take(&mut self.running)
            .into_iter()
            .partition(|r| r.deadline <= now);
        self.running = kept;
        gone
    }
}

/// The lifecycle phase (SPEC §2).
#[derive(Debug)]
pub enum Phase {
    /// No sandbox yet: waiting for a control-API Init (or after its Reset).
    NotStarted,
    /// The sandbox (re)starts; invokes wait in the queue.
    Initializing(Initializing),
    /// Init caching: init is done, the runtime waits in `/restore/next`.
    Snapshotted,
    /// Init caching: the runtime runs its after-restore hooks.
    Restoring(Restoring),
    /// The runtime waits on `/next`.
    Ready,
    /// An invoke runs.
    Invoking(Running),
    /// LMI: init is done; the workers serve invokes side by side.
    Serving(Serving),
    /// The last init failed; the next invoke runs a suppressed init.
    InitFailed,
    /// Shut down (or between steps of a transition).
    Stopped,
}

impl Phase {
    /// The instant at which this phase fails, if it has a budget.
    pub fn deadline(&self) -> Option<Instant> {
        match self {
            Phase::Initializing(i) => Some(i.deadline),
            Phase::Invoking(r) => Some(r.deadline),
            Phase::Restoring(r) => Some(r.deadline),
            Phase::Serving(s) => s.deadline(),
            _ => None,
        }
    }

    /// Whether the next queued invoke may be taken now (LMI: if a worker
    /// waits on `/next`, which the engine asks the Runtime API).
    pub fn accepts_invokes(&self) -> bool {
        match self {
            Phase::Ready | Phase::InitFailed => true,
            Phase::Serving(s) => s.has_room(),
            _ => false,
        }
    }

    /// Whether a front should route to this sandbox: starting while no init
    /// has completed (or a restore runs), ready once invokes can run (after a
    /// failed init too: each invoke then retries it, as Lambda does).
    pub fn health(&self) -> crate::sandbox::Health {
        use crate::sandbox::Health;
        match self {
            Phase::Ready | Phase::Invoking(_) | Phase::Serving(_) | Phase::InitFailed => {
                Health::Ready
            }
            Phase::NotStarted
            | Phase::Initializing(_)
            | Phase::Snapshotted
            | Phase::Restoring(_) => Health::Starting,
            Phase::Stopped => Health::Unhealthy("the sandbox is shut down".into()),
        }
    }

    /// The phase's name, as `GET /v1/state` reports it.
    pub fn name(&self) -> &'static str {
        match self {
            Phase::NotStarted => "NotStarted",
            Phase::Initializing(_) => "Initializing",
            Phase::Ready => "Ready",
            Phase::Invoking(_) => "Invoking",
            Phase::Serving(s) if s.running.is_empty() => "Ready",
            Phase::Serving(_) => "Invoking",
            Phase::InitFailed => "InitFailed",
            Phase::Snapshotted => "Snapshotted",
            Phase::Restoring(_) => "Restoring",
            Phase::Stopped => "Stopped",
        }
    }

    /// The request id this phase serves, if any.
    pub fn request_id(&self) -> Option<&RequestId> {
        match self {
            Phase::Invoking(r) => Some(&r.id),
            Phase::Initializing(i) => i.waiting.as_ref().map(|w| &w.id),
            Phase::Restoring(r) => r.waiting.as_ref().map(|w| &w.id),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ready_and_failed_init_take_invokes() {
        let now = Instant::now();
        let init = Phase::Initializing(Initializing {
            started: now,
            deadline: now + Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            waiting: None,
            awaiting_registration: Vec::new(),
            runtime_started: false,
            runtime_ready: false,
            reply: None,
            snapshot_ready: false,
        });
        let id = RequestId::generate();
        let run = Phase::Invoking(running(&id, now + Duration::from_secs(2)));
        let failed = Phase::InitFailed;
        assert!(!init.accepts_invokes());
        assert!(!run.accepts_invokes());
        assert!(Phase::Ready.accepts_invokes());
        assert!(failed.accepts_invokes());
        assert!(!Phase::Stopped.accepts_invokes());
        assert!(!Phase::NotStarted.accepts_invokes());
        assert_eq!(Phase::NotStarted.name(), "NotStarted");
        assert_eq!(init.deadline(), Some(now + Duration::from_secs(1)));
        assert_eq!(run.deadline(), Some(now + Duration::from_secs(2)));
        assert_eq!(Phase::Ready.deadline(), None);
        assert_eq!(failed.deadline(), None);
        assert_eq!(run.request_id(), Some(&id));
        assert_eq!(init.request_id(), None);
    }

    fn running(id: &RequestId, deadline: Instant) -> Running {
        Running {
            id: id.clone(),
            started: Instant::now(),
            deadline,
            timeout: Duration::from_secs(1),
            tail: None,
            init_duration: None,
            produced_bytes: 0,
            response: None,
            runtime_ready: false,
            function_error: None,
            result: None,
            _admission: None,
            tenant_id: None,
        }
    }

    #[test]
    fn serving_takes_up_to_max_and_times_out_each_invoke_alone() {
        let now = Instant::now();
        let (a, b) = (RequestId::generate(), RequestId::generate());
        let mut s = Serving {
            max: 2,
            running: Vec::new(),
        };
        assert!(s.has_room());
        assert_eq!(s.deadline(), None);
        s.running.push(running(&a, now + Duration::from_secs(2)));
        s.running.push(running(&b, now + Duration::from_secs(1)));
        assert!(!s.has_room());
        assert_eq!(s.deadline(), Some(now + Duration::from_secs(1)));
        let gone = s.expired(now + Duration::from_secs(1));
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].id, b);
        assert!(s.has_room());
        assert_eq!(s.deadline(), Some(now + Duration::from_secs(2)));
        assert!(s.take(&b).is_none());
        assert!(s.take(&a).is_some());
        let phase = Phase::Serving(s);
        assert!(phase.accepts_invokes());
        assert_eq!(phase.name(), "Ready");
        assert_eq!(phase.health(), crate::sandbox::Health::Ready);
    }
}
