//! The watchdog's options (SPEC §9): rapid's own flags, with of-watchdog's
//! environment variable names (`mode`, `fprocess`, `upstream_url`,
//! `exec_timeout`, …) as the variables that set them.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

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
    /// A Rust handler linked into rapid (`rapid::watchdog::serve`); not selectable
    /// on the command line of the `rapid` binary.
    #[value(skip)]
    Inproc,
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
            Mode::Inproc => "inproc",
        }
    }
}

/// What the http backend does when its upstream process exits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Restart {
    /// Start it again (with back-off); requests wait for it to be ready.
    Always,
    /// Leave it down: `/_/health` answers 503 and requests 502 until rapid is restarted.
    Never,
}

/// `"10"` (seconds), `"1500ms"`, `"1m"`, or `"0"` (disabled).
pub fn parse_duration_or_zero(s: &str) -> Result<Duration, String> {
    if s.trim() == "0" || s.trim() == "0s" {
        return Ok(Duration::ZERO);
    }
    crate::config::parse_duration(s)
}

fn parse_url(s: &str) -> Result<http::Uri, String> {
    let with_scheme = if s.contains("://") {
        s.to_owned()
    } else {
        format!("http://{s}")
    };
    let uri: http::Uri = with_scheme
        .parse()
        .map_err(|e| format!("'{s}' is not a URL ({e})"))?;
    if uri.scheme_str() != Some("http") {
        return Err(format!("'{s}': only http:// upstreams are supported"));
    }
    if uri.authority().is_none() {
        return Err(format!("'{s}' has no host"));
    }
    Ok(uri)
}

fn parse_path(s: &str) -> Result<String, String> {
    if !s.starts_with('/') || s.chars().any(|c| c.is_control() || c == ' ') {
        return Err(format!("'{s}' is not an absolute URL path"));
    }
    Ok(s.to_owned())
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

    /// Port of the watchdog front.
    #[arg(long, env = "port", default_value_t = 8080, value_name = "PORT")]
    pub port: u16,

    /// Address of the watchdog front (overrides --port).
    #[arg(long, env = "RAPID_WATCHDOG_ADDRESS", value_name = "HOST:PORT")]
    pub watchdog_address: Option<SocketAddr>,

    /// Port of the Prometheus /metrics endpoint (same host as the front; 0 = off).
    #[arg(
        long,
        env = "metrics_port",
        default_value_t = 8081,
        value_name = "PORT"
    )]
    pub metrics_port: u16,

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

/// A watchdog configuration that cannot run.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WatchdogConfigError {
    /// A mode that needs a process got none.
    #[error("mode {0} needs a function process: give --fprocess (fprocess=...) or a command")]
    NoProcess(&'static str),
    /// http mode without an upstream.
    #[error("mode http needs --upstream-url (upstream_url=http://127.0.0.1:PORT)")]
    NoUpstream,
    /// static mode without a directory.
    #[error("mode static needs --static-path (static_path=DIR)")]
    NoStaticPath,
    /// The static directory is unusable.
    #[error("--static-path {0}: not a readable directory")]
    BadStaticPath(PathBuf),
    /// The function process cannot be run.
    #[error("function process {0:?}: not an executable file (nor found on PATH)")]
    NotExecutable(String),
    /// The front and the metrics endpoint collide.
    #[error("--metrics-port {0} is the port of the watchdog front")]
    MetricsPortClash(u16),
}

/// The validated watchdog configuration.
#[derive(Debug, Clone)]
pub struct WatchdogConfig {
    /// Backend.
    pub mode: Mode,
    /// Program and arguments of the function process (http, fork modes).
    pub command: Vec<String>,
    /// http mode upstream.
    pub upstream: Option<http::Uri>,
    /// Buffer request bodies before proxying.
    pub buffer_request_body: bool,
    /// static mode directory.
    pub static_path: Option<PathBuf>,
    /// Per-request deadline (None = none).
    pub exec_timeout: Option<Duration>,
    /// Client read deadline.
    pub read_timeout: Option<Duration>,
    /// Client write deadline.
    pub write_timeout: Option<Duration>,
    /// Concurrency limit (None = none).
    pub max_inflight: Option<usize>,
    /// Forced response content type (fork modes).
    pub content_type: Option<String>,
    /// Prefix log lines.
    pub prefix_logs: bool,
    /// Pipe read buffer.
    pub log_buffer_size: usize,
    /// Custom readiness path passed to the upstream.
    pub ready_path: Option<String>,
    /// Lock file written when ready (None = suppressed).
    pub lock_file: Option<PathBuf>,
    /// The front's address.
    pub address: SocketAddr,
    /// The metrics address (None = off).
    pub metrics_address: Option<SocketAddr>,
    /// The Invoke API over the watchdog backend (only when given).
    pub invoke_address: Option<SocketAddr>,
    /// The control API over the watchdog backend.
    pub control_address: Option<SocketAddr>,
    /// Its bearer token.
    pub control_token: Option<String>,
    /// Drain delay on SIGTERM.
    pub drain_delay: Duration,
    /// Upstream restart policy.
    pub restart: Restart,
    /// Sealed execution.
    pub one_shot: Option<crate::config::OneShot>,
    /// Wiped between one-shot recycles.
    pub scratch_dir: Option<PathBuf>,
}

fn nonzero(d: Duration) -> Option<Duration> {
    (!d.is_zero()).then_some(d)
}

impl WatchdogConfig {
    /// Validate the watchdog options; `command` is the positional BOOTSTRAP [ARGS].
    pub fn load(
        a: &WatchdogArgs,
        command: &[String],
        one_shot: Option<crate::config::OneShot>,
        scratch_dir: Option<PathBuf>,
    ) -> Result<WatchdogConfig, WatchdogConfigError> {
        let mut command: Vec<String> = if command.is_empty() {
            a.fprocess
                .as_deref()
                .unwrap_or("")
                .split_whitespace()
                .map(str::to_owned)
                .collect()
        } else {
            command.to_vec()
        };
        match a.mode {
            Mode::Http | Mode::Streaming | Mode::Serializing if command.is_empty() => {
                return Err(WatchdogConfigError::NoProcess(a.mode.name()))
            }
            Mode::Http if a.upstream_url.is_none() => return Err(WatchdogConfigError::NoUpstream),
            Mode::Static => match &a.static_path {
                None => return Err(WatchdogConfigError::NoStaticPath),
                Some(p) if std::fs::read_dir(p).is_err() => {
                    return Err(WatchdogConfigError::BadStaticPath(p.clone()))
                }
                Some(_) => {}
            },
            _ => {}
        }
        if matches!(a.mode, Mode::Http | Mode::Streaming | Mode::Serializing) {
            match crate::config::resolve_program(&command[0]) {
                Some(p) => command[0] = p.to_string_lossy().into_owned(),
                None => return Err(WatchdogConfigError::NotExecutable(command[0].clone())),
            }
        }
        let address = a
            .watchdog_address
            .unwrap_or(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), a.port));
        let metrics_address = match a.metrics_port {
            0 => None,
            p if p == address.port() => return Err(WatchdogConfigError::MetricsPortClash(p)),
            p => Some(SocketAddr::new(address.ip(), p)),
        };
        Ok(WatchdogConfig {
            mode: a.mode,
            command,
            upstream: a.upstream_url.clone(),
            buffer_request_body: a.http_buffer_req_body,
            static_path: a.static_path.clone(),
            exec_timeout: nonzero(a.exec_timeout),
            read_timeout: nonzero(a.read_timeout),
            write_timeout: nonzero(a.write_timeout),
            max_inflight: (a.max_inflight > 0).then_some(a.max_inflight),
            content_type: a.content_type.clone(),
            prefix_logs: a.prefix_logs,
            log_buffer_size: a.log_buffer_size as usize,
            ready_path: a.ready_path.clone(),
            lock_file: (!a.suppress_lock).then(|| std::env::temp_dir().join(".lock")),
            address,
            metrics_address,
            invoke_address: None,
            control_address: None,
            control_token: None,
            drain_delay: a.healthcheck_interval.unwrap_or(a.write_timeout),
            restart: a.restart,
            one_shot,
            scratch_dir,
        })
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        w: WatchdogArgs,
        command: Vec<String>,
    }

    fn load(args: &[&str]) -> Result<WatchdogConfig, WatchdogConfigError> {
        let t =
            T::try_parse_from(std::iter::once("t").chain(args.iter().copied())).map_err(|e| {
                WatchdogConfigError::NoProcess(Box::leak(e.to_string().into_boxed_str()))
            })?;
        WatchdogConfig::load(&t.w, &t.command, None, None)
    }

    #[test]
    fn modes_need_their_inputs() {
        assert_eq!(
            load(&["--mode", "streaming"]).unwrap_err(),
            WatchdogConfigError::NoProcess("streaming")
        );
        assert_eq!(
            load(&["--mode", "http", "--fprocess", "srv"]).unwrap_err(),
            WatchdogConfigError::NoUpstream
        );
        assert_eq!(
            load(&["--mode", "static"]).unwrap_err(),
            WatchdogConfigError::NoStaticPath
        );
        assert!(matches!(
            load(&["--mode", "static", "--static-path", "/nonexistent/x"]).unwrap_err(),
            WatchdogConfigError::BadStaticPath(_)
        ));
        let c = load(&["--mode", "streaming", "--fprocess", "/bin/sh  -c"]).unwrap();
        assert_eq!(c.command, vec!["/bin/sh", "-c"]);
        let c = load(&["--mode", "streaming", "--fprocess", "x", "/bin/cat", "-"]).unwrap();
        assert_eq!(c.command, vec!["/bin/cat", "-"], "positional command wins");
        assert_eq!(
            load(&["--mode", "streaming", "--fprocess", "/nonexistent/fn"]).unwrap_err(),
            WatchdogConfigError::NotExecutable("/nonexistent/fn".into())
        );
    }

    #[test]
    fn durations_and_limits() {
        let c = load(&[
            "--mode",
            "streaming",
            "--fprocess",
            "/bin/cat",
            "--exec-timeout",
            "0",
        ])
        .unwrap();
        assert_eq!(c.exec_timeout, None);
        let c = load(&[
            "--mode",
            "streaming",
            "--fprocess",
            "/bin/cat",
            "--exec-timeout",
            "1500ms",
        ])
        .unwrap();
        assert_eq!(c.exec_timeout, Some(Duration::from_millis(1500)));
        assert_eq!(
            c.drain_delay,
            Duration::from_secs(10),
            "defaults to write_timeout"
        );
        assert!(load(&["--exec-timeout", "soon"]).is_err());
        assert!(load(&["--max-inflight", "-1"]).is_err());
        assert_eq!(
            load(&["--port", "9000", "--metrics-port", "9000"]).unwrap_err(),
            WatchdogConfigError::MetricsPortClash(9000)
        );
        assert!(load(&["--upstream-url", "https://x:1"]).is_err());
        let c = load(&[
            "--upstream-url",
            "127.0.0.1:3000",
            "--mode",
            "http",
            "--fprocess",
            "/bin/sh",
        ])
        .unwrap();
        assert_eq!(c.upstream.unwrap().to_string(), "http://127.0.0.1:3000/");
    }
}
