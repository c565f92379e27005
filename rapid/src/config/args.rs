//! The command line (SPEC §7): every option also has an environment variable.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::parse::{duration as parse_duration, name as parse_name};

/// rapid: a Lambda-style runtime and sandbox manager.
///
/// rapid starts a function's custom runtime (BOOTSTRAP), serves it the AWS Lambda
/// Runtime API, and exposes the Invoke API so that you can invoke the function over
/// HTTP exactly as AWS's Runtime Interface Emulator allows:
///
///   curl -d '{}' http://127.0.0.1:8080/2015-03-31/functions/function/invocations
///
/// Every failure (crash, timeout, oversize response) comes back as an exact Lambda
/// error. rapid can run as PID 1 of a container or microVM.
///
/// With --mode http|streaming|serializing|static it hosts a function the way
/// OpenFaaS's of-watchdog does instead (any path on port 8080, /_/health,
/// /_/ready, metrics on 8081), reading of-watchdog's variables too:
///
///   mode=streaming fprocess="wc -c" rapid
#[derive(Debug, Clone, Parser)]
#[command(name = "rapid", version, about, long_about, max_term_width = 100)]
pub struct Args {
    /// Address of the Invoke API (the emulator endpoint you call) [default:
    /// 0.0.0.0:8080]. In the watchdog modes only when given: the Invoke API
    /// then drives the watchdog backend too.
    #[arg(long, env = "RAPID_INVOKE_ADDRESS", value_name = "HOST:PORT")]
    pub runtime_interface_emulator_address: Option<SocketAddr>,

    /// Address of the Runtime API the bootstrap talks to (its AWS_LAMBDA_RUNTIME_API).
    #[arg(
        long,
        env = "RAPID_RUNTIME_API_ADDRESS",
        default_value = "127.0.0.1:9001",
        value_name = "HOST:PORT"
    )]
    pub runtime_api_address: SocketAddr,

    /// Function timeout: seconds ("300") or a duration ("1500ms", "2m").
    #[arg(long, env = "AWS_LAMBDA_FUNCTION_TIMEOUT", default_value = "300", value_parser = parse_duration, value_name = "DURATION")]
    pub timeout: Duration,

    /// Init timeout: seconds or a duration.
    #[arg(long, env = "RAPID_INIT_TIMEOUT", default_value = "10", value_parser = parse_duration, value_name = "DURATION")]
    pub init_timeout: Duration,

    /// Invokes that may wait for a busy sandbox; past this the Invoke API
    /// answers 429 TooManyRequestsException. 0: AWS's behaviour, an invoke
    /// beyond --concurrency is throttled at once (Reason:
    /// ReservedFunctionConcurrentInvocationLimitExceeded).
    #[arg(
        long,
        env = "RAPID_MAX_QUEUE",
        default_value_t = 1024,
        value_parser = clap::value_parser!(u32).range(0..=1_000_000),
        value_name = "N"
    )]
    pub max_queue: u32,

    /// Event (asynchronous) invokes that may wait, in their own queue as on
    /// AWS; past this: 429.
    #[arg(
        long,
        env = "RAPID_MAX_EVENT_QUEUE",
        default_value_t = 1024,
        value_parser = clap::value_parser!(u32).range(0..=1_000_000),
        value_name = "N"
    )]
    pub max_event_queue: u32,

    /// Sandboxes of the function: up to N execution environments (a runtime
    /// and its extensions each, with its own Runtime API on loopback) serve N
    /// invokes at once. An invoke takes an idle warm sandbox (the most
    /// recently used), else starts one (a cold start), else waits.
    #[arg(
        long,
        env = "RAPID_CONCURRENCY",
        default_value_t = 1,
        value_parser = clap::value_parser!(u32).range(1..=1024),
        value_name = "N"
    )]
    pub concurrency: u32,

    /// Sandboxes initialised at start and kept warm (provisioned
    /// concurrency; at most --concurrency). 0: the first invoke starts one.
    #[arg(
        long,
        env = "RAPID_MIN_WARM",
        default_value_t = 1,
        value_parser = clap::value_parser!(u32).range(0..=1024),
        value_name = "K"
    )]
    pub min_warm: u32,

    /// Shut down sandboxes (beyond --min-warm) idle longer than this
    /// (SHUTDOWN reason SPINDOWN to their extensions) [default: never].
    #[arg(long, env = "RAPID_IDLE_TIMEOUT", value_parser = parse_duration, value_name = "DURATION")]
    pub idle_timeout: Option<Duration>,

    /// A sandbox serves invokes of one tenant (`X-Amz-Tenant-Id`) only, as
    /// AWS's PER_TENANT isolation; an invoke without one is 400
    /// InvalidParameterValueException. When every sandbox is taken and only
    /// another tenant's is idle, that one is shut down (SPINDOWN) to make room.
    #[arg(long, env = "RAPID_TENANT_ISOLATION")]
    pub tenant_isolation: bool,

    /// Lambda Managed Instances (LMI) mode: each sandbox's runtime takes up
    /// to N invokes at once (N workers may wait on /next; the runtime gets
    /// AWS_LAMBDA_MAX_CONCURRENCY=N and AWS_LAMBDA_INITIALIZATION_TYPE=
    /// lambda-managed-instances). A timed-out invoke fails alone; the runtime
    /// keeps running. Also switched on by AWS_LAMBDA_MAX_CONCURRENCY=N, as
    /// AWS's emulator does [default: off, one invoke at a time].
    #[arg(
        long,
        env = "RAPID_SANDBOX_CONCURRENCY",
        value_parser = clap::value_parser!(u32).range(1..=1024),
        value_name = "N"
    )]
    pub sandbox_concurrency: Option<u32>,

    /// AWS_LAMBDA_MAX_CONCURRENCY as given to rapid (checked at start-up).
    #[arg(
        long = "aws-lambda-max-concurrency",
        env = "AWS_LAMBDA_MAX_CONCURRENCY",
        hide = true
    )]
    pub aws_max_concurrency: Option<String>,

    /// AWS_LAMBDA_LOG_FORMAT as given to rapid (passed on to the runtime;
    /// read here only to refuse `Text` in LMI mode).
    #[arg(
        long = "aws-lambda-log-format",
        env = "AWS_LAMBDA_LOG_FORMAT",
        hide = true
    )]
    pub aws_log_format: Option<String>,

    /// Lambda mode, on SIGTERM: refuse new invokes (503) but let those running
    /// and queued finish for up to this long before the sandboxes shut down —
    /// what a Kubernetes rolling update needs [default: 0, shut down at once].
    #[arg(long, env = "RAPID_DRAIN_TIMEOUT", value_parser = crate::parse::duration_or_zero, value_name = "DURATION")]
    pub drain_timeout: Option<Duration>,

    /// Another function of the table, `NAME=COMMAND` (repeatable; the command
    /// is split like a shell would): its own sandboxes, ARN and
    /// AWS_LAMBDA_FUNCTION_NAME, invoked at /2015-03-31/functions/NAME/invocations.
    /// It takes the other options as its defaults. With a positional BOOTSTRAP
    /// that one stays the default function (`function` in the path).
    #[arg(long = "function", env = "RAPID_FUNCTION", value_name = "NAME=COMMAND")]
    pub functions: Vec<String>,

    /// A TOML file of functions: `[functions.NAME]` tables with `command`
    /// (or `bootstrap`), and optionally `handler`, `environment`, `timeout`,
    /// `memory`, `concurrency`, `min_warm`, `extensions_dir` (see
    /// docs/functions.md). Read before the --function entries.
    #[arg(long, env = "RAPID_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Reload on change (local development): when a function's bootstrap
    /// (or a file or directory its command names) changes, its idle
    /// sandboxes are replaced at once and busy ones after their invoke.
    #[arg(long, env = "RAPID_WATCH", value_parser = clap::builder::BoolishValueParser::new())]
    pub watch: bool,

    /// Function name (also accepted in the Invoke API path besides "function").
    #[arg(
        long,
        env = "AWS_LAMBDA_FUNCTION_NAME",
        default_value = "test_function",
        value_parser = parse_name
    )]
    pub function_name: String,

    /// Function version.
    #[arg(long, env = "AWS_LAMBDA_FUNCTION_VERSION", default_value = "$LATEST", value_parser = parse_name)]
    pub function_version: String,

    /// Memory size in MB, reported to the runtime and in REPORT lines.
    #[arg(long, env = "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", default_value_t = 3008,
          value_parser = clap::value_parser!(u64).range(1..=1_048_576), value_name = "MB")]
    pub memory_size: u64,

    /// Handler (_HANDLER). Default: the last positional argument when two or more are given.
    #[arg(long, env = "AWS_LAMBDA_FUNCTION_HANDLER")]
    pub handler: Option<String>,

    /// AWS region reported to the runtime.
    #[arg(long, env = "AWS_REGION", default_value = "us-east-1", value_parser = parse_name)]
    pub region: String,

    /// Account id used in the function ARN.
    #[arg(long, env = "RAPID_ACCOUNT_ID", default_value = "012345678912", value_parser = parse_name)]
    pub account_id: String,

    /// Directory of external extensions (a missing directory means none).
    #[arg(
        long,
        env = "RAPID_EXTENSIONS_DIR",
        default_value = "/opt/extensions",
        value_name = "DIR"
    )]
    pub extensions_dir: PathBuf,

    /// Largest streamed response, in bytes.
    #[arg(long, env = "RAPID_STREAM_CAP", default_value_t = 200 * 1024 * 1024, value_name = "BYTES")]
    pub stream_cap: u64,

    /// microVM init mode: mount /proc, /sys, /dev, /dev/pts, /dev/shm, /tmp,
    /// /run (when absent), set the hostname, bring up loopback, raise
    /// RLIMIT_NOFILE, map sandbox.localdomain in /etc/hosts, and power the
    /// machine off at the end instead of exiting. Automatic when rapid is PID 1
    /// and /proc is not mounted.
    #[arg(long, env = "RAPID_INIT", value_parser = clap::builder::BoolishValueParser::new())]
    pub init: bool,

    /// Init mode: kernel modules to load first, in order (colon-separated
    /// paths of uncompressed .ko files), e.g. the virtio network driver.
    #[arg(
        long,
        env = "RAPID_INIT_MODULES",
        value_delimiter = ':',
        value_name = "KO:KO..."
    )]
    pub init_modules: Vec<PathBuf>,

    /// Init mode: configure a network interface, `IFACE=ADDR/PREFIX`
    /// (e.g. eth0=10.0.2.15/24).
    #[arg(long, env = "RAPID_INIT_NET", value_name = "IFACE=ADDR/PREFIX")]
    pub init_net: Option<String>,

    /// Hostname set in init mode.
    #[arg(long, env = "RAPID_HOSTNAME", default_value = "rapid", value_parser = parse_name)]
    pub hostname: String,

    /// Address of the control API (off by default). With it, rapid waits for
    /// `POST /v1/init` instead of initialising at start-up.
    #[arg(long, env = "RAPID_CONTROL_API_ADDRESS", value_name = "HOST:PORT")]
    pub control_api_address: Option<SocketAddr>,

    /// Address of the function URL front (off by default): any HTTP request
    /// becomes a function URL event (payload format 2.0), the answer the response.
    #[arg(long, env = "RAPID_FUNCTION_URL_ADDRESS", value_name = "HOST:PORT")]
    pub function_url_address: Option<SocketAddr>,

    /// The function URL's InvokeMode: BUFFERED (the whole answer, mapped) or
    /// RESPONSE_STREAM (a streaming function's answer as it is produced).
    #[arg(
        long,
        env = "RAPID_FUNCTION_URL_INVOKE_MODE",
        value_enum,
        default_value = "BUFFERED",
        value_name = "MODE"
    )]
    pub function_url_invoke_mode: InvokeModeArg,

    /// File holding the control API's bearer token (required when the control
    /// address is not loopback).
    #[arg(long, env = "RAPID_CONTROL_TOKEN_FILE", value_name = "FILE")]
    pub control_token_file: Option<PathBuf>,

    /// Sealed execution: every invoke gets a fresh sandbox. `--one-shot` (or
    /// `=recycle`) shuts the sandbox down after each invoke and starts a new
    /// one; `--one-shot=exit` serves exactly one invoke, then exits 0.
    #[arg(long, env = "RAPID_ONE_SHOT", num_args = 0..=1, default_missing_value = "recycle",
          value_name = "MODE")]
    pub one_shot: Option<OneShotArg>,

    /// Directory whose contents are wiped between one-shot sandboxes (e.g. /tmp).
    #[arg(long, env = "RAPID_SCRATCH_DIR", value_name = "DIR")]
    pub scratch_dir: Option<PathBuf>,

    /// Shape streamed responses as Lambda does: 2 MiB/s after the first 6 MiB.
    #[arg(long, env = "RAPID_STREAM_SHAPING", value_parser = clap::builder::BoolishValueParser::new())]
    pub stream_shaping: bool,

    /// Init caching (SnapStart-style): the runtime is told
    /// AWS_LAMBDA_INITIALIZATION_TYPE=snap-start, ends its init in
    /// /runtime/restore/next, and resumes after a Restore (at once, or on
    /// `POST /v1/restore` with the control API).
    #[arg(long, env = "ENABLE_INIT_CACHING", value_parser = clap::builder::BoolishValueParser::new())]
    pub enable_init_caching: bool,

    /// Restore timeout: seconds or a duration.
    #[arg(long, env = "RAPID_RESTORE_TIMEOUT", default_value = "10", value_parser = parse_duration, value_name = "DURATION")]
    pub restore_timeout: Duration,

    /// Diagnostics level (stderr).
    #[arg(long, env = "LOG_LEVEL", default_value = "info", value_name = "LEVEL")]
    pub log_level: LogLevel,

    /// Diagnostics format (stderr).
    #[arg(
        long,
        env = "RAPID_LOG_FORMAT",
        default_value = "text",
        value_name = "FORMAT"
    )]
    pub log_format: LogFormat,

    #[command(flatten)]
    pub watchdog: super::watchdog::WatchdogArgs,

    #[command(flatten)]
    pub limits: super::limits::LimitArgs,

    #[command(flatten)]
    pub function_logs: super::function_logs::FunctionLogArgs,

    /// The runtime to start and its arguments. Default: the first executable of
    /// /var/task/bootstrap, /opt/bootstrap, /var/runtime/bootstrap. In the
    /// watchdog modes http, streaming and serializing: the function process.
    #[arg(value_name = "BOOTSTRAP [ARGS]...", trailing_var_arg = true)]
    pub command: Vec<String>,
}

/// rapid's diagnostics level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogLevel {
    /// Errors only.
    Error,
    /// And warnings.
    Warn,
    /// And progress (the default).
    Info,
    /// And details of every request.
    Debug,
    /// Everything.
    Trace,
}

impl LogLevel {
    /// As a `tracing` level.
    pub fn as_tracing(self) -> tracing::Level {
        match self {
            LogLevel::Error => tracing::Level::ERROR,
            LogLevel::Warn => tracing::Level::WARN,
            LogLevel::Info => tracing::Level::INFO,
            LogLevel::Debug => tracing::Level::DEBUG,
            LogLevel::Trace => tracing::Level::TRACE,
        }
    }
}

/// rapid's diagnostics format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Lines of text.
    Text,
    /// One JSON object per line.
    Json,
}

/// `--function-url-invoke-mode`, spelled as AWS's `InvokeMode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum InvokeModeArg {
    /// The whole answer, mapped.
    #[value(name = "BUFFERED")]
    Buffered,
    /// Streamed after the http-integration prelude.
    #[value(name = "RESPONSE_STREAM")]
    ResponseStream,
}

impl From<InvokeModeArg> for crate::fronts::function_url::InvokeMode {
    fn from(a: InvokeModeArg) -> Self {
        match a {
            InvokeModeArg::Buffered => crate::fronts::function_url::InvokeMode::Buffered,
            InvokeModeArg::ResponseStream => {
                crate::fronts::function_url::InvokeMode::ResponseStream
            }
        }
    }
}

/// `--one-shot[=recycle|exit]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OneShotArg {
    /// A fresh sandbox for every invoke.
    Recycle,
    /// One invoke, then exit.
    Exit,
}

impl From<OneShotArg> for crate::sandbox::OneShot {
    fn from(a: OneShotArg) -> Self {
        match a {
            OneShotArg::Recycle => crate::sandbox::OneShot::Recycle,
            OneShotArg::Exit => crate::sandbox::OneShot::Exit,
        }
    }
}
