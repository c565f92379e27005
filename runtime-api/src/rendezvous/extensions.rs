//! The extension registry (SPEC §5): registration, `/event/next`, INVOKE and
//! SHUTDOWN events, and error reports. It lives under the rendezvous lock.

use std::sync::Arc;

use bytes::Bytes;
use fatalerror::ErrorType;
use http::StatusCode;
use interop::ShutdownReason;
use serde::Deserialize;
use tokio::sync::oneshot;

use super::{Dispatched, Rendezvous, RuntimeEvent, RuntimeHandle};
use crate::error::ApiError;
use crate::extension_state::{ExtensionCall, ExtensionState};

/// At most this many extensions may register.
pub const MAX_EXTENSIONS: usize = 10;

/// An event for an extension.
#[derive(Debug)]
pub struct ExtensionEvent {
    /// `Lambda-Extension-Event-Identifier`.
    pub id: String,
    /// The JSON body.
    pub body: Bytes,
}

/// Which error call an extension made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtensionErrorKind {
    /// `/init/error`.
    Init,
    /// `/exit/error`.
    Exit,
}

/// What the engine may know about a registered extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtensionInfo {
    /// Its name.
    pub name: String,
    /// External (an executable of the extensions dir) or internal.
    pub external: bool,
    /// Subscribed to INVOKE.
    pub invoke: bool,
    /// Subscribed to SHUTDOWN.
    pub shutdown: bool,
    /// Its state.
    pub state: ExtensionState,
}

/// The result of `/event/next` that passed validation.
pub enum ExtensionNext {
    /// An event was already waiting.
    Now(Arc<ExtensionEvent>),
    /// Park until an event arrives (or the sandbox resets).
    Wait(oneshot::Receiver<Arc<ExtensionEvent>>),
}

pub(super) struct Entry {
    id: String,
    info: ExtensionInfo,
    parked: Option<oneshot::Sender<Arc<ExtensionEvent>>>,
    pending: Option<Arc<ExtensionEvent>>,
    error: Option<(ExtensionErrorKind, String)>,
}

#[derive(Default)]
pub(super) struct Registry {
    entries: Vec<Entry>,
    closed: bool,
    external: Vec<String>,
}

impl Registry {
    /// Hand `event` to every extension `filter` selects: to its parked
    /// `/event/next` if any, else on its next call.
    /// The event is only built when some extension wants it.
    pub(super) fn broadcast(
        &mut self,
        make: impl FnOnce() -> Arc<ExtensionEvent>,
        filter: impl Fn(&ExtensionInfo) -> bool,
    ) {
        if !self.entries.iter().any(|e| filter(&e.info)) {
            return;
        }
        let event = make();
        for e in self.entries.iter_mut().filter(|e| filter(&e.info)) {
            if e.info.state == ExtensionState::Errored {
                continue;
            }
            let delivered = match (e.info.state, e.parked.take()) {
                (ExtensionState::Ready, Some(waiter)) => waiter.send(event.clone()).is_ok(),
                _ => false,
            };
            if delivered {
                e.info.state = ExtensionState::Processing;
            } else {
                e.pending = Some(event.clone());
            }
        }
    }

    fn find(&mut self, id: Option<&str>) -> Result<&mut Entry, ApiError> {
        let id = id.ok_or_else(|| {
            ApiError::new(
                StatusCode::FORBIDDEN,
                ErrorType::ExtensionMissingExtensionIdentifier,
                "Missing Lambda-Extension-Identifier header",
            )
        })?;
        if uuid_like(id).is_none() {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                ErrorType::ExtensionInvalidExtensionIdentifier,
                format!("Invalid Lambda-Extension-Identifier: '{id}'"),
            ));
        }
        self.entries.iter_mut().find(|e| e.id == id).ok_or_else(|| {
            ApiError::new(
                StatusCode::FORBIDDEN,
                ErrorType::ExtensionUnknownExtensionIdentifier,
                format!("Unknown extension identifier: '{id}'"),
            )
        })
    }
}

/// A UUID in its canonical 8-4-4-4-12 hex form.
fn uuid_like(s: &str) -> Option<()> {
    let parts: Vec<&str> = s.split('-').collect();
    let lens = [8, 4, 4, 4, 12];
    (parts.len() == 5
        && parts
            .iter()
            .zip(lens)
            .all(|(p, n)| p.len() == n && p.bytes().all(|b| b.is_ascii_hexdigit())))
    .then_some(())
}

fn new_uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

#[derive(Deserialize)]
struct RegisterBody {
    #[serde(default)]
    events: Vec<String>,
}

/// The INVOKE event of a dispatched invoke, if any extension wants it.
pub(super) fn invoke_event(d: &Dispatched) -> Arc<ExtensionEvent> {
    let mut body = serde_json::json!({
        "eventType": "INVOKE",
        "deadlineMs": d.deadline_epoch_ms,
        "requestId": d.invoke.id.as_str(),
        "invokedFunctionArn": d.invoke.invoked_function_arn,
    });
    if let Some(t) = &d.invoke.trace_id {
        body["tracing"] = serde_json::json!({"type": "X-Amzn-Trace-Id", "value": t});
    }
    Arc::new(ExtensionEvent {
        id: new_uuid(),
        body: serde_json::to_vec(&body).unwrap_or_default().into(),
    })
}

impl Rendezvous {
    /// `POST /extension/register`: returns the new extension's identifier.
    pub fn register_extension(&self, name: Option<&str>, body: &[u8]) -> Result<String, ApiError> {
        let forbidden = |t: ErrorType, m: String| ApiError::new(StatusCode::FORBIDDEN, t, m);
        let name = name
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| {
                forbidden(
                    ErrorType::ExtensionInvalidExtensionName,
                    "Empty or missing Lambda-Extension-Name header".into(),
                )
            })?;
        let parsed: RegisterBody = if body.iter().all(u8::is_ascii_whitespace) {
            RegisterBody { events: Vec::new() }
        } else {
            serde_json::from_slice(body).map_err(|e| {
                forbidden(
                    ErrorType::InvalidRequestFormat,
                    format!("Invalid registration body: {e}"),
                )
            })?
        };
        let mut g = self.lock();
        if g.ext.closed {
            return Err(forbidden(
                ErrorType::ExtensionRegistrationClosed,
                format!("Extension '{name}' registered after init completed"),
            ));
        }
        if g.ext.entries.iter().any(|e| e.info.name == name) {
            return Err(forbidden(
                ErrorType::ExtensionInvalidExtensionState,
                format!("Extension '{name}' is already registered"),
            ));
        }
        if g.ext.entries.len() >= MAX_EXTENSIONS {
            return Err(forbidden(
                ErrorType::ExtensionTooManyExtensions,
                format!("Extension '{name}' exceeds the limit of {MAX_EXTENSIONS} extensions"),
            ));
        }
        let external = g.ext.external.iter().any(|n| n == name);
        let (mut invoke, mut shutdown) = (false, false);
        for ev in &parsed.events {
            match ev.as_str() {
                "INVOKE" if g.workers.is_some() => {
                    // LMI: extensions cannot subscribe to INVOKE (AWS's
                    // emulator's body, core/externalagent.go).
                    return Err(forbidden(
                        ErrorType::ExtensionInvalidEventType,
                        "INVOKE: ErrorInvalidEventType".into(),
                    ));
                }
                "INVOKE" => invoke = true,
                "SHUTDOWN" if external => shutdown = true,
                "SHUTDOWN" => {
                    return Err(forbidden(
                        ErrorType::ExtensionInvalidEventType,
                        format!("Internal extension '{name}' cannot register for SHUTDOWN"),
                    ))
                }
                other => {
                    return Err(forbidden(
                        ErrorType::ExtensionInvalidEventType,
                        format!("Unknown event type '{other}': use INVOKE or SHUTDOWN"),
                    ))
                }
            }
        }
        let id = new_uuid();
        g.ext.entries.push(Entry {
            id: id.clone(),
            info: ExtensionInfo {
                name: name.to_owned(),
                external,
                invoke,
                shutdown,
                state: ExtensionState::Registered,
            },
            parked: None,
            pending: None,
            error: None,
        });
        let generation = g.generation;
        drop(g);
        tracing::info!(
            extension = name,
            external,
            invoke,
            shutdown,
            "extension registered"
        );
        self.emit(RuntimeEvent::ExtensionRegistered {
            generation,
            name: name.to_owned(),
            external,
        });
        Ok(id)
    }

    /// The name of the registered extension `id`, for calls that need one.
    pub fn extension_name(&self, id: Option<&str>) -> Result<String, ApiError> {
        let mut g = self.lock();
        g.ext.find(id).map(|e| e.info.name.clone())
    }

    /// Whether registration (and subscription) is still open: during init.
    pub fn registration_open(&self) -> bool {
        !self.lock().ext.closed
    }

    /// `GET /extension/event/next`.
    pub fn extension_next(&self, id: Option<&str>) -> Result<ExtensionNext, ApiError> {
        let mut g = self.lock();
        let generation = g.generation;
        let e = g.ext.find(id)?;
        let to = e.info.state.on(ExtensionCall::Next).map_err(|m| {
            ApiError::new(
                StatusCode::FORBIDDEN,
                ErrorType::ExtensionInvalidExtensionState,
                m,
            )
        })?;
        e.info.state = to;
        let result = match e.pending.take() {
            Some(ev) => {
                e.info.state = ExtensionState::Processing;
                ExtensionNext::Now(ev)
            }
            None => {
                let (tx, rx) = oneshot::channel();
                e.parked = Some(tx);
                ExtensionNext::Wait(rx)
            }
        };
        drop(g);
        self.emit(RuntimeEvent::ExtensionReady { generation });
        Ok(result)
    }

    /// `POST /extension/init/error` and `/exit/error`.
    pub fn extension_error(
        &self,
        id: Option<&str>,
        kind: ExtensionErrorKind,
        error_type: Option<&str>,
    ) -> Result<(), ApiError> {
        let mut g = self.lock();
        let generation = g.generation;
        let e = g.ext.find(id)?;
        let error_type = error_type.filter(|t| !t.is_empty()).ok_or_else(|| {
            ApiError::new(
                StatusCode::FORBIDDEN,
                ErrorType::ExtensionMissingHeader,
                "Missing Lambda-Extension-Function-Error-Type header",
            )
        })?;
        let to = e.info.state.on(ExtensionCall::Error).map_err(|m| {
            ApiError::new(
                StatusCode::FORBIDDEN,
                ErrorType::ExtensionInvalidExtensionState,
                m,
            )
        })?;
        e.info.state = to;
        e.parked = None;
        e.error = Some((kind, error_type.to_owned()));
        let name = e.info.name.clone();
        drop(g);
        tracing::warn!(extension = %name, ?kind, error_type, "extension reported an error");
        self.emit(RuntimeEvent::ExtensionError {
            generation,
            name,
            kind,
            error_type: error_type.to_owned(),
        });
        Ok(())
    }
}

impl RuntimeHandle {
    /// The file names of the extensions directory: those register as external.
    pub fn set_external_extensions(&self, names: Vec<String>) {
        self.r.lock().ext.external = names;
    }

    /// Close registration and subscriptions (init is complete).
    pub fn close_registration(&self) {
        self.r.lock().ext.closed = true;
    }

    /// Whether every registered extension waits in `/event/next` (or errored).
    pub fn extensions_ready(&self) -> bool {
        self.r.lock().ext.entries.iter().all(|e| {
            matches!(
                e.info.state,
                ExtensionState::Ready | ExtensionState::Errored
            )
        })
    }

    /// Registered extensions.
    pub fn extensions(&self) -> Vec<ExtensionInfo> {
        self.r
            .lock()
            .ext
            .entries
            .iter()
            .map(|e| e.info.clone())
            .collect()
    }

    /// Send SHUTDOWN to the subscribed extensions; returns how many.
    pub fn shutdown_extensions(&self, reason: ShutdownReason, deadline_epoch_ms: u64) -> usize {
        let body = serde_json::json!({
            "eventType": "SHUTDOWN",
            "shutdownReason": reason.as_str(),
            "deadlineMs": deadline_epoch_ms,
        });
        let event = Arc::new(ExtensionEvent {
            id: new_uuid(),
            body: serde_json::to_vec(&body).unwrap_or_default().into(),
        });
        let mut g = self.r.lock();
        let n = g.ext.entries.iter().filter(|e| e.info.shutdown).count();
        g.ext.broadcast(|| event, |e| e.shutdown);
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendezvous(external: &[&str]) -> (Arc<Rendezvous>, RuntimeHandle) {
        let (r, _events) = Rendezvous::new();
        let h = RuntimeHandle::new(r.clone());
        h.set_external_extensions(external.iter().map(|s| s.to_string()).collect());
        (r, h)
    }

    fn err_type(r: Result<impl Sized, ApiError>) -> String {
        r.err()
            .map(|e| e.error_type.to_string())
            .unwrap_or_default()
    }

    #[test]
    fn registration_rules() {
        let (r, h) = rendezvous(&["ext-a"]);
        assert_eq!(
            err_type(r.register_extension(None, b"")),
            "Extension.InvalidExtensionName"
        );
        assert_eq!(
            err_type(r.register_extension(Some(" "), b"")),
            "Extension.InvalidExtensionName"
        );
        assert_eq!(
            err_type(r.register_extension(Some("x"), b"{bad")),
            "InvalidRequestFormat"
        );
        assert_eq!(
            err_type(r.register_extension(Some("x"), br#"{"events":["BOGUS"]}"#)),
            "Extension.InvalidEventType"
        );
        assert_eq!(
            err_type(r.register_extension(Some("internal"), br#"{"events":["SHUTDOWN"]}"#)),
            "Extension.InvalidEventType"
        );
        let id = r
            .register_extension(Some("ext-a"), br#"{"events":["INVOKE","SHUTDOWN"]}"#)
            .unwrap();
        assert!(uuid_like(&id).is_some());
        assert_eq!(
            err_type(r.register_extension(Some("ext-a"), b"")),
            "Extension.InvalidExtensionState"
        );
        let infos = h.extensions();
        assert_eq!(infos.len(), 1);
        assert!(infos[0].external && infos[0].invoke && infos[0].shutdown);
        for i in 1..MAX_EXTENSIONS {
            r.register_extension(Some(&format!("i{i}")), br#"{"events":["INVOKE"]}"#)
                .unwrap();
        }
        assert_eq!(
            err_type(r.register_extension(Some("eleventh"), b"")),
            "Extension.TooManyExtensions"
        );
        h.close_registration();
        assert_eq!(
            err_type(r.register_extension(Some("late"), b"")),
            "Extension.RegistrationClosed"
        );
    }

    #[test]
    fn identifier_checks() {
        let (r, _h) = rendezvous(&[]);
        assert_eq!(
            err_type(r.extension_next(None)),
            "Extension.MissingExtensionIdentifier"
        );
        assert_eq!(
            err_type(r.extension_next(Some("nope"))),
            "Extension.InvalidExtensionIdentifier"
        );
        assert_eq!(
            err_type(r.extension_next(Some("00000000-0000-4000-a000-000000000000"))),
            "Extension.UnknownExtensionIdentifier"
        );
        let id = r.register_extension(Some("e"), b"").unwrap();
        assert_eq!(
            err_type(r.extension_error(Some(&id), ExtensionErrorKind::Init, None)),
            "Extension.MissingHeader"
        );
        assert!(r
            .extension_error(Some(&id), ExtensionErrorKind::Init, Some("Extension.Bad"))
            .is_ok());
        assert_eq!(
            err_type(r.extension_next(Some(&id))),
            "Extension.InvalidExtensionState"
        );
    }

    #[test]
    fn events_reach_subscribers_parked_or_not() {
        let (r, h) = rendezvous(&["ext"]);
        let a = r
            .register_extension(Some("ext"), br#"{"events":["INVOKE","SHUTDOWN"]}"#)
            .unwrap();
        let b = r
            .register_extension(Some("quiet"), b"{\"events\":[]}")
            .unwrap();
        let mut parked = match r.extension_next(Some(&a)) {
            Ok(ExtensionNext::Wait(rx)) => rx,
            _ => panic!("expected to park"),
        };
        assert!(!h.extensions_ready()); // "quiet" has not called next yet
        let _quiet = r.extension_next(Some(&b));
        assert!(h.extensions_ready());
        assert_eq!(h.shutdown_extensions(ShutdownReason::Timeout, 42), 1);
        let ev = parked.try_recv().unwrap();
        let v: serde_json::Value = serde_json::from_slice(&ev.body).unwrap();
        assert_eq!(v["eventType"], "SHUTDOWN");
        assert_eq!(v["shutdownReason"], "TIMEOUT");
        assert_eq!(v["deadlineMs"], 42);
        assert!(!h.extensions_ready()); // "ext" is processing
                                        // A second SHUTDOWN while processing is queued for its next call.
        h.shutdown_extensions(ShutdownReason::Spindown, 43);
        match r.extension_next(Some(&a)) {
            Ok(ExtensionNext::Now(ev)) => {
                assert!(String::from_utf8_lossy(&ev.body).contains("SPINDOWN"))
            }
            _ => panic!("expected the queued event"),
        }
    }
}
