//! `GET /v1/state`: one schema for every backend. The top-level fields
//! describe the default function's first sandbox (the one sandbox of a
//! single-function rapid); `functions` lists every function and its sandboxes.

use serde::Serialize;

use crate::sandbox::{FunctionTable, SandboxState};

/// The whole report.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StateReport {
    /// The default function's first sandbox.
    #[serde(flatten)]
    pub sandbox: SandboxState,
    /// rapid is draining (SIGTERM or a shutdown).
    pub draining: bool,
    /// Every function and its sandboxes.
    pub functions: Vec<FunctionState>,
}

/// One function.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FunctionState {
    /// Its name.
    pub name: String,
    /// Its ARN.
    pub arn: String,
    /// Its sandboxes.
    pub sandboxes: Vec<SandboxState>,
}

/// Collect the report.
pub async fn report(table: &FunctionTable, draining: bool) -> StateReport {
    let mut functions = Vec::new();
    for f in table.iter() {
        functions.push(FunctionState {
            name: f.id.name.clone(),
            arn: f.id.arn(),
            sandboxes: {
                // A pool reports its sandboxes; a single sandbox itself.
                let s = f.sandbox.state().await;
                if s.sandboxes.is_empty() {
                    vec![s]
                } else {
                    s.sandboxes
                }
            },
        });
    }
    let sandbox = functions
        .first()
        .and_then(|f| f.sandboxes.first())
        .cloned()
        .unwrap_or_default();
    StateReport {
        sandbox,
        draining,
        functions,
    }
}
