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
    backlog: Mutex<VecDeque<(Kind, Record)>>,
    backlog_open: AtomicBool,
}

/// RFC 3339 UTC with milliseconds, as the Telemetry API writes times.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

fn serialize(kind_type: &str, record: Value) -> Record {
    let v = serde_json::json!({"time": now_rfc3339(), "type": kind_type, "record": record});
    Arc::from(v.to_string())
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

    fn push(&self, kind: Kind, record: Record) {
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
            s.push(&record);
        }
    }

    /// A `platform.*` record.
    pub fn platform(&self, record_type: &str, record: Value) {
        if self.active() {
            self.push(Kind::Platform, serialize(record_type, record));
        }
    }

    /// One line of the runtime's stdout/stderr.
    pub fn function_line(&self, line: &[u8]) {
        if self.active() {
            let text = String::from_utf8_lossy(line);
            self.push(
                Kind::Function,
                serialize("function", Value::String(text.into_owned())),
            );
        }
    }

    /// One line of an extension's output.
    pub fn extension_line(&self, line: &[u8]) {
        if self.active() {
            let text = String::from_utf8_lossy(line);
            self.push(
                Kind::Extension,
                serialize("extension", Value::String(text.into_owned())),
            );
        }
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
                s.push(record);
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
