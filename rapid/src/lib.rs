//! rapid: a Lambda-style runtime and sandbox manager.
//!
//! The layers, each only importing the ones below it:
//!
//! ```text
//!  app (composition root: signals, binding, fronts, drain)      config (the command line)
//!    │
//!  fronts (Invoke API, control API, OpenFaaS front, /metrics)
//!    │ speak only
//!  sandbox (the contract: submit, control, health, state)
//!    ▲ implemented by
//!  lambda (the Lambda engine)          process (the watchdog backends)
//!    │                                   │
//!  supervisor (spawn, reaper, PID 1), output (stdout), telemetry_hub, scratch, parse, net
//! ```

pub mod app;
pub mod config;
mod fronts;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod lambda;
pub mod log_controls;
mod net;
mod output;
pub mod parse;
mod pool;
mod process;
mod sandbox;
mod scratch;
pub mod supervisor;
mod telemetry_hub;

pub use app::{exit_code, run};

/// rapid as a library: serve a Rust handler behind the OpenFaaS front.
pub mod watchdog {
    pub use crate::app::serve;
    pub use crate::process::Handler;
}
