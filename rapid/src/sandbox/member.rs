//! A sandbox a pool is made of: one that keeps a hold until the invocation
//! it admitted is completely over, so the pool knows when it is free.

use super::{BoxFuture, Hold, Invocation, InvokeError, Pending, Sandbox};

/// A sandbox a pool can lease.
pub trait Member: Sandbox {
    /// Like [`Sandbox::submit`]; `hold` is dropped once the invocation is
    /// over (answered and the runtime ready for the next), or at once when
    /// it is refused.
    fn submit_held(
        &self,
        inv: Invocation,
        hold: Hold,
    ) -> BoxFuture<'_, Result<Pending, InvokeError>>;
}
