//! The sandbox lifecycle vocabulary.
//!
//! Plain data with serde: the messages the lifecycle engine consumes (`Init`,
//! `Invoke`, `Reset`, `Shutdown`, `Restore`) and produces (`InitSuccess`,
//! `InitFailure`, `InvokeSuccess`, `InvokeFailure`, `ResetSuccess`,
//! `ResetFailure`, `ShutdownSuccess`, `RestoreResult`), plus the error bodies the
//! Runtime API and Invoke API speak (`FunctionError`, `ErrorInvokeResponse`).
//! No I/O.

mod ids;
mod messages;

pub use fatalerror::ErrorType;
pub use ids::{random_uuid, RequestId, MAX_PAYLOAD};
pub use messages::*;
