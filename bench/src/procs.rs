//! Processes the bench starts: rapid, the floor server, a fake Runtime API,
//! and a minimal extension — all on loopback, all killed on drop.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Ask the kernel to SIGTERM `cmd`'s process when the bench dies, so that not
/// even a panic or a Ctrl-C of the bench leaves rapid, the floor server or a
/// function behind. (Orderly paths kill and reap through [`Proc`]'s `Drop`.)
fn die_with_bench(cmd: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs between fork and exec and only calls
    // async-signal-safe functions (prctl, getppid, raise).
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM as libc::c_ulong) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The bench may have died before the prctl took effect.
            if libc::getppid() == 1 {
                libc::raise(libc::SIGTERM);
            }
            Ok(())
        })
    }
}

/// A free loopback port.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

/// A child killed (SIGKILL) and reaped on drop unless waited for.
pub struct Proc {
    pub child: Child,
    pub addr: SocketAddr,
}

impl Proc {
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// SIGTERM, then how long until it exited.
    pub fn terminate(&mut self, limit: Duration) -> Option<Duration> {
        let t = Instant::now();
        // SAFETY: signalling our own child.
        unsafe {
            libc::kill(self.pid(), libc::SIGTERM);
        }
        while t.elapsed() < limit {
            if let Ok(Some(_)) = self.child.try_wait() {
                return Some(t.elapsed());
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        None
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // SAFETY: signalling our own child.
            unsafe {
                libc::kill(self.pid(), libc::SIGTERM);
            }
            let until = Instant::now() + Duration::from_secs(3);
            while Instant::now() < until {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Start rapid serving `function` with `extra` options; stdout (START/END/REPORT)
/// goes to /dev/null so terminal I/O does not distort the figures.
pub fn rapid(
    bin: &Path,
    function: &Path,
    extra: &[String],
    ext_dir: Option<&Path>,
) -> std::io::Result<Proc> {
    rapid_with(bin, function, extra, ext_dir, Launch::default())
}

/// How [`rapid_with`] starts rapid beyond its options.
#[derive(Debug, Default)]
pub struct Launch {
    /// RLIMIT_NOFILE (soft and hard) for rapid and what it starts.
    pub nofile: Option<u64>,
    /// Where rapid's stderr (its log) goes; `/dev/null` when `None`.
    pub stderr: Option<std::fs::File>,
    /// Variables set for rapid (and so for its runtime).
    pub env: Vec<(String, String)>,
}

/// [`rapid`] with `env` set for rapid (and so for its runtime).
pub fn rapid_env(
    bin: &Path,
    function: &Path,
    extra: &[String],
    ext_dir: Option<&Path>,
    env: &[(&str, &str)],
) -> std::io::Result<Proc> {
    let launch = Launch {
        env: env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        ..Launch::default()
    };
    rapid_with(bin, function, extra, ext_dir, launch)
}

/// [`rapid`], started as `launch` says.
pub fn rapid_with(
    bin: &Path,
    function: &Path,
    extra: &[String],
    ext_dir: Option<&Path>,
    launch: Launch,
) -> std::io::Result<Proc> {
    use std::os::unix::process::CommandExt;
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port())
        .parse()
        .map_err(std::io::Error::other)?;
    let api = format!("127.0.0.1:{}", free_port());
    let mut cmd = Command::new(bin);
    if let Some(n) = launch.nofile {
        let rl = libc::rlimit {
            rlim_cur: n as libc::rlim_t,
            rlim_max: n as libc::rlim_t,
        };
        // SAFETY: setrlimit is async-signal-safe and only reads `rl`, a copy
        // owned by the closure.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setrlimit(libc::RLIMIT_NOFILE, &rl) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let stderr = launch.stderr.map_or_else(Stdio::null, Stdio::from);
    let child = die_with_bench(&mut cmd)
        .arg("--runtime-interface-emulator-address")
        .arg(addr.to_string())
        .arg("--runtime-api-address")
        .arg(api)
        .arg("--extensions-dir")
        .arg(ext_dir.map_or_else(
            || PathBuf::from("/nonexistent/rapid-bench"),
            Path::to_path_buf,
        ))
        .arg("--log-level")
        .arg("warn")
        .args(extra)
        .arg(function)
        .envs(launch.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()?;
    Ok(Proc { child, addr })
}

/// Start this binary as the floor server.
pub fn floor() -> std::io::Result<Proc> {
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port())
        .parse()
        .map_err(std::io::Error::other)?;
    let child = die_with_bench(&mut Command::new(std::env::current_exe()?))
        .arg("floor-server")
        .arg(addr.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()?;
    Ok(Proc { child, addr })
}

/// Resident memory of `pid` (VmRSS, VmHWM) in KiB.
pub fn memory_kib(pid: i32) -> (u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Sample VmRSS of `pid` every 2 ms while `work` runs; returns its result and the max.
pub fn with_rss_sampler<T>(pid: i32, work: impl FnOnce() -> T) -> (T, u64) {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s = stop.clone();
    let sampler = std::thread::spawn(move || {
        let mut max = 0;
        while !s.load(std::sync::atomic::Ordering::Relaxed) {
            max = max.max(memory_kib(pid).0);
            std::thread::sleep(Duration::from_millis(2));
        }
        max
    });
    let out = work();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let max = sampler.join().unwrap_or(0);
    (out, max)
}

/// The runtime's own start-up: spawn `function` against a fake Runtime API
/// and time (spawn → its first `/next`, spawn → its response POST).
pub fn runtime_startup(function: &Path) -> std::io::Result<(Duration, Duration)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let api = listener.local_addr()?;
    let (tx, rx) = std::sync::mpsc::channel::<(&'static str, Instant)>();
    let t0 = Instant::now();
    let mut child = die_with_bench(&mut Command::new(function))
        .env("AWS_LAMBDA_RUNTIME_API", api.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", "bench")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    std::thread::spawn(move || {
        let mut served = false;
        for conn in listener.incoming() {
            let Ok(conn) = conn else { return };
            let tx = tx.clone();
            let first = !served;
            served = true;
            std::thread::spawn(move || fake_api_conn(conn, tx, first));
        }
    });
    let mut next = None;
    let mut response = None;
    let until = Instant::now() + Duration::from_secs(10);
    while (next.is_none() || response.is_none()) && Instant::now() < until {
        if let Ok((what, at)) = rx.recv_timeout(Duration::from_millis(100)) {
            match what {
                "next" if next.is_none() => next = Some(at - t0),
                "response" => response = Some(at - t0),
                _ => {}
            }
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    match (next, response) {
        (Some(n), Some(r)) => Ok((n, r)),
        _ => Err(std::io::Error::other(
            "the function never reached the fake Runtime API",
        )),
    }
}

fn fake_api_conn(
    conn: TcpStream,
    tx: std::sync::mpsc::Sender<(&'static str, Instant)>,
    _first: bool,
) {
    let mut w = match conn.try_clone() {
        Ok(w) => w,
        Err(_) => return,
    };
    let mut r = BufReader::new(conn);
    let mut nexts = 0;
    loop {
        let Some(line) = read_request(&mut r) else {
            return;
        };
        if line.starts_with("GET") && line.contains("/invocation/next") {
            nexts += 1;
            let _ = tx.send(("next", Instant::now()));
            if nexts > 1 {
                // Only one event: park the second /next.
                std::thread::sleep(Duration::from_secs(30));
                return;
            }
            let event = br#"{"hello":"world"}"#;
            let head = format!(
                "HTTP/1.1 200 OK\r\nLambda-Runtime-Aws-Request-Id: 00000000-0000-4000-8000-000000000001\r\nLambda-Runtime-Deadline-Ms: 99999999999999\r\nLambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:us-east-1:012345678912:function:bench\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                event.len()
            );
            let _ = w.write_all(head.as_bytes());
            let _ = w.write_all(event);
        } else {
            let _ = tx.send(("response", Instant::now()));
            let _ = w.write_all(b"HTTP/1.1 202 Accepted\r\nContent-Length: 2\r\n\r\n{}");
        }
    }
}

/// An extensions directory with one external extension: this binary in
/// `extension` mode (registers for INVOKE and SHUTDOWN, exits on SHUTDOWN),
/// also subscribed to telemetry (platform + function, TCP to `telemetry_port`)
/// when a port is given.
pub fn extension_dir(telemetry_port: Option<u16>) -> std::io::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let tag = telemetry_port.map_or_else(String::new, |p| format!("-{p}"));
    let dir = std::env::temp_dir().join(format!("rapid-bench-ext-{}{tag}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let script = dir.join("bench-ext");
    let exe = std::env::current_exe()?;
    let port = telemetry_port.map_or_else(String::new, |p| p.to_string());
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nexec '{}' extension bench-ext {port}\n",
            exe.display()
        ),
    )?;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))?;
    Ok(dir)
}

/// `rapid-bench extension NAME [PORT]`: a minimal INVOKE+SHUTDOWN extension,
/// subscribed to telemetry over TCP when PORT is given.
pub fn run_extension(name: &str, telemetry_port: Option<u16>) -> std::io::Result<()> {
    let api = std::env::var("AWS_LAMBDA_RUNTIME_API").map_err(std::io::Error::other)?;
    let mut s = TcpStream::connect(&api)?;
    s.set_nodelay(true)?;
    let body = br#"{"events":["INVOKE","SHUTDOWN"]}"#;
    let req = format!(
        "POST /2020-01-01/extension/register HTTP/1.1\r\nHost: x\r\nLambda-Extension-Name: {name}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(req.as_bytes())?;
    s.write_all(body)?;
    let mut r = BufReader::new(s.try_clone()?);
    let (id, _) = read_answer(&mut r, "lambda-extension-identifier")?;
    if let Some(port) = telemetry_port {
        let body = format!(
            r#"{{"schemaVersion":"2022-12-13","types":["platform","function"],"buffering":{{"timeoutMs":25}},"destination":{{"protocol":"TCP","port":{port}}}}}"#
        );
        let req = format!(
            "PUT /2022-07-01/telemetry HTTP/1.1\r\nHost: x\r\nLambda-Extension-Identifier: {id}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes())?;
        read_answer(&mut r, "")?;
    }
    loop {
        let req = format!("GET /2020-01-01/extension/event/next HTTP/1.1\r\nHost: x\r\nLambda-Extension-Identifier: {id}\r\n\r\n");
        s.write_all(req.as_bytes())?;
        let (_, body) = read_answer(&mut r, "")?;
        if body.windows(8).any(|w| w == b"SHUTDOWN") {
            return Ok(());
        }
    }
}

/// `rapid-bench stall-runtime`: a runtime that takes one invoke, starts its
/// response upload with `Content-Length: 100`, sends 2 bytes and stalls
/// (for a minute, far past any deadline the soak sets: rapid must answer the
/// invoker at the deadline and kill this process).
pub fn run_stall_runtime() -> std::io::Result<()> {
    let api = std::env::var("AWS_LAMBDA_RUNTIME_API").map_err(std::io::Error::other)?;
    let mut s = TcpStream::connect(&api)?;
    s.write_all(b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: rt\r\n\r\n")?;
    let mut r = BufReader::new(s.try_clone()?);
    let (id, _) = read_answer(&mut r, "lambda-runtime-aws-request-id")?;
    let mut up = TcpStream::connect(&api)?;
    up.write_all(
        format!(
            "POST /2018-06-01/runtime/invocation/{id}/response HTTP/1.1\r\nHost: rt\r\nContent-Length: 100\r\n\r\nab"
        )
        .as_bytes(),
    )?;
    // The fault itself: the upload stalls, not a wait for anything.
    std::thread::sleep(Duration::from_secs(60));
    Ok(())
}

fn read_answer(r: &mut BufReader<TcpStream>, want: &str) -> std::io::Result<(String, Vec<u8>)> {
    let mut line = String::new();
    r.read_line(&mut line)?;
    let mut value = String::new();
    let mut len = 0usize;
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Err(std::io::Error::other("closed"));
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            if !want.is_empty() && k.eq_ignore_ascii_case(want) {
                value = v.trim().to_owned();
            }
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)?;
    Ok((value, body))
}

/// The runtime's own invoke cycle: `function` against a minimal in-process
/// Runtime API that answers `/next` at once with the next event. Returns the
/// mean cycle time over `n` invokes (after `warm`) — the floor for any
/// Runtime API server with this function.
pub fn runtime_cycle(function: &Path, warm: usize, n: usize) -> std::io::Result<Duration> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let api = listener.local_addr()?;
    let mut child = die_with_bench(&mut Command::new(function))
        .env("AWS_LAMBDA_RUNTIME_API", api.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", "bench")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let total = warm + n;
    let (tx, rx) = std::sync::mpsc::channel::<Instant>();
    std::thread::spawn(move || {
        let counter = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        for conn in listener.incoming() {
            let Ok(conn) = conn else { return };
            let _ = conn.set_nodelay(true);
            let (tx, counter) = (tx.clone(), counter.clone());
            std::thread::spawn(move || cycle_conn(conn, tx, counter, total));
        }
    });
    let mut marks = Vec::new();
    while marks.len() < total {
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(t) => marks.push(t),
            Err(_) => break,
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    if marks.len() < total {
        return Err(std::io::Error::other(
            "the function stopped answering the fake Runtime API",
        ));
    }
    Ok((marks[total - 1] - marks[warm - 1]) / n as u32)
}

fn cycle_conn(
    conn: TcpStream,
    tx: std::sync::mpsc::Sender<Instant>,
    counter: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    total: usize,
) {
    let Ok(mut w) = conn.try_clone() else { return };
    let mut r = BufReader::new(conn);
    loop {
        let Some(line) = read_request(&mut r) else {
            return;
        };
        if line.starts_with("GET") {
            let i = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if i >= total {
                std::thread::sleep(Duration::from_secs(30));
                return;
            }
            let event = br#"{"hello":"world","n":1}"#;
            let head = format!(
                "HTTP/1.1 200 OK\r\nLambda-Runtime-Aws-Request-Id: 00000000-0000-4000-8000-{i:012}\r\nLambda-Runtime-Deadline-Ms: 99999999999999\r\nLambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:us-east-1:012345678912:function:bench\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                event.len()
            );
            let mut out = head.into_bytes();
            out.extend_from_slice(event);
            let _ = w.write_all(&out);
        } else {
            let _ = w.write_all(b"HTTP/1.1 202 Accepted\r\nContent-Length: 2\r\n\r\n{}");
            let _ = tx.send(Instant::now());
        }
    }
}

/// A telemetry sink: accepts one TCP connection and counts NDJSON records.
pub fn telemetry_sink() -> std::io::Result<(u16, std::sync::Arc<std::sync::atomic::AtomicUsize>)> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    let port = l.local_addr()?.port();
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let c = count.clone();
    std::thread::spawn(move || {
        for conn in l.incoming().flatten() {
            let r = BufReader::new(conn);
            for _ in r.lines().map_while(Result::ok) {
                c.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    });
    Ok((port, count))
}

/// CPU time (user + system) a process has used so far.
pub fn cpu_time(pid: i32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    // After the command: state is field 3, utime 14 and stime 15 (1-based).
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|i| fields.get(*i)?.parse::<u64>().ok())
        .sum();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_micros(ticks * 1_000_000 / hz)
}

/// Direct children of `pid`.
pub fn children(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            if let Ok(s) = std::fs::read_to_string(t.path().join("children")) {
                out.extend(s.split_whitespace().filter_map(|p| p.parse::<i32>().ok()));
            }
        }
    }
    out
}

/// Read one HTTP/1.1 request (a Content-Length body is consumed); returns
/// its request line, or `None` when the connection ends.
fn read_request(r: &mut BufReader<TcpStream>) -> Option<String> {
    let mut line = String::new();
    if r.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut len = 0usize;
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).ok()? == 0 {
            return None;
        }
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
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).ok()?;
    Some(line)
}
