//! The fan-out against real loopback receivers.

use std::time::{Duration, Instant};

use runtime_api::subscription::{
    Buffering, Destination, Subscription, SubscriptionApi, TelemetrySink,
};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use super::*;

fn sub(dest: Destination, buffering: Buffering, platform: bool, function: bool) -> Subscription {
    Subscription {
        extension: "ext".into(),
        api: SubscriptionApi::Telemetry,
        schema_version: "2022-12-13".into(),
        platform,
        function,
        extension_logs: false,
        buffering,
        destination: dest,
    }
}

/// An HTTP receiver: every POST body (a JSON array) goes to the channel.
async fn http_receiver(answer: bool) -> (u16, mpsc::UnboundedReceiver<Vec<Value>>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else { return };
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut r = BufReader::new(s);
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let mut len = 0;
                    loop {
                        let mut h = String::new();
                        r.read_line(&mut h).await.unwrap_or(0);
                        let h = h.trim_end();
                        if h.is_empty() {
                            break;
                        }
                        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                            len = v.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut body = vec![0; len];
                    r.read_exact(&mut body).await.unwrap();
                    if !answer {
                        tokio::time::sleep(Duration::from_secs(60)).await;
                        return;
                    }
                    let batch: Vec<Value> = serde_json::from_slice(&body).unwrap();
                    let _ = tx.send(batch);
                    r.get_mut()
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                        .await
                        .unwrap();
                }
            });
        }
    });
    (port, rx)
}

fn buffering(max_items: u32, timeout_ms: u32) -> Buffering {
    Buffering {
        max_items,
        max_bytes: 262_144,
        timeout_ms,
    }
}

#[tokio::test]
async fn batches_by_count_and_filters_types() {
    let (port, mut rx) = http_receiver(true).await;
    let hub = Hub::new();
    let uri = format!("http://sandbox.localdomain:{port}/telemetry");
    hub.subscribe(sub(
        Destination::Http { uri },
        buffering(1000, 30_000),
        false,
        true,
    ));
    for i in 0..1000 {
        hub.function_line(format!("line {i}").as_bytes(), false);
        hub.platform("platform.start", records::start("r", "$LATEST", None));
    }
    let batch = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        batch.len(),
        1000,
        "a full batch goes at maxItems, not at the 30 s timeout"
    );
    assert!(
        batch.iter().all(|r| r["type"] == "function"),
        "only the subscribed type"
    );
    assert_eq!(batch[0]["record"], "line 0");
    assert_eq!(batch[999]["record"], "line 999");
    assert!(batch[0]["time"].as_str().unwrap().ends_with('Z'));
}

#[tokio::test]
async fn batches_by_timeout() {
    let (port, mut rx) = http_receiver(true).await;
    let hub = Hub::new();
    let uri = format!("http://127.0.0.1:{port}/");
    hub.subscribe(sub(
        Destination::Http { uri },
        buffering(1000, 100),
        true,
        true,
    ));
    let t = Instant::now();
    hub.function_line(b"only one", false);
    let batch = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .unwrap()
        .unwrap();
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(90) && took < Duration::from_secs(2),
        "{took:?}"
    );
    let types: Vec<&str> = batch.iter().map(|r| r["type"].as_str().unwrap()).collect();
    assert!(
        types.contains(&"platform.telemetrySubscription"),
        "{types:?}"
    );
    assert!(types.contains(&"function"), "{types:?}");
}

#[tokio::test]
async fn tcp_destination_gets_ndjson() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let hub = Hub::new();
    hub.subscribe(sub(
        Destination::Tcp { port },
        buffering(1000, 25),
        false,
        true,
    ));
    hub.function_line(b"first", false);
    hub.function_line(b"second", false);
    let (s, _) = tokio::time::timeout(Duration::from_secs(5), l.accept())
        .await
        .unwrap()
        .unwrap();
    let mut lines = BufReader::new(s).lines();
    let a: Value = serde_json::from_str(&lines.next_line().await.unwrap().unwrap()).unwrap();
    let b: Value = serde_json::from_str(&lines.next_line().await.unwrap().unwrap()).unwrap();
    assert_eq!(
        (a["record"].as_str(), b["record"].as_str()),
        (Some("first"), Some("second"))
    );
}

#[tokio::test]
async fn a_dead_subscriber_never_blocks_and_drops_are_counted() {
    let (port, _rx) = http_receiver(false).await;
    let hub = Hub::new();
    let uri = format!("http://127.0.0.1:{port}/");
    let s = sub(Destination::Http { uri }, buffering(1000, 25), true, true);
    hub.subscribe(s);
    let t = Instant::now();
    for i in 0..100_000 {
        hub.function_line(format!("line {i}").as_bytes(), false);
    }
    let took = t.elapsed();
    assert!(
        took < Duration::from_secs(2),
        "pushing must not wait on the subscriber: {took:?}"
    );
    let subs = hub.subscribers.lock().unwrap();
    let q = subs[0].queue.lock().unwrap();
    assert!(q.dropped_records > 0, "overflow is dropped and counted");
    assert!(
        q.records.len() <= 2000,
        "bounded queue: {}",
        q.records.len()
    );
}

#[tokio::test]
async fn init_backlog_is_replayed_and_flush_delivers() {
    let (port, mut rx) = http_receiver(true).await;
    let hub = Hub::new();
    hub.init_started();
    hub.platform(
        "platform.initStart",
        records::init_start("on-demand", "f", "$LATEST"),
    );
    let uri = format!("http://127.0.0.1:{port}/");
    hub.subscribe(sub(
        Destination::Http { uri },
        buffering(1000, 30_000),
        true,
        false,
    ));
    hub.init_finished();
    hub.flush(Duration::from_secs(2)).await;
    let batch = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .unwrap()
        .unwrap();
    let types: Vec<&str> = batch.iter().map(|r| r["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        vec!["platform.initStart", "platform.telemetrySubscription"]
    );
}

#[test]
fn sandbox_localdomain_is_loopback() {
    assert_eq!(
        delivery::target("http://sandbox.localdomain:4243/x?y=1").unwrap(),
        ("127.0.0.1:4243".to_owned(), "/x?y=1".to_owned())
    );
    assert_eq!(
        delivery::target("http://127.0.0.1/").unwrap().0,
        "127.0.0.1:80"
    );
}

#[tokio::test]
async fn each_schema_version_gets_its_shape() {
    let hub = Hub::new();
    let mut receivers = Vec::new();
    for version in ["2022-07-01", "2022-12-13", "2025-01-29"] {
        let (port, rx) = http_receiver(true).await;
        hub.subscribe(Subscription {
            schema_version: version.into(),
            ..sub(
                Destination::Http {
                    uri: format!("http://127.0.0.1:{port}/"),
                },
                buffering(1000, 25),
                true,
                true,
            )
        });
        receivers.push(rx);
    }
    let older = records::start("r", "$LATEST", None);
    let mut current = older.clone();
    records::add(&mut current, "functionArn", "arn:x".into());
    hub.platform_versions("platform.start", older, current);
    hub.function_line(br#"{"level":"INFO","message":"m"}"#, true);
    hub.function_line(b"plain", true);
    hub.function_line(br#"{"level":"INFO"}"#, false);
    let mut got = Vec::new();
    for rx in &mut receivers {
        let mut records = Vec::new();
        while records.len() < 5 {
            let batch = tokio::time::timeout(Duration::from_secs(5), rx.recv())
                .await
                .unwrap()
                .unwrap();
            records.extend(batch);
        }
        records.retain(|r| r["type"] != "platform.telemetrySubscription");
        got.push(records);
    }
    let start = |v: usize| {
        got[v]
            .iter()
            .find(|r| r["type"] == "platform.start")
            .unwrap()["record"]
            .clone()
    };
    assert!(start(0).get("functionArn").is_none());
    assert!(start(1).get("functionArn").is_none());
    assert_eq!(start(2)["functionArn"], "arn:x");
    let lines = |v: usize| -> Vec<Value> {
        got[v]
            .iter()
            .filter(|r| r["type"] == "function")
            .map(|r| r["record"].clone())
            .collect()
    };
    assert_eq!(
        lines(0),
        vec![
            Value::from(r#"{"level":"INFO","message":"m"}"#),
            Value::from("plain"),
            Value::from(r#"{"level":"INFO"}"#)
        ],
        "2022-07-01: always strings"
    );
    for v in [1, 2] {
        assert_eq!(
            lines(v),
            vec![
                serde_json::json!({"level":"INFO","message":"m"}),
                Value::from("plain"),
                Value::from(r#"{"level":"INFO"}"#)
            ],
            "objects with the JSON log format only"
        );
    }
}
