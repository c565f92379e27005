//! Identifiers and fixed limits.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The largest buffered payload, request or response: 6 MiB + 100 bytes.
pub const MAX_PAYLOAD: usize = 6_291_556;

/// The id of one invoke, as the runtime sees it in `Lambda-Runtime-Aws-Request-Id`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RequestId(String);

impl RequestId {
    /// A fresh random id (UUID v4, the form Lambda uses).
    pub fn generate() -> Self {
        RequestId(uuid::Uuid::new_v4().to_string())
    }

    /// Wrap an id supplied by a platform (control API) or parsed from a path.
    pub fn from_string(id: String) -> Self {
        RequestId(id)
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<str> for RequestId {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_unique_uuids() {
        let a = RequestId::generate();
        let b = RequestId::generate();
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 36);
        assert!(uuid::Uuid::parse_str(a.as_str()).is_ok());
    }
}
