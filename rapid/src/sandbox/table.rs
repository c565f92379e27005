//! The functions rapid serves, and how a front finds one by name.

use std::sync::Arc;

use super::Sandbox;

/// A function's identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionId {
    /// Its name.
    pub name: String,
    /// Its version (`$LATEST`).
    pub version: String,
    /// The region in its ARN.
    pub region: String,
    /// The account in its ARN.
    pub account: String,
}

impl FunctionId {
    /// `arn:aws:lambda:<region>:<account>:function:<name>`.
    pub fn arn(&self) -> String {
        self.arn_of(&self.name)
    }

    /// The ARN another function `name` would have here.
    pub fn arn_of(&self, name: &str) -> String {
        format!(
            "arn:aws:lambda:{}:{}:function:{name}",
            self.region, self.account
        )
    }
}

/// One function of the table.
#[derive(Clone)]
pub struct Resolved {
    /// Who it is.
    pub id: FunctionId,
    /// What serves it.
    pub sandbox: Arc<dyn Sandbox>,
}

/// The functions rapid serves; the first is the default one (the Invoke
/// API's `function`).
#[derive(Clone, Default)]
pub struct FunctionTable {
    entries: Vec<Resolved>,
}

impl FunctionTable {
    /// A table of one function.
    pub fn single(id: FunctionId, sandbox: Arc<dyn Sandbox>) -> FunctionTable {
        FunctionTable {
            entries: vec![Resolved { id, sandbox }],
        }
    }

    /// The function a path names: `function` (the default) or a function's name.
    pub fn resolve(&self, name: &str) -> Option<&Resolved> {
        if name == "function" {
            return self.entries.first();
        }
        self.entries.iter().find(|e| e.id.name == name)
    }

    /// The default function.
    pub fn default_function(&self) -> Option<&Resolved> {
        self.entries.first()
    }

    /// Every function, in order.
    pub fn iter(&self) -> impl Iterator<Item = &Resolved> {
        self.entries.iter()
    }
}
