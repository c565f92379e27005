//! Lambda mode's functions, composed: the default function (the positional
//! BOOTSTRAP, or the default bootstrap search when no other function is
//! given) and each `--config` / `--function` entry over rapid's options.

use std::net::SocketAddr;
use std::path::PathBuf;

use super::functions::{self, FunctionSpec, FunctionsError};
use super::{resolve_bootstrap, Args, ConfigError, OneShotArg, DEFAULT_BOOTSTRAPS};
use crate::lambda::{Bootstrap, LambdaConfig};
use crate::sandbox::Scaling;

/// One function of lambda mode.
#[derive(Debug, Clone)]
pub struct LambdaFunction {
    /// What its sandboxes run.
    pub config: LambdaConfig,
    /// Its pool.
    pub scaling: Scaling,
    /// `--watch`: what to watch (its bootstrap, the files its command names).
    pub watch: Vec<PathBuf>,
}

/// The handler a command implies: its last word when it has two or more.
fn implied_handler(command: &[String]) -> Option<String> {
    (command.len() >= 2)
        .then(|| command.last().cloned())
        .flatten()
}

/// What `--watch` follows for a function: its program, and every argument
/// that names an existing file or directory (a script, a code directory).
fn watched(bootstrap: &Bootstrap) -> Vec<PathBuf> {
    let Bootstrap::Command { program, args } = bootstrap else {
        return Vec::new();
    };
    let mut paths = vec![program.clone()];
    paths.extend(
        args.iter()
            .map(PathBuf::from)
            .filter(|p| !p.as_os_str().is_empty() && p.exists()),
    );
    paths
}

/// The function `spec` over the defaults `base` / `scaling`.
fn compose(
    base: &LambdaConfig,
    scaling: Scaling,
    spec: FunctionSpec,
) -> Result<(LambdaConfig, Scaling), FunctionsError> {
    let mut c = base.clone();
    c.function.name = spec.name.clone();
    c.handler = spec.handler.or_else(|| implied_handler(&spec.command));
    c.bootstrap = resolve_bootstrap(&spec.command, &[]);
    c.environment = spec.environment;
    if let Some(t) = spec.timeout {
        c.timeout = t;
    }
    if let Some(m) = spec.memory {
        c.memory_size_mb = m;
    }
    if let Some(d) = spec.extensions_dir {
        c.extensions_dir = d;
    }
    let mut s = scaling;
    if let Some(n) = spec.concurrency {
        s.concurrency = n as usize;
        // The default warm count follows a smaller concurrency.
        s.min_warm = s.min_warm.min(s.concurrency);
    }
    if let Some(k) = spec.min_warm {
        s.min_warm = k as usize;
    }
    if s.min_warm > s.concurrency {
        return Err(FunctionsError::OutOfRange {
            name: spec.name,
            field: "min_warm",
            value: s.min_warm as u64,
            range: "at most the function's concurrency",
        });
    }
    Ok((c, s))
}

/// Every function of lambda mode, the default one first. `base` is what the
/// options say (the default function's configuration when it exists).
pub fn lambda_functions(
    args: &Args,
    base: LambdaConfig,
    scaling: Scaling,
) -> Result<Vec<LambdaFunction>, ConfigError> {
    let mut specs = match &args.config {
        Some(path) => functions::load_file(path)?,
        None => Vec::new(),
    };
    for f in &args.functions {
        specs.push(functions::parse_flag(f)?);
    }
    let mut out = Vec::new();
    if !args.command.is_empty() || specs.is_empty() {
        let mut c = base.clone();
        c.bootstrap = resolve_bootstrap(&args.command, &DEFAULT_BOOTSTRAPS);
        out.push((c, scaling));
    }
    for spec in specs {
        out.push(compose(&base, scaling, spec)?);
    }
    functions::check_unique(out.iter().map(|(c, _)| c.function.name.as_str()))?;
    let several = out.len() > 1;
    if several && args.one_shot == Some(OneShotArg::Exit) {
        return Err(ConfigError::OneShotExitWithTable(out.len()));
    }
    let platform_driven = args.control_api_address.is_some();
    out.into_iter()
        .enumerate()
        .map(|(i, (mut c, s))| {
            if i > 0 {
                // Only the default function's first sandbox keeps the
                // configured Runtime API address.
                c.runtime_api_address = SocketAddr::new(c.runtime_api_address.ip(), 0);
            }
            if several {
                c.scratch_dir = c.scratch_dir.map(|d| d.join(&c.function.name));
            }
            let watch = if args.watch {
                watched(&c.bootstrap)
            } else {
                Vec::new()
            };
            (c, s, watch)
        })
        .map(|(config, scaling, watch)| {
            if platform_driven && scaling.min_warm == 0 {
                return Err(ConfigError::PlatformNeedsWarm);
            }
            if scaling.concurrency > 1 && args.one_shot == Some(OneShotArg::Exit) {
                return Err(ConfigError::OneShotExitWithPool(scaling.concurrency as u32));
            }
            Ok(LambdaFunction {
                config,
                scaling,
                watch,
            })
        })
        .collect()
}

/// Whether the options ask for a table of functions (not allowed in the
/// watchdog modes).
pub fn asks_for_functions(args: &Args) -> bool {
    !args.functions.is_empty() || args.config.is_some()
}
