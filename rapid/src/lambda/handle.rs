//! The Lambda sandbox as every front sees it: invocations go on the engine's
//! queue (bounded by `--max-queue`), commands on its command channel.

use std::sync::Arc;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, StatusCode};
use interop::{RequestId, MAX_PAYLOAD};
use runtime_api::{InvokeOutcome, ResponseBody};
use tokio::sync::{mpsc, oneshot, watch};

use super::engine::{Command as EngineCommand, InvokeRequest};
use crate::sandbox::{
    read_event, Admissions, BoxFuture, Budget, Command, CommandReply, ControlError, Health, Hold,
    Invocation, InvokeError, Load, Member, Pending, Reply, ReplyBody, Response, Sandbox,
    SandboxState, Stats, Unavailable,
};

/// Every Lambda answer names its request.
const REQUEST_ID: header::HeaderName = header::HeaderName::from_static("x-amzn-requestid");

/// How many invocations a sandbox admits: `lanes` running and `max_queue` waiting.
#[derive(Debug, Clone, Copy)]
pub struct Capacity {
    /// `--max-queue`.
    pub max_queue: usize,
    /// Invokes that run at once (LMI: `AWS_LAMBDA_MAX_CONCURRENCY`, else 1).
    pub lanes: usize,
}

/// A handle to one Lambda sandbox (cheap to share behind an `Arc`).
pub struct LambdaSandbox {
    queue: mpsc::Sender<InvokeRequest>,
    commands: mpsc::Sender<EngineCommand>,
    admissions: Admissions,
    max_queue: usize,
    /// Invokes that run at once (LMI: `AWS_LAMBDA_MAX_CONCURRENCY`).
    lanes: usize,
    health: watch::Receiver<Health>,
    stats: Arc<Stats>,
    finished: watch::Receiver<bool>,
}

impl LambdaSandbox {
    pub(super) fn new(
        queue: mpsc::Sender<InvokeRequest>,
        commands: mpsc::Sender<EngineCommand>,
        admissions: Admissions,
        capacity: Capacity,
        health: watch::Receiver<Health>,
        stats: Arc<Stats>,
        finished: watch::Receiver<bool>,
    ) -> Self {
        LambdaSandbox {
            queue,
            commands,
            admissions,
            max_queue: capacity.max_queue,
            lanes: capacity.lanes,
            health,
            stats,
            finished,
        }
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> EngineCommand) -> Option<T> {
        let (tx, rx) = oneshot::channel();
        self.commands.send(make(tx)).await.ok()?;
        rx.await.ok()
    }

    async fn admit(&self, inv: Invocation, hold: Option<Hold>) -> Result<Pending, InvokeError> {
        if self.queue.is_closed() {
            return Err(InvokeError::Unavailable(Unavailable::ShuttingDown));
        }
        let Invocation {
            id,
            request,
            context,
            budget,
            log_tail,
            typed_result,
            ..
        } = inv;
        let (parts, body) = request.into_parts();
        let payload = read_event(body, MAX_PAYLOAD).await?;
        let header = |name: header::HeaderName| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let Some(admission) = self.admissions.try_admit(self.max_queue + self.lanes) else {
            self.stats.throttled();
            return Err(self.full());
        };
        let admission = admission.holding(hold);
        let (reply_tx, reply_rx) = oneshot::channel();
        let (result_tx, result_rx) = if typed_result {
            let (t, r) = oneshot::channel();
            (Some(t), Some(r))
        } else {
            (None, None)
        };
        let (tail_tx, tail_rx) = if log_tail {
            let (t, r) = oneshot::channel();
            (Some(t), Some(r))
        } else {
            (None, None)
        };
        let request = InvokeRequest {
            id: id.clone(),
            payload,
            content_type: header(header::CONTENT_TYPE).unwrap_or_else(|| "application/json".into()),
            trace_id: header(header::HeaderName::from_static("x-amzn-trace-id")),
            client_context: context.client_context,
            cognito_identity: context.cognito_identity,
            tenant_id: header(header::HeaderName::from_static("x-amz-tenant-id")),
            invoked_arn: context.invoked_function_arn,
            reply: reply_tx,
            tail: tail_tx,
            result: result_tx,
            admission: Some(admission),
            timeout: match budget {
                Budget::Platform(d) => Some(d),
                // A client cannot shorten a Lambda invoke: a timeout resets the sandbox.
                Budget::Function | Budget::Client(_) => None,
            },
        };
        match self.queue.try_send(request) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.stats.throttled();
                return Err(self.full());
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                return Err(InvokeError::Unavailable(Unavailable::ShuttingDown))
            }
        }
        // Outcomes and durations are counted once, by the pool in front.
        Ok(Box::pin(answer(id, reply_rx, tail_rx, result_rx)))
    }

    /// The refusal when no place is free: with `--max-queue 0`, Lambda's
    /// throttle; else a full queue.
    fn full(&self) -> InvokeError {
        match self.max_queue {
            0 => InvokeError::Throttled,
            waiting => InvokeError::QueueFull { waiting },
        }
    }
}

/// Wait for the runtime's answer (and the log tail, which follows END and
/// REPORT), and turn it into a reply.
async fn answer(
    id: RequestId,
    reply: oneshot::Receiver<InvokeOutcome>,
    tail: Option<oneshot::Receiver<Vec<u8>>>,
    result: Option<oneshot::Receiver<interop::InvokeResult>>,
) -> Reply {
    let Ok(outcome) = reply.await else {
        // The engine dropped the invoke: it shut down before answering.
        tracing::debug!(request_id = %id, "invoke dropped at shutdown");
        return Reply::new(Err(InvokeError::Unavailable(
            Unavailable::ShutDownDuringInvoke,
        )));
    };
    let streaming = matches!(
        &outcome,
        InvokeOutcome::Response(r) if matches!(r.body, ResponseBody::Streaming(_))
    );
    let log_tail = match (tail, streaming) {
        (Some(rx), false) => rx.await.ok().map(Bytes::from),
        _ => None,
    };
    let outcome = match outcome {
        InvokeOutcome::Response(r) => {
            let mut headers = HeaderMap::new();
            let ct = r
                .content_type
                .as_deref()
                .and_then(|c| HeaderValue::from_str(c).ok())
                .unwrap_or(HeaderValue::from_static("application/json"));
            headers.insert(header::CONTENT_TYPE, ct);
            if let Ok(v) = HeaderValue::from_str(id.as_str()) {
                headers.insert(REQUEST_ID, v);
            }
            let body = match r.body {
                ResponseBody::Buffered(b) => ReplyBody::Full(b),
                ResponseBody::Streaming(rx) => ReplyBody::Chunks(rx),
            };
            Ok(Response {
                status: StatusCode::OK,
                headers,
                body,
            })
        }
        InvokeOutcome::Error(e)
            if e.function_error.error_type == fatalerror::ErrorType::SandboxTimedout =>
        {
            Err(InvokeError::TimedOut(e.function_error))
        }
        InvokeOutcome::Error(e) => Err(InvokeError::Function(e)),
    };
    Reply {
        outcome,
        log_tail,
        result,
    }
}

impl Sandbox for LambdaSandbox {
    fn submit(&self, inv: Invocation) -> BoxFuture<'_, Result<Pending, InvokeError>> {
        Box::pin(self.admit(inv, None))
    }

    fn accepting(&self) -> Result<(), Unavailable> {
        if self.queue.is_closed() {
            return Err(Unavailable::ShuttingDown);
        }
        Ok(())
    }

    fn control(&self, cmd: Command) -> BoxFuture<'_, Result<CommandReply, ControlError>> {
        Box::pin(async move {
            let answer = match cmd {
                Command::Init(init) => self
                    .ask(|reply| EngineCommand::Init { init, reply })
                    .await
                    .map(|r| r.map(CommandReply::Init)),
                Command::Reset(reset) => self
                    .ask(|reply| EngineCommand::Reset { reset, reply })
                    .await
                    .map(|r| r.map(CommandReply::Reset)),
                Command::Shutdown { reason, exit } => self
                    .ask(|done| EngineCommand::Shutdown { reason, exit, done })
                    .await
                    .map(|r| r.map(CommandReply::Shutdown)),
                Command::Restore => self
                    .ask(|reply| EngineCommand::Restore { reply })
                    .await
                    .map(|r| r.map(CommandReply::Restore)),
            };
            answer.unwrap_or(Err(ControlError::Unavailable))
        })
    }

    fn health(&self) -> watch::Receiver<Health> {
        self.health.clone()
    }

    fn state(&self) -> BoxFuture<'_, SandboxState> {
        Box::pin(async move {
            match self.ask(|reply| EngineCommand::State { reply }).await {
                Some(s) => s,
                None => SandboxState {
                    mode: "lambda",
                    phase: "Stopped",
                    health: "Unhealthy",
                    why: Some("the sandbox is shut down".into()),
                    ..SandboxState::default()
                },
            }
        })
    }

    fn stats(&self) -> &Stats {
        &self.stats
    }

    fn load(&self) -> Load {
        let n = self.admissions.outstanding() as u64;
        let health = self.health.borrow();
        let starting = u64::from(*health == Health::Starting);
        // Up to `lanes` run at once (more than one in LMI mode).
        let running = n.min(self.lanes as u64);
        Load {
            starting,
            idle: u64::from(n == 0 && starting == 0),
            busy: n.min(1),
            running,
            queued: n - running,
        }
    }

    fn finished(&self) -> BoxFuture<'static, ()> {
        let mut rx = self.finished.clone();
        Box::pin(async move {
            let _ = rx.wait_for(|done| *done).await;
        })
    }
}

impl Member for LambdaSandbox {
    fn submit_held(
        &self,
        inv: Invocation,
        hold: Hold,
    ) -> BoxFuture<'_, Result<Pending, InvokeError>> {
        Box::pin(self.admit(inv, Some(hold)))
    }
}
