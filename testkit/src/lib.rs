//! # aoe-testkit: what the vblade-rs tests share
//!
//! Test support only (`publish = false`); nothing here is part of a product.
//!
//! * [`device`]: an in-memory Ethernet MAC (a smoltcp `phy::Device` and an
//!   `aoe_hal::EthernetMac`) for the poll paths.
//! * [`frame`]: an initiator that builds AoE request frames byte by byte from raw offsets,
//!   independent of `aoe_core::wire`, and the addresses every test uses.
//! * [`reply`]: a view of reply frames by raw offsets.
//! * [`sectors`]: sector contents that say where they belong (data patterns, write images).
//! * [`shadow`]: the reference model of a disk under test (what each sector may hold after
//!   writes, failed writes and injected faults), shared by the property tests and the fuzzers.

pub mod device;
pub mod frame;
pub mod reply;
pub mod sectors;
pub mod shadow;
