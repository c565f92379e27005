//! The `record` objects of the platform events, with the fields the Telemetry
//! API schema gives them (2022-12-13 shape); the fields only `2025-01-29`
//! has are added with [`add`] (`lambda/engine/telemetry.rs`).

use serde_json::{json, Value};

/// Add a field to a record.
pub fn add(record: &mut Value, key: &str, value: Value) {
    if let Some(o) = record.as_object_mut() {
        o.insert(key.to_owned(), value);
    }
}

fn ms(d: std::time::Duration) -> f64 {
    (d.as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0
}

/// `platform.initStart`.
pub fn init_start(init_type: &str, function: &str, version: &str) -> Value {
    json!({"initializationType": init_type, "phase": "init", "functionName": function, "functionVersion": version})
}

/// `platform.initRuntimeDone`.
pub fn init_runtime_done(init_type: &str, status: &str, error_type: Option<&str>) -> Value {
    let mut v = json!({"initializationType": init_type, "phase": "init", "status": status});
    if let Some(e) = error_type {
        v["errorType"] = json!(e);
    }
    v
}

/// `platform.initReport`.
pub fn init_report(
    init_type: &str,
    status: &str,
    duration: std::time::Duration,
    error_type: Option<&str>,
) -> Value {
    let mut v = json!({
        "initializationType": init_type, "phase": "init", "status": status,
        "metrics": {"durationMs": ms(duration)}
    });
    if let Some(e) = error_type {
        v["errorType"] = json!(e);
    }
    v
}

/// `platform.start`.
pub fn start(request_id: &str, version: &str, trace: Option<&str>) -> Value {
    let mut v = json!({"requestId": request_id, "version": version});
    if let Some(t) = trace {
        v["tracing"] = json!({"type": "X-Amzn-Trace-Id", "value": t});
    }
    v
}

/// `platform.runtimeDone`: status `success`, `error`, `failure` or `timeout`.
pub fn runtime_done(
    request_id: &str,
    status: &str,
    duration: std::time::Duration,
    produced_bytes: u64,
    error_type: Option<&str>,
) -> Value {
    let mut v = json!({
        "requestId": request_id, "status": status,
        "metrics": {"durationMs": ms(duration), "producedBytes": produced_bytes}
    });
    if let Some(e) = error_type {
        v["errorType"] = json!(e);
    }
    v
}

/// `platform.report`.
pub fn report(
    request_id: &str,
    status: &str,
    duration: std::time::Duration,
    memory_size_mb: u64,
    max_memory_used_mb: u64,
    init_duration: Option<std::time::Duration>,
) -> Value {
    let billed = (duration.as_secs_f64() * 1000.0).ceil().max(1.0) as u64;
    let mut metrics = json!({
        "durationMs": ms(duration), "billedDurationMs": billed,
        "memorySizeMB": memory_size_mb, "maxMemoryUsedMB": max_memory_used_mb
    });
    if let Some(i) = init_duration {
        metrics["initDurationMs"] = json!(ms(i));
    }
    json!({"requestId": request_id, "status": status, "metrics": metrics})
}

/// `platform.extension`.
pub fn extension(name: &str, events: &[&str]) -> Value {
    json!({"name": name, "state": "Ready", "events": events})
}

/// `platform.telemetrySubscription`.
pub fn telemetry_subscription(name: &str, types: &[&str]) -> Value {
    json!({"name": name, "state": "Subscribed", "types": types})
}

/// `platform.logsDropped`.
pub fn logs_dropped(records: u64, bytes: u64) -> Value {
    json!({
        "reason": "Some logs were dropped because the subscriber could not keep up",
        "droppedRecords": records, "droppedBytes": bytes
    })
}

/// `platform.restoreStart`.
pub fn restore_start(function: &str, version: &str) -> Value {
    json!({"functionName": function, "functionVersion": version})
}

/// `platform.restoreRuntimeDone`.
pub fn restore_runtime_done(status: &str, error_type: Option<&str>) -> Value {
    let mut v = json!({"status": status});
    if let Some(e) = error_type {
        v["errorType"] = json!(e);
    }
    v
}

/// `platform.restoreReport`.
pub fn restore_report(status: &str, duration: std::time::Duration) -> Value {
    json!({"status": status, "metrics": {"durationMs": ms(duration)}})
}
