//! Lambda Managed Instances (LMI): the runtime's workers and the invokes
//! they hold, when up to `max` `/next` calls may wait at once and invokes
//! run side by side (`AWS_LAMBDA_MAX_CONCURRENCY`).
//!
//! Each invoke has its own small state machine, keyed by its request id:
//!
//! ```text
//!  dispatch ──▶ Invoking ──response──▶ Responding ──done──▶ (gone)
//!                  └──────error──────────────────────────▶ (gone)
//!  timeout / reset: (gone), its ids remembered as stale (→ 410)
//! ```
//!
//! The classic single-invoke path (`Rendezvous::current`) is untouched; this
//! owner lives inside the same `Mutex` and is only there in LMI mode.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use fatalerror::ErrorType;
use http::StatusCode;
use tokio::sync::oneshot;

use super::{Dispatched, ReplySlot, STALE_IDS};
use crate::error::ApiError;
use crate::outcome::OutcomeSender;

/// One invoke the runtime's workers hold.
struct Flight {
    dispatched: Arc<Dispatched>,
    reply: ReplySlot,
    /// A `/response` body is arriving.
    responding: bool,
}

/// The workers of one generation.
pub(super) struct Workers {
    max: usize,
    /// `/next` calls waiting for an invoke, oldest first.
    parked: VecDeque<oneshot::Sender<Arc<Dispatched>>>,
    /// Dispatched invokes whose `/next` went away before it got them.
    undelivered: VecDeque<Arc<Dispatched>>,
    flights: HashMap<String, Flight>,
    /// Request ids and invocation ids of invokes that timed out or were reset.
    stale: VecDeque<String>,
}

/// What a `/next` call gets.
pub(super) enum Next {
    /// An undelivered invoke.
    Now(Arc<Dispatched>),
    /// Park.
    Wait(oneshot::Receiver<Arc<Dispatched>>),
}

fn gone() -> ApiError {
    ApiError::new(StatusCode::GONE, ErrorType::InvokeTimeout, "Invoke timeout")
}

impl Workers {
    /// Workers for up to `max` concurrent invokes.
    pub(super) fn new(max: usize) -> Workers {
        Workers {
            max: max.max(1),
            parked: VecDeque::new(),
            undelivered: VecDeque::new(),
            flights: HashMap::new(),
            stale: VecDeque::new(),
        }
    }

    /// The configured concurrency.
    pub(super) fn max(&self) -> usize {
        self.max
    }

    fn prune(&mut self) {
        self.parked.retain(|p| !p.is_closed());
    }

    /// Workers waiting on `/next` now.
    pub(super) fn idle(&mut self) -> usize {
        self.prune();
        self.parked.len()
    }

    /// Invokes held by the workers.
    #[cfg(test)]
    pub(super) fn in_flight(&self) -> usize {
        self.flights.len()
    }

    /// A worker calls `/next`: an undelivered invoke, or a place to wait
    /// (at most `max` at once: one more is 403).
    pub(super) fn next(&mut self) -> Result<Next, ApiError> {
        self.prune();
        while let Some(d) = self.undelivered.pop_front() {
            if self.flights.contains_key(d.invoke.id.as_str()) {
                return Ok(Next::Now(d));
            }
        }
        if self.parked.len() >= self.max {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                ErrorType::InvalidStateTransition,
                format!(
                    "{} /next calls are already waiting: AWS_LAMBDA_MAX_CONCURRENCY is {}",
                    self.parked.len(),
                    self.max
                ),
            ));
        }
        let (tx, rx) = oneshot::channel();
        self.parked.push_back(tx);
        Ok(Next::Wait(rx))
    }

    /// Hand `d` to the oldest waiting worker (or keep it for the next `/next`).
    pub(super) fn dispatch(&mut self, d: Arc<Dispatched>, reply: OutcomeSender) {
        let mut item = d.clone();
        loop {
            match self.parked.pop_front() {
                Some(p) => match p.send(item) {
                    Ok(()) => break,
                    // That call went away: the next waiting one gets it.
                    Err(back) => item = back,
                },
                None => {
                    self.undelivered.push_back(item);
                    break;
                }
            }
        }
        self.flights.insert(
            d.invoke.id.as_str().to_owned(),
            Flight {
                dispatched: d,
                reply: ReplySlot::new(reply),
                responding: false,
            },
        );
    }

    fn is_stale(&self, id: &str) -> bool {
        self.stale.iter().any(|s| s == id)
    }

    fn remember(&mut self, id: String) {
        if self.stale.len() >= STALE_IDS {
            self.stale.pop_front();
        }
        self.stale.push_back(id);
    }

    /// The invocation id echoed on `/response` or `/error` of `id`.
    pub(super) fn check_echo(&self, id: &str, invocation: &str) -> Result<(), ApiError> {
        if self.is_stale(invocation) || self.is_stale(id) {
            return Err(gone());
        }
        match self.flights.get(id) {
            Some(f) if f.dispatched.invocation_id == invocation => Ok(()),
            _ => Err(ApiError::invalid_request_id(id)),
        }
    }

    /// `/response` or `/error` of `id` may begin: a held invoke not yet
    /// answering (a timed-out one: 410, any other: 400 `InvalidRequestID`).
    pub(super) fn check(&self, id: &str) -> Result<(), ApiError> {
        match self.flights.get(id) {
            Some(f) if !f.responding => Ok(()),
            Some(_) => Err(ApiError::invalid_request_id(id)),
            None if self.is_stale(id) => Err(gone()),
            None => Err(ApiError::invalid_request_id(id)),
        }
    }

    /// `/response` of `id` begins; its reply slot.
    pub(super) fn begin_response(&mut self, id: &str) -> Result<ReplySlot, ApiError> {
        self.check(id)?;
        let f = self
            .flights
            .get_mut(id)
            .ok_or_else(|| ApiError::invalid_request_id(id))?;
        f.responding = true;
        Ok(f.reply.clone())
    }

    /// The response of `id` is complete: the invoke is over. False when it
    /// was no longer held (timed out or reset meanwhile).
    pub(super) fn end_response(&mut self, id: &str) -> bool {
        match self.flights.get(id) {
            Some(f) if f.responding => {
                self.flights.remove(id);
                true
            }
            _ => false,
        }
    }

    /// `/error` of `id`: the invoke is over; its reply slot.
    pub(super) fn error(&mut self, id: &str) -> Result<ReplySlot, ApiError> {
        self.check(id)?;
        self.flights
            .remove(id)
            .map(|f| f.reply)
            .ok_or_else(|| ApiError::invalid_request_id(id))
    }

    /// The engine gives up on `id` (its deadline): its late answer gets 410.
    pub(super) fn abandon(&mut self, id: &str) -> Option<OutcomeSender> {
        let f = self.flights.remove(id)?;
        self.undelivered.retain(|d| d.invoke.id.as_str() != id);
        self.remember(f.dispatched.invocation_id.clone());
        self.remember(id.to_owned());
        f.reply.take()
    }

    /// A reset: every held invoke is abandoned; their reply senders.
    pub(super) fn abandon_all(&mut self) -> Vec<OutcomeSender> {
        let ids: Vec<String> = self.flights.keys().cloned().collect();
        let out = ids.iter().filter_map(|id| self.abandon(id)).collect();
        self.parked.clear();
        self.undelivered.clear();
        out
    }

    /// The request ids held now.
    pub(super) fn ids(&self) -> Vec<String> {
        self.flights.keys().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use interop::{Invoke, RequestId};

    fn dispatched(id: &str) -> Arc<Dispatched> {
        Arc::new(Dispatched {
            invoke: Invoke {
                id: RequestId::from_string(id.to_owned()),
                trace_id: None,
                client_context: None,
                cognito_identity: None,
                tenant_id: None,
                invoked_function_arn: "arn".into(),
                content_type: "application/json".into(),
                payload_size: 0,
                timeout_ms: 1000,
            },
            payload: Bytes::new(),
            deadline_epoch_ms: 0,
            invocation_id: format!("inv-{id}"),
        })
    }

    fn park(w: &mut Workers) -> oneshot::Receiver<Arc<Dispatched>> {
        match w.next() {
            Ok(Next::Wait(rx)) => rx,
            _ => panic!("expected to park"),
        }
    }

    #[test]
    fn up_to_max_calls_park_and_one_more_is_403() {
        let mut w = Workers::new(2);
        let _a = park(&mut w);
        let _b = park(&mut w);
        assert_eq!(w.idle(), 2);
        let e = w.next().err().map(|e| e.status);
        assert_eq!(e, Some(StatusCode::FORBIDDEN));
    }

    #[test]
    fn a_call_that_went_away_frees_its_place() {
        let mut w = Workers::new(1);
        drop(park(&mut w));
        assert_eq!(w.idle(), 0);
        let _b = park(&mut w);
        assert_eq!(w.idle(), 1);
    }

    #[tokio::test]
    async fn invokes_go_to_waiting_workers_in_parallel() {
        let mut w = Workers::new(2);
        let a = park(&mut w);
        let b = park(&mut w);
        let (t1, _r1) = oneshot::channel();
        let (t2, _r2) = oneshot::channel();
        w.dispatch(dispatched("1"), t1);
        w.dispatch(dispatched("2"), t2);
        assert_eq!(w.idle(), 0);
        assert_eq!(w.in_flight(), 2);
        assert_eq!(
            a.await.map(|d| d.invoke.id.to_string()).ok(),
            Some("1".into())
        );
        assert_eq!(
            b.await.map(|d| d.invoke.id.to_string()).ok(),
            Some("2".into())
        );
    }

    #[test]
    fn an_undelivered_invoke_goes_to_the_next_call() {
        let mut w = Workers::new(2);
        drop(park(&mut w));
        let (t, _r) = oneshot::channel();
        w.dispatch(dispatched("1"), t);
        match w.next() {
            Ok(Next::Now(d)) => assert_eq!(d.invoke.id.as_str(), "1"),
            _ => panic!("expected the undelivered invoke"),
        }
    }

    #[test]
    fn response_then_done_ends_the_invoke_and_a_second_answer_is_400() {
        let mut w = Workers::new(2);
        let (t, _r) = oneshot::channel();
        w.dispatch(dispatched("1"), t);
        assert!(w.check_echo("1", "inv-1").is_ok());
        assert!(w.begin_response("1").is_ok());
        let again = w.begin_response("1").err().map(|e| e.status);
        assert_eq!(again, Some(StatusCode::BAD_REQUEST));
        assert!(w.error("1").is_err());
        assert!(w.end_response("1"));
        assert!(!w.end_response("1"));
        assert_eq!(w.in_flight(), 0);
        assert_eq!(
            w.check("1").err().map(|e| e.status),
            Some(StatusCode::BAD_REQUEST)
        );
    }

    #[test]
    fn an_abandoned_invoke_answers_410_and_the_others_carry_on() {
        let mut w = Workers::new(2);
        let (t1, r1) = oneshot::channel();
        let (t2, _r2) = oneshot::channel();
        w.dispatch(dispatched("1"), t1);
        w.dispatch(dispatched("2"), t2);
        let reply = w.abandon("1");
        assert!(reply.is_some());
        drop(r1);
        assert_eq!(w.check("1").err().map(|e| e.status), Some(StatusCode::GONE));
        assert_eq!(
            w.check_echo("1", "inv-1").err().map(|e| e.status),
            Some(StatusCode::GONE)
        );
        assert!(w.check("2").is_ok());
        assert!(w.error("2").is_ok());
        assert_eq!(
            w.check_echo("2", "inv-1").err().map(|e| e.status),
            Some(StatusCode::GONE)
        );
        assert_eq!(
            w.check_echo("3", "inv-3").err().map(|e| e.status),
            Some(StatusCode::BAD_REQUEST)
        );
    }

    #[test]
    fn a_reset_abandons_every_invoke_and_waiting_call() {
        let mut w = Workers::new(3);
        let a = park(&mut w);
        let (t1, _r1) = oneshot::channel();
        let (t2, _r2) = oneshot::channel();
        w.dispatch(dispatched("1"), t1);
        w.dispatch(dispatched("2"), t2);
        assert!(matches!(w.next(), Ok(Next::Now(_))), "2 waited for a /next");
        let _b = park(&mut w);
        drop(a);
        assert_eq!(w.abandon_all().len(), 2);
        assert_eq!(w.in_flight(), 0);
        assert_eq!(w.idle(), 0);
        assert_eq!(w.check("2").err().map(|e| e.status), Some(StatusCode::GONE));
    }
}
