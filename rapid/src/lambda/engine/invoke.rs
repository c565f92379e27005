//! Invoke: dispatch to the runtime (and INVOKE to extensions), close the
//! invoke when everyone waits for work again, or fail it and reset.

use std::time::Duration;

use interop::{
    FunctionError, Invoke, InvokeFailure, InvokeResult, InvokeSuccess, RequestId, ShutdownReason,
};
use runtime_api::InvokeOutcome;
use tokio::sync::oneshot;

use super::phase::Running;
use super::{sandbox_failure, Engine, InvokeRequest, Phase};
use crate::output::{Report, StartLine};

impl Engine {
    pub(super) fn on_invoke(&mut self, req: InvokeRequest) {
        match &self.phase {
            Phase::Ready | Phase::Serving(_) => {
                let init = self.pending_init_duration.take();
                self.dispatch(req, init);
            }
            Phase::InitFailed => {
                tracing::info!(request_id = %req.id, "suppressed init for this invoke");
                self.start_init(Some(req));
            }
            _ => {
                // Not reachable: invokes are only taken in the two phases above.
                let _ = req.reply.send(InvokeOutcome::failure(sandbox_failure(
                    "The sandbox was not ready",
                )));
            }
        }
    }

    pub(super) fn dispatch(&mut self, req: InvokeRequest, init_duration: Option<Duration>) {
        self.emit_start(&req.id, req.trace_id.as_deref(), req.tenant_id.as_deref());
        let start = self.start_of(&req);
        let tenant_id = req.tenant_id.clone();
        let invoke = Invoke {
            id: req.id.clone(),
            trace_id: req.trace_id,
            client_context: req.client_context,
            cognito_identity: req.cognito_identity,
            tenant_id: req.tenant_id,
            invoked_function_arn: req.invoked_arn.unwrap_or_else(|| self.arn.clone()),
            content_type: req.content_type,
            payload_size: req.payload.len(),
            timeout_ms: req
                .timeout
                .map_or(self.init.invoke_timeout_ms, |t| t.as_millis() as u64),
        };
        let serving = matches!(self.phase, Phase::Serving(_));
        // LMI: invokes overlap, so one invoke's log tail cannot be told
        // apart; none is captured (the answer carries no X-Amz-Log-Result).
        let tail = if serving { None } else { req.tail };
        if tail.is_some() {
            self.out.capture_start();
        }
        self.out.start_line(start);
        let started = std::time::Instant::now();
        match self.runtime.dispatch(invoke, req.payload, req.reply) {
            Ok(()) => {
                tracing::debug!(request_id = %req.id, "invoke dispatched");
                let run = Running {
                    id: req.id,
                    started,
                    deadline: started + req.timeout.unwrap_or_else(|| self.invoke_timeout()),
                    timeout: req.timeout.unwrap_or_else(|| self.invoke_timeout()),
                    tail,
                    init_duration,
                    produced_bytes: 0,
                    response: None,
                    runtime_ready: false,
                    function_error: None,
                    result: req.result,
                    _admission: req.admission,
                    tenant_id,
                };
                match &mut self.phase {
                    Phase::Serving(s) => s.running.push(run),
                    _ => self.phase = Phase::Invoking(run),
                }
            }
            Err((e, reply)) => {
                tracing::error!(request_id = %req.id, error = %e, "dispatch refused");
                let _ = reply.send(InvokeOutcome::failure(sandbox_failure(e.to_string())));
                self.finish_lines(
                    &req.id,
                    started.elapsed(),
                    init_duration,
                    (
                        "failure",
                        Some(fatalerror::ErrorType::SandboxFailure.as_str().to_owned()),
                    ),
                    tenant_id,
                    tail,
                );
                if !serving {
                    self.phase = Phase::Ready;
                }
            }
        }
    }

    /// The runtime called `/next` and every INVOKE extension `/event/next`.
    pub(super) fn invoke_complete(&mut self) {
        let Phase::Invoking(mut run) = std::mem::replace(&mut self.phase, Phase::Ready) else {
            return;
        };
        let peak_mb = self.peak_mb();
        let success = InvokeSuccess {
            id: run.id.clone(),
            function_error: run.function_error.clone(),
            metrics: run.metrics(peak_mb),
        };
        tracing::debug!(request_id = %success.id, duration_ms = success.metrics.duration_ms,
            produced_bytes = success.metrics.produced_bytes, "invoke complete");
        self.emit_invoke_done(&run, None, peak_mb);
        self.finish_run(&mut run, None);
        self.record_invoke(InvokeResult::InvokeSuccess(success), run.result);
        self.sealed_invoke_done = self.cfg.one_shot.is_some();
    }

    /// The START line of an invoke.
    pub(super) fn start_of(&self, req: &InvokeRequest) -> StartLine {
        StartLine {
            id: req.id.clone(),
            version: self.init.function_version.clone(),
            function_arn: self.arn.clone(),
            tenant_id: req.tenant_id.clone(),
            trace_id: req.trace_id.clone(),
        }
    }

    /// END and REPORT of the invoke `run` (its status from `error`, else its
    /// function error), then its log tail.
    pub(super) fn finish_run(&self, run: &mut Running, error: Option<&fatalerror::ErrorType>) {
        let status = Engine::invoke_status(run, error);
        self.finish_lines(
            &run.id,
            run.started.elapsed(),
            run.init_duration,
            status,
            run.tenant_id.clone(),
            run.tail.take(),
        );
    }

    /// END and REPORT, then the log tail (which must include them).
    /// `status`: the invoke's status and error type.
    pub(super) fn finish_lines(
        &self,
        id: &RequestId,
        duration: Duration,
        init_duration: Option<Duration>,
        status: (&'static str, Option<String>),
        tenant_id: Option<String>,
        tail: Option<oneshot::Sender<Vec<u8>>>,
    ) {
        self.out.end_line(id);
        self.out.report_line(Report {
            id: id.clone(),
            duration,
            init_duration,
            memory_size_mb: self.init.memory_size_mb,
            runtime_pid: self.proc.as_ref().map(|p| p.pid),
            status: status.0,
            error_type: status.1,
            tenant_id,
        });
        if let Some(tail) = tail {
            self.out.capture_take(tail);
        }
    }

    /// The invoke failed in a way that needs a reset: answer the invoker (if it
    /// still waits), report, reset, and start a fresh init at once.
    pub(super) async fn fail_invoke(&mut self, error: FunctionError, reason: ShutdownReason) {
        if self.fail_invoke_without_reinit(error, reason).await && self.cfg.one_shot.is_none() {
            self.start_init(None);
        }
    }

    /// Answer, report and reset; returns whether there was an invoke to fail.
    /// One-shot mode leaves the next sandbox to the one-shot step.
    pub(super) async fn fail_invoke_without_reinit(
        &mut self,
        error: FunctionError,
        reason: ShutdownReason,
    ) -> bool {
        let Phase::Invoking(mut run) = std::mem::replace(&mut self.phase, Phase::Stopped) else {
            return false;
        };
        let peak_mb = self.peak_mb();
        let failure = InvokeFailure {
            id: run.id.clone(),
            error: error.clone(),
            metrics: run.metrics(peak_mb),
            reset: true,
        };
        tracing::warn!(request_id = %failure.id, error_type = %failure.error.error_type,
            "invoke failed: {}", failure.error.error_message);
        self.emit_invoke_done(&run, Some(&error.error_type), peak_mb);
        let error_type = error.error_type.clone();
        self.runtime.fail_current(error);
        self.finish_run(&mut run, Some(&error_type));
        self.record_invoke(InvokeResult::InvokeFailure(failure), run.result);
        self.reset(reason).await;
        if self.cfg.one_shot.is_some() {
            // The one-shot step starts the next sandbox (or stops rapid).
            self.sealed_invoke_done = true;
        }
        true
    }
}
