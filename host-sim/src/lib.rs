//! vblade-compatible AoE target for Linux, and the raw-frame layer its tools share.
//!
//! * [`net`]: Ethernet frames of EtherType 0x88A2 in and out of an interface, in batches, over
//!   an `AF_PACKET` socket or a TAP device, with buffers aligned for `O_DIRECT`. Used by the
//!   `host-sim` target and by the `aoe` initiator.
//! * [`disk`]: file-backed disks (regular, sparse, block devices) with vblade's flags.
//! * [`spec`], [`cli`], [`config`]: what an export is, from vblade's command line or a TOML
//!   file.
//! * [`server`]: the fast path, one thread per link, batches through the engine's split path.
//! * [`daemon`]: start-up, SIGHUP reload, clean SIGINT/SIGTERM shutdown; [`logger`]: log lines.
//! * [`initiator`]: the userspace initiator behind the `aoe` command.
// Raw sockets, ioctls and recvmmsg need `unsafe`; every block says why it is sound.
#![deny(unsafe_op_in_unsafe_fn)]

pub mod cli;
pub mod config;
pub mod daemon;
pub mod disk;
pub mod initiator;
pub mod logger;
pub mod net;
pub mod server;
pub mod spec;
