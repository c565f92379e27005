//! The watchdog options of the command line (SPEC §9): rapid's own flags,
//! with of-watchdog's environment variable names (`mode`, `fprocess`,
//! `upstream_url`, `exec_timeout`, …) as the variables that set them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::parse::{
    duration_or_zero as parse_duration_or_zero, http_url as parse_url, url_path as parse_path,
};
use crate::process::Restart;

/// Which backend serves requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// A Lambda custom runtime behind the Runtime API (the Invoke API front).
    Lambda,
    /// An HTTP server started once; every request is proxied to it.
    Http,
    /// A process forked per request: body on stdin, stdout streamed back.
    Streaming,
    /// A process forked per request: body on stdin, stdout buffered, exit status checked.
    Serializing,
    /// Files from a directory.
    Static,
}

impl Mode {
    /// Its name as `--mode` spells it.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Lambda => "lambda",
            Mode::Http => "http",
            Mode::Streaming => "streaming",
            Mode::Serializing => "serializing",
            Mode::Static => "static",
        }
    }
}

/// The watchdog options of the command line. Each also reads the environment
/// variable of-watchdog uses for it.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Watchdog modes (OpenFaaS of-watchdog conventions)")]
pub struct WatchdogArgs {
    /// Backend: lambda (a custom runtime behind the Runtime API), http, streaming,
    /// serializing or static.
    #[arg(long, env = "mode", default_value = "lambda", value_name = "MODE")]
    pub mode: Mode,

    /// The function process (http: the server to start; streaming/serializing: the
    /// command forked per request), split on whitespace. Alias: function_process.
    /// The positional BOOTSTRAP [ARGS] may be used instead.
    #[arg(long, env = "fprocess", value_name = "COMMAND")]
    pub fprocess: Option<String>,

    /// http mode: where the function's server listens. Alias: http_upstream_url.
    #[arg(long, env = "upstream_url", value_parser = parse_url, value_name = "URL")]
    pub upstream_url: Option<http::Uri>,

    /// http mode: read the whole request body before forwarding it (for upstreams
    /// that do not accept chunked bodies). Alias: buffer_http.
    #[arg(long, env = "http_buffer_req_body", value_parser = clap::builder::BoolishValueParser::new())]
    pub http_buffer_req_body: bool,

    /// static mode: the directory served.
    #[arg(long, env = "static_path", value_name = "DIR")]
    pub static_path: Option<PathBuf>,

    /// static mode: also serve symlinks that resolve outside the directory
    /// (refused with 404 by default).
    #[arg(long, env = "RAPID_STATIC_FOLLOW_SYMLINKS", value_parser = clap::builder::BoolishValueParser::new())]
    pub static_follow_symlinks: bool,

    /// Deadline for one request's function work (seconds or a duration; 0 = none):
    /// 504 in http mode, the process group killed in the fork modes.
    #[arg(long, env = "exec_timeout", default_value = "10", value_parser = parse_duration_or_zero, value_name = "DURATION")]
    pub exec_timeout: Duration,

    /// Deadline for reading a request's headers and body from the client (0 = none).
    #[arg(long, env = "read_timeout", default_value = "10", value_parser = parse_duration_or_zero, value_name = "DURATION")]
    pub read_timeout: Duration,

    /// Deadline for writing a response body to the client once it started (0 = none).
    #[arg(long, env = "write_timeout", default_value = "10", value_parser = parse_duration_or_zero, value_name = "DURATION")]
    pub write_timeout: Duration,

    /// Requests served at once; past it 429, and /_/ready answers 429 (0 = no limit).
    #[arg(long, env = "max_inflight", default_value_t = 0, value_name = "N")]
    pub max_inflight: usize,

    /// Content-Type of every response in the fork modes (default: whatever the
    /// client sent, else application/octet-stream).
    #[arg(long, env = "content_type", value_name = "TYPE")]
    pub content_type: Option<String>,

    /// Prefix the function's log lines with the time and the stream (and, in the
    /// fork modes, the call id).
    #[arg(long, env = "prefix_logs", default_value = "true", action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new(), value_name = "BOOL")]
    pub prefix_logs: bool,

    /// Read buffer for the function's output pipes, bytes. Longer lines are still
    /// forwarded whole (of-watchdog cuts them).
    #[arg(long, env = "log_buffer_size", default_value_t = 64 * 1024,
          value_parser = clap::value_parser!(u64).range(512..=16 * 1024 * 1024), value_name = "BYTES")]
    pub log_buffer_size: u64,

    /// A path of the upstream that /_/ready passes through to (http mode); its
    /// answer is /_/ready's answer.
    #[arg(long, env = "ready_path", value_parser = parse_path, value_name = "PATH")]
    pub ready_path: Option<String>,

    /// Do not write the lock file ($TMPDIR/.lock) when ready.
    #[arg(long, env = "suppress_lock", value_parser = clap::builder::BoolishValueParser::new(), value_name = "BOOL")]
    pub suppress_lock: bool,

    /// Port of the watchdog front [default: $PORT, else 8080].
    #[arg(long, env = "port", value_name = "PORT")]
    pub port: Option<u16>,

    /// The front's port when neither --port (port) nor an address is given —
    /// the watchdog front, or the Invoke API in lambda mode. Knative and
    /// Cloud Run set PORT [default: 8080].
    #[arg(long, env = "PORT", value_name = "PORT")]
    pub default_port: Option<u16>,

    /// Address of the watchdog front (overrides --port).
    #[arg(long, env = "RAPID_WATCHDOG_ADDRESS", value_name = "HOST:PORT")]
    pub watchdog_address: Option<SocketAddr>,

    /// Port of the Prometheus /metrics endpoint, same host as the front
    /// (0 = off) [default: 8081 in the watchdog modes; off in lambda mode,
    /// so that the RIE drop-in stays one port]. In lambda mode it also
    /// serves the pool's metrics: sandboxes, concurrency in use, queue
    /// depth, cold starts, throttles, invokes, durations.
    #[arg(long, env = "metrics_port", value_name = "PORT")]
    pub metrics_port: Option<u16>,

    /// On SIGTERM: how long /_/health and /_/ready answer 503 while requests are
    /// still served, so that the orchestrator stops routing (default: write_timeout).
    #[arg(long, env = "healthcheck_interval", value_parser = parse_duration_or_zero, value_name = "DURATION")]
    pub healthcheck_interval: Option<Duration>,

    /// http mode: what to do when the upstream process exits.
    #[arg(
        long,
        env = "RAPID_RESTART",
        default_value = "always",
        value_name = "POLICY"
    )]
    pub restart: Restart,
}

/// of-watchdog's alternative variable names, and the one each stands for.
const ALIASES: [(&str, &str); 4] = [
    ("function_process", "fprocess"),
    ("http_upstream_url", "upstream_url"),
    ("buffer_http", "http_buffer_req_body"),
    ("one_shot", "RAPID_ONE_SHOT"),
];

/// Fill each variable from its alias when only the alias is set; of-watchdog's
/// `one_shot=true` means rapid's `--one-shot=exit`. Call before parsing and
/// before any thread starts.
pub fn apply_env_aliases() {
    for (alias, name) in ALIASES {
        if std::env::var_os(name).is_some() {
            continue;
        }
        let Some(v) = std::env::var_os(alias) else {
            continue;
        };
        let v = if name == "RAPID_ONE_SHOT" {
            match v.to_str().map(|s| s.trim().to_ascii_lowercase()).as_deref() {
                Some("true" | "1" | "yes" | "on") => "exit".into(),
                Some("false" | "0" | "no" | "off" | "") => continue,
                _ => v,
            }
        } else {
            v
        };
        std::env::set_var(name, v);
    }
}

impl WatchdogArgs {
    /// The watchdog front's port: --port, else $PORT, else 8080.
    pub fn front_port(&self) -> u16 {
        self.port.or(self.default_port).unwrap_or(8080)
    }
}
