//! # aoe-hal: what the EtherDrive blade firmware needs from a board, and drivers for it
//!
//! A board gives the firmware two things:
//!
//! * an **Ethernet MAC** implementing [`EthernetMac`]: a [`smoltcp::phy::Device`] plus the
//!   address, the link state and counters;
//! * **block storage** implementing [`aoe_core::Disk`] (512-octet sectors).
//!
//! ## Why smoltcp's `phy::Device`, extended, and not a smaller trait of ours
//!
//! The device hands out a *pair* of tokens per received frame (receive, and transmit for the
//! reply), and each token *lends* a driver-owned buffer to a closure. That is the shape real
//! MACs need: a DMA MAC (STM32 ETH, descriptor rings) lends its ring buffers without a copy,
//! a FIFO MAC (LM3S6965, W5500 MACRAW) copies through one RAM buffer each way, and a driver
//! with one frame in flight simply returns no transmit token until the previous frame left.
//! `aoe-core` already drives such a device ([`aoe_core::Target::poll`],
//! [`aoe_core::Target::announce_on`]), embassy-style drivers wrap into it, and host tests use
//! smoltcp's own devices. What it lacks is added by [`EthernetMac`]: the station address
//! (the reply's source), the link state (to re-announce when a cable is plugged in), and
//! counters (dropped, filtered, overrun frames) for the firmware's logs.
//!
//! A driver must yield only frames addressed to its MAC or to broadcast: the silicon filters
//! in hardware, a driver for a model that does not (QEMU) filters in software with
//! [`for_station`].
//!
//! ## Drivers
//!
//! * [`lm3s`]: TI Stellaris LM3S6965: system control, GPIO, the PL022 SSI as an
//!   embedded-hal 1.0 [`SpiBus`](embedded_hal::spi::SpiBus), the Ethernet MAC, the watchdog.
//! * [`sd`]: SD cards (SDSC and SDHC/SDXC) in SPI mode over any embedded-hal `SpiBus` and
//!   chip-select pin, as an [`aoe_core::Disk`].
//! * [`w5500`]: the WIZnet W5500 Ethernet controller in MACRAW mode over any embedded-hal
//!   `SpiDevice`, as an [`EthernetMac`] (tested on the host against a simulated chip).
//! * `cpu` (microcontroller builds only): the chip reset and the stack high-water mark every
//!   board uses.
//!
//! Chips' drivers live here, generic over embedded-hal where they sit on a bus; a board crate
//! only picks pins and clocks and puts them together (as embassy's and tock's boards do).
//! * [`mmio`]: the typed register layer; all `unsafe` of this crate sits there or in the
//!   constructors that create register blocks, each with a `SAFETY` note.
//!
//! ## Features
//!
//! * `defmt`: derive `defmt::Format` for the public types (and enable aoe-core's).
#![no_std]
#![deny(clippy::undocumented_unsafe_blocks)]
#![warn(missing_docs)]

#[cfg(target_os = "none")]
pub mod cpu;
pub mod crc;
pub mod lm3s;
pub mod mmio;
pub mod sd;
pub mod w5500;

use aoe_core::wire::EthernetAddress;

/// The state of the Ethernet link as the PHY reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum LinkState {
    /// A link partner is connected.
    Up,
    /// No link partner.
    Down,
    /// The PHY cannot be read (QEMU's models): treat as up, never wait for it.
    Unknown,
}

/// What a MAC driver counted since it started. The counters wrap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct MacCounters {
    /// Frames handed to the firmware.
    pub rx_frames: u32,
    /// Frames dropped because they were addressed to another station.
    pub rx_filtered: u32,
    /// Frames dropped because they were too long, too short or damaged.
    pub rx_errors: u32,
    /// Times the receive FIFO overflowed (frames lost).
    pub rx_overruns: u32,
    /// Frames sent.
    pub tx_frames: u32,
    /// Frames the MAC reported as failed.
    pub tx_errors: u32,
    /// Frames not sent: bigger than the MAC carries, or the transmitter stayed busy.
    pub tx_dropped: u32,
}

/// An Ethernet MAC as the firmware uses it: a smoltcp device (one frame per token, buffers
/// lent by the driver) plus its station address, link state and counters.
pub trait EthernetMac: smoltcp::phy::Device {
    /// The station address: the source of every reply and the only unicast destination the
    /// driver lets through.
    fn mac_address(&self) -> EthernetAddress;

    /// Changes the station address (from the identity stored on the card).
    fn set_mac_address(&mut self, address: EthernetAddress);

    /// The link state now; may take a few microseconds (a PHY register read).
    fn link(&mut self) -> LinkState;

    /// The counters so far.
    fn counters(&self) -> MacCounters;
}

/// True if a received `frame` is one a driver may hand to the firmware: its destination is
/// `station` or broadcast. For MACs (or models of them, as QEMU's) that do not filter in
/// hardware; a frame too short for an Ethernet header is refused.
pub fn for_station(frame: &[u8], station: EthernetAddress) -> bool {
    smoltcp::wire::EthernetFrame::new_checked(frame).is_ok_and(|frame| {
        let destination = frame.dst_addr();
        destination == station || destination.is_broadcast()
    })
}

/// A locally administered unicast MAC address from a chip's unique ID, for boards without a
/// MAC EEPROM: 02 followed by five octets that fold all the ID's octets together (rotated by
/// their round, so every octet of the ID counts). The same chip always gets the same address.
pub fn mac_from_unique_id(id: &[u8]) -> [u8; 6] {
    let mut mac = [0x02, 0, 0, 0, 0, 0];
    for (index, octet) in (0u32..).zip(id) {
        mac[1 + (index % 5) as usize] ^= octet.rotate_left(index / 5);
    }
    mac
}

#[cfg(test)]
mod test {
    use super::mac_from_unique_id;

    #[test]
    fn for_station_passes_our_address_and_broadcast_only() {
        use super::for_station;
        use aoe_core::wire::EthernetAddress;
        let ours = EthernetAddress([0x02, 0, 0, 0, 0, 1]);
        let mut frame = [0u8; 60];
        frame[..6].copy_from_slice(&ours.0);
        assert!(for_station(&frame, ours));
        frame[..6].copy_from_slice(&[0xFF; 6]);
        assert!(for_station(&frame, ours));
        frame[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 2]);
        assert!(!for_station(&frame, ours));
        frame[..6].copy_from_slice(&[0x01, 0x00, 0x5E, 0, 0, 1]);
        assert!(!for_station(&frame, ours), "multicast");
        assert!(!for_station(&[0xFF; 13], ours), "no Ethernet header");
    }

    #[test]
    fn mac_from_unique_id_is_local_unicast_and_uses_every_octet() {
        let id = [
            0x10, 0x32, 0x54, 0x76, 0x98, 0xBA, 0xDC, 0xFE, 0x01, 0x23, 0x45, 0x67,
        ];
        let mac = mac_from_unique_id(&id);
        assert_eq!(mac[0], 0x02, "locally administered, unicast");
        assert_eq!(mac, mac_from_unique_id(&id), "stable");
        for index in 0..id.len() {
            let mut other = id;
            other[index] ^= 0x01;
            assert_ne!(mac_from_unique_id(&other), mac, "octet {index} ignored");
        }
        assert_eq!(mac_from_unique_id(&[]), [0x02, 0, 0, 0, 0, 0]);
    }
}
