//! Admission control for a sandbox's queue: counts invocations accepted and
//! not yet finished (waiting or running).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Something a caller keeps alive until its invocation is completely over
/// (a pool's lease on the sandbox that runs it).
pub type Hold = Box<dyn Send + Sync>;

/// The count of admitted invocations. A sandbox admits one only while fewer
/// than its limit are outstanding: an idle sandbox takes one to run plus
/// `--max-queue` waiting, a busy one `--max-queue` waiting.
#[derive(Debug, Clone, Default)]
pub struct Admissions(Arc<AtomicUsize>);

/// One admitted invocation's place; released when dropped (the invocation
/// finished, failed, or was refused at shutdown), and with it its hold.
pub struct Admission {
    count: Arc<AtomicUsize>,
    hold: Option<Hold>,
}

impl std::fmt::Debug for Admission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admission")
            .field("held", &self.hold.is_some())
            .finish()
    }
}

impl Admissions {
    /// Take a place if fewer than `limit` are outstanding.
    pub fn try_admit(&self, limit: usize) -> Option<Admission> {
        let prev = self.0.fetch_add(1, Ordering::AcqRel);
        if prev >= limit {
            self.0.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(Admission {
            count: self.0.clone(),
            hold: None,
        })
    }

    /// Invocations admitted and not finished.
    pub fn outstanding(&self) -> usize {
        self.0.load(Ordering::Acquire)
    }
}

impl Admission {
    /// Keep `hold` until this place is released (after the count drops).
    pub fn holding(mut self, hold: Option<Hold>) -> Admission {
        self.hold = hold;
        self
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::AcqRel);
        // The hold goes after the count: whoever it tells finds the place free.
        drop(self.hold.take());
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
        assert_eq!(a.outstanding(), 2);
        drop(one);
        let three = a.try_admit(2).expect("a released place is free again");
        drop((two, three));
        assert!(a.try_admit(1).is_some(), "every place released");
    }

    struct Probe(Admissions, Arc<AtomicUsize>);
    impl Drop for Probe {
        fn drop(&mut self) {
            self.1.store(self.0.outstanding() + 100, Ordering::SeqCst);
        }
    }

    #[test]
    fn the_hold_is_released_after_the_place() {
        let a = Admissions::default();
        let seen = Arc::new(AtomicUsize::new(0));
        let place = a
            .try_admit(1)
            .expect("free")
            .holding(Some(Box::new(Probe(a.clone(), seen.clone()))));
        drop(place);
        assert_eq!(
            seen.load(Ordering::SeqCst),
            100,
            "the hold saw 0 outstanding"
        );
    }
}
