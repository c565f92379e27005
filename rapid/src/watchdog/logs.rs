//! The function's output pipes, forwarded to rapid's stdout line by line.
//! Lines of any length go out whole (pieces of one line are written in order,
//! the prefix only before the first); with `prefix_logs` each line starts with
//! the time, the stream and, for a forked call, its call id.

use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::task::JoinHandle;

use crate::output::Output;

/// Bytes of stderr kept for error answers.
pub const TAIL_BYTES: usize = 4096;

/// A line longer than this is written in pieces as it arrives.
const PIECE_BYTES: usize = 64 * 1024;

/// The last [`TAIL_BYTES`] of a stream.
#[derive(Debug, Default, Clone)]
pub struct Tail(Arc<Mutex<Vec<u8>>>);

impl Tail {
    fn push(&self, data: &[u8], end_of_line: bool) {
        let mut t = self.0.lock().unwrap_or_else(|p| p.into_inner());
        t.extend_from_slice(data);
        if end_of_line {
            t.push(b'\n');
        }
        if t.len() > 2 * TAIL_BYTES {
            let cut = t.len() - TAIL_BYTES;
            t.drain(..cut);
        }
    }

    /// What was kept, as text.
    pub fn text(&self) -> String {
        let t = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let start = t.len().saturating_sub(TAIL_BYTES);
        String::from_utf8_lossy(&t[start..]).into_owned()
    }
}

/// Forwards pipes to [`Output`].
#[derive(Clone)]
pub struct Logs {
    out: Output,
    prefix: bool,
    buffer: usize,
}

impl Logs {
    /// A forwarder; `buffer` is the pipe read buffer (`log_buffer_size`).
    pub fn new(out: Output, prefix: bool, buffer: usize) -> Logs {
        Logs {
            out,
            prefix,
            buffer,
        }
    }

    fn prefix(&self, stream: &str, call_id: Option<&str>) -> Vec<u8> {
        if !self.prefix {
            return Vec::new();
        }
        let now = humantime::format_rfc3339_millis(std::time::SystemTime::now());
        match call_id {
            Some(id) => format!("{now} {stream} [{id}]: ").into_bytes(),
            None => format!("{now} {stream}: ").into_bytes(),
        }
    }

    /// Forward `fd` until it closes; keep its tail in `tail` if given.
    pub fn forward(
        &self,
        fd: OwnedFd,
        stream: &'static str,
        call_id: Option<String>,
        tail: Option<Tail>,
    ) -> JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            let rx = match tokio::net::unix::pipe::Receiver::from_owned_fd(fd) {
                Ok(rx) => rx,
                Err(e) => {
                    tracing::warn!(stream, error = %e, "cannot read the function's output");
                    return;
                }
            };
            let mut reader = BufReader::with_capacity(me.buffer, rx);
            // The line so far, and whether its first piece went out already.
            let mut line = Vec::new();
            let mut started = false;
            let emit = |line: &mut Vec<u8>, started: &mut bool, end: bool| {
                if let Some(t) = &tail {
                    t.push(line, end);
                }
                let mut data = if *started {
                    Vec::new()
                } else {
                    me.prefix(stream, call_id.as_deref())
                };
                if data.is_empty() {
                    data = std::mem::take(line);
                } else {
                    data.extend_from_slice(line);
                    line.clear();
                }
                me.out.piece(data, end);
                *started = !end;
            };
            loop {
                let buf = match reader.fill_buf().await {
                    Ok(b) => b,
                    Err(e) => {
                        tracing::debug!(stream, error = %e, "output pipe read failed");
                        break;
                    }
                };
                if buf.is_empty() {
                    break;
                }
                match buf.iter().position(|&b| b == b'\n') {
                    Some(i) => {
                        line.extend_from_slice(&buf[..i]);
                        reader.consume(i + 1);
                        emit(&mut line, &mut started, true);
                    }
                    None => {
                        let n = buf.len();
                        line.extend_from_slice(buf);
                        reader.consume(n);
                        if line.len() >= PIECE_BYTES {
                            emit(&mut line, &mut started, false);
                        }
                    }
                }
            }
            if !line.is_empty() || started {
                emit(&mut line, &mut started, true);
            }
        })
    }
}
