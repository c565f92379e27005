//! `make bench`: rapid's invoke latency, throughput, memory, cold start,
//! extension and one-shot overheads and streaming throughput, each beside its
//! floor, measured in one run on this machine and written to
//! `docs/benchmarks.md`.
//!
//! ```text
//! rapid-bench --rapid target/release/rapid --function target/release/echo-function \
//!             --stream-function target/release/fx-stream --out docs/benchmarks.md [--quick]
//! ```

mod client;
mod compare;
mod floor;
mod lmi;
mod pool;
mod procs;
mod report;
mod soak;
mod watchdog;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use client::{interleaved, measure, Conn};
use report::Report;

const INVOKE: &str = "/2015-03-31/functions/function/invocations";

struct Opts {
    rapid: PathBuf,
    function: PathBuf,
    stream_function: Option<PathBuf>,
    out: Option<PathBuf>,
    quick: bool,
}

const HELP: &str = "\
rapid-bench: rapid's invoke latency, throughput, memory and cold start beside a
one-hop floor, measured in one run on loopback, written as markdown.

usage: rapid-bench --rapid PATH --function PATH [--stream-function PATH]
                   [--out FILE] [--quick]

  --rapid PATH            the rapid binary (target/release/rapid)
  --function PATH         a lambda_runtime echo function (target/release/echo-function)
  --stream-function PATH  a streaming function (target/release/fx-stream); without
                          it the streaming section is skipped
  --out FILE              write the figures to FILE (docs/benchmarks.md): if FILE has
                          <!-- bench:core:start --> / <!-- bench:core:end --> markers
                          only the part between them is replaced, anything else in
                          the file (sections of other benchmarks) is kept
  --quick                 a short run, for smoke tests (figures are noisier)
  -h, --help              this text

Every process the bench starts (rapid, the floor server, the function) is
stopped when it ends, also on error. `make bench` runs it with the release
binaries.
";

fn usage() -> ExitCode {
    eprint!("{HELP}");
    ExitCode::from(2)
}

fn parse() -> Result<Opts, ExitCode> {
    let mut args = std::env::args().skip(1);
    let (mut rapid, mut function, mut stream_function, mut out, mut quick) =
        (None, None, None, None, false);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--rapid" => rapid = args.next().map(PathBuf::from),
            "--function" => function = args.next().map(PathBuf::from),
            "--stream-function" => stream_function = args.next().map(PathBuf::from),
            "--out" => out = args.next().map(PathBuf::from),
            "--quick" => quick = true,
            "-h" | "--help" => {
                print!("{HELP}");
                return Err(ExitCode::SUCCESS);
            }
            other => {
                eprintln!("rapid-bench: unknown argument {other:?}");
                return Err(usage());
            }
        }
    }
    match (rapid, function) {
        (Some(rapid), Some(function)) => Ok(Opts {
            rapid,
            function,
            stream_function,
            out,
            quick,
        }),
        _ => Err(usage()),
    }
}

fn main() -> ExitCode {
    let mut raw = std::env::args().skip(1);
    match raw.next().as_deref() {
        Some("floor-server") => {
            let addr = raw.next().and_then(|a| a.parse().ok());
            return match addr.map(floor::serve) {
                Some(Ok(())) => ExitCode::SUCCESS,
                _ => ExitCode::FAILURE,
            };
        }
        Some("watchdog") => return watchdog_main(raw),
        Some("compare") => return compare_main(raw),
        Some("pool") => return pool_main(raw),
        Some("lmi") => return lmi_main(raw),
        Some("soak") => return soak::main(raw),
        Some("stall-runtime") => {
            return match procs::run_stall_runtime() {
                Ok(()) => ExitCode::SUCCESS,
                Err(_) => ExitCode::FAILURE,
            };
        }
        Some("extension") => {
            let name = raw.next().unwrap_or_else(|| "bench-ext".into());
            let port = raw.next().and_then(|p| p.parse().ok());
            return match procs::run_extension(&name, port) {
                Ok(()) => ExitCode::SUCCESS,
                Err(_) => ExitCode::FAILURE,
            };
        }
        _ => {}
    }
    let opts = match parse() {
        Ok(o) => o,
        Err(code) => return code,
    };
    match run(&opts) {
        Ok(report) => {
            let text = report.markdown(opts.quick);
            println!("{text}");
            if let Some(out) = &opts.out {
                if let Err(e) = report::write(out, &text) {
                    eprintln!("rapid-bench: cannot write {}: {e}", out.display());
                    return ExitCode::FAILURE;
                }
                eprintln!("rapid-bench: wrote {}", out.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("rapid-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `rapid-bench watchdog --rapid PATH --inproc PATH [--out FILE] [--quick]`.
fn watchdog_main(mut args: impl Iterator<Item = String>) -> ExitCode {
    let (mut rapid, mut inproc, mut out, mut quick) = (None, None, None, false);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--rapid" => rapid = args.next().map(PathBuf::from),
            "--inproc" => inproc = args.next().map(PathBuf::from),
            "--out" => out = args.next().map(PathBuf::from),
            "--quick" => quick = true,
            other => {
                eprintln!(
                    "rapid-bench watchdog: unknown argument {other:?}\n\
                     usage: rapid-bench watchdog --rapid PATH --inproc PATH [--out FILE] [--quick]"
                );
                return ExitCode::from(2);
            }
        }
    }
    let (Some(rapid), Some(inproc)) = (rapid, inproc) else {
        eprintln!("usage: rapid-bench watchdog --rapid PATH --inproc PATH [--out FILE] [--quick]");
        return ExitCode::from(2);
    };
    let o = watchdog::Opts {
        rapid,
        inproc,
        out,
        quick,
    };
    match watchdog::run(&o) {
        Ok(text) => {
            println!("{text}");
            if let Some(out) = &o.out {
                if let Err(e) = report::write_section(out, "watchdog", &text) {
                    eprintln!("rapid-bench: cannot write {}: {e}", out.display());
                    return ExitCode::FAILURE;
                }
                eprintln!("rapid-bench: wrote {}", out.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("rapid-bench watchdog: {e}");
            ExitCode::FAILURE
        }
    }
}

const COMPARE_USAGE: &str = "usage: rapid-bench compare --rapid NEW --base OLD --function ECHO \
--inproc NEW_INPROC --base-inproc OLD_INPROC [--label TEXT] [--out FILE] [--quick]";

/// `rapid-bench compare ...`: the new binary beside the base one.
fn compare_main(mut args: impl Iterator<Item = String>) -> ExitCode {
    let mut get = std::collections::HashMap::new();
    let mut quick = false;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--quick" => quick = true,
            "--rapid" | "--base" | "--function" | "--inproc" | "--base-inproc" | "--label"
            | "--out" => {
                if let Some(v) = args.next() {
                    get.insert(a, v);
                }
            }
            other => {
                eprintln!("rapid-bench compare: unknown argument {other:?}\n{COMPARE_USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let path = |k: &str| get.get(k).map(PathBuf::from);
    let (Some(rapid), Some(base), Some(function), Some(inproc), Some(base_inproc)) = (
        path("--rapid"),
        path("--base"),
        path("--function"),
        path("--inproc"),
        path("--base-inproc"),
    ) else {
        eprintln!("{COMPARE_USAGE}");
        return ExitCode::from(2);
    };
    let o = compare::Opts {
        rapid,
        base,
        function,
        inproc,
        base_inproc,
        label: get
            .get("--label")
            .cloned()
            .unwrap_or_else(|| "this change".into()),
        out: path("--out"),
        quick,
    };
    match compare::run(&o) {
        Ok(text) => {
            println!("{text}");
            if let Some(out) = &o.out {
                if let Err(e) = report::write_section(out, "compare", &text) {
                    eprintln!("rapid-bench: cannot write {}: {e}", out.display());
                    return ExitCode::FAILURE;
                }
                eprintln!("rapid-bench: wrote {}", out.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("rapid-bench compare: {e}");
            ExitCode::FAILURE
        }
    }
}

const POOL_USAGE: &str = "usage: rapid-bench pool --rapid PATH --function PATH --sleeper PATH [--out FILE] [--quick]
  --function: the echo function; --sleeper: a function that answers {\"sleep_ms\":N} after N ms (target/release/fx-lambda)";

const LMI_USAGE: &str = "usage: rapid-bench lmi --rapid PATH --function PATH [--base PATH --echo PATH] [--out FILE] [--quick]
  --function: the lambda_runtime run_concurrent fixture that answers {\"sleep_ms\":N} after N ms (target/release/fx-lmi)
  --base: rapid before the change (bench/build-base.sh), --echo: the echo function: the classic path's warm p50, new / base";

/// `rapid-bench lmi`: LMI mode against the classic one (see `lmi.rs`).
fn lmi_main(mut args: impl Iterator<Item = String>) -> ExitCode {
    let (mut rapid, mut function, mut out, mut quick) = (None, None, None, false);
    let (mut base, mut echo) = (None, None);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--rapid" => rapid = args.next().map(PathBuf::from),
            "--function" => function = args.next().map(PathBuf::from),
            "--out" => out = args.next().map(PathBuf::from),
            "--base" => base = args.next().map(PathBuf::from),
            "--echo" => echo = args.next().map(PathBuf::from),
            "--quick" => quick = true,
            other => {
                eprintln!("rapid-bench lmi: unknown argument {other:?}\n{LMI_USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let (Some(rapid), Some(function)) = (rapid, function) else {
        eprintln!("{LMI_USAGE}");
        return ExitCode::from(2);
    };
    // build-base.sh leaves the base's commit next to its release dir; a
    // binary built in a checkout of its own is named by that checkout's HEAD.
    let base = base.map(|b| {
        let dir = b.parent().and_then(std::path::Path::parent);
        let commit = dir
            .and_then(|d| std::fs::read_to_string(d.join("COMMIT")).ok())
            .or_else(|| {
                let out = std::process::Command::new("git")
                    .arg("-C")
                    .arg(dir?)
                    .args(["rev-parse", "HEAD"])
                    .output()
                    .ok()?;
                out.status
                    .success()
                    .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
            })
            .map(|c| c.trim().chars().take(7).collect())
            .unwrap_or_else(|| "base".to_owned());
        (b, commit)
    });
    let o = lmi::Opts {
        rapid,
        function,
        out,
        quick,
        base,
        echo,
    };
    match lmi::run(&o) {
        Ok(text) => {
            println!("{text}");
            if let Some(out) = &o.out {
                if let Err(e) = report::write_section(out, "lmi", &text) {
                    eprintln!("rapid-bench: cannot write {}: {e}", out.display());
                    return ExitCode::FAILURE;
                }
                eprintln!("rapid-bench: wrote {}", out.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("rapid-bench lmi: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `rapid-bench pool`: the pool's figures (see `pool.rs`).
fn pool_main(mut args: impl Iterator<Item = String>) -> ExitCode {
    let mut get = std::collections::HashMap::new();
    let mut quick = false;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--quick" => quick = true,
            "--rapid" | "--function" | "--sleeper" | "--out" => {
                if let Some(v) = args.next() {
                    get.insert(a, v);
                }
            }
            other => {
                eprintln!("rapid-bench pool: unknown argument {other:?}\n{POOL_USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let path = |k: &str| get.get(k).map(PathBuf::from);
    let (Some(rapid), Some(function), Some(sleeper)) =
        (path("--rapid"), path("--function"), path("--sleeper"))
    else {
        eprintln!("{POOL_USAGE}");
        return ExitCode::from(2);
    };
    let o = pool::Opts {
        rapid,
        function,
        sleeper,
        out: path("--out"),
        quick,
    };
    match pool::run(&o) {
        Ok(text) => {
            println!("{text}");
            if let Some(out) = &o.out {
                if let Err(e) = report::write_section(out, "pool", &text) {
                    eprintln!("rapid-bench: cannot write {}: {e}", out.display());
                    return ExitCode::FAILURE;
                }
                eprintln!("rapid-bench: wrote {}", out.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("rapid-bench pool: {e}");
            ExitCode::FAILURE
        }
    }
}

fn median_f64(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn run(o: &Opts) -> std::io::Result<Report> {
    let mut rep = Report::default();
    eprintln!("rapid-bench: warm invokes: floor, rapid, rapid + extension, rapid + telemetry (interleaved rounds)");
    let (rounds, per_round) = if o.quick { (3, 1_000) } else { (6, 5_000) };
    let floor = procs::floor()?;
    let r = procs::rapid(&o.rapid, &o.function, &[], None)?;
    let ext_dir = procs::extension_dir(None)?;
    let mut with_ext = procs::rapid(&o.rapid, &o.function, &[], Some(&ext_dir))?;
    let (tel_port, tel_records) = procs::telemetry_sink()?;
    let tel_dir = procs::extension_dir(Some(tel_port))?;
    let with_tel = procs::rapid(&o.rapid, &o.function, &[], Some(&tel_dir))?;
    {
        let mut c = Conn::connect(r.addr, Duration::from_secs(10))?;
        for _ in 0..50 {
            let (status, body) = c.post(INVOKE, client::BODY)?;
            if status != 200 || body != client::BODY {
                return Err(std::io::Error::other(format!(
                    "rapid answered {status}: {}",
                    String::from_utf8_lossy(&body)
                )));
            }
        }
        drop(c);
        std::thread::sleep(Duration::from_millis(300));
        rep.rss_idle_kib = procs::memory_kib(r.pid()).0;
        let targets = [floor.addr, r.addr, with_ext.addr, with_tel.addr];
        let (lat, max_rss) = procs::with_rss_sampler(r.pid(), || {
            interleaved(
                &targets,
                INVOKE,
                2_000,
                rounds,
                per_round,
                Duration::from_secs(if o.quick { 30 } else { 180 }),
            )
        });
        let lat = lat?;
        rep.floor = Some(lat[0]);
        rep.rapid = Some(lat[1]);
        rep.with_extension = Some(lat[2]);
        rep.with_telemetry = Some(lat[3]);
        rep.rss_load_kib = max_rss;
        rep.hwm_kib = procs::memory_kib(r.pid()).1;
        std::thread::sleep(Duration::from_millis(100));
        rep.telemetry_records = tel_records.load(std::sync::atomic::Ordering::Relaxed);
        rep.shutdown_with_ext = with_ext.terminate(Duration::from_secs(5));
        drop(with_tel);
        drop(floor);
        let _ = std::fs::remove_dir_all(&ext_dir);
        let _ = std::fs::remove_dir_all(&tel_dir);

        eprintln!("rapid-bench: CPU per invoke");
        let function_pid = procs::children(r.pid()).first().copied().unwrap_or(0);
        let n = if o.quick { 3_000 } else { 20_000 };
        let (rapid0, fn0) = (procs::cpu_time(r.pid()), procs::cpu_time(function_pid));
        measure(r.addr, INVOKE, 0, n, Duration::from_secs(60))?;
        rep.cpu_rapid_us = (procs::cpu_time(r.pid()) - rapid0).as_secs_f64() * 1e6 / n as f64;
        rep.cpu_function_us =
            (procs::cpu_time(function_pid).saturating_sub(fn0)).as_secs_f64() * 1e6 / n as f64;

        eprintln!("rapid-bench: 4 concurrent clients");
        let addr = r.addr;
        let started = Instant::now();
        let per_client = if o.quick { 500 } else { 3_000 };
        let handles: Vec<_> = (0..4)
            .map(|_| {
                std::thread::spawn(move || {
                    measure(addr, INVOKE, 0, per_client, Duration::from_secs(30))
                })
            })
            .collect();
        let mut total = 0;
        for h in handles {
            let l = h
                .join()
                .map_err(|_| std::io::Error::other("client thread panicked"))??;
            total += l.count;
        }
        rep.concurrent_per_sec = total as f64 / started.elapsed().as_secs_f64();
        rep.concurrent_total = total;
        rep.shutdown_no_ext = {
            let mut r = r;
            r.terminate(Duration::from_secs(5))
        };
    }

    eprintln!("rapid-bench: the function's own invoke cycle");
    rep.runtime_cycle = Some(procs::runtime_cycle(
        &o.function,
        500,
        if o.quick { 3_000 } else { 20_000 },
    )?);

    eprintln!("rapid-bench: cold start");
    let rounds = if o.quick { 5 } else { 20 };
    let mut own_next = Vec::new();
    let mut own_resp = Vec::new();
    for _ in 0..rounds {
        let (n, r) = procs::runtime_startup(&o.function)?;
        own_next.push(n);
        own_resp.push(r);
    }
    let mut cold = Vec::new();
    for _ in 0..rounds {
        let t = Instant::now();
        let r = procs::rapid(&o.rapid, &o.function, &[], None)?;
        let mut c = Conn::connect(r.addr, Duration::from_secs(10))?;
        let (status, body) = c.post(INVOKE, client::BODY)?;
        cold.push(t.elapsed());
        if status != 200 || body != client::BODY {
            return Err(std::io::Error::other(format!(
                "cold invoke answered {status}: {}",
                String::from_utf8_lossy(&body)
            )));
        }
    }
    rep.runtime_first_next = median(own_next);
    rep.runtime_first_response = median(own_resp);
    rep.rapid_cold = median(cold);

    eprintln!("rapid-bench: one-shot");
    {
        let r = procs::rapid(&o.rapid, &o.function, &["--one-shot=recycle".into()], None)?;
        let n = if o.quick { 100 } else { 500 };
        rep.one_shot = Some(measure(r.addr, INVOKE, 20, n, Duration::from_secs(60))?);
    }

    if let Some(sf) = &o.stream_function {
        eprintln!("rapid-bench: streaming 100 MiB");
        let bytes = 100 * 1024 * 1024;
        let f = procs::floor()?;
        let r = procs::rapid(&o.rapid, sf, &[], None)?;
        let mut floor_conn = Conn::connect(f.addr, Duration::from_secs(10))?;
        let mut c = Conn::connect(r.addr, Duration::from_secs(10))?;
        c.post(INVOKE, br#"{"chunks":1,"size":16}"#)?;
        // Time to first byte: a stream whose chunks come 100 ms apart.
        let t = Instant::now();
        let mut first = None;
        c.post_stream(INVOKE, br#"{"chunks":5,"size":16,"delay_ms":100}"#, |_| {
            first.get_or_insert(t.elapsed());
        })?;
        rep.stream_ttfb = first;
        rep.stream_total = Some(t.elapsed());
        // Alternate direct and relayed copies and keep the median of each: a
        // 100 MiB copy takes a tenth of a second, short enough for a busy
        // neighbour to distort any single one.
        let runs = if o.quick { 3 } else { 9 };
        let body = br#"{"chunks":1600,"size":65536}"#;
        let pid = r.pid();
        let (res, max_rss) = procs::with_rss_sampler(pid, || {
            let mut direct = Vec::new();
            let mut relayed = Vec::new();
            for _ in 0..runs {
                let t = Instant::now();
                let mut got = 0usize;
                floor_conn.post_stream(&format!("/stream/{bytes}"), b"", |n| got += n)?;
                direct.push(got as f64 / 1048576.0 / t.elapsed().as_secs_f64());
                let t = Instant::now();
                let mut got = 0usize;
                c.post_stream(INVOKE, body, |n| got += n)?;
                if got < bytes {
                    return Err(std::io::Error::other(format!("stream short: {got} bytes")));
                }
                relayed.push(got as f64 / 1048576.0 / t.elapsed().as_secs_f64());
            }
            Ok::<(f64, f64), std::io::Error>((median_f64(direct), median_f64(relayed)))
        });
        let (direct, relayed) = res?;
        rep.stream_floor_mib_s = Some(direct);
        rep.stream_rapid_mib_s = Some(relayed);
        rep.stream_rss_kib = max_rss;
    }
    Ok(rep)
}

impl Conn {
    /// POST and read a (chunked) answer, counting bytes as they arrive.
    pub fn post_stream(
        &mut self,
        path: &str,
        body: &[u8],
        on_data: impl FnMut(usize),
    ) -> std::io::Result<u16> {
        self.send(path, body)?;
        self.read_response(on_data).map(|(s, _)| s)
    }
}
