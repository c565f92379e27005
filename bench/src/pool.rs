//! `rapid-bench pool`: the pool's figures, each pair measured side by side
//! in one run.
//!
//! * a function that waits 5 ms, 4 clients: `--concurrency 4` against 1
//!   (throughput), and its p50 against one client's;
//! * the CPU-bound echo function, 4 clients: `--concurrency 4` against 1;
//! * one-shot, one client back to back: `--one-shot --concurrency 3` against
//!   `--concurrency 1`; and a runtime whose init takes 50 ms with invokes
//!   25 ms apart against the warm p50;
//! * rapid's RSS with 16 warm sandboxes against 1;
//! * a sandbox started on demand: rapid's share of the cold start.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::client::{summarise, Conn, Latency, BODY};
use crate::procs::{self, memory_kib};
use crate::INVOKE;

/// Options.
pub struct Opts {
    pub rapid: PathBuf,
    /// The echo function.
    pub function: PathBuf,
    /// A function that sleeps `{"sleep_ms":N}` (the tests' fx-lambda).
    pub sleeper: PathBuf,
    pub out: Option<PathBuf>,
    pub quick: bool,
}

/// `clients` connections posting `body` back to back for `secs`; every
/// answer must be 200 with `expect` as its body.
fn closed_loop(
    addr: SocketAddr,
    clients: usize,
    body: &[u8],
    expect: &[u8],
    secs: f64,
    gap: Option<Duration>,
) -> std::io::Result<Latency> {
    let until = Instant::now() + Duration::from_secs_f64(secs);
    let started = Instant::now();
    let results: Vec<std::io::Result<Vec<Duration>>> = std::thread::scope(|s| {
        let calls: Vec<_> = (0..clients)
            .map(|_| {
                s.spawn(move || {
                    let mut c = Conn::connect(addr, Duration::from_secs(10))?;
                    let mut v = Vec::new();
                    while Instant::now() < until {
                        let t = Instant::now();
                        let (status, got) = c.post(INVOKE, body)?;
                        v.push(t.elapsed());
                        if status != 200 || got != expect {
                            return Err(std::io::Error::other(format!(
                                "{status}: {}",
                                String::from_utf8_lossy(&got)
                            )));
                        }
                        if let Some(g) = gap {
                            std::thread::sleep(g);
                        }
                    }
                    Ok(v)
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
    let total = started.elapsed();
    let mut all = Vec::new();
    for r in results {
        all.extend(r?);
    }
    Ok(summarise(all, total))
}

fn rapid(o: &Opts, function: &Path, extra: &[&str]) -> std::io::Result<procs::Proc> {
    let extra: Vec<String> = extra.iter().map(|s| (*s).to_owned()).collect();
    let p = procs::rapid(&o.rapid, function, &extra, None)?;
    // Listening and warm: one invoke answered.
    let mut c = Conn::connect(p.addr, Duration::from_secs(10))?;
    c.post(INVOKE, BODY)?;
    Ok(p)
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        0.0
    }
}

fn mark(ok: bool) -> &'static str {
    if ok {
        "✅"
    } else {
        "❌"
    }
}

/// Run the pool bench; the markdown section.
pub fn run(o: &Opts) -> std::io::Result<String> {
    let rounds = if o.quick { 2 } else { 3 };
    let secs = if o.quick { 1.5 } else { 3.0 };
    let mut md = String::new();

    // 1. A function that waits 5 ms, 4 clients.
    eprintln!("rapid-bench pool: a 5 ms function, 4 clients, --concurrency 4 / 1");
    let wait_body = br#"{"sleep_ms":5}"#;
    let c4 = rapid(o, &o.sleeper, &["--concurrency", "4", "--min-warm", "4"])?;
    let c1 = rapid(o, &o.sleeper, &["--concurrency", "1"])?;
    let (mut t4, mut t1, mut one, mut p4) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        let a = closed_loop(c4.addr, 4, wait_body, wait_body, secs, None)?;
        t4.push(a.per_sec);
        p4.push(a.p50_us);
        t1.push(closed_loop(c1.addr, 4, wait_body, wait_body, secs, None)?.per_sec);
        one.push(closed_loop(c4.addr, 1, wait_body, wait_body, secs, None)?.p50_us);
    }
    drop((c4, c1));
    let (t4, t1, one, p4) = (
        crate::median_f64(t4),
        crate::median_f64(t1),
        crate::median_f64(one),
        crate::median_f64(p4),
    );
    let wait_x = ratio(t4, t1);
    let wait_p = ratio(p4, one);

    // 2. The CPU-bound echo function, 4 clients.
    eprintln!("rapid-bench pool: echo, 4 clients, --concurrency 4 / 1");
    let e4 = rapid(o, &o.function, &["--concurrency", "4", "--min-warm", "4"])?;
    let e1 = rapid(o, &o.function, &["--concurrency", "1"])?;
    let (mut a4, mut a1) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        a4.push(closed_loop(e4.addr, 4, BODY, BODY, secs, None)?.per_sec);
        a1.push(closed_loop(e1.addr, 4, BODY, BODY, secs, None)?.per_sec);
    }
    drop((e4, e1));
    let (a4, a1) = (crate::median_f64(a4), crate::median_f64(a1));
    let echo_x = ratio(a4, a1);

    // 3. One-shot, back to back.
    eprintln!("rapid-bench pool: one-shot back to back, --concurrency 3 / 1");
    let s3 = rapid(
        o,
        &o.function,
        &["--one-shot", "--concurrency", "3", "--min-warm", "3"],
    )?;
    let s1 = rapid(o, &o.function, &["--one-shot", "--concurrency", "1"])?;
    let (mut o3, mut o1) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        o3.push(closed_loop(s3.addr, 1, BODY, BODY, secs, None)?.per_sec);
        o1.push(closed_loop(s1.addr, 1, BODY, BODY, secs, None)?.per_sec);
    }
    drop((s3, s1));
    let (o3, o1) = (crate::median_f64(o3), crate::median_f64(o1));
    let shot_x = ratio(o3, o1);

    // A runtime whose init takes 50 ms, invokes 25 ms apart, against warm.
    eprintln!("rapid-bench pool: one-shot, a 50 ms init, invokes 25 ms apart");
    let dir = std::env::temp_dir().join(format!("rapid-bench-pool-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let slow = dir.join("bootstrap");
    std::fs::write(
        &slow,
        format!("#!/bin/sh\nsleep 0.05\nexec {}\n", o.function.display()),
    )?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&slow, std::fs::Permissions::from_mode(0o755))?;
    }
    let spaced = rapid(
        o,
        &slow,
        &["--one-shot", "--concurrency", "3", "--min-warm", "3"],
    )?;
    let warm = rapid(o, &o.function, &[])?;
    let gap = Some(Duration::from_millis(25));
    let (mut sp, mut wp) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        sp.push(closed_loop(spaced.addr, 1, BODY, BODY, secs, gap)?.p50_us);
        wp.push(closed_loop(warm.addr, 1, BODY, BODY, secs, gap)?.p50_us);
    }
    drop((spaced, warm));
    let _ = std::fs::remove_dir_all(&dir);
    let (sp, wp) = (crate::median_f64(sp), crate::median_f64(wp));
    let spaced_x = ratio(sp, wp);

    // 4. RSS per extra sandbox.
    eprintln!("rapid-bench pool: RSS with 16 warm sandboxes / 1");
    let r16 = rapid(o, &o.function, &["--concurrency", "16", "--min-warm", "16"])?;
    let r1 = rapid(o, &o.function, &[])?;
    // Every sandbox initialised and used once.
    closed_loop(r16.addr, 16, BODY, BODY, 1.0, None)?;
    std::thread::sleep(Duration::from_millis(300));
    let (rss16, _) = memory_kib(r16.pid());
    let (rss1, _) = memory_kib(r1.pid());
    drop((r16, r1));
    let per = rss16.saturating_sub(rss1) as f64 / 15.0;

    // 5. A sandbox started on demand, beside today's cold start (rapid
    // started with its one sandbox, until the first answer).
    eprintln!("rapid-bench pool: a cold start on demand / rapid's own cold start");
    let n = if o.quick { 5 } else { 15 };
    let (mut single, mut demand) = (Vec::new(), Vec::new());
    for _ in 0..n {
        let t = Instant::now();
        let p = procs::rapid(&o.rapid, &o.function, &[], None)?;
        let mut c = Conn::connect(p.addr, Duration::from_secs(10))?;
        let (status, _) = c.post(INVOKE, BODY)?;
        single.push(t.elapsed().as_secs_f64() * 1e3);
        drop(p);
        if status != 200 {
            return Err(std::io::Error::other(format!(
                "cold invoke answered {status}"
            )));
        }
        let p = procs::rapid(
            &o.rapid,
            &o.function,
            &[
                "--concurrency".into(),
                "2".into(),
                "--min-warm".into(),
                "0".into(),
            ],
            None,
        )?;
        let mut c = Conn::connect(p.addr, Duration::from_secs(10))?;
        let t = Instant::now();
        let (status, got) = c.post(INVOKE, BODY)?;
        demand.push(t.elapsed().as_secs_f64() * 1e3);
        if status != 200 || got != BODY {
            return Err(std::io::Error::other(format!(
                "cold invoke answered {status}"
            )));
        }
    }
    let (single, demand) = (crate::median_f64(single), crate::median_f64(demand));
    let cold_x = ratio(demand, single);

    md.push_str(&format!(
        "## The pool\n\nMeasured by `make bench-pool` (`rapid-bench pool`) on {}: each pair side by side in one run, {rounds} alternating rounds of {secs} s, medians; closed-loop clients over kept connections.\n\n",
        crate::report::date()
    ));
    md.push_str("| figure | measured | target |\n|---|---|---|\n");
    md.push_str(&format!(
        "| 5 ms function, 4 clients: `--concurrency 4` / `--concurrency 1` throughput | {t4:.0} / {t1:.0} per s = {wait_x:.2}× | ≥ 3.5× {} |\n",
        mark(wait_x >= 3.5)
    ));
    md.push_str(&format!(
        "| its p50 at 4 clients / one client's p50 | {p4:.0} / {one:.0} µs = {wait_p:.2}× | ≤ 1.2× {} |\n",
        mark(wait_p <= 1.2)
    ));
    md.push_str(&format!(
        "| echo (CPU-bound), 4 clients: `--concurrency 4` / `--concurrency 1` throughput | {a4:.0} / {a1:.0} per s = {echo_x:.2}× | ≥ 1.0× {} |\n",
        mark(echo_x >= 1.0)
    ));
    md.push_str(&format!(
        "| one-shot, one client back to back: `--concurrency 3` / `--concurrency 1` throughput | {o3:.0} / {o1:.0} per s = {shot_x:.2}× | ≥ 1.5× {} |\n",
        mark(shot_x >= 1.5)
    ));
    md.push_str(&format!(
        "| one-shot, 50 ms init, invokes 25 ms apart, `--concurrency 3`: p50 / warm p50 | {sp:.0} / {wp:.0} µs = {spaced_x:.2}× | ≤ 1.5× {} |\n",
        mark(spaced_x <= 1.5)
    ));
    md.push_str(&format!(
        "| rapid's RSS: 16 warm sandboxes / 1 | {:.1} / {:.1} MiB = {per:.0} KiB per extra sandbox | ≤ 512 KiB {} |\n",
        rss16 as f64 / 1024.0,
        rss1 as f64 / 1024.0,
        mark(per <= 512.0)
    ));
    md.push_str(&format!(
        "| a sandbox started on demand (`--min-warm 0`, invoke → answer) / today's cold start (rapid started → first answer) | {demand:.1} / {single:.1} ms = {cold_x:.2}× | no worse (≤ 1.0×) {} |\n",
        mark(cold_x <= 1.0)
    ));
    Ok(md)
}
