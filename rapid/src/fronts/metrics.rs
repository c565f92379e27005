//! Prometheus `/metrics`, through `prometheus-client`: the OpenFaaS front's
//! request metrics (`http_requests_total`, `http_request_duration_seconds`,
//! `http_requests_in_flight`, `rapid_invokes_total{outcome}`) and the
//! sandboxes' counters (`rapid_resets_total`), read at each scrape.
//!
//! The exposition is OpenMetrics text; it is labelled as such when the
//! scraper asks for it, and as Prometheus text otherwise (Prometheus parses
//! either).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use runtime_api::gauge::Gauge;

use crate::sandbox::FunctionTable;

/// The methods that get their own series; clients may send any name, and
/// every other one is counted as `other` (the label set stays bounded).
const METHODS: [(Method, &str); 9] = [
    (Method::GET, "get"),
    (Method::HEAD, "head"),
    (Method::POST, "post"),
    (Method::PUT, "put"),
    (Method::DELETE, "delete"),
    (Method::CONNECT, "connect"),
    (Method::OPTIONS, "options"),
    (Method::TRACE, "trace"),
    (Method::PATCH, "patch"),
];

/// Prometheus' default histogram buckets, seconds.
const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    code: u16,
    method: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

pub use crate::sandbox::Outcome;

type Durations = Family<HttpLabels, Histogram, fn() -> Histogram>;

fn histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

/// rapid's metrics registry.
#[derive(Debug)]
pub struct Metrics {
    requests: Family<HttpLabels, Counter>,
    durations: Durations,
    /// The series seen so far, looked up without hashing (a handful of
    /// method and status pairs): the families' own handles.
    seen: std::sync::Mutex<Vec<(HttpLabels, Counter, Histogram)>>,
    /// `rapid_invokes_total` by outcome: success, error, timeout.
    invokes: [Counter; 3],
    registry: Registry,
}

/// `http_requests_in_flight`, read from the front's count at each scrape.
#[derive(Debug)]
struct InFlight(Arc<Gauge>);

impl Collector for InFlight {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let g = ConstGauge::new(self.0.count() as i64);
        let m = encoder.encode_descriptor(
            "http_requests_in_flight",
            "Requests being served",
            None,
            g.metric_type(),
        )?;
        g.encode(m)
    }
}

/// `rapid_resets_total`, summed over the sandboxes at each scrape.
struct Resets(FunctionTable);

impl std::fmt::Debug for Resets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Resets")
    }
}

impl Collector for Resets {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let total: u64 = self.0.iter().map(|f| f.sandbox.stats().resets()).sum();
        let c = ConstCounter::new(total);
        let m = encoder.encode_descriptor(
            "rapid_resets",
            "Times the function was replaced (a reset, a crash restart, a one-shot recycle)",
            None,
            c.metric_type(),
        )?;
        c.encode(m)
    }
}

impl Metrics {
    /// The registry over `table`'s sandboxes; `in_flight` is the OpenFaaS
    /// front's count of requests being served. `pools`: lambda mode, with
    /// the pool's metrics per function; their `rapid_invokes{function,outcome}`
    /// replaces the front's `rapid_invokes{outcome}` unless the OpenFaaS
    /// front is on (`front`), whose count it stays.
    pub fn new(
        table: FunctionTable,
        in_flight: Arc<Gauge>,
        pools: bool,
        front: bool,
    ) -> Arc<Metrics> {
        let requests = Family::<HttpLabels, Counter>::default();
        let durations: Durations = Family::new_with_constructor(histogram);
        let family = Family::<OutcomeLabels, Counter>::default();
        let invokes = Outcome::ALL.map(|o| {
            family
                .get_or_create(&OutcomeLabels { outcome: o.label() })
                .clone()
        });
        let mut registry = Registry::default();
        registry.register(
            "http_requests",
            "Requests answered, by method and status code",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time to answer a request, body included",
            durations.clone(),
        );
        registry.register_collector(Box::new(InFlight(in_flight)));
        if pools {
            registry.register_collector(Box::new(super::pool_metrics::PoolMetrics {
                table: table.clone(),
                invokes: !front,
            }));
        }
        if front || !pools {
            registry.register(
                "rapid_invokes",
                "Calls that reached the function, by outcome",
                family,
            );
        }
        registry.register_collector(Box::new(Resets(table)));
        Arc::new(Metrics {
            requests,
            durations,
            seen: std::sync::Mutex::default(),
            invokes,
            registry,
        })
    }

    /// A request was answered (its body sent or abandoned) after `took`.
    pub fn finished(&self, method: &Method, code: u16, took: Duration) {
        let method = METHODS
            .iter()
            .find(|(m, _)| m == method)
            .map_or("other", |(_, name)| name);
        let labels = HttpLabels { code, method };
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let i = match seen.iter().position(|(l, _, _)| *l == labels) {
            Some(i) => i,
            None => {
                let c = self.requests.get_or_create(&labels).clone();
                let h = self.durations.get_or_create(&labels).clone();
                seen.push((labels, c, h));
                seen.len() - 1
            }
        };
        let (_, counter, histogram) = &seen[i];
        counter.inc();
        histogram.observe(took.as_secs_f64());
    }

    /// A call reached the function and ended with `outcome`.
    pub fn invoked(&self, outcome: Outcome) {
        self.invokes[outcome as usize].inc();
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(2048);
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::warn!(error = %e, "cannot encode the metrics");
        }
        out
    }
}

/// The `/metrics` router.
pub fn router(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .fallback(|| async { (StatusCode::NOT_FOUND, "metrics are at /metrics\n").into_response() })
        .with_state(metrics)
}

async fn scrape(State(metrics): State<Arc<Metrics>>, headers: HeaderMap) -> Response {
    let openmetrics = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/openmetrics-text"));
    let ct = if openmetrics {
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    } else {
        "text/plain; version=0.0.4; charset=utf-8"
    };
    let mut r = metrics.render().into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(text: &str, key: &str) -> Option<f64> {
        text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            (k == key).then(|| v.parse().ok()).flatten()
        })
    }

    #[test]
    fn exposition() {
        let in_flight = Arc::new(Gauge::default());
        let m = Metrics::new(FunctionTable::default(), in_flight.clone(), false, true);
        m.finished(&Method::POST, 200, Duration::from_millis(3));
        m.finished(&Method::POST, 200, Duration::from_millis(300));
        let custom = Method::from_bytes(b"X-CUSTOM").unwrap();
        m.finished(&custom, 405, Duration::ZERO);
        m.finished(&custom, 405, Duration::ZERO);
        let (_serving, _) = in_flight.enter();
        m.invoked(Outcome::Success);
        let t = m.render();
        assert_eq!(
            sample(&t, "http_requests_total{code=\"200\",method=\"post\"}"),
            Some(2.0),
            "{t}"
        );
        // prometheus-client writes `le` before the family's labels.
        assert_eq!(
            sample(
                &t,
                "http_request_duration_seconds_bucket{le=\"0.005\",code=\"200\",method=\"post\"}"
            ),
            Some(1.0),
            "{t}"
        );
        assert_eq!(
            sample(
                &t,
                "http_request_duration_seconds_bucket{le=\"+Inf\",code=\"200\",method=\"post\"}"
            ),
            Some(2.0),
            "{t}"
        );
        assert!(t.ends_with("# EOF\n"), "OpenMetrics text: {t}");
        assert_eq!(sample(&t, "http_requests_in_flight"), Some(1.0), "{t}");
        assert_eq!(
            sample(&t, "http_requests_total{code=\"405\",method=\"other\"}"),
            Some(2.0)
        );
        assert_eq!(
            sample(&t, "rapid_invokes_total{outcome=\"success\"}"),
            Some(1.0)
        );
        assert_eq!(
            sample(&t, "rapid_invokes_total{outcome=\"timeout\"}"),
            Some(0.0)
        );
        assert_eq!(sample(&t, "rapid_resets_total"), Some(0.0), "{t}");
    }
}
