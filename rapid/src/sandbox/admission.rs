//! Admission control for a sandbox's queue: counts invocations accepted and
//! not yet finished (waiting or running).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// The count of admitted invocations. A sandbox admits one only while fewer
/// than its limit are outstanding: an idle sandbox takes one to run plus
/// `--max-queue` waiting, a busy one `--max-queue` waiting.
#[derive(Debug, Clone, Default)]
pub struct Admissions(Arc<AtomicUsize>);

/// One admitted invocation's place; released when dropped (the invocation
/// finished, failed, or was refused at shutdown).
#[derive(Debug)]
pub struct Admission(Arc<AtomicUsize>);

impl Admissions {
    /// Take a place if fewer than `limit` are outstanding.
    pub fn try_admit(&self, limit: usize) -> Option<Admission> {
        let prev = self.0.fetch_add(1, Ordering::AcqRel);
        if prev >= limit {
            self.0.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(Admission(self.0.clone()))
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_bounded_and_released() {
        let a = Admissions::default();
        let one = a.try_admit(2).expect("first");
        let two = a.try_admit(2).expect("second");
        assert!(a.try_admit(2).is_none(), "past the limit");
        drop(one);
        let three = a.try_admit(2).expect("a released place is free again");
        drop((two, three));
        assert!(a.try_admit(1).is_some(), "every place released");
    }
}
