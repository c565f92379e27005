//! Lambda Managed Instances (LMI): after init the runtime's workers serve up
//! to `AWS_LAMBDA_MAX_CONCURRENCY` invokes side by side (`Phase::Serving`).
//! An invoke is over when its response or error is complete (no extension
//! subscribes to INVOKE there); a deadline fails that invoke alone, and the
//! runtime keeps running; a process exit fails every invoke and resets.

use std::time::Instant;

use interop::{
    FunctionError, InvokeFailure, InvokeResult, InvokeSuccess, RequestId, ResponseMode,
    ShutdownReason,
};

use super::phase::{Running, Serving};
use super::{errors, Engine, Phase};

impl Engine {
    /// Init is done: in LMI mode the sandbox serves invokes side by side.
    pub(super) fn start_serving(&mut self) {
        if let Some(max) = self.cfg.sandbox_concurrency {
            self.phase = Phase::Serving(Serving {
                max,
                running: Vec::new(),
            });
        }
    }

    /// Whether the engine may take the next queued invoke now.
    pub(super) fn can_take_invoke(&self) -> bool {
        match &self.phase {
            // A worker must be waiting on /next, too.
            Phase::Serving(s) => s.has_room() && self.runtime.idle_workers() > 0,
            p => p.accepts_invokes(),
        }
    }

    /// The response (or error) of `id` is complete: that invoke is over.
    pub(super) fn worker_done(
        &mut self,
        id: &RequestId,
        produced_bytes: u64,
        mode: ResponseMode,
        function_error: Option<FunctionError>,
    ) {
        let Phase::Serving(s) = &mut self.phase else {
            return;
        };
        let Some(mut run) = s.take(id) else {
            return;
        };
        run.produced_bytes = produced_bytes;
        run.response = Some((mode, run.started.elapsed()));
        run.function_error = function_error;
        let peak_mb = self.peak_mb();
        let success = InvokeSuccess {
            id: run.id.clone(),
            function_error: run.function_error.clone(),
            metrics: run.metrics(peak_mb),
        };
        tracing::debug!(request_id = %run.id, duration_ms = success.metrics.duration_ms, "invoke complete");
        self.emit_invoke_done(&run, None, peak_mb);
        self.finish_run(&mut run, None);
        self.record_invoke(InvokeResult::InvokeSuccess(success), run.result);
    }

    /// Fail the invoke `run` (the runtime is not touched here); `reset`:
    /// the sandbox resets because of it (reported in the typed result).
    fn fail_one(&mut self, mut run: Running, error: FunctionError, reset: bool) {
        let peak_mb = self.peak_mb();
        let failure = InvokeFailure {
            id: run.id.clone(),
            error: error.clone(),
            metrics: run.metrics(peak_mb),
            reset,
        };
        tracing::warn!(request_id = %run.id, error_type = %error.error_type,
            "invoke failed: {}", error.error_message);
        self.emit_invoke_done(&run, Some(&error.error_type), peak_mb);
        let error_type = error.error_type.clone();
        self.runtime.fail_invoke(&run.id, error);
        self.finish_run(&mut run, Some(&error_type));
        self.record_invoke(InvokeResult::InvokeFailure(failure), run.result);
    }

    /// Deadlines passed: those invokes answer `Sandbox.Timedout`; the runtime
    /// and the other invokes go on (their late answers get 410).
    pub(super) fn serving_deadline(&mut self) {
        let Phase::Serving(s) = &mut self.phase else {
            return;
        };
        for run in s.expired(Instant::now()) {
            tracing::warn!(request_id = %run.id, "invoke timed out; the runtime keeps running");
            let err = errors::timed_out(&run.id, run.timeout);
            self.fail_one(run, err, false);
        }
    }

    /// Fail every invoke the workers hold with the error `make` gives for it
    /// (the sandbox resets or shuts down next).
    pub(super) fn fail_serving(&mut self, make: impl Fn(&RequestId) -> FunctionError) {
        let Phase::Serving(s) = &mut self.phase else {
            return;
        };
        for run in std::mem::take(&mut s.running) {
            let err = make(&run.id);
            self.fail_one(run, err, true);
        }
    }

    /// A sandbox process exited while serving: every invoke in it fails,
    /// the sandbox resets and starts again.
    pub(super) async fn serving_exit(&mut self, make: impl Fn(&RequestId) -> FunctionError) {
        self.fail_serving(make);
        self.phase = Phase::Stopped;
        self.reset(ShutdownReason::Failure).await;
        if self.cfg.one_shot.is_none() {
            self.start_init(None);
        }
    }
}
