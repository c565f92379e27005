//! The command line (SPEC §7): every option also has an environment variable.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;

/// Where rapid looks for a bootstrap when none is given, in order.
pub const DEFAULT_BOOTSTRAPS: [&str; 3] = [
    "/var/task/bootstrap",
    "/opt/bootstrap",
    "/var/runtime/bootstrap",
];

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

    /// Invokes that may wait while one runs; past this the Invoke API answers 429.
    #[arg(
        long,
        env = "RAPID_MAX_QUEUE",
        default_value_t = 1024,
        value_parser = clap::value_parser!(u32).range(1..=1_000_000),
        value_name = "N"
    )]
    pub max_queue: u32,

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

    /// File holding the control API's bearer token (required when the control
    /// address is not loopback).
    #[arg(long, env = "RAPID_CONTROL_TOKEN_FILE", value_name = "FILE")]
    pub control_token_file: Option<PathBuf>,

    /// Sealed execution: every invoke gets a fresh sandbox. `--one-shot` (or
    /// `=recycle`) shuts the sandbox down after each invoke and starts a new
    /// one; `--one-shot=exit` serves exactly one invoke, then exits 0.
    #[arg(long, env = "RAPID_ONE_SHOT", num_args = 0..=1, default_missing_value = "recycle",
          value_parser = ["recycle", "exit"], value_name = "MODE")]
    pub one_shot: Option<String>,

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

    /// Diagnostics level (stderr): error, warn, info, debug or trace.
    #[arg(long, env = "LOG_LEVEL", default_value = "info", value_parser = ["error", "warn", "info", "debug", "trace"])]
    pub log_level: String,

    /// Diagnostics format (stderr): text or json.
    #[arg(long, env = "RAPID_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,

    #[command(flatten)]
    pub watchdog: crate::watchdog::WatchdogArgs,

    /// The runtime to start and its arguments. Default: the first executable of
    /// /var/task/bootstrap, /opt/bootstrap, /var/runtime/bootstrap. In the
    /// watchdog modes http, streaming and serializing: the function process.
    #[arg(value_name = "BOOTSTRAP [ARGS]...", trailing_var_arg = true)]
    pub command: Vec<String>,
}

/// `"300"` (seconds) or a humantime duration such as `"1500ms"`; zero is refused.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let d = if let Ok(secs) = t.parse::<u64>() {
        Duration::from_secs(secs)
    } else if let Ok(secs) = t.parse::<f64>() {
        if !secs.is_finite() || !(0.0..=1e9).contains(&secs) {
            return Err(format!("'{s}' is not a valid duration"));
        }
        Duration::from_secs_f64(secs)
    } else {
        humantime::parse_duration(t).map_err(|e| {
            format!("'{s}' is not a valid duration ({e}); use seconds like 300 or a duration like 1500ms")
        })?
    };
    if d.is_zero() {
        return Err(format!("'{s}' is zero; the duration must be positive"));
    }
    Ok(d)
}

fn parse_name(s: &str) -> Result<String, String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    if s.chars().any(|c| c.is_control()) {
        return Err(format!("{s:?} contains control characters"));
    }
    Ok(s.to_owned())
}

/// The bootstrap to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bootstrap {
    /// A program and its arguments.
    Command { program: PathBuf, args: Vec<String> },
    /// Nothing executable was found: every init fails with `Runtime.InvalidEntrypoint`.
    Missing(String),
}

/// Sealed execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OneShot {
    /// A fresh sandbox for every invoke.
    Recycle,
    /// One invoke, then exit.
    Exit,
}

impl OneShot {
    /// The `--one-shot[=recycle|exit]` value (clap has checked it).
    pub fn from_arg(arg: Option<&str>) -> Option<OneShot> {
        match arg? {
            "exit" => Some(OneShot::Exit),
            _ => Some(OneShot::Recycle),
        }
    }
}

/// The validated configuration rapid runs with.
#[derive(Debug, Clone)]
pub struct Config {
    /// Invoke API address.
    pub invoke_address: SocketAddr,
    /// Runtime API address.
    pub runtime_api_address: SocketAddr,
    /// Function timeout.
    pub timeout: Duration,
    /// Init timeout.
    pub init_timeout: Duration,
    /// Queue bound.
    pub max_queue: usize,
    /// Function name.
    pub function_name: String,
    /// Function version.
    pub function_version: String,
    /// Memory size, MB.
    pub memory_size_mb: u64,
    /// `_HANDLER`.
    pub handler: Option<String>,
    /// Region.
    pub region: String,
    /// ARN of the function.
    pub function_arn: String,
    /// Account id.
    pub account_id: String,
    /// Extensions directory.
    pub extensions_dir: PathBuf,
    /// Streaming cap, bytes.
    pub stream_cap_bytes: u64,
    /// Lambda's streaming bandwidth shaping.
    pub stream_shaping: bool,
    /// Init caching.
    pub init_caching: bool,
    /// Init caching with credentials in the environment: the token guarding
    /// the Runtime API's credentials endpoint.
    pub credentials_token: Option<String>,
    /// Restore budget.
    pub restore_timeout: Duration,
    /// microVM init mode.
    pub init_mode: bool,
    /// What init mode prepares.
    pub machine: crate::supervisor::vm_init::Machine,
    /// Control API address.
    pub control_api_address: Option<SocketAddr>,
    /// Control API bearer token.
    pub control_token: Option<String>,
    /// Sealed execution mode.
    pub one_shot: Option<OneShot>,
    /// Wiped between one-shot sandboxes.
    pub scratch_dir: Option<PathBuf>,
    /// What to run.
    pub bootstrap: Bootstrap,
    /// A watchdog mode instead of a Lambda runtime (`--mode`).
    pub watchdog: Option<crate::watchdog::WatchdogConfig>,
    /// Lambda mode with `--watchdog-address`: the watchdog front over the engine too.
    pub watchdog_front: Option<crate::watchdog::WatchdogConfig>,
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Resolve a program name the way a shell would: a path with a slash as given,
/// else the first executable match on `PATH`.
pub(crate) fn resolve_program(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        let p = PathBuf::from(name);
        return is_executable(&p).then_some(p);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

/// Decide what to run from the positional arguments.
pub fn resolve_bootstrap(command: &[String], defaults: &[&str]) -> Bootstrap {
    match command.split_first() {
        Some((program, args)) => match resolve_program(program) {
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
            .find(|p| is_executable(p))
            .map(|program| Bootstrap::Command {
                program,
                args: Vec::new(),
            })
            .unwrap_or_else(|| {
                Bootstrap::Missing(format!("Couldn't find valid bootstrap(s): {defaults:?}"))
            }),
    }
}

/// A configuration that cannot run.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The control API would be reachable off-host without a token.
    #[error("--control-api-address {0} is not a loopback address: give --control-token-file")]
    ControlTokenRequired(SocketAddr),
    /// The watchdog options cannot run.
    #[error("{0}")]
    Watchdog(#[from] crate::watchdog::config::WatchdogConfigError),
    /// The token file cannot be used.
    #[error("--control-token-file {path}: {why}")]
    ControlToken {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
}

impl Config {
    /// Validate parsed arguments, reading the files they name.
    pub fn load(args: Args) -> Result<Config, ConfigError> {
        let token = match &args.control_token_file {
            None => None,
            Some(path) => {
                let text =
                    std::fs::read_to_string(path).map_err(|e| ConfigError::ControlToken {
                        path: path.clone(),
                        why: e.to_string(),
                    })?;
                let t = text.trim().to_owned();
                if t.is_empty() {
                    return Err(ConfigError::ControlToken {
                        path: path.clone(),
                        why: "the file is empty".into(),
                    });
                }
                Some(t)
            }
        };
        if let Some(addr) = args.control_api_address {
            if !addr.ip().is_loopback() && token.is_none() {
                return Err(ConfigError::ControlTokenRequired(addr));
            }
        }
        let watchdog_front = match (args.watchdog.mode, args.watchdog.watchdog_address) {
            (crate::watchdog::Mode::Lambda, Some(_)) => Some(
                crate::watchdog::WatchdogConfig::load(&args.watchdog, &[], None, None)?,
            ),
            _ => None,
        };
        let watchdog = match args.watchdog.mode {
            crate::watchdog::Mode::Lambda => None,
            _ => Some(crate::watchdog::WatchdogConfig::load(
                &args.watchdog,
                &args.command,
                OneShot::from_arg(args.one_shot.as_deref()),
                args.scratch_dir.clone(),
            )?),
        };
        let invoke_address = args.runtime_interface_emulator_address;
        let mut cfg = Config::from_args(args);
        cfg.control_token = token;
        cfg.watchdog = watchdog.map(|mut w| {
            w.invoke_address = invoke_address;
            w.control_address = cfg.control_api_address;
            w.control_token = cfg.control_token.clone();
            w
        });
        cfg.watchdog_front = watchdog_front;
        Ok(cfg)
    }

    /// Validate parsed arguments (no files read; no control token).
    pub fn from_args(args: Args) -> Config {
        let handler = args.handler.clone().or_else(|| {
            (args.command.len() >= 2)
                .then(|| args.command.last().cloned())
                .flatten()
        });
        let function_arn = format!(
            "arn:aws:lambda:{}:{}:function:{}",
            args.region, args.account_id, args.function_name
        );
        Config {
            invoke_address: args
                .runtime_interface_emulator_address
                .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 8080))),
            runtime_api_address: args.runtime_api_address,
            timeout: args.timeout,
            init_timeout: args.init_timeout,
            max_queue: args.max_queue as usize,
            function_name: args.function_name,
            function_version: args.function_version,
            memory_size_mb: args.memory_size,
            handler,
            region: args.region,
            function_arn,
            account_id: args.account_id,
            extensions_dir: args.extensions_dir,
            stream_cap_bytes: args.stream_cap,
            stream_shaping: args.stream_shaping,
            init_caching: args.enable_init_caching,
            credentials_token: (args.enable_init_caching
                && std::env::var_os("AWS_ACCESS_KEY_ID").is_some()
                && std::env::var_os("AWS_SECRET_ACCESS_KEY").is_some())
            .then(|| interop::RequestId::generate().to_string()),
            restore_timeout: args.restore_timeout,
            init_mode: args.init,
            machine: crate::supervisor::vm_init::Machine {
                hostname: args.hostname.clone(),
                modules: args.init_modules.clone(),
                net: args.init_net.clone(),
            },
            control_api_address: args.control_api_address,
            control_token: None,
            one_shot: OneShot::from_arg(args.one_shot.as_deref()),
            scratch_dir: args.scratch_dir,
            bootstrap: resolve_bootstrap(&args.command, &DEFAULT_BOOTSTRAPS),
            watchdog: None,
            watchdog_front: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("300"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1500ms"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("0.5"), Ok(Duration::from_millis(500)));
        assert!(parse_duration("abc").unwrap_err().contains("'abc'"));
        assert!(parse_duration("0").is_err());
        assert!(parse_duration("-1").is_err());
    }

    #[test]
    fn handler_defaults_to_last_positional() {
        let a = Args::parse_from(["rapid", "/bin/sh", "-c", "x", "my.handler"]);
        assert_eq!(Config::from_args(a).handler.as_deref(), Some("my.handler"));
        let a = Args::parse_from(["rapid", "/bin/sh"]);
        assert_eq!(Config::from_args(a).handler, None);
        let a = Args::parse_from(["rapid", "--handler", "h", "/bin/sh", "x"]);
        assert_eq!(Config::from_args(a).handler.as_deref(), Some("h"));
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
        assert!(Args::try_parse_from(["rapid", "--no-such-option"]).is_err());
    }

    #[test]
    fn boolean_flags_take_boolish_environment_values() {
        let a = Args::try_parse_from(["rapid", "--init"]).unwrap();
        assert!(a.init);
        let a = Args::try_parse_from(["rapid"]).unwrap();
        assert!(!a.init);
    }

    #[test]
    fn one_shot_flag() {
        let c = |a: &[&str]| Config::from_args(Args::parse_from(a)).one_shot;
        assert_eq!(c(&["rapid"]), None);
        assert_eq!(c(&["rapid", "--one-shot"]), Some(OneShot::Recycle));
        assert_eq!(c(&["rapid", "--one-shot=exit"]), Some(OneShot::Exit));
        assert!(Args::try_parse_from(["rapid", "--one-shot=bogus"]).is_err());
    }

    #[test]
    fn control_token_rules() {
        let a = Args::parse_from(["rapid", "--control-api-address", "0.0.0.0:7000"]);
        assert!(matches!(
            Config::load(a),
            Err(ConfigError::ControlTokenRequired(_))
        ));
        let a = Args::parse_from(["rapid", "--control-api-address", "127.0.0.1:7000"]);
        assert!(Config::load(a).is_ok());
        let a = Args::parse_from(["rapid", "--control-token-file", "/nonexistent/token"]);
        assert!(matches!(
            Config::load(a),
            Err(ConfigError::ControlToken { .. })
        ));
    }

    #[test]
    fn arn() {
        let a = Args::parse_from(["rapid", "--function-name", "f"]);
        assert_eq!(
            Config::from_args(a).function_arn,
            "arn:aws:lambda:us-east-1:012345678912:function:f"
        );
    }
}
