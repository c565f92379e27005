//! A test extension on the real `lambda-extension` crate.
//!
//! * `FX_EXT_NAME` — its registered name (the file name in the extensions dir).
//! * `FX_EXT_LOG` — events are appended as lines: `INVOKE <requestId> <deadlineMs>`
//!   and `SHUTDOWN <reason> <deadlineMs>`; it exits 0 after SHUTDOWN.
//! * `FX_EXT_TELEMETRY_PORT` + `FX_EXT_TELEMETRY` — also subscribe to the
//!   Telemetry API (platform + function) and append each record as
//!   `<type> <record JSON>`.
//! * `FX_EXT_QUIET=1` — register for no events and block forever.

use std::io::Write;

use lambda_extension::{
    service_fn, Error, Extension, LambdaEvent, LambdaTelemetry, NextEvent, SharedService,
};

fn append(path: &str, line: &str) {
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = writeln!(f, "{line}");
    }
}

async fn on_event(event: LambdaEvent) -> Result<(), Error> {
    let log = std::env::var("FX_EXT_LOG").unwrap_or_default();
    match event.next {
        NextEvent::Invoke(e) => append(&log, &format!("INVOKE {} {}", e.request_id, e.deadline_ms)),
        NextEvent::Shutdown(e) => {
            append(
                &log,
                &format!("SHUTDOWN {} {}", e.shutdown_reason, e.deadline_ms),
            );
            std::process::exit(0);
        }
    }
    Ok(())
}

async fn on_telemetry(batch: Vec<LambdaTelemetry>) -> Result<(), Error> {
    let out = std::env::var("FX_EXT_TELEMETRY").unwrap_or_default();
    for t in batch {
        let v = serde_json::to_value(&t.record).unwrap_or_default();
        let kind = v
            .get("type")
            .and_then(|t| t.as_str())
            .unwrap_or("?")
            .to_owned();
        let record = v.get("record").cloned().unwrap_or_default();
        append(&out, &format!("{kind} {record}"));
    }
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let name = std::env::var("FX_EXT_NAME").unwrap_or_else(|_| "fx-extension".into());
    let name: &'static str = Box::leak(name.into_boxed_str());
    if std::env::var("FX_EXT_QUIET").is_ok() {
        return Extension::new()
            .with_extension_name(name)
            .with_events(&[])
            .run()
            .await;
    }
    let ext = Extension::new()
        .with_extension_name(name)
        .with_events(&["INVOKE", "SHUTDOWN"])
        .with_events_processor(service_fn(on_event));
    match std::env::var("FX_EXT_TELEMETRY_PORT")
        .ok()
        .and_then(|p| p.parse::<u16>().ok())
    {
        Some(port) => {
            ext.with_telemetry_processor(SharedService::new(service_fn(on_telemetry)))
                .with_telemetry_types(&["platform", "function"])
                .with_telemetry_port_number(port)
                .run()
                .await
        }
        None => ext.run().await,
    }
}
