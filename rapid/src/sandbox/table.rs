//! The functions rapid serves, and how a front finds one by name.

use std::sync::Arc;

use super::resolve::{self, ResolveError};
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

/// A function as a caller named it.
pub struct Target<'a> {
    /// The function.
    pub function: &'a Resolved,
    /// Its ARN as invoked: with the caller's qualifier, nothing added
    /// (`Lambda-Runtime-Invoked-Function-Arn`).
    pub invoked_arn: String,
}

/// The functions rapid serves; the first is the default one (the Invoke
/// API's `function`).
#[derive(Clone, Default)]
pub struct FunctionTable {
    entries: Vec<Resolved>,
    /// Each entry's unqualified ARN, written once (not per invoke).
    arns: Arc<[String]>,
}

impl FunctionTable {
    /// A table of one function.
    pub fn single(id: FunctionId, sandbox: Arc<dyn Sandbox>) -> FunctionTable {
        FunctionTable::new(vec![Resolved { id, sandbox }])
    }

    /// A table of `entries`, the first the default function.
    pub fn new(entries: Vec<Resolved>) -> FunctionTable {
        let arns = entries.iter().map(|e| e.id.arn()).collect();
        FunctionTable { entries, arns }
    }

    /// The function a caller names, as the Invoke API accepts it: `name`,
    /// `name:qualifier`, the full ARN `arn:aws:lambda:REGION:ACCOUNT:function:name[:qualifier]`,
    /// the partial ARN `ACCOUNT:function:name[:qualifier]` (already percent-decoded), plus an
    /// optional `Qualifier` parameter. `function` names the default function. rapid has no
    /// aliases: the qualifiers served are `$LATEST` and the function's configured version.
    pub fn resolve(
        &self,
        function_name: &str,
        qualifier: Option<&str>,
    ) -> Result<Target<'_>, ResolveError> {
        let parsed = resolve::parse(function_name).ok_or_else(|| ResolveError::Invalid {
            field: "functionName",
            value: function_name.to_owned(),
            pattern: resolve::FUNCTION_NAME_PATTERN,
        })?;
        if let Some(q) = qualifier {
            if !resolve::valid_qualifier(q) {
                return Err(ResolveError::Invalid {
                    field: "qualifier",
                    value: q.to_owned(),
                    pattern: resolve::QUALIFIER_PATTERN,
                });
            }
        }
        let qualifier = match (parsed.qualifier, qualifier) {
            (Some(a), Some(b)) if a != b => return Err(ResolveError::QualifierMismatch),
            (a, b) => a.or(b),
        };
        let Some(first) = self.entries.first() else {
            return Err(ResolveError::NotFound {
                arn: function_name.to_owned(),
            });
        };
        let here = &first.id;
        if let Some(region) = parsed.region {
            if region != here.region {
                return Err(ResolveError::WrongRegion {
                    theirs: region.to_owned(),
                    ours: here.region.clone(),
                });
            }
        }
        let account = parsed.account.unwrap_or(&here.account);
        let qualified = |name: &str| {
            let arn = format!("arn:aws:lambda:{}:{account}:function:{name}", here.region);
            match qualifier {
                Some(q) => format!("{arn}:{q}"),
                None => arn,
            }
        };
        let not_found = |name: &str| ResolveError::NotFound {
            arn: match qualifier {
                Some(_) => qualified(name),
                None => format!("{}:$LATEST", qualified(name)),
            },
        };
        if account != here.account {
            return Err(not_found(parsed.name));
        }
        let at = if parsed.name == "function" {
            0
        } else {
            self.entries
                .iter()
                .position(|e| e.id.name == parsed.name)
                .ok_or_else(|| not_found(parsed.name))?
        };
        let function = &self.entries[at];
        if let Some(q) = qualifier {
            if q != "$LATEST" && q != function.id.version {
                return Err(not_found(&function.id.name));
            }
        }
        Ok(Target {
            function,
            invoked_arn: match qualifier {
                None => self.arns[at].clone(),
                Some(q) => format!("{}:{q}", self.arns[at]),
            },
        })
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
