//! What the process backends need: the function process and the mode's data
//! together, the exec timeout, the logs and the one-shot policy.

use std::path::PathBuf;
use std::time::Duration;

use crate::sandbox::OneShot;

/// The program of a function process and its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    /// Resolved path of the program.
    pub path: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
}

/// What the http backend does when its upstream process exits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Restart {
    /// Start it again (with back-off); requests wait for it to be ready.
    Always,
    /// Leave it down: `/_/health` answers 503 and requests 502 until rapid is restarted.
    Never,
}

/// Streamed or buffered fork mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// `streaming`: stdout goes out as it is written.
    Streaming,
    /// `serializing`: stdout is collected and the exit status checked.
    Serializing,
}

/// A process backend and its data.
#[derive(Debug, Clone)]
pub enum ProcessKind {
    /// An HTTP server started once; every request is proxied to it.
    Http {
        /// The server process.
        program: Program,
        /// Where it listens.
        upstream: http::Uri,
        /// Send request bodies with Content-Length (read whole first).
        buffer_request_body: bool,
        /// `/_/ready` passes through to this upstream path.
        ready_path: Option<String>,
        /// What to do when it exits.
        restart: Restart,
    },
    /// A process forked per request.
    Fork {
        /// The process.
        program: Program,
        /// Streamed or buffered.
        style: Style,
        /// Content-Type of every answer (default: the request's).
        content_type: Option<String>,
    },
    /// Files from a directory.
    Static {
        /// The directory.
        root: PathBuf,
        /// Serve symlinks that resolve outside it (off: 404).
        follow_symlinks: bool,
    },
    /// A Rust handler linked into rapid.
    Inproc,
}

impl ProcessKind {
    /// The mode's name, as `--mode` spells it.
    pub fn name(&self) -> &'static str {
        match self {
            ProcessKind::Http { .. } => "http",
            ProcessKind::Fork {
                style: Style::Streaming,
                ..
            } => "streaming",
            ProcessKind::Fork {
                style: Style::Serializing,
                ..
            } => "serializing",
            ProcessKind::Static { .. } => "static",
            ProcessKind::Inproc => "inproc",
        }
    }

    /// The path whose requests are readiness probes (they never take the
    /// one-shot request).
    pub fn ready_path(&self) -> Option<&str> {
        match self {
            ProcessKind::Http { ready_path, .. } => ready_path.as_deref(),
            _ => None,
        }
    }
}

/// How the function's output is logged.
#[derive(Debug, Clone, Copy)]
pub struct LogStyle {
    /// Prefix lines with the time, the stream and the call id.
    pub prefix: bool,
    /// Pipe read buffer, bytes.
    pub buffer: usize,
}

/// A process backend's configuration.
#[derive(Debug, Clone)]
pub struct ProcessConfig {
    /// The mode and its data.
    pub kind: ProcessKind,
    /// Per-call deadline (None = none).
    pub exec_timeout: Option<Duration>,
    /// The function's output.
    pub logs: LogStyle,
    /// Sealed execution.
    pub one_shot: Option<OneShot>,
    /// Emptied between one-shot recycles.
    pub scratch_dir: Option<PathBuf>,
}
