//! One connection's timeouts outside its requests: a head must arrive
//! within the header timeout (from its first byte, or from the connection's
//! start), and a kept-alive connection with no request in flight is closed
//! after the idle timeout (or at once when the connection bound is pressed).
//! Requests in flight are not timed here: their bodies are ([`super::Stalling`]),
//! and the answer takes what the function takes.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

use super::limits::{Limits, Slots};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for a request: `fresh` until the first one.
    Waiting { since: Instant, fresh: bool },
    /// A head is arriving (its first byte came at `since`).
    Head { since: Instant },
    /// Requests in flight (their answers not yet written).
    Busy(usize),
}

/// What the connection's reads and requests tell its watchdog.
/// A connection's phase, written by its reads and requests, read by
/// [`Activity::expired`]. Nothing is signalled on a change: `expired` wakes
/// at least once per shortest timeout and then reads the phase, so keeping
/// it costs a request no wake-up of the connection's task and no timer.
#[derive(Debug)]
pub(super) struct Activity {
    phase: Mutex<Phase>,
    waiting: AtomicBool,
}

impl Activity {
    pub(super) fn new() -> Arc<Activity> {
        Arc::new(Activity {
            phase: Mutex::new(Phase::Waiting {
                since: Instant::now(),
                fresh: true,
            }),
            waiting: AtomicBool::new(true),
        })
    }

    fn set(&self, f: impl FnOnce(Phase) -> Phase) {
        let mut g = self.phase.lock().unwrap_or_else(|p| p.into_inner());
        let next = f(*g);
        *g = next;
        self.waiting
            .store(matches!(next, Phase::Waiting { .. }), Ordering::Release);
    }

    fn phase(&self) -> Phase {
        *self.phase.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Bytes arrived: a head starts (when none was in flight).
    fn read(&self) {
        if self.waiting.load(Ordering::Acquire) {
            self.set(|p| match p {
                Phase::Waiting { .. } => Phase::Head {
                    since: Instant::now(),
                },
                other => other,
            });
        }
    }

    /// A request is in flight until the returned guard is dropped.
    pub(super) fn begin(self: &Arc<Self>) -> InFlight {
        self.set(|p| match p {
            Phase::Busy(n) => Phase::Busy(n + 1),
            _ => Phase::Busy(1),
        });
        InFlight(self.clone())
    }

    /// Resolves when the connection should close: its head is late, it has
    /// been idle too long, or it is idle while the connection bound is
    /// pressed.
    ///
    /// Every deadline is "since + limit" with `since` no earlier than the
    /// moment this loop last looked, so sleeping at most the shortest limit
    /// between looks never misses one.
    pub(super) async fn expired(&self, limits: Limits, slots: Option<&Slots>) {
        let Some(step) = [limits.header, limits.idle].into_iter().flatten().min() else {
            // Nothing to time here (only body limits): idle pressure alone.
            return match slots {
                Some(s) => loop {
                    s.pressed().await;
                    if matches!(self.phase(), Phase::Waiting { fresh: false, .. }) {
                        return;
                    }
                },
                None => std::future::pending().await,
            };
        };
        loop {
            let now = Instant::now();
            let (deadline, idle) = match self.phase() {
                Phase::Busy(_) => (None, false),
                Phase::Head { since } => (limits.header.map(|d| since + d), false),
                Phase::Waiting { since, fresh: true } => (limits.header.map(|d| since + d), false),
                Phase::Waiting {
                    since,
                    fresh: false,
                } => (limits.idle.map(|d| since + d), true),
            };
            if deadline.is_some_and(|d| d <= now) {
                return;
            }
            let look = deadline.map_or(now + step, |d| d.min(now + step));
            let pressed = async {
                match slots {
                    Some(s) => s.pressed().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = tokio::time::sleep_until(look) => {}
                () = pressed => {
                    // Only an idle connection makes room; a busy one is looked at again.
                    if idle || matches!(self.phase(), Phase::Waiting { fresh: false, .. }) {
                        return;
                    }
                }
            }
        }
    }
}

#[derive(Debug)]
pub(super) struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.set(|p| match p {
            Phase::Busy(n) if n > 1 => Phase::Busy(n - 1),
            _ => Phase::Waiting {
                since: Instant::now(),
                fresh: false,
            },
        });
    }
}

/// A response body that holds its request's [`InFlight`] until written.
pub struct Tracked<B> {
    inner: B,
    _in_flight: InFlight,
}

impl<B> Tracked<B> {
    pub(super) fn new(inner: B, in_flight: InFlight) -> Self {
        Tracked {
            inner,
            _in_flight: in_flight,
        }
    }
}

impl<B: Body<Data = Bytes> + Unpin> Body for Tracked<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// A socket whose reads tell its [`Activity`].
pub(super) struct Watched<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S> Watched<S> {
    pub(super) fn new(inner: S, activity: Arc<Activity>) -> Self {
        Watched { inner, activity }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.read();
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// How long the accept loop waits after an accept error: doubling from
/// 10 ms to 1 s while errors repeat (EMFILE: until a descriptor frees).
pub(super) fn backoff(failures: u32) -> Duration {
    Duration::from_millis(10u64 << failures.min(7)).min(Duration::from_secs(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    const L: Limits = Limits {
        header: Some(Duration::from_secs(10)),
        body: None,
        idle: Some(Duration::from_secs(60)),
    };

    #[tokio::test(start_paused = true)]
    async fn a_silent_connection_gets_the_header_timeout() {
        let a = Activity::new();
        let t = Instant::now();
        a.expired(L, None).await;
        assert_eq!(t.elapsed(), Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn busy_is_never_timed_and_idle_gets_the_idle_timeout() {
        let a = Activity::new();
        let w = {
            let a = a.clone();
            tokio::spawn(async move { a.expired(L, None).await })
        };
        let busy = a.begin();
        tokio::time::sleep(Duration::from_secs(3600)).await;
        assert!(!w.is_finished(), "a request in flight is not timed");
        let t = Instant::now();
        drop(busy);
        assert!(w.await.is_ok());
        assert_eq!(t.elapsed(), Duration::from_secs(60));
    }

    #[tokio::test(start_paused = true)]
    async fn a_head_that_starts_is_timed_from_its_first_byte() {
        let a = Activity::new();
        drop(a.begin());
        tokio::time::sleep(Duration::from_secs(30)).await;
        a.read();
        let t = Instant::now();
        a.expired(L, None).await;
        assert_eq!(t.elapsed(), Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn a_head_after_a_short_idle_spell_gets_its_own_earlier_deadline() {
        let a = Activity::new();
        drop(a.begin());
        let w = {
            let a = a.clone();
            tokio::spawn(async move { a.expired(L, None).await })
        };
        // Idle for 5 s (the idle deadline would be at 60 s), then a head starts.
        tokio::time::sleep(Duration::from_secs(5)).await;
        a.read();
        let t = Instant::now();
        assert!(w.await.is_ok());
        assert_eq!(
            t.elapsed(),
            Duration::from_secs(10),
            "the header timeout, not the idle one"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn pressure_closes_idle_connections_only() {
        let slots = Slots::new(1);
        let a = Activity::new();
        drop(a.begin());
        let w = {
            let (a, s) = (a.clone(), slots.clone());
            tokio::spawn(async move { a.expired(L, Some(&s)).await })
        };
        tokio::task::yield_now().await;
        let _held = slots.acquire().await;
        let t = Instant::now();
        let _waiting = tokio::spawn({
            let s = slots.clone();
            async move { drop(s.acquire().await) }
        });
        assert!(w.await.is_ok());
        assert_eq!(t.elapsed(), Duration::ZERO);
    }

    #[test]
    fn backoff_doubles_to_a_second() {
        assert_eq!(backoff(0), Duration::from_millis(10));
        assert_eq!(backoff(1), Duration::from_millis(20));
        assert_eq!(backoff(20), Duration::from_secs(1));
    }
}
