//! The fork modes: one process per request, the request body on its stdin,
//! CGI-style `Http_*` variables in its environment.
//!
//! * `streaming`: stdout goes to the client as it is written. A failure before
//!   the first byte is a 500 with the exit status and the stderr tail; after it
//!   the response is cut (the client sees an incomplete chunked body).
//! * `serializing`: stdout is collected; exit status 0 → 200 with it, anything
//!   else → 500 with the exit status and the stderr tail.
//!
//! The exec timeout kills the whole process tree (a grandchild holding stdout
//! open included) and answers 504.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http::{header, HeaderValue, Request, Response};
use http_body_util::BodyExt;
use nix::sys::signal::Signal;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::pipe;
use tokio::sync::mpsc;

use fatalerror::ErrorType;

use super::backend::{read_body, Backend, Call, CallResult, MAX_BUFFERED_BODY};
use super::cgi::cgi_environment;
use super::config::{Program, Style};
use super::logs::{Logs, Tail};
use crate::sandbox::{Body, BoxError, BoxFuture, InvokeError};
use crate::supervisor::{kill_group, kill_tree, ChildExit, ExitReason, Reaper, SpawnSpec};

/// The fork backend.
pub struct Fork {
    style: Style,
    program: PathBuf,
    args: Vec<String>,
    base_env: Vec<(String, String)>,
    content_type: Option<String>,
    reaper: Arc<Reaper>,
    logs: Logs,
}

impl Fork {
    /// Fork `program` per request.
    pub fn new(
        style: Style,
        program: Program,
        content_type: Option<String>,
        reaper: Arc<Reaper>,
        logs: Logs,
    ) -> Fork {
        Fork {
            style,
            program: program.path,
            args: program.args,
            base_env: std::env::vars().collect(),
            content_type,
            reaper,
            logs,
        }
    }

    fn content_type<B>(&self, req: &Request<B>) -> HeaderValue {
        self.content_type
            .as_deref()
            .and_then(|c| HeaderValue::from_str(c).ok())
            .or_else(|| req.headers().get(header::CONTENT_TYPE).cloned())
            .unwrap_or_else(|| HeaderValue::from_static("application/octet-stream"))
    }

    async fn run(&self, req: Request<Body>, call: Call) -> CallResult {
        let mut env = self.base_env.clone();
        env.extend(cgi_environment(&req));
        env.push(("Http_X_Call_Id".into(), call.id.clone()));
        let spec = SpawnSpec {
            program: self.program.clone(),
            args: self.args.clone(),
            env,
        };
        let content_type = self.content_type(&req);
        let body = req.into_body();
        // serializing reads the whole request before the process starts.
        let body = match self.style {
            Style::Streaming => Input::Stream(body),
            Style::Serializing => {
                let collected = tokio::select! {
                    r = read_body(body, MAX_BUFFERED_BODY) => r,
                    _ = call.expired() => return Err(call.timed_out()),
                };
                Input::Whole(collected?)
            }
        };
        let (exits_tx, exits) = mpsc::unbounded_channel();
        let child = match self.reaper.spawn_with_stdin(&spec, exits_tx) {
            Ok(c) => c,
            Err(e) => {
                return Err(InvokeError::function(
                    ErrorType::RuntimeInvalidEntrypoint,
                    format!("cannot start {}: {e}", self.program.display()),
                ))
            }
        };
        tracing::debug!(pid = child.pid, "forked");
        let tail = Tail::default();
        let stderr = self.logs.forward(
            child.stderr,
            "stderr",
            Some(call.id.clone()),
            Some(tail.clone()),
        );
        if let Some(stdin) = child.stdin {
            tokio::spawn(feed(stdin, body));
        }
        let stdout = match pipe::Receiver::from_owned_fd(child.stdout) {
            Ok(r) => r,
            Err(e) => {
                kill_tree(child.pid);
                return Err(InvokeError::function(
                    ErrorType::SandboxFailure,
                    format!("cannot read the function's stdout: {e}"),
                ));
            }
        };
        let p = Process {
            pid: child.pid,
            exits,
            exited: false,
            stderr: Some(stderr),
            tail,
            program: self.program.display().to_string(),
        };
        match self.style {
            Style::Serializing => p.collect(stdout, call, content_type).await,
            Style::Streaming => p.stream(stdout, call, content_type).await,
        }
    }
}

enum Input {
    Stream(Body),
    Whole(Bytes),
}

/// Write the request body to the child's stdin, then close it. A child that
/// does not read its stdin is not an error.
async fn feed(stdin: std::os::fd::OwnedFd, input: Input) {
    let Ok(mut tx) = pipe::Sender::from_owned_fd(stdin) else {
        return;
    };
    match input {
        Input::Whole(b) => {
            let _ = tx.write_all(&b).await;
        }
        Input::Stream(mut body) => {
            while let Some(frame) = body.frame().await {
                match frame {
                    Ok(f) => {
                        if let Ok(data) = f.into_data() {
                            if tx.write_all(&data).await.is_err() {
                                return;
                            }
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "request body failed; the function's stdin is closed");
                        return;
                    }
                }
            }
        }
    }
}

/// One forked process. Dropped before it exited (the client went away, the
/// call was abandoned), its whole tree is killed.
struct Process {
    pid: i32,
    exits: mpsc::UnboundedReceiver<ChildExit>,
    exited: bool,
    stderr: Option<tokio::task::JoinHandle<()>>,
    tail: Tail,
    program: String,
}

impl Drop for Process {
    fn drop(&mut self) {
        if !self.exited {
            tracing::debug!(
                pid = self.pid,
                "call abandoned: killing the function's process tree"
            );
            kill_tree(self.pid);
        }
    }
}

impl Process {
    /// Wait for the exit status; what is left of the process group goes too.
    async fn exit(&mut self) -> ExitReason {
        let reason = match self.exits.recv().await {
            Some(e) => e.reason,
            None => ExitReason::Signal(Signal::SIGKILL),
        };
        self.exited = true;
        kill_group(self.pid, Signal::SIGKILL);
        reason
    }

    /// The stderr tail, once stderr has closed (or shortly after).
    async fn stderr_tail(&mut self) -> String {
        if let Some(h) = self.stderr.take() {
            let _ = tokio::time::timeout(std::time::Duration::from_millis(200), h).await;
        }
        self.tail.text()
    }

    async fn failure(&mut self, reason: ExitReason) -> CallResult {
        let tail = self.stderr_tail().await;
        tracing::warn!(pid = self.pid, %reason, "the function failed");
        let mut msg = format!("{} failed: {reason}", self.program);
        if !tail.trim().is_empty() {
            msg.push_str("\nstderr:\n");
            msg.push_str(&tail);
        }
        Err(InvokeError::function(ErrorType::FunctionUnknown, msg))
    }

    fn timed_out(&self, call: &Call) -> CallResult {
        tracing::warn!(
            pid = self.pid,
            "exec timeout: killing the function's process tree"
        );
        kill_tree(self.pid);
        Err(call.timed_out())
    }

    async fn collect(
        mut self,
        mut stdout: pipe::Receiver,
        call: Call,
        content_type: HeaderValue,
    ) -> CallResult {
        let mut out = Vec::new();
        let done = async {
            let read = stdout.read_to_end(&mut out).await;
            (read, self.exit().await)
        };
        let (read, reason) = tokio::select! {
            r = done => r,
            _ = call.expired() => return self.timed_out(&call),
        };
        if let Err(e) = read {
            tracing::warn!(error = %e, "reading the function's stdout failed");
        }
        if reason != ExitReason::Code(0) {
            return self.failure(reason).await;
        }
        let mut r = Response::new(Body::from(out));
        r.headers_mut().insert(header::CONTENT_TYPE, content_type);
        Ok(r)
    }

    async fn stream(
        mut self,
        mut stdout: pipe::Receiver,
        call: Call,
        content_type: HeaderValue,
    ) -> CallResult {
        let mut buf = BytesMut::with_capacity(64 * 1024);
        let first = tokio::select! {
            r = stdout.read_buf(&mut buf) => r,
            _ = call.expired() => return self.timed_out(&call),
        };
        match first {
            Ok(0) | Err(_) => {
                // Nothing written: the exit status decides.
                let reason = tokio::select! {
                    r = self.exit() => r,
                    _ = call.expired() => return self.timed_out(&call),
                };
                if reason != ExitReason::Code(0) {
                    return self.failure(reason).await;
                }
                let mut r = Response::new(Body::empty());
                r.headers_mut().insert(header::CONTENT_TYPE, content_type);
                return Ok(r);
            }
            Ok(_) => {}
        }
        let (mut tx, body) = http_body_util::channel::Channel::<Bytes, BoxError>::new(4);
        let first = buf.split().freeze();
        tokio::spawn(async move {
            let relay = async {
                if tx.send_data(first).await.is_err() {
                    return Err("the client went away".to_owned());
                }
                loop {
                    buf.reserve(64 * 1024);
                    match stdout.read_buf(&mut buf).await {
                        Ok(0) => break,
                        Ok(_) => {
                            if tx.send_data(buf.split().freeze()).await.is_err() {
                                return Err("the client went away".to_owned());
                            }
                        }
                        Err(e) => return Err(format!("reading stdout failed: {e}")),
                    }
                }
                match self.exit().await {
                    ExitReason::Code(0) => Ok(()),
                    reason => Err(format!("{} failed mid-stream: {reason}", self.program)),
                }
            };
            let result = tokio::select! {
                r = relay => r,
                _ = call.expired() => {
                    kill_tree(self.pid);
                    Err("exec timeout: the function was killed mid-stream".to_owned())
                }
            };
            if let Err(why) = result {
                tracing::warn!(pid = self.pid, "{why}; the response is cut");
                kill_tree(self.pid);
                tx.abort(why.into());
            }
        });
        let mut r = Response::new(Body::new(body));
        r.headers_mut().insert(header::CONTENT_TYPE, content_type);
        Ok(r)
    }
}

impl Backend for Fork {
    fn call(&self, req: Request<Body>, call: Call) -> BoxFuture<'_, CallResult> {
        Box::pin(self.run(req, call))
    }
}
