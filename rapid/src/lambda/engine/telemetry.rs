//! The platform records the engine emits, in one place (SPEC §6): to the
//! Telemetry API subscribers (in each schema version's shape) and, with the
//! function's JSON log format, as platform log lines on stdout (the
//! `2025-01-29` shape, as Lambda writes them).

use std::time::Duration;

use fatalerror::ErrorType;
use interop::RequestId;

use super::phase::Running;
use super::Engine;
use crate::telemetry_hub::records;

/// A record with the invoke's `tenantId`, when it has one.
fn with_tenant(mut record: serde_json::Value, tenant: Option<&str>) -> serde_json::Value {
    if let (Some(t), Some(obj)) = (tenant, record.as_object_mut()) {
        obj.insert("tenantId".into(), t.into());
    }
    record
}

/// The `status` of a failed phase.
pub(super) fn failure_status(t: &ErrorType) -> &'static str {
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

    /// Whether anyone takes platform records.
    fn platform_wanted(&self) -> bool {
        self.hub.active() || self.out.json()
    }

    /// A record the same in every schema version.
    fn platform(&self, record_type: &str, record: serde_json::Value) {
        if self.out.json() {
            self.out.platform_line(record_type, record.clone());
        }
        self.hub.platform(record_type, record);
    }

    /// A record with fields only `2025-01-29` has (`current` = `older` + them).
    fn platform_versions(
        &self,
        record_type: &str,
        older: serde_json::Value,
        current: serde_json::Value,
    ) {
        if self.out.json() {
            self.out.platform_line(record_type, current.clone());
        }
        self.hub.platform_versions(record_type, older, current);
    }

    /// `instanceId` (the log stream name, as in Lambda's logs) and
    /// `instanceMaxMemory` (bytes, as Lambda's logs give it).
    fn with_instance(&self, mut record: serde_json::Value) -> serde_json::Value {
        records::add(&mut record, "instanceId", self.log_stream.as_str().into());
        records::add(
            &mut record,
            "instanceMaxMemory",
            (self.init.memory_size_mb * 1024 * 1024).into(),
        );
        record
    }

    pub(super) fn emit_init_start(&self) {
        self.hub.init_started();
        let older = records::init_start(
            self.init_type(),
            &self.init.function_name,
            &self.init.function_version,
        );
        let current = self.with_instance(older.clone());
        self.platform_versions("platform.initStart", older, current);
    }

    /// `initRuntimeDone` and `initReport`; `error` is `None` on success.
    pub(super) fn emit_init_done(&self, took: Duration, error: Option<&ErrorType>) {
        if self.platform_wanted() {
            let status = error.map_or("success", failure_status);
            let et = error.map(ErrorType::as_str);
            self.platform(
                "platform.initRuntimeDone",
                records::init_runtime_done(self.init_type(), status, et),
            );
            self.platform(
                "platform.initReport",
                records::init_report(self.init_type(), status, took, et),
            );
        }
        self.hub.init_finished();
    }

    /// `platform.start` to subscribers (the START line is the output's).
    pub(super) fn emit_start(&self, id: &RequestId, trace: Option<&str>, tenant: Option<&str>) {
        if self.hub.active() {
            let older = with_tenant(
                records::start(id.as_str(), &self.init.function_version, trace),
                tenant,
            );
            let mut current = older.clone();
            records::add(&mut current, "functionArn", self.arn.as_str().into());
            self.hub.platform_versions("platform.start", older, current);
        }
    }

    /// `runtimeDone` and `report` of an invoke; `error` when it failed (the
    /// REPORT line is the output's).
    pub(super) fn emit_invoke_done(&self, run: &Running, error: Option<&ErrorType>, peak_mb: u64) {
        if !self.platform_wanted() {
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
        self.platform(
            "platform.runtimeDone",
            with_tenant(
                records::runtime_done(run.id.as_str(), status, took, run.produced_bytes, et),
                run.tenant_id.as_deref(),
            ),
        );
        if !self.hub.active() {
            return;
        }
        let older = with_tenant(
            records::report(
                run.id.as_str(),
                status,
                took,
                self.init.memory_size_mb,
                peak_mb,
                run.init_duration,
            ),
            run.tenant_id.as_deref(),
        );
        let mut current = older.clone();
        if let Some(e) = et {
            records::add(&mut current, "errorType", e.into());
        }
        self.hub
            .platform_versions("platform.report", older, current);
    }

    /// The status and error type of an invoke's REPORT.
    pub(super) fn invoke_status(
        run: &Running,
        error: Option<&ErrorType>,
    ) -> (&'static str, Option<String>) {
        match (error, &run.function_error) {
            (Some(t), _) => (failure_status(t), Some(t.as_str().to_owned())),
            (None, Some(f)) => ("error", Some(f.error_type.as_str().to_owned())),
            (None, None) => ("success", None),
        }
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
        if !self.platform_wanted() {
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
            self.platform("platform.extension", records::extension(name, &events));
        }
    }

    pub(super) fn emit_restore_start(&self) {
        let older = records::restore_start(&self.init.function_name, &self.init.function_version);
        let current = self.with_instance(older.clone());
        self.platform_versions("platform.restoreStart", older, current);
    }

    pub(super) fn emit_restore_done(&self, took: Duration, error: Option<&ErrorType>) {
        let status = error.map_or("success", failure_status);
        self.platform(
            "platform.restoreRuntimeDone",
            records::restore_runtime_done(status, error.map(ErrorType::as_str)),
        );
        self.platform(
            "platform.restoreReport",
            records::restore_report(status, took),
        );
    }
}
