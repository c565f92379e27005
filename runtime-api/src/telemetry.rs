//! Telemetry API and Logs API subscriptions: parsing and validation (SPEC §6).
//! (Being written.)
