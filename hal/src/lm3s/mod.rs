//! Drivers for the TI Stellaris LM3S6965 (Cortex-M3): register maps and peripherals.
//!
//! No peripheral access crate with registers exists for this chip, so each module names the
//! registers it uses as [`RegisterOffset`](crate::mmio::RegisterOffset) constants taken from
//! the LM3S6965 datasheet, and reaches them only through [`Block`](crate::mmio::Block).
//! The addresses were checked against QEMU's `lm3s6965evb` model (7.2), which is where CI
//! runs them; the comments note where QEMU and the silicon differ.

pub mod ethernet;
pub mod gpio;
pub mod ssi;
pub mod sysctl;
pub mod watchdog;
