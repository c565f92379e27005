//! The extension state machine under arbitrary call sequences: never a
//! panic, every refusal a message naming the state, a refused call leaves
//! the state as it was, and `Errored` is final.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use runtime_api::extension_state::{ExtensionCall, ExtensionState};

#[derive(Debug, Arbitrary)]
enum Call {
    Next,
    Deliver,
    Error,
}

fuzz_target!(|calls: Vec<Call>| {
    let mut state = ExtensionState::Registered;
    for call in &calls {
        let typed = match call {
            Call::Next => ExtensionCall::Next,
            Call::Deliver => ExtensionCall::Deliver,
            Call::Error => ExtensionCall::Error,
        };
        match state.on(typed) {
            Ok(to) => {
                assert_ne!(state, ExtensionState::Errored, "{typed:?} left Errored");
                if typed == ExtensionCall::Deliver {
                    assert_eq!(state, ExtensionState::Ready, "delivered while not waiting");
                }
                state = to;
            }
            Err(msg) => {
                let want = format!("Extension in state {} cannot ", state.name());
                assert!(msg.starts_with(&want), "{msg}");
            }
        }
    }
});
