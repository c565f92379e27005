//! The engine's transitions, driven through its channels with a fake process
//! control (nothing is started) and the real Runtime API state (its calls
//! made directly, without HTTP): the table of `docs/architecture.md`.

#![allow(clippy::unwrap_used)] // tests fail loudly on unexpected values

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use fatalerror::ErrorType;
use interop::{
    ErrorInvokeResponse, FunctionError, Init, InitResult, InvokeResult, RequestId, Reset,
    ResponseMode, ShutdownReason,
};
use nix::sys::signal::Signal;
use runtime_api::{
    Dispatched, InvokeOutcome, InvokeResponse, NextCall, Rendezvous, ResponseBody, RuntimeHandle,
};
use tokio::sync::{mpsc, oneshot, watch};

use super::{Command, Deps, Engine, InvokeRequest};
use crate::lambda::config::{Bootstrap, InitCaching, LambdaConfig, Lifecycle};
use crate::output::Output;
use crate::sandbox::{FunctionId, Health, OneShot, SandboxState, Stats};
use crate::supervisor::{ChildExit, ExitReason, ProcessControl, SpawnSpec, Spawned};

/// Pids no real process has (above any `pid_max`).
const FIRST_PID: i32 = 50_000_000;

/// Process control that starts nothing: it hands out pids, records signals,
/// and "exits" a process when it is killed (or when a test says so).
#[derive(Default)]
struct FakeProcs {
    next: AtomicI32,
    live: Mutex<HashMap<i32, mpsc::UnboundedSender<ChildExit>>>,
    spawned: Mutex<Vec<(i32, PathBuf)>>,
    signals: Mutex<Vec<(i32, Signal)>>,
    /// Processes ignore SIGTERM (only SIGKILL ends them).
    stubborn: AtomicBool,
}

impl FakeProcs {
    fn exit(&self, pid: i32, reason: ExitReason) {
        if let Some(tx) = self.live.lock().unwrap().remove(&pid) {
            let _ = tx.send(ChildExit { pid, reason });
        }
    }

    fn spawned(&self) -> Vec<i32> {
        self.spawned
            .lock()
            .unwrap()
            .iter()
            .map(|(p, _)| *p)
            .collect()
    }

    fn last(&self) -> i32 {
        *self.spawned().last().expect("a process was started")
    }

    fn signalled(&self, pid: i32) -> Vec<Signal> {
        let s = self.signals.lock().unwrap();
        s.iter()
            .filter(|(p, _)| *p == pid)
            .map(|(_, s)| *s)
            .collect()
    }
}

impl ProcessControl for FakeProcs {
    fn spawn(
        &self,
        spec: &SpawnSpec,
        exits: mpsc::UnboundedSender<ChildExit>,
    ) -> std::io::Result<Spawned> {
        let pid = FIRST_PID + self.next.fetch_add(1, Ordering::SeqCst);
        self.live.lock().unwrap().insert(pid, exits);
        self.spawned
            .lock()
            .unwrap()
            .push((pid, spec.program.clone()));
        // Pipes whose write ends are closed: the output forwarders see EOF.
        let (stdout, w1) = nix::unistd::pipe()?;
        let (stderr, w2) = nix::unistd::pipe()?;
        drop((w1, w2));
        Ok(Spawned {
            pid,
            stdout,
            stderr,
            stdin: None,
        })
    }

    fn signal_group(&self, pgid: i32, sig: Signal) {
        self.signals.lock().unwrap().push((pgid, sig));
        match sig {
            Signal::SIGKILL => self.exit(pgid, ExitReason::Signal(sig)),
            Signal::SIGTERM if !self.stubborn.load(Ordering::SeqCst) => {
                self.exit(pgid, ExitReason::Signal(sig))
            }
            _ => {}
        }
    }

    fn kill_tree(&self, pid: i32) {
        self.exit(pid, ExitReason::Signal(Signal::SIGKILL));
    }

    fn kill_orphans(&self, _keep: &[i32]) {}

    fn peak_kib(&self, _pid: i32) -> u64 {
        8 * 1024
    }
}

/// stdout, kept for the assertions.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    /// Wait (real time: the writer is a thread) until stdout holds `needle`.
    fn wait_for(&self, needle: &str) -> bool {
        for _ in 0..500 {
            if String::from_utf8_lossy(&self.0.lock().unwrap()).contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        false
    }
}

fn config() -> LambdaConfig {
    LambdaConfig {
        function: FunctionId {
            name: "f".into(),
            version: "$LATEST".into(),
            region: "us-east-1".into(),
            account: "012345678912".into(),
        },
        memory_size_mb: 128,
        handler: None,
        timeout: Duration::from_secs(3),
        init_timeout: Duration::from_secs(10),
        max_queue: 8,
        runtime_api_address: "127.0.0.1:9".parse().unwrap(),
        extensions_dir: "/nonexistent/rapid-engine-test".into(),
        bootstrap: Bootstrap::Command {
            program: "/fake/bootstrap".into(),
            args: Vec::new(),
        },
        environment: Vec::new(),
        shares_network: false,
        stream_cap_bytes: 1 << 20,
        stream_shaping: false,
        init_caching: None,
        one_shot: None,
        scratch_dir: None,
        lifecycle: Lifecycle::Eager,
        log_controls: crate::log_controls::LogControls::default(),
        sandbox_concurrency: None,
    }
}

/// A running engine and the handles a test drives it with.
struct Harness {
    invokes: mpsc::Sender<InvokeRequest>,
    commands: mpsc::Sender<Command>,
    procs: Arc<FakeProcs>,
    api: Arc<Rendezvous>,
    health: watch::Receiver<Health>,
    out: Captured,
    task: tokio::task::JoinHandle<()>,
}

/// An invoke handed to the engine.
struct Invoked {
    reply: oneshot::Receiver<InvokeOutcome>,
    result: oneshot::Receiver<InvokeResult>,
}

impl Harness {
    fn start(cfg: LambdaConfig) -> Harness {
        let procs = Arc::new(FakeProcs::default());
        let (api, events) = Rendezvous::with_concurrency(cfg.sandbox_concurrency);
        let (invokes, invokes_rx) = mpsc::channel(16);
        let (commands, commands_rx) = mpsc::channel(16);
        let (health_tx, health) = watch::channel(Health::Starting);
        let out = Captured::default();
        let hub = crate::telemetry_hub::Hub::new();
        let output = Output::start_to(hub.clone(), Box::new(out.clone())).unwrap();
        let engine = Engine::new(
            Arc::new(cfg),
            RuntimeHandle::new(api.clone()),
            super::Inputs {
                events,
                invokes: invokes_rx,
                commands: commands_rx,
            },
            Deps {
                procs: procs.clone(),
                out: output,
                hub,
            },
            health_tx,
            Arc::new(Stats::default()),
        );
        Harness {
            invokes,
            commands,
            procs,
            api,
            health,
            out,
            task: super::spawn(engine),
        }
    }

    /// Let the engine handle what is queued.
    async fn settle(&self) {
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
    }

    /// The runtime calls `/next`; returns where its event will arrive.
    fn next(&self) -> oneshot::Receiver<Arc<Dispatched>> {
        match self.api.next().unwrap() {
            NextCall::Wait(rx) => rx,
            NextCall::Now(_) => panic!("an event was already waiting"),
        }
    }

    async fn ready(&mut self) {
        self.settle().await;
        self.health.wait_for(|h| *h == Health::Ready).await.unwrap();
    }

    fn invoke(&self, payload: &str) -> Invoked {
        let (reply, reply_rx) = oneshot::channel();
        let (result, result_rx) = oneshot::channel();
        let req = InvokeRequest {
            tenant_id: None,
            id: RequestId::generate(),
            payload: Bytes::copy_from_slice(payload.as_bytes()),
            content_type: "application/json".into(),
            trace_id: None,
            client_context: None,
            cognito_identity: None,
            invoked_arn: None,
            reply,
            tail: None,
            result: Some(result),
            admission: None,
            timeout: None,
        };
        self.invokes.try_send(req).unwrap();
        Invoked {
            reply: reply_rx,
            result: result_rx,
        }
    }

    /// The runtime answers invoke `id` with `body`.
    fn respond(&self, id: &RequestId, body: &'static [u8]) {
        let ticket = self.api.begin_response(id.as_str(), || Ok(())).unwrap();
        if let Some(r) = ticket.reply.take() {
            let _ = r.send(InvokeOutcome::Response(InvokeResponse {
                content_type: None,
                body: ResponseBody::Buffered(Bytes::from_static(body)),
            }));
        }
        self.api
            .end_response(&ticket, body.len() as u64, ResponseMode::Buffered, None);
    }

    async fn command<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> T {
        let (tx, rx) = oneshot::channel();
        self.commands.send(make(tx)).await.unwrap();
        rx.await.unwrap()
    }

    async fn state(&self) -> SandboxState {
        self.command(|reply| Command::State { reply }).await
    }

    async fn shutdown(self) -> interop::ShutdownSuccess {
        let done = self
            .command(|done| Command::Shutdown {
                reason: ShutdownReason::Spindown,
                exit: true,
                done,
            })
            .await
            .unwrap();
        self.task.await.unwrap();
        done
    }
}

fn error_of(outcome: InvokeOutcome) -> FunctionError {
    match outcome {
        InvokeOutcome::Error(e) => e.function_error,
        InvokeOutcome::Response(_) => panic!("expected an error"),
    }
}

fn body_of(outcome: InvokeOutcome) -> Bytes {
    match outcome {
        InvokeOutcome::Response(InvokeResponse {
            body: ResponseBody::Buffered(b),
            ..
        }) => b,
        other => panic!("expected a buffered response, got {other:?}"),
    }
}

#[tokio::test]
async fn eager_init_then_an_invoke_then_ready_again() {
    let mut h = Harness::start(config());
    h.settle().await;
    assert_eq!(h.procs.spawned().len(), 1, "init is eager");
    assert_eq!(h.state().await.phase, "Initializing");
    let event = h.next();
    h.ready().await;
    assert_eq!(h.state().await.phase, "Ready");
    let inv = h.invoke(r#"{"a":1}"#);
    let d = event.await.unwrap();
    assert_eq!(d.payload, Bytes::from_static(br#"{"a":1}"#));
    assert_eq!(h.state().await.phase, "Invoking");
    h.respond(&d.invoke.id, b"ok");
    assert_eq!(body_of(inv.reply.await.unwrap()), Bytes::from_static(b"ok"));
    let _next = h.next();
    match inv.result.await.unwrap() {
        InvokeResult::InvokeSuccess(s) => {
            assert_eq!(s.id, d.invoke.id);
            assert_eq!(s.metrics.produced_bytes, 2);
            assert_eq!(s.metrics.max_memory_used_mb, 8);
            assert!(
                s.metrics.init_duration_ms.is_some(),
                "first invoke after a cold start"
            );
        }
        other => panic!("{other:?}"),
    }
    let id = d.invoke.id.as_str();
    assert!(h.out.wait_for(&format!("REPORT RequestId: {id}")));
    assert!(h
        .out
        .wait_for(&format!("START RequestId: {id} Version: $LATEST")));
    assert!(h.out.wait_for(&format!("END RequestId: {id}")));
    assert_eq!(h.state().await.phase, "Ready");
    let pid = h.procs.last();
    let procs = h.procs.clone();
    let done = h.shutdown().await;
    assert!(!done.killed, "the runtime stopped on SIGTERM");
    assert_eq!(procs.signalled(pid), vec![Signal::SIGTERM]);
}

#[tokio::test]
async fn a_runtime_that_exits_during_init_is_retried_by_the_next_invoke() {
    let h = Harness::start(config());
    h.settle().await;
    let first = h.procs.last();
    h.procs.exit(first, ExitReason::Code(1));
    h.settle().await;
    let s = h.state().await;
    assert_eq!(s.phase, "InitFailed");
    match s.last_init {
        Some(InitResult::InitFailure(f)) => {
            assert_eq!(f.error.error_type, ErrorType::RuntimeExitError)
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        h.procs.spawned().len(),
        1,
        "a failed init waits for an invoke"
    );
    // The invoke runs a suppressed init.
    let inv = h.invoke("{}");
    h.settle().await;
    assert_eq!(h.procs.spawned().len(), 2);
    let event = h.next();
    let d = event.await.unwrap();
    h.respond(&d.invoke.id, b"late but fine");
    assert_eq!(
        body_of(inv.reply.await.unwrap()),
        Bytes::from_static(b"late but fine")
    );
}

#[tokio::test]
async fn a_suppressed_init_that_fails_answers_the_invoke_with_the_init_error() {
    let h = Harness::start(config());
    h.settle().await;
    // The runtime reports an init error: its group is killed.
    let first = h.procs.last();
    h.api
        .init_error(ErrorInvokeResponse::from_error(FunctionError::new(
            ErrorType::from("Runtime.ConfigError"),
            "bad config",
        )))
        .unwrap();
    h.settle().await;
    assert!(h.procs.signalled(first).contains(&Signal::SIGKILL));
    assert_eq!(h.state().await.phase, "InitFailed");
    let inv = h.invoke("{}");
    h.settle().await;
    let second = h.procs.last();
    assert_ne!(first, second);
    h.procs.exit(second, ExitReason::Code(2));
    let e = error_of(inv.reply.await.unwrap());
    assert_eq!(e.error_type, ErrorType::RuntimeExitError);
    assert!(
        e.error_message.contains("exit status 2"),
        "{}",
        e.error_message
    );
    assert!(!e.error_message.is_empty());
}

#[tokio::test(start_paused = true)]
async fn an_init_that_never_completes_times_out() {
    let h = Harness::start(config());
    h.settle().await;
    let pid = h.procs.last();
    tokio::time::sleep(Duration::from_secs(11)).await;
    h.settle().await;
    let s = h.state().await;
    assert_eq!(s.phase, "InitFailed");
    match s.last_init {
        Some(InitResult::InitFailure(f)) => {
            assert_eq!(f.error.error_type, ErrorType::SandboxTimedout);
            assert!(
                f.error.error_message.contains("10.00 seconds"),
                "{}",
                f.error.error_message
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(h.procs.signalled(pid).contains(&Signal::SIGKILL));
}

#[tokio::test]
async fn a_runtime_that_exits_during_an_invoke_resets_and_reinitialises_at_once() {
    let mut h = Harness::start(config());
    h.settle().await;
    let event = h.next();
    h.ready().await;
    let inv = h.invoke("{}");
    let d = event.await.unwrap();
    let pid = h.procs.last();
    h.procs.exit(pid, ExitReason::Code(3));
    let e = error_of(inv.reply.await.unwrap());
    assert_eq!(e.error_type, ErrorType::RuntimeExitError);
    assert_eq!(
        e.error_message,
        format!(
            "RequestId: {} Error: Runtime exited with error: exit status 3",
            d.invoke.id
        )
    );
    match inv.result.await.unwrap() {
        InvokeResult::InvokeFailure(f) => assert!(f.reset),
        other => panic!("{other:?}"),
    }
    h.settle().await;
    assert_eq!(h.procs.spawned().len(), 2, "a fresh init starts at once");
    assert_eq!(h.state().await.phase, "Initializing");
}

#[tokio::test(start_paused = true)]
async fn an_invoke_past_its_timeout_is_answered_and_the_runtime_killed() {
    let mut h = Harness::start(LambdaConfig {
        timeout: Duration::from_secs(1),
        ..config()
    });
    h.settle().await;
    let event = h.next();
    h.ready().await;
    let inv = h.invoke("{}");
    let d = event.await.unwrap();
    let pid = h.procs.last();
    let e = error_of(inv.reply.await.unwrap());
    assert_eq!(e.error_type, ErrorType::SandboxTimedout);
    assert_eq!(
        e.error_message,
        format!(
            "RequestId: {} Error: Task timed out after 1.00 seconds",
            d.invoke.id
        )
    );
    h.settle().await;
    assert_eq!(
        h.procs.signalled(pid),
        vec![Signal::SIGKILL],
        "no grace on a timeout"
    );
    assert_eq!(h.procs.spawned().len(), 2, "a fresh init starts at once");
    // The late answer is refused: the invoke is gone.
    assert!(h
        .api
        .begin_response(d.invoke.id.as_str(), || Ok(()))
        .is_err());
}

#[tokio::test]
async fn a_runtime_that_exits_while_idle_is_restarted_once_and_cannot_spin() {
    let mut h = Harness::start(config());
    h.settle().await;
    let _event = h.next();
    h.ready().await;
    h.procs.exit(h.procs.last(), ExitReason::Code(0));
    h.settle().await;
    assert_eq!(h.procs.spawned().len(), 2, "one fresh sandbox");
    // That one crashes during its init: no third until an invoke asks.
    h.procs.exit(h.procs.last(), ExitReason::Code(1));
    h.settle().await;
    assert_eq!(h.procs.spawned().len(), 2);
    assert_eq!(h.state().await.phase, "InitFailed");
}

#[tokio::test(start_paused = true)]
async fn shutdown_fails_the_running_invoke_drops_the_queue_and_sigkills_a_stubborn_runtime() {
    let mut h = Harness::start(config());
    h.settle().await;
    let event = h.next();
    h.ready().await;
    let running = h.invoke("{}");
    let queued = h.invoke("{}");
    let _d = event.await.unwrap();
    let pid = h.procs.last();
    h.procs.stubborn.store(true, Ordering::SeqCst);
    let done = h
        .command(|done| Command::Shutdown {
            reason: ShutdownReason::Spindown,
            exit: true,
            done,
        })
        .await
        .unwrap();
    assert!(done.killed, "SIGKILL after the runtime's share");
    assert_eq!(
        error_of(running.reply.await.unwrap()).error_type,
        ErrorType::SandboxShutdown
    );
    assert!(
        queued.reply.await.is_err(),
        "a queued invoke is dropped (503 at the front)"
    );
    assert_eq!(
        h.procs.signalled(pid),
        vec![Signal::SIGTERM, Signal::SIGKILL]
    );
    h.task.await.unwrap();
}

#[tokio::test]
async fn one_shot_gives_every_invoke_a_fresh_sandbox() {
    let mut h = Harness::start(LambdaConfig {
        one_shot: Some(OneShot::Recycle),
        ..config()
    });
    h.settle().await;
    let event = h.next();
    h.ready().await;
    let inv = h.invoke("{}");
    let d = event.await.unwrap();
    let first = h.procs.last();
    h.respond(&d.invoke.id, b"1");
    assert_eq!(body_of(inv.reply.await.unwrap()), Bytes::from_static(b"1"));
    let _next = h.next();
    h.settle().await;
    assert_eq!(
        h.procs.signalled(first),
        vec![Signal::SIGTERM],
        "SPINDOWN: graceful"
    );
    assert_eq!(h.procs.spawned().len(), 2, "a brand-new sandbox");
    assert_eq!(h.state().await.generation, 1);
}

#[tokio::test]
async fn one_shot_exit_ends_the_engine_after_one_invoke() {
    let mut h = Harness::start(LambdaConfig {
        one_shot: Some(OneShot::Exit),
        ..config()
    });
    h.settle().await;
    let event = h.next();
    h.ready().await;
    let inv = h.invoke("{}");
    let d = event.await.unwrap();
    h.respond(&d.invoke.id, b"only");
    assert_eq!(
        body_of(inv.reply.await.unwrap()),
        Bytes::from_static(b"only")
    );
    let _next = h.next();
    h.task.await.unwrap();
    assert_eq!(h.procs.spawned().len(), 1);
}

#[tokio::test]
async fn a_platform_drives_init_and_reset_and_out_of_order_commands_are_refused() {
    let h = Harness::start(LambdaConfig {
        lifecycle: Lifecycle::PlatformDriven,
        sandbox_concurrency: None,
        ..config()
    });
    h.settle().await;
    assert!(h.procs.spawned().is_empty(), "init waits for the platform");
    assert_eq!(h.state().await.phase, "NotStarted");
    let refused = h
        .command(|reply| Command::Reset {
            reset: Reset::default(),
            reply,
        })
        .await
        .unwrap_err();
    assert_eq!(
        refused.to_string(),
        "Reset is not allowed in phase NotStarted: there is no sandbox to reset"
    );
    let init = Box::new(Init {
        memory_size_mb: 512,
        ..Init::default()
    });
    let (tx, rx) = oneshot::channel();
    h.commands
        .send(Command::Init { init, reply: tx })
        .await
        .unwrap();
    h.settle().await;
    assert_eq!(h.procs.spawned().len(), 1);
    let _event = h.next();
    assert!(matches!(rx.await.unwrap(), Ok(InitResult::InitSuccess(_))));
    let twice = h
        .command(|reply| Command::Init {
            init: Box::default(),
            reply,
        })
        .await
        .unwrap_err();
    assert!(
        twice
            .to_string()
            .starts_with("Init is not allowed in phase Ready"),
        "{twice}"
    );
    let pid = h.procs.last();
    let reset = h
        .command(|reply| Command::Reset {
            reset: Reset::default(),
            reply,
        })
        .await
        .unwrap();
    assert!(
        matches!(reset, interop::ResetResult::ResetSuccess(_)),
        "{reset:?}"
    );
    assert_eq!(h.procs.signalled(pid), vec![Signal::SIGTERM]);
    assert_eq!(h.state().await.phase, "NotStarted");
}

#[tokio::test]
async fn init_caching_restores_at_once_without_a_platform() {
    let mut h = Harness::start(LambdaConfig {
        init_caching: Some(InitCaching {
            restore_timeout: Duration::from_secs(5),
            credentials: None,
        }),
        ..config()
    });
    h.settle().await;
    let released = h.api.restore_next().unwrap();
    h.settle().await;
    released.await.unwrap();
    assert_eq!(h.state().await.phase, "Restoring");
    let _event = h.next();
    h.ready().await;
    assert_eq!(h.state().await.phase, "Ready");
}

#[tokio::test]
async fn a_restore_that_cannot_start_fails_with_its_error_not_a_timeout() {
    let h = Harness::start(LambdaConfig {
        init_caching: Some(InitCaching {
            restore_timeout: Duration::from_secs(5),
            credentials: None,
        }),
        lifecycle: Lifecycle::PlatformDriven,
        sandbox_concurrency: None,
        ..config()
    });
    let (tx, rx) = oneshot::channel();
    h.commands
        .send(Command::Init {
            init: Box::default(),
            reply: tx,
        })
        .await
        .unwrap();
    h.settle().await;
    // The runtime's /restore/next call goes away before the Restore.
    drop(h.api.restore_next().unwrap());
    assert!(matches!(rx.await.unwrap(), Ok(InitResult::InitSuccess(_))));
    assert_eq!(h.state().await.phase, "Snapshotted");
    let result = h.command(|reply| Command::Restore { reply }).await.unwrap();
    let error = result.error.expect("the restore failed");
    assert_eq!(
        error.error_type,
        ErrorType::RuntimeRestoreError,
        "{error:?}"
    );
    assert!(
        error.error_message.contains("went away"),
        "{}",
        error.error_message
    );
    assert_eq!(h.state().await.phase, "InitFailed");
}

/// The runtime answers the invoke `id` (a worker in LMI mode).
fn answer(api: &Rendezvous, id: &RequestId) {
    let ticket = api.begin_response(id.as_str(), || Ok(())).unwrap();
    if let Some(r) = ticket.reply.take() {
        let _ = r.send(InvokeOutcome::Response(InvokeResponse {
            content_type: None,
            body: ResponseBody::Buffered(Bytes::from_static(b"ok")),
        }));
    }
    api.end_response(&ticket, 2, ResponseMode::Buffered, None);
}

#[tokio::test(start_paused = true)]
async fn lmi_invokes_run_side_by_side_and_a_timeout_fails_one_alone() {
    let mut h = Harness::start(LambdaConfig {
        timeout: Duration::from_secs(1),
        sandbox_concurrency: Some(2),
        ..config()
    });
    h.settle().await;
    let (w1, w2) = (h.next(), h.next());
    h.ready().await;
    let (a, b) = (h.invoke("{}"), h.invoke("{}"));
    let (da, db) = (w1.await.unwrap(), w2.await.unwrap());
    assert_ne!(da.invoke.id, db.invoke.id, "both dispatched at once");
    // No worker waits: a third invoke stays queued.
    let c = h.invoke("{}");
    h.settle().await;
    assert_eq!(h.state().await.in_flight, 2);
    answer(&h.api, &db.invoke.id);
    assert!(matches!(b.reply.await.unwrap(), InvokeOutcome::Response(_)));
    let pid = h.procs.last();
    // The first one times out alone: no signal, no new init; its late answer is 410.
    let e = error_of(a.reply.await.unwrap());
    assert_eq!(e.error_type, ErrorType::SandboxTimedout);
    match a.result.await.unwrap() {
        InvokeResult::InvokeFailure(f) => assert!(!f.reset),
        other => panic!("{other:?}"),
    }
    h.settle().await;
    assert!(
        h.procs.signalled(pid).is_empty(),
        "the runtime keeps running"
    );
    assert_eq!(h.procs.spawned().len(), 1);
    let late = h.api.begin_response(da.invoke.id.as_str(), || Ok(()));
    assert_eq!(late.err().map(|e| e.status.as_u16()), Some(410));
    // A worker calls /next again: the queued invoke runs.
    let w3 = h.next();
    let dc = w3.await.unwrap();
    answer(&h.api, &dc.invoke.id);
    assert!(matches!(c.reply.await.unwrap(), InvokeOutcome::Response(_)));
    h.settle().await;
    assert_eq!(h.state().await.phase, "Ready");
}

#[tokio::test]
async fn lmi_a_runtime_exit_fails_every_invoke_and_reinitialises() {
    let mut h = Harness::start(LambdaConfig {
        sandbox_concurrency: Some(3),
        ..config()
    });
    h.settle().await;
    let (w1, w2) = (h.next(), h.next());
    h.ready().await;
    let (a, b) = (h.invoke("{}"), h.invoke("{}"));
    let (da, _db) = (w1.await.unwrap(), w2.await.unwrap());
    let pid = h.procs.last();
    h.procs.exit(pid, ExitReason::Code(3));
    for inv in [a, b] {
        let e = error_of(inv.reply.await.unwrap());
        assert_eq!(e.error_type, ErrorType::RuntimeExitError);
        match inv.result.await.unwrap() {
            InvokeResult::InvokeFailure(f) => assert!(f.reset),
            other => panic!("{other:?}"),
        }
    }
    h.settle().await;
    assert_eq!(h.procs.spawned().len(), 2, "a fresh init starts at once");
    let late = h.api.begin_response(da.invoke.id.as_str(), || Ok(()));
    assert_eq!(late.err().map(|e| e.status.as_u16()), Some(410));
}
