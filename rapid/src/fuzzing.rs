//! What the fuzz targets (`fuzz/`) drive, behind the `fuzzing` feature: the
//! Invoke API and control API routers over an in-memory sandbox that echoes
//! the event, and the event-stream encoder. Not part of rapid's public API.

use std::sync::Arc;

use axum::Router;
use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use http_body_util::BodyExt;
use tokio::sync::watch;

use crate::fronts::{control, invoke, Drain};
use crate::sandbox::{
    BoxFuture, Command, CommandReply, ControlError, FunctionId, FunctionTable, Health, Invocation,
    InvokeError, Pending, Reply, ReplyBody, Response, Sandbox, SandboxState, Stats,
};

pub use crate::fronts::invoke::eventstream::{
    encode, invoke_complete, payload_chunk, FrameError, InvokeComplete, MAX_HEADER_NAME,
    MAX_HEADER_VALUE,
};
pub use crate::fronts::invoke::{decode_client_context, InvocationType};

/// A sandbox that answers every invocation with its event and every command
/// with success: the fronts' parsing and rendering, without processes.
struct EchoSandbox {
    health: watch::Sender<Health>,
    stats: Stats,
}

impl Sandbox for EchoSandbox {
    fn submit(&self, inv: Invocation) -> BoxFuture<'_, Result<Pending, InvokeError>> {
        Box::pin(async move {
            let body = inv
                .request
                .into_body()
                .collect()
                .await
                .map(|c| c.to_bytes())
                .unwrap_or_default();
            let pending: Pending = Box::pin(async move {
                Reply::new(Ok(Response {
                    status: StatusCode::OK,
                    headers: HeaderMap::new(),
                    body: ReplyBody::Full(body),
                }))
            });
            Ok(pending)
        })
    }

    fn control(&self, cmd: Command) -> BoxFuture<'_, Result<CommandReply, ControlError>> {
        // The command was parsed; its answer is a typed refusal (no processes here).
        let name = cmd.name();
        Box::pin(async move { Err(ControlError::refused(name, "Fuzzing", "no processes")) })
    }

    fn health(&self) -> watch::Receiver<Health> {
        self.health.subscribe()
    }

    fn state(&self) -> BoxFuture<'_, SandboxState> {
        Box::pin(async { SandboxState::default() })
    }

    fn stats(&self) -> &Stats {
        &self.stats
    }

    fn finished(&self) -> BoxFuture<'static, ()> {
        Box::pin(std::future::pending())
    }
}

fn table() -> FunctionTable {
    let id = FunctionId {
        name: "fuzz".into(),
        version: "$LATEST".into(),
        region: "us-east-1".into(),
        account: "000000000000".into(),
    };
    let sandbox = EchoSandbox {
        health: watch::Sender::new(Health::Ready),
        stats: Stats::default(),
    };
    FunctionTable::single(id, Arc::new(sandbox))
}

/// The Invoke API over an echoing sandbox named `fuzz` (also `function`).
pub fn invoke_router() -> runtime_api::shortcut::Shortcut<std::sync::Arc<invoke::InvokeApi>> {
    invoke::router(table(), Drain::default())
}

/// The control API over an echoing sandbox, guarded by `token` when given.
pub fn control_router(token: Option<String>) -> Router {
    control::router(table(), token, Drain::default())
}

/// A whole body, for the targets' checks.
pub async fn collect(body: axum::body::Body) -> Bytes {
    body.collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default()
}
