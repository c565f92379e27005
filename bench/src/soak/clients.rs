//! The soak's clients: one invoke on a fresh connection as a plain, slow or
//! half-closing client, read to its one answer and checked for a second; a
//! client that resets mid-body; malformed requests that must be refused.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use super::INVOKE;

/// How a client sends its invoke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Client {
    Plain,
    /// `shutdown(SHUT_WR)` right after the complete request.
    HalfClose,
    /// The body a byte every 3 ms.
    Slow,
}

/// How one invoke was answered.
#[derive(Debug)]
pub enum Answer {
    /// Its own 200 echo.
    Ok,
    /// A JSON error of this `errorType`.
    JsonError(String),
    /// An answer, but not a well-formed one for this invoke.
    Wrong(String),
    /// A second response on the connection after the first.
    Duplicate(String),
    /// No answer.
    Lost(String),
}

/// The invoke's payload: unique per invoke, so an echo proves it is its own.
pub fn payload(i: usize) -> String {
    format!("{{\"x\":{i}}}")
}

/// One invoke of payload `i` on a fresh connection; its answer and how long
/// it took (request written → answer read).
pub fn one_invoke(addr: SocketAddr, i: usize, how: Client) -> (Answer, Duration) {
    let body = payload(i);
    let t = Instant::now();
    let Ok(mut s) = TcpStream::connect(addr) else {
        return (Answer::Lost("connect".into()), t.elapsed());
    };
    s.set_read_timeout(Some(Duration::from_secs(30))).ok();
    let head = format!(
        "POST {INVOKE} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let sent = match how {
        Client::Plain | Client::HalfClose => {
            s.write_all(head.as_bytes()).is_ok() && s.write_all(body.as_bytes()).is_ok()
        }
        Client::Slow => {
            let mut ok = s.write_all(head.as_bytes()).is_ok();
            for b in body.as_bytes() {
                ok &= s.write_all(&[*b]).is_ok();
                // The client's pace is the fault being injected.
                std::thread::sleep(Duration::from_millis(3));
            }
            ok
        }
    };
    if !sent {
        return (Answer::Lost("write".into()), t.elapsed());
    }
    if how == Client::HalfClose {
        let _ = s.shutdown(Shutdown::Write);
    }
    let mut r = BufReader::new(s);
    let answer = match read_answer(&mut r) {
        Ok((status, got)) if status == 200 && got == body.as_bytes() => Answer::Ok,
        Ok((status, got)) if status == 200 || status >= 400 => match error_type(&got) {
            Some(t) => Answer::JsonError(t),
            None => Answer::Wrong(format!("{status} {}", String::from_utf8_lossy(&got))),
        },
        Ok((status, got)) => Answer::Wrong(format!("{status} {}", String::from_utf8_lossy(&got))),
        Err(e) => Answer::Lost(e),
    };
    let took = t.elapsed();
    if matches!(answer, Answer::Lost(_)) {
        return (answer, took);
    }
    // Exactly one answer: after it, the connection carries nothing more.
    // Half-close our side so that rapid ends the connection at once.
    let _ = r.get_ref().shutdown(Shutdown::Write);
    r.get_ref()
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok();
    let mut rest = Vec::new();
    let _ = r.read_to_end(&mut rest);
    if !rest.is_empty() {
        return (
            Answer::Duplicate(String::from_utf8_lossy(&rest).into_owned()),
            took,
        );
    }
    (answer, took)
}

/// The `errorType` of a JSON error object, if `body` is one.
pub fn error_type(body: &[u8]) -> Option<String> {
    let t = std::str::from_utf8(body).ok()?.trim();
    if !(t.starts_with('{') && t.ends_with('}')) {
        return None;
    }
    let at = t.find("\"errorType\"")? + "\"errorType\"".len();
    let rest = t[at..].trim_start().strip_prefix(':')?.trim_start();
    let rest = rest.strip_prefix('"')?;
    Some(rest[..rest.find('"')?].to_owned())
}

/// Status and Content-Length body of one response.
pub fn read_answer(r: &mut BufReader<TcpStream>) -> Result<(u16, Vec<u8>), String> {
    let mut line = String::new();
    r.read_line(&mut line).map_err(|e| e.to_string())?;
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status line ({line:?})"))?;
    let mut len = 0usize;
    loop {
        let mut h = String::new();
        r.read_line(&mut h).map_err(|e| e.to_string())?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body).map_err(|e| e.to_string())?;
    Ok((status, body))
}

/// A client that sends half a body and resets the connection (RST).
pub fn reset_mid_body(addr: SocketAddr) {
    if let Ok(s) = TcpStream::connect(addr) {
        let linger = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        // SAFETY: setsockopt on a socket we own; SO_LINGER 0 makes close send RST.
        unsafe {
            libc::setsockopt(
                std::os::fd::AsRawFd::as_raw_fd(&s),
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                (&linger as *const libc::linger).cast(),
                std::mem::size_of::<libc::linger>() as libc::socklen_t,
            );
        }
        let mut s = s;
        let _ = s.write_all(
            format!("POST {INVOKE} HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{{\"a\"")
                .as_bytes(),
        );
        drop(s);
    }
}

/// The malformed requests tried, by name.
pub fn bad_inputs() -> Vec<(&'static str, Vec<u8>)> {
    let post = |headers: &str, body: &str| {
        format!(
            "POST {INVOKE} HTTP/1.1\r\nHost: x\r\n{headers}Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    };
    vec![
        ("not HTTP", b"GARBAGE\r\n\r\n".to_vec()),
        (
            "Content-Length not a number",
            format!("POST {INVOKE} HTTP/1.1\r\nHost: x\r\nContent-Length: x\r\n\r\n").into_bytes(),
        ),
        (
            "unknown X-Amz-Invocation-Type",
            post("X-Amz-Invocation-Type: Nope\r\n", "{}"),
        ),
        (
            "X-Amz-Client-Context not base64",
            post("X-Amz-Client-Context: %%%\r\n", "{}"),
        ),
        (
            "X-Amz-Client-Context over 3,583 bytes",
            post(
                &format!("X-Amz-Client-Context: {}\r\n", "e30=".repeat(1000)),
                "{}",
            ),
        ),
        (
            "function name not UTF-8",
            b"GET /%ff%fe/x HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        ),
        (
            "bad chunk size",
            format!(
                "POST {INVOKE} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"
            )
            .into_bytes(),
        ),
        (
            "64 KiB request target",
            format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(64 * 1024)).into_bytes(),
        ),
        (
            "a 2 MiB header (over the 1 MiB head buffer)",
            post(&format!("X-Big: {}\r\n", "b".repeat(2 * 1024 * 1024)), "{}"),
        ),
        ("body not JSON", post("", "{not json")),
    ]
}

/// Send bad input `n` (of [`bad_inputs`]); refused means a 4xx or the
/// connection closed without an answer.
pub fn refused(addr: SocketAddr, input: &[u8]) -> Result<(), String> {
    let mut s = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    // rapid may refuse before it has read everything: a failed write is fine.
    let _ = s.write_all(input);
    let mut r = BufReader::new(s);
    let mut line = String::new();
    match r.read_line(&mut line) {
        Ok(0) => Ok(()),
        Ok(_) => match line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse::<u16>().ok())
        {
            Some(s) if (400..500).contains(&s) => Ok(()),
            _ => Err(format!("answered {:?}", line.trim_end())),
        },
        // A reset after an early refusal is a refusal too.
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_type_reads_the_json_error_and_nothing_else() {
        assert_eq!(
            error_type(br#"{"errorType":"Sandbox.Timedout","errorMessage":"Task timed out"}"#)
                .as_deref(),
            Some("Sandbox.Timedout")
        );
        assert_eq!(
            error_type(br#" { "errorMessage": "x", "errorType" : "Extension.Crash" } "#).as_deref(),
            Some("Extension.Crash")
        );
        assert_eq!(error_type(br#"{"x":1}"#), None);
        assert_eq!(error_type(b"Internal Server Error"), None);
        assert_eq!(error_type(br#"{"errorType":"#), None);
    }
}
