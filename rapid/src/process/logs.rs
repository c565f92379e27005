//! The function's output pipes, forwarded to rapid's stdout line by line.
//! Lines of any length go out whole (pieces of one line are written in order,
//! the prefix only before the first); with `prefix_logs` each line starts with
//! the time, the stream and, for a forked call, its call id.

use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};

use tokio::task::JoinHandle;

use crate::output::{LineSplitter, Output, TailBuf};

/// The last bytes of a stream ([`TailBuf`]), shared with the call waiting
/// for them.
#[derive(Debug, Default, Clone)]
pub struct Tail(Arc<Mutex<TailBuf>>);

impl Tail {
    fn push(&self, data: &[u8], end_of_line: bool) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(data, end_of_line);
    }

    /// What was kept, as text.
    pub fn text(&self) -> String {
        let t = self.0.lock().unwrap_or_else(|p| p.into_inner());
        String::from_utf8_lossy(t.last()).into_owned()
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
            let mut lines = LineSplitter::new(rx, me.buffer);
            // The prefix goes before a line's first piece only.
            let mut started = false;
            while let Some((piece, end)) = lines.next(stream).await {
                if let Some(t) = &tail {
                    t.push(&piece, end);
                }
                let data = if started || !me.prefix {
                    piece
                } else {
                    let mut d = me.prefix(stream, call_id.as_deref());
                    d.extend_from_slice(&piece);
                    d
                };
                me.out.piece(data, end);
                started = !end;
            }
        })
    }
}
