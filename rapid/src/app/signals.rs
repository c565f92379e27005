//! The signals rapid handles. SIGTERM, SIGINT, SIGHUP and SIGQUIT all mean
//! "stop in order" (as PID 1 nothing else would stop rapid cleanly);
//! SIGUSR1 and SIGUSR2 are caught and logged so they never kill rapid.

use tokio::signal::unix::{signal, Signal as Stream, SignalKind};

/// A signal rapid handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGTERM: an orchestrator stops rapid.
    Term,
    /// SIGINT: someone at a terminal (no orchestrator to wait for).
    Int,
    /// SIGHUP.
    Hup,
    /// SIGQUIT.
    Quit,
    /// SIGUSR1: logged.
    Usr1,
    /// SIGUSR2: logged.
    Usr2,
}

impl Signal {
    const ALL: [Signal; 6] = [
        Signal::Term,
        Signal::Int,
        Signal::Hup,
        Signal::Quit,
        Signal::Usr1,
        Signal::Usr2,
    ];

    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            Signal::Term => "SIGTERM",
            Signal::Int => "SIGINT",
            Signal::Hup => "SIGHUP",
            Signal::Quit => "SIGQUIT",
            Signal::Usr1 => "SIGUSR1",
            Signal::Usr2 => "SIGUSR2",
        }
    }

    /// Whether it stops rapid.
    pub fn stops(self) -> bool {
        !matches!(self, Signal::Usr1 | Signal::Usr2)
    }

    fn kind(self) -> SignalKind {
        match self {
            Signal::Term => SignalKind::terminate(),
            Signal::Int => SignalKind::interrupt(),
            Signal::Hup => SignalKind::hangup(),
            Signal::Quit => SignalKind::quit(),
            Signal::Usr1 => SignalKind::user_defined1(),
            Signal::Usr2 => SignalKind::user_defined2(),
        }
    }
}

/// The installed handlers.
pub struct Signals(Vec<(Stream, Signal)>);

impl Signals {
    /// Handle every [`Signal`]; the error names the one that could not be installed.
    pub fn install() -> Result<Signals, (Signal, std::io::Error)> {
        let mut handlers = Vec::new();
        for s in Signal::ALL {
            handlers.push((signal(s.kind()).map_err(|e| (s, e))?, s));
        }
        Ok(Signals(handlers))
    }

    /// The next signal to arrive.
    pub async fn next(&mut self) -> Signal {
        std::future::poll_fn(|cx| {
            for (stream, s) in self.0.iter_mut() {
                if stream.poll_recv(cx).is_ready() {
                    return std::task::Poll::Ready(*s);
                }
            }
            std::task::Poll::Pending
        })
        .await
    }

    /// The next signal that stops rapid (the others are logged).
    pub async fn next_stop(&mut self) -> Signal {
        loop {
            let s = self.next().await;
            if s.stops() {
                return s;
            }
            tracing::info!(
                signal = s.name(),
                "ignored (rapid stops on SIGTERM, SIGINT, SIGHUP, SIGQUIT)"
            );
        }
    }
}
