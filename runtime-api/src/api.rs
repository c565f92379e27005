//! The Runtime API's shared state: its settings, the rendezvous, and where
//! telemetry subscriptions go. Every handler gets a clone.

use std::sync::Arc;

use crate::rendezvous::Rendezvous;

/// Settings of the Runtime API.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Largest streamed response, in bytes.
    pub stream_cap_bytes: u64,
    /// Lambda's bandwidth shaping of streamed responses: unlimited for the first
    /// 6 MiB, then 2 MiB/s. Off by default.
    pub stream_shaping: bool,
    /// Account id (answered to extensions that accept the `accountId` feature).
    pub account_id: String,
    /// Init caching (SnapStart): `/restore/next` and `/restore/error` exist.
    pub init_caching: bool,
    /// Credentials served at `/2021-04-23/credentials` (init caching only).
    pub credentials: Option<Credentials>,
}

/// AWS credentials a snap-start runtime fetches after a restore, guarded by a
/// per-sandbox authorization token.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// `AWS_CONTAINER_AUTHORIZATION_TOKEN` the caller must present.
    pub authorization_token: String,
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
    /// Session token, if any.
    pub session_token: Option<String>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            stream_cap_bytes: 200 * 1024 * 1024,
            stream_shaping: false,
            account_id: "012345678912".into(),
            init_caching: false,
            credentials: None,
        }
    }
}

/// The Runtime API service state: cheap to clone (the router holds one).
#[derive(Clone)]
pub struct RuntimeApi {
    pub(crate) rendezvous: Arc<Rendezvous>,
    pub(crate) config: Arc<ApiConfig>,
    pub(crate) telemetry: Option<Arc<dyn crate::subscription::TelemetrySink>>,
}

impl RuntimeApi {
    /// A Runtime API over `rendezvous`.
    pub fn new(rendezvous: Arc<Rendezvous>, config: ApiConfig) -> Self {
        RuntimeApi {
            rendezvous,
            config: Arc::new(config),
            telemetry: None,
        }
    }

    /// Accept Telemetry and Logs API subscriptions and hand them to `sink`.
    pub fn with_telemetry(mut self, sink: Arc<dyn crate::subscription::TelemetrySink>) -> Self {
        self.telemetry = Some(sink);
        self
    }
}
