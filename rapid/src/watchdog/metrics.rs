//! Prometheus metrics of the watchdog front, in the text exposition format:
//! `http_requests_total`, `http_request_duration_seconds`,
//! `http_requests_in_flight` (the names of-watchdog uses), plus
//! `rapid_invokes_total` and `rapid_resets_total`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::gauge::Gauge;

/// The methods that get their own series; clients may send any name, and
/// every other one is counted as `other` (the label set stays bounded).
const METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

/// Prometheus' default histogram buckets, seconds.
const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Debug, Default, Clone)]
struct Series {
    count: u64,
    sum: f64,
    /// Per bucket (not cumulative).
    buckets: [u64; BUCKETS.len()],
}

/// The metrics registry; one per watchdog.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Keyed by (method, status code).
    requests: Mutex<BTreeMap<(&'static str, u16), Series>>,
    /// Keyed by outcome label.
    invokes: Mutex<BTreeMap<&'static str, u64>>,
    /// Requests being served: the front holds a place here per request.
    pub in_flight: Arc<Gauge>,
    resets: AtomicU64,
}

impl Metrics {
    /// A request was answered (its body sent or abandoned) after `took`.
    pub fn finished(&self, method: &str, code: u16, took: Duration) {
        let secs = took.as_secs_f64();
        let method = METHODS
            .iter()
            .find(|m| **m == method)
            .copied()
            .unwrap_or("OTHER");
        let mut m = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        let s = m.entry((method, code)).or_default();
        s.count += 1;
        s.sum += secs;
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            s.buckets[i] += 1;
        }
    }

    /// A call reached the function and ended with `outcome`.
    pub fn invoked(&self, outcome: &'static str) {
        let mut m = self.invokes.lock().unwrap_or_else(|p| p.into_inner());
        *m.entry(outcome).or_default() += 1;
    }

    /// The function was replaced (restart after a crash, one-shot recycle).
    pub fn reset(&self) {
        self.resets.fetch_add(1, Ordering::Relaxed);
    }

    /// Requests being served now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.count()
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(2048);
        let requests = self
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        out.push_str("# HELP http_requests_total Requests answered, by method and status code.\n");
        out.push_str("# TYPE http_requests_total counter\n");
        for ((method, code), s) in &requests {
            let _ = writeln!(
                out,
                "http_requests_total{{code=\"{code}\",method=\"{}\"}} {}",
                method.to_ascii_lowercase(),
                s.count
            );
        }
        out.push_str(
            "# HELP http_request_duration_seconds Time to answer a request, body included.\n",
        );
        out.push_str("# TYPE http_request_duration_seconds histogram\n");
        for ((method, code), s) in &requests {
            let labels = format!("code=\"{code}\",method=\"{}\"", method.to_ascii_lowercase());
            let mut cumulative = 0;
            for (b, n) in BUCKETS.iter().zip(s.buckets) {
                cumulative += n;
                let _ = writeln!(
                    out,
                    "http_request_duration_seconds_bucket{{{labels},le=\"{b}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                s.count
            );
            let _ = writeln!(
                out,
                "http_request_duration_seconds_sum{{{labels}}} {}",
                s.sum
            );
            let _ = writeln!(
                out,
                "http_request_duration_seconds_count{{{labels}}} {}",
                s.count
            );
        }
        out.push_str("# HELP http_requests_in_flight Requests being served.\n");
        out.push_str("# TYPE http_requests_in_flight gauge\n");
        let _ = writeln!(out, "http_requests_in_flight {}", self.in_flight());
        out.push_str("# HELP rapid_invokes_total Calls that reached the function, by outcome.\n");
        out.push_str("# TYPE rapid_invokes_total counter\n");
        let invokes = self.invokes.lock().unwrap_or_else(|p| p.into_inner());
        for outcome in ["success", "error", "timeout"] {
            let _ = writeln!(
                out,
                "rapid_invokes_total{{outcome=\"{outcome}\"}} {}",
                invokes.get(outcome).copied().unwrap_or(0)
            );
        }
        out.push_str("# HELP rapid_resets_total Times the function was replaced (crash restart, one-shot recycle).\n");
        out.push_str("# TYPE rapid_resets_total counter\n");
        let _ = writeln!(
            out,
            "rapid_resets_total {}",
            self.resets.load(Ordering::Relaxed)
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition() {
        let m = Metrics::default();
        m.finished("POST", 200, Duration::from_millis(3));
        m.finished("POST", 200, Duration::from_millis(300));
        m.finished("X-CUSTOM-1", 405, Duration::ZERO);
        m.finished("X-CUSTOM-2", 405, Duration::ZERO);
        let (_serving, _) = m.in_flight.enter();
        m.invoked("success");
        m.reset();
        let t = m.render();
        assert!(t.contains("http_requests_total{code=\"200\",method=\"post\"} 2\n"));
        assert!(t.contains(
            "http_request_duration_seconds_bucket{code=\"200\",method=\"post\",le=\"0.005\"} 1\n"
        ));
        assert!(t.contains(
            "http_request_duration_seconds_bucket{code=\"200\",method=\"post\",le=\"0.5\"} 2\n"
        ));
        assert!(t.contains(
            "http_request_duration_seconds_bucket{code=\"200\",method=\"post\",le=\"+Inf\"} 2\n"
        ));
        assert!(t.contains("http_requests_in_flight 1\n"));
        assert!(t.contains("http_requests_total{code=\"405\",method=\"other\"} 2\n"));
        assert!(t.contains("rapid_invokes_total{outcome=\"success\"} 1\n"));
        assert!(t.contains("rapid_invokes_total{outcome=\"timeout\"} 0\n"));
        assert!(t.contains("rapid_resets_total 1\n"));
    }
}
