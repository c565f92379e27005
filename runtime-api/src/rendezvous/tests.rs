//! The rendezvous without HTTP: validation before state change, delivery,
//! resets.

use super::*;
use crate::outcome::{InvokeOutcome, ResponseBody};
use http::StatusCode;

fn invoke(id: &str) -> Invoke {
    Invoke {
        id: RequestId::from_string(id.into()),
        trace_id: None,
        client_context: None,
        cognito_identity: None,
        invoked_function_arn: "arn:aws:lambda:us-east-1:012345678912:function:f".into(),
        content_type: "application/json".into(),
        payload_size: 2,
        timeout_ms: 1000,
        tenant_id: None,
    }
}

fn ready(r: &Arc<Rendezvous>) -> oneshot::Receiver<Arc<Dispatched>> {
    match r.next() {
        Ok(NextCall::Wait(rx)) => rx,
        _ => panic!("expected /next to park"),
    }
}

#[test]
fn first_next_reports_ready_and_parks() {
    let (r, mut events) = Rendezvous::new();
    let _rx = ready(&r);
    assert!(matches!(
        events.try_recv(),
        Ok(RuntimeEvent::Ready { generation: 0 })
    ));
}

#[test]
fn dispatch_delivers_to_the_parked_next() {
    let (r, _events) = Rendezvous::new();
    let h = RuntimeHandle::new(r.clone());
    let mut rx = ready(&r);
    let (tx, _out) = oneshot::channel();
    assert!(h
        .dispatch(invoke("a"), Bytes::from_static(b"{}"), tx)
        .is_ok());
    let d = rx.try_recv().expect("delivered");
    assert_eq!(d.invoke.id.as_str(), "a");
    assert_eq!(h.state(), RuntimeState::Invoking);
}

#[test]
fn dispatch_before_ready_is_refused_and_returns_the_reply() {
    let (r, _events) = Rendezvous::new();
    let h = RuntimeHandle::new(r);
    let (tx, _out) = oneshot::channel();
    let err = h.dispatch(invoke("a"), Bytes::new(), tx);
    assert!(matches!(err, Err((DispatchError::NotReady("Started"), _))));
}

#[test]
fn undelivered_event_goes_to_the_next_next() {
    let (r, _events) = Rendezvous::new();
    let h = RuntimeHandle::new(r.clone());
    drop(ready(&r)); // the runtime's /next connection went away
    let (tx, _out) = oneshot::channel();
    assert!(h.dispatch(invoke("a"), Bytes::new(), tx).is_ok());
    match r.next() {
        Ok(NextCall::Now(d)) => assert_eq!(d.invoke.id.as_str(), "a"),
        _ => panic!("expected the pending event"),
    }
    // Once delivered, another /next during the invoke is a state error.
    assert_eq!(
        r.next().err().map(|e| e.status),
        Some(StatusCode::FORBIDDEN)
    );
}

#[test]
fn response_flow_and_validation_order() {
    let (r, mut events) = Rendezvous::new();
    let h = RuntimeHandle::new(r.clone());
    let _p = ready(&r);
    let _ = events.try_recv();
    let (tx, mut out) = oneshot::channel();
    assert!(h.dispatch(invoke("a"), Bytes::new(), tx).is_ok());

    // Unknown id: 400 and nothing changes.
    let e = r.begin_response("zzz", || Ok(())).err().unwrap();
    assert_eq!(e.status, StatusCode::BAD_REQUEST);
    assert_eq!(e.error_type.as_str(), "InvalidRequestID");
    assert_eq!(h.state(), RuntimeState::Invoking);

    // Validation failure (bad response mode) after the id check: nothing changes.
    let e = r
        .begin_response("a", || Err(ApiError::invalid_response_mode("bogus")))
        .err()
        .unwrap();
    assert_eq!(e.error_type.as_str(), "InvalidFunctionResponseMode");
    assert_eq!(h.state(), RuntimeState::Invoking);

    let ticket = r.begin_response("a", || Ok(())).ok().unwrap();
    assert_eq!(h.state(), RuntimeState::Responding);
    // A concurrent second response is a state error.
    let e = r.begin_response("a", || Ok(())).err().unwrap();
    assert_eq!(e.status, StatusCode::FORBIDDEN);
    let reply = ticket.reply.take().unwrap();
    let _ = reply.send(InvokeOutcome::Response(crate::InvokeResponse {
        content_type: None,
        body: ResponseBody::Buffered(Bytes::from_static(b"ok")),
    }));
    r.end_response(&ticket, 2, ResponseMode::Buffered, None);
    assert_eq!(h.state(), RuntimeState::ResponseSent);
    assert!(matches!(out.try_recv(), Ok(InvokeOutcome::Response(_))));
    assert!(matches!(
        events.try_recv(),
        Ok(RuntimeEvent::ResponseDone {
            produced_bytes: 2,
            ..
        })
    ));

    // Second response and error after the response: 403.
    assert_eq!(
        r.begin_response("a", || Ok(())).err().map(|e| e.status),
        Some(StatusCode::FORBIDDEN)
    );
    assert_eq!(
        r.check_error("a").err().map(|e| e.status),
        Some(StatusCode::FORBIDDEN)
    );

    // /next completes the invoke; the id is now stale: 400.
    let _p2 = ready(&r);
    assert!(matches!(events.try_recv(), Ok(RuntimeEvent::Ready { .. })));
    assert_eq!(
        r.begin_response("a", || Ok(())).err().map(|e| e.status),
        Some(StatusCode::BAD_REQUEST)
    );
}

#[test]
fn function_error_goes_to_the_invoker() {
    let (r, _events) = Rendezvous::new();
    let h = RuntimeHandle::new(r.clone());
    let _p = ready(&r);
    let (tx, mut out) = oneshot::channel();
    assert!(h.dispatch(invoke("a"), Bytes::new(), tx).is_ok());
    let err = ErrorInvokeResponse {
        function_error: FunctionError::new(ErrorType::FunctionUnknown, "bad"),
        payload: Some(b"{\"errorType\":\"x\"}".to_vec()),
    };
    assert!(r.invocation_error("a", err.clone()).is_ok());
    match out.try_recv() {
        Ok(InvokeOutcome::Error(e)) => assert_eq!(e, err),
        _ => panic!("expected the function error"),
    }
    assert!(r.invocation_error("a", err).is_err());
}

#[test]
fn init_error_only_before_the_first_next() {
    let (r, mut events) = Rendezvous::new();
    assert!(r.check_init_error().is_ok());
    let _p = ready(&r);
    let _ = events.try_recv();
    let e = r.check_init_error().err().unwrap();
    assert_eq!(e.status, StatusCode::FORBIDDEN);
}

#[test]
fn reset_fails_a_waiting_invoker_and_bumps_the_generation() {
    let (r, _events) = Rendezvous::new();
    let h = RuntimeHandle::new(r.clone());
    let mut parked = ready(&r);
    let (tx, mut out) = oneshot::channel();
    assert!(h.dispatch(invoke("a"), Bytes::new(), tx).is_ok());
    let _ = parked.try_recv();
    let g = h.reset(FunctionError::new(ErrorType::SandboxTimedout, "late"));
    assert_eq!(g, 1);
    assert_eq!(h.state(), RuntimeState::Started);
    match out.try_recv() {
        Ok(InvokeOutcome::Error(e)) => {
            assert_eq!(e.function_error.error_type, ErrorType::SandboxTimedout)
        }
        _ => panic!("expected the reset error"),
    }
    // fail_current after the outcome was sent is a no-op.
    assert!(!h.fail_current(FunctionError::new(ErrorType::SandboxFailure, "x")));
    // A late response for the old invoke is an unknown id.
    assert_eq!(
        r.begin_response("a", || Ok(())).err().map(|e| e.status),
        Some(StatusCode::BAD_REQUEST)
    );
}

#[test]
fn stale_end_response_is_ignored_after_reset() {
    let (r, mut events) = Rendezvous::new();
    let h = RuntimeHandle::new(r.clone());
    let _p = ready(&r);
    let _ = events.try_recv();
    let (tx, _out) = oneshot::channel();
    assert!(h.dispatch(invoke("a"), Bytes::new(), tx).is_ok());
    let ticket = r.begin_response("a", || Ok(())).ok().unwrap();
    h.reset(reset_error());
    r.end_response(&ticket, 1, ResponseMode::Buffered, None);
    assert_eq!(h.state(), RuntimeState::Started);
    assert!(events.try_recv().is_err());
}
