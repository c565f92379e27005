//! An HTTP request as a Lambda function URL event (payload format 2.0).

use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use http::request::Parts;
use http::HeaderMap;
use serde_json::{json, Map, Value};

/// `routeKey` and `stage` of every function URL event.
const DEFAULT: &str = "$default";

/// What the event is built from besides the request.
pub struct Source<'a> {
    /// The invocation's request id (`requestContext.requestId`).
    pub request_id: &'a str,
    /// The client (`requestContext.http.sourceIp`).
    pub peer: Option<SocketAddr>,
    /// The path the function sees (`/lambda-url/NAME` stripped).
    pub path: &'a str,
}

/// The function URL event of `parts` + `body`.
pub fn build(parts: &Parts, body: &[u8], src: &Source<'_>) -> Value {
    let (headers, cookies) = headers_and_cookies(&parts.headers);
    let raw_query = parts.uri.query().unwrap_or("");
    let host = parts
        .headers
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("localhost");
    let prefix = host.split(['.', ':']).next().unwrap_or(host);
    let user_agent = parts
        .headers
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let now = SystemTime::now();
    let epoch_ms = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let mut event = json!({
        "version": "2.0",
        "routeKey": DEFAULT,
        "rawPath": src.path,
        "rawQueryString": raw_query,
        "headers": headers,
        "requestContext": {
            "accountId": "anonymous",
            "apiId": prefix,
            "domainName": host,
            "domainPrefix": prefix,
            "http": {
                "method": parts.method.as_str(),
                "path": src.path,
                "protocol": protocol(parts.version),
                "sourceIp": src.peer.map(|p| p.ip().to_string()).unwrap_or_default(),
                "userAgent": user_agent,
            },
            "requestId": src.request_id,
            "routeKey": DEFAULT,
            "stage": DEFAULT,
            "time": clf_time(now),
            "timeEpoch": epoch_ms,
        },
        "isBase64Encoded": false,
    });
    let Value::Object(obj) = &mut event else {
        return event;
    };
    if !cookies.is_empty() {
        obj.insert("cookies".into(), cookies.into());
    }
    if !raw_query.is_empty() {
        obj.insert("queryStringParameters".into(), query_parameters(raw_query));
    }
    if !body.is_empty() {
        let text = is_text(&parts.headers)
            .then(|| std::str::from_utf8(body).ok())
            .flatten();
        let (body, b64) = match text {
            Some(t) => (t.to_owned(), false),
            None => (base64::engine::general_purpose::STANDARD.encode(body), true),
        };
        obj.insert("body".into(), body.into());
        obj.insert("isBase64Encoded".into(), b64.into());
    }
    event
}

/// Header names lower-cased, repeats comma-joined; `Cookie` headers become `cookies`.
fn headers_and_cookies(h: &HeaderMap) -> (Map<String, Value>, Vec<String>) {
    let mut headers = Map::new();
    let mut cookies = Vec::new();
    for name in h.keys() {
        let values: Vec<&str> = h
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        if name == http::header::COOKIE {
            for v in values {
                cookies.extend(
                    v.split(';')
                        .map(str::trim)
                        .filter(|c| !c.is_empty())
                        .map(str::to_owned),
                );
            }
            continue;
        }
        if !values.is_empty() {
            headers.insert(name.as_str().to_owned(), values.join(",").into());
        }
    }
    (headers, cookies)
}

/// `queryStringParameters`: values percent-decoded, repeats comma-joined.
fn query_parameters(raw: &str) -> Value {
    let mut out: Map<String, Value> = Map::new();
    for pair in raw.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (k, v) = (decode(k), decode(v));
        match out.get_mut(&k) {
            Some(Value::String(s)) => {
                s.push(',');
                s.push_str(&v);
            }
            _ => {
                out.insert(k, v.into());
            }
        }
    }
    Value::Object(out)
}

/// Form decoding: `+` is a space, `%XX` a byte.
fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// Bodies delivered as text; every other type is base64.
fn is_text(h: &HeaderMap) -> bool {
    let Some(ct) = h
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let mime = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    mime.starts_with("text/")
        || mime.ends_with("+json")
        || mime.ends_with("+xml")
        || matches!(
            mime.as_str(),
            "application/json"
                | "application/xml"
                | "application/javascript"
                | "application/x-www-form-urlencoded"
        )
}

fn protocol(v: http::Version) -> &'static str {
    match v {
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_2 => "HTTP/2.0",
        _ => "HTTP/1.1",
    }
}

/// `dd/MMM/yyyy:HH:mm:ss +0000`, as function URL events write the time.
fn clf_time(t: SystemTime) -> String {
    // humantime's RFC 3339: `YYYY-MM-DDTHH:MM:SSZ`.
    let s = humantime::format_rfc3339_seconds(t).to_string();
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = s
        .get(5..7)
        .and_then(|m| m.parse::<usize>().ok())
        .and_then(|m| MONTHS.get(m.wrapping_sub(1)))
        .copied()
        .unwrap_or("Jan");
    match (s.get(0..4), s.get(8..10), s.get(11..19)) {
        (Some(y), Some(d), Some(hms)) => format!("{d}/{month}/{y}:{hms} +0000"),
        _ => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_and_decoding() {
        let t = UNIX_EPOCH + std::time::Duration::from_secs(1_583_348_638);
        assert_eq!(clf_time(t), "04/Mar/2020:19:03:58 +0000");
        assert_eq!(decode("a%2Fb+c"), "a/b c");
        assert_eq!(decode("100%"), "100%");
        assert_eq!(decode("%zz"), "%zz");
        assert_eq!(
            query_parameters("m=foo&m=%2Fbar&x="),
            json!({"m": "foo,/bar", "x": ""})
        );
    }

    #[test]
    fn text_types() {
        let h = |ct: &str| {
            let mut m = HeaderMap::new();
            m.insert(http::header::CONTENT_TYPE, ct.parse().unwrap());
            is_text(&m)
        };
        assert!(h("application/json; charset=utf-8"));
        assert!(h("text/plain"));
        assert!(h("application/vnd.api+json"));
        assert!(!h("application/octet-stream"));
        assert!(!h("image/png"));
        assert!(!is_text(&HeaderMap::new()));
    }
}
