//! rapid as PID 1 of a fresh PID namespace (`unshare --pid --fork --mount-proc`,
//! as root): orphans are reaped, SIGTERM is an orderly shutdown with exit 0,
//! and nothing survives. Skipped, with a message, where namespaces are not
//! available.

#![allow(clippy::unwrap_used)] // tests fail loudly on unexpected values

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rapid_tests::{eventually, free_port, rapid_bin, request, TempDir};

/// Whether PID namespaces can be made here. Where they cannot, the test says
/// so on the real stderr (not the captured output, so `cargo test` shows it)
/// and is skipped — except as root or with `RAPID_REQUIRE_NAMESPACES` set
/// (CI runs as root), where a missing precondition fails the test.
fn namespaces_available(test: &str) -> bool {
    use std::io::Write as _;
    let ok = Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        return true;
    }
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let required = root || std::env::var_os("RAPID_REQUIRE_NAMESPACES").is_some();
    assert!(
        !required,
        "{test}: `unshare --pid --fork --mount-proc` failed, and namespaces are required here (root or RAPID_REQUIRE_NAMESPACES)"
    );
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {test}: `unshare --pid --fork --mount-proc` is not available here (needs root and PID namespaces)"
    );
    false
}

/// Kills (and reaps) the `unshare` process tree if a test ends early, so a
/// failed assertion never leaves a namespace running.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            for (c, _) in children(self.0.id() as i32) {
                // SAFETY: signalling processes this test started.
                unsafe {
                    libc::kill(c, libc::SIGKILL);
                }
            }
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Direct children of `pid` with their states.
fn children(pid: i32) -> Vec<(i32, char)> {
    let mut out = Vec::new();
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            if let Ok(s) = std::fs::read_to_string(t.path().join("children")) {
                for c in s.split_whitespace().filter_map(|p| p.parse::<i32>().ok()) {
                    let state = std::fs::read_to_string(format!("/proc/{c}/stat"))
                        .ok()
                        .and_then(|st| {
                            st.rsplit(')')
                                .next()
                                .and_then(|r| r.trim_start().chars().next())
                        })
                        .unwrap_or('?');
                    out.push((c, state));
                }
            }
        }
    }
    out
}

#[test]
fn pid1_reaps_orphans_and_shuts_down_cleanly() {
    if !namespaces_available("pid1_reaps_orphans_and_shuts_down_cleanly") {
        return;
    }
    let dir = TempDir::new("pid1");
    // Each invoke leaves a double-forked orphan that exits 50 ms later.
    let boot = rapid_tests::shell_runtime(
        &dir,
        "",
        r#"  (sh -c 'sleep 0.05' &)
  curl -s -o /dev/null -X POST -d "{\"pid\":$$}" "$API/invocation/$ID/response""#,
    );
    let invoke = format!("127.0.0.1:{}", free_port());
    let api = format!("127.0.0.1:{}", free_port());
    let mut unshare = KillOnDrop(
        Command::new("unshare")
            .args(["--pid", "--fork", "--mount-proc", "--kill-child"])
            .arg(rapid_bin())
            .args([
                "--runtime-interface-emulator-address",
                &invoke,
                "--runtime-api-address",
                &api,
            ])
            .args(["--extensions-dir", "/nonexistent"])
            .arg(&boot)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let addr = invoke.parse().unwrap();
    assert!(eventually(Duration::from_secs(10), || {
        std::net::TcpStream::connect(addr).is_ok()
    }));
    // rapid is unshare's only child, and PID 1 inside.
    let rapid = children(unshare.0.id() as i32)[0].0;
    let nspid = std::fs::read_to_string(format!("/proc/{rapid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))
        .map(|v| v.split_whitespace().last().unwrap_or("").to_owned())
        .unwrap();
    assert_eq!(nspid, "1", "rapid runs as PID 1 of the namespace");

    for _ in 0..5 {
        let resp = request(
            addr,
            "POST",
            "/2015-03-31/functions/function/invocations",
            &[],
            b"{}",
        );
        assert_eq!(resp.status, 200);
    }
    // Every orphan (re-parented to PID 1) is reaped soon after it exits: no zombies.
    let reaped = eventually(Duration::from_millis(300), || {
        std::thread::sleep(Duration::from_millis(100));
        children(rapid).iter().all(|(_, state)| *state != 'Z')
    });
    assert!(reaped, "zombies left: {:?}", children(rapid));

    // SIGTERM → orderly shutdown, exit 0, no process left in the namespace.
    let t = Instant::now();
    // SAFETY: signalling a process this test started (via unshare).
    unsafe {
        libc::kill(rapid, libc::SIGTERM);
    }
    let status = loop {
        if let Some(s) = unshare.0.try_wait().unwrap() {
            break s;
        }
        assert!(t.elapsed() < Duration::from_secs(5), "rapid did not exit");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(status.code(), Some(0));
    assert!(!std::path::Path::new(&format!("/proc/{rapid}")).exists());
}

#[test]
fn start_up_errors_as_pid1_have_their_exit_codes() {
    if !namespaces_available("start_up_errors_as_pid1_have_their_exit_codes") {
        return;
    }
    let status = Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc"])
        .arg(rapid_bin())
        .args(["--timeout", "abc"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(2));
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let api = format!("127.0.0.1:{}", free_port());
    let status = Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc"])
        .arg(rapid_bin())
        .args([
            "--runtime-interface-emulator-address",
            &addr,
            "--runtime-api-address",
            &api,
            "/bin/true",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(3));
}

#[test]
fn init_mode_prepares_the_machine_and_powers_off() {
    if !namespaces_available("init_mode_prepares_the_machine_and_powers_off") {
        return;
    }
    // Private mount, UTS and PID namespaces: the mounts, the hostname and the
    // power-off stay inside. /etc/hosts is a bind-mounted copy.
    let dir = TempDir::new("vm-init");
    let hosts = dir.path("hosts");
    std::fs::write(&hosts, "127.0.0.1 localhost\n").unwrap();
    let invoke = format!("127.0.0.1:{}", free_port());
    let api = format!("127.0.0.1:{}", free_port());
    let script = format!(
        "mount --bind {hosts} /etc/hosts && exec {rapid} --init --hostname vmtest \
         --runtime-interface-emulator-address {invoke} --runtime-api-address {api} \
         --extensions-dir /nonexistent {fx}",
        hosts = hosts.display(),
        rapid = rapid_bin().display(),
        fx = env!("CARGO_BIN_EXE_fx-lambda"),
    );
    let err = dir.path("stderr");
    let mut unshare = KillOnDrop(
        Command::new("unshare")
            .args([
                "--pid",
                "--fork",
                "--mount",
                "--uts",
                "--propagation",
                "private",
                "--kill-child",
                "sh",
                "-c",
            ])
            .arg(&script)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .unwrap(),
    );
    let addr = invoke.parse().unwrap();
    assert!(
        eventually(Duration::from_secs(10), || std::net::TcpStream::connect(
            addr
        )
        .is_ok()),
        "{}",
        std::fs::read_to_string(&err).unwrap_or_default()
    );
    let resp = request(
        addr,
        "POST",
        "/2015-03-31/functions/function/invocations",
        &[],
        br#"{"x":1}"#,
    );
    assert_eq!(resp.json()["x"], 1);
    let log = std::fs::read_to_string(&err).unwrap();
    for step in [
        "init: mounted fstype=\"proc\" target=\"/proc\"",
        "init: hostname set hostname=\"vmtest\"",
        "init: loopback up",
        "init: RLIMIT_NOFILE raised",
        "init: machine ready",
    ] {
        assert!(log.contains(step), "missing {step:?} in:\n{log}");
    }
    assert!(std::fs::read_to_string(&hosts)
        .unwrap()
        .contains("sandbox.localdomain"));

    // SIGTERM: orderly shutdown, then power off instead of exiting — in a PID
    // namespace the kernel ends its init as if by SIGINT.
    let rapid = children(unshare.0.id() as i32)
        .into_iter()
        .map(|(p, _)| p)
        .next()
        .unwrap();
    // SAFETY: signalling a process this test started (via unshare).
    unsafe {
        libc::kill(rapid, libc::SIGTERM);
    }
    let t = Instant::now();
    let status = loop {
        if let Some(s) = unshare.0.try_wait().unwrap() {
            break s;
        }
        assert!(t.elapsed() < Duration::from_secs(5), "no power off");
        std::thread::sleep(Duration::from_millis(10));
    };
    let log = std::fs::read_to_string(&err).unwrap();
    assert!(log.contains("shutdown complete"), "{log}");
    assert!(log.contains("init: sync and power off"), "{log}");
    assert!(!log.contains("power off failed"), "{log}");
    use std::os::unix::process::ExitStatusExt;
    let ended_by_sigint =
        status.code() == Some(128 + libc::SIGINT) || status.signal() == Some(libc::SIGINT);
    assert!(ended_by_sigint, "{status:?}\n{log}");
}

#[test]
fn children_inherit_no_descriptor_of_rapid() {
    // The runtime's own descriptors: only stdin/stdout/stderr (and what the
    // shell opens itself, never a socket): rapid's listeners and connections
    // are close-on-exec.
    let dir = TempDir::new("cloexec");
    let out = dir.path("fds");
    let boot = rapid_tests::shell_runtime(
        &dir,
        &format!("ls -l /proc/$$/fd > {}", out.display()),
        rapid_tests::POST_OK,
    );
    let r = rapid_tests::Rapid::builder().bootstrap(&boot).start();
    assert_eq!(r.invoke(b"{}").text(), "\"ok\"");
    let fds = std::fs::read_to_string(&out).unwrap();
    assert!(
        !fds.contains("socket:"),
        "a socket leaked into the runtime:\n{fds}"
    );
    assert!(
        !fds.contains("anon_inode:[eventpoll]"),
        "rapid's epoll leaked:\n{fds}"
    );
}
