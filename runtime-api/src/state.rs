//! The runtime's state machine (one per sandbox generation).
//!
//! ```text
//!  Started ──next──▶ Ready ──dispatch──▶ Invoking ──response──▶ Responding ──done──▶ ResponseSent
//!     │                ▲  ▲                  │                                            │
//!     │                │  └────────next──────┼──(only while the event is undelivered)     │
//!     │                └─────────────────────┴──error──▶ ResponseSent ──next──────────────┘
//!     ├──init/error──▶ InitErrored
//!     └──restore/next──▶ RestoreReady ──restore──▶ Restoring ──next──▶ Ready
//!                                                     └──restore/error──▶ RestoreErrored
//! ```
//!
//! The restore states exist only with init caching (SnapStart): the runtime
//! ends its init with `/restore/next` and resumes after a Restore.
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
    /// Init caching: the runtime waits in `/restore/next` (snapshot point).
    RestoreReady,
    /// Restore released `/restore/next`; the runtime runs its after-restore hooks.
    Restoring,
    /// The runtime reported `/restore/error`.
    RestoreErrored,
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
    /// `GET /runtime/restore/next`.
    RestoreNext,
    /// The engine performs a Restore.
    Restore,
    /// `POST /runtime/restore/error`.
    RestoreError,
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
            RuntimeState::RestoreReady => "RestoreReady",
            RuntimeState::Restoring => "Restoring",
            RuntimeState::RestoreErrored => "RestoreError",
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
            (S::Started | S::Ready | S::ResponseSent | S::Restoring, C::Next) => S::Ready,
            (S::Started, C::RestoreNext) => S::RestoreReady,
            (S::RestoreReady, C::Restore) => S::Restoring,
            (S::Restoring, C::RestoreError) => S::RestoreErrored,
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
            RuntimeCall::RestoreNext => "RestoreReady",
            RuntimeCall::Restore => "Restoring",
            RuntimeCall::RestoreError => "RestoreError",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use RuntimeCall as C;
    use RuntimeState as S;

    const STATES: [S; 9] = [
        S::Started,
        S::Ready,
        S::Invoking,
        S::Responding,
        S::ResponseSent,
        S::InitErrored,
        S::RestoreReady,
        S::Restoring,
        S::RestoreErrored,
    ];
    const CALLS: [C; 9] = [
        C::Next,
        C::Dispatch,
        C::ResponseStart,
        C::ResponseEnd,
        C::Error,
        C::InitError,
        C::RestoreNext,
        C::Restore,
        C::RestoreError,
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
            (S::Started, C::RestoreNext) => Some(S::RestoreReady),
            (S::RestoreReady, C::Restore) => Some(S::Restoring),
            (S::Restoring, C::Next) => Some(S::Ready),
            (S::Restoring, C::RestoreError) => Some(S::RestoreErrored),
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
        // 12 transitions allowed either way + 1 only while undelivered.
        assert_eq!(allowed, 12 * 2 + 1);
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
    fn restore_cycle() {
        let mut s = S::Started;
        for c in [C::RestoreNext, C::Restore, C::Next] {
            s = s.on(c, false).unwrap();
        }
        assert_eq!(s, S::Ready);
        assert!(S::Ready.on(C::RestoreNext, false).is_err());
        assert!(S::RestoreReady.on(C::Next, false).is_err());
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
