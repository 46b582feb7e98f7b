//! # aoe-board-w5500-evb-pico: the EtherDrive blade on a WIZnet W5500-EVB-Pico
//!
//! Board bring-up, and nothing of the protocol: [`Board::take`] starts the RP2040 (125 MHz
//! from the 12 MHz crystal, embassy-rp's defaults), resets the W5500 and opens it in MACRAW
//! mode ([`aoe_hal::w5500::W5500`], an [`aoe_hal::EthernetMac`]), and sets up SPI1 for a
//! microSD breakout ([`Board::init_card`]; the card is an [`aoe_hal::sd::SdCard`], an
//! [`aoe_core::Disk`]). The vendor HAL is embassy-rp, in blocking mode.
//!
//! | function | RP2040 pins | notes |
//! |---|---|---|
//! | W5500 MISO / CS / SCK / MOSI | GP16 / GP17 / GP18 / GP19 (SPI0) | on the board; 31.25 MHz |
//! | W5500 RST / INT | GP20 / GP21 | INT unused: the firmware polls |
//! | microSD SCK / MOSI / MISO | GP10 / GP11 / GP12 (SPI1) | breakout, mode 0; 400 kHz to initialise, 12.5 MHz after |
//! | microSD CS | GP13 (GPIO, active low) | |
//!
//! The RP2040 is an ARMv6-M core without compare-and-swap: atomics beyond load/store come
//! from `portable-atomic` with the critical section (embassy-rp's `critical-section-impl`).
//!
//! The board exists for `target_os = "none"` only: on the host this crate is empty. The
//! W5500 driver is `aoe_hal::w5500`, tested on the host with `cargo test -p aoe-hal`.
//!
//! Memory (`memory.x`): 2 MiB flash (W25Q16, the first 256 octets are the second-stage
//! bootloader), 256 KiB SRAM at 0x2000_0000 (SRAM0–3, striped); the link fails if less than
//! 16 KiB are left for the stack.
//!
//! MAC address: the board has no MAC EEPROM; [`Board::take`] derives a locally administered
//! one from the flash chip's 64-bit unique ID.
#![no_std]
#![deny(clippy::undocumented_unsafe_blocks)]
#![warn(missing_docs)]

#[cfg(target_os = "none")]
mod board;
#[cfg(target_os = "none")]
pub use board::*;
