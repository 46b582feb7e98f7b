//! An in-memory Ethernet MAC for tests of the paths a smoltcp `phy::Device` drives
//! (`Target::poll`, `Target::announce_on`, the blade's poll step).
//!
//! Frames pushed to [`QueueDevice::rx`] are received in order, each with a transmit token;
//! transmitted frames are collected in [`QueueDevice::tx`]. A transmit buffer starts filled
//! with 0xA5, so an octet the code under test failed to write shows in the frame. It is also
//! an `aoe_hal::EthernetMac` (station address, an unknown link, no counters), for the
//! firmware's host tests.

use aoe_core::wire::EthernetAddress;
use aoe_hal::{EthernetMac, LinkState, MacCounters};
use smoltcp::phy::{self, DeviceCapabilities, Medium};
use smoltcp::time::Instant;
use std::collections::VecDeque;

/// The octet a transmit buffer holds before the code under test writes it.
pub const TX_POISON: u8 = 0xA5;

/// The largest frame the device carries (a standard Ethernet frame, header included).
pub const MAX_FRAME_LEN: usize = 1514;

/// A MAC that receives from a queue and transmits into a list.
#[derive(Debug, Clone, Default)]
pub struct QueueDevice {
    /// Frames waiting to be received, first first.
    pub rx: VecDeque<Vec<u8>>,
    /// Frames transmitted so far, in order.
    pub tx: Vec<Vec<u8>>,
    /// The station address (`EthernetMac::set_mac_address` sets it).
    pub address: EthernetAddress,
}

/// A received frame.
#[derive(Debug)]
pub struct QueueRx(Vec<u8>);

/// A transmit buffer, appended to [`QueueDevice::tx`] when consumed.
#[derive(Debug)]
pub struct QueueTx<'a>(&'a mut Vec<Vec<u8>>);

impl phy::RxToken for QueueRx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl phy::TxToken for QueueTx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut frame = vec![TX_POISON; len];
        let result = f(&mut frame);
        self.0.push(frame);
        result
    }
}

impl phy::Device for QueueDevice {
    type RxToken<'a> = QueueRx;
    type TxToken<'a> = QueueTx<'a>;

    fn receive(&mut self, _: Instant) -> Option<(QueueRx, QueueTx<'_>)> {
        let frame = self.rx.pop_front()?;
        Some((QueueRx(frame), QueueTx(&mut self.tx)))
    }

    fn transmit(&mut self, _: Instant) -> Option<QueueTx<'_>> {
        Some(QueueTx(&mut self.tx))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut capabilities = DeviceCapabilities::default();
        capabilities.medium = Medium::Ethernet;
        capabilities.max_transmission_unit = MAX_FRAME_LEN;
        capabilities
    }
}

impl EthernetMac for QueueDevice {
    fn mac_address(&self) -> EthernetAddress {
        self.address
    }

    fn set_mac_address(&mut self, address: EthernetAddress) {
        self.address = address;
    }

    fn link(&mut self) -> LinkState {
        LinkState::Unknown
    }

    fn counters(&self) -> MacCounters {
        MacCounters::default()
    }
}
