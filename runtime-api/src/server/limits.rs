//! The limits a front's connections live under: how long a request's head
//! may take, how long its body may make no progress, how long a kept-alive
//! connection may sit idle, and how many connections may be open at once.
//! The sandbox's own APIs (Runtime, Extensions, Telemetry) run without them:
//! `/next` and `/event/next` wait by design.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

/// Default deadline for a request's head, from its first byte (or from the
/// connection's start).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time a request body may make no progress.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// Default time a kept-alive connection may wait for its next request.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// File descriptors kept out of the connection bound for rapid itself
/// (pipes, the runtime's and extensions' connections, files, upstream
/// connections beyond one per client).
pub const FD_RESERVE: u64 = 64;

/// Timeouts of one front's connections (`None`: none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// A request's head must arrive within this, from its first byte; a new
    /// connection must send a whole head within this too.
    pub header: Option<Duration>,
    /// A request body that makes no progress this long fails
    /// ([`BodyStalled`](super::BodyStalled)).
    pub body: Option<Duration>,
    /// A kept-alive connection with no request this long is closed.
    pub idle: Option<Duration>,
}

impl Limits {
    /// No limits (the sandbox's own APIs).
    pub const NONE: Limits = Limits {
        header: None,
        body: None,
        idle: None,
    };

    /// Whether any timeout is set.
    pub fn any(&self) -> bool {
        self.header.is_some() || self.body.is_some() || self.idle.is_some()
    }
}

impl Default for Limits {
    /// The defaults of every front callers outside the sandbox reach.
    fn default() -> Self {
        Limits {
            header: Some(HEADER_TIMEOUT),
            body: Some(BODY_TIMEOUT),
            idle: Some(IDLE_TIMEOUT),
        }
    }
}

/// The bound on open connections, shared by every front that holds it. At
/// the bound the accept loops wait for a slot (new clients queue in the
/// listen backlog) and idle kept-alive connections are asked to close first.
#[derive(Debug)]
pub struct Slots {
    permits: Arc<Semaphore>,
    limit: usize,
    /// Notified when a front waits for a slot: idle connections close.
    pressure: Notify,
}

/// One open connection's slot, until dropped.
#[derive(Debug)]
pub struct Slot(#[allow(dead_code)] OwnedSemaphorePermit);

impl Slots {
    /// At most `limit` connections (at least 1).
    pub fn new(limit: usize) -> Arc<Slots> {
        let limit = limit.max(1);
        Arc::new(Slots {
            permits: Arc::new(Semaphore::new(limit)),
            limit,
            pressure: Notify::new(),
        })
    }

    /// The bound.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Slots free now.
    pub fn available(&self) -> usize {
        self.permits.available_permits()
    }

    /// A slot: at once when one is free; else idle connections are asked to
    /// close and this waits for the first slot that frees.
    pub async fn acquire(&self) -> Slot {
        if let Ok(p) = self.permits.clone().try_acquire_owned() {
            return Slot(p);
        }
        loop {
            // Connections that went idle since are asked again every second.
            self.pressure.notify_waiters();
            let wait = self.permits.clone().acquire_owned();
            match tokio::time::timeout(Duration::from_secs(1), wait).await {
                Ok(Ok(p)) => return Slot(p),
                // The semaphore is never closed.
                Ok(Err(_)) => return std::future::pending().await,
                Err(_) => continue,
            }
        }
    }

    /// Resolves when a front is waiting for a slot.
    pub(super) async fn pressed(&self) {
        self.pressure.notified().await
    }
}

/// The default bound: half of what the soft `RLIMIT_NOFILE` leaves after
/// [`FD_RESERVE`] (an http-mode request holds a client and an upstream
/// connection), at least 16.
pub fn default_max_connections() -> usize {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct it is given.
    let soft = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) } == 0 {
        rl.rlim_cur
    } else {
        1024
    };
    let usable = soft.saturating_sub(FD_RESERVE) / 2;
    usize::try_from(usable).unwrap_or(usize::MAX).max(16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn at_the_bound_a_waiter_presses_and_gets_the_freed_slot() {
        let slots = Slots::new(1);
        let held = slots.acquire().await;
        assert_eq!(slots.available(), 0);
        let pressed = {
            let slots = slots.clone();
            tokio::spawn(async move { slots.pressed().await })
        };
        tokio::task::yield_now().await;
        let waiter = {
            let slots = slots.clone();
            tokio::spawn(async move { drop(slots.acquire().await) })
        };
        tokio::task::yield_now().await;
        assert!(
            pressed.is_finished(),
            "a waiting front asks idle connections to close"
        );
        assert!(!waiter.is_finished());
        drop(held);
        assert!(waiter.await.is_ok());
        assert_eq!(slots.available(), 1);
    }

    #[test]
    fn the_default_bound_follows_the_fd_limit() {
        let n = default_max_connections();
        assert!(n >= 16);
        let mut rl = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: as above.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) }, 0);
        assert!((n as u64) <= rl.rlim_cur.max(16 * 2 + FD_RESERVE));
    }
}
