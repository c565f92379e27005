//! Bodies bounded in time: the read timeout on request bodies and the write
//! timeout on responses of the OpenFaaS front.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame};
use tokio::time::{Instant, Sleep};

use crate::sandbox::BoxError;

/// A body that fails once `deadline` passes before it ended: the read
/// timeout on request bodies, the write timeout on responses.
///
/// The timer is only armed when the body first has to wait, so a body that
/// is all there (the common case) costs no timer.
pub struct Deadline<B> {
    inner: B,
    deadline: Option<Instant>,
    sleep: Option<Pin<Box<Sleep>>>,
    what: &'static str,
}

impl<B> Deadline<B> {
    /// Wrap `inner`; `None` means no deadline.
    pub fn new(inner: B, after: Option<Duration>, what: &'static str) -> Self {
        Deadline {
            inner,
            deadline: after.map(|d| Instant::now() + d),
            sleep: None,
            what,
        }
    }
}

/// The deadline of a [`Deadline`] body passed.
pub use crate::sandbox::BodyTimedOut as TimedOut;

impl<B> HttpBody for Deadline<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
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
            Poll::Ready(f) => Poll::Ready(f.map(|r| r.map_err(Into::into))),
            Poll::Pending => {
                let Some(deadline) = this.deadline else {
                    return Poll::Pending;
                };
                let sleep = this
                    .sleep
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if sleep.as_mut().poll(cx).is_ready() {
                    this.deadline = None;
                    this.sleep = None;
                    return Poll::Ready(Some(Err(Box::new(TimedOut(this.what)))));
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
    async fn deadline_body_fails_when_the_deadline_passes() {
        let (mut tx, rx) = http_body_util::channel::Channel::<Bytes, BoxError>::new(1);
        let mut b = Deadline::new(rx, Some(Duration::from_secs(1)), "reading the request");
        tx.send_data(Bytes::from_static(b"a")).await.unwrap();
        assert_eq!(
            b.frame().await.unwrap().unwrap().into_data().unwrap(),
            Bytes::from_static(b"a")
        );
        let e = b.frame().await.unwrap().unwrap_err();
        assert_eq!(e.to_string(), "reading the request timed out");
        drop(tx);
    }
}
