//! Restore (init caching, SnapStart-style): the runtime ended its init in
//! `/restore/next`; Restore releases it and waits (bounded by the restore
//! timeout) until it calls `/next`.

use std::time::Instant;

use interop::{FunctionError, RestoreResult, ShutdownReason};
use runtime_api::InvokeOutcome;
use tokio::sync::oneshot;

use super::phase::Restoring;
use super::{ms, Engine, InvokeRequest, Phase};

impl Engine {
    /// Release the runtime's `/restore/next`.
    pub(super) fn start_restore(
        &mut self,
        reply: Option<oneshot::Sender<RestoreResult>>,
        waiting: Option<InvokeRequest>,
    ) {
        let started = Instant::now();
        let timeout = self
            .cfg
            .init_caching
            .as_ref()
            .map_or(std::time::Duration::ZERO, |c| c.restore_timeout);
        tracing::info!("restore starting");
        self.emit_restore_start();
        match self.runtime.restore() {
            Ok(()) => {
                self.phase = Phase::Restoring(Restoring {
                    started,
                    deadline: started + timeout,
                    timeout,
                    cannot_start: None,
                    reply,
                    waiting,
                });
            }
            Err(e) => {
                let err =
                    FunctionError::new(fatalerror::ErrorType::RuntimeRestoreError, e.to_string());
                tracing::warn!("restore could not start: {}", err.error_message);
                // Failed on the next turn of the loop (the deadline is due at
                // once), with this error rather than a timeout.
                self.phase = Phase::Restoring(Restoring {
                    started,
                    deadline: started,
                    timeout,
                    cannot_start: Some(err),
                    reply,
                    waiting,
                });
            }
        }
    }

    /// The runtime called `/next` after its after-restore hooks.
    pub(super) fn restore_complete(&mut self) {
        let Phase::Restoring(r) = std::mem::replace(&mut self.phase, Phase::Ready) else {
            return;
        };
        let result = RestoreResult {
            duration_ms: ms(r.started.elapsed()),
            error: None,
        };
        tracing::info!(duration_ms = result.duration_ms, "restore complete");
        self.emit_restore_done(r.started.elapsed(), None);
        if let Some(reply) = r.reply {
            let _ = reply.send(result);
        }
        if let Some(req) = r.waiting {
            let init = self.pending_init_duration.take();
            self.dispatch(req, init);
        }
    }

    /// The restore failed: report it, reset; the next invoke initialises afresh.
    pub(super) async fn fail_restore(&mut self, error: FunctionError, reason: ShutdownReason) {
        let Phase::Restoring(r) = std::mem::replace(&mut self.phase, Phase::Stopped) else {
            return;
        };
        let result = RestoreResult {
            duration_ms: ms(r.started.elapsed()),
            error: Some(error.clone()),
        };
        tracing::warn!(error_type = %error.error_type, "restore failed: {}", error.error_message);
        self.emit_restore_done(r.started.elapsed(), Some(&error.error_type));
        if let Some(reply) = r.reply {
            let _ = reply.send(result);
        }
        if let Some(w) = r.waiting {
            let _ = w.reply.send(InvokeOutcome::failure(error.clone()));
        }
        self.reset(reason).await;
        self.phase = Phase::InitFailed;
    }
}
