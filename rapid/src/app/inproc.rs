//! rapid as a library: a Rust handler served in-process behind the OpenFaaS
//! front, with the same timeouts, metrics, one-shot and drain.

use std::process::ExitCode;
use std::sync::Arc;

use crate::config::{self, LogLevel, OneShotArg, WatchdogArgs};
use crate::process::{Handler, ProcessKind};
use crate::sandbox::{FunctionId, OneShot};

/// The options of an in-process function ([`serve`]).
#[derive(Debug, clap::Parser)]
#[command(
    version,
    about = "A function served in-process by rapid's watchdog front."
)]
struct InprocArgs {
    #[command(flatten)]
    watchdog: WatchdogArgs,
    /// Sealed execution: `exit` after one request, or `recycle`.
    #[arg(long, env = "RAPID_ONE_SHOT", num_args = 0..=1, default_missing_value = "exit",
          value_name = "MODE")]
    one_shot: Option<OneShotArg>,
    /// Diagnostics level (stderr).
    #[arg(long, env = "LOG_LEVEL", default_value = "info", value_name = "LEVEL")]
    log_level: LogLevel,
}

/// Serve `handler` in-process with the watchdog front: rapid used as a library.
///
/// Reads the watchdog options from the command line and the environment
/// (`port`, `exec_timeout`, `max_inflight`, `one_shot`, …, see `--help`),
/// serves until SIGTERM/SIGINT, and returns the exit code for `main`:
///
/// ```no_run
/// use bytes::Bytes;
/// use http::{Request, Response};
///
/// fn main() -> std::process::ExitCode {
///     rapid::watchdog::serve(|req: Request<Bytes>| async move {
///         Response::new(req.into_body())
///     })
/// }
/// ```
pub fn serve<H: Handler>(handler: H) -> ExitCode {
    use clap::Parser;
    config::apply_env_aliases();
    let args = InprocArgs::parse();
    // A plain level, not an EnvFilter: its regex engine would cost the small
    // in-process binary a good part of its memory.
    let _ = tracing_subscriber::fmt()
        .with_max_level(args.log_level.as_tracing())
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(false)
        .try_init();
    let w = &args.watchdog;
    let (fronts, drain) = match config::watchdog_fronts(w) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("{}: {e}", env!("CARGO_PKG_NAME"));
            return ExitCode::from(super::exit_code::USAGE);
        }
    };
    let one_shot = args.one_shot.map(OneShot::from);
    let function = FunctionId {
        name: "function".into(),
        version: "$LATEST".into(),
        region: "us-east-1".into(),
        account: "012345678912".into(),
    };
    let cfg = config::process_config(w, ProcessKind::Inproc, one_shot, None);
    let handler: Arc<dyn Handler> = Arc::new(handler);
    let start = move |_: super::Plumbing| async move {
        let backend = Arc::new(crate::process::inproc::Inproc(handler));
        let sandbox: Arc<dyn crate::sandbox::Sandbox> =
            Arc::new(super::start_process(&cfg, backend, Arc::default()).await?);
        Ok(crate::sandbox::FunctionTable::single(function, sandbox))
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::from(super::exit_code::SETUP);
        }
    };
    runtime.block_on(super::run_sandbox(fronts, drain, true, start))
}
