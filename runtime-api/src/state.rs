//! The runtime's state machine (one per sandbox generation).
//!
//! ```text
//!  Started ──next──▶ Ready ──dispatch──▶ Invoking ──response──▶ Responding ──done──▶ ResponseSent
//!     │                ▲  ▲                  │                                            │
//!     │                │  └────────next──────┼──(only while the event is undelivered)     │
//!     │                └─────────────────────┴──error──▶ ResponseSent ──next──────────────┘
//!     └──init/error──▶ InitErrored
//! ```
//!
//! [`RuntimeState::on`] is the whole transition table; handlers call it before
//! they change anything, so a rejected call leaves the invoke as it was.

use std::fmt;

/// Where the runtime is in its protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuntimeState {
    /// The process was started and has not called `/next` yet (init).
    Started,
    /// The runtime waits in `/next` with nothing to do.
    Ready,
    /// An invoke was handed out; no response yet.
    Invoking,
    /// A `/response` body is arriving.
    Responding,
    /// The response or error is complete; the runtime should call `/next`.
    ResponseSent,
    /// The runtime reported `/init/error`.
    InitErrored,
}

/// A call (or engine action) that may move the runtime between states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuntimeCall {
    /// `GET /runtime/invocation/next`.
    Next,
    /// The engine hands out an invoke.
    Dispatch,
    /// `POST /runtime/invocation/{id}/response` begins.
    ResponseStart,
    /// The response body has been received (or rejected).
    ResponseEnd,
    /// `POST /runtime/invocation/{id}/error`.
    Error,
    /// `POST /runtime/init/error`.
    InitError,
}

/// A call that is not allowed in the current state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidTransition {
    /// State at the time of the call.
    pub from: RuntimeState,
    /// The call.
    pub call: RuntimeCall,
}

impl fmt::Display for InvalidTransition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Transition from {} to {} is not allowed",
            self.from.name(),
            self.call.target_name()
        )
    }
}

impl RuntimeState {
    /// The name used in error messages.
    pub fn name(self) -> &'static str {
        match self {
            RuntimeState::Started => "Started",
            RuntimeState::Ready => "Ready",
            RuntimeState::Invoking => "Invoking",
            RuntimeState::Responding => "Responding",
            RuntimeState::ResponseSent => "ResponseSent",
            RuntimeState::InitErrored => "InitError",
        }
    }

    /// The transition table. `undelivered` is true while a dispatched event has
    /// not yet been handed to a `/next` call (its connection dropped), in which
    /// case a new `/next` picks it up.
    pub fn on(
        self,
        call: RuntimeCall,
        undelivered: bool,
    ) -> Result<RuntimeState, InvalidTransition> {
        use RuntimeCall as C;
        use RuntimeState as S;
        let next = match (self, call) {
            (S::Started | S::Ready | S::ResponseSent, C::Next) => S::Ready,
            (S::Invoking, C::Next) if undelivered => S::Invoking,
            (S::Ready, C::Dispatch) => S::Invoking,
            (S::Invoking, C::ResponseStart) => S::Responding,
            (S::Responding, C::ResponseEnd) => S::ResponseSent,
            (S::Invoking, C::Error) => S::ResponseSent,
            (S::Started, C::InitError) => S::InitErrored,
            (from, call) => return Err(InvalidTransition { from, call }),
        };
        Ok(next)
    }
}

impl RuntimeCall {
    fn target_name(self) -> &'static str {
        match self {
            RuntimeCall::Next => "Ready",
            RuntimeCall::Dispatch => "Invoking",
            RuntimeCall::ResponseStart => "Responding",
            RuntimeCall::ResponseEnd => "ResponseSent",
            RuntimeCall::Error => "InvocationErrorResponse",
            RuntimeCall::InitError => "InitError",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use RuntimeCall as C;
    use RuntimeState as S;

    const STATES: [S; 6] = [
        S::Started,
        S::Ready,
        S::Invoking,
        S::Responding,
        S::ResponseSent,
        S::InitErrored,
    ];
    const CALLS: [C; 6] = [
        C::Next,
        C::Dispatch,
        C::ResponseStart,
        C::ResponseEnd,
        C::Error,
        C::InitError,
    ];

    /// The full table: every (state, call, undelivered) and its expected result.
    fn expected(s: S, c: C, undelivered: bool) -> Option<S> {
        match (s, c) {
            (S::Started, C::Next) => Some(S::Ready),
            (S::Started, C::InitError) => Some(S::InitErrored),
            (S::Ready, C::Next) => Some(S::Ready),
            (S::Ready, C::Dispatch) => Some(S::Invoking),
            (S::Invoking, C::Next) if undelivered => Some(S::Invoking),
            (S::Invoking, C::ResponseStart) => Some(S::Responding),
            (S::Invoking, C::Error) => Some(S::ResponseSent),
            (S::Responding, C::ResponseEnd) => Some(S::ResponseSent),
            (S::ResponseSent, C::Next) => Some(S::Ready),
            _ => None,
        }
    }

    #[test]
    fn full_transition_table() {
        let mut allowed = 0;
        for s in STATES {
            for c in CALLS {
                for undelivered in [false, true] {
                    let got = s.on(c, undelivered).ok();
                    assert_eq!(
                        got,
                        expected(s, c, undelivered),
                        "{s:?} --{c:?}/{undelivered}-->"
                    );
                    allowed += usize::from(got.is_some());
                }
            }
        }
        // 8 transitions allowed either way + 1 only while undelivered.
        assert_eq!(allowed, 8 * 2 + 1);
    }

    #[test]
    fn happy_cycle() {
        let mut s = S::Started;
        for c in [
            C::Next,
            C::Dispatch,
            C::ResponseStart,
            C::ResponseEnd,
            C::Next,
        ] {
            s = s.on(c, false).unwrap();
        }
        assert_eq!(s, S::Ready);
        for c in [C::Dispatch, C::Error, C::Next] {
            s = s.on(c, false).unwrap();
        }
        assert_eq!(s, S::Ready);
    }

    #[test]
    fn second_response_and_response_after_error_are_rejected() {
        assert!(S::ResponseSent.on(C::ResponseStart, false).is_err());
        assert!(S::ResponseSent.on(C::Error, false).is_err());
        assert!(S::Responding.on(C::ResponseStart, false).is_err());
        assert!(S::Responding.on(C::Error, false).is_err());
    }

    #[test]
    fn init_error_only_during_init() {
        for s in STATES {
            assert_eq!(s.on(C::InitError, false).is_ok(), s == S::Started, "{s:?}");
        }
    }

    #[test]
    fn error_message_names_both_states() {
        let e = S::ResponseSent.on(C::ResponseStart, false).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Transition from ResponseSent to Responding is not allowed"
        );
    }
}
