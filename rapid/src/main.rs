//! The `rapid` binary.

use std::process::ExitCode;

use clap::Parser;
use rapid::config::{apply_env_aliases, Args, BackendConfig, Config, LogFormat, LogLevel};
use rapid::supervisor::vm_init;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::prelude::*;

/// Diagnostics on stderr at `level`; `RAPID_LOG` may refine it per target
/// (`info,rapid::fronts=debug`). A plain target filter, not an EnvFilter:
/// its regex engine would add a good part of rapid's resident memory.
fn init_tracing(level: LogLevel, format: LogFormat) {
    let filter = std::env::var("RAPID_LOG")
        .ok()
        .and_then(|v| match v.parse::<Targets>() {
            Ok(t) => Some(t),
            Err(e) => {
                eprintln!("rapid: ignoring RAPID_LOG={v:?}: {e}");
                None
            }
        })
        .unwrap_or_else(|| Targets::new().with_default(level.as_tracing()));
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false);
    match format {
        LogFormat::Json => tracing_subscriber::registry()
            .with(fmt.json().with_filter(filter))
            .init(),
        LogFormat::Text => tracing_subscriber::registry()
            .with(fmt.with_ansi(false).with_filter(filter))
            .init(),
    }
}

fn main() -> ExitCode {
    apply_env_aliases();
    let args = Args::parse();
    init_tracing(args.log_level, args.log_format);
    let cfg = match Config::load(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("rapid: {e}");
            return ExitCode::from(rapid::exit_code::USAGE);
        }
    };
    if let BackendConfig::Lambda(functions) = &cfg.backend {
        for f in functions {
            if let rapid::config::Bootstrap::Missing(why) = &f.config.bootstrap {
                tracing::warn!(
                    function = %f.config.function.name,
                    "{why}; every invoke will fail with Runtime.InvalidEntrypoint"
                );
            }
        }
    }
    let init_mode = cfg.init_mode || vm_init::auto_detect();
    if init_mode {
        if let Err(e) = vm_init::prepare(&cfg.machine) {
            tracing::error!("{e}");
            eprintln!("rapid: {e}");
            // PID 1 of a VM must not exit: power off; only if that is refused, exit.
            let why = vm_init::power_off();
            eprintln!("rapid: power off failed: {why}");
            return ExitCode::from(rapid::exit_code::INIT);
        }
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rapid: cannot start the async runtime: {e}");
            return ExitCode::from(rapid::exit_code::SETUP);
        }
    };
    let code = runtime.block_on(rapid::run(cfg));
    drop(runtime);
    if init_mode {
        // PID 1 of a VM never exits: the machine goes down with it.
        let why = vm_init::power_off();
        eprintln!("rapid: power off failed: {why}");
    }
    code
}
