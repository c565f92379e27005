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
    /// A fresh random id (UUID v4, the form Lambda uses). The bits come from a
    /// per-thread generator seeded once from the OS: ids must be unique, not
    /// secret, and a system call per invoke is a measurable cost.
    pub fn generate() -> Self {
        RequestId(random_uuid())
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

/// A fresh random UUID v4 in its hyphenated form, from the per-thread
/// generator of [`RequestId::generate`] (no system call): request ids,
/// invocation ids.
pub fn random_uuid() -> String {
    uuid::Builder::from_random_bytes(fast_random_bytes())
        .into_uuid()
        .to_string()
}

/// SplitMix64 over a per-thread state seeded from the OS random source.
fn fast_random_bytes() -> [u8; 16] {
    use std::cell::Cell;
    thread_local! {
        static STATE: Cell<u64> = Cell::new({
            let seed = uuid::Uuid::new_v4().as_u128();
            (seed as u64) ^ ((seed >> 64) as u64)
        });
    }
    let next = || {
        STATE.with(|s| {
            let x = s.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
            s.set(x);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        })
    };
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&next().to_le_bytes());
    out[8..].copy_from_slice(&next().to_le_bytes());
    out
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
        let parsed = uuid::Uuid::parse_str(a.as_str()).unwrap();
        assert_eq!(parsed.get_version_num(), 4);
        let many: std::collections::HashSet<_> =
            (0..10_000).map(|_| RequestId::generate()).collect();
        assert_eq!(many.len(), 10_000);
    }
}
