//! vblade-compatible AoE target for Linux, and the raw-frame layer its tools share.
//!
//! * [`net`]: Ethernet frames of EtherType 0x88A2 in and out of an interface, in batches, over
//!   an `AF_PACKET` socket or a TAP device, with buffers aligned for `O_DIRECT`. Used by the
//!   `host-sim` target and by the `aoe` initiator.
// Raw sockets, ioctls and recvmmsg need `unsafe`; every block says why it is sound.
#![deny(unsafe_op_in_unsafe_fn)]

pub mod initiator;
pub mod net;
