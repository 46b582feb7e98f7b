//! EtherDrive blade firmware.
//!
//! The firmware binary (board selection by feature, the poll loop that feeds frames from the
//! MAC through [`aoe_core::Target`]) arrives with the board work. Until then this crate is a
//! placeholder that CI builds for `thumbv7m-none-eabi` to keep the workspace shape honest.
#![no_std]
