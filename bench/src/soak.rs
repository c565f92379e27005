//! `make soak`: rapid held under load and faults on loopback, bounded in
//! time. Sequential and concurrent invokes with rapid's RSS and descriptor
//! count sampled (they must stay flat); then the chaos run ([`chaos`]), in
//! which every invoke must get exactly one well-formed answer (its own 200
//! echo, or a JSON error) and no process may be left behind. Any breach
//! fails the run (exit 1). Figures go to the `bench:reliability` section of
//! docs/benchmarks.md ([`report`]).

mod chaos;
mod clients;
mod fdlimit;
mod leftovers;
mod report;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::client::Conn;
use crate::procs::{self, Proc};

const INVOKE: &str = "/2015-03-31/functions/function/invocations";

pub struct Opts {
    rapid: PathBuf,
    function: PathBuf,
    out: Option<PathBuf>,
    sequential: usize,
    concurrent: usize,
    clients: usize,
    chaos: usize,
}

const HELP: &str = "\
rapid-bench soak: rapid under load and injected faults, every answer checked.

usage: rapid-bench soak --rapid PATH --function PATH [--out FILE]
                        [--sequential N] [--concurrent N] [--clients N] [--chaos N]

  --sequential N   invokes on one connection (default 1000000)
  --concurrent N   invokes over --clients connections at once (default 100000, 32)
  --chaos N        invokes under injected faults (default 3000): runtimes and an
                   external extension SIGKILLed / SIGSTOPped, slow, half-closing
                   and resetting clients, malformed requests, the connection
                   bound flooded; beside them a rapid whose runtime stalls every
                   upload and one under RLIMIT_NOFILE 128 flooded until EMFILE
  --out FILE       write the Reliability section into FILE (docs/benchmarks.md)

Fails (exit 1) on an answer lost, wrong or duplicated, RSS or descriptors
not flat, a bad input not refused, or a process left behind.
";

fn parse(mut args: impl Iterator<Item = String>) -> Result<Opts, String> {
    let mut o = Opts {
        rapid: PathBuf::new(),
        function: PathBuf::new(),
        out: None,
        sequential: 1_000_000,
        concurrent: 100_000,
        clients: 32,
        chaos: 3_000,
    };
    let num = |v: Option<String>| -> Result<usize, String> {
        v.and_then(|v| v.parse().ok())
            .ok_or_else(|| "expected a number".to_owned())
    };
    while let Some(a) = args.next() {
        match a.as_str() {
            "--rapid" => o.rapid = args.next().map(PathBuf::from).unwrap_or_default(),
            "--function" => o.function = args.next().map(PathBuf::from).unwrap_or_default(),
            "--out" => o.out = args.next().map(PathBuf::from),
            "--sequential" => o.sequential = num(args.next())?,
            "--concurrent" => o.concurrent = num(args.next())?,
            "--clients" => o.clients = num(args.next())?.max(1),
            "--chaos" => o.chaos = num(args.next())?,
            "-h" | "--help" => return Err(HELP.to_owned()),
            other => return Err(format!("unknown argument {other:?}\n{HELP}")),
        }
    }
    if o.rapid.as_os_str().is_empty() || o.function.as_os_str().is_empty() {
        return Err(HELP.to_owned());
    }
    Ok(o)
}

/// `rapid-bench soak …`.
pub fn main(args: impl Iterator<Item = String>) -> ExitCode {
    let opts = match parse(args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match run(&opts) {
        Ok(text) => {
            println!("{text}");
            if let Some(out) = &opts.out {
                if let Err(e) = crate::report::write_section(out, "reliability", &text) {
                    eprintln!("rapid-bench soak: cannot write {}: {e}", out.display());
                    return ExitCode::FAILURE;
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("rapid-bench soak: FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}

/// rapid's resident memory (KiB) and open descriptors.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sample {
    rss_kib: u64,
    fds: usize,
}

fn sample(pid: i32) -> Sample {
    Sample {
        rss_kib: procs::memory_kib(pid).0,
        fds: std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count()),
    }
}

/// Samples taken every `every` invokes of one phase.
#[derive(Debug, Default)]
pub struct Series(Vec<Sample>);

impl Series {
    fn summary(&self) -> String {
        let (Some(first), Some(last)) = (self.0.first(), self.0.last()) else {
            return "no samples".into();
        };
        let max_rss = self.0.iter().map(|s| s.rss_kib).max().unwrap_or(0);
        let max_fds = self.0.iter().map(|s| s.fds).max().unwrap_or(0);
        format!(
            "RSS {} → {} kB (max {max_rss}), fds {} → {} (max {max_fds}), {} samples",
            first.rss_kib,
            last.rss_kib,
            first.fds,
            last.fds,
            self.0.len()
        )
    }

    /// Flat: the last sample within 20% (+1 MiB) of the first after warm-up,
    /// descriptors back where they were (+2).
    fn flat(&self) -> Result<(), String> {
        let warm = self
            .0
            .get(1)
            .or(self.0.first())
            .copied()
            .unwrap_or_default();
        let last = self.0.last().copied().unwrap_or_default();
        if last.rss_kib > warm.rss_kib + warm.rss_kib / 5 + 1024 {
            return Err(format!("RSS grew: {}", self.summary()));
        }
        if last.fds > warm.fds + 2 {
            return Err(format!("descriptors grew: {}", self.summary()));
        }
        Ok(())
    }
}

fn start(o: &Opts, extra: &[&str]) -> Result<Proc, String> {
    let extra: Vec<String> = extra.iter().map(|s| (*s).to_owned()).collect();
    let p = procs::rapid(&o.rapid, &o.function, &extra, None).map_err(|e| e.to_string())?;
    warm_up(p.addr)?;
    Ok(p)
}

/// One invoke once rapid listens (10 s to start); it must be answered 200.
fn warm_up(addr: SocketAddr) -> Result<(), String> {
    let mut c = Conn::connect(addr, Duration::from_secs(10)).map_err(|e| e.to_string())?;
    let (status, _) = c.post(INVOKE, b"{}").map_err(|e| e.to_string())?;
    if status != 200 {
        return Err(format!("warm-up invoke: {status}"));
    }
    Ok(())
}

/// Poll `cond` (every 20 ms) until it holds or `limit` passes; whether it held.
fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= until {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn echo_ok(status: u16, body: &[u8], sent: &[u8]) -> bool {
    status == 200 && body == sent
}

fn sequential(o: &Opts, p: &Proc) -> Result<(Series, Duration), String> {
    let mut c = Conn::connect(p.addr, Duration::from_secs(5)).map_err(|e| e.to_string())?;
    let every = (o.sequential / 20).max(1);
    let mut series = Series::default();
    let t = Instant::now();
    for i in 0..o.sequential {
        let body = format!("{{\"n\":{i}}}");
        let (status, got) = c
            .post(INVOKE, body.as_bytes())
            .map_err(|e| format!("invoke {i}: {e}"))?;
        if !echo_ok(status, &got, body.as_bytes()) {
            return Err(format!(
                "invoke {i}: {status} {}",
                String::from_utf8_lossy(&got)
            ));
        }
        if i % every == 0 {
            series.0.push(sample(p.pid()));
        }
    }
    series.0.push(sample(p.pid()));
    Ok((series, t.elapsed()))
}

fn concurrent(o: &Opts, p: &Proc) -> Result<(Series, Duration), String> {
    let next = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let t = Instant::now();
    let addr = p.addr;
    let n = o.concurrent;
    let workers: Vec<_> = (0..o.clients)
        .map(|_| {
            let (next, failed) = (next.clone(), failed.clone());
            std::thread::spawn(move || {
                let Ok(mut c) = Conn::connect(addr, Duration::from_secs(5)) else {
                    failed.fetch_add(1, Ordering::Relaxed);
                    return;
                };
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        return;
                    }
                    let body = format!("{{\"c\":{i}}}");
                    match c.post(INVOKE, body.as_bytes()) {
                        Ok((s, got)) if echo_ok(s, &got, body.as_bytes()) => {}
                        _ => {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    let mut series = Series::default();
    while workers.iter().any(|w| !w.is_finished()) {
        series.0.push(sample(p.pid()));
        std::thread::sleep(Duration::from_millis(500));
    }
    for w in workers {
        let _ = w.join();
    }
    series.0.push(sample(p.pid()));
    let bad = failed.load(Ordering::Relaxed);
    if bad > 0 {
        return Err(format!("{bad} of {n} concurrent invokes failed"));
    }
    Ok((series, t.elapsed()))
}

/// The machine's 1-minute load average: what else ran beside the soak.
fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

fn run(o: &Opts) -> Result<String, String> {
    let started = Instant::now();
    let date = crate::report::date();
    let mut loads = vec![("start", load())];
    eprintln!("soak: {} sequential invokes", o.sequential);
    let p = start(o, &[])?;
    let (seq, seq_t) = sequential(o, &p)?;
    seq.flat()?;
    drop(p);
    loads.push(("after the sequential invokes", load()));
    eprintln!(
        "soak: {} concurrent invokes over {} connections",
        o.concurrent, o.clients
    );
    let p = start(o, &["--max-queue", "1024"])?;
    let (con, con_t) = concurrent(o, &p)?;
    con.flat()?;
    drop(p);
    loads.push(("after the concurrent invokes", load()));
    eprintln!("soak: chaos, {} invokes", o.chaos);
    let c = chaos::run(o)?;
    c.check()?;
    loads.push(("after the chaos run", load()));
    Ok(report::markdown(&report::Figures {
        opts: o,
        total: started.elapsed(),
        seq: (&seq, seq_t),
        con: (&con, con_t),
        chaos: &c,
        date,
        loads,
    }))
}
