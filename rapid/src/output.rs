//! rapid's stdout: the function's output lines and the START / END / REPORT
//! lines, written by one thread that owns stdout, in the order they are sent.
//!
//! The same thread keeps the tail of an invoke's log for `X-Amz-Log-Type: Tail`
//! and measures the runtime's peak memory for REPORT, so neither touches the
//! invoke path.
//!
//! The platform lines are formatted here only: as text (`START`, `END`,
//! `REPORT`), or, with the function's JSON log format, as the JSON records
//! Lambda writes (`platform.start`, `platform.report`, … filtered by the
//! system log level; see `log_controls.rs`).

use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use interop::RequestId;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::oneshot;

use crate::log_controls::{self, LogControls};
use crate::supervisor::memory;
use crate::telemetry_hub::{platform_json, records, Hub};

/// Bytes of log an invoker gets with `X-Amz-Log-Type: Tail`.
pub const TAIL_BYTES: usize = 4096;

/// A line longer than this is written in pieces as it arrives (still intact on stdout).
const PIECE_BYTES: usize = 64 * 1024;

/// The REPORT line of one invoke.
#[derive(Debug, Clone)]
pub struct Report {
    /// Request id.
    pub id: RequestId,
    /// Invoke duration.
    pub duration: Duration,
    /// Init duration after a cold start.
    pub init_duration: Option<Duration>,
    /// Configured memory size, MB.
    pub memory_size_mb: u64,
    /// Runtime pid whose process tree is measured.
    pub runtime_pid: Option<i32>,
    /// The invoke's `status` (`success`, `error`, `failure`, `timeout`).
    pub status: &'static str,
    /// Its error type when it did not succeed.
    pub error_type: Option<String>,
    /// The invoke's tenant.
    pub tenant_id: Option<String>,
}

/// The START line of one invoke.
#[derive(Debug, Clone)]
pub struct StartLine {
    /// Request id.
    pub id: RequestId,
    /// The function version.
    pub version: String,
    /// The function's ARN (JSON: `functionArn`).
    pub function_arn: String,
    /// The invoke's tenant (JSON: `tenantId`).
    pub tenant_id: Option<String>,
    /// The X-Ray trace header (JSON: `tracing`).
    pub trace_id: Option<String>,
}

enum Msg {
    Bytes {
        data: Vec<u8>,
        end_of_line: bool,
    },
    Start {
        id: RequestId,
        version: String,
    },
    End {
        id: RequestId,
    },
    Report(Report),
    /// A REPORT as a JSON `platform.report` line.
    JsonReport(Report),
    CaptureStart,
    CaptureTake(oneshot::Sender<Vec<u8>>),
    /// Everything before it is written and stdout flushed: tell the sender.
    Flush(oneshot::Sender<()>),
}

/// After writing a batch, the writer waits this long before the next one, so
/// that lines arriving meanwhile go out in one `write` and senders need not wake
/// it for every line. Lines reach stdout at most this much later.
const COALESCE: Duration = Duration::from_millis(1);

#[derive(Default)]
struct Queue {
    /// Messages, the sandbox channel each came from and its label.
    msgs: Vec<(u32, Option<Arc<str>>, Msg)>,
    /// The writer waits on the condvar and must be woken.
    sleeping: bool,
}

#[derive(Default)]
struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
    /// The last channel handed out.
    channels: std::sync::atomic::AtomicU32,
}

/// A cheap handle to the stdout writer.
#[derive(Clone)]
pub struct Output {
    shared: Arc<Shared>,
    telemetry: Arc<Hub>,
    /// Which sandbox's output this handle carries (each keeps its own log tail).
    channel: u32,
    /// Written before each of its lines (`[function/sandbox] `), when rapid
    /// runs more than one sandbox.
    label: Option<Arc<str>>,
    /// Pipes still being read (each until its end of file).
    readers: Arc<runtime_api::gauge::Gauge>,
    /// The function's log format and levels (text unless configured).
    logs: LogControls,
}

/// Whose output a pipe carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The runtime: `function` telemetry records.
    Runtime,
    /// An extension: `extension` telemetry records.
    Extension,
}

/// The longest line a telemetry record carries; longer lines are cut there
/// (stdout still gets them whole).
const TELEMETRY_LINE_BYTES: usize = 256 * 1024;

impl Output {
    /// Start the writer thread; lines also go to `telemetry` subscribers.
    pub fn start(telemetry: Arc<Hub>) -> io::Result<Output> {
        Output::start_to(telemetry, Box::new(io::stdout()))
    }

    /// Like [`Output::start`], writing to `sink` instead of stdout.
    pub fn start_to(telemetry: Arc<Hub>, sink: Box<dyn Write + Send>) -> io::Result<Output> {
        let shared = Arc::new(Shared::default());
        let s = shared.clone();
        std::thread::Builder::new()
            .name("rapid-stdout".into())
            .spawn(move || Writer::default().run(&s, sink))?;
        Ok(Output {
            shared,
            telemetry,
            channel: 0,
            label: None,
            readers: Arc::default(),
            logs: LogControls::default(),
        })
    }

    /// This handle with a function's logging controls: its platform lines
    /// and output lines are written (and filtered) as they say.
    pub fn with_log_controls(&self, logs: LogControls) -> Output {
        Output {
            logs,
            ..self.clone()
        }
    }

    /// Whether the function's log format is JSON.
    pub fn json(&self) -> bool {
        self.logs.json()
    }

    /// A handle for a sandbox: the same stdout, its own log tail and its own
    /// telemetry subscribers; `label` (e.g. `hello/2`), when given, is
    /// written as `[hello/2] ` before each of its lines (not in the log tail).
    pub fn for_sandbox(&self, label: Option<&str>, telemetry: Arc<Hub>) -> Output {
        use std::sync::atomic::Ordering;
        Output {
            shared: self.shared.clone(),
            telemetry,
            channel: self.shared.channels.fetch_add(1, Ordering::Relaxed) + 1,
            label: label.map(|l| Arc::from(format!("[{l}] "))),
            readers: self.readers.clone(),
            logs: self.logs,
        }
    }

    fn send(&self, m: Msg) {
        let mut q = self.shared.queue.lock().unwrap_or_else(|p| p.into_inner());
        q.msgs.push((self.channel, self.label.clone(), m));
        if std::mem::take(&mut q.sleeping) {
            drop(q);
            self.shared.wake.notify_one();
        }
    }

    /// `START RequestId: <id> Version: <v>`; JSON: `platform.start`.
    pub fn start_line(&self, s: StartLine) {
        if !self.json() {
            self.send(Msg::Start {
                id: s.id,
                version: s.version,
            });
            return;
        }
        let mut record = records::start(s.id.as_str(), &s.version, s.trace_id.as_deref());
        records::add(&mut record, "functionArn", s.function_arn.into());
        if let Some(t) = s.tenant_id {
            records::add(&mut record, "tenantId", t.into());
        }
        self.platform_line("platform.start", record);
    }

    /// `END RequestId: <id>`; JSON: none (Lambda writes no END record).
    pub fn end_line(&self, id: &RequestId) {
        if !self.json() {
            self.send(Msg::End { id: id.clone() });
        }
    }

    /// `REPORT RequestId: ...`; JSON: `platform.report`.
    pub fn report_line(&self, r: Report) {
        if !self.json() {
            self.send(Msg::Report(r));
        } else if self.logs.keeps_platform("platform.report", Some(r.status)) {
            self.send(Msg::JsonReport(r));
        }
    }

    /// Another platform record as a JSON line, when the log format is JSON
    /// and the system log level keeps it (text: rapid writes none).
    pub fn platform_line(&self, record_type: &str, record: serde_json::Value) {
        let status = record.get("status").and_then(|s| s.as_str());
        if self.json() && self.logs.keeps_platform(record_type, status) {
            self.send(Msg::Bytes {
                data: platform_json(record_type, record).into_bytes(),
                end_of_line: true,
            });
        }
    }

    /// Write a piece of a line; `end_of_line` ends it. Pieces of one line must
    /// come from one sender, in order.
    pub fn piece(&self, data: Vec<u8>, end_of_line: bool) {
        self.send(Msg::Bytes { data, end_of_line });
    }

    /// Begin keeping the log tail of the invoke that starts now.
    pub fn capture_start(&self) {
        self.send(Msg::CaptureStart);
    }

    /// Stop keeping the tail and hand it over (after everything sent before).
    pub fn capture_take(&self, to: oneshot::Sender<Vec<u8>>) {
        self.send(Msg::CaptureTake(to));
    }

    /// Before rapid exits: wait until every forwarded pipe reached its end
    /// (the processes writing to it are gone) and every byte read from them
    /// is written and stdout flushed, at most `limit`; whether it all got out.
    pub async fn finish(&self, limit: Duration) -> bool {
        let until = tokio::time::Instant::now() + limit;
        let drained = self.readers.wait_idle(limit).await;
        let (tx, rx) = oneshot::channel();
        self.send(Msg::Flush(tx));
        let flushed = matches!(tokio::time::timeout_at(until, rx).await, Ok(Ok(())));
        drained && flushed
    }

    /// Forward a child's output pipe line by line until it closes. With the
    /// JSON log format the runtime's lines below the application log level
    /// are dropped (from stdout, the log tail and telemetry alike).
    pub fn forward(&self, fd: OwnedFd, stream: &'static str, source: Source) {
        let out = self.clone();
        let reading = self.readers.enter().0;
        let hub = self.telemetry.clone();
        let json = self.json();
        let logs = self.logs;
        let filtered = json && source == Source::Runtime;
        let record = move |piece: &[u8], pending: &mut Vec<u8>, end: bool| {
            if !hub.active() {
                return;
            }
            let room = TELEMETRY_LINE_BYTES.saturating_sub(pending.len());
            pending.extend_from_slice(&piece[..piece.len().min(room)]);
            if end {
                match source {
                    Source::Runtime => hub.function_line(pending, json),
                    Source::Extension => hub.extension_line(pending, json),
                }
                pending.clear();
            }
        };
        // A line is kept or dropped as a whole, on its first piece: a line
        // longer than one piece has no level that could be read (INFO).
        let keep = move |first_piece: &[u8], whole: bool| {
            !filtered
                || logs.keeps_line(if whole {
                    log_controls::line_level(first_piece)
                } else {
                    log_controls::AppLevel::Info
                })
        };
        let rx = match tokio::net::unix::pipe::Receiver::from_owned_fd(fd) {
            Ok(rx) => rx,
            Err(e) => {
                tracing::warn!(stream, error = %e, "cannot read the runtime's output");
                return;
            }
        };
        tokio::spawn(async move {
            let _reading = reading;
            let mut lines = LineSplitter::new(rx, 16 * 1024);
            let mut pending = Vec::new();
            let mut mid_line = false;
            let mut keeping = true;
            while let Some((data, end_of_line)) = lines.next(stream).await {
                if !mid_line {
                    keeping = keep(&data, end_of_line);
                }
                mid_line = !end_of_line;
                if keeping {
                    record(&data, &mut pending, end_of_line);
                    out.send(Msg::Bytes { data, end_of_line });
                }
            }
        });
    }
}

/// Splits a byte stream into lines without limiting their length: a line
/// longer than [`PIECE_BYTES`] is handed out in pieces as it arrives, the last
/// one marked as its end.
pub struct LineSplitter<R> {
    reader: BufReader<R>,
    line: Vec<u8>,
    /// A piece of the current line was handed out already.
    mid_line: bool,
}

impl<R: tokio::io::AsyncRead + Unpin> LineSplitter<R> {
    /// Read `r` through a buffer of `capacity` bytes.
    pub fn new(r: R, capacity: usize) -> Self {
        LineSplitter {
            reader: BufReader::with_capacity(capacity, r),
            line: Vec::new(),
            mid_line: false,
        }
    }

    /// The next piece and whether it ends its line; `None` at the end of the
    /// stream (a last line without a newline is still ended). `stream` names
    /// the pipe in diagnostics.
    pub async fn next(&mut self, stream: &str) -> Option<(Vec<u8>, bool)> {
        loop {
            let buf = match self.reader.fill_buf().await {
                Ok(b) => b,
                Err(e) => {
                    tracing::debug!(stream, error = %e, "output pipe read failed");
                    &[]
                }
            };
            if buf.is_empty() {
                if self.line.is_empty() && !self.mid_line {
                    return None;
                }
                self.mid_line = false;
                return Some((std::mem::take(&mut self.line), true));
            }
            match buf.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    self.line.extend_from_slice(&buf[..i]);
                    self.reader.consume(i + 1);
                    self.mid_line = false;
                    return Some((std::mem::take(&mut self.line), true));
                }
                None => {
                    let n = buf.len();
                    self.line.extend_from_slice(buf);
                    self.reader.consume(n);
                    if self.line.len() >= PIECE_BYTES {
                        self.mid_line = true;
                        return Some((std::mem::take(&mut self.line), false));
                    }
                }
            }
        }
    }
}

/// How long a memory reading is reused. VmHWM only grows, so a reading this
/// fresh is at most a few milliseconds behind; re-reading /proc for every
/// invoke would cost more CPU than the invoke itself.
const MEMORY_READING_TTL: Duration = Duration::from_millis(20);

/// The last [`TAIL_BYTES`] of lines written: the log tail of an invoke, the
/// stderr quoted in a failed fork-mode answer.
#[derive(Debug, Default)]
pub struct TailBuf(Vec<u8>);

impl TailBuf {
    /// Append a piece of a line (and its end).
    pub fn push(&mut self, data: &[u8], end_of_line: bool) {
        self.0.extend_from_slice(data);
        if end_of_line {
            self.0.push(b'\n');
        }
        // Trim only now and then, not on every line.
        if self.0.len() > 2 * TAIL_BYTES {
            let cut = self.0.len() - TAIL_BYTES;
            self.0.drain(..cut);
        }
    }

    /// The last [`TAIL_BYTES`] bytes.
    pub fn last(&self) -> &[u8] {
        &self.0[self.0.len().saturating_sub(TAIL_BYTES)..]
    }
}

#[derive(Default)]
struct Writer {
    /// The log tails being kept, by channel.
    capture: Vec<(u32, TailBuf)>,
    /// Labelled channels in the middle of a line (its label is written).
    mid_line: Vec<u32>,
    /// Last memory reading: (pid, when, peak KiB).
    memory: Option<(i32, std::time::Instant, u64)>,
}

fn format_ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

/// The REPORT line, given the measured peak memory in KiB.
pub fn report_text(r: &Report, peak_kib: u64) -> String {
    let billed = (r.duration.as_secs_f64() * 1000.0).ceil().max(1.0) as u64;
    let mut s = format!(
        "REPORT RequestId: {}\tDuration: {} ms\tBilled Duration: {} ms\tMemory Size: {} MB\tMax Memory Used: {} MB",
        r.id,
        format_ms(r.duration),
        billed,
        r.memory_size_mb,
        peak_kib.div_ceil(1024),
    );
    if let Some(init) = r.init_duration {
        s.push_str(&format!("\tInit Duration: {} ms", format_ms(init)));
    }
    s
}

/// The `platform.report` record of a REPORT (the 2025-01-29 shape).
pub fn report_record(r: &Report, peak_kib: u64) -> serde_json::Value {
    let mut v = records::report(
        r.id.as_str(),
        r.status,
        r.duration,
        r.memory_size_mb,
        peak_kib.div_ceil(1024),
        r.init_duration,
    );
    if let Some(e) = &r.error_type {
        records::add(&mut v, "errorType", e.as_str().into());
    }
    if let Some(t) = &r.tenant_id {
        records::add(&mut v, "tenantId", t.as_str().into());
    }
    v
}

impl Writer {
    fn run(mut self, shared: &Shared, sink: Box<dyn Write + Send>) {
        let mut w = io::BufWriter::with_capacity(64 * 1024, sink);
        let mut batch = Vec::new();
        loop {
            {
                let mut q = shared.queue.lock().unwrap_or_else(|p| p.into_inner());
                while q.msgs.is_empty() {
                    q.sleeping = true;
                    q = shared.wake.wait(q).unwrap_or_else(|p| p.into_inner());
                }
                std::mem::swap(&mut batch, &mut q.msgs);
            }
            for (channel, label, m) in batch.drain(..) {
                self.handle(&mut w, channel, label.as_deref(), m);
            }
            let _ = w.flush();
            std::thread::sleep(COALESCE);
        }
    }

    fn peak_kib(&mut self, pid: i32) -> u64 {
        let now = std::time::Instant::now();
        match self.memory {
            Some((p, at, kib)) if p == pid && now.duration_since(at) < MEMORY_READING_TTL => kib,
            previous => {
                let mut kib = memory::tree_peak_kib(pid);
                if kib == 0 {
                    // The process is gone (crash): its last reading is the best we have.
                    kib = previous
                        .filter(|(p, _, _)| *p == pid)
                        .map_or(0, |(_, _, k)| k);
                }
                self.memory = Some((pid, now, kib));
                kib
            }
        }
    }

    fn emit(
        &mut self,
        w: &mut impl Write,
        (channel, label): (u32, Option<&str>),
        data: &[u8],
        end_of_line: bool,
    ) {
        if let Some(label) = label {
            let mid = self.mid_line.iter().position(|c| *c == channel);
            match (mid, end_of_line) {
                (None, end) => {
                    let _ = w.write_all(label.as_bytes());
                    if !end {
                        self.mid_line.push(channel);
                    }
                }
                (Some(i), true) => {
                    self.mid_line.swap_remove(i);
                }
                (Some(_), false) => {}
            }
        }
        let _ = w.write_all(data);
        if end_of_line {
            let _ = w.write_all(b"\n");
        }
        if let Some((_, c)) = self.capture.iter_mut().find(|(ch, _)| *ch == channel) {
            c.push(data, end_of_line);
        }
    }

    fn handle(&mut self, w: &mut impl Write, channel: u32, label: Option<&str>, m: Msg) {
        let from = (channel, label);
        match m {
            Msg::Bytes { data, end_of_line } => self.emit(w, from, &data, end_of_line),
            Msg::Start { id, version } => {
                let line = format!("START RequestId: {id} Version: {version}");
                self.emit(w, from, line.as_bytes(), true);
            }
            Msg::End { id } => {
                let line = format!("END RequestId: {id}");
                self.emit(w, from, line.as_bytes(), true);
            }
            Msg::Report(r) => {
                let peak = r.runtime_pid.map(|pid| self.peak_kib(pid)).unwrap_or(0);
                let line = report_text(&r, peak);
                self.emit(w, from, line.as_bytes(), true);
            }
            Msg::JsonReport(r) => {
                let peak = r.runtime_pid.map(|pid| self.peak_kib(pid)).unwrap_or(0);
                let line = platform_json("platform.report", report_record(&r, peak));
                self.emit(w, from, line.as_bytes(), true);
            }
            Msg::CaptureStart => {
                self.capture.retain(|(ch, _)| *ch != channel);
                self.capture.push((channel, TailBuf::default()));
            }
            Msg::CaptureTake(to) => {
                let i = self.capture.iter().position(|(ch, _)| *ch == channel);
                let c = i.map(|i| self.capture.swap_remove(i).1).unwrap_or_default();
                let _ = to.send(c.last().to_vec());
            }
            Msg::Flush(to) => {
                let _ = w.flush();
                let _ = to.send(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(init: Option<u64>) -> Report {
        Report {
            id: RequestId::from_string("id-1".into()),
            duration: Duration::from_micros(1_234_567),
            init_duration: init.map(Duration::from_millis),
            memory_size_mb: 3008,
            runtime_pid: None,
            status: "success",
            error_type: None,
            tenant_id: None,
        }
    }

    #[test]
    fn report_format() {
        assert_eq!(
            report_text(&report(None), 2049),
            "REPORT RequestId: id-1\tDuration: 1234.57 ms\tBilled Duration: 1235 ms\tMemory Size: 3008 MB\tMax Memory Used: 3 MB"
        );
        assert!(report_text(&report(Some(12)), 1).ends_with("\tInit Duration: 12.00 ms"));
    }

    #[tokio::test]
    async fn lines_of_any_length_come_whole_in_pieces() {
        let long = vec![b'x'; 150 * 1024];
        let mut input = b"a\nbb\n".to_vec();
        input.extend_from_slice(&long);
        let mut lines = LineSplitter::new(&input[..], 4096);
        assert_eq!(lines.next("t").await, Some((b"a".to_vec(), true)));
        assert_eq!(lines.next("t").await, Some((b"bb".to_vec(), true)));
        let mut rebuilt = Vec::new();
        loop {
            let (piece, end) = lines.next("t").await.expect("a piece");
            rebuilt.extend_from_slice(&piece);
            if end {
                break;
            }
            assert!(piece.len() >= PIECE_BYTES);
        }
        assert_eq!(rebuilt, long, "the unterminated last line is ended at EOF");
        assert_eq!(lines.next("t").await, None);
        let mut empty = LineSplitter::new(&b""[..], 16);
        assert_eq!(empty.next("t").await, None);
    }

    #[test]
    fn tail_keeps_the_last_bytes() {
        let mut w = Writer::default();
        let mut sink = Vec::new();
        w.handle(&mut sink, 0, None, Msg::CaptureStart);
        w.handle(&mut sink, 1, None, Msg::CaptureStart);
        for i in 0..2000 {
            w.handle(
                &mut sink,
                i % 2,
                None,
                Msg::Bytes {
                    data: format!("line {i}").into_bytes(),
                    end_of_line: true,
                },
            );
        }
        let (tx, mut rx) = oneshot::channel();
        w.handle(&mut sink, 1, None, Msg::CaptureTake(tx));
        let tail = rx.try_recv().unwrap();
        assert_eq!(tail.len(), TAIL_BYTES);
        assert!(tail.ends_with(b"line 1999\n"));
        assert!(
            !String::from_utf8_lossy(&tail).contains("line 1998"),
            "channel 0's lines are not in channel 1's tail"
        );
        assert!(sink.ends_with(b"line 1999\n"));
        assert_eq!(w.capture.len(), 1, "channel 0 still keeps its tail");
    }

    #[test]
    fn labelled_lines_start_with_their_sandbox() {
        let mut w = Writer::default();
        let mut sink = Vec::new();
        let bytes = |data: &str, end_of_line| Msg::Bytes {
            data: data.as_bytes().to_vec(),
            end_of_line,
        };
        w.handle(&mut sink, 3, Some("[a/0] "), Msg::CaptureStart);
        w.handle(&mut sink, 3, Some("[a/0] "), bytes("long ", false));
        // Another sandbox's line comes in between the pieces.
        w.handle(&mut sink, 4, Some("[b/1] "), bytes("other", true));
        w.handle(&mut sink, 3, Some("[a/0] "), bytes("line", true));
        w.handle(
            &mut sink,
            3,
            Some("[a/0] "),
            Msg::End {
                id: RequestId::from_string("r1".into()),
            },
        );
        w.handle(&mut sink, 5, None, bytes("plain", true));
        assert_eq!(
            String::from_utf8_lossy(&sink),
            "[a/0] long [b/1] other\nline\n[a/0] END RequestId: r1\nplain\n"
        );
        let (tx, mut rx) = oneshot::channel();
        w.handle(&mut sink, 3, Some("[a/0] "), Msg::CaptureTake(tx));
        assert_eq!(
            rx.try_recv().unwrap(),
            b"long line\nEND RequestId: r1\n",
            "the log tail has no labels"
        );
    }
}
