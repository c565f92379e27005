//! Init: start the extensions, wait until they registered, start the runtime,
//! wait until everyone waits for work (SPEC §2).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use interop::{
    ErrorInvokeResponse, FunctionError, Init, InitFailure, InitMetrics, InitResult, InitSuccess,
    ShutdownReason,
};
use runtime_api::InvokeOutcome;

use super::phase::Initializing;
use super::{environment, errors, ms, Engine, InvokeRequest, Phase, Proc};
use crate::lambda::config::{Bootstrap, Lifecycle};
use crate::output::Source;
use crate::supervisor::SpawnSpec;

/// The executables of the extensions directory, sorted by name. A missing
/// directory means no extensions.
pub fn list_extensions(dir: &Path) -> Vec<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .collect();
    found.sort();
    found
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

impl Engine {
    /// Start a fresh sandbox generation. `waiting` is the invoke of a suppressed init.
    pub(super) fn start_init(&mut self, waiting: Option<InvokeRequest>) {
        let init = Init {
            suppressed: waiting.is_some(),
            ..self.init.clone()
        };
        let started = Instant::now();
        self.stats.init();
        let budget = Duration::from_millis(if init.suppressed {
            init.invoke_timeout_ms
        } else {
            init.init_timeout_ms
        });
        tracing::info!(
            generation = self.generation,
            suppressed = init.suppressed,
            budget_ms = budget.as_millis() as u64,
            "init starting"
        );
        self.log_stream = environment::log_stream_name(&init.function_version);
        self.phase = Phase::Initializing(Initializing {
            started,
            deadline: started + budget,
            timeout: budget,
            waiting,
            awaiting_registration: Vec::new(),
            runtime_started: false,
            runtime_ready: false,
            reply: None,
            snapshot_ready: false,
        });
        self.emit_init_start();
        self.runtime.set_function(runtime_api::FunctionInfo {
            name: init.function_name.clone(),
            version: init.function_version.clone(),
            handler: init.handler.clone(),
        });
        let runtime_env = self.runtime_env();
        let extension_env = environment::extension_env(&runtime_env);
        let paths = list_extensions(&self.cfg.extensions_dir);
        let names: Vec<String> = paths.iter().map(|p| file_name(p)).collect();
        self.runtime.set_external_extensions(names.clone());
        for (path, name) in paths.iter().zip(names) {
            let spec = SpawnSpec {
                program: path.clone(),
                args: Vec::new(),
                env: extension_env.clone(),
            };
            match self.procs.spawn(&spec, self.exits_tx.clone()) {
                Ok(spawned) => {
                    tracing::info!(pid = spawned.pid, extension = %name, "extension started");
                    self.out
                        .forward(spawned.stdout, "stdout", Source::Extension);
                    self.out
                        .forward(spawned.stderr, "stderr", Source::Extension);
                    self.extensions.push(Proc {
                        pid: spawned.pid,
                        extension: Some(name.clone()),
                    });
                    if let Phase::Initializing(i) = &mut self.phase {
                        i.awaiting_registration.push(name);
                    }
                }
                Err(e) => {
                    let err = errors::extension_launch(&name, &e.to_string());
                    self.init_failed(err, None);
                    return;
                }
            }
        }
        if self.extensions.is_empty() {
            self.start_runtime(runtime_env);
        }
    }

    /// An extension registered; once every external one has, start the runtime.
    pub(super) fn on_registered(&mut self, name: &str, external: bool) {
        let Phase::Initializing(init) = &mut self.phase else {
            return;
        };
        if external {
            init.awaiting_registration.retain(|n| n != name);
        }
        if init.awaiting_registration.is_empty() && !init.runtime_started {
            let env = self.runtime_env();
            self.start_runtime(env);
        }
    }

    fn runtime_env(&self) -> Vec<(String, String)> {
        let caller = std::env::vars()
            .chain(self.cfg.environment.iter().cloned())
            .chain(self.init.environment.clone());
        environment::runtime_env(&self.cfg, &self.init, &self.log_stream, caller)
    }

    fn start_runtime(&mut self, env: Vec<(String, String)>) {
        let waiting_id = match &mut self.phase {
            Phase::Initializing(init) => {
                init.runtime_started = true;
                init.waiting.as_ref().map(|w| w.id.clone())
            }
            _ => return,
        };
        let spec = match &self.cfg.bootstrap {
            Bootstrap::Missing(detail) => {
                let e = errors::invalid_entrypoint(waiting_id.as_ref(), detail);
                self.init_failed(e, None);
                return;
            }
            Bootstrap::Command { program, args } => SpawnSpec {
                program: program.clone(),
                args: args.clone(),
                env,
            },
        };
        match self.procs.spawn(&spec, self.exits_tx.clone()) {
            Ok(spawned) => {
                tracing::debug!(pid = spawned.pid, program = %spec.program.display(), "runtime started");
                self.out.forward(spawned.stdout, "stdout", Source::Runtime);
                self.out.forward(spawned.stderr, "stderr", Source::Runtime);
                self.proc = Some(Proc {
                    pid: spawned.pid,
                    extension: None,
                });
            }
            Err(e) => {
                let detail = format!("Couldn't start bootstrap {}: {e}", spec.program.display());
                let err = errors::invalid_entrypoint(waiting_id.as_ref(), &detail);
                self.init_failed(err, None);
            }
        }
    }

    /// The runtime and every extension wait for work: init is complete.
    pub(super) fn init_complete(&mut self) {
        let Phase::Initializing(init) = std::mem::replace(&mut self.phase, Phase::Ready) else {
            return;
        };
        self.runtime.close_registration();
        let took = init.started.elapsed();
        let success = InitSuccess {
            metrics: InitMetrics {
                init_duration_ms: ms(took),
                num_active_extensions: self.runtime.extensions().len(),
            },
        };
        tracing::info!(
            duration_ms = success.metrics.init_duration_ms,
            extensions = success.metrics.num_active_extensions,
            "init complete"
        );
        self.emit_init_done(took, None);
        self.record_init(InitResult::InitSuccess(success), init.reply);
        if init.snapshot_ready {
            // Init caching: the snapshot point. A platform restores through the
            // control API; otherwise rapid restores at once.
            self.phase = Phase::Snapshotted;
            self.pending_init_duration = Some(took);
            if self.cfg.lifecycle == Lifecycle::Eager || init.waiting.is_some() {
                self.start_restore(None, init.waiting);
            }
            return;
        }
        self.start_serving();
        match init.waiting {
            Some(req) => self.dispatch(req, Some(took)),
            None => self.pending_init_duration = Some(took),
        }
    }

    /// Init failed while processes may be running: tear the generation down first.
    pub(super) async fn fail_init(
        &mut self,
        error: FunctionError,
        payload: Option<Vec<u8>>,
        reason: ShutdownReason,
    ) {
        self.reset(reason).await;
        self.init_failed(error, payload);
    }

    /// Record an init failure; the next invoke performs a suppressed init. An
    /// invoke waiting on this (suppressed) init gets the error.
    pub(super) fn init_failed(&mut self, error: FunctionError, payload: Option<Vec<u8>>) {
        self.kill_all_now();
        let phase = std::mem::replace(&mut self.phase, Phase::Stopped);
        let (started, waiting, reply) = match phase {
            Phase::Initializing(i) => (i.started, i.waiting, i.reply),
            _ => (Instant::now(), None, None),
        };
        let failure = InitFailure {
            error: error.clone(),
            metrics: InitMetrics {
                init_duration_ms: ms(started.elapsed()),
                num_active_extensions: 0,
            },
        };
        tracing::warn!(
            error_type = %failure.error.error_type,
            duration_ms = failure.metrics.init_duration_ms,
            "init failed: {}",
            failure.error.error_message
        );
        self.emit_init_done(started.elapsed(), Some(&failure.error.error_type));
        self.record_init(InitResult::InitFailure(failure), reply);
        let response = ErrorInvokeResponse {
            function_error: error,
            payload,
        };
        if let Some(w) = waiting {
            self.sealed_invoke_done = self.cfg.one_shot.is_some();
            self.out.start_line(self.start_of(&w));
            let _ = w.reply.send(InvokeOutcome::Error(response.clone()));
            let status = (
                super::telemetry::failure_status(&response.function_error.error_type),
                Some(response.function_error.error_type.as_str().to_owned()),
            );
            self.finish_lines(
                &w.id,
                started.elapsed(),
                None,
                status,
                w.tenant_id.clone(),
                w.tail,
            );
        }
        self.phase = Phase::InitFailed;
    }
}
