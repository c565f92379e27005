//! A small harness for black-box tests: start the real `rapid` binary on free
//! loopback ports, talk HTTP/1.1 to it, read what it prints, and make sure no
//! process outlives the test.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The `rapid` binary: `$RAPID_BIN`, else `target/<profile>/rapid` next to the test.
pub fn rapid_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("RAPID_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> → target/<profile>/rapid
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    dir.join("rapid")
}

/// A port nobody listens on right now, never the same twice in one test
/// binary. Ports come from 20000–32767, below the kernel's ephemeral range
/// (32768–60999), so an outgoing connection of some test cannot take a port
/// between the moment it is picked here and the moment rapid binds it.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const LOW: u32 = 20_000;
    const SPAN: u32 = 12_768;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    // Each test binary starts at its own offset, so binaries run at the
    // same time (rare) do not walk the same ports.
    let start = std::process::id().wrapping_mul(7919) % SPAN;
    for _ in 0..SPAN {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = (LOW + (start + n) % SPAN) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in 20000-32767")
}

/// A temporary directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// A fresh directory under the system temp dir.
    pub fn new(tag: &str) -> TempDir {
        static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("rapid-test-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("temp dir");
        TempDir(p)
    }

    /// Write an executable script into the directory.
    pub fn script(&self, name: &str, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = self.0.join(name);
        std::fs::write(&p, body).expect("write script");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        p
    }

    /// A path inside the directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// How to start rapid.
pub struct Builder {
    extensions_dir: Option<PathBuf>,
    args: Vec<String>,
    env: Vec<(String, String)>,
    command: Vec<String>,
    control: bool,
    watchdog: Option<String>,
    inherit: Option<(i32, PathBuf)>,
}

/// A running rapid.
pub struct Rapid {
    child: Child,
    /// Invoke API address.
    pub invoke: SocketAddr,
    /// Runtime API address.
    pub api: SocketAddr,
    /// Control API address, if enabled.
    pub control: Option<SocketAddr>,
    /// Metrics address (watchdog modes).
    pub metrics: Option<SocketAddr>,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    exited: Option<ExitStatus>,
}

impl Builder {
    /// Extra command-line options.
    pub fn arg(mut self, a: impl Into<String>) -> Self {
        self.args.push(a.into());
        self
    }

    /// An environment variable for rapid (and so for the runtime).
    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }

    /// The bootstrap and its arguments.
    pub fn bootstrap(mut self, program: impl AsRef<Path>) -> Self {
        self.command = vec![program.as_ref().display().to_string()];
        self
    }

    /// A positional argument after the bootstrap (passed to it; with two or
    /// more positional arguments the last one is also `_HANDLER`).
    pub fn arg_after(mut self, a: impl Into<String>) -> Self {
        self.command.push(a.into());
        self
    }

    /// Use this extensions directory (default: none).
    pub fn extensions_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.extensions_dir = Some(dir.as_ref().to_path_buf());
        self
    }

    /// Enable the control API on a free port.
    pub fn control(mut self) -> Self {
        self.control = true;
        self
    }

    /// A watchdog mode (`--mode`): the front listens where the Invoke API would
    /// (`Rapid::invoke`), metrics on a free port; the drain delay is 0 unless
    /// `--healthcheck-interval` is given.
    pub fn watchdog(mut self, mode: &str) -> Self {
        self.watchdog = Some(mode.into());
        self
    }

    /// rapid inherits descriptor `fd` (not close-on-exec), open on `path`, as
    /// a careless parent would pass it.
    pub fn inherit_fd(mut self, fd: i32, path: impl AsRef<Path>) -> Self {
        self.inherit = Some((fd, path.as_ref().to_path_buf()));
        self
    }

    /// Start rapid and wait until its Invoke API accepts connections.
    pub fn start(self) -> Rapid {
        let rapid = self.spawn();
        rapid.wait_listening();
        rapid
    }

    /// Start rapid without waiting for anything.
    pub fn spawn(self) -> Rapid {
        let invoke: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        let api: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        let control: Option<SocketAddr> = self
            .control
            .then(|| format!("127.0.0.1:{}", free_port()).parse().expect("addr"));
        let metrics: Option<SocketAddr> = self
            .watchdog
            .is_some()
            .then(|| format!("127.0.0.1:{}", free_port()).parse().expect("addr"));
        let mut cmd = Command::new(rapid_bin());
        if let (Some(mode), Some(m)) = (&self.watchdog, metrics) {
            cmd.arg("--mode")
                .arg(mode)
                .arg("--watchdog-address")
                .arg(invoke.to_string())
                .arg("--metrics-port")
                .arg(m.port().to_string());
            if !self.args.iter().any(|a| a == "--healthcheck-interval") {
                cmd.arg("--healthcheck-interval").arg("0");
            }
        }
        if self.watchdog.is_none() {
            cmd.arg("--runtime-interface-emulator-address")
                .arg(invoke.to_string());
        }
        cmd.arg("--runtime-api-address")
            .arg(api.to_string())
            .arg("--extensions-dir")
            .arg(
                self.extensions_dir
                    .clone()
                    .unwrap_or_else(|| PathBuf::from("/nonexistent/rapid-test-extensions")),
            )
            .arg("--log-level")
            .arg("debug");
        if let Some(c) = control {
            cmd.arg("--control-api-address").arg(c.to_string());
        }
        cmd.args(&self.args).args(&self.command);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let inherited = self.inherit.as_ref().map(|(fd, path)| {
            let f = std::fs::File::open(path).expect("open the file to inherit");
            (*fd, f)
        });
        if let Some((target, file)) = &inherited {
            use std::os::fd::AsRawFd;
            use std::os::unix::process::CommandExt;
            let (target, source) = (*target, file.as_raw_fd());
            // SAFETY: dup2 is async-signal-safe; the new descriptor has no
            // close-on-exec flag, so rapid inherits it.
            unsafe {
                cmd.pre_exec(move || {
                    if libc::dup2(source, target) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let mut child = cmd
            .spawn()
            .expect("start rapid (run `cargo build --workspace --bins` first)");
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        pump(child.stdout.take().expect("stdout"), stdout.clone());
        pump(child.stderr.take().expect("stderr"), stderr.clone());
        Rapid {
            child,
            invoke,
            api,
            control,
            metrics,
            stdout,
            stderr,
            exited: None,
        }
    }
}

fn pump(mut from: impl Read + Send + 'static, into: Arc<Mutex<Vec<u8>>>) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 64 * 1024];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 {
                break;
            }
            into.lock().expect("buffer").extend_from_slice(&buf[..n]);
        }
    });
}

/// Poll `f` until it returns true or `limit` passes.
pub fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + limit;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= until {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Whether a process exists (and is not a zombie).
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z'),
        Err(_) => false,
    }
}

impl Rapid {
    /// Start building a rapid.
    pub fn builder() -> Builder {
        Builder {
            extensions_dir: None,
            args: Vec::new(),
            env: Vec::new(),
            command: Vec::new(),
            control: false,
            watchdog: None,
            inherit: None,
        }
    }

    /// rapid's pid.
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    fn wait_listening(&self) {
        let ok = eventually(Duration::from_secs(10), || {
            TcpStream::connect(self.invoke).is_ok()
        });
        assert!(
            ok,
            "rapid did not listen on {}; stderr:\n{}",
            self.invoke,
            self.stderr()
        );
    }

    /// Everything rapid printed on stdout so far.
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout.lock().expect("buffer")).into_owned()
    }

    /// Everything rapid printed on stderr so far.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().expect("buffer")).into_owned()
    }

    /// Wait until stdout contains `needle`.
    pub fn wait_stdout(&self, needle: &str, limit: Duration) -> bool {
        eventually(limit, || self.stdout().contains(needle))
    }

    /// Wait until stderr contains `needle`.
    pub fn wait_stderr(&self, needle: &str, limit: Duration) -> bool {
        eventually(limit, || self.stderr().contains(needle))
    }

    /// `POST /2015-03-31/functions/function/invocations` with `body`.
    pub fn invoke(&self, body: &[u8]) -> Resp {
        self.invoke_with(body, &[])
    }

    /// An invoke with extra headers.
    pub fn invoke_with(&self, body: &[u8], headers: &[(&str, &str)]) -> Resp {
        request(
            self.invoke,
            "POST",
            "/2015-03-31/functions/function/invocations",
            headers,
            body,
        )
    }

    /// A control-API request.
    pub fn control(&self, method: &str, path: &str, body: &str) -> Resp {
        let addr = self.control.expect("control API enabled");
        request(addr, method, path, &[], body.as_bytes())
    }

    /// Send a signal to rapid.
    pub fn signal(&self, sig: i32) {
        // SAFETY: signalling a child we started.
        unsafe {
            libc::kill(self.pid(), sig);
        }
    }

    /// Wait for rapid to exit.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        if let Some(s) = self.exited {
            return Some(s);
        }
        let until = Instant::now() + limit;
        loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                self.exited = Some(s);
                return Some(s);
            }
            if Instant::now() >= until {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Pids of rapid's child processes (the runtime, extensions, orphans).
    pub fn children(&self) -> Vec<i32> {
        let pid = self.pid();
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
}

impl Drop for Rapid {
    fn drop(&mut self) {
        if self.exited.is_none() {
            self.signal(libc::SIGTERM);
            if self.wait_exit(Duration::from_secs(5)).is_none() {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
    }
}

/// An HTTP response.
#[derive(Debug, Clone)]
pub struct Resp {
    /// Status code.
    pub status: u16,
    /// Headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The body (chunked bodies decoded).
    pub body: Vec<u8>,
    /// Trailers of a chunked body.
    pub trailers: Vec<(String, String)>,
}

impl Resp {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.text()))
    }

    /// `errorType` of a JSON error body.
    pub fn error_type(&self) -> String {
        self.json()["errorType"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// `errorMessage` of a JSON error body.
    pub fn error_message(&self) -> String {
        self.json()["errorMessage"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

/// One HTTP/1.1 request on a fresh connection.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Resp {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_nodelay(true).ok();
    s.set_read_timeout(Some(Duration::from_secs(60))).ok();
    send_request(&mut s, method, path, headers, body);
    read_response(&mut BufReader::new(s), |_| {})
}

/// Write a request with a Content-Length body.
pub fn send_request(
    s: &mut TcpStream,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) {
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).expect("write head");
    // A server may answer (413) and close before reading a large body: the
    // answer is still there to read.
    let _ = s.write_all(body);
}

fn read_line(r: &mut impl BufRead) -> String {
    let mut line = String::new();
    r.read_line(&mut line).expect("read line");
    line.trim_end_matches(['\r', '\n']).to_owned()
}

/// Read a response; `on_data` sees each body piece as it arrives (chunked
/// bodies chunk by chunk).
pub fn read_response(r: &mut impl BufRead, mut on_data: impl FnMut(&[u8])) -> Resp {
    let status_line = read_line(r);
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let mut headers = Vec::new();
    loop {
        let line = read_line(r);
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
    }
    let mut resp = Resp {
        status,
        headers,
        body: Vec::new(),
        trailers: Vec::new(),
    };
    let chunked = resp
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
    if chunked {
        loop {
            let size_line = read_line(r);
            let size = usize::from_str_radix(size_line.split(';').next().unwrap_or("0").trim(), 16)
                .unwrap_or_else(|_| panic!("bad chunk size {size_line:?}"));
            if size == 0 {
                loop {
                    let line = read_line(r);
                    if line.is_empty() {
                        break;
                    }
                    if let Some((k, v)) = line.split_once(':') {
                        resp.trailers
                            .push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
                    }
                }
                break;
            }
            let mut chunk = vec![0u8; size];
            r.read_exact(&mut chunk).expect("chunk");
            on_data(&chunk);
            resp.body.extend_from_slice(&chunk);
            read_line(r);
        }
    } else if let Some(len) = resp
        .header("content-length")
        .and_then(|v| v.parse::<usize>().ok())
    {
        resp.body = vec![0u8; len];
        r.read_exact(&mut resp.body).expect("body");
        on_data(&resp.body);
    }
    resp
}

/// Path of a fixture script shipped in `tests/fixtures`.
pub fn fixture_script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

/// A streamed response read piece by piece, tolerating a cut connection.
#[derive(Debug)]
pub struct Streamed {
    /// Status code.
    pub status: u16,
    /// Headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// Each body piece and when it arrived.
    pub pieces: Vec<(Instant, Vec<u8>)>,
    /// `Err` when the body ended without its terminating chunk.
    pub end: Result<(), String>,
    /// Trailers after the terminating chunk, names lower-cased.
    pub trailers: Vec<(String, String)>,
}

impl Streamed {
    /// The whole body received.
    pub fn body(&self) -> Vec<u8> {
        self.pieces
            .iter()
            .flat_map(|(_, p)| p.iter().copied())
            .collect()
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// POST `body` to `path` and read a chunked answer as it arrives. `stop_after`
/// closes the connection after that many bytes (a client that goes away).
pub fn stream(addr: SocketAddr, path: &str, body: &[u8], stop_after: Option<usize>) -> Streamed {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_nodelay(true).ok();
    s.set_read_timeout(Some(Duration::from_secs(120))).ok();
    send_request(&mut s, "POST", path, &[], body);
    let mut r = BufReader::with_capacity(256 * 1024, s);
    let mut line = String::new();
    let mut next_line = |r: &mut BufReader<TcpStream>| -> Result<String, String> {
        line.clear();
        match r.read_line(&mut line) {
            Ok(0) => Err("connection closed".into()),
            Ok(_) => Ok(line.trim_end_matches(['\r', '\n']).to_owned()),
            Err(e) => Err(e.to_string()),
        }
    };
    let status_line = next_line(&mut r).expect("status line");
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut headers = Vec::new();
    while let Ok(l) = next_line(&mut r) {
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
    }
    let mut out = Streamed {
        status,
        headers,
        pieces: Vec::new(),
        end: Ok(()),
        trailers: Vec::new(),
    };
    let mut received = 0usize;
    out.end = (|| loop {
        let size_line = next_line(&mut r)?;
        let size = usize::from_str_radix(size_line.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|e| format!("{e}: {size_line:?}"))?;
        if size == 0 {
            loop {
                let l = next_line(&mut r)?;
                if l.is_empty() {
                    return Ok(());
                }
                if let Some((k, v)) = l.split_once(':') {
                    out.trailers
                        .push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
                }
            }
        }
        let mut chunk = vec![0u8; size];
        r.read_exact(&mut chunk).map_err(|e| e.to_string())?;
        received += size;
        out.pieces.push((Instant::now(), chunk));
        next_line(&mut r)?;
        if stop_after.is_some_and(|n| received >= n) {
            return Err("stopped by the client".into());
        }
    })();
    out
}

/// A shell runtime speaking the Runtime API with curl: `prelude` runs once,
/// then for every invoke `$ID` is the request id and `$H` the file holding the
/// `/next` answer's headers; `per_invoke` must post the response (or error).
pub fn shell_runtime(dir: &TempDir, prelude: &str, per_invoke: &str) -> PathBuf {
    dir.script(
        "bootstrap",
        &format!(
            r#"#!/bin/sh
API="http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime"
{prelude}
while true; do
  H=$(mktemp)
  curl -s -D "$H" -o /dev/null "$API/invocation/next"
  ID=$(grep -i '^lambda-runtime-aws-request-id:' "$H" | cut -d' ' -f2 | tr -d '\r')
{per_invoke}
done
"#
        ),
    )
}

/// Post `body` as the response of invoke `$ID` (for [`shell_runtime`]).
pub const POST_OK: &str =
    r#"  curl -s -o /dev/null -X POST -d '"ok"' "$API/invocation/$ID/response""#;

/// A telemetry destination on loopback: collects the bodies POSTed to it
/// (answering each 200); the port and the bodies so far.
pub fn post_sink() -> (u16, Arc<Mutex<String>>) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a sink");
    let port = l.local_addr().expect("sink address").port();
    let got = Arc::new(Mutex::new(String::new()));
    let g = got.clone();
    std::thread::spawn(move || {
        for conn in l.incoming().flatten() {
            let g = g.clone();
            std::thread::spawn(move || {
                let mut r = BufReader::new(match conn.try_clone() {
                    Ok(c) => c,
                    Err(_) => return,
                });
                let mut w = conn;
                loop {
                    let mut len = 0usize;
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if r.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let l = line.trim_end();
                        if l.is_empty() {
                            break;
                        }
                        if let Some(v) = l.to_ascii_lowercase().strip_prefix("content-length:") {
                            len = v.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut body = vec![0; len];
                    if r.read_exact(&mut body).is_err() {
                        return;
                    }
                    g.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push_str(&String::from_utf8_lossy(&body));
                    let _ = w.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
                }
            });
        }
    });
    (port, got)
}

/// The records of the batches a [`post_sink`] received.
pub fn posted_records(got: &Mutex<String>) -> Vec<serde_json::Value> {
    let text = got.lock().map(|g| g.clone()).unwrap_or_default();
    serde_json::Deserializer::from_str(&text)
        .into_iter::<Vec<serde_json::Value>>()
        .flatten()
        .flatten()
        .collect()
}

/// The value of one series (`name{labels}`, spelled as rapid writes it) in
/// a Prometheus / OpenMetrics exposition.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}
