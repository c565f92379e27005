//! A lean blocking HTTP/1.1 client over one keep-alive connection: the same
//! code measures the floor and rapid, so its own cost cancels out.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// How long any one answer may take before the run fails.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// One keep-alive connection.
pub struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Conn {
    /// Connect, retrying until `limit` passes.
    pub fn connect(addr: SocketAddr, limit: Duration) -> std::io::Result<Conn> {
        let until = Instant::now() + limit;
        loop {
            match TcpStream::connect(addr) {
                Ok(s) => {
                    s.set_nodelay(true)?;
                    s.set_read_timeout(Some(READ_TIMEOUT))?;
                    let writer = s.try_clone()?;
                    return Ok(Conn {
                        reader: BufReader::with_capacity(256 * 1024, s),
                        writer,
                    });
                }
                Err(e) if Instant::now() >= until => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_micros(200)),
            }
        }
    }

    /// POST `body` to `path`; returns the status and the body.
    pub fn post(&mut self, path: &str, body: &[u8]) -> std::io::Result<(u16, Vec<u8>)> {
        self.send(path, body)?;
        self.read_response(|_| {}).map_err(timeout_message)
    }

    /// Write a POST request.
    pub fn send(&mut self, path: &str, body: &[u8]) -> std::io::Result<()> {
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let mut req = Vec::with_capacity(head.len() + body.len());
        req.extend_from_slice(head.as_bytes());
        req.extend_from_slice(body);
        self.writer.write_all(&req)
    }

    /// Read a response, calling `on_data` for each body piece (for streams).
    pub fn read_response(
        &mut self,
        mut on_data: impl FnMut(usize),
    ) -> std::io::Result<(u16, Vec<u8>)> {
        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
        let mut length = None;
        let mut chunked = false;
        loop {
            line.clear();
            self.reader.read_line(&mut line)?;
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                let k = k.trim();
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse::<usize>().ok();
                } else if k.eq_ignore_ascii_case("transfer-encoding")
                    && v.trim().eq_ignore_ascii_case("chunked")
                {
                    chunked = true;
                }
            }
        }
        let mut body = Vec::new();
        if chunked {
            loop {
                line.clear();
                self.reader.read_line(&mut line)?;
                let size = usize::from_str_radix(line.trim(), 16).map_err(std::io::Error::other)?;
                if size == 0 {
                    line.clear();
                    self.reader.read_line(&mut line)?;
                    break;
                }
                // Large streams are counted, not kept.
                let mut left = size;
                let mut buf = [0u8; 64 * 1024];
                while left > 0 {
                    let want = left.min(buf.len());
                    let n = self.reader.read(&mut buf[..want])?;
                    if n == 0 {
                        return Err(std::io::Error::other("stream cut"));
                    }
                    if body.len() < 1024 * 1024 {
                        body.extend_from_slice(&buf[..n]);
                    }
                    on_data(n);
                    left -= n;
                }
                line.clear();
                self.reader.read_line(&mut line)?;
            }
        } else if let Some(n) = length {
            body.resize(n, 0);
            self.reader.read_exact(&mut body)?;
            on_data(n);
        }
        Ok((status, body))
    }
}

/// A read that timed out says so (instead of "Resource temporarily unavailable").
fn timeout_message(e: std::io::Error) -> std::io::Error {
    match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("no answer within {} s", READ_TIMEOUT.as_secs()),
        ),
        _ => e,
    }
}

/// Latency figures of a run.
#[derive(Debug, Clone, Copy)]
pub struct Latency {
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub max_us: f64,
    pub per_sec: f64,
    pub count: usize,
}

/// The request body of every invoke (~24 bytes); the echo function answers it back.
pub const BODY: &[u8] = br#"{"hello":"world","n":1}"#;

/// A run stops early after this many wrong answers (it fails either way).
const MAX_ERRORS: usize = 100;

/// `n` sequential invokes after `warm` warm-up ones, within `limit`; every
/// answer is checked (status 200, body equal to the request).
pub fn measure(
    addr: SocketAddr,
    path: &str,
    warm: usize,
    n: usize,
    limit: Duration,
) -> std::io::Result<Latency> {
    let mut c = Conn::connect(addr, Duration::from_secs(10))?;
    let mut errors = Errors::new(addr);
    let started = Instant::now();
    for _ in 0..warm {
        errors.check(c.post(path, BODY)?)?;
        if started.elapsed() >= limit {
            break;
        }
    }
    let mut samples = Vec::with_capacity(n);
    let started = Instant::now();
    while samples.len() < n && started.elapsed() < limit {
        let t = Instant::now();
        let r = c.post(path, BODY)?;
        samples.push(t.elapsed());
        errors.check(r)?;
    }
    let total = started.elapsed();
    errors.fail_if_any()?;
    Ok(summarise(samples, total))
}

/// Wrong answers seen so far from `addr`, with the first one kept for the message.
struct Errors {
    addr: SocketAddr,
    count: usize,
    first: Option<String>,
}

impl Errors {
    fn new(addr: SocketAddr) -> Errors {
        Errors {
            addr,
            count: 0,
            first: None,
        }
    }

    /// Count a wrong answer; give up once there are too many.
    fn check(&mut self, (status, got): (u16, Vec<u8>)) -> std::io::Result<()> {
        if status != 200 || got != BODY {
            self.count += 1;
            self.first
                .get_or_insert_with(|| format!("{status}: {}", String::from_utf8_lossy(&got)));
            if self.count >= MAX_ERRORS {
                return self.fail_if_any();
            }
        }
        Ok(())
    }

    fn fail_if_any(&self) -> std::io::Result<()> {
        match &self.first {
            Some(first) => Err(std::io::Error::other(format!(
                "{} wrong answer(s) from {} (a run stops after {MAX_ERRORS}); the first: {first}",
                self.count, self.addr
            ))),
            None => Ok(()),
        }
    }
}

/// Percentiles of `samples`.
pub fn summarise(mut samples: Vec<Duration>, total: Duration) -> Latency {
    samples.sort();
    let n = samples.len().max(1);
    let at = |q: f64| {
        samples
            .get(((n as f64 * q) as usize).min(n - 1))
            .map_or(0.0, |d| d.as_secs_f64() * 1e6)
    };
    Latency {
        p50_us: at(0.50),
        p90_us: at(0.90),
        p99_us: at(0.99),
        max_us: samples.last().map_or(0.0, |d| d.as_secs_f64() * 1e6),
        per_sec: samples.len() as f64 / total.as_secs_f64().max(1e-9),
        count: samples.len(),
    }
}

/// Measure several targets in alternating rounds over kept connections, so
/// that a noisy neighbour or a CPU-frequency change hits all of them alike.
/// Returns one summary per target over all its rounds; stops starting new
/// requests once `limit` has passed.
pub fn interleaved(
    targets: &[SocketAddr],
    path: &str,
    warm: usize,
    rounds: usize,
    per_round: usize,
    limit: Duration,
) -> std::io::Result<Vec<Latency>> {
    let started = Instant::now();
    let mut conns = Vec::new();
    let mut errors: Vec<Errors> = targets.iter().map(|a| Errors::new(*a)).collect();
    for (a, e) in targets.iter().zip(&mut errors) {
        let mut c = Conn::connect(*a, Duration::from_secs(10))?;
        for _ in 0..warm {
            e.check(c.post(path, BODY)?)?;
        }
        conns.push(c);
    }
    let mut samples: Vec<Vec<Duration>> =
        vec![Vec::with_capacity(rounds * per_round); targets.len()];
    let mut busy = vec![Duration::ZERO; targets.len()];
    'rounds: for _ in 0..rounds {
        for (i, c) in conns.iter_mut().enumerate() {
            let round = Instant::now();
            for _ in 0..per_round {
                let t = Instant::now();
                let r = c.post(path, BODY)?;
                samples[i].push(t.elapsed());
                errors[i].check(r)?;
            }
            busy[i] += round.elapsed();
            if started.elapsed() >= limit {
                break 'rounds;
            }
        }
    }
    for e in &errors {
        e.fail_if_any()?;
    }
    Ok(samples
        .into_iter()
        .zip(busy)
        .map(|(s, b)| summarise(s, b))
        .collect())
}
