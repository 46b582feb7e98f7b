//! vblade-compatible AoE target for Linux.
//!
//! This crate will run [`aoe_core::Target`] over an `AF_PACKET` raw socket or a TAP device with
//! file-backed disks, as a drop-in for `vblade shelf slot netif file`. It is a placeholder until
//! that work lands.

pub mod initiator;
