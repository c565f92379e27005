//! The platform records the engine emits, in one place (SPEC §6).

use std::time::Duration;

use fatalerror::ErrorType;
use interop::RequestId;

use super::phase::Running;
use super::Engine;
use crate::telemetry_hub::records;

/// The `status` of a failed phase.
/// A record with the invoke's `tenantId`, when it has one.
fn with_tenant(mut record: serde_json::Value, tenant: Option<&str>) -> serde_json::Value {
    if let (Some(t), Some(obj)) = (tenant, record.as_object_mut()) {
        obj.insert("tenantId".into(), t.into());
    }
    record
}

fn failure_status(t: &ErrorType) -> &'static str {
    match t {
        ErrorType::SandboxTimedout => "timeout",
        ErrorType::RuntimeExitError
        | ErrorType::RuntimeInvalidEntrypoint
        | ErrorType::ExtensionCrash
        | ErrorType::SandboxFailure
        | ErrorType::SandboxShutdown
        | ErrorType::RuntimeTruncatedResponse => "failure",
        _ => "error",
    }
}

impl Engine {
    fn init_type(&self) -> &'static str {
        if self.cfg.init_caching.is_some() {
            "snap-start"
        } else {
            "on-demand"
        }
    }

    pub(super) fn emit_init_start(&self) {
        self.hub.init_started();
        self.hub.platform(
            "platform.initStart",
            records::init_start(
                self.init_type(),
                &self.init.function_name,
                &self.init.function_version,
            ),
        );
    }

    /// `initRuntimeDone` and `initReport`; `error` is `None` on success.
    pub(super) fn emit_init_done(&self, took: Duration, error: Option<&ErrorType>) {
        if self.hub.active() {
            let status = error.map_or("success", failure_status);
            let et = error.map(ErrorType::as_str);
            self.hub.platform(
                "platform.initRuntimeDone",
                records::init_runtime_done(self.init_type(), status, et),
            );
            self.hub.platform(
                "platform.initReport",
                records::init_report(self.init_type(), status, took, et),
            );
        }
        self.hub.init_finished();
    }

    pub(super) fn emit_start(&self, id: &RequestId, trace: Option<&str>, tenant: Option<&str>) {
        if self.hub.active() {
            self.hub.platform(
                "platform.start",
                with_tenant(
                    records::start(id.as_str(), &self.init.function_version, trace),
                    tenant,
                ),
            );
        }
    }

    /// `runtimeDone` and `report` of an invoke; `error` when it failed.
    pub(super) fn emit_invoke_done(&self, run: &Running, error: Option<&ErrorType>, peak_mb: u64) {
        if !self.hub.active() {
            return;
        }
        let status = match (error, &run.function_error) {
            (Some(t), _) => failure_status(t),
            (None, Some(_)) => "error",
            (None, None) => "success",
        };
        let et = error
            .or(run.function_error.as_ref().map(|f| &f.error_type))
            .map(ErrorType::as_str);
        let took = run.started.elapsed();
        self.hub.platform(
            "platform.runtimeDone",
            with_tenant(
                records::runtime_done(run.id.as_str(), status, took, run.produced_bytes, et),
                run.tenant_id.as_deref(),
            ),
        );
        self.hub.platform(
            "platform.report",
            with_tenant(
                records::report(
                    run.id.as_str(),
                    status,
                    took,
                    self.init.memory_size_mb,
                    peak_mb,
                    run.init_duration,
                ),
                run.tenant_id.as_deref(),
            ),
        );
    }

    /// The runtime tree's peak memory in MiB (0 without a runtime).
    pub(super) fn peak_mb(&self) -> u64 {
        self.proc
            .as_ref()
            .map_or(0, |p| self.peak_kib(p.pid).div_ceil(1024))
    }

    /// The runtime tree's peak memory, KiB (see `memory.rs`).
    fn peak_kib(&self, pid: i32) -> u64 {
        self.memory.kib(pid, &self.procs)
    }

    pub(super) fn emit_extension(&self, name: &str) {
        if !self.hub.active() {
            return;
        }
        if let Some(info) = self
            .runtime
            .extensions()
            .into_iter()
            .find(|e| e.name == name)
        {
            let mut events = Vec::new();
            if info.invoke {
                events.push("INVOKE");
            }
            if info.shutdown {
                events.push("SHUTDOWN");
            }
            self.hub
                .platform("platform.extension", records::extension(name, &events));
        }
    }

    pub(super) fn emit_restore_start(&self) {
        self.hub.platform(
            "platform.restoreStart",
            records::restore_start(&self.init.function_name, &self.init.function_version),
        );
    }

    pub(super) fn emit_restore_done(&self, took: Duration, error: Option<&ErrorType>) {
        let status = error.map_or("success", failure_status);
        self.hub.platform(
            "platform.restoreRuntimeDone",
            records::restore_runtime_done(status, error.map(ErrorType::as_str)),
        );
        self.hub.platform(
            "platform.restoreReport",
            records::restore_report(status, took),
        );
    }
}
