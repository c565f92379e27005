//! A count of things in progress (answers being written, requests in flight,
//! open connections) that shutdown can wait on until it reaches zero.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

/// Things in progress; see [`Gauge::enter`] and [`Gauge::wait_idle`].
#[derive(Debug, Default)]
pub struct Gauge {
    count: AtomicUsize,
    idle: Notify,
}

/// One thing counted by a [`Gauge`], until dropped.
#[derive(Debug)]
pub struct Held(Arc<Gauge>);

impl Gauge {
    /// Count one more; returns its place and the count including it.
    pub fn enter(self: &Arc<Self>) -> (Held, usize) {
        let n = self.count.fetch_add(1, Ordering::SeqCst) + 1;
        (Held(self.clone()), n)
    }

    /// How many are in progress.
    pub fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    /// Wait until none is in progress, at most `limit`; whether it got there.
    pub async fn wait_idle(&self, limit: Duration) -> bool {
        let until = tokio::time::Instant::now() + limit;
        loop {
            // Registered before the check, so a drop in between is not missed.
            let notified = self.idle.notified();
            if self.count() == 0 {
                return true;
            }
            if tokio::time::timeout_at(until, notified).await.is_err() {
                return self.count() == 0;
            }
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn waits_until_the_last_one_leaves() {
        let g = Arc::new(Gauge::default());
        let (a, n) = g.enter();
        assert_eq!(n, 1);
        let (b, n) = g.enter();
        assert_eq!(n, 2);
        assert!(!g.wait_idle(Duration::from_millis(10)).await, "still busy");
        drop(a);
        let waiter = tokio::spawn({
            let g = g.clone();
            async move { g.wait_idle(Duration::from_secs(5)).await }
        });
        tokio::task::yield_now().await;
        drop(b);
        assert!(waiter.await.unwrap());
        assert_eq!(g.count(), 0);
    }
}
