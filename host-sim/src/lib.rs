//! `host-sim`: the vblade-compatible AoE target for Linux.
//!
//! * [`spec`], [`cli`], [`config`]: what an export is, from vblade's command line or a TOML
//!   file, and the checks that refuse exports no initiator could use.
//! * [`export`]: one export, its engine (`aoe_core::Target`) and its storage
//!   (`aoe_storage::Storage`).
//! * [`worker`]: the event loop, one thread per link (`aoe_net::Link`); [`channel`]: one
//!   worker's path to one export, frames through the engine and the storage queue;
//!   [`latency`]: where a worker's time per request goes.
//! * [`ha`]: failover between gateways of one RBD image (only the lock holder answers).
//! * [`daemon`]: start-up, SIGHUP reload, clean SIGINT/SIGTERM shutdown; [`logger`]: log lines.
//!
//! `docs/ARCHITECTURE.md` at the top of the repository shows how the crates fit together and
//! the path of one frame.
// Signal handlers need `unsafe`; every block says why it is sound.
#![deny(unsafe_op_in_unsafe_fn)]

pub mod channel;
pub mod cli;
pub mod config;
pub mod control;
pub mod daemon;
pub mod export;
pub mod guard;
pub mod ha;
pub mod latency;
pub mod logger;
pub mod metrics;
pub mod notify;
pub mod spec;
pub mod state;
pub mod worker;
