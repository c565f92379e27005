//! The command line, composed into the configurations of the parts: the
//! backend (the Lambda engine or a process backend, with its data), the
//! fronts that are on, and what init mode prepares. Each part's
//! configuration type lives with the part; this module only composes them.
//!
//! * `args.rs` — rapid's own options (clap); `watchdog.rs` — the watchdog
//!   options with of-watchdog's variable names; `function_logs.rs` — the
//!   function's logging controls; `limits.rs` — the fronts' limits.

pub mod args;
pub mod function_logs;
pub mod functions;
pub mod limits;
pub mod table;
pub mod watchdog;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use crate::lambda::Bootstrap;
pub use args::{Args, LogFormat, LogLevel, OneShotArg};
use function_logs::FormatArg;
pub use functions::FunctionsError;
pub use table::LambdaFunction;
pub use watchdog::{apply_env_aliases, Mode, WatchdogArgs};

pub use crate::fronts::function_url::{FunctionUrlConfig, InvokeMode};
use crate::fronts::openfaas::OpenFaasConfig;
use crate::lambda::{InitCaching, LambdaConfig, Lifecycle};
use crate::parse;
use crate::process::{LogStyle, ProcessConfig, ProcessKind, Program, Style};
use crate::sandbox::{FunctionId, OneShot, Order, Scaling};
use crate::supervisor::vm_init::Machine;

/// Where rapid looks for a bootstrap when none is given, in order.
pub const DEFAULT_BOOTSTRAPS: [&str; 3] = [
    "/var/task/bootstrap",
    "/opt/bootstrap",
    "/var/runtime/bootstrap",
];

/// The backend and its data.
#[derive(Debug, Clone)]
pub enum BackendConfig {
    /// Lambda custom runtimes behind the Runtime API: the functions, the
    /// default one first.
    Lambda(Vec<LambdaFunction>),
    /// A watchdog mode's process backend.
    Process(Box<ProcessConfig>),
}

/// The control API front.
#[derive(Debug, Clone)]
pub struct ControlFront {
    /// Where it listens.
    pub address: SocketAddr,
    /// The bearer token every call must carry.
    pub token: Option<String>,
}

/// The OpenFaaS front.
#[derive(Debug, Clone)]
pub struct OpenFaasFront {
    /// Where it listens.
    pub address: SocketAddr,
    /// Its settings.
    pub config: OpenFaasConfig,
}

/// The fronts that are on.
#[derive(Debug, Clone, Default)]
pub struct Fronts {
    /// The Invoke API.
    pub invoke: Option<SocketAddr>,
    /// The control API.
    pub control: Option<ControlFront>,
    /// The OpenFaaS front.
    pub openfaas: Option<OpenFaasFront>,
    /// Prometheus `/metrics`.
    pub metrics: Option<SocketAddr>,
    /// The function URL front.
    pub function_url: Option<FunctionUrlConfig>,
    /// Timeouts and the connection bound of all of them.
    pub limits: limits::FrontLimits,
}

/// How long shutdown waits.
#[derive(Debug, Clone, Copy)]
pub struct DrainPolicy {
    /// For requests in flight, once the fronts refuse new ones.
    pub in_flight: Duration,
    /// For the last answers to reach their clients.
    pub flush: Duration,
}

/// The validated configuration rapid runs with.
#[derive(Debug, Clone)]
pub struct Config {
    /// Who the function is.
    pub function: FunctionId,
    /// What serves it.
    pub backend: BackendConfig,
    /// Who callers talk to.
    pub fronts: Fronts,
    /// The waits of shutdown.
    pub drain: DrainPolicy,
    /// microVM init mode (also automatic as PID 1 without /proc).
    pub init_mode: bool,
    /// What init mode prepares.
    pub machine: Machine,
}

/// A configuration that cannot run.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// The control API would be reachable off-host without a token.
    #[error("--control-api-address {0} is not a loopback address: give --control-token-file")]
    ControlTokenRequired(SocketAddr),
    /// The token file cannot be used.
    #[error("--control-token-file {path}: {why}")]
    ControlToken {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
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
    /// The metrics endpoint and the Invoke API collide.
    #[error("--metrics-port {0} is the port of the Invoke API")]
    MetricsPortIsInvoke(u16),
    /// More warm sandboxes than the concurrency allows.
    #[error("--min-warm {min_warm} is more than --concurrency {concurrency}")]
    MinWarmAboveConcurrency {
        /// Asked for.
        min_warm: u32,
        /// The bound.
        concurrency: u32,
    },
    /// One invoke then exit, with several sandboxes.
    #[error("--one-shot=exit serves one invoke and exits: it takes --concurrency 1, not {0}")]
    OneShotExitWithPool(u32),
    /// One invoke then exit, with several functions.
    #[error("--one-shot=exit serves one invoke and exits: it takes one function, not {0}")]
    OneShotExitWithTable(usize),
    /// A function table outside lambda mode.
    #[error("--function and --config are for lambda mode (the watchdog modes host one process)")]
    FunctionsNeedLambda,
    /// A function entry that cannot be used.
    #[error(transparent)]
    Functions(#[from] FunctionsError),
    /// `AWS_LAMBDA_MAX_CONCURRENCY` is not a concurrency.
    #[error("AWS_LAMBDA_MAX_CONCURRENCY={0:?}: not a positive integer (1 to 1024)")]
    BadMaxConcurrency(String),
    /// LMI mode with a feature it does not have.
    #[error("Lambda Managed Instances mode (AWS_LAMBDA_MAX_CONCURRENCY / --sandbox-concurrency) does not support {0}")]
    ManagedInstancesWithout(&'static str),
    /// A platform-driven pool with nothing to initialise.
    #[error("--min-warm 0 with --control-api-address: a platform's Init needs a sandbox to initialise (give --min-warm 1 or more)")]
    PlatformNeedsWarm,
    /// The function's logging controls are refused.
    #[error(transparent)]
    LogControls(#[from] crate::log_controls::LogControlsError),
}

/// Decide what to run from the positional arguments.
pub fn resolve_bootstrap(command: &[String], defaults: &[&str]) -> Bootstrap {
    match command.split_first() {
        Some((program, args)) => match parse::program(program) {
            Some(p) => Bootstrap::Command {
                program: p,
                args: args.to_vec(),
            },
            None => Bootstrap::Missing(format!(
                "Couldn't find valid bootstrap(s): [{program}] (not an executable file)"
            )),
        },
        None => defaults
            .iter()
            .map(PathBuf::from)
            .find(|p| parse::is_executable(p))
            .map(|program| Bootstrap::Command {
                program,
                args: Vec::new(),
            })
            .unwrap_or_else(|| {
                Bootstrap::Missing(format!("Couldn't find valid bootstrap(s): {defaults:?}"))
            }),
    }
}

fn read_token(path: &Path) -> Result<String, ConfigError> {
    let bad = |why: String| ConfigError::ControlToken {
        path: path.to_path_buf(),
        why,
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let t = text.trim().to_owned();
    if t.is_empty() {
        return Err(bad("the file is empty".into()));
    }
    Ok(t)
}

fn nonzero(d: Duration) -> Option<Duration> {
    (!d.is_zero()).then_some(d)
}

/// The function process of a watchdog mode: the positional command, else `--fprocess`.
fn function_program(w: &WatchdogArgs, command: &[String]) -> Result<Program, ConfigError> {
    let mut words: Vec<String> = if command.is_empty() {
        w.fprocess
            .as_deref()
            .unwrap_or("")
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    } else {
        command.to_vec()
    };
    if words.is_empty() {
        return Err(ConfigError::NoProcess(w.mode.name()));
    }
    let first = words.remove(0);
    let path = parse::program(&first).ok_or(ConfigError::NotExecutable(first))?;
    Ok(Program { path, args: words })
}

/// The process backend of a watchdog mode.
fn process_kind(w: &WatchdogArgs, command: &[String]) -> Result<ProcessKind, ConfigError> {
    Ok(match w.mode {
        // Not a process backend (the caller asks only for watchdog modes).
        Mode::Lambda => return Err(ConfigError::NoProcess("lambda")),
        Mode::Http => {
            let program = function_program(w, command)?;
            let upstream = w.upstream_url.clone().ok_or(ConfigError::NoUpstream)?;
            ProcessKind::Http {
                program,
                upstream,
                buffer_request_body: w.http_buffer_req_body,
                ready_path: w.ready_path.clone(),
                restart: w.restart,
            }
        }
        Mode::Streaming | Mode::Serializing => ProcessKind::Fork {
            program: function_program(w, command)?,
            style: if w.mode == Mode::Streaming {
                Style::Streaming
            } else {
                Style::Serializing
            },
            content_type: w.content_type.clone(),
        },
        Mode::Static => {
            let root = w.static_path.clone().ok_or(ConfigError::NoStaticPath)?;
            if std::fs::read_dir(&root).is_err() {
                return Err(ConfigError::BadStaticPath(root));
            }
            ProcessKind::Static {
                root,
                follow_symlinks: w.static_follow_symlinks,
            }
        }
    })
}

/// The OpenFaaS front's address and the metrics address next to it.
fn front_addresses(w: &WatchdogArgs) -> Result<(SocketAddr, Option<SocketAddr>), ConfigError> {
    let address = w.watchdog_address.unwrap_or(SocketAddr::new(
        IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        w.front_port(),
    ));
    let metrics = match w.metrics_port.unwrap_or(8081) {
        0 => None,
        p if p == address.port() => return Err(ConfigError::MetricsPortClash(p)),
        p => Some(SocketAddr::new(address.ip(), p)),
    };
    Ok((address, metrics))
}

/// The OpenFaaS front's settings.
pub fn openfaas_config(w: &WatchdogArgs) -> OpenFaasConfig {
    OpenFaasConfig {
        read_timeout: nonzero(w.read_timeout),
        write_timeout: nonzero(w.write_timeout),
        max_inflight: (w.max_inflight > 0).then_some(w.max_inflight),
        lock_file: (!w.suppress_lock).then(|| std::env::temp_dir().join(".lock")),
        drain_delay: w.healthcheck_interval.unwrap_or(w.write_timeout),
    }
}

/// A process backend's configuration for `kind`.
pub fn process_config(
    w: &WatchdogArgs,
    kind: ProcessKind,
    one_shot: Option<OneShot>,
    scratch_dir: Option<PathBuf>,
) -> ProcessConfig {
    ProcessConfig {
        kind,
        exec_timeout: nonzero(w.exec_timeout),
        logs: LogStyle {
            prefix: w.prefix_logs,
            buffer: w.log_buffer_size as usize,
        },
        one_shot,
        scratch_dir,
    }
}

/// The fronts of a watchdog mode (the OpenFaaS front and its metrics) and
/// its drain: in-flight requests get the exec and write timeouts.
pub fn watchdog_fronts(w: &WatchdogArgs) -> Result<(Fronts, DrainPolicy), ConfigError> {
    let (address, metrics) = front_addresses(w)?;
    let cfg = openfaas_config(w);
    let write = cfg.write_timeout.unwrap_or(Duration::from_secs(30));
    let drain = DrainPolicy {
        in_flight: nonzero(w.exec_timeout).unwrap_or(Duration::from_secs(30)) + write,
        flush: write,
    };
    let fronts = Fronts {
        openfaas: Some(OpenFaasFront {
            address,
            config: cfg,
        }),
        metrics,
        ..Fronts::default()
    };
    Ok((fronts, drain))
}

impl Config {
    /// Validate parsed arguments, reading the files they name.
    pub fn load(args: Args) -> Result<Config, ConfigError> {
        let token = args
            .control_token_file
            .as_deref()
            .map(read_token)
            .transpose()?;
        if let Some(addr) = args.control_api_address {
            if !addr.ip().is_loopback() && token.is_none() {
                return Err(ConfigError::ControlTokenRequired(addr));
            }
        }
        let w = &args.watchdog;
        let one_shot = args.one_shot.map(OneShot::from);
        let function = FunctionId {
            name: args.function_name.clone(),
            version: args.function_version.clone(),
            region: args.region.clone(),
            account: args.account_id.clone(),
        };
        let control = args.control_api_address.map(|address| ControlFront {
            address,
            token: token.clone(),
        });
        let sandbox_concurrency = sandbox_concurrency(&args)?;
        let mut scaling = scaling(&args, control.is_some() && w.mode == Mode::Lambda)?;
        if w.mode != Mode::Lambda && table::asks_for_functions(&args) {
            return Err(ConfigError::FunctionsNeedLambda);
        }
        let log_controls = args.function_logs.controls()?;
        let (backend, mut fronts, drain) = if w.mode == Mode::Lambda {
            let openfaas = match w.watchdog_address {
                None => None,
                Some(_) => Some(front_addresses(w)?),
            };
            let handler = args.handler.clone().or_else(|| {
                (args.command.len() >= 2)
                    .then(|| args.command.last().cloned())
                    .flatten()
            });
            let lambda = LambdaConfig {
                function: function.clone(),
                memory_size_mb: args.memory_size,
                handler,
                timeout: args.timeout,
                init_timeout: args.init_timeout,
                max_queue: args.max_queue as usize,
                runtime_api_address: args.runtime_api_address,
                extensions_dir: args.extensions_dir.clone(),
                // The default function's is resolved with the table.
                bootstrap: Bootstrap::Missing(String::new()),
                environment: Vec::new(),
                shares_network: false,
                stream_cap_bytes: args.stream_cap,
                stream_shaping: args.stream_shaping,
                init_caching: args.enable_init_caching.then(|| InitCaching {
                    restore_timeout: args.restore_timeout,
                    credentials: credentials_from_env(),
                }),
                one_shot,
                scratch_dir: args.scratch_dir.clone(),
                lifecycle: if control.is_some() {
                    Lifecycle::PlatformDriven
                } else {
                    Lifecycle::Eager
                },
                log_controls,
                sandbox_concurrency,
            };
            scaling.per_sandbox = sandbox_concurrency.unwrap_or(1);
            let fronts = Fronts {
                invoke: Some(invoke_address(&args)),
                control,
                openfaas: openfaas.map(|(address, _)| OpenFaasFront {
                    address,
                    config: OpenFaasConfig {
                        drain_delay: Duration::ZERO,
                        lock_file: None,
                        ..openfaas_config(w)
                    },
                }),
                metrics: match openfaas {
                    Some((_, m)) => m,
                    None => lambda_metrics(w.metrics_port, invoke_address(&args))?,
                },
                function_url: None,
                limits: limits::FrontLimits::default(),
            };
            let drain = DrainPolicy {
                in_flight: args.drain_timeout.unwrap_or(Duration::ZERO),
                flush: Duration::from_secs(10),
            };
            let functions = table::lambda_functions(&args, lambda, scaling)?;
            (BackendConfig::Lambda(functions), fronts, drain)
        } else {
            let kind = process_kind(w, &args.command)?;
            let (mut fronts, drain) = watchdog_fronts(w)?;
            fronts.invoke = args.runtime_interface_emulator_address;
            fronts.control = control;
            let process = process_config(w, kind, one_shot, args.scratch_dir.clone());
            (BackendConfig::Process(Box::new(process)), fronts, drain)
        };
        fronts.function_url = args.function_url_address.map(|address| FunctionUrlConfig {
            address,
            mode: args.function_url_invoke_mode.into(),
        });
        fronts.limits = limits::FrontLimits::from(&args.limits);
        Ok(Config {
            function,
            backend,
            fronts,
            drain,
            init_mode: args.init,
            machine: Machine {
                hostname: args.hostname.clone(),
                modules: args.init_modules.clone(),
                net: args.init_net.clone(),
            },
        })
    }
}

/// The Invoke API's address in lambda mode: as given, else port $PORT
/// (Knative, Cloud Run), else 8080, on every interface.
fn invoke_address(args: &Args) -> SocketAddr {
    args.runtime_interface_emulator_address
        .unwrap_or(SocketAddr::from((
            [0, 0, 0, 0],
            args.watchdog.default_port.unwrap_or(8080),
        )))
}

/// Lambda mode's metrics endpoint: only when a port is given.
fn lambda_metrics(
    port: Option<u16>,
    invoke: SocketAddr,
) -> Result<Option<SocketAddr>, ConfigError> {
    match port {
        None | Some(0) => Ok(None),
        Some(p) if p == invoke.port() => Err(ConfigError::MetricsPortIsInvoke(p)),
        Some(p) => Ok(Some(SocketAddr::new(invoke.ip(), p))),
    }
}

/// LMI mode: `--sandbox-concurrency`, else `AWS_LAMBDA_MAX_CONCURRENCY`
/// (a positive integer), refused with what LMI does not have.
fn sandbox_concurrency(args: &Args) -> Result<Option<usize>, ConfigError> {
    let n = match (args.sandbox_concurrency, &args.aws_max_concurrency) {
        (Some(n), _) => n as usize,
        (None, Some(raw)) => match raw.trim().parse::<usize>() {
            Ok(n @ 1..=1024) => n,
            _ => return Err(ConfigError::BadMaxConcurrency(raw.clone())),
        },
        (None, None) => return Ok(None),
    };
    if args.enable_init_caching {
        return Err(ConfigError::ManagedInstancesWithout(
            "init caching (--enable-init-caching)",
        ));
    }
    if args.one_shot.is_some() {
        return Err(ConfigError::ManagedInstancesWithout("--one-shot"));
    }
    // "Managed Instances only support JSON log format" (runtimes-custom.html).
    let text = match args.function_logs.function_log_format {
        Some(f) => f == FormatArg::Text,
        None => args
            .aws_log_format
            .as_deref()
            .is_some_and(|f| f.trim().eq_ignore_ascii_case("text")),
    };
    if text {
        return Err(ConfigError::ManagedInstancesWithout(
            "the Text log format (--function-log-format / AWS_LAMBDA_LOG_FORMAT): it logs JSON only",
        ));
    }
    Ok(Some(n))
}

/// The pool's shape, checked.
fn scaling(args: &Args, platform_driven: bool) -> Result<Scaling, ConfigError> {
    if args.min_warm > args.concurrency {
        return Err(ConfigError::MinWarmAboveConcurrency {
            min_warm: args.min_warm,
            concurrency: args.concurrency,
        });
    }
    if args.concurrency > 1 && args.one_shot == Some(OneShotArg::Exit) {
        return Err(ConfigError::OneShotExitWithPool(args.concurrency));
    }
    if platform_driven && args.min_warm == 0 {
        return Err(ConfigError::PlatformNeedsWarm);
    }
    Ok(Scaling {
        concurrency: args.concurrency as usize,
        min_warm: args.min_warm as usize,
        max_queue: args.max_queue as usize,
        max_event_queue: args.max_event_queue as usize,
        idle_timeout: args.idle_timeout.filter(|d| !d.is_zero()),
        order: if args.one_shot.is_some() {
            Order::LeastRecent
        } else {
            Order::MostRecent
        },
        tenant_isolation: args.tenant_isolation,
        per_sandbox: 1,
    })
}

/// Credentials for a restored runtime: from `AWS_ACCESS_KEY_ID` and
/// `AWS_SECRET_ACCESS_KEY` (and `AWS_SESSION_TOKEN`), guarded by a fresh token.
fn credentials_from_env() -> Option<runtime_api::Credentials> {
    Some(runtime_api::Credentials {
        access_key_id: std::env::var("AWS_ACCESS_KEY_ID").ok()?,
        secret_access_key: std::env::var("AWS_SECRET_ACCESS_KEY").ok()?,
        session_token: std::env::var("AWS_SESSION_TOKEN").ok(),
        authorization_token: interop::RequestId::generate().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::error::ErrorKind;
    use clap::Parser;

    fn load(args: &[&str]) -> Result<Config, ConfigError> {
        let a = Args::try_parse_from(std::iter::once("rapid").chain(args.iter().copied()))
            .unwrap_or_else(|e| panic!("{args:?} should parse: {e}"));
        Config::load(a)
    }

    /// The clap error `args` are refused with.
    fn refused(args: &[&str]) -> clap::Error {
        match Args::try_parse_from(std::iter::once("rapid").chain(args.iter().copied())) {
            Ok(_) => panic!("{args:?} should be refused"),
            Err(e) => e,
        }
    }

    fn lambda(c: &Config) -> &LambdaConfig {
        match &c.backend {
            BackendConfig::Lambda(l) => &l[0].config,
            BackendConfig::Process(_) => panic!("not lambda mode"),
        }
    }

    fn process(c: &Config) -> &ProcessConfig {
        match &c.backend {
            BackendConfig::Process(p) => p,
            BackendConfig::Lambda(_) => panic!("not a watchdog mode"),
        }
    }

    #[test]
    fn handler_defaults_to_last_positional() {
        let h = |a: &[&str]| lambda(&load(a).unwrap()).handler.clone();
        assert_eq!(
            h(&["/bin/sh", "-c", "x", "my.handler"]).as_deref(),
            Some("my.handler")
        );
        assert_eq!(h(&["/bin/sh"]), None);
        assert_eq!(h(&["--handler", "h", "/bin/sh", "x"]).as_deref(), Some("h"));
    }

    #[test]
    fn bootstrap_resolution() {
        assert!(matches!(
            resolve_bootstrap(&["sh".into()], &[]),
            Bootstrap::Command { .. }
        ));
        assert!(matches!(
            resolve_bootstrap(&["/nonexistent/boot".into()], &[]),
            Bootstrap::Missing(_)
        ));
        assert!(matches!(
            resolve_bootstrap(&[], &["/nonexistent/a", "/bin/sh"]),
            Bootstrap::Command { program, .. } if program == Path::new("/bin/sh")
        ));
        assert!(matches!(
            resolve_bootstrap(&[], &["/nonexistent/a"]),
            Bootstrap::Missing(_)
        ));
    }

    #[test]
    fn bootstrap_arguments_may_start_with_a_dash_but_options_may_not() {
        let a = Args::try_parse_from(["rapid", "/bin/sh", "-c", "echo hi", "--x"]).unwrap();
        assert_eq!(a.command, vec!["/bin/sh", "-c", "echo hi", "--x"]);
        assert_eq!(
            refused(&["--no-such-option"]).kind(),
            ErrorKind::UnknownArgument
        );
    }

    #[test]
    fn function_log_controls() {
        use crate::log_controls::{AppLevel, Format, SystemLevel};
        let c = load(&[
            "--function-log-format",
            "json",
            "--function-log-level",
            "WARN",
            "--function-system-log-level",
            "DEBUG",
        ])
        .unwrap();
        let logs = lambda(&c).log_controls;
        assert_eq!(logs.format, Some(Format::Json));
        assert_eq!(logs.level, Some(AppLevel::Warn));
        assert_eq!(logs.system_level, Some(SystemLevel::Debug));
        assert_eq!(
            lambda(&load(&[]).unwrap()).log_controls,
            crate::log_controls::LogControls::default(),
            "nothing configured by default"
        );
        for bad in [
            &["--function-log-level", "DEBUG"][..],
            &[
                "--function-log-format",
                "Text",
                "--function-system-log-level",
                "WARN",
            ][..],
        ] {
            let e = load(bad).unwrap_err();
            assert!(
                e.to_string()
                    .contains("LogLevel is not supported when LogFormat is set to \"Text\""),
                "{e}"
            );
        }
        let e = refused(&["--function-log-format", "yaml"]);
        assert_eq!(e.kind(), ErrorKind::InvalidValue);
        assert!(e.to_string().contains("'yaml'"), "{e}");
        let e = refused(&["--function-log-level", "LOUD"]);
        assert!(e.to_string().contains("'LOUD'"), "{e}");
        let e = refused(&["--function-system-log-level", "ERROR"]);
        assert!(e.to_string().contains("'ERROR'"), "{e}");
    }

    #[test]
    fn values_are_typed_at_the_command_line() {
        let a = Args::try_parse_from(["rapid", "--init", "--log-format", "json"]).unwrap();
        assert!(a.init);
        assert_eq!(a.log_format, LogFormat::Json);
        assert_eq!(a.log_level, LogLevel::Info);
        let e = refused(&["--log-level", "loud"]);
        assert_eq!(e.kind(), ErrorKind::InvalidValue);
        assert!(e.to_string().contains("loud"), "{e}");
        let e = refused(&["--timeout", "soon"]);
        assert_eq!(e.kind(), ErrorKind::ValueValidation);
        assert!(e.to_string().contains("'soon'"), "{e}");
        assert_eq!(
            refused(&["--max-queue", "1000001"]).kind(),
            ErrorKind::ValueValidation
        );
        assert_eq!(
            refused(&["--concurrency", "0"]).kind(),
            ErrorKind::ValueValidation
        );
    }

    #[test]
    fn one_shot_flag() {
        let c = |a: &[&str]| lambda(&load(a).unwrap()).one_shot;
        assert_eq!(c(&[]), None);
        assert_eq!(c(&["--one-shot"]), Some(OneShot::Recycle));
        assert_eq!(c(&["--one-shot=exit"]), Some(OneShot::Exit));
        assert_eq!(
            refused(&["--one-shot=bogus"]).kind(),
            ErrorKind::InvalidValue
        );
    }

    #[test]
    fn control_token_rules() {
        let addr: SocketAddr = "0.0.0.0:7000".parse().unwrap();
        assert_eq!(
            load(&["--control-api-address", "0.0.0.0:7000"]).unwrap_err(),
            ConfigError::ControlTokenRequired(addr)
        );
        let c = load(&["--control-api-address", "127.0.0.1:7000"]).unwrap();
        assert_eq!(lambda(&c).lifecycle, Lifecycle::PlatformDriven);
        assert!(matches!(
            load(&["--control-token-file", "/nonexistent/token"]).unwrap_err(),
            ConfigError::ControlToken { path, .. } if path == Path::new("/nonexistent/token")
        ));
        assert_eq!(lambda(&load(&[]).unwrap()).lifecycle, Lifecycle::Eager);
    }

    #[test]
    fn arn() {
        let c = load(&["--function-name", "f"]).unwrap();
        assert_eq!(
            c.function.arn(),
            "arn:aws:lambda:us-east-1:012345678912:function:f"
        );
    }

    #[test]
    fn watchdog_modes_need_their_inputs() {
        assert_eq!(
            load(&["--mode", "streaming"]).unwrap_err(),
            ConfigError::NoProcess("streaming")
        );
        assert_eq!(
            load(&["--mode", "http", "--fprocess", "sh"]).unwrap_err(),
            ConfigError::NoUpstream
        );
        assert_eq!(
            load(&["--mode", "static"]).unwrap_err(),
            ConfigError::NoStaticPath
        );
        assert_eq!(
            load(&["--mode", "static", "--static-path", "/nonexistent/x"]).unwrap_err(),
            ConfigError::BadStaticPath("/nonexistent/x".into())
        );
        assert_eq!(
            load(&["--mode", "streaming", "--fprocess", "/nonexistent/fn"]).unwrap_err(),
            ConfigError::NotExecutable("/nonexistent/fn".into())
        );
        let c = load(&["--mode", "streaming", "--fprocess", "/bin/sh  -c"]).unwrap();
        assert!(matches!(
            &process(&c).kind,
            ProcessKind::Fork { program, style: Style::Streaming, .. }
                if program.path == Path::new("/bin/sh") && program.args == ["-c"]
        ));
        let c = load(&["--mode", "streaming", "--fprocess", "x", "/bin/cat", "-"]).unwrap();
        assert!(
            matches!(&process(&c).kind, ProcessKind::Fork { program, .. } if program.path == Path::new("/bin/cat")),
            "the positional command wins"
        );
    }

    #[test]
    fn watchdog_durations_and_limits() {
        let wd = ["--mode", "streaming", "--fprocess", "/bin/cat"];
        let with = |extra: &[&str]| load(&[&wd[..], extra].concat()).unwrap();
        assert_eq!(process(&with(&["--exec-timeout", "0"])).exec_timeout, None);
        let c = with(&["--exec-timeout", "1500ms"]);
        assert_eq!(process(&c).exec_timeout, Some(Duration::from_millis(1500)));
        let front = c.fronts.openfaas.as_ref().unwrap();
        assert_eq!(
            front.config.drain_delay,
            Duration::from_secs(10),
            "defaults to write_timeout"
        );
        assert_eq!(c.fronts.metrics.map(|a| a.port()), Some(8081));
        assert_eq!(c.fronts.invoke, None, "the Invoke API only when given");
        let e = refused(&["--exec-timeout", "soon"]);
        assert_eq!(e.kind(), ErrorKind::ValueValidation);
        assert!(e.to_string().contains("exec-timeout"), "{e}");
        assert_eq!(
            refused(&["--max-inflight", "-1"]).kind(),
            ErrorKind::UnknownArgument
        );
        assert_eq!(
            refused(&["--max-inflight", "many"]).kind(),
            ErrorKind::ValueValidation
        );
        assert_eq!(
            load(&[&wd[..], &["--port", "9000", "--metrics-port", "9000"]].concat()).unwrap_err(),
            ConfigError::MetricsPortClash(9000)
        );
        let e = refused(&["--upstream-url", "https://x:1"]);
        assert!(e.to_string().contains("only http://"), "{e}");
        let c = load(&[
            "--upstream-url",
            "127.0.0.1:3000",
            "--mode",
            "http",
            "--fprocess",
            "/bin/sh",
        ])
        .unwrap();
        assert!(matches!(
            &process(&c).kind,
            ProcessKind::Http { upstream, .. } if *upstream == "http://127.0.0.1:3000/"
        ));
    }

    #[test]
    fn lambda_mode_fronts() {
        let c = load(&[]).unwrap();
        assert_eq!(c.fronts.invoke, Some("0.0.0.0:8080".parse().unwrap()));
        assert!(c.fronts.openfaas.is_none() && c.fronts.metrics.is_none());
        let c = load(&["--watchdog-address", "127.0.0.1:9100"]).unwrap();
        let f = c.fronts.openfaas.as_ref().unwrap();
        assert_eq!(f.address, "127.0.0.1:9100".parse().unwrap());
        assert_eq!(
            f.config.lock_file, None,
            "no lock file over a Lambda runtime"
        );
        assert_eq!(c.fronts.metrics, Some("127.0.0.1:8081".parse().unwrap()));
    }
}
