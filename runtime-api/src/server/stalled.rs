//! A request body that fails once it makes no progress for a while: a
//! client that sends part of a body and stops gets `408`, not a connection
//! held for ever.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame};
use tokio::time::{Instant, Sleep};

/// The error a stalled body ends with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the request body made no progress for {} ms", .0.as_millis())]
pub struct BodyStalled(pub Duration);

impl BodyStalled {
    /// Whether `e`, or any error it was caused by, is a stalled body.
    pub fn caused(e: &(dyn std::error::Error + 'static)) -> bool {
        let mut cur = Some(e);
        while let Some(e) = cur {
            if e.is::<BodyStalled>() {
                return true;
            }
            cur = e.source();
        }
        false
    }
}

/// `inner`, failing with [`BodyStalled`] once a wait for its next frame
/// lasts `after`. The timer is armed only when the body has to wait.
pub struct Stalling<B> {
    inner: B,
    after: Duration,
    sleep: Option<Pin<Box<Sleep>>>,
    armed: bool,
}

impl<B> Stalling<B> {
    /// Wrap `inner`.
    pub fn new(inner: B, after: Duration) -> Self {
        Stalling {
            inner,
            after,
            sleep: None,
            armed: false,
        }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<B> Body for Stalling<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(f) => {
                this.armed = false;
                Poll::Ready(f.map(|r| r.map_err(Into::into)))
            }
            Poll::Pending => {
                let at = Instant::now() + this.after;
                let sleep = this
                    .sleep
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
                if !this.armed {
                    sleep.as_mut().reset(at);
                    this.armed = true;
                }
                if sleep.as_mut().poll(cx).is_ready() {
                    this.armed = false;
                    return Poll::Ready(Some(Err(Box::new(BodyStalled(this.after)))));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test(start_paused = true)]
    async fn progress_resets_the_timer_and_a_stall_fails() {
        let (mut tx, rx) = http_body_util::channel::Channel::<Bytes, BoxError>::new(1);
        let mut b = Stalling::new(rx, Duration::from_secs(30));
        let feeder = tokio::spawn(async move {
            for _ in 0..3 {
                tokio::time::sleep(Duration::from_secs(20)).await;
                let _ = tx.send_data(Bytes::from_static(b"x")).await;
            }
            tokio::time::sleep(Duration::from_secs(3600)).await;
            drop(tx);
        });
        let started = Instant::now();
        for _ in 0..3 {
            let f = b.frame().await.expect("a frame").expect("data");
            assert_eq!(f.into_data().ok(), Some(Bytes::from_static(b"x")));
        }
        let e = b.frame().await.expect("the stall").expect_err("fails");
        assert!(BodyStalled::caused(e.as_ref()));
        assert_eq!(started.elapsed(), Duration::from_secs(90));
        feeder.abort();
    }
}
