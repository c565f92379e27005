//! Telemetry fan-out (SPEC §6): every record goes to each subscriber that
//! wants its type, through a bounded queue per subscriber and a delivery task
//! per subscriber. Pushing never blocks and never waits on a subscriber: a full
//! queue drops the record and counts it; the count is reported to that
//! subscriber as a `platform.logsDropped` record.

mod delivery;
pub mod records;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use runtime_api::subscription::{Subscription, TelemetrySink};
use serde_json::Value;
use tokio::sync::Notify;

/// What a record is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `platform.*`.
    Platform,
    /// A line of the runtime's output.
    Function,
    /// A line of an extension's output.
    Extension,
}

/// Records of the current init, replayed to an extension that subscribes
/// during init (it cannot have subscribed before init started).
const INIT_BACKLOG: usize = 1_000;

/// One serialized record: `{"time","type","record"}`.
type Record = Arc<str>;

/// The Telemetry API schema versions whose records differ (the Logs API's
/// versions read as the oldest: string log records).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Schema {
    /// `2022-07-01` (and the Logs API).
    V20220701,
    /// `2022-12-13`: a JSON log line may be an object record.
    V20221213,
    /// `2025-01-29`: the fields docs/api.md lists ("Telemetry schema 2025-01-29").
    V20250129,
}

impl Schema {
    fn of(sub: &Subscription) -> Schema {
        match (sub.api, sub.schema_version.as_str()) {
            (runtime_api::subscription::SubscriptionApi::Telemetry, "2025-01-29") => {
                Schema::V20250129
            }
            (runtime_api::subscription::SubscriptionApi::Telemetry, "2022-12-13") => {
                Schema::V20221213
            }
            _ => Schema::V20220701,
        }
    }
}

/// A record as the schema versions shape it: `older` before `newer`'s version.
#[derive(Clone)]
struct Shapes {
    older: Record,
    newer: Option<(Schema, Record)>,
}

impl Shapes {
    fn one(record: Record) -> Shapes {
        Shapes {
            older: record,
            newer: None,
        }
    }

    fn for_schema(&self, schema: Schema) -> &Record {
        match &self.newer {
            Some((since, r)) if schema >= *since => r,
            _ => &self.older,
        }
    }
}

struct Queue {
    records: VecDeque<Record>,
    bytes: usize,
    /// When the oldest queued record arrived.
    oldest: Option<tokio::time::Instant>,
    dropped_records: u64,
    dropped_bytes: u64,
    closed: bool,
}

/// A subscriber's state, shared by producers and its delivery task.
struct Subscriber {
    sub: Subscription,
    schema: Schema,
    queue: Mutex<Queue>,
    wake: Notify,
}

impl Subscriber {
    fn wants(&self, kind: Kind) -> bool {
        match kind {
            Kind::Platform => self.sub.platform,
            Kind::Function => self.sub.function,
            Kind::Extension => self.sub.extension_logs,
        }
    }

    /// Most records and bytes the queue holds before it drops.
    fn caps(&self) -> (usize, usize) {
        let b = self.sub.buffering;
        (b.max_items as usize * 2, b.max_bytes as usize * 4)
    }

    fn push(&self, record: &Record) {
        let (cap_items, cap_bytes) = self.caps();
        let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        if q.closed {
            return;
        }
        if q.records.len() >= cap_items || q.bytes + record.len() > cap_bytes {
            q.dropped_records += 1;
            q.dropped_bytes += record.len() as u64;
            return;
        }
        q.bytes += record.len();
        q.records.push_back(record.clone());
        let first = q.oldest.is_none();
        if first {
            q.oldest = Some(tokio::time::Instant::now());
        }
        let full = q.records.len() >= self.sub.buffering.max_items as usize
            || q.bytes >= self.sub.buffering.max_bytes as usize;
        drop(q);
        if first || full {
            self.wake.notify_one();
        }
    }
}

/// The fan-out. Cheap to call when nobody subscribed.
pub struct Hub {
    subscribers: Mutex<Vec<Arc<Subscriber>>>,
    any: AtomicBool,
    backlog: Mutex<VecDeque<(Kind, Shapes)>>,
    backlog_open: AtomicBool,
}

/// RFC 3339 UTC with milliseconds, as the Telemetry API writes times.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

fn serialize(kind_type: &str, record: Value) -> Record {
    Arc::from(platform_json(kind_type, record))
}

/// A record as one JSON line: `{"time","type","record"}` — the Telemetry
/// API's event and Lambda's JSON platform log line alike.
pub fn platform_json(kind_type: &str, record: Value) -> String {
    serde_json::json!({"time": now_rfc3339(), "type": kind_type, "record": record}).to_string()
}

/// A log line as an object record: the line's own JSON object, when it is one.
fn object_record(text: &str) -> Option<Value> {
    if !text.trim_start().starts_with('{') {
        return None;
    }
    serde_json::from_str::<Value>(text)
        .ok()
        .filter(Value::is_object)
}

impl Hub {
    /// A hub with no subscribers.
    pub fn new() -> Arc<Hub> {
        Arc::new(Hub {
            subscribers: Mutex::new(Vec::new()),
            any: AtomicBool::new(false),
            backlog: Mutex::new(VecDeque::new()),
            backlog_open: AtomicBool::new(false),
        })
    }

    /// Whether anyone subscribed (producers skip building records otherwise,
    /// except for the init backlog).
    pub fn active(&self) -> bool {
        self.any.load(Ordering::Relaxed) || self.backlog_open.load(Ordering::Relaxed)
    }

    /// A new init starts: keep its records for late (init-time) subscribers.
    pub fn init_started(&self) {
        self.backlog
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        self.backlog_open.store(true, Ordering::Relaxed);
    }

    /// Init is over: subscriptions are closed, the backlog is dropped.
    pub fn init_finished(&self) {
        self.backlog_open.store(false, Ordering::Relaxed);
        self.backlog
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    fn push(&self, kind: Kind, record: Shapes) {
        if self.backlog_open.load(Ordering::Relaxed) {
            let mut b = self.backlog.lock().unwrap_or_else(|p| p.into_inner());
            if b.len() < INIT_BACKLOG {
                b.push_back((kind, record.clone()));
            }
        }
        if !self.any.load(Ordering::Relaxed) {
            return;
        }
        let subs = self.subscribers.lock().unwrap_or_else(|p| p.into_inner());
        for s in subs.iter().filter(|s| s.wants(kind)) {
            s.push(record.for_schema(s.schema));
        }
    }

    /// A `platform.*` record, the same in every schema version.
    pub fn platform(&self, record_type: &str, record: Value) {
        if self.active() {
            self.push(Kind::Platform, Shapes::one(serialize(record_type, record)));
        }
    }

    /// A `platform.*` record whose `2025-01-29` shape (`current`) differs
    /// from the older versions' (`older`).
    pub fn platform_versions(&self, record_type: &str, older: Value, current: Value) {
        if self.active() {
            self.push(
                Kind::Platform,
                Shapes {
                    older: serialize(record_type, older),
                    newer: Some((Schema::V20250129, serialize(record_type, current))),
                },
            );
        }
    }

    /// A log line: a string record; with the JSON log format, a line that is a
    /// JSON object is an object record from schema `2022-12-13` on.
    fn log_line(&self, kind: Kind, record_type: &str, line: &[u8], json: bool) {
        if self.active() {
            let text = String::from_utf8_lossy(line);
            let newer = json
                .then(|| object_record(&text))
                .flatten()
                .map(|o| (Schema::V20221213, serialize(record_type, o)));
            self.push(
                kind,
                Shapes {
                    older: serialize(record_type, Value::String(text.into_owned())),
                    newer,
                },
            );
        }
    }

    /// One line of the runtime's stdout/stderr; `json`: the function's log
    /// format is JSON.
    pub fn function_line(&self, line: &[u8], json: bool) {
        self.log_line(Kind::Function, "function", line, json);
    }

    /// One line of an extension's output.
    pub fn extension_line(&self, line: &[u8], json: bool) {
        self.log_line(Kind::Extension, "extension", line, json);
    }

    /// Deliver what is queued now, within `limit`, and end every subscription:
    /// the subscribers are extensions of a generation that is stopping.
    pub async fn flush(&self, limit: Duration) {
        let subs: Vec<Arc<Subscriber>> =
            std::mem::take(&mut *self.subscribers.lock().unwrap_or_else(|p| p.into_inner()));
        self.any.store(false, Ordering::Relaxed);
        if subs.is_empty() {
            return;
        }
        let all = async {
            for s in &subs {
                delivery::drain(s).await;
            }
        };
        let _ = tokio::time::timeout(limit, all).await;
        for s in subs {
            s.queue.lock().unwrap_or_else(|p| p.into_inner()).closed = true;
            s.wake.notify_one();
        }
    }
}

impl TelemetrySink for Hub {
    fn subscribe(&self, sub: Subscription) {
        let types: Vec<&str> = [
            (sub.platform, "platform"),
            (sub.function, "function"),
            (sub.extension_logs, "extension"),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, t)| *t)
        .collect();
        let name = sub.extension.clone();
        let s = Arc::new(Subscriber {
            schema: Schema::of(&sub),
            sub,
            queue: Mutex::new(Queue {
                records: VecDeque::new(),
                bytes: 0,
                oldest: None,
                dropped_records: 0,
                dropped_bytes: 0,
                closed: false,
            }),
            wake: Notify::new(),
        });
        // Replay this init's records, then deliver live ones.
        for (kind, record) in self
            .backlog
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            if s.wants(*kind) {
                s.push(record.for_schema(s.schema));
            }
        }
        tokio::spawn(delivery::run(s.clone()));
        self.subscribers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(s);
        self.any.store(true, Ordering::Relaxed);
        self.platform(
            "platform.telemetrySubscription",
            records::telemetry_subscription(&name, &types),
        );
    }
}

#[cfg(test)]
mod tests;
