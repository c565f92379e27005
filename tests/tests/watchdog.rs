//! Watchdog modes, black-box: the real rapid binary in `--mode http`,
//! `streaming`, `serializing` and `static`, and the inproc example binary,
//! driven over HTTP with real processes as functions.

use std::io::{BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rapid_tests::{eventually, free_port, request, stream, Rapid, Resp, TempDir};

fn bin(name: &str) -> PathBuf {
    rapid_tests::rapid_bin().with_file_name(name)
}

/// rapid in http mode in front of `fx-upstream`; `tmp` holds the lock file.
fn http_mode(tmp: &TempDir, args: &[&str], env: &[(&str, &str)]) -> Rapid {
    let port = free_port();
    let mut b = Rapid::builder()
        .watchdog("http")
        .env("TMPDIR", &tmp.0.display().to_string())
        .arg("--upstream-url")
        .arg(format!("http://127.0.0.1:{port}"));
    for a in args {
        b = b.arg(*a);
    }
    for (k, v) in env {
        b = b.env(k, v);
    }
    b.bootstrap(bin("fx-upstream"))
        .arg_after(port.to_string())
        .start()
}

/// rapid forking `sh -c SCRIPT` per request.
fn fork_mode(mode: &str, script: &str, args: &[&str]) -> Rapid {
    let mut b = Rapid::builder().watchdog(mode).arg("--suppress-lock");
    for a in args {
        b = b.arg(*a);
    }
    b.bootstrap("/bin/sh")
        .arg_after("-c")
        .arg_after(script)
        .start()
}

fn get(addr: SocketAddr, path: &str) -> Resp {
    request(addr, "GET", path, &[], b"")
}

fn post(addr: SocketAddr, path: &str, body: &[u8]) -> Resp {
    request(addr, "POST", path, &[], body)
}

/// Wait until `/_/health` answers 200.
fn wait_healthy(r: &Rapid) {
    assert!(
        eventually(Duration::from_secs(10), || get(r.invoke, "/_/health")
            .status
            == 200),
        "never healthy; stderr:\n{}",
        r.stderr()
    );
}

/// A sample's name and its labels in a canonical order (the exposition
/// format does not fix the order of labels).
fn series(name_and_labels: &str) -> (String, Vec<String>) {
    match name_and_labels.split_once('{') {
        None => (name_and_labels.to_owned(), Vec::new()),
        Some((name, labels)) => {
            let mut labels: Vec<String> = labels
                .trim_end_matches('}')
                .split(',')
                .map(str::to_owned)
                .collect();
            labels.sort();
            (name.to_owned(), labels)
        }
    }
}

/// The value of an unlabelled or labelled sample in Prometheus text.
fn sample(text: &str, name_and_labels: &str) -> Option<f64> {
    let want = series(name_and_labels);
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (k, v) = l.rsplit_once(' ')?;
        (series(k) == want).then(|| v.parse().ok()).flatten()
    })
}

#[test]
fn http_mode_proxies_method_path_query_headers_and_body() {
    let tmp = TempDir::new("wd-http");
    let r = http_mode(&tmp, &[], &[]);
    wait_healthy(&r);
    let resp = request(
        r.invoke,
        "PUT",
        "/a/b?c=d&e=%20f",
        &[("x-custom", "yes"), ("x-call-id", "call-123")],
        b"payload",
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.text(), "payload");
    assert_eq!(resp.header("x-seen-method"), Some("PUT"));
    assert_eq!(resp.header("x-seen-path"), Some("/a/b?c=d&e=%20f"));
    assert_eq!(resp.header("x-seen-call-id"), Some("call-123"));
    assert_eq!(resp.header("x-call-id"), Some("call-123"));
    let took: f64 = resp
        .header("x-duration-seconds")
        .and_then(|v| v.parse().ok())
        .expect("X-Duration-Seconds");
    assert!((0.0..5.0).contains(&took));

    // Without a call id one is generated, and the upstream sees the same.
    let resp = post(r.invoke, "/", b"x");
    let id = resp.header("x-call-id").expect("generated call id");
    assert_eq!(id.len(), 36, "{id}");
    assert_eq!(resp.header("x-seen-call-id"), Some(id));

    // Upstream statuses pass through.
    let resp = get(r.invoke, "/status/418");
    assert_eq!(resp.status, 418);
    assert_eq!(resp.text(), "status 418");

    // The lock file exists while ready.
    assert!(tmp.path(".lock").exists());
}

#[test]
fn http_mode_streams_server_sent_events_as_they_come() {
    let tmp = TempDir::new("wd-sse");
    let r = http_mode(&tmp, &[], &[]);
    wait_healthy(&r);
    let s = stream(r.invoke, "/sse", b"", None);
    assert_eq!(s.status, 200);
    assert_eq!(s.header("content-type"), Some("text/event-stream"));
    assert!(s.end.is_ok(), "{:?}", s.end);
    let body = String::from_utf8_lossy(&s.body()).into_owned();
    assert_eq!(body, "data: event 0\n\ndata: event 1\n\ndata: event 2\n\n");
    assert!(
        s.pieces.len() >= 3,
        "events arrived as {} pieces",
        s.pieces.len()
    );
    let spread = s.pieces[s.pieces.len() - 1].0 - s.pieces[0].0;
    assert!(
        spread >= Duration::from_millis(150),
        "not streamed: {spread:?}"
    );
}

#[test]
fn http_mode_relays_an_upgraded_connection() {
    let tmp = TempDir::new("wd-ws");
    let r = http_mode(&tmp, &[], &[]);
    wait_healthy(&r);
    let mut s = TcpStream::connect(r.invoke).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    s.write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
        .expect("write");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut byte).expect("read head"), 1, "closed early");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: echo"), "{head}");
    for msg in [&b"ping"[..], b"a second message"] {
        s.write_all(msg).expect("write upgraded");
        let mut got = vec![0u8; msg.len()];
        s.read_exact(&mut got).expect("echo");
        assert_eq!(got, msg);
    }
}

#[test]
fn http_mode_waits_for_a_slow_upstream_before_it_is_ready() {
    let tmp = TempDir::new("wd-slowready");
    let t = Instant::now();
    let r = http_mode(&tmp, &[], &[("FX_READY_DELAY_MS", "1000")]);
    let early = get(r.invoke, "/_/ready");
    assert_eq!(early.status, 503, "{}", early.text());
    assert!(early.text().contains("starting"), "{}", early.text());
    assert!(!tmp.path(".lock").exists(), "lock file before ready");
    // A request sent now waits for the upstream instead of failing.
    let resp = post(r.invoke, "/", b"patience");
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.text(), "patience");
    assert!(
        t.elapsed() >= Duration::from_millis(900),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(get(r.invoke, "/_/ready").status, 200);
    assert!(eventually(Duration::from_secs(2), || tmp
        .path(".lock")
        .exists()));
}

#[test]
fn http_mode_restarts_a_dead_upstream() {
    let tmp = TempDir::new("wd-restart");
    let r = http_mode(&tmp, &[], &[]);
    wait_healthy(&r);
    let before = post(r.invoke, "/", b"x");
    let pid = before.header("x-pid").expect("pid").to_owned();
    let died = get(r.invoke, "/exit");
    assert_eq!(died.status, 502, "{}", died.text());
    assert!(died.text().contains("upstream"), "{}", died.text());
    let mut after = None;
    assert!(eventually(Duration::from_secs(10), || {
        let resp = post(r.invoke, "/", b"y");
        let ok = resp.status == 200;
        after = Some(resp);
        ok
    }));
    let after = after.expect("answer");
    assert_eq!(after.text(), "y");
    assert_ne!(after.header("x-pid"), Some(pid.as_str()), "a fresh process");
    assert!(r.stderr().contains("restarting it"), "{}", r.stderr());
    let m = get(r.metrics.expect("metrics"), "/metrics").text();
    assert!(sample(&m, "rapid_resets_total") >= Some(1.0), "{m}");
}

#[test]
fn http_mode_without_restart_reports_unhealthy_and_keeps_answering() {
    let tmp = TempDir::new("wd-norestart");
    let r = http_mode(&tmp, &["--restart", "never"], &[]);
    wait_healthy(&r);
    assert!(eventually(Duration::from_secs(2), || tmp
        .path(".lock")
        .exists()));
    assert_eq!(get(r.invoke, "/exit").status, 502);
    assert!(
        eventually(Duration::from_secs(5), || !tmp.path(".lock").exists()),
        "the lock file goes with the function's health"
    );
    assert!(eventually(Duration::from_secs(5), || {
        get(r.invoke, "/_/health").status == 503
    }));
    let h = get(r.invoke, "/_/health");
    assert!(
        h.text().contains("unhealthy") && h.text().contains("exit status 3"),
        "{}",
        h.text()
    );
    let resp = post(r.invoke, "/", b"x");
    assert_eq!(resp.status, 502);
    assert!(
        resp.text().contains("the function is down"),
        "{}",
        resp.text()
    );
    assert!(resp.header("x-call-id").is_some());
}

#[test]
fn http_mode_exec_timeout_and_x_timeout_give_504() {
    let tmp = TempDir::new("wd-timeout");
    let r = http_mode(&tmp, &["--exec-timeout", "700ms"], &[]);
    wait_healthy(&r);
    let t = Instant::now();
    let resp = get(r.invoke, "/slow?ms=5000");
    assert_eq!(resp.status, 504, "{}", resp.text());
    assert!(
        resp.text().contains("exec timeout (700ms)"),
        "{}",
        resp.text()
    );
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
    // X-Timeout shortens it further; it cannot lengthen it.
    let t = Instant::now();
    let resp = request(
        r.invoke,
        "GET",
        "/slow?ms=5000",
        &[("x-timeout", "200ms")],
        b"",
    );
    assert_eq!(resp.status, 504);
    assert!(resp.text().contains("(200ms)"), "{}", resp.text());
    assert!(
        t.elapsed() < Duration::from_millis(650),
        "{:?}",
        t.elapsed()
    );
    let resp = request(r.invoke, "GET", "/slow?ms=1", &[("x-timeout", "soon")], b"");
    assert_eq!(resp.status, 400);
    assert!(resp.text().contains("'soon'"), "{}", resp.text());
    // A fast request still works on the same sandbox.
    assert_eq!(get(r.invoke, "/slow?ms=10").status, 200);
}

#[test]
fn http_mode_passes_the_ready_path_through() {
    let tmp = TempDir::new("wd-readypath");
    let flag = tmp.path("ready-flag");
    let r = http_mode(
        &tmp,
        &["--ready-path", "/healthz"],
        &[("FX_READY_FILE", &flag.display().to_string())],
    );
    // The upstream is up (it prints this once listening) but not ready yet.
    assert!(r.wait_stdout("fx-upstream listening", Duration::from_secs(10)));
    assert_eq!(
        get(r.invoke, "/_/ready").status,
        503,
        "not ready before the flag"
    );
    std::fs::write(&flag, b"").expect("flag");
    assert!(eventually(Duration::from_secs(5), || get(
        r.invoke, "/_/ready"
    )
    .status
        == 200));
    assert_eq!(get(r.invoke, "/_/ready").text(), "ready");
    std::fs::remove_file(&flag).expect("unflag");
    let r2 = get(r.invoke, "/_/ready");
    assert_eq!((r2.status, r2.text().as_str()), (503, "not ready"));
}

#[test]
fn max_inflight_answers_429_past_the_limit() {
    let tmp = TempDir::new("wd-inflight");
    let r = http_mode(&tmp, &["--max-inflight", "2"], &[]);
    wait_healthy(&r);
    let addr = r.invoke;
    let threads: Vec<_> = (0..6)
        .map(|_| std::thread::spawn(move || get(addr, "/slow?ms=1500")))
        .collect();
    // While the limit is reached, readiness says so.
    assert!(eventually(Duration::from_secs(5), || {
        get(addr, "/_/ready").status == 429
    }));
    let answers: Vec<Resp> = threads
        .into_iter()
        .map(|t| t.join().expect("thread"))
        .collect();
    let ok = answers.iter().filter(|a| a.status == 200).count();
    let limited: Vec<&Resp> = answers.iter().filter(|a| a.status == 429).collect();
    assert_eq!(ok + limited.len(), 6, "{answers:?}");
    assert!(
        ok >= 2 && limited.len() >= 3,
        "200s: {ok}, 429s: {}",
        limited.len()
    );
    assert!(limited[0].text().contains("Max concurrent requests: 2"));
    assert_eq!(get(addr, "/_/ready").status, 200, "ready again when idle");
    let m = get(r.metrics.expect("metrics"), "/metrics").text();
    assert_eq!(
        sample(&m, "http_requests_total{code=\"429\",method=\"get\"}"),
        Some(limited.len() as f64),
        "{m}"
    );
}

#[test]
fn sigterm_drains_unready_first_then_finishes_in_flight_requests() {
    let tmp = TempDir::new("wd-drain");
    let mut r = http_mode(&tmp, &["--healthcheck-interval", "1s"], &[]);
    wait_healthy(&r);
    assert!(eventually(Duration::from_secs(2), || tmp
        .path(".lock")
        .exists()));
    let addr = r.invoke;
    let slow = std::thread::spawn(move || get(addr, "/slow?ms=2000"));
    let metrics = r.metrics.expect("metrics");
    assert!(eventually(Duration::from_secs(5), || {
        sample(&get(metrics, "/metrics").text(), "http_requests_in_flight") == Some(1.0)
    }));
    let function_pids = r.children();
    assert!(!function_pids.is_empty());
    let t = Instant::now();
    r.signal(libc::SIGTERM);
    assert!(eventually(Duration::from_secs(1), || get(
        addr,
        "/_/health"
    )
    .status
        == 503));
    assert_eq!(get(addr, "/_/ready").status, 503);
    assert!(!tmp.path(".lock").exists(), "lock file removed at once");
    // During the drain delay requests are still served.
    let during = post(addr, "/", b"still here");
    assert_eq!((during.status, during.text().as_str()), (200, "still here"));
    let answered = slow.join().expect("thread");
    assert_eq!(answered.status, 200, "{}", answered.text());
    assert_eq!(answered.text(), "slept 2000");
    let status = r.wait_exit(Duration::from_secs(10)).expect("rapid exits");
    assert!(status.success(), "{status:?}");
    assert!(
        t.elapsed() >= Duration::from_millis(1500),
        "waited for in-flight: {:?}",
        t.elapsed()
    );
    for pid in function_pids {
        assert!(
            !rapid_tests::alive(pid),
            "function process {pid} left behind"
        );
    }
}

#[test]
fn one_shot_serves_one_request_and_exits_probes_do_not_count() {
    let tmp = TempDir::new("wd-oneshot");
    let mut r = http_mode(&tmp, &[], &[("one_shot", "true")]);
    wait_healthy(&r);
    assert_eq!(get(r.invoke, "/_/ready").status, 200);
    assert_eq!(get(r.invoke, "/_/health").status, 200);
    let first = post(r.invoke, "/", b"only one");
    assert_eq!(first.text(), "only one");
    let status = r
        .wait_exit(Duration::from_secs(10))
        .expect("exits after one");
    assert!(status.success(), "{status:?}");
}

#[test]
fn one_shot_refuses_a_second_request_while_draining() {
    let r = fork_mode("streaming", "sleep 0.5; cat", &["--one-shot=exit"]);
    let addr = r.invoke;
    let first = std::thread::spawn(move || post(addr, "/", b"first"));
    assert!(
        eventually(Duration::from_secs(5), || get(addr, "/_/ready").status
            == 503),
        "unready while the one request runs"
    );
    assert!(!first.is_finished(), "the 503 came while it still ran");
    let second = post(addr, "/", b"second");
    assert_eq!(second.status, 503, "{}", second.text());
    assert!(second.text().contains("one-shot"), "{}", second.text());
    assert_eq!(first.join().expect("thread").text(), "first");
}

#[test]
fn one_shot_recycle_gives_each_request_a_fresh_upstream() {
    let tmp = TempDir::new("wd-recycle");
    let r = http_mode(&tmp, &["--one-shot=recycle"], &[]);
    wait_healthy(&r);
    let mut pids = Vec::new();
    for i in 0..3 {
        let mut got = None;
        assert!(eventually(Duration::from_secs(10), || {
            let resp = post(r.invoke, "/", format!("n{i}").as_bytes());
            let ok = resp.status == 200;
            if ok {
                got = Some(resp);
            }
            ok
        }));
        let resp = got.expect("answer");
        assert_eq!(resp.text(), format!("n{i}"));
        pids.push(resp.header("x-pid").expect("pid").to_owned());
    }
    pids.dedup();
    assert_eq!(pids.len(), 3, "one upstream per request: {pids:?}");
}

#[test]
fn streaming_mode_streams_stdout_with_cgi_environment() {
    let r = fork_mode(
        "streaming",
        r#"echo "$Http_Method $Http_Path $Http_Query $Http_X_Custom"; sleep 0.3; cat"#,
        &[],
    );
    let mut s = TcpStream::connect(r.invoke).expect("connect");
    rapid_tests::send_request(&mut s, "POST", "/p/q?x=1", &[("x-custom", "hdr")], b"body!");
    let mut arrivals = Vec::new();
    let t = Instant::now();
    let resp = rapid_tests::read_response(&mut BufReader::new(s), |d| {
        arrivals.push((t.elapsed(), d.to_vec()))
    });
    assert_eq!(resp.status, 200);
    assert_eq!(resp.text(), "POST /p/q x=1 hdr\nbody!");
    assert!(arrivals.len() >= 2, "{arrivals:?}");
    assert!(arrivals[arrivals.len() - 1].0 - arrivals[0].0 >= Duration::from_millis(200));
}

#[test]
fn streaming_mode_failure_before_the_first_byte_is_a_500_with_stderr() {
    let r = fork_mode("streaming", "echo 'it broke' >&2; exit 7", &[]);
    let resp = post(r.invoke, "/", b"x");
    assert_eq!(resp.status, 500);
    assert!(resp.text().contains("exit status 7"), "{}", resp.text());
    assert!(resp.text().contains("it broke"), "{}", resp.text());
    let m = get(r.metrics.expect("metrics"), "/metrics").text();
    assert_eq!(
        sample(&m, "rapid_invokes_total{outcome=\"error\"}"),
        Some(1.0),
        "{m}"
    );
}

#[test]
fn streaming_mode_timeout_kills_a_grandchild_holding_stdout() {
    // The grandchild keeps stdout open: only killing the tree ends the call.
    let r = fork_mode("streaming", "sleep 60 & wait", &["--exec-timeout", "500ms"]);
    let t = Instant::now();
    let resp = post(r.invoke, "/", b"x");
    assert_eq!(resp.status, 504, "{}", resp.text());
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert!(
        eventually(Duration::from_secs(3), || r.children().is_empty()),
        "left behind: {:?}",
        r.children()
    );
    // After the first byte the response is cut instead.
    let r = fork_mode(
        "streaming",
        "echo started; sleep 60 & wait",
        &["--exec-timeout", "500ms"],
    );
    let s = stream(r.invoke, "/", b"x", None);
    assert_eq!(s.status, 200);
    assert_eq!(s.body(), b"started\n");
    assert!(s.end.is_err(), "the cut must be visible to the client");
    assert!(eventually(Duration::from_secs(3), || r
        .children()
        .is_empty()));
}

#[test]
fn serializing_mode_buffers_and_checks_the_exit_status() {
    let r = fork_mode(
        "serializing",
        r#"printf '%s|' "$Http_Method"; cat; echo; echo "warning on stderr" >&2"#,
        &["--content-type", "text/plain"],
    );
    let resp = post(r.invoke, "/", b"abc");
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.text(), "POST|abc\n");
    assert_eq!(resp.header("content-type"), Some("text/plain"));
    assert!(
        resp.header("content-length").is_some(),
        "buffered, not chunked"
    );
    assert!(
        r.wait_stdout("warning on stderr", Duration::from_secs(5)),
        "{}",
        r.stdout()
    );

    let r = fork_mode(
        "serializing",
        "echo partial; echo 'bad input' >&2; exit 3",
        &[],
    );
    let resp = post(r.invoke, "/", b"abc");
    assert_eq!(resp.status, 500);
    assert!(resp.text().contains("exit status 3"), "{}", resp.text());
    assert!(resp.text().contains("bad input"), "{}", resp.text());
    assert!(
        !resp.text().contains("partial"),
        "stdout of a failed run is not the answer"
    );

    let r = fork_mode(
        "serializing",
        "sleep 60 & wait",
        &["--exec-timeout", "400ms"],
    );
    assert_eq!(post(r.invoke, "/", b"").status, 504);
    assert!(eventually(Duration::from_secs(3), || r
        .children()
        .is_empty()));
}

#[test]
fn a_one_mebibyte_log_line_is_forwarded_intact_with_its_prefix() {
    let r = fork_mode(
        "streaming",
        r#"head -c 1048576 /dev/zero | tr '\0' x >&2; echo >&2; echo done"#,
        &[],
    );
    let resp = request(r.invoke, "POST", "/", &[("x-call-id", "big-line")], b"");
    assert_eq!(resp.text(), "done\n");
    let want = format!("{}\n", "x".repeat(1 << 20));
    assert!(eventually(Duration::from_secs(5), || r
        .stdout()
        .contains(&want)));
    let out = r.stdout();
    let line = out
        .lines()
        .find(|l| l.contains("xxxx"))
        .expect("the long line");
    let (prefix, rest) = line.split_once(": ").expect("prefixed");
    assert!(prefix.ends_with("stderr [big-line]"), "{prefix}");
    assert_eq!(rest.len(), 1 << 20);
    assert!(rest.bytes().all(|b| b == b'x'));
}

#[test]
fn static_mode_serves_files_with_validators_and_refuses_traversal() {
    let tmp = TempDir::new("wd-static");
    let root = tmp.path("www");
    std::fs::create_dir_all(root.join("sub")).expect("dirs");
    std::fs::write(root.join("index.html"), "<h1>home</h1>").expect("index");
    std::fs::write(root.join("sub/a.txt"), "0123456789").expect("file");
    std::fs::write(tmp.path("secret.txt"), "TOP SECRET").expect("secret");
    let r = Rapid::builder()
        .watchdog("static")
        .arg("--static-path")
        .arg(root.display().to_string())
        .start();
    let home = get(r.invoke, "/");
    assert_eq!((home.status, home.text().as_str()), (200, "<h1>home</h1>"));
    let a = get(r.invoke, "/sub/a.txt");
    assert_eq!(a.text(), "0123456789");
    let etag = a.header("etag").expect("etag").to_owned();
    assert!(a.header("last-modified").is_some());
    let again = request(
        r.invoke,
        "GET",
        "/sub/a.txt",
        &[("if-none-match", &etag)],
        b"",
    );
    assert_eq!(again.status, 304);
    let part = request(
        r.invoke,
        "GET",
        "/sub/a.txt",
        &[("range", "bytes=2-5")],
        b"",
    );
    assert_eq!((part.status, part.text().as_str()), (206, "2345"));
    assert_eq!(get(r.invoke, "/missing").status, 404);
    assert_eq!(post(r.invoke, "/sub/a.txt", b"").status, 405);
    for evil in [
        "/../secret.txt",
        "/sub/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/sub/..%2f..%2fsecret.txt",
        "/..%5csecret.txt",
    ] {
        let resp = get(r.invoke, evil);
        assert!(
            resp.status == 404 || resp.status == 400,
            "{evil}: {} {}",
            resp.status,
            resp.text()
        );
        assert!(
            !resp.text().contains("TOP SECRET"),
            "{evil} escaped the root"
        );
    }
}

#[test]
fn metrics_are_scraped_and_parse() {
    let tmp = TempDir::new("wd-metrics");
    let r = http_mode(&tmp, &[], &[]);
    wait_healthy(&r);
    for _ in 0..3 {
        assert_eq!(post(r.invoke, "/", b"x").status, 200);
    }
    assert_eq!(get(r.invoke, "/status/503").status, 503);
    let resp = get(r.metrics.expect("metrics"), "/metrics");
    assert_eq!(resp.status, 200);
    assert!(resp
        .header("content-type")
        .unwrap_or("")
        .starts_with("text/plain"));
    let m = resp.text();
    for line in m.lines().filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let (_, v) = line.rsplit_once(' ').expect("name value");
        assert!(v.parse::<f64>().is_ok(), "unparseable sample {line:?}");
    }
    let post_200 = "code=\"200\",method=\"post\"";
    assert_eq!(
        sample(&m, &format!("http_requests_total{{{post_200}}}")),
        Some(3.0)
    );
    assert_eq!(
        sample(
            &m,
            &format!("http_request_duration_seconds_count{{{post_200}}}")
        ),
        Some(3.0)
    );
    assert_eq!(
        sample(
            &m,
            &format!("http_request_duration_seconds_bucket{{{post_200},le=\"+Inf\"}}")
        ),
        Some(3.0)
    );
    assert_eq!(
        sample(&m, "http_requests_total{code=\"503\",method=\"get\"}"),
        Some(1.0)
    );
    assert_eq!(sample(&m, "http_requests_in_flight"), Some(0.0));
    assert_eq!(
        sample(&m, "rapid_invokes_total{outcome=\"success\"}"),
        Some(3.0)
    );
    assert_eq!(
        sample(&m, "rapid_invokes_total{outcome=\"error\"}"),
        Some(1.0)
    );
    assert_eq!(get(r.metrics.expect("metrics"), "/other").status, 404);
}

/// The inproc example binary on a free port.
struct Inproc {
    child: std::process::Child,
    addr: SocketAddr,
}

impl Inproc {
    fn start(args: &[&str]) -> Inproc {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        let child = Command::new(bin("inproc-function"))
            .arg("--watchdog-address")
            .arg(addr.to_string())
            .arg("--metrics-port")
            .arg(free_port().to_string())
            .arg("--healthcheck-interval")
            .arg("0")
            .args(args)
            .env("TMPDIR", std::env::temp_dir())
            .env("suppress_lock", "true")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start inproc-function");
        assert!(eventually(Duration::from_secs(10), || TcpStream::connect(
            addr
        )
        .is_ok()));
        Inproc { child, addr }
    }
}

impl Drop for Inproc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn inproc_mode_serves_a_linked_handler_with_the_same_front() {
    let f = Inproc::start(&["--exec-timeout", "400ms", "--max-inflight", "4"]);
    let resp = post(f.addr, "/anything", b"in-process");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.text(), "in-process");
    assert_eq!(resp.header("x-handled-by"), Some("inproc"));
    assert!(resp.header("x-call-id").is_some() && resp.header("x-duration-seconds").is_some());
    assert_eq!(get(f.addr, "/_/health").status, 200);
    let panicked = get(f.addr, "/panic");
    assert_eq!(panicked.status, 500);
    assert!(panicked.text().contains("panicked"), "{}", panicked.text());
    let slow = get(f.addr, "/sleep?ms=3000");
    assert_eq!(slow.status, 504, "{}", slow.text());
    assert_eq!(post(f.addr, "/", b"still fine").text(), "still fine");
}

#[test]
fn watchdog_options_come_from_of_watchdog_variables_and_bad_values_stop_startup() {
    let port = free_port();
    let run = |env: &[(&str, &str)]| {
        let mut c = Command::new(rapid_tests::rapid_bin());
        c.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default());
        for (k, v) in env {
            c.env(k, v);
        }
        c.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .expect("run rapid")
    };
    let out = run(&[
        ("mode", "streaming"),
        ("function_process", "cat"),
        ("exec_timeout", "abc"),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("'abc'") && err.contains("exec-timeout"),
        "{err}"
    );
    let out = run(&[("mode", "static")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("static_path"));
    let out = run(&[
        ("mode", "http"),
        ("fprocess", "/nonexistent/server"),
        ("upstream_url", "127.0.0.1:1"),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/server"));

    // Aliases alone configure a working sandbox.
    let metrics = free_port();
    let mut child = Command::new(rapid_tests::rapid_bin())
        .env("mode", "serializing")
        .env("function_process", "tr a-z A-Z")
        .env("port", port.to_string())
        .env("metrics_port", metrics.to_string())
        .env("RAPID_WATCHDOG_ADDRESS", format!("127.0.0.1:{port}"))
        .env("healthcheck_interval", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start");
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let up = eventually(Duration::from_secs(10), || TcpStream::connect(addr).is_ok());
    let answer = up.then(|| post(addr, "/", b"shout"));
    // SAFETY: signalling our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let status = child.wait().expect("wait");
    assert_eq!(answer.map(|a| a.text()), Some("SHOUT".to_owned()));
    assert!(status.success(), "{status:?}");
}

#[test]
fn the_watchdog_front_drives_a_lambda_runtime_beside_the_invoke_api() {
    let front = free_port();
    let metrics = free_port();
    let r = Rapid::builder()
        .arg("--watchdog-address")
        .arg(format!("127.0.0.1:{front}"))
        .arg("--metrics-port")
        .arg(metrics.to_string())
        .arg("--timeout")
        .arg("1")
        .bootstrap(bin("fx-lambda"))
        .start();
    let front: SocketAddr = format!("127.0.0.1:{front}").parse().expect("addr");
    let healthy = || get(front, "/_/health").status == 200;
    assert!(eventually(Duration::from_secs(10), || {
        TcpStream::connect(front).is_ok() && healthy()
    }));
    // Any path: the body is the event, the runtime's answer the response.
    let resp = request(
        front,
        "POST",
        "/any/path",
        &[("x-call-id", "lam-1")],
        br#"{"a":1}"#,
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.text(), r#"{"a":1}"#);
    assert_eq!(resp.header("x-call-id"), Some("lam-1"));
    assert!(resp.header("x-amzn-requestid").is_some());
    // A function error is a 500 with Lambda's error body; a timeout a 504.
    let err = post(front, "/", br#"{"error":"bad thing"}"#);
    assert_eq!(err.status, 500, "{}", err.text());
    assert_eq!(err.header("x-amz-function-error"), Some("Unhandled"));
    assert!(err.text().contains("bad thing"), "{}", err.text());
    let slow = post(front, "/", br#"{"sleep_ms":3000}"#);
    assert_eq!(slow.status, 504, "{}", slow.text());
    assert!(slow.text().contains("Sandbox.Timedout"), "{}", slow.text());
    // The Invoke API still works on the same sandbox, through the same queue.
    let classic = r.invoke(br#"{"b":2}"#);
    assert_eq!(classic.text(), r#"{"b":2}"#);
    let m = get(
        format!("127.0.0.1:{metrics}").parse().expect("addr"),
        "/metrics",
    )
    .text();
    assert_eq!(
        sample(&m, "rapid_invokes_total{outcome=\"success\"}"),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        sample(&m, "rapid_invokes_total{outcome=\"error\"}"),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        sample(&m, "rapid_invokes_total{outcome=\"timeout\"}"),
        Some(1.0),
        "{m}"
    );
}

#[test]
fn the_invoke_api_drives_a_watchdog_backend_when_given_an_address() {
    let invoke: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let r = Rapid::builder()
        .watchdog("serializing")
        .arg("--suppress-lock")
        .arg("--runtime-interface-emulator-address")
        .arg(invoke.to_string())
        .arg("--exec-timeout")
        .arg("1s")
        .bootstrap("/bin/sh")
        .arg_after("-c")
        .arg_after(r#"read -r ev; case "$ev" in *fail*) echo "no good" >&2; exit 4;; *slow*) sleep 30;; esac; echo "got $ev""#)
        .start();
    assert!(eventually(Duration::from_secs(10), || TcpStream::connect(
        invoke
    )
    .is_ok()));
    let path = "/2015-03-31/functions/function/invocations";
    // The Invoke API takes JSON events only, whatever serves them.
    let not_json = post(invoke, path, b"hello\n");
    assert_eq!(not_json.status, 400, "{}", not_json.text());
    assert_eq!(not_json.error_type(), "InvalidRequestContentException");
    let ok = post(invoke, path, b"\"hello\"\n");
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(ok.text(), "got \"hello\"\n");
    assert!(ok.header("x-amzn-requestid").is_some());
    let failed = post(invoke, path, b"\"fail\"\n");
    assert_eq!(failed.status, 200);
    assert_eq!(failed.header("x-amz-function-error"), Some("Unhandled"));
    assert_eq!(failed.error_type(), "Function.Unknown");
    assert!(
        failed.error_message().contains("exit status 4"),
        "{}",
        failed.text()
    );
    assert!(
        failed.error_message().contains("no good"),
        "{}",
        failed.text()
    );
    let slow = post(invoke, path, b"\"slow\"\n");
    assert_eq!(slow.header("x-amz-function-error"), Some("Unhandled"));
    assert_eq!(slow.error_type(), "Sandbox.Timedout");
    let event = request(
        invoke,
        "POST",
        path,
        &[("x-amz-invocation-type", "Event")],
        b"\"e\"\n",
    );
    assert_eq!(event.status, 202);
    let dry = request(
        invoke,
        "POST",
        path,
        &[("x-amz-invocation-type", "DryRun")],
        b"",
    );
    assert_eq!(dry.status, 204);
    assert_eq!(get(invoke, path).status, 405);
    let missing = post(invoke, "/nope", b"");
    assert_eq!(missing.status, 404);
    assert_eq!(missing.error_type(), "ResourceNotFoundException");
    // The watchdog front serves the same backend at the same time.
    assert_eq!(post(r.invoke, "/", b"front\n").text(), "got front\n");
}

#[test]
fn a_client_that_goes_away_takes_its_forked_process_with_it() {
    for mode in ["serializing", "streaming"] {
        let r = fork_mode(mode, "sleep 60 & wait", &["--exec-timeout", "120s"]);
        let mut s = TcpStream::connect(r.invoke).expect("connect");
        rapid_tests::send_request(&mut s, "POST", "/", &[], b"x");
        assert!(
            eventually(Duration::from_secs(5), || !r.children().is_empty()),
            "{mode}: the function never started"
        );
        drop(s);
        assert!(
            eventually(Duration::from_secs(5), || r.children().is_empty()),
            "{mode}: left behind after the client left: {:?}",
            r.children()
        );
        // rapid keeps serving.
        let r2 = post(r.invoke, "/_/health", b"");
        assert_eq!(r2.status, 200, "{mode}");
    }
}

#[test]
fn the_control_api_drives_a_watchdog_backend() {
    let tmp = TempDir::new("wd-control");
    let port = free_port();
    let mut r = Rapid::builder()
        .watchdog("http")
        .control()
        .env("TMPDIR", &tmp.0.display().to_string())
        .arg("--upstream-url")
        .arg(format!("http://127.0.0.1:{port}"))
        .bootstrap(bin("fx-upstream"))
        .arg_after(port.to_string())
        .start();
    wait_healthy(&r);
    let state = r.control("GET", "/v1/state", "").json();
    assert_eq!(state["mode"], "http", "{state}");
    assert_eq!(state["health"], "Ready", "{state}");
    assert_eq!(state["inFlight"], 0, "{state}");
    let first = r.control("POST", "/v1/invoke", "payload");
    assert_eq!((first.status, first.text().as_str()), (200, "payload"));
    assert!(first.header("x-call-id").is_some());
    let pid = first.header("x-pid").expect("pid").to_owned();
    // Reset: a fresh upstream process.
    let reset = r
        .control("POST", "/v1/reset", r#"{"reason":"FAILURE"}"#)
        .json();
    assert_eq!(reset["ResetSuccess"]["reason"], "FAILURE", "{reset}");
    let again = r.control("POST", "/v1/invoke", "x");
    assert_eq!(again.status, 200, "{}", again.text());
    assert_ne!(again.header("x-pid"), Some(pid.as_str()));
    let m = get(r.metrics.expect("metrics"), "/metrics").text();
    assert_eq!(sample(&m, "rapid_resets_total"), Some(1.0), "{m}");
    // Lambda-only commands are refused with the reason.
    let init = r.control("POST", "/v1/init", "{}");
    assert_eq!(init.status, 409);
    assert!(
        init.text().contains("watchdog mode http"),
        "{}",
        init.text()
    );
    assert_eq!(r.control("GET", "/v1/invoke", "").status, 405);
    assert_eq!(r.control("POST", "/v1/nope", "").status, 404);
    // Shutdown answers once the function is stopped; rapid then exits 0.
    let children = r.children();
    let done = r.control("POST", "/v1/shutdown", "").json();
    assert!(done["durationMs"].as_f64().is_some(), "{done}");
    let status = r.wait_exit(Duration::from_secs(10)).expect("exits");
    assert!(status.success(), "{status:?}");
    for pid in children {
        assert!(!rapid_tests::alive(pid), "{pid} left behind");
    }
}

#[test]
fn read_timeout_bounds_a_stalled_request_body() {
    let r = fork_mode("serializing", "cat", &["--read-timeout", "400ms"]);
    let mut s = TcpStream::connect(r.invoke).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    // Promise 100 bytes, send 5, stall.
    s.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nhello")
        .expect("write");
    let t = Instant::now();
    let resp = rapid_tests::read_response(&mut BufReader::new(s), |_| {});
    assert_eq!(resp.status, 400, "{}", resp.text());
    assert!(resp.text().contains("timed out"), "{}", resp.text());
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    // The sandbox is fine afterwards.
    assert_eq!(post(r.invoke, "/", b"next").text(), "next");
}

#[test]
fn huge_x_timeout_and_oversize_buffered_bodies_are_answered_not_fatal() {
    let r = fork_mode("serializing", "cat", &["--exec-timeout", "0"]);
    // No exec timeout: X-Timeout alone sets the budget, however large.
    let resp = request(
        r.invoke,
        "POST",
        "/",
        &[("x-timeout", "18446744073709551615")],
        b"big budget",
    );
    assert_eq!((resp.status, resp.text().as_str()), (200, "big budget"));
    // Serializing mode buffers the body: past 64 MiB it is a 413.
    let body = vec![b'x'; 64 * 1024 * 1024 + 1];
    let resp = post(r.invoke, "/", &body);
    assert_eq!(resp.status, 413, "{}", resp.text());
    assert!(resp.text().contains("67108864"), "{}", resp.text());
    assert_eq!(post(r.invoke, "/", b"still up").text(), "still up");
}

#[test]
fn the_watchdog_front_over_lambda_is_unready_until_init_completes() {
    let front: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let r = Rapid::builder()
        .arg("--watchdog-address")
        .arg(front.to_string())
        .arg("--metrics-port")
        .arg("0")
        .env("FX_INIT", "sleep:1500")
        .bootstrap(bin("fx-lambda"))
        .start();
    assert!(eventually(Duration::from_secs(10), || TcpStream::connect(
        front
    )
    .is_ok()));
    let early = get(front, "/_/health");
    assert_eq!(early.status, 503, "{}", early.text());
    assert!(early.text().contains("starting"), "{}", early.text());
    assert_eq!(get(front, "/_/ready").status, 503);
    // A request meanwhile waits for the init instead of failing.
    let resp = post(front, "/", br#"{"waited":true}"#);
    assert_eq!(
        (resp.status, resp.text().as_str()),
        (200, r#"{"waited":true}"#)
    );
    assert_eq!(get(front, "/_/health").status, 200);
    drop(r);
}

#[test]
fn a_full_queue_is_the_same_refusal_on_every_front() {
    // One sandbox, one queue bound: the Invoke API and the watchdog front
    // refuse the same way, each in its own format.
    let front = free_port();
    let r = Rapid::builder()
        .arg("--watchdog-address")
        .arg(format!("127.0.0.1:{front}"))
        .arg("--metrics-port")
        .arg(free_port().to_string())
        .arg("--max-queue")
        .arg("1")
        .bootstrap(bin("fx-lambda"))
        .start();
    let front: SocketAddr = format!("127.0.0.1:{front}").parse().expect("addr");
    assert!(eventually(Duration::from_secs(10), || {
        TcpStream::connect(front).is_ok() && get(front, "/_/health").status == 200
    }));
    let invoke = r.invoke;
    // One runs, one waits: the queue is full.
    let busy: Vec<_> = (0..2)
        .map(|_| {
            std::thread::spawn(move || {
                request(
                    invoke,
                    "POST",
                    "/2015-03-31/functions/function/invocations",
                    &[],
                    br#"{"sleep_ms":1500}"#,
                )
            })
        })
        .collect();
    assert!(
        eventually(Duration::from_secs(5), || r
            .stdout()
            .contains("START RequestId")),
        "{}",
        r.stderr()
    );
    std::thread::sleep(Duration::from_millis(200));
    let lambda = r.invoke(br#"{"x":1}"#);
    assert_eq!(lambda.status, 429, "{}", lambda.text());
    assert_eq!(lambda.error_type(), "TooManyRequestsException");
    let watchdog = post(front, "/", br#"{"x":1}"#);
    assert_eq!(watchdog.status, 429, "{}", watchdog.text());
    assert_eq!(watchdog.text().trim_end(), lambda.error_message());
    for t in busy {
        assert_eq!(t.join().expect("thread").status, 200);
    }
}

#[test]
fn a_function_answering_429_is_its_failure_not_a_throttle() {
    // The Invoke API over http mode: the upstream's own 429 and 503 are the
    // function's answers (Function.Unknown), never read back as rapid's
    // throttling or unavailability.
    for code in [429, 503] {
        let port = free_port();
        let invoke: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        let r = Rapid::builder()
            .watchdog("http")
            .arg("--suppress-lock")
            .arg("--runtime-interface-emulator-address")
            .arg(invoke.to_string())
            .arg("--upstream-url")
            .arg(format!("http://127.0.0.1:{port}/status/{code}"))
            .bootstrap(bin("fx-upstream"))
            .arg_after(port.to_string())
            .start();
        wait_healthy(&r);
        let resp = post(invoke, "/2015-03-31/functions/function/invocations", b"{}");
        assert_eq!(resp.status, 200, "{}", resp.text());
        assert_eq!(resp.header("x-amz-function-error"), Some("Unhandled"));
        assert_eq!(resp.error_type(), "Function.Unknown", "{}", resp.text());
        assert!(
            resp.error_message().contains(&format!("{code}")),
            "{}",
            resp.text()
        );
    }
}
