//! The sandbox contract: everything a front may ask of a sandbox, and what
//! every backend implements.
//!
//! ```text
//!  fronts (Invoke API, control API, OpenFaaS front, /metrics)
//!        │  submit(Invocation) → Pending → Reply      control(Command)
//!        │  health()  state()  stats()  finished()
//!        ▼
//!  Sandbox (this trait) ◀── implemented by the Lambda engine's handle and the
//!                           process backends (http, fork, static, inproc)
//! ```
//!
//! Requests, replies and errors are typed here; each front renders them in
//! its own format. Nothing here knows an address, a token or a flag.

mod admission;
mod control;
mod error;
mod health;
mod invocation;
mod member;
mod payload;
mod policy;
mod reply;
mod resolve;
mod state;
mod stats;
mod table;

use std::future::Future;
use std::pin::Pin;

pub use admission::{Admission, Admissions, Hold};
pub use axum::body::Body;
pub use control::{Command, CommandReply};
pub use error::{body_timed_out, BodyTimedOut, ControlError, InvokeError, Unavailable};
pub use health::Health;
pub use invocation::{Budget, Invocation, LambdaContext};
pub use member::Member;
pub use payload::read_event;
pub use policy::{OneShot, Order, Scaling};
pub use reply::{Reply, ReplyBody, Response};
pub use resolve::ResolveError;
pub use state::SandboxState;
pub use stats::{Load, Outcome, Stats};
pub use table::{FunctionId, FunctionTable, Resolved};

/// A boxed, sendable future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
/// The error a body may end with.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// An admitted invocation: resolves to its reply. Dropping it abandons the
/// caller's interest (a forked process is killed; a Lambda invoke still runs
/// to its end, as on Lambda).
pub type Pending = BoxFuture<'static, Reply>;

/// What a front may ask of a sandbox.
pub trait Sandbox: Send + Sync + 'static {
    /// Admit `inv`: resolves once it is checked and queued (its event read),
    /// to the [`Pending`] reply, or to the refusal (queue full, too large,
    /// shutting down, …). The caller answers `Event` invokes at this point.
    fn submit(&self, inv: Invocation) -> BoxFuture<'_, Result<Pending, InvokeError>>;

    /// Whether an invocation would be admitted now (as far as the sandbox's
    /// own state decides: shutting down, a one-shot sandbox serving its one).
    fn accepting(&self) -> Result<(), Unavailable> {
        Ok(())
    }

    /// Run a control command (Init, Reset, Shutdown, Restore).
    fn control(&self, cmd: Command) -> BoxFuture<'_, Result<CommandReply, ControlError>>;

    /// Where the sandbox stands now, and every change after.
    fn health(&self) -> tokio::sync::watch::Receiver<Health>;

    /// A snapshot of the sandbox for `/v1/state`.
    fn state(&self) -> BoxFuture<'_, SandboxState>;

    /// Its counters.
    fn stats(&self) -> &Stats;

    /// How busy it is now (sandboxes and waiting invocations).
    fn load(&self) -> Load {
        Load::default()
    }

    /// `/_/ready` answered by the function itself (http mode's ready path).
    fn ready_probe(&self) -> Option<BoxFuture<'_, http::Response<Body>>> {
        None
    }

    /// Resolves once the sandbox has ended for good on its own (one-shot
    /// exit, a shutdown that asked rapid to exit): rapid then exits.
    fn finished(&self) -> BoxFuture<'static, ()>;
}
