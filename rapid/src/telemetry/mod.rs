//! Telemetry fan-out: buffering and delivery of platform/function/extension
//! records to subscribers (SPEC §6). (Being written.)
