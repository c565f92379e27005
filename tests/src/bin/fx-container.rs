//! Test fixture for `make test-container`: a Lambda runtime (on the real
//! `lambda_runtime` crate), built statically into the test image, that reports
//! what the container test needs to see from inside the container. Per invoke,
//! chosen by the event:
//!
//! * `{"orphans": MS}` — leaves two orphans that live MS ms and exit: one
//!   double-forked, one that called `setsid` before its fork; answers
//!   `{"double": pid, "setsid": pid}` (pids in the container's PID namespace)
//! * `{"alloc_mb": N, "hold_ms": MS}` — allocates N MiB, writes every page,
//!   keeps it MS ms, frees it; answers `{"alloc_mb": N}`
//! * `{"write": PATH}` — creates PATH and removes it again; answers `"ok"` or
//!   the error
//! * `{"ps": true}` — the processes of the container's `/proc`: `[pid, ppid,
//!   state, name]` each
//! * anything else — who it runs as: `uid`, `gid`, `pid`, `args` (its argv
//!   after the program), `handler` (`_HANDLER`), `memory_size`
//!   (`AWS_LAMBDA_FUNCTION_MEMORY_SIZE`)
//!
//! `fx-container orphan double|setsid MS` is the helper that leaves an orphan:
//! a fresh single-threaded process that forks once and exits, printing the
//! pid of the child it leaves behind.

use std::io::Write;
use std::time::Duration;

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::{json, Value};

/// Helper mode: fork a child that lives `ms` and exits, print its pid, exit.
/// Runs before any thread exists, so forking is safe.
fn leave_orphan(kind: &str, ms: u64) -> ! {
    if kind == "setsid" {
        // SAFETY: plain syscall; this process is not a group leader (spawned by std).
        if unsafe { libc::setsid() } < 0 {
            eprintln!("fx-container: setsid failed");
            std::process::exit(1);
        }
    }
    // SAFETY: single-threaded process; the child only sleeps and exits.
    match unsafe { libc::fork() } {
        0 => {
            // Let go of the pipe the runtime reads, so it sees EOF at once.
            // SAFETY: closing our own standard descriptors.
            unsafe {
                libc::close(0);
                libc::close(1);
                libc::close(2);
            }
            std::thread::sleep(Duration::from_millis(ms));
            // SAFETY: ending the child without running the parent's exit handlers.
            unsafe { libc::_exit(0) }
        }
        pid if pid > 0 => {
            println!("{pid}");
            let _ = std::io::stdout().flush();
            std::process::exit(0);
        }
        _ => {
            eprintln!("fx-container: fork failed");
            std::process::exit(1);
        }
    }
}

fn orphan(kind: &str, ms: u64) -> Result<i64, Error> {
    let me = std::env::current_exe()?;
    let out = std::process::Command::new(me)
        .args(["orphan", kind, &ms.to_string()])
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim()
        .parse::<i64>()
        .map_err(|e| format!("orphan helper answered {text:?}: {e}").into())
}

/// `[pid, ppid, state, name]` of every process in this container's /proc.
fn ps() -> Value {
    let mut rows = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return json!([]);
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i64>().ok()) else {
            continue;
        };
        let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
            continue;
        };
        let field = |k: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(k))
                .map(|v| v.trim().to_owned())
                .unwrap_or_default()
        };
        rows.push(json!([
            pid,
            field("PPid:").parse::<i64>().unwrap_or(-1),
            field("State:").chars().next().map(String::from),
            field("Name:")
        ]));
    }
    Value::Array(rows)
}

async fn handler(event: LambdaEvent<Value>) -> Result<Value, Error> {
    let (payload, _ctx) = event.into_parts();
    if let Some(ms) = payload.get("orphans").and_then(Value::as_u64) {
        return Ok(json!({"double": orphan("double", ms)?, "setsid": orphan("setsid", ms)?}));
    }
    if let Some(mb) = payload.get("alloc_mb").and_then(Value::as_u64) {
        let hold = payload.get("hold_ms").and_then(Value::as_u64).unwrap_or(0);
        let mut block = vec![0u8; (mb as usize) << 20];
        // Write every page so that it is resident, not merely reserved.
        for i in (0..block.len()).step_by(4096) {
            block[i] = 1;
        }
        std::hint::black_box(&mut block);
        tokio::time::sleep(Duration::from_millis(hold)).await;
        drop(block);
        return Ok(json!({ "alloc_mb": mb }));
    }
    if let Some(path) = payload.get("write").and_then(Value::as_str) {
        let r = std::fs::write(path, b"x").and_then(|()| std::fs::remove_file(path));
        return Ok(match r {
            Ok(()) => json!("ok"),
            Err(e) => json!(e.to_string()),
        });
    }
    if payload.get("ps").is_some() {
        return Ok(ps());
    }
    // SAFETY: plain getters.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    Ok(json!({
        "uid": uid,
        "gid": gid,
        "pid": std::process::id(),
        "args": std::env::args().skip(1).collect::<Vec<_>>(),
        "handler": std::env::var("_HANDLER").ok(),
        "memory_size": std::env::var("AWS_LAMBDA_FUNCTION_MEMORY_SIZE").ok(),
    }))
}

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("orphan") {
        let kind = args.get(2).map(String::as_str).unwrap_or("double");
        let ms = args.get(3).and_then(|m| m.parse().ok()).unwrap_or(100);
        leave_orphan(kind, ms);
    }
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(lambda_runtime::run(service_fn(handler)))
}
