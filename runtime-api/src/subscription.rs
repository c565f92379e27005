//! Telemetry API (`PUT /2022-07-01/telemetry`) and Logs API
//! (`PUT /2020-08-15/logs`) subscriptions: parsing and validation (SPEC §6).
//! Delivery is the fan-out's job ([`TelemetrySink`]).

use fatalerror::ErrorType;
use http::StatusCode;
use serde::Deserialize;

use crate::error::ApiError;

/// Which API a subscription came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriptionApi {
    /// `PUT /2022-07-01/telemetry`.
    Telemetry,
    /// `PUT /2020-08-15/logs` (legacy).
    Logs,
}

/// Buffering bounds of a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Buffering {
    /// Records per batch.
    pub max_items: u32,
    /// Bytes per batch.
    pub max_bytes: u32,
    /// How long a record may wait for its batch.
    pub timeout_ms: u32,
}

impl Default for Buffering {
    fn default() -> Self {
        Buffering {
            max_items: 10_000,
            max_bytes: 262_144,
            timeout_ms: 1_000,
        }
    }
}

/// Where batches go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// POST JSON arrays to this `http://` URI.
    Http {
        /// The URI as given (`sandbox.localdomain` is resolved to loopback on delivery).
        uri: String,
    },
    /// Write NDJSON to `127.0.0.1:port`.
    Tcp {
        /// The port.
        port: u16,
    },
}

/// A validated subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// The subscribing extension's name.
    pub extension: String,
    /// Telemetry or Logs API.
    pub api: SubscriptionApi,
    /// The schema version asked for.
    pub schema_version: String,
    /// Platform records wanted.
    pub platform: bool,
    /// Function (runtime output) records wanted.
    pub function: bool,
    /// Extension output records wanted.
    pub extension_logs: bool,
    /// Batching.
    pub buffering: Buffering,
    /// Delivery target.
    pub destination: Destination,
}

/// Implemented by the fan-out; the Runtime API only hands subscriptions over.
pub trait TelemetrySink: Send + Sync {
    /// Start delivering to a new subscriber.
    fn subscribe(&self, sub: Subscription);
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Body {
    schema_version: Option<String>,
    types: Option<Vec<String>>,
    buffering: Option<BufferingBody>,
    destination: Option<DestinationBody>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BufferingBody {
    max_items: Option<i64>,
    max_bytes: Option<i64>,
    timeout_ms: Option<i64>,
}

#[derive(Deserialize)]
struct DestinationBody {
    protocol: Option<String>,
    #[serde(rename = "URI")]
    uri: Option<String>,
    port: Option<i64>,
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, ErrorType::ValidationError, message)
}

fn in_range(name: &str, v: Option<i64>, lo: i64, hi: i64, default: u32) -> Result<u32, ApiError> {
    match v {
        None => Ok(default),
        Some(v) if (lo..=hi).contains(&v) => Ok(v as u32),
        Some(v) => Err(invalid(format!(
            "buffering.{name} is {v}; it must be between {lo} and {hi}"
        ))),
    }
}

/// Schema versions each API accepts.
fn schema_ok(api: SubscriptionApi, v: &str) -> bool {
    match api {
        SubscriptionApi::Telemetry => matches!(v, "2022-07-01" | "2022-12-13" | "2025-01-29"),
        SubscriptionApi::Logs => matches!(v, "2020-08-15" | "2021-03-18"),
    }
}

/// Parse and validate a subscription body: 400 `ValidationError` naming the
/// offending field and value otherwise.
pub fn parse_subscription(
    api: SubscriptionApi,
    extension: &str,
    body: &[u8],
) -> Result<Subscription, ApiError> {
    let b: Body = serde_json::from_slice(body)
        .map_err(|e| invalid(format!("Invalid subscription body: {e}")))?;
    let schema_version = match (api, b.schema_version) {
        (_, Some(v)) => v,
        (SubscriptionApi::Logs, None) => "2020-08-15".to_owned(),
        (SubscriptionApi::Telemetry, None) => return Err(invalid("schemaVersion is required")),
    };
    if !schema_ok(api, &schema_version) {
        return Err(invalid(format!(
            "schemaVersion '{schema_version}' is not supported"
        )));
    }
    let types = b.types.unwrap_or_default();
    if types.is_empty() {
        return Err(invalid(
            "types must name at least one of platform, function, extension",
        ));
    }
    let (mut platform, mut function, mut extension_logs) = (false, false, false);
    for t in &types {
        match t.as_str() {
            "platform" => platform = true,
            "function" => function = true,
            "extension" => extension_logs = true,
            other => {
                return Err(invalid(format!(
                    "types contains '{other}'; use platform, function or extension"
                )))
            }
        }
    }
    let d = Buffering::default();
    let buffering = match b.buffering {
        None => d,
        Some(x) => Buffering {
            max_items: in_range("maxItems", x.max_items, 1_000, 10_000, d.max_items)?,
            max_bytes: in_range("maxBytes", x.max_bytes, 262_144, 1_048_576, d.max_bytes)?,
            timeout_ms: in_range("timeoutMs", x.timeout_ms, 25, 30_000, d.timeout_ms)?,
        },
    };
    let dest = b
        .destination
        .ok_or_else(|| invalid("destination is required"))?;
    let destination = match dest.protocol.as_deref() {
        Some("HTTP") => {
            let uri = dest
                .uri
                .ok_or_else(|| invalid("destination.URI is required for HTTP"))?;
            let parsed: http::Uri = uri
                .parse()
                .map_err(|e| invalid(format!("destination.URI '{uri}' is not a URI: {e}")))?;
            if parsed.scheme_str() != Some("http") || parsed.host().is_none() {
                return Err(invalid(format!(
                    "destination.URI '{uri}' must be an http:// URI with a host"
                )));
            }
            Destination::Http { uri }
        }
        Some("TCP") => match dest.port {
            Some(p) if (1..=65_535).contains(&p) => Destination::Tcp { port: p as u16 },
            Some(p) => return Err(invalid(format!("destination.port {p} is not a port"))),
            None => return Err(invalid("destination.port is required for TCP")),
        },
        Some(other) => {
            return Err(invalid(format!(
                "destination.protocol '{other}' is not HTTP or TCP"
            )))
        }
        None => return Err(invalid("destination.protocol is required")),
    };
    Ok(Subscription {
        extension: extension.to_owned(),
        api,
        schema_version,
        platform,
        function,
        extension_logs,
        buffering,
        destination,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> Result<Subscription, String> {
        parse_subscription(SubscriptionApi::Telemetry, "ext", body.as_bytes()).map_err(|e| {
            assert_eq!(e.status, StatusCode::BAD_REQUEST);
            assert_eq!(e.error_type.as_str(), "ValidationError");
            e.message
        })
    }

    #[test]
    fn valid_http_subscription_with_defaults() {
        let s = parse(
            r#"{"schemaVersion":"2022-12-13","types":["platform","function"],
            "destination":{"protocol":"HTTP","URI":"http://sandbox.localdomain:4243/t"}}"#,
        )
        .unwrap();
        assert!(s.platform && s.function && !s.extension_logs);
        assert_eq!(s.buffering, Buffering::default());
        assert_eq!(
            s.destination,
            Destination::Http {
                uri: "http://sandbox.localdomain:4243/t".into()
            }
        );
    }

    #[test]
    fn valid_tcp_subscription_with_buffering() {
        let s = parse(
            r#"{"schemaVersion":"2025-01-29","types":["extension"],
            "buffering":{"maxItems":1000,"maxBytes":262144,"timeoutMs":25},
            "destination":{"protocol":"TCP","port":9999},"unknown":1}"#,
        )
        .unwrap();
        assert_eq!(s.destination, Destination::Tcp { port: 9999 });
        assert_eq!(s.buffering.timeout_ms, 25);
    }

    #[test]
    fn every_invalid_field_is_named() {
        let dest = r#""destination":{"protocol":"HTTP","URI":"http://127.0.0.1:1/"}"#;
        for (body, needle) in [
            ("not json".to_owned(), "Invalid subscription body"),
            (format!(r#"{{"types":["platform"],{dest}}}"#), "schemaVersion is required"),
            (format!(r#"{{"schemaVersion":"2019-01-01","types":["platform"],{dest}}}"#), "2019-01-01"),
            (format!(r#"{{"schemaVersion":"2022-07-01","types":[],{dest}}}"#), "types"),
            (format!(r#"{{"schemaVersion":"2022-07-01","types":["bogus"],{dest}}}"#), "bogus"),
            (format!(r#"{{"schemaVersion":"2022-07-01","types":["platform"],"buffering":{{"maxItems":999}},{dest}}}"#), "maxItems is 999"),
            (format!(r#"{{"schemaVersion":"2022-07-01","types":["platform"],"buffering":{{"maxBytes":2000000}},{dest}}}"#), "maxBytes"),
            (format!(r#"{{"schemaVersion":"2022-07-01","types":["platform"],"buffering":{{"timeoutMs":24}},{dest}}}"#), "timeoutMs is 24"),
            (r#"{"schemaVersion":"2022-07-01","types":["platform"]}"#.to_owned(), "destination is required"),
            (r#"{"schemaVersion":"2022-07-01","types":["platform"],"destination":{"protocol":"UDP"}}"#.to_owned(), "UDP"),
            (r#"{"schemaVersion":"2022-07-01","types":["platform"],"destination":{"protocol":"HTTP"}}"#.to_owned(), "URI is required"),
            (r#"{"schemaVersion":"2022-07-01","types":["platform"],"destination":{"protocol":"HTTP","URI":"ftp://x/"}}"#.to_owned(), "ftp://x/"),
            (r#"{"schemaVersion":"2022-07-01","types":["platform"],"destination":{"protocol":"TCP","port":70000}}"#.to_owned(), "70000"),
            (r#"{"schemaVersion":"2022-07-01","types":["platform"],"destination":{"protocol":"TCP"}}"#.to_owned(), "port is required"),
        ] {
            let msg = parse(&body).expect_err(&body);
            assert!(msg.contains(needle), "{body}: {msg}");
        }
    }

    #[test]
    fn logs_api_schema_versions() {
        let body = br#"{"types":["platform"],"destination":{"protocol":"TCP","port":1}}"#;
        let s = parse_subscription(SubscriptionApi::Logs, "e", body).unwrap();
        assert_eq!(s.schema_version, "2020-08-15");
        let body = br#"{"schemaVersion":"2022-12-13","types":["platform"],"destination":{"protocol":"TCP","port":1}}"#;
        assert!(parse_subscription(SubscriptionApi::Logs, "e", body).is_err());
    }
}
