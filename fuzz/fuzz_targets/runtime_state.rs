//! The runtime state machine under arbitrary call sequences: never a panic,
//! every refusal an `InvalidTransition` naming the state it met, and a
//! refused call leaves the state as it was.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use runtime_api::state::{RuntimeCall, RuntimeState};

#[derive(Debug, Arbitrary)]
enum Call {
    Next,
    Dispatch,
    ResponseStart,
    ResponseEnd,
    Error,
    InitError,
    RestoreNext,
    Restore,
    RestoreError,
}

impl Call {
    fn typed(&self) -> RuntimeCall {
        match self {
            Call::Next => RuntimeCall::Next,
            Call::Dispatch => RuntimeCall::Dispatch,
            Call::ResponseStart => RuntimeCall::ResponseStart,
            Call::ResponseEnd => RuntimeCall::ResponseEnd,
            Call::Error => RuntimeCall::Error,
            Call::InitError => RuntimeCall::InitError,
            Call::RestoreNext => RuntimeCall::RestoreNext,
            Call::Restore => RuntimeCall::Restore,
            Call::RestoreError => RuntimeCall::RestoreError,
        }
    }
}

fuzz_target!(|calls: Vec<(Call, bool)>| {
    let mut state = RuntimeState::Started;
    let mut errored_init = false;
    for (call, undelivered) in &calls {
        let call = call.typed();
        match state.on(call, *undelivered) {
            Ok(to) => {
                // Terminal states have no way out.
                assert!(
                    !matches!(
                        state,
                        RuntimeState::InitErrored | RuntimeState::RestoreErrored
                    ),
                    "{state:?} --{call:?}--> {to:?}"
                );
                if to == RuntimeState::InitErrored {
                    errored_init = true;
                }
                state = to;
            }
            Err(e) => {
                assert_eq!(e.from, state);
                assert_eq!(e.call, call);
                let msg = e.to_string();
                assert!(msg.starts_with("Transition from "), "{msg}");
                assert!(msg.contains(state.name()), "{msg}");
            }
        }
    }
    if errored_init {
        assert_eq!(state, RuntimeState::InitErrored);
    }
});
