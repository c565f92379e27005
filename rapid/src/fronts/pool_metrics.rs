//! The pool's metrics in lambda mode, read from every function's sandbox at
//! each scrape: `rapid_sandboxes{function,state}`,
//! `rapid_concurrency_in_use{function}`, `rapid_queue_depth{function}`,
//! `rapid_cold_starts_total{function}`, `rapid_throttles_total{function}`,
//! `rapid_invokes_total{function,outcome}` and
//! `rapid_invoke_duration_seconds{function}` — what KEDA, the HPA and
//! Knative scale on.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, NoLabelSet};
use prometheus_client::metrics::MetricType;

use crate::sandbox::{FunctionTable, Outcome};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FunctionLabel {
    function: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    function: String,
    state: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    function: String,
    outcome: &'static str,
}

/// Reads the table's sandboxes at each scrape.
pub struct PoolMetrics {
    /// The functions.
    pub table: FunctionTable,
    /// Whether `rapid_invokes{function,outcome}` is exposed here (not when
    /// the OpenFaaS front exposes its own `rapid_invokes{outcome}`).
    pub invokes: bool,
}

impl std::fmt::Debug for PoolMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PoolMetrics")
    }
}

fn gauges<'a>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: impl Iterator<Item = (String, i64)> + 'a,
) -> Result<(), std::fmt::Error> {
    let mut m = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (function, v) in series {
        m.encode_family(&FunctionLabel { function })?
            .encode_gauge(&v)?;
    }
    Ok(())
}

fn counters<'a>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: impl Iterator<Item = (String, u64)> + 'a,
) -> Result<(), std::fmt::Error> {
    let mut m = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (function, v) in series {
        m.encode_family(&FunctionLabel { function })?
            .encode_counter::<NoLabelSet, _, u64>(&v, None)?;
    }
    Ok(())
}

impl Collector for PoolMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let t = &self.table;
        let name = |f: &crate::sandbox::Resolved| f.id.name.clone();
        {
            let mut m = encoder.encode_descriptor(
                "rapid_sandboxes",
                "Sandboxes of each function, by state (starting, idle, busy)",
                None,
                MetricType::Gauge,
            )?;
            for f in t.iter() {
                let l = f.sandbox.load();
                for (state, n) in [("starting", l.starting), ("idle", l.idle), ("busy", l.busy)] {
                    m.encode_family(&StateLabels {
                        function: name(f),
                        state,
                    })?
                    .encode_gauge(&(n as i64))?;
                }
            }
        }
        gauges(
            &mut encoder,
            "rapid_concurrency_in_use",
            "Invocations running now",
            t.iter().map(|f| (name(f), f.sandbox.load().running as i64)),
        )?;
        gauges(
            &mut encoder,
            "rapid_queue_depth",
            "Invocations waiting for a sandbox",
            t.iter().map(|f| (name(f), f.sandbox.load().queued as i64)),
        )?;
        counters(
            &mut encoder,
            "rapid_cold_starts",
            "Sandboxes started (each one's init)",
            t.iter().map(|f| (name(f), f.sandbox.stats().inits())),
        )?;
        counters(
            &mut encoder,
            "rapid_throttles",
            "Invocations refused because every sandbox was busy and the queue full",
            t.iter().map(|f| (name(f), f.sandbox.stats().throttles())),
        )?;
        if self.invokes {
            let mut m = encoder.encode_descriptor(
                "rapid_invokes",
                "Invocations that reached a sandbox, by outcome",
                None,
                MetricType::Counter,
            )?;
            for f in t.iter() {
                for o in Outcome::ALL {
                    m.encode_family(&OutcomeLabels {
                        function: name(f),
                        outcome: o.label(),
                    })?
                    .encode_counter::<NoLabelSet, _, u64>(&f.sandbox.stats().invokes(o), None)?;
                }
            }
        }
        let mut m = encoder.encode_descriptor(
            "rapid_invoke_duration_seconds",
            "Time from an invocation's arrival to its answer",
            None,
            MetricType::Histogram,
        )?;
        for f in t.iter() {
            let d = f.sandbox.stats().durations();
            m.encode_family(&FunctionLabel { function: name(f) })?
                .encode_histogram::<NoLabelSet>(d.sum_seconds, d.count, &d.buckets, None)?;
        }
        Ok(())
    }
}
