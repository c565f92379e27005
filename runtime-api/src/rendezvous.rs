//! The rendezvous between the lifecycle engine and the runtime's HTTP calls.
//!
//! One `Mutex<Inner>` guards the runtime's state, its parked `/next` call and the
//! invoke in flight. It is never held across an `.await`: handlers validate and
//! transition under the lock, then do their I/O outside it.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use fatalerror::ErrorType;
use interop::{ErrorInvokeResponse, FunctionError, Invoke, RequestId, ResponseMode};
use tokio::sync::{mpsc, oneshot};

use crate::error::ApiError;
use crate::outcome::{InvokeOutcome, OutcomeSender};
use crate::state::{RuntimeCall, RuntimeState};

/// An invoke as handed to the runtime's `/next`.
#[derive(Debug)]
pub struct Dispatched {
    /// The invoke's metadata.
    pub invoke: Invoke,
    /// The event payload.
    pub payload: Bytes,
    /// `Lambda-Runtime-Deadline-Ms`: epoch milliseconds.
    pub deadline_epoch_ms: u64,
    /// `Lambda-Runtime-Invocation-Id`: fresh for every delivery.
    pub invocation_id: String,
}

impl Dispatched {
    /// The same event under a fresh invocation id (a second delivery).
    fn redelivered(&self) -> Dispatched {
        Dispatched {
            invoke: self.invoke.clone(),
            payload: self.payload.clone(),
            deadline_epoch_ms: self.deadline_epoch_ms,
            invocation_id: fresh_invocation_id(),
        }
    }
}

fn fresh_invocation_id() -> String {
    interop::random_uuid()
}

/// How many invocation ids of timed-out or reset invokes are remembered
/// (their late answers get 410).
const STALE_IDS: usize = 1000;

/// What the Runtime API tells the lifecycle engine.
#[derive(Debug)]
pub enum RuntimeEvent {
    /// The runtime called `/next`: init is done, or the previous invoke is.
    Ready {
        /// Sandbox generation the call belongs to.
        generation: u64,
    },
    /// The runtime called `/init/error`.
    InitError {
        /// Sandbox generation.
        generation: u64,
        /// What it reported.
        error: ErrorInvokeResponse,
    },
    /// An extension registered.
    ExtensionRegistered {
        /// Sandbox generation.
        generation: u64,
        /// Its name.
        name: String,
        /// Whether it is an executable of the extensions directory.
        external: bool,
    },
    /// An extension called `/event/next`.
    ExtensionReady {
        /// Sandbox generation.
        generation: u64,
    },
    /// An extension reported `/init/error` or `/exit/error`.
    ExtensionError {
        /// Sandbox generation.
        generation: u64,
        /// Its name.
        name: String,
        /// Which call.
        kind: ExtensionErrorKind,
        /// The reported error type.
        error_type: String,
    },
    /// Init caching: the runtime called `/restore/next` (ready for a snapshot).
    RestoreReady {
        /// Sandbox generation.
        generation: u64,
    },
    /// The runtime called `/restore/error`.
    RestoreError {
        /// Sandbox generation.
        generation: u64,
        /// What it reported.
        error: ErrorInvokeResponse,
    },
    /// The invoke's response (or error) is complete.
    ResponseDone {
        /// Sandbox generation.
        generation: u64,
        /// The invoke.
        id: RequestId,
        /// Bytes produced for the invoker.
        produced_bytes: u64,
        /// Buffered or streamed.
        mode: ResponseMode,
        /// The function's error, when it posted `/error` or a stream failed.
        function_error: Option<FunctionError>,
    },
}

/// Why [`RuntimeHandle::dispatch`] refused an invoke.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    /// The runtime is not waiting for work.
    #[error("runtime is not ready (state {0})")]
    NotReady(&'static str),
}

struct Current {
    dispatched: Arc<Dispatched>,
    delivered: bool,
    reply: ReplySlot,
}

/// Where an invoke's outcome goes, shared by the response upload and the
/// engine: whoever takes it first answers the invoker. A deadline or a reset
/// answers even while an upload that will never finish holds its ticket.
#[derive(Clone)]
pub struct ReplySlot(Arc<std::sync::Mutex<Option<OutcomeSender>>>);

impl ReplySlot {
    fn new(reply: OutcomeSender) -> ReplySlot {
        ReplySlot(Arc::new(std::sync::Mutex::new(Some(reply))))
    }

    /// The sender, unless the invoker already had its outcome.
    pub fn take(&self) -> Option<OutcomeSender> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// What extensions are told about the function at registration; set by the
/// engine for each generation (a control-API Init may change it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FunctionInfo {
    /// `functionName`.
    pub name: String,
    /// `functionVersion`.
    pub version: String,
    /// `handler`.
    pub handler: Option<String>,
}

struct Inner {
    generation: u64,
    function: FunctionInfo,
    state: RuntimeState,
    parked: Option<oneshot::Sender<Arc<Dispatched>>>,
    current: Option<Current>,
    ext: extensions::Registry,
    /// Init caching: the runtime's parked `/restore/next`.
    restore_parked: Option<oneshot::Sender<()>>,
    /// Invocation ids of invokes that timed out or were reset, newest last.
    stale: std::collections::VecDeque<String>,
    /// LMI mode (`AWS_LAMBDA_MAX_CONCURRENCY`): the workers and their invokes;
    /// `current` and `parked` stay unused.
    workers: Option<workers::Workers>,
}

impl Inner {
    /// The invoke in flight will get no answer from the runtime any more.
    fn mark_stale(&mut self) {
        if let Some(c) = &self.current {
            if self.stale.len() == STALE_IDS {
                self.stale.pop_front();
            }
            self.stale.push_back(c.dispatched.invocation_id.clone());
        }
    }
}

/// Shared by the Runtime API handlers and the engine's [`RuntimeHandle`].
pub struct Rendezvous {
    inner: Mutex<Inner>,
    events: mpsc::UnboundedSender<RuntimeEvent>,
}

/// The result of a `/next` call that passed validation.
pub enum NextCall {
    /// An event is already waiting.
    Now(Arc<Dispatched>),
    /// Park until the engine dispatches (or the sandbox resets: sender dropped).
    Wait(oneshot::Receiver<Arc<Dispatched>>),
}

/// Permission to deliver the response or error of one invoke.
pub struct ResponseTicket {
    /// Sandbox generation.
    pub generation: u64,
    /// The invoke's id.
    pub id: RequestId,
    /// Where the outcome goes; empty once the invoker had one (a deadline
    /// passed, a reset).
    pub reply: ReplySlot,
}

fn epoch_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Rendezvous {
    /// A rendezvous for generation 0 and the channel its events go to.
    pub fn new() -> (Arc<Rendezvous>, mpsc::UnboundedReceiver<RuntimeEvent>) {
        Rendezvous::with_concurrency(None)
    }

    /// A rendezvous whose runtime takes up to `max` invokes at once (LMI
    /// mode: that many `/next` calls may wait), or one (`None`, classic).
    pub fn with_concurrency(
        max: Option<usize>,
    ) -> (Arc<Rendezvous>, mpsc::UnboundedReceiver<RuntimeEvent>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let r = Rendezvous {
            inner: Mutex::new(Inner {
                generation: 0,
                function: FunctionInfo::default(),
                state: RuntimeState::Started,
                parked: None,
                current: None,
                ext: extensions::Registry::default(),
                restore_parked: None,
                stale: std::collections::VecDeque::new(),
                workers: max.map(workers::Workers::new),
            }),
            events: tx,
        };
        (Arc::new(r), rx)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A poisoned lock means a handler panicked mid-update; the data is still
        // a valid state machine value, so carry on with it.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn emit(&self, event: RuntimeEvent) {
        // The engine owns the receiver for rapid's whole life; a send error only
        // happens during process exit, when nobody needs the event.
        let _ = self.events.send(event);
    }

    /// The function as extensions see it.
    pub fn function(&self) -> FunctionInfo {
        self.lock().function.clone()
    }

    /// `GET /next`.
    pub fn next(&self) -> Result<NextCall, ApiError> {
        let mut g = self.lock();
        if g.workers.is_some() {
            return self.next_worker(g);
        }
        if g.parked.as_ref().is_some_and(|p| !p.is_closed()) {
            // One runtime takes one event at a time: the waiting call keeps its place.
            return Err(ApiError::new(
                http::StatusCode::FORBIDDEN,
                ErrorType::InvalidStateTransition,
                "Another /next call is already waiting for an invoke: a runtime takes one event at a time",
            ));
        }
        let undelivered = g.current.as_ref().is_some_and(|c| !c.delivered);
        let from = g.state;
        let to = from
            .on(RuntimeCall::Next, undelivered)
            .map_err(ApiError::transition)?;
        g.state = to;
        if to == RuntimeState::Invoking {
            // The dispatched event's first /next went away: hand it out now.
            if let Some(c) = g.current.as_mut() {
                c.delivered = true;
                c.dispatched = Arc::new(c.dispatched.redelivered());
                return Ok(NextCall::Now(c.dispatched.clone()));
            }
        }
        g.current = None;
        let (tx, rx) = oneshot::channel();
        g.parked = Some(tx);
        let generation = g.generation;
        drop(g);
        if from != RuntimeState::Ready {
            self.emit(RuntimeEvent::Ready { generation });
        }
        Ok(NextCall::Wait(rx))
    }

    /// LMI: a worker's `/next` (the first one ends the runtime's init).
    fn next_worker(&self, mut g: MutexGuard<'_, Inner>) -> Result<NextCall, ApiError> {
        let to = g
            .state
            .on(RuntimeCall::Next, false)
            .map_err(ApiError::transition)?;
        let Some(w) = g.workers.as_mut() else {
            return Err(ApiError::transition(crate::state::InvalidTransition {
                from: g.state,
                call: RuntimeCall::Next,
            }));
        };
        let call = w.next()?;
        let waiting = w.idle();
        g.state = to;
        let generation = g.generation;
        drop(g);
        tracing::debug!(workers_waiting = waiting, "a worker called /next");
        // Every waiting worker is news for the engine: it may dispatch.
        self.emit(RuntimeEvent::Ready { generation });
        Ok(match call {
            workers::Next::Now(d) => NextCall::Now(d),
            workers::Next::Wait(rx) => NextCall::Wait(rx),
        })
    }

    /// Validate `/response` or `/error` for `id`: the id must be the invoke in
    /// flight (else 400 `InvalidRequestID`) and the call allowed now (else 403).
    fn check_invoke(
        &self,
        g: &Inner,
        id: &str,
        call: RuntimeCall,
    ) -> Result<RuntimeState, ApiError> {
        match &g.current {
            Some(c) if c.dispatched.invoke.id == *id => {}
            _ => return Err(ApiError::invalid_request_id(id)),
        }
        g.state.on(call, false).map_err(ApiError::transition)
    }

    /// The invocation id a runtime echoed on `/response` or `/error` for
    /// `id`: none is fine (older runtimes); one of an invoke that timed out
    /// or was reset is 410 `InvokeTimeout` (the runtime carries on); one that
    /// is not the current delivery of `id` is 400 `InvalidRequestID`.
    pub fn check_echo(&self, id: &str, invocation: Option<&str>) -> Result<(), ApiError> {
        let Some(inv) = invocation else {
            return Ok(());
        };
        let g = self.lock();
        if let Some(w) = &g.workers {
            return w.check_echo(id, inv);
        }
        if g.stale.iter().any(|s| s == inv) {
            return Err(ApiError::new(
                http::StatusCode::GONE,
                ErrorType::InvokeTimeout,
                "Invoke timeout",
            ));
        }
        match &g.current {
            Some(c) if c.dispatched.invocation_id == inv && c.dispatched.invoke.id == *id => Ok(()),
            _ => Err(ApiError::invalid_request_id(id)),
        }
    }

    /// Check that `/error` for `id` is allowed now (before reading its body).
    pub fn check_error(&self, id: &str) -> Result<(), ApiError> {
        let g = self.lock();
        if let Some(w) = &g.workers {
            return w.check(id);
        }
        self.check_invoke(&g, id, RuntimeCall::Error).map(|_| ())
    }

    /// `POST /invocation/{id}/response` begins: validation, then `Responding`.
    /// `validate` runs after the id and state checks and before any change.
    pub fn begin_response(
        &self,
        id: &str,
        validate: impl FnOnce() -> Result<(), ApiError>,
    ) -> Result<ResponseTicket, ApiError> {
        let mut g = self.lock();
        let generation = g.generation;
        if let Some(w) = g.workers.as_mut() {
            w.check(id)?;
            validate()?;
            let reply = w.begin_response(id)?;
            return Ok(ResponseTicket {
                generation,
                id: RequestId::from_string(id.to_owned()),
                reply,
            });
        }
        let to = self.check_invoke(&g, id, RuntimeCall::ResponseStart)?;
        validate()?;
        g.state = to;
        let generation = g.generation;
        let c = g
            .current
            .as_mut()
            .ok_or_else(|| ApiError::invalid_request_id(id))?;
        Ok(ResponseTicket {
            generation,
            id: c.dispatched.invoke.id.clone(),
            reply: c.reply.clone(),
        })
    }

    /// The response body has been handled (delivered, rejected, or cut off).
    pub fn end_response(
        &self,
        ticket: &ResponseTicket,
        produced_bytes: u64,
        mode: ResponseMode,
        function_error: Option<FunctionError>,
    ) {
        let ticket_generation = ticket.generation;
        let mut g = self.lock();
        if g.generation != ticket_generation {
            return;
        }
        let done = match g.workers.as_mut() {
            Some(w) => w.end_response(ticket.id.as_str()),
            None => match g.state.on(RuntimeCall::ResponseEnd, false) {
                Ok(to) => {
                    g.state = to;
                    true
                }
                Err(_) => false,
            },
        };
        if done {
            drop(g);
            self.emit(RuntimeEvent::ResponseDone {
                generation: ticket_generation,
                id: ticket.id.clone(),
                produced_bytes,
                mode,
                function_error,
            });
        }
    }

    /// A request hyper could not parse reached the Runtime API (and got a
    /// bare 400): if an invoke waits for its answer, that request was most
    /// likely it (an `/error` with a control byte in a header, say) — the
    /// invoke fails with `Runtime.Unknown` at once instead of at its deadline.
    pub fn malformed(&self, detail: &str) {
        let mut g = self.lock();
        // LMI: several invokes wait; nothing says which one it was.
        let Some(c) = g.current.as_ref().filter(|_| g.workers.is_none()) else {
            return;
        };
        let Ok(to) = g.state.on(RuntimeCall::Error, false) else {
            return;
        };
        let reply = c.reply.take();
        let id = c.dispatched.invoke.id.clone();
        g.state = to;
        let generation = g.generation;
        drop(g);
        let error = FunctionError::new(
            ErrorType::RuntimeUnknown,
            format!("RequestId: {id} Error: the runtime's answer was not valid HTTP ({detail})"),
        );
        tracing::warn!(request_id = %id, "{}", error.error_message);
        if let Some(reply) = reply {
            let _ = reply.send(InvokeOutcome::Error(ErrorInvokeResponse::from_error(
                error.clone(),
            )));
        }
        self.emit(RuntimeEvent::ResponseDone {
            generation,
            id,
            produced_bytes: 0,
            mode: ResponseMode::Buffered,
            function_error: Some(error),
        });
    }

    /// `POST /invocation/{id}/error`: validation and the transition in one step;
    /// the caller has already read the body.
    pub fn invocation_error(&self, id: &str, error: ErrorInvokeResponse) -> Result<(), ApiError> {
        let mut g = self.lock();
        let generation = g.generation;
        let reply = match g.workers.as_mut() {
            Some(w) => w.error(id)?.take(),
            None => {
                let to = self.check_invoke(&g, id, RuntimeCall::Error)?;
                g.state = to;
                g.current.as_ref().and_then(|c| c.reply.take())
            }
        };
        drop(g);
        let produced = error.body().len() as u64;
        let function_error = error.function_error.clone();
        if let Some(reply) = reply {
            let _ = reply.send(InvokeOutcome::Error(error));
        }
        self.emit(RuntimeEvent::ResponseDone {
            generation,
            id: RequestId::from_string(id.to_owned()),
            produced_bytes: produced,
            mode: ResponseMode::Buffered,
            function_error: Some(function_error),
        });
        Ok(())
    }

    /// `GET /restore/next`: park until a Restore.
    pub fn restore_next(&self) -> Result<oneshot::Receiver<()>, ApiError> {
        let mut g = self.lock();
        g.state = g
            .state
            .on(RuntimeCall::RestoreNext, false)
            .map_err(ApiError::transition)?;
        let (tx, rx) = oneshot::channel();
        g.restore_parked = Some(tx);
        let generation = g.generation;
        drop(g);
        self.emit(RuntimeEvent::RestoreReady { generation });
        Ok(rx)
    }

    /// Check that `/restore/error` is allowed now (before reading its body).
    pub fn check_restore_error(&self) -> Result<(), ApiError> {
        let g = self.lock();
        g.state
            .on(RuntimeCall::RestoreError, false)
            .map(|_| ())
            .map_err(ApiError::transition)
    }

    /// `POST /restore/error`.
    pub fn restore_error(&self, error: ErrorInvokeResponse) -> Result<(), ApiError> {
        let mut g = self.lock();
        g.state = g
            .state
            .on(RuntimeCall::RestoreError, false)
            .map_err(ApiError::transition)?;
        let generation = g.generation;
        drop(g);
        self.emit(RuntimeEvent::RestoreError { generation, error });
        Ok(())
    }

    /// Check that `/init/error` is allowed now (before reading its body).
    pub fn check_init_error(&self) -> Result<(), ApiError> {
        let g = self.lock();
        g.state
            .on(RuntimeCall::InitError, false)
            .map(|_| ())
            .map_err(ApiError::transition)
    }

    /// `POST /init/error`.
    pub fn init_error(&self, error: ErrorInvokeResponse) -> Result<(), ApiError> {
        let mut g = self.lock();
        let to = g
            .state
            .on(RuntimeCall::InitError, false)
            .map_err(ApiError::transition)?;
        g.state = to;
        let generation = g.generation;
        drop(g);
        self.emit(RuntimeEvent::InitError { generation, error });
        Ok(())
    }
}

/// The engine's view of the Runtime API.
#[derive(Clone)]
pub struct RuntimeHandle {
    r: Arc<Rendezvous>,
}

impl RuntimeHandle {
    /// Wrap the shared rendezvous.
    pub fn new(r: Arc<Rendezvous>) -> Self {
        RuntimeHandle { r }
    }

    /// Tell extensions of the coming generation about `function`.
    pub fn set_function(&self, function: FunctionInfo) {
        self.r.lock().function = function;
    }

    /// The current sandbox generation.
    pub fn generation(&self) -> u64 {
        self.r.lock().generation
    }

    /// The runtime's current state.
    pub fn state(&self) -> RuntimeState {
        self.r.lock().state
    }

    /// Hand an invoke to the runtime. The outcome goes to `reply` directly from
    /// the `/response` or `/error` handler, or from [`RuntimeHandle::fail_current`].
    pub fn dispatch(
        &self,
        invoke: Invoke,
        payload: Bytes,
        reply: OutcomeSender,
    ) -> Result<(), (DispatchError, OutcomeSender)> {
        let mut g = self.r.lock();
        if g.workers.is_some() {
            return dispatch_worker(g, invoke, payload, reply);
        }
        let to = match g.state.on(RuntimeCall::Dispatch, false) {
            Ok(to) => to,
            Err(e) => return Err((DispatchError::NotReady(e.from.name()), reply)),
        };
        let deadline_epoch_ms = epoch_ms() + invoke.timeout_ms;
        let dispatched = Arc::new(Dispatched {
            invoke,
            payload,
            deadline_epoch_ms,
            invocation_id: fresh_invocation_id(),
        });
        g.state = to;
        let delivered = match g.parked.take() {
            Some(waiter) => waiter.send(dispatched.clone()).is_ok(),
            None => false,
        };
        g.ext
            .broadcast(|| extensions::invoke_event(&dispatched), |e| e.invoke);
        g.current = Some(Current {
            dispatched,
            delivered,
            reply: ReplySlot::new(reply),
        });
        Ok(())
    }

    /// Restore: release the runtime's `/restore/next`.
    pub fn restore(&self) -> Result<(), DispatchError> {
        let mut g = self.r.lock();
        let to = g
            .state
            .on(RuntimeCall::Restore, false)
            .map_err(|e| DispatchError::NotReady(e.from.name()))?;
        let waiter = g.restore_parked.take();
        match waiter.map(|w| w.send(())) {
            Some(Ok(())) => {
                g.state = to;
                Ok(())
            }
            _ => Err(DispatchError::NotReady(
                "RestoreReady (its /restore/next call went away)",
            )),
        }
    }

    /// Fail the invoke in flight with `error` if its invoker is still waiting.
    /// Returns whether an outcome was sent.
    pub fn fail_current(&self, error: FunctionError) -> bool {
        let reply = {
            let mut g = self.r.lock();
            g.mark_stale();
            g.current.as_ref().and_then(|c| c.reply.take())
        };
        match reply {
            Some(reply) => reply.send(InvokeOutcome::failure(error)).is_ok(),
            None => false,
        }
    }

    /// LMI: give up on the invoke `id` (its deadline passed) without
    /// touching the runtime or the other invokes; its late answer gets 410.
    /// Returns whether an outcome was sent.
    pub fn fail_invoke(&self, id: &RequestId, error: FunctionError) -> bool {
        let reply = self
            .r
            .lock()
            .workers
            .as_mut()
            .and_then(|w| w.abandon(id.as_str()));
        match reply {
            Some(reply) => reply.send(InvokeOutcome::failure(error)).is_ok(),
            None => false,
        }
    }

    /// LMI: workers waiting on `/next` now (0 in classic mode).
    pub fn idle_workers(&self) -> usize {
        self.r.lock().workers.as_mut().map_or(0, |w| w.idle())
    }

    /// LMI: the configured concurrency (`None`: classic mode).
    pub fn max_concurrency(&self) -> Option<usize> {
        self.r.lock().workers.as_ref().map(|w| w.max())
    }

    /// LMI: the request ids the workers hold.
    pub fn worker_ids(&self) -> Vec<String> {
        self.r
            .lock()
            .workers
            .as_ref()
            .map_or_else(Vec::new, |w| w.ids())
    }

    /// The id of the invoke in flight, if any.
    pub fn current_id(&self) -> Option<RequestId> {
        self.r
            .lock()
            .current
            .as_ref()
            .map(|c| c.dispatched.invoke.id.clone())
    }

    /// Start a new generation: forget the runtime, its parked call and its invoke.
    /// An invoker still waiting gets `error` (a reset never leaves one hanging).
    pub fn reset(&self, error: FunctionError) -> u64 {
        let mut g = self.r.lock();
        g.mark_stale();
        let mut replies: Vec<OutcomeSender> = g
            .current
            .take()
            .and_then(|c| c.reply.take())
            .into_iter()
            .collect();
        if let Some(w) = g.workers.as_mut() {
            replies.extend(w.abandon_all());
        }
        g.parked = None;
        g.restore_parked = None;
        g.state = RuntimeState::Started;
        g.ext = extensions::Registry::default();
        g.generation += 1;
        let generation = g.generation;
        drop(g);
        for reply in replies {
            let _ = reply.send(InvokeOutcome::failure(error.clone()));
        }
        generation
    }
}

/// LMI: hand an invoke to a waiting worker (or the next `/next`), once the
/// runtime's init is done.
fn dispatch_worker(
    mut g: MutexGuard<'_, Inner>,
    invoke: Invoke,
    payload: Bytes,
    reply: OutcomeSender,
) -> Result<(), (DispatchError, OutcomeSender)> {
    if g.state != RuntimeState::Ready {
        return Err((DispatchError::NotReady(g.state.name()), reply));
    }
    let deadline_epoch_ms = epoch_ms() + invoke.timeout_ms;
    let dispatched = Arc::new(Dispatched {
        invoke,
        payload,
        deadline_epoch_ms,
        invocation_id: fresh_invocation_id(),
    });
    match g.workers.as_mut() {
        Some(w) => {
            w.dispatch(dispatched, reply);
            Ok(())
        }
        None => Err((DispatchError::NotReady("Ready"), reply)),
    }
}

/// A handy default error for resets that should never meet a waiting invoker.
pub fn reset_error() -> FunctionError {
    FunctionError::new(ErrorType::SandboxFailure, "The sandbox was reset")
}

mod extensions;
#[cfg(test)]
mod tests;
mod workers;

pub use extensions::{ExtensionErrorKind, ExtensionEvent, ExtensionInfo, ExtensionNext};
