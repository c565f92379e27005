//! `rapid-bench lmi`: Lambda Managed Instances mode against the classic
//! one, side by side in one run. The same function — the real
//! `lambda_runtime` `run_concurrent` (the tests' fx-lmi), a handler that
//! waits 5 ms — with `AWS_LAMBDA_MAX_CONCURRENCY=8` (one runtime process,
//! eight workers) and with the variable unset (one invoke at a time), under
//! 8 closed-loop clients over kept connections.
//!
//! With `--base PATH --echo PATH`, also the classic path's cost: the warm
//! invoke p50 of this rapid against the binary before the change (the echo
//! function, one client), alternated round by round in the same run.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::client::{interleaved, Conn};
use crate::procs;
use crate::INVOKE;

/// Options.
pub struct Opts {
    pub rapid: PathBuf,
    /// The fx-lmi function (`{"sleep_ms":N}`).
    pub function: PathBuf,
    pub out: Option<PathBuf>,
    pub quick: bool,
    /// The rapid before the change, and its commit (for the label).
    pub base: Option<(PathBuf, String)>,
    /// The echo function (for the classic path's latency).
    pub echo: Option<PathBuf>,
}

const CLIENTS: usize = 8;
const WAIT: &[u8] = br#"{"sleep_ms":5}"#;

/// `CLIENTS` connections invoking back to back for `secs`: answers per
/// second. Every answer must be a 200 without a function error.
fn throughput(addr: SocketAddr, secs: f64) -> std::io::Result<f64> {
    let until = Instant::now() + Duration::from_secs_f64(secs);
    let started = Instant::now();
    let counts: Vec<std::io::Result<u64>> = std::thread::scope(|s| {
        let calls: Vec<_> = (0..CLIENTS)
            .map(|_| {
                s.spawn(move || {
                    let mut c = Conn::connect(addr, Duration::from_secs(10))?;
                    let mut n = 0;
                    while Instant::now() < until {
                        let (status, got) = c.post(INVOKE, WAIT)?;
                        if status != 200
                            || !got.starts_with(br#"{"#)
                            || got.windows(6).any(|w| w == b"errorT")
                        {
                            return Err(std::io::Error::other(format!(
                                "{status}: {}",
                                String::from_utf8_lossy(&got)
                            )));
                        }
                        n += 1;
                    }
                    Ok(n)
                })
            })
            .collect();
        calls
            .into_iter()
            .map(|c| {
                c.join()
                    .unwrap_or_else(|_| Err(std::io::Error::other("client panicked")))
            })
            .collect()
    });
    let total = started.elapsed().as_secs_f64();
    let mut sum = 0;
    for c in counts {
        sum += c?;
    }
    Ok(sum as f64 / total)
}

fn start(o: &Opts, env: &[(&str, &str)]) -> std::io::Result<procs::Proc> {
    let p = procs::rapid_env(&o.rapid, &o.function, &[], None, env)?;
    // Listening and warm: one invoke answered.
    let mut c = Conn::connect(p.addr, Duration::from_secs(10))?;
    c.post(INVOKE, WAIT)?;
    Ok(p)
}

/// Run the LMI bench; the markdown section.
pub fn run(o: &Opts) -> std::io::Result<String> {
    let rounds = if o.quick { 2 } else { 5 };
    let secs = if o.quick { 1.0 } else { 3.0 };
    eprintln!(
        "rapid-bench lmi: a 5 ms function, {CLIENTS} clients, AWS_LAMBDA_MAX_CONCURRENCY=8 / unset"
    );
    let lmi = start(o, &[("AWS_LAMBDA_MAX_CONCURRENCY", "8")])?;
    let classic = start(o, &[])?;
    let (mut l, mut c) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        l.push(throughput(lmi.addr, secs)?);
        c.push(throughput(classic.addr, secs)?);
    }
    drop((lmi, classic));
    let (l, c) = (crate::median_f64(l), crate::median_f64(c));
    let x = if c > 0.0 { l / c } else { 0.0 };
    let mark = if x >= 6.0 { "✅" } else { "❌" };
    let classic = match (&o.base, &o.echo) {
        (Some((base, commit)), Some(echo)) => classic_cost(o, base, commit, echo)?,
        _ => String::new(),
    };
    Ok(format!(
        "## Lambda Managed Instances\n\nMeasured by `make bench-lmi` (`rapid-bench lmi`) on {}: the real `lambda_runtime::run_concurrent` (fx-lmi), a handler that waits 5 ms, {CLIENTS} closed-loop clients over kept connections; both rapids side by side in one run, {rounds} alternating rounds of {secs} s, medians.\n\n\
         | figure | measured | target |\n|---|---|---|\n\
         | throughput with `AWS_LAMBDA_MAX_CONCURRENCY=8` / with it unset | {l:.0} / {c:.0} per s = {x:.2}× | ≥ 6× {mark} |\n{classic}",
        crate::report::date()
    ))
}

/// The classic path: warm invoke p50, this rapid / the base, alternated.
fn classic_cost(
    o: &Opts,
    base: &std::path::Path,
    commit: &str,
    echo: &std::path::Path,
) -> std::io::Result<String> {
    let (rounds, per_round) = if o.quick { (3, 1_000) } else { (8, 4_000) };
    eprintln!("rapid-bench lmi: classic warm invokes, new / base {commit} ({rounds} rounds of {per_round})");
    let new = procs::rapid(&o.rapid, echo, &[], None)?;
    let old = procs::rapid(base, echo, &[], None)?;
    let lat = interleaved(
        &[new.addr, old.addr],
        INVOKE,
        1_000,
        rounds,
        per_round,
        Duration::from_secs(if o.quick { 30 } else { 240 }),
    )?;
    drop((new, old));
    let (n, b) = (lat[0].p50_us, lat[1].p50_us);
    let x = if b > 0.0 { n / b } else { 0.0 };
    let mark = if x <= 1.03 { "✅" } else { "❌" };
    Ok(format!(
        "| classic path: warm invoke p50 (echo function, 1 client), new / base `{commit}` (before issue 14), {rounds} alternated rounds of {per_round} | {n:.0} / {b:.0} µs = {x:.3} | ≤ 1.03 {mark} |\n"
    ))
}
