//! Delivery to one subscriber: batches by count, size and age; HTTP POSTs of
//! JSON arrays or NDJSON over TCP; every attempt bounded by a timeout, failures
//! counted and logged, never retried forever.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use runtime_api::subscription::Destination;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::{records, serialize, Record, Subscriber};

/// Longest a delivery attempt may take.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(1);

/// The next batch, with a `platform.logsDropped` record first when records
/// were dropped since the last one.
fn take_batch(s: &Subscriber) -> Vec<Record> {
    let b = s.sub.buffering;
    let mut q = s.queue.lock().unwrap_or_else(|p| p.into_inner());
    let mut batch = Vec::new();
    if q.dropped_records > 0 && s.sub.platform {
        batch.push(serialize(
            "platform.logsDropped",
            records::logs_dropped(q.dropped_records, q.dropped_bytes),
        ));
        q.dropped_records = 0;
        q.dropped_bytes = 0;
    }
    let mut bytes = 0usize;
    while let Some(r) = q.records.front() {
        if !batch.is_empty()
            && (batch.len() >= b.max_items as usize || bytes + r.len() > b.max_bytes as usize)
        {
            break;
        }
        bytes += r.len();
        if let Some(r) = q.records.pop_front() {
            q.bytes -= r.len();
            batch.push(r);
        }
    }
    q.oldest = (!q.records.is_empty()).then(tokio::time::Instant::now);
    batch
}

/// Connections kept between batches: subscribers such as the
/// `lambda-extension` crate serve one keep-alive connection at a time.
#[derive(Default)]
struct Conns {
    http: Option<hyper::client::conn::http1::SendRequest<Full<Bytes>>>,
    tcp: Option<TcpStream>,
}

/// The delivery task of one subscriber.
pub(super) async fn run(s: Arc<Subscriber>) {
    let mut tcp = Conns::default();
    loop {
        let due = {
            let q = s.queue.lock().unwrap_or_else(|p| p.into_inner());
            if q.closed {
                return;
            }
            let b = s.sub.buffering;
            let full = q.records.len() >= b.max_items as usize || q.bytes >= b.max_bytes as usize;
            match q.oldest {
                _ if q.dropped_records > 0 && q.records.is_empty() => {
                    Some(tokio::time::Instant::now())
                }
                None => None,
                Some(_) if full => Some(tokio::time::Instant::now()),
                Some(t) => Some(t + Duration::from_millis(u64::from(b.timeout_ms))),
            }
        };
        match due {
            None => s.wake.notified().await,
            Some(at) => {
                tokio::select! {
                    () = tokio::time::sleep_until(at) => {
                        let batch = take_batch(&s);
                        if !batch.is_empty() {
                            deliver(&s, &batch, &mut tcp).await;
                        }
                    }
                    () = s.wake.notified() => {}
                }
            }
        }
    }
}

/// Deliver everything queued now (at shutdown).
pub(super) async fn drain(s: &Subscriber) {
    let mut tcp = Conns::default();
    loop {
        let batch = take_batch(s);
        if batch.is_empty() {
            return;
        }
        deliver(s, &batch, &mut tcp).await;
    }
}

async fn deliver(s: &Subscriber, batch: &[Record], conns: &mut Conns) {
    let result = match &s.sub.destination {
        Destination::Http { uri } => {
            tokio::time::timeout(ATTEMPT_TIMEOUT, post(uri, batch, &mut conns.http)).await
        }
        Destination::Tcp { port } => {
            tokio::time::timeout(ATTEMPT_TIMEOUT, send_tcp(*port, batch, &mut conns.tcp)).await
        }
    };
    match result {
        Ok(Ok(())) => {
            tracing::trace!(extension = %s.sub.extension, records = batch.len(), "telemetry delivered")
        }
        Ok(Err(e)) => {
            *conns = Conns::default();
            tracing::debug!(extension = %s.sub.extension, records = batch.len(), error = %e, "telemetry delivery failed");
        }
        Err(_) => {
            *conns = Conns::default();
            tracing::debug!(extension = %s.sub.extension, records = batch.len(), "telemetry delivery timed out");
        }
    }
}

/// `host:port` and path of an `http://` URI; `sandbox.localdomain` and
/// `localhost` are the sandbox's loopback.
pub fn target(uri: &str) -> Result<(String, String), String> {
    let u: http::Uri = uri.parse().map_err(|e| format!("{e}"))?;
    let host = u.host().ok_or("no host")?;
    let host = match host {
        "sandbox.localdomain" | "sandbox" | "localhost" => "127.0.0.1",
        h => h,
    };
    let port = u.port_u16().unwrap_or(80);
    let path = u.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    Ok((format!("{host}:{port}"), path))
}

async fn post(
    uri: &str,
    batch: &[Record],
    conn: &mut Option<hyper::client::conn::http1::SendRequest<Full<Bytes>>>,
) -> Result<(), String> {
    let (addr, path) = target(uri)?;
    let mut body = Vec::with_capacity(batch.iter().map(|r| r.len() + 1).sum::<usize>() + 2);
    body.push(b'[');
    for (i, r) in batch.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(r.as_bytes());
    }
    body.push(b']');
    let reusable = conn.as_ref().is_some_and(|c| !c.is_closed());
    if !reusable {
        let stream = TcpStream::connect(&addr)
            .await
            .map_err(|e| format!("connect {addr}: {e}"))?;
        let _ = stream.set_nodelay(true);
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        *conn = Some(sender);
    }
    let sender = conn.as_mut().ok_or("no connection")?;
    sender.ready().await.map_err(|e| e.to_string())?;
    let req = http::Request::post(path)
        .header(http::header::HOST, addr.as_str())
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status();
    // Read the (small) answer so the connection can carry the next batch.
    let _ = http_body_util::BodyExt::collect(resp.into_body()).await;
    if !status.is_success() {
        return Err(format!("subscriber answered {status}"));
    }
    Ok(())
}

async fn send_tcp(port: u16, batch: &[Record], conn: &mut Option<TcpStream>) -> Result<(), String> {
    if conn.is_none() {
        let s = TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(|e| format!("connect 127.0.0.1:{port}: {e}"))?;
        let _ = s.set_nodelay(true);
        *conn = Some(s);
    }
    let mut out = Vec::with_capacity(batch.iter().map(|r| r.len() + 1).sum());
    for r in batch {
        out.extend_from_slice(r.as_bytes());
        out.push(b'\n');
    }
    match conn {
        Some(s) => s.write_all(&out).await.map_err(|e| e.to_string()),
        None => Err("no connection".into()),
    }
}
