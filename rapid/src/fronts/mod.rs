//! What callers outside the sandbox talk to, each front an axum router over
//! the [sandbox contract](crate::sandbox) with one error renderer:
//!
//! * `invoke/` — the Invoke API (both endpoints), AWS's JSON errors.
//! * `control/` — the control API, typed interop messages, one `/v1/state`.
//! * `openfaas/` — the OpenFaaS watchdog front: `/_/health`, `/_/ready`, any path.
//! * `function_url/` — function URLs: payload format 2.0 events, the response mapping,
//!   the streaming prelude.
//! * `metrics.rs` — Prometheus `/metrics`.
//!
//! `aws.rs` is how the AWS-style fronts render replies and errors, `drain.rs`
//! the state the composition root drives at shutdown (serving, unready,
//! closed), `deadline.rs` bounds bodies in time.

mod aws;
pub mod control;
mod deadline;
pub mod drain;
pub mod function_url;
pub mod invoke;
pub mod metrics;
pub mod openfaas;
mod pool_metrics;

pub use drain::Drain;
