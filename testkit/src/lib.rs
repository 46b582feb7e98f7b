//! # aoe-testkit: the one test support layer of vblade-rs
//!
//! Shared by every crate's tests, the QEMU drivers and the fuzzers. Test support only
//! (`publish = false`); nothing here is part of a product.
//!
//! * [`ceph`]: a single-node Ceph cluster for the RBD tests (the project's bring-up script).
//! * [`device`]: an in-memory Ethernet MAC (a smoltcp `phy::Device` and an
//!   `aoe_hal::EthernetMac`) for the poll paths.
//! * [`frame`]: an initiator that builds AoE request frames byte by byte from raw offsets,
//!   independent of `aoe_core::wire`, and the addresses every test uses.
//! * [`reply`]: a view of reply frames by raw offsets.
//! * [`sectors`]: sector contents that say where they belong (data patterns, write images).
//! * [`shadow`]: the reference model of a disk under test (what each sector may hold after
//!   writes, failed writes and injected faults), shared by the property tests and the fuzzers.
//! * [`link`]: raw AoE frames through an `aoe_net::Link`: batches, replies, exchanges.
//! * [`netns`]: private network namespaces and veth pairs (root-only tests), and the rule that
//!   makes a skipped root-only test fail in CI.
//! * [`process`]: child processes stopped by their own PID, and the workspace's binaries.
//! * [`programs`]: `aoe` and `host-sim` run in test namespaces, and Debian's vblade.
//! * [`scratch`]: scratch files removed on drop, reproducible test data.
#![deny(unsafe_op_in_unsafe_fn)]

pub mod ceph;
pub mod device;
pub mod frame;
pub mod link;
pub mod netns;
pub mod process;
pub mod programs;
pub mod reply;
pub mod scratch;
pub mod sectors;
pub mod shadow;
