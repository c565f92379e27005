//! The drain every front follows at shutdown: serving, then unready (health
//! and readiness answer 503 while requests are still served, so that an
//! orchestrator stops routing), then closed (requests answer 503).

use tokio::sync::watch;

/// Where rapid is in its shutdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    /// Serving.
    Serving,
    /// Unready, still serving.
    Draining,
    /// Refusing.
    Closed,
}

/// The drain state: the composition root moves it forward, fronts read it.
#[derive(Debug, Clone)]
pub struct Drain {
    stage: watch::Sender<Stage>,
    /// True once closed: the servers stop accepting and finish open connections.
    stop: watch::Sender<bool>,
}

impl Default for Drain {
    fn default() -> Self {
        Drain {
            stage: watch::Sender::new(Stage::Serving),
            stop: watch::Sender::new(false),
        }
    }
}

impl Drain {
    /// Go unready.
    pub fn begin(&self) {
        self.advance(Stage::Draining);
    }

    /// Refuse requests from now on.
    pub fn close(&self) {
        self.advance(Stage::Closed);
    }

    fn advance(&self, to: Stage) {
        if to == Stage::Closed {
            self.stop.send_replace(true);
        }
        self.stage.send_if_modified(|s| {
            let later = to > *s;
            if later {
                *s = to;
            }
            later
        });
    }

    /// Where it is.
    pub fn stage(&self) -> Stage {
        *self.stage.borrow()
    }

    /// Unready (draining or closed).
    pub fn is_draining(&self) -> bool {
        self.stage() >= Stage::Draining
    }

    /// Refusing requests.
    pub fn is_closed(&self) -> bool {
        self.stage() == Stage::Closed
    }

    /// True once closed: the servers' signal to stop accepting connections
    /// and finish the open ones.
    pub fn stop_signal(&self) -> watch::Receiver<bool> {
        self.stop.subscribe()
    }

    /// Changes of the stage (the lock file follows them).
    pub fn subscribe(&self) -> watch::Receiver<Stage> {
        self.stage.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_moves_forward() {
        let d = Drain::default();
        let mut closed = d.stop_signal();
        assert!(!d.is_draining());
        d.begin();
        assert!(d.is_draining() && !d.is_closed());
        d.close();
        d.begin();
        assert!(d.is_closed(), "a drain never goes back");
        assert!(closed.wait_for(|c| *c).await.is_ok());
    }
}
