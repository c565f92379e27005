//! `rapid-bench watchdog`: the watchdog modes measured with wrk (one
//! connection, one thread, a 24-byte POST) — the client of-watchdog's
//! reference figures were measured with — beside the upstream's own floor.
//!
//! * http mode: rapid starts this binary's hyper echo server as the function
//!   and proxies to it; the floor is wrk against that server directly, in
//!   alternating rounds.
//! * streaming fork mode with `cat`.
//! * inproc: the example function linked with rapid; its RSS idle and under load.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::median_f64;
use crate::procs::{free_port, memory_kib, Proc};

/// The request body: 24 bytes, as in of-watchdog's reference run.
pub const BODY: &str = r#"{"hello":"world","n":12}"#;

/// What one wrk run reported.
#[derive(Debug, Clone, Copy, Default)]
pub struct Wrk {
    pub p50_us: f64,
    pub p99_us: f64,
    pub rps: f64,
}

/// Options of the watchdog bench.
pub struct Opts {
    pub rapid: PathBuf,
    pub inproc: PathBuf,
    pub out: Option<PathBuf>,
    pub quick: bool,
}

fn parse_latency(v: &str) -> Option<f64> {
    let v = v.trim();
    let (num, scale) = if let Some(n) = v.strip_suffix("us") {
        (n, 1.0)
    } else if let Some(n) = v.strip_suffix("ms") {
        (n, 1e3)
    } else if let Some(n) = v.strip_suffix('s') {
        (n, 1e6)
    } else {
        return None;
    };
    num.trim().parse::<f64>().ok().map(|n| n * scale)
}

/// Read p50, p99 and requests/s out of `wrk --latency` output.
pub fn parse_wrk(out: &str) -> Option<Wrk> {
    let mut w = Wrk::default();
    let (mut p50, mut p99, mut rps) = (false, false, false);
    for line in out.lines() {
        let l = line.trim();
        if let Some(v) = l.strip_prefix("50%") {
            w.p50_us = parse_latency(v)?;
            p50 = true;
        } else if let Some(v) = l.strip_prefix("99%") {
            w.p99_us = parse_latency(v)?;
            p99 = true;
        } else if let Some(v) = l.strip_prefix("Requests/sec:") {
            w.rps = v.trim().parse().ok()?;
            rps = true;
        }
    }
    (p50 && p99 && rps).then_some(w)
}

pub(crate) fn wrk(script: &Path, addr: SocketAddr, secs: u64) -> std::io::Result<Wrk> {
    let out = Command::new("wrk")
        .args(["-t1", "-c1", "--latency"])
        .arg(format!("-d{secs}s"))
        .arg("-s")
        .arg(script)
        .arg(format!("http://{addr}/"))
        .stdin(Stdio::null())
        .output()
        .map_err(|e| {
            std::io::Error::other(format!(
                "cannot run wrk ({e}); install it (apt-get install wrk) or use `make bench`"
            ))
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    if text.contains("Non-2xx") || text.contains("Socket errors") {
        return Err(std::io::Error::other(format!(
            "wrk saw failed requests against {addr}:\n{text}"
        )));
    }
    parse_wrk(&text)
        .ok_or_else(|| std::io::Error::other(format!("cannot read wrk's output:\n{text}")))
}

/// Start a watchdog front — rapid in a watchdog mode, or the inproc function,
/// which takes the same options; waits until `/_/health` is 200.
pub(crate) fn watchdog_front(
    program: &Path,
    args: &[&str],
    command: &[&str],
) -> std::io::Result<Proc> {
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port())
        .parse()
        .map_err(std::io::Error::other)?;
    let child = Command::new(program)
        .arg("--watchdog-address")
        .arg(addr.to_string())
        .args(["--metrics-port", "0", "--healthcheck-interval", "0"])
        .args(["--suppress-lock", "--log-level", "warn"])
        .args(args)
        .args(command)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let p = Proc { child, addr };
    wait_healthy(addr)?;
    Ok(p)
}

fn wait_healthy(addr: SocketAddr) -> std::io::Result<()> {
    use std::io::{Read, Write};
    let until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < until {
        if let Ok(mut s) = std::net::TcpStream::connect(addr) {
            let _ = s.write_all(b"GET /_/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            let mut buf = String::new();
            let _ = s.read_to_string(&mut buf);
            if buf.starts_with("HTTP/1.1 200") {
                return Ok(());
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(std::io::Error::other(format!(
        "{addr} never became healthy"
    )))
}

/// The fork floor: spawn `cat` with three pipes (own process group, vfork),
/// write the body, read the answer, wait — in a loop for `secs`; per second.
fn spawn_floor(secs: u64) -> std::io::Result<f64> {
    use std::io::{Read, Write};
    use std::os::unix::process::CommandExt;
    let t = Instant::now();
    let mut n = 0u32;
    while t.elapsed() < Duration::from_secs(secs) {
        let mut child = Command::new("cat")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()?;
        if let Some(mut i) = child.stdin.take() {
            i.write_all(BODY.as_bytes())?;
        }
        let mut out = Vec::new();
        if let Some(mut o) = child.stdout.take() {
            o.read_to_end(&mut out)?;
        }
        child.wait()?;
        n += 1;
    }
    Ok(f64::from(n) / t.elapsed().as_secs_f64())
}

pub(crate) fn med(runs: &[Wrk]) -> Wrk {
    Wrk {
        p50_us: median_f64(runs.iter().map(|w| w.p50_us).collect()),
        p99_us: median_f64(runs.iter().map(|w| w.p99_us).collect()),
        rps: median_f64(runs.iter().map(|w| w.rps).collect()),
    }
}

/// Run the watchdog bench; the markdown section.
pub fn run(o: &Opts) -> std::io::Result<String> {
    let dir = std::env::temp_dir().join(format!("rapid-bench-wd-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let script = dir.join("post.lua");
    std::fs::write(
        &script,
        format!(
            "wrk.method = \"POST\"\nwrk.body = '{BODY}'\nwrk.headers[\"Content-Type\"] = \"application/json\"\n"
        ),
    )?;
    let result = measure(o, &script);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn measure(o: &Opts, script: &Path) -> std::io::Result<String> {
    let (rounds, secs) = if o.quick { (1, 2) } else { (5, 4) };
    let me = std::env::current_exe()?;
    let me = me.display().to_string();

    eprintln!(
        "rapid-bench watchdog: http mode vs its upstream ({rounds} alternating rounds of {secs} s)"
    );
    let up_port = free_port();
    let up_addr: SocketAddr = format!("127.0.0.1:{up_port}")
        .parse()
        .map_err(std::io::Error::other)?;
    let upstream = format!("http://{up_addr}");
    let mut http = watchdog_front(
        &o.rapid,
        &["--mode", "http", "--upstream-url", &upstream],
        &[&me, "floor-server", &up_addr.to_string()],
    )?;
    let rss_idle = memory_kib(http.pid()).0;
    let (mut floor_runs, mut http_runs) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        floor_runs.push(wrk(script, up_addr, secs)?);
        http_runs.push(wrk(script, http.addr, secs)?);
    }
    let (rss_load, hwm) = memory_kib(http.pid());
    let (floor, proxied) = (med(&floor_runs), med(&http_runs));
    let _ = http.terminate(Duration::from_secs(5));

    eprintln!("rapid-bench watchdog: streaming fork mode with cat");
    let mut fork = watchdog_front(&o.rapid, &["--mode", "streaming"], &["cat"])?;
    let (mut fork_runs, mut spawn_runs) = (Vec::new(), Vec::new());
    for _ in 0..rounds.min(3) {
        spawn_runs.push(spawn_floor(secs)?);
        fork_runs.push(wrk(script, fork.addr, secs)?);
    }
    let forked = med(&fork_runs);
    let spawned = median_f64(spawn_runs);
    let _ = fork.terminate(Duration::from_secs(5));

    eprintln!("rapid-bench watchdog: inproc");
    let mut inproc = watchdog_front(&o.inproc, &[], &[])?;
    let addr = inproc.addr;
    std::thread::sleep(Duration::from_millis(200));
    let inproc_idle = memory_kib(inproc.pid()).0;
    let mut inproc_runs = Vec::new();
    for _ in 0..rounds.min(3) {
        inproc_runs.push(wrk(script, addr, secs)?);
    }
    let (inproc_load, inproc_hwm) = memory_kib(inproc.pid());
    let inprocd = med(&inproc_runs);
    let _ = inproc.terminate(Duration::from_secs(5));

    let mib = |k: u64| k as f64 / 1024.0;
    let mark = |ok: bool| if ok { "✅" } else { "❌" };
    let mut s = String::new();
    s.push_str("## Watchdog modes (wrk, 1 connection, 24-byte POST)\n\n");
    s.push_str(&format!(
        "Measured by `make bench` (`rapid-bench watchdog`) on {}; {} alternating rounds of {} s, medians. \
         of-watchdog's figures are the reference numbers measured on this machine with the same client \
         (not re-run here: of-watchdog is not installable offline).\n\n",
        crate::report::date(),
        rounds,
        secs
    ));
    s.push_str("| figure | measured | of-watchdog | target |\n|---|---|---|---|\n");
    s.push_str(&format!(
        "| upstream floor (hyper echo, direct) p50 / p99 | {:.0} µs / {:.0} µs ({:.0} req/s) | 31 µs | — |\n",
        floor.p50_us, floor.p99_us, floor.rps
    ));
    s.push_str(&format!(
        "| http mode p50 / p99 | {:.0} µs / {:.0} µs ({:.1}× floor) | 191 µs (6.2× floor) | ≤ 80 µs {} |\n",
        proxied.p50_us,
        proxied.p99_us,
        proxied.p50_us / floor.p50_us.max(1.0),
        mark(proxied.p50_us <= 80.0)
    ));
    s.push_str(&format!(
        "| http mode throughput | {:.0} req/s | 4,826 req/s | ≥ 10,000 {} |\n",
        proxied.rps,
        mark(proxied.rps >= 10_000.0)
    ));
    s.push_str(&format!(
        "| rapid RSS, http mode: idle / under load / peak | {:.1} / {:.1} / {:.1} MiB | 16.7 MB | — |\n",
        mib(rss_idle),
        mib(rss_load),
        mib(hwm)
    ));
    s.push_str(&format!(
        "| fork floor: spawn `cat` with three pipes, write, read, wait (a loop, no HTTP) | {:.0} per second ({:.0} µs each) | — | — |\n",
        spawned,
        1e6 / spawned.max(1.0)
    ));
    s.push_str(&format!(
        "| streaming fork mode (`cat`) p50 / throughput | {:.2} ms / {:.0} req/s ({:.2}× of-watchdog; {:.0} % of the fork floor) | 1.20 ms / 810 req/s | ≥ 1.5× (1,215 req/s) {} |\n",
        forked.p50_us / 1000.0,
        forked.rps,
        forked.rps / 810.0,
        100.0 * forked.rps / spawned.max(1.0),
        mark(forked.rps >= 1215.0)
    ));
    s.push_str(&format!(
        "| inproc (echo handler) p50 / throughput | {:.0} µs / {:.0} req/s | — | — |\n",
        inprocd.p50_us, inprocd.rps
    ));
    s.push_str(&format!(
        "| inproc RSS: idle / under load / peak | {:.1} / {:.1} / {:.1} MiB | — | ≤ 4 MiB {} |\n",
        mib(inproc_idle),
        mib(inproc_load),
        mib(inproc_hwm),
        mark(mib(inproc_hwm) <= 4.0)
    ));
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_wrk_output() {
        let out = "Running 5s test @ http://127.0.0.1:18180/\n  1 threads and 1 connections\n  Latency Distribution\n     50%  153.00us\n     75%  170.00us\n     90%  200.00us\n     99%    1.26ms\n  31000 requests in 5.00s, 3.1MB read\nRequests/sec:   6233.09\nTransfer/sec:    630.00KB\n";
        let w = parse_wrk(out).unwrap();
        assert_eq!(w.p50_us, 153.0);
        assert_eq!(w.p99_us, 1260.0);
        assert_eq!(w.rps, 6233.09);
        assert!(parse_wrk("garbage").is_none());
        assert_eq!(BODY.len(), 24);
    }
}
