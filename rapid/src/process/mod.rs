//! The process backends (the OpenFaaS watchdog modes) and the sandbox they
//! make: one function process (or none) behind the [`Sandbox`] contract.
//!
//! * `config.rs` — what they need; `backend.rs` — the interface they share.
//! * `upstream/` — http mode: an HTTP server started once and proxied to.
//! * `fork.rs` — a process per request (`streaming`, `serializing`); `cgi.rs`
//!   its environment; `logs.rs` its output, line by line.
//! * `static_files.rs` — a directory; `inproc.rs` — a Rust handler.
//!
//! * `sandbox.rs` — what every mode shares, behind the sandbox contract.

pub mod backend;
mod cgi;
pub mod config;
mod fork;
pub mod inproc;
pub mod logs;
mod sandbox;
mod static_files;
mod upstream;

use std::sync::Arc;

pub use backend::Backend;
pub use config::{LogStyle, ProcessConfig, ProcessKind, Program, Restart, Style};
pub use inproc::Handler;
pub use sandbox::ProcessSandbox;

use crate::output::Output;
use crate::sandbox::Stats;
use crate::supervisor::Reaper;

/// The backend of a mode that runs (or serves) something by itself.
pub fn backend_for(
    kind: &ProcessKind,
    reaper: Arc<Reaper>,
    out: Output,
    logs: LogStyle,
    stats: Arc<Stats>,
) -> Option<Arc<dyn Backend>> {
    let logs = logs::Logs::new(out, logs.prefix, logs.buffer);
    Some(match kind {
        ProcessKind::Http {
            program,
            upstream,
            buffer_request_body,
            ready_path,
            restart,
        } => Arc::new(upstream::HttpUpstream::new(
            upstream::HttpParts {
                program: program.clone(),
                upstream: upstream.clone(),
                buffer_request_body: *buffer_request_body,
                ready_path: ready_path.clone(),
                restart: *restart,
            },
            reaper,
            logs,
            stats,
        )),
        ProcessKind::Fork {
            program,
            style,
            content_type,
        } => Arc::new(fork::Fork::new(
            *style,
            program.clone(),
            content_type.clone(),
            reaper,
            logs,
        )),
        ProcessKind::Static {
            root,
            follow_symlinks,
        } => Arc::new(static_files::StaticFiles::new(
            root.clone(),
            *follow_symlinks,
        )),
        ProcessKind::Inproc => return None,
    })
}
