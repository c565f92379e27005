//! Issue 15's faults, black-box: half-closed clients, the fronts' header,
//! body and idle timeouts and their connection bound, static mode and
//! symlinks, descriptors rapid inherited, and http mode's slow client body.

#![allow(clippy::unwrap_used)] // tests fail loudly on unexpected values

use std::io::{BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use rapid_tests::{free_port, request, Rapid, TempDir};

const FX: &str = env!("CARGO_BIN_EXE_fx-lambda");
const INVOKE: &str = "/2015-03-31/functions/function/invocations";

fn bin(name: &str) -> PathBuf {
    rapid_tests::rapid_bin().with_file_name(name)
}

fn lambda(args: &[&str]) -> Rapid {
    let mut b = Rapid::builder().bootstrap(FX);
    for a in args {
        b = b.arg(*a);
    }
    b.start()
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    s
}

/// Read until the peer closes; `Ok(bytes)` then, `Err` when it did not
/// close within the socket's read timeout.
fn read_to_close(s: &mut TcpStream) -> Result<Vec<u8>, std::io::Error> {
    let mut out = Vec::new();
    s.read_to_end(&mut out).map(|_| out)
}

fn invoke_request(body: &str) -> String {
    format!(
        "POST {INVOKE} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

#[test]
fn a_client_that_half_closes_after_its_request_gets_the_answer() {
    let r = lambda(&[]);
    for i in 0..20 {
        let mut s = connect(r.invoke);
        let body = format!("{{\"n\":{i}}}");
        s.write_all(invoke_request(&body).as_bytes()).unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        let resp = rapid_tests::read_response(&mut BufReader::new(s), |_| {});
        assert_eq!(resp.status, 200, "try {i}: {}", resp.text());
        assert_eq!(resp.json(), serde_json::json!({ "n": i }), "try {i}");
    }
}

#[test]
fn a_silent_connection_is_closed_after_the_header_timeout() {
    let r = lambda(&["--header-timeout", "300ms"]);
    let mut s = connect(r.invoke);
    let t = Instant::now();
    let got = read_to_close(&mut s).expect("rapid closes a silent connection");
    assert!(got.is_empty(), "{got:?}");
    assert!(
        t.elapsed() >= Duration::from_millis(300),
        "{:?}",
        t.elapsed()
    );
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
}

#[test]
fn a_partial_header_is_closed_after_the_header_timeout() {
    let r = lambda(&["--header-timeout", "300ms"]);
    let mut s = connect(r.invoke);
    s.write_all(format!("POST {INVOKE} HTTP/1.1\r\nHost: x\r\n").as_bytes())
        .unwrap();
    let t = Instant::now();
    read_to_close(&mut s).expect("rapid closes a connection whose head never ends");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    // Everyone else is served.
    assert_eq!(r.invoke(b"{}").status, 200);
}

#[test]
fn a_body_that_stalls_is_answered_408_with_json() {
    let r = lambda(&["--body-timeout", "300ms"]);
    let mut s = connect(r.invoke);
    s.write_all(
        format!("POST {INVOKE} HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{{\"a\"")
            .as_bytes(),
    )
    .unwrap();
    let t = Instant::now();
    let resp = rapid_tests::read_response(&mut BufReader::new(s), |_| {});
    assert_eq!(resp.status, 408, "{}", resp.text());
    assert_eq!(
        resp.error_type(),
        "RequestTimeoutException",
        "{}",
        resp.text()
    );
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert_eq!(r.invoke(b"{}").status, 200);
}

#[test]
fn an_idle_keep_alive_connection_is_closed_after_the_keepalive_timeout() {
    let r = lambda(&["--keepalive-timeout", "400ms"]);
    let mut s = connect(r.invoke);
    s.write_all(invoke_request("{}").as_bytes()).unwrap();
    let mut reader = BufReader::new(s.try_clone().unwrap());
    let resp = rapid_tests::read_response(&mut reader, |_| {});
    assert_eq!(resp.status, 200);
    let t = Instant::now();
    let mut rest = Vec::new();
    reader
        .read_to_end(&mut rest)
        .expect("rapid closes the idle connection");
    assert!(rest.is_empty());
    assert!(
        t.elapsed() >= Duration::from_millis(400),
        "{:?}",
        t.elapsed()
    );
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
}

#[test]
fn at_the_connection_bound_idle_connections_make_room_and_silent_ones_time_out() {
    let r = lambda(&["--max-connections", "2", "--header-timeout", "1s"]);
    // Two kept-alive connections, idle after one answer each: at the bound.
    let mut idle = Vec::new();
    for _ in 0..2 {
        let mut s = connect(r.invoke);
        s.write_all(invoke_request("{}").as_bytes()).unwrap();
        let mut reader = BufReader::new(s.try_clone().unwrap());
        assert_eq!(rapid_tests::read_response(&mut reader, |_| {}).status, 200);
        idle.push(reader);
    }
    // A third client is served at once: an idle one is closed for it.
    let t = Instant::now();
    assert_eq!(r.invoke(b"{\"third\":1}").status, 200);
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    let mut closed = 0;
    for reader in &mut idle {
        let mut rest = Vec::new();
        reader
            .get_ref()
            .set_read_timeout(Some(Duration::from_millis(200)))
            .ok();
        if reader.read_to_end(&mut rest).is_ok() {
            closed += 1;
        }
    }
    assert!(closed >= 1, "no idle connection was closed for the new one");
    drop(idle);
    // Two silent connections hold the bound; a caller waits for the header
    // timeout to free a slot, not for ever.
    let silent: Vec<TcpStream> = (0..2).map(|_| connect(r.invoke)).collect();
    let t = Instant::now();
    assert_eq!(r.invoke(b"{}").status, 200);
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    drop(silent);
}

#[test]
fn the_runtime_api_is_not_timed_a_parked_next_still_gets_its_invoke() {
    let r = lambda(&["--header-timeout", "200ms", "--keepalive-timeout", "200ms"]);
    assert_eq!(r.invoke(b"{}").status, 200);
    // The runtime's /next waits past every front timeout …
    std::thread::sleep(Duration::from_millis(800));
    // … and still receives the next invoke on its connection.
    let resp = r.invoke(b"{\"after\":1}");
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.json(), serde_json::json!({"after": 1}));
    assert!(!r.stderr().contains("Runtime.ExitError"), "{}", r.stderr());
}

#[test]
fn static_mode_refuses_symlinks_out_of_its_directory() {
    let tmp = TempDir::new("static-symlink");
    let www = tmp.path("www");
    let outside = tmp.path("outside");
    std::fs::create_dir_all(www.join("sub")).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(www.join("a.txt"), "inside").unwrap();
    std::fs::write(outside.join("secret.txt"), "secret").unwrap();
    std::fs::write(outside.join("index.html"), "secret index").unwrap();
    std::os::unix::fs::symlink(outside.join("secret.txt"), www.join("p")).unwrap();
    std::os::unix::fs::symlink(&outside, www.join("out")).unwrap();
    std::os::unix::fs::symlink(outside.join("index.html"), www.join("sub/index.html")).unwrap();
    std::os::unix::fs::symlink(www.join("a.txt"), www.join("in")).unwrap();
    let start = |follow: bool| {
        let mut b = Rapid::builder()
            .watchdog("static")
            .arg("--suppress-lock")
            .arg("--static-path")
            .arg(www.display().to_string());
        if follow {
            b = b.arg("--static-follow-symlinks");
        }
        b.start()
    };
    let get = |r: &Rapid, p: &str| request(r.invoke, "GET", p, &[], b"");
    let r = start(false);
    assert_eq!(get(&r, "/a.txt").text(), "inside");
    assert_eq!(get(&r, "/in").text(), "inside", "a symlink inside is fine");
    for p in [
        "/p",
        "/out/secret.txt",
        "/%6fut/secret.txt",
        "/out/",
        "/sub/",
    ] {
        let resp = get(&r, p);
        assert_eq!(resp.status, 404, "{p}: {}", resp.text());
        assert!(
            resp.text() != "secret" && !resp.text().contains("secret index"),
            "{p}: {}",
            resp.text()
        );
    }
    drop(r);
    let r = start(true);
    assert_eq!(
        get(&r, "/p").text(),
        "secret",
        "allowed by --static-follow-symlinks"
    );
}

/// Whether descriptor 7 is open, as the process reporting it sees it.
const FD7: &str = r#"if [ -e /proc/$$/fd/7 ]; then echo leaked; else echo sealed; fi"#;

#[test]
fn descriptors_rapid_inherited_do_not_reach_the_runtime() {
    let tmp = TempDir::new("inherited-fd");
    let runtime = rapid_tests::shell_runtime(
        &tmp,
        "",
        &format!(
            r#"  R=$({FD7})
  curl -s -o /dev/null -X POST -d "\"$R\"" "$API/invocation/$ID/response""#
        ),
    );
    let r = Rapid::builder()
        .bootstrap(runtime)
        .inherit_fd(7, "/dev/null")
        .start();
    let resp = r.invoke(b"{}");
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.json(), serde_json::json!("sealed"));
}

#[test]
fn descriptors_rapid_inherited_do_not_reach_forked_processes() {
    for mode in ["serializing", "streaming"] {
        let r = Rapid::builder()
            .watchdog(mode)
            .arg("--suppress-lock")
            .inherit_fd(7, "/dev/null")
            .bootstrap("/bin/sh")
            .arg_after("-c")
            .arg_after(FD7)
            .start();
        let resp = request(r.invoke, "POST", "/", &[], b"x");
        assert_eq!(resp.status, 200, "{mode}: {}", resp.text());
        assert_eq!(resp.text().trim(), "sealed", "{mode}");
    }
}

#[test]
fn http_mode_answers_a_stalled_client_body_408_not_502() {
    let port = free_port();
    let r = Rapid::builder()
        .watchdog("http")
        .arg("--suppress-lock")
        .arg("--body-timeout")
        .arg("300ms")
        .arg("--upstream-url")
        .arg(format!("http://127.0.0.1:{port}"))
        .bootstrap(bin("fx-upstream"))
        .arg_after(port.to_string())
        .start();
    assert!(rapid_tests::eventually(Duration::from_secs(10), || {
        request(r.invoke, "GET", "/_/health", &[], b"").status == 200
    }));
    let mut s = connect(r.invoke);
    s.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nhello")
        .unwrap();
    let t = Instant::now();
    let resp = rapid_tests::read_response(&mut BufReader::new(s), |_| {});
    assert_eq!(resp.status, 408, "{}", resp.text());
    assert!(!resp.text().contains("upstream"), "{}", resp.text());
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert_eq!(request(r.invoke, "POST", "/", &[], b"fine").status, 200);
}

#[test]
fn a_last_line_without_a_newline_reaches_stdout_on_sigterm() {
    let tmp = TempDir::new("last-line");
    let runtime = rapid_tests::shell_runtime(
        &tmp,
        r#"trap 'printf "last words without a newline"; exit 0' TERM"#,
        rapid_tests::POST_OK,
    );
    let mut r = Rapid::builder().bootstrap(runtime).start();
    assert_eq!(r.invoke(b"{}").status, 200);
    r.signal(libc::SIGTERM);
    let status = r.wait_exit(Duration::from_secs(10)).expect("rapid exits");
    assert!(status.success(), "{status:?}");
    assert!(
        rapid_tests::eventually(Duration::from_secs(5), || r
            .stdout()
            .contains("last words without a newline")),
        "stdout: {}",
        r.stdout()
    );
}

#[test]
fn a_flood_of_output_is_all_on_stdout_before_rapid_exits() {
    const N: usize = 20_000_000;
    let tmp = TempDir::new("flood");
    let runtime = rapid_tests::shell_runtime(
        &tmp,
        "",
        &format!(
            "  head -c {N} /dev/zero | tr '\\0' x; echo\n{}",
            rapid_tests::POST_OK
        ),
    );
    let mut r = Rapid::builder().bootstrap(runtime).start();
    assert_eq!(r.invoke(b"{}").status, 200);
    r.signal(libc::SIGTERM);
    let status = r.wait_exit(Duration::from_secs(20)).expect("rapid exits");
    assert!(status.success(), "{status:?}");
    // The flood's line, whole (it is longer than any piece rapid reads).
    let longest = |r: &Rapid| {
        r.stdout()
            .lines()
            .filter(|l| l.bytes().all(|b| b == b'x'))
            .map(str::len)
            .max()
            .unwrap_or(0)
    };
    assert!(
        rapid_tests::eventually(Duration::from_secs(10), || longest(&r) == N),
        "{} of {N} bytes reached stdout",
        longest(&r)
    );
}

/// Found by the `invoke_api` fuzz target: a function name that is not UTF-8
/// once percent-decoded was axum's plain-text 400.
#[test]
fn a_function_name_that_is_not_utf8_is_a_json_400() {
    let r = lambda(&[]);
    for path in [
        "/2015-03-31/functions/S%ff%fe/invocations",
        "/2021-11-15/functions/%c3%28/response-streaming-invocations",
    ] {
        let resp = request(r.invoke, "POST", path, &[], b"{}");
        assert_eq!(resp.status, 400, "{path}: {}", resp.text());
        assert_eq!(
            resp.error_type(),
            "InvalidRequestContentException",
            "{path}"
        );
    }
}
