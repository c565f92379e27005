//! `make soak`: rapid held under load and faults on loopback, bounded in
//! time. Sequential and concurrent invokes with rapid's RSS and descriptor
//! count sampled; then a chaos run — runtimes SIGKILLed and SIGSTOPped
//! mid-invoke, slow and half-closed clients, connections reset mid-body,
//! the connection bound exhausted by silent clients — in which every invoke
//! must get exactly one well-formed answer (its own 200 echo, or a JSON
//! error), and no process may be left behind. Figures go to the
//! `bench:reliability` section of docs/benchmarks.md.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::client::Conn;
use crate::procs::{self, Proc};

const INVOKE: &str = "/2015-03-31/functions/function/invocations";

struct Opts {
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
  --chaos N        invokes under injected faults (default 3000)
  --out FILE       write the Reliability section into FILE (docs/benchmarks.md)
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
struct Sample {
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
struct Series(Vec<Sample>);

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
    let mut c = Conn::connect(p.addr, Duration::from_secs(10)).map_err(|e| e.to_string())?;
    let (status, _) = c.post(INVOKE, b"{}").map_err(|e| e.to_string())?;
    if status != 200 {
        return Err(format!("warm-up invoke: {status}"));
    }
    Ok(p)
}

fn echo_ok(status: u16, body: &[u8], sent: &[u8]) -> bool {
    status == 200 && body == sent
}

/// A JSON error: an object with `errorType` (or AWS's `Type`/`message`).
fn json_error(body: &[u8]) -> bool {
    serde_like_error(body)
}

fn serde_like_error(body: &[u8]) -> bool {
    let t = String::from_utf8_lossy(body);
    let t = t.trim();
    t.starts_with('{') && t.ends_with('}') && t.contains("\"errorType\"")
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

/// What the chaos run counted.
#[derive(Debug, Default)]
struct Chaos {
    invokes: usize,
    ok: usize,
    json_errors: usize,
    lost: usize,
    wrong: usize,
    kills: usize,
    stops: usize,
    half_closed: usize,
    resets: usize,
    slow: usize,
    floods: usize,
    bad_inputs: usize,
}

fn runtime_pids(rapid: i32) -> Vec<i32> {
    procs::children(rapid)
}

fn signal(pid: i32, sig: i32) {
    // SAFETY: signalling a process of the sandbox we started.
    unsafe {
        libc::kill(pid, sig);
    }
}

/// One invoke on a fresh connection; how it was answered.
fn one_invoke(addr: SocketAddr, i: usize, how: Client) -> Answer {
    let body = format!("{{\"x\":{i}}}");
    let Ok(mut s) = TcpStream::connect(addr) else {
        return Answer::Lost("connect".into());
    };
    s.set_read_timeout(Some(Duration::from_secs(30))).ok();
    let head = format!(
        "POST {INVOKE} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let sent = match how {
        Client::Plain | Client::HalfClose => {
            s.write_all(head.as_bytes()).is_ok() && s.write_all(body.as_bytes()).is_ok()
        }
        Client::Slow => {
            let mut ok = s.write_all(head.as_bytes()).is_ok();
            for b in body.as_bytes() {
                ok &= s.write_all(&[*b]).is_ok();
                std::thread::sleep(Duration::from_millis(3));
            }
            ok
        }
    };
    if !sent {
        return Answer::Lost("write".into());
    }
    if how == Client::HalfClose {
        let _ = s.shutdown(Shutdown::Write);
    }
    let mut r = BufReader::new(s);
    match read_answer(&mut r) {
        Ok((status, got)) if echo_ok(status, &got, body.as_bytes()) => Answer::Ok,
        Ok((status, got)) if status == 200 && json_error(&got) => Answer::JsonError,
        Ok((status, got)) if status >= 400 && json_error(&got) => Answer::JsonError,
        Ok((status, got)) => Answer::Wrong(format!("{status} {}", String::from_utf8_lossy(&got))),
        Err(e) => Answer::Lost(e),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Client {
    Plain,
    HalfClose,
    Slow,
}

#[derive(Debug)]
enum Answer {
    Ok,
    JsonError,
    Wrong(String),
    Lost(String),
}

/// Status and Content-Length body of one response; a second response on the
/// connection would be a duplicate (checked by the caller's reads).
fn read_answer(r: &mut BufReader<TcpStream>) -> Result<(u16, Vec<u8>), String> {
    let mut line = String::new();
    r.read_line(&mut line).map_err(|e| e.to_string())?;
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status line ({line:?})"))?;
    let mut len = 0usize;
    loop {
        let mut h = String::new();
        r.read_line(&mut h).map_err(|e| e.to_string())?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body).map_err(|e| e.to_string())?;
    Ok((status, body))
}

/// A client that sends half a body and resets the connection.
fn reset_mid_body(addr: SocketAddr) {
    if let Ok(s) = TcpStream::connect(addr) {
        let linger = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        // SAFETY: setsockopt on a socket we own; SO_LINGER 0 makes close send RST.
        unsafe {
            libc::setsockopt(
                std::os::fd::AsRawFd::as_raw_fd(&s),
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                (&linger as *const libc::linger).cast(),
                std::mem::size_of::<libc::linger>() as libc::socklen_t,
            );
        }
        let mut s = s;
        let _ = s.write_all(
            format!("POST {INVOKE} HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{{\"a\"")
                .as_bytes(),
        );
        drop(s);
    }
}

/// Malformed requests: each must be refused (a 4xx) or the connection closed.
fn bad_input(addr: SocketAddr, i: usize) -> bool {
    let inputs: [&[u8]; 6] = [
        b"GARBAGE\r\n\r\n",
        b"POST /2015-03-31/functions/function/invocations HTTP/1.1\r\nContent-Length: x\r\n\r\n",
        b"POST /2015-03-31/functions/function/invocations HTTP/1.1\r\nHost: x\r\nX-Amz-Invocation-Type: Nope\r\nContent-Length: 2\r\n\r\n{}",
        b"POST /2015-03-31/functions/function/invocations HTTP/1.1\r\nHost: x\r\nX-Amz-Client-Context: %%%\r\nContent-Length: 2\r\n\r\n{}",
        b"GET /%ff%fe/x HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /2015-03-31/functions/function/invocations HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ];
    let Ok(mut s) = TcpStream::connect(addr) else {
        return false;
    };
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    let _ = s.write_all(inputs[i % inputs.len()]);
    let mut r = BufReader::new(s);
    let mut line = String::new();
    match r.read_line(&mut line) {
        Ok(0) => true,
        Ok(_) => line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse::<u16>().ok())
            .is_some_and(|s| (400..500).contains(&s)),
        Err(_) => false,
    }
}

fn chaos(o: &Opts) -> Result<(Chaos, Vec<i32>), String> {
    let p = start(
        o,
        &[
            "--timeout",
            "2",
            "--max-queue",
            "1024",
            "--max-connections",
            "48",
            "--header-timeout",
            "1s",
            "--body-timeout",
            "1s",
        ],
    )?;
    let rapid = p.pid();
    let addr = p.addr;
    let mut c = Chaos::default();
    let mut seen = std::collections::BTreeSet::new();
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut rand = move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    for i in 0..o.chaos {
        seen.extend(runtime_pids(rapid));
        let fault = rand(10);
        let client = match fault {
            3 => Client::HalfClose,
            4 => Client::Slow,
            _ => Client::Plain,
        };
        let handle = std::thread::spawn(move || one_invoke(addr, i, client));
        match fault {
            0 => {
                // SIGKILL the runtime (or an extension) mid-invoke.
                std::thread::sleep(Duration::from_micros(rand(2000)));
                for pid in runtime_pids(rapid) {
                    signal(pid, libc::SIGKILL);
                }
                c.kills += 1;
            }
            1 => {
                // SIGSTOP it for up to 3 s (past the 2 s timeout at times), then SIGCONT.
                let pids = runtime_pids(rapid);
                for pid in &pids {
                    signal(*pid, libc::SIGSTOP);
                }
                std::thread::sleep(Duration::from_millis(rand(3000)));
                for pid in &pids {
                    signal(*pid, libc::SIGCONT);
                }
                c.stops += 1;
            }
            2 => {
                reset_mid_body(addr);
                c.resets += 1;
            }
            3 => c.half_closed += 1,
            4 => c.slow += 1,
            _ if i % 50 == 25 => {
                // Exhaust the connection bound with silent clients.
                let hold: Vec<_> = (0..64)
                    .filter_map(|_| TcpStream::connect(addr).ok())
                    .collect();
                c.floods += 1;
                let answered = one_invoke(addr, i + o.chaos, Client::Plain);
                drop(hold);
                tally(&mut c, answered);
            }
            6 => {
                if bad_input(addr, i) {
                    c.bad_inputs += 1;
                } else {
                    return Err(format!("bad input {} was not refused", i % 6));
                }
            }
            _ => {}
        }
        let answer = handle
            .join()
            .map_err(|_| "a client thread panicked".to_owned())?;
        tally(&mut c, answer);
    }
    if c.lost > 0 || c.wrong > 0 {
        return Err(format!("{c:?}"));
    }
    // No process left behind once rapid is gone.
    let mut p = p;
    seen.extend(runtime_pids(rapid));
    if p.terminate(Duration::from_secs(10)).is_none() {
        return Err("rapid did not exit on SIGTERM".into());
    }
    let left: Vec<i32> = seen
        .into_iter()
        // SAFETY: probing with signal 0.
        .filter(|pid| unsafe { libc::kill(*pid, 0) } == 0 && !zombie_or_other(*pid, rapid))
        .collect();
    Ok((c, left))
}

/// Whether `pid` is no longer ours (reaped and reused, or a zombie).
fn zombie_or_other(pid: i32, rapid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return true;
    };
    let after = stat.rsplit_once(')').map_or("", |(_, a)| a);
    let mut f = after.split_whitespace();
    let state = f.next().unwrap_or("");
    let ppid: i32 = f.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    state == "Z" || (ppid != rapid && ppid != 1)
}

fn tally(c: &mut Chaos, a: Answer) {
    c.invokes += 1;
    match a {
        Answer::Ok => c.ok += 1,
        Answer::JsonError => c.json_errors += 1,
        Answer::Wrong(why) => {
            eprintln!("soak: wrong answer: {why}");
            c.wrong += 1;
        }
        Answer::Lost(why) => {
            eprintln!("soak: lost: {why}");
            c.lost += 1;
        }
    }
}

fn run(o: &Opts) -> Result<String, String> {
    let started = Instant::now();
    eprintln!("soak: {} sequential invokes", o.sequential);
    let p = start(o, &[])?;
    let (seq, seq_t) = sequential(o, &p)?;
    seq.flat()?;
    drop(p);
    eprintln!(
        "soak: {} concurrent invokes over {} connections",
        o.concurrent, o.clients
    );
    let p = start(o, &["--max-queue", "1024"])?;
    let (con, con_t) = concurrent(o, &p)?;
    con.flat()?;
    drop(p);
    eprintln!("soak: chaos, {} invokes", o.chaos);
    let (c, left) = chaos(o)?;
    if !left.is_empty() {
        return Err(format!("processes left behind: {left:?}"));
    }
    let rate = |n: usize, t: Duration| n as f64 / t.as_secs_f64().max(1e-9);
    Ok(format!(
        "## Reliability (make soak: loopback, {cpus} CPUs, {total:.0} s)\n\n\
| load held | figures |\n|---|---|\n\
| {seq} sequential invokes, one connection | {seq_rate:.0}/s; {seq_sum} |\n\
| {conc} concurrent invokes, {clients} connections | {con_rate:.0}/s; {con_sum} |\n\n\
| chaos run (`--timeout 2 --max-connections 48 --header-timeout 1s --body-timeout 1s`) | count |\n|---|---|\n\
| invokes | {inv} |\n\
| answered with their own 200 echo | {ok} |\n\
| answered with a JSON error (Runtime.ExitError, Sandbox.Timedout, …) | {je} |\n\
| runtimes SIGKILLed mid-invoke | {kills} |\n\
| runtimes SIGSTOPped up to 3 s | {stops} |\n\
| connections reset mid-body | {resets} |\n\
| half-closed clients | {half} |\n\
| slow clients (a byte every 3 ms) | {slow} |\n\
| connection bound exhausted by 64 silent clients | {floods} |\n\
| bad inputs tried (malformed HTTP, bad headers), all refused | {bad} |\n\
| **answers lost** | **{lost}** |\n\
| answers wrong or duplicated | {wrong} |\n\
| processes left behind | 0 |\n",
        cpus = std::thread::available_parallelism().map_or(1, |n| n.get()),
        total = started.elapsed().as_secs_f64(),
        seq = o.sequential,
        seq_rate = rate(o.sequential, seq_t),
        seq_sum = seq.summary(),
        conc = o.concurrent,
        clients = o.clients,
        con_rate = rate(o.concurrent, con_t),
        con_sum = con.summary(),
        inv = c.invokes,
        ok = c.ok,
        je = c.json_errors,
        kills = c.kills,
        stops = c.stops,
        resets = c.resets,
        half = c.half_closed,
        slow = c.slow,
        floods = c.floods,
        bad = c.bad_inputs,
        lost = c.lost,
        wrong = c.wrong,
    ))
}
