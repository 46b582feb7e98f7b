//! Conformance suite: at least one test per item of the project's protocol checklist,
//! `docs/protocol.md` (items 1–42). Every test drives the engine with raw frames built byte by
//! byte and checks raw reply bytes: header fields, exact lengths, zero padding, ATA registers,
//! disk contents and silence. `docs/conformance.md` maps items to tests.
//!
//! One test binary, one module per section of the checklist; `support` holds the helpers.

mod ata;
mod framing;
mod host;
mod mask_reserve;
mod query_config;
mod support;
