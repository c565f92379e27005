//! An extension's state machine (SPEC §5).
//!
//! ```text
//!  Registered ──next──▶ Ready ──event──▶ Processing ──next──▶ Ready …
//!       │                 │                  │
//!       └──init/error / exit/error (any state but Errored)──▶ Errored
//! ```

/// Where an extension is in its protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtensionState {
    /// Registered; has not asked for an event yet.
    Registered,
    /// Waiting in `/event/next`.
    Ready,
    /// Handling an event it received.
    Processing,
    /// Reported `/init/error` or `/exit/error`.
    Errored,
}

/// A call that may move an extension between states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtensionCall {
    /// `GET /event/next`.
    Next,
    /// An event is handed to it.
    Deliver,
    /// `POST /init/error` or `/exit/error`.
    Error,
}

impl ExtensionState {
    /// The state's name in error messages.
    pub fn name(self) -> &'static str {
        match self {
            ExtensionState::Registered => "Registered",
            ExtensionState::Ready => "Ready",
            ExtensionState::Processing => "Processing",
            ExtensionState::Errored => "Errored",
        }
    }

    /// The transition table; `Err` names the refused transition.
    pub fn on(self, call: ExtensionCall) -> Result<ExtensionState, String> {
        use ExtensionCall as C;
        use ExtensionState as S;
        match (self, call) {
            (S::Registered | S::Processing | S::Ready, C::Next) => Ok(S::Ready),
            (S::Ready, C::Deliver) => Ok(S::Processing),
            (S::Registered | S::Ready | S::Processing, C::Error) => Ok(S::Errored),
            (from, call) => Err(format!(
                "Extension in state {} cannot {}",
                from.name(),
                match call {
                    C::Next => "ask for the next event",
                    C::Deliver => "receive an event",
                    C::Error => "report an error",
                }
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ExtensionCall as C;
    use ExtensionState as S;

    #[test]
    fn full_transition_table() {
        let table = [
            (S::Registered, C::Next, Some(S::Ready)),
            (S::Registered, C::Deliver, None),
            (S::Registered, C::Error, Some(S::Errored)),
            (S::Ready, C::Next, Some(S::Ready)),
            (S::Ready, C::Deliver, Some(S::Processing)),
            (S::Ready, C::Error, Some(S::Errored)),
            (S::Processing, C::Next, Some(S::Ready)),
            (S::Processing, C::Deliver, None),
            (S::Processing, C::Error, Some(S::Errored)),
            (S::Errored, C::Next, None),
            (S::Errored, C::Deliver, None),
            (S::Errored, C::Error, None),
        ];
        for (s, c, want) in table {
            assert_eq!(s.on(c).ok(), want, "{s:?} --{c:?}-->");
        }
    }

    #[test]
    fn refusal_names_the_state() {
        assert_eq!(
            S::Errored.on(C::Next).unwrap_err(),
            "Extension in state Errored cannot ask for the next event"
        );
    }
}
