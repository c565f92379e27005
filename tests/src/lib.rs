//! Shared helpers for fixtures.
