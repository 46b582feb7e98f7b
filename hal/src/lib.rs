//! Hardware glue for the vblade-rs "EtherDrive blade" firmware.
//!
//! This crate will hold the Ethernet MAC driver (as a `smoltcp::phy::Device`) and the SD/eMMC
//! driver (as an [`aoe_core::disk::Disk`]). It is empty until the board work lands; it exists so
//! that the workspace layout is fixed and CI proves it builds for `thumbv7m-none-eabi`.
//!
//! All `unsafe` code of the project is meant to live here, each block with a `// SAFETY:` note.
#![no_std]
#![deny(clippy::undocumented_unsafe_blocks)]
