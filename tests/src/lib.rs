//! Shared helpers for the vblade-rs test suites.
