//! The one test support layer of vblade-rs, shared by every crate's tests and the fuzzers.
//!
//! * [`ceph`]: a single-node Ceph cluster for the RBD tests (the project's bring-up script).
//! * [`link`]: raw AoE frames through an `aoe_net::Link`: batches, replies, exchanges.
//! * [`netns`]: private network namespaces and veth pairs (root-only tests), and the rule that
//!   makes a skipped root-only test fail in CI.
//! * [`process`]: child processes stopped by their own PID, and the workspace's binaries.
//! * [`programs`]: `aoe` and `host-sim` run in test namespaces, and Debian's vblade.
//! * [`scratch`]: scratch files removed on drop, reproducible test data.
#![deny(unsafe_op_in_unsafe_fn)]

pub mod ceph;
pub mod link;
pub mod netns;
pub mod process;
pub mod programs;
pub mod scratch;
