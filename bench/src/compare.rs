//! `rapid-bench compare`: the figures a change must keep, measured for the
//! new binary and the binary before the change side by side in one run,
//! alternating round by round (this machine's speed moves more between runs
//! than the bands a change must stay within).
//!
//! * warm invoke latency through the Invoke API (with the floor);
//! * rapid's RSS, idle and under load;
//! * watchdog http mode latency (wrk), each rapid with its own upstream;
//! * the inproc function's RSS and latency.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::client::{interleaved, Latency};
use crate::procs::{self, free_port, memory_kib, with_rss_sampler};
use crate::watchdog::{med, watchdog_front, wrk, Wrk, BODY};
use crate::INVOKE;

/// Options of the comparison.
pub struct Opts {
    pub rapid: PathBuf,
    pub base: PathBuf,
    pub function: PathBuf,
    pub inproc: PathBuf,
    pub base_inproc: PathBuf,
    pub label: String,
    pub out: Option<PathBuf>,
    pub quick: bool,
}

struct Side {
    warm: Latency,
    rss_idle_kib: u64,
    rss_load_kib: u64,
    http: Wrk,
    inproc: Wrk,
    inproc_idle_kib: u64,
    inproc_hwm_kib: u64,
}

/// Run the comparison; the markdown section.
pub fn run(o: &Opts) -> std::io::Result<String> {
    let dir = std::env::temp_dir().join(format!("rapid-bench-cmp-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let script = dir.join("post.lua");
    std::fs::write(
        &script,
        format!(
            "wrk.method = \"POST\"\nwrk.body = '{BODY}'\nwrk.headers[\"Content-Type\"] = \"application/json\"\n"
        ),
    )?;
    let r = measure(o, &script);
    let _ = std::fs::remove_dir_all(&dir);
    r
}

fn measure(o: &Opts, script: &Path) -> std::io::Result<String> {
    let (rounds, per_round, secs) = if o.quick {
        (3, 1_000, 2)
    } else {
        (8, 4_000, 4)
    };
    eprintln!(
        "rapid-bench compare: warm invokes, floor / new / base ({rounds} rounds of {per_round})"
    );
    let floor = procs::floor()?;
    let new = procs::rapid(&o.rapid, &o.function, &[], None)?;
    let base = procs::rapid(&o.base, &o.function, &[], None)?;
    // Warm both, then idle RSS.
    interleaved(
        &[new.addr, base.addr],
        INVOKE,
        50,
        1,
        10,
        Duration::from_secs(30),
    )?;
    std::thread::sleep(Duration::from_millis(300));
    let (new_idle, base_idle) = (memory_kib(new.pid()).0, memory_kib(base.pid()).0);
    let targets = [floor.addr, new.addr, base.addr];
    let limit = Duration::from_secs(if o.quick { 30 } else { 240 });
    let (lat, new_load) = with_rss_sampler(new.pid(), || {
        interleaved(&targets, INVOKE, 1_000, rounds, per_round, limit)
    });
    let lat = lat?;
    let base_load = memory_kib(base.pid()).1;
    drop((new, base));

    eprintln!("rapid-bench compare: watchdog http mode, new / base ({rounds} alternating wrk rounds of {secs} s)");
    let me = std::env::current_exe()?.display().to_string();
    // Each rapid starts its own upstream (this binary's floor server) as its function.
    let http_front = |bin: &Path| -> std::io::Result<procs::Proc> {
        let up: SocketAddr = format!("127.0.0.1:{}", free_port())
            .parse()
            .map_err(std::io::Error::other)?;
        let upstream = format!("http://{up}");
        watchdog_front(
            bin,
            &["--mode", "http", "--upstream-url", &upstream],
            &[&me, "floor-server", &up.to_string()],
        )
    };
    let mut new_http = http_front(&o.rapid)?;
    let mut base_http = http_front(&o.base)?;
    let (mut new_runs, mut base_runs) = (Vec::new(), Vec::new());
    for _ in 0..rounds.min(6) {
        new_runs.push(wrk(script, new_http.addr, secs)?);
        base_runs.push(wrk(script, base_http.addr, secs)?);
    }
    let _ = new_http.terminate(Duration::from_secs(5));
    let _ = base_http.terminate(Duration::from_secs(5));

    eprintln!("rapid-bench compare: inproc, new / base");
    let mut new_in = watchdog_front(&o.inproc, &[], &[])?;
    let mut base_in = watchdog_front(&o.base_inproc, &[], &[])?;
    std::thread::sleep(Duration::from_millis(200));
    let (new_in_idle, base_in_idle) = (memory_kib(new_in.pid()).0, memory_kib(base_in.pid()).0);
    let (mut new_in_runs, mut base_in_runs) = (Vec::new(), Vec::new());
    for _ in 0..rounds.min(3) {
        new_in_runs.push(wrk(script, new_in.addr, secs)?);
        base_in_runs.push(wrk(script, base_in.addr, secs)?);
    }
    let (new_in_hwm, base_in_hwm) = (memory_kib(new_in.pid()).1, memory_kib(base_in.pid()).1);
    let _ = new_in.terminate(Duration::from_secs(5));
    let _ = base_in.terminate(Duration::from_secs(5));
    drop(floor);

    let new = Side {
        warm: lat[1],
        rss_idle_kib: new_idle,
        rss_load_kib: new_load,
        http: med(&new_runs),
        inproc: med(&new_in_runs),
        inproc_idle_kib: new_in_idle,
        inproc_hwm_kib: new_in_hwm,
    };
    let base = Side {
        warm: lat[2],
        rss_idle_kib: base_idle,
        rss_load_kib: base_load,
        http: med(&base_runs),
        inproc: med(&base_in_runs),
        inproc_idle_kib: base_in_idle,
        inproc_hwm_kib: base_in_hwm,
    };
    Ok(markdown(o, &lat[0], &new, &base, rounds, per_round, secs))
}

fn markdown(
    o: &Opts,
    floor: &Latency,
    new: &Side,
    base: &Side,
    rounds: usize,
    per_round: usize,
    secs: u64,
) -> String {
    let mib = |k: u64| k as f64 / 1024.0;
    let mark = |ok: bool| if ok { "✅" } else { "❌" };
    let ratio = |a: f64, b: f64| a / b.max(1e-9);
    let mut s = String::new();
    s.push_str(&format!("## Before and after: {}\n\n", o.label));
    s.push_str(&format!(
        "Measured by `make bench-compare` (`rapid-bench compare`) on {}: the new binary and the base \
         binary side by side in one run, alternating round by round ({rounds} rounds of {per_round} \
         warm invokes over kept connections; wrk -t1 -c1, 24-byte POST, {secs} s rounds, medians).\n\n",
        crate::report::date()
    ));
    s.push_str("| figure | new | base | new / base | target |\n|---|---|---|---|---|\n");
    s.push_str(&format!(
        "| warm invoke p50 / p99 (floor {:.0} / {:.0} µs) | {:.0} / {:.0} µs | {:.0} / {:.0} µs | {:.3} | ≤ 1.05 {} |\n",
        floor.p50_us, floor.p99_us, new.warm.p50_us, new.warm.p99_us, base.warm.p50_us, base.warm.p99_us,
        ratio(new.warm.p50_us, base.warm.p50_us), mark(ratio(new.warm.p50_us, base.warm.p50_us) <= 1.05)
    ));
    s.push_str(&format!(
        "| warm invokes per second | {:.0} | {:.0} | {:.3} | — |\n",
        new.warm.per_sec,
        base.warm.per_sec,
        ratio(new.warm.per_sec, base.warm.per_sec)
    ));
    s.push_str(&format!(
        "| rapid RSS idle / under load | {:.1} / {:.1} MiB | {:.1} / {:.1} MiB | — | idle ≤ 6 MiB {} |\n",
        mib(new.rss_idle_kib), mib(new.rss_load_kib), mib(base.rss_idle_kib), mib(base.rss_load_kib),
        mark(mib(new.rss_idle_kib) <= 6.0)
    ));
    s.push_str(&format!(
        "| watchdog http mode p50 / p99 | {:.0} / {:.0} µs ({:.0} req/s) | {:.0} / {:.0} µs ({:.0} req/s) | {:.3} | ≤ 1.05 {} |\n",
        new.http.p50_us, new.http.p99_us, new.http.rps, base.http.p50_us, base.http.p99_us, base.http.rps,
        ratio(new.http.p50_us, base.http.p50_us), mark(ratio(new.http.p50_us, base.http.p50_us) <= 1.05)
    ));
    s.push_str(&format!(
        "| inproc p50 | {:.0} µs ({:.0} req/s) | {:.0} µs ({:.0} req/s) | {:.3} | — |\n",
        new.inproc.p50_us,
        new.inproc.rps,
        base.inproc.p50_us,
        base.inproc.rps,
        ratio(new.inproc.p50_us, base.inproc.p50_us)
    ));
    s.push_str(&format!(
        "| inproc RSS idle / peak | {:.1} / {:.1} MiB | {:.1} / {:.1} MiB | — | ≤ 4.5 MiB {} |\n",
        mib(new.inproc_idle_kib),
        mib(new.inproc_hwm_kib),
        mib(base.inproc_idle_kib),
        mib(base.inproc_hwm_kib),
        mark(mib(new.inproc_hwm_kib) <= 4.5)
    ));
    s
}
