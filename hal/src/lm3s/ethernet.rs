//! The LM3S6965 Ethernet MAC (10/100, integrated PHY) as a [`smoltcp::phy::Device`].
//!
//! Guarantees:
//!
//! * **Destination filtering in software.** [`Device::receive`] yields only frames addressed
//!   to our MAC or to broadcast, and drains the others from the FIFO. The silicon filters
//!   unicast in hardware too, but QEMU's model delivers every frame ("TODO: Implement MAC
//!   address filtering" in `hw/net/stellaris_enet.c`), so the firmware behaves the same on both.
//! * **One frame in flight.** The MAC has one transmit FIFO of 2 KiB; a transmit token is
//!   handed out only when the previous frame has left, and a receive's reply token waits for it.
//! * **No panic on bad lengths.** A frame longer than the buffer is drained and counted; a
//!   length word that cannot be a frame resets the receive FIFO.
//! * Frames are copied between the MAC's FIFOs and two RAM buffers the caller owns
//!   ([`FrameBuffers`]); the FCS is stripped on receive and appended by the MAC on transmit.
//!
//! FIFO word format (datasheet "Ethernet Frame" and QEMU): the first receive word holds the
//! frame length plus 6 (the 2-octet length field and the 4-octet FCS) in bits 15:0 and the
//! first two frame octets above; the first transmit word holds the length minus 14 in bits
//! 15:0 and the first two octets above. The rest is the frame, little-endian packed.
//!
//! QEMU note: MII is not modelled (PHY registers read 0), so the link state is
//! [`LinkState::Unknown`] there; QEMU's receive queue holds 31 frames while the silicon's
//! 2 KiB FIFO holds about one full-size frame.

use crate::mmio::{Block, RegisterOffset};
use crate::{EthernetMac, LinkState, MacCounters};
use aoe_core::wire::EthernetAddress;
use smoltcp::phy::{Device, DeviceCapabilities, Medium, RxToken, TxToken};
use smoltcp::time::Instant;

/// Base address of the Ethernet MAC.
pub const BASE: usize = 0x4004_8000;

const RIS: RegisterOffset = RegisterOffset(0x00);
const IM: RegisterOffset = RegisterOffset(0x04);
const RCTL: RegisterOffset = RegisterOffset(0x08);
const TCTL: RegisterOffset = RegisterOffset(0x0C);
const DATA: RegisterOffset = RegisterOffset(0x10);
const IA0: RegisterOffset = RegisterOffset(0x14);
const IA1: RegisterOffset = RegisterOffset(0x18);
const THR: RegisterOffset = RegisterOffset(0x1C);
const MCTL: RegisterOffset = RegisterOffset(0x20);
const MDV: RegisterOffset = RegisterOffset(0x24);
const MRXD: RegisterOffset = RegisterOffset(0x30);
const NP: RegisterOffset = RegisterOffset(0x34);
const TR: RegisterOffset = RegisterOffset(0x38);

const RIS_TXER: u32 = 1 << 1;
const RIS_FOV: u32 = 1 << 3;
const RIS_RXER: u32 = 1 << 4;
const RCTL_RXEN: u32 = 1 << 0;
const RCTL_BADCRC: u32 = 1 << 3;
const RCTL_RSTFIFO: u32 = 1 << 4;
const TCTL_TXEN: u32 = 1 << 0;
const TCTL_PADEN: u32 = 1 << 1;
const TCTL_CRC: u32 = 1 << 2;
const TCTL_DUPLEX: u32 = 1 << 3;
const MCTL_START: u32 = 1 << 0;
const TR_NEWTX: u32 = 1 << 0;
/// THR value for "start transmission only when the whole frame is in the FIFO".
const THR_WHOLE_FRAME: u32 = 0x3F;

/// PHY registers (IEEE 802.3 clause 22 plus the LM3S6965's diagnostic register).
const PHY_STATUS: u32 = 1;
const PHY_ID1: u32 = 2;
const PHY_DIAGNOSTIC: u32 = 18;
const PHY_STATUS_LINK: u32 = 1 << 2;
const PHY_DIAGNOSTIC_FULL_DUPLEX: u32 = 1 << 11;

/// Polls of a busy bit before the driver gives up (MII) or assumes the MAC is stuck (TX).
const BUSY_POLLS: u32 = 100_000;

/// Octets of one frame buffer: a 1514-octet frame rounded up to whole FIFO words, with room
/// for the length word.
pub const FRAME_BUFFER_LEN: usize = 1536;

/// The largest frame (Ethernet header included, FCS excluded) the MAC carries: standard
/// Ethernet; the silicon has no jumbo frames.
pub const MAX_FRAME_LEN: usize = 1514;

/// The receive and transmit buffers the driver copies frames through. Keep them in a
/// `static` so they count as `.bss`, not stack.
#[derive(Debug)]
pub struct FrameBuffers {
    rx: [u8; FRAME_BUFFER_LEN],
    tx: [u8; FRAME_BUFFER_LEN],
}

impl FrameBuffers {
    /// Zeroed buffers.
    pub const fn new() -> FrameBuffers {
        FrameBuffers {
            rx: [0; FRAME_BUFFER_LEN],
            tx: [0; FRAME_BUFFER_LEN],
        }
    }
}

impl Default for FrameBuffers {
    fn default() -> Self {
        FrameBuffers::new()
    }
}

/// The Ethernet MAC.
#[derive(Debug)]
pub struct Ethernet<'b> {
    regs: Block,
    buffers: &'b mut FrameBuffers,
    address: EthernetAddress,
    phy_present: bool,
    counters: MacCounters,
}

impl<'b> Ethernet<'b> {
    /// Takes the MAC (its and the PHY's clocks must be on, the LED pins muxed if wanted),
    /// programs `address`, and enables receive and transmit with polling (no interrupts).
    /// `system_hz` sets the MII management clock (at most 2.5 MHz).
    ///
    /// # Safety
    /// Only one `Ethernet` may exist, and the code must run on an LM3S6965.
    pub unsafe fn new(
        system_hz: u32,
        address: EthernetAddress,
        buffers: &'b mut FrameBuffers,
    ) -> Ethernet<'b> {
        let mut mac = Ethernet {
            // SAFETY: the caller guarantees the chip, the clocks and exclusive ownership.
            regs: unsafe { Block::new(BASE) },
            buffers,
            address,
            phy_present: false,
            counters: MacCounters::default(),
        };
        let regs = &mac.regs;
        regs.write(IM, 0);
        regs.write(RIS, u32::MAX);
        // MII clock = system clock / (2 × (MDV + 1)) <= 2.5 MHz.
        regs.write(MDV, (system_hz / 5_000_000).min(0xFF));
        regs.write(THR, THR_WHOLE_FRAME);
        regs.write(TCTL, TCTL_PADEN | TCTL_CRC | TCTL_DUPLEX | TCTL_TXEN);
        regs.write(RCTL, RCTL_RSTFIFO);
        regs.write(RCTL, RCTL_RXEN | RCTL_BADCRC);
        mac.set_mac_address(address);
        mac.phy_present = matches!(mac.mii_read(PHY_ID1), Some(id) if id != 0 && id != 0xFFFF);
        mac
    }

    /// Reads a PHY register through MII management; `None` if the interface stays busy.
    fn mii_read(&self, register: u32) -> Option<u32> {
        let idle = |regs: &Block| (0..BUSY_POLLS).any(|_| regs.read(MCTL) & MCTL_START == 0);
        if !idle(&self.regs) {
            return None;
        }
        self.regs.write(MCTL, (register << 3) | MCTL_START);
        if !idle(&self.regs) {
            return None;
        }
        Some(self.regs.read(MRXD) & 0xFFFF)
    }

    /// True once the previous frame has left the transmit FIFO (bounded wait).
    fn transmitter_idle(&self) -> bool {
        (0..BUSY_POLLS).any(|_| self.regs.read(TR) & TR_NEWTX == 0)
    }

    /// Pops one frame from the receive FIFO into the receive buffer. Returns its length, or
    /// `None` when it was dropped (too long, too short, or not for us).
    fn pop_frame(&mut self) -> Option<usize> {
        let first = self.regs.read(DATA);
        let total = (first & 0xFFFF) as usize;
        // Longer than any frame the FIFO can hold: the FIFO is out of step. Start afresh.
        if total > 2048 {
            self.counters.rx_errors = self.counters.rx_errors.wrapping_add(1);
            self.regs.write(RCTL, RCTL_RSTFIFO);
            self.regs.write(RCTL, RCTL_RXEN | RCTL_BADCRC);
            return None;
        }
        let rx = &mut self.buffers.rx;
        let [_, _, first_octet, second_octet] = first.to_le_bytes();
        rx[0] = first_octet;
        rx[1] = second_octet;
        // Frame octet `i` sits at FIFO octet `i + 2`; copy what fits, drain the rest.
        for word_index in 1..total.div_ceil(4) {
            let word = self.regs.read(DATA).to_le_bytes();
            let start = word_index * 4 - 2;
            if let Some(slot) = rx.get_mut(start..start + 4) {
                slot.copy_from_slice(&word);
            }
        }
        let frame_len = total.saturating_sub(6);
        if !(14..=MAX_FRAME_LEN).contains(&frame_len) {
            self.counters.rx_errors = self.counters.rx_errors.wrapping_add(1);
            return None;
        }
        if !rx
            .get(..frame_len)
            .is_some_and(|frame| crate::for_station(frame, self.address))
        {
            self.counters.rx_filtered = self.counters.rx_filtered.wrapping_add(1);
            return None;
        }
        self.counters.rx_frames = self.counters.rx_frames.wrapping_add(1);
        Some(frame_len)
    }

    /// Acknowledges receive-side error flags, counting overruns.
    fn check_receive_errors(&mut self) {
        let flags = self.regs.read(RIS) & (RIS_FOV | RIS_RXER);
        if flags != 0 {
            if flags & RIS_FOV != 0 {
                self.counters.rx_overruns = self.counters.rx_overruns.wrapping_add(1);
            }
            if flags & RIS_RXER != 0 {
                self.counters.rx_errors = self.counters.rx_errors.wrapping_add(1);
            }
            self.regs.write(RIS, flags);
        }
    }
}

/// A received frame, borrowed from the receive buffer.
pub struct EthernetRxToken<'a> {
    frame: &'a [u8],
}

impl RxToken for EthernetRxToken<'_> {
    fn consume<R, F>(self, f: F) -> R
    where
        F: FnOnce(&[u8]) -> R,
    {
        f(self.frame)
    }
}

/// Permission to send one frame through the transmit buffer.
pub struct EthernetTxToken<'a> {
    regs: &'a Block,
    buffer: &'a mut [u8; FRAME_BUFFER_LEN],
    counters: &'a mut MacCounters,
}

impl TxToken for EthernetTxToken<'_> {
    /// Lends the transmit buffer for a frame of `len` octets, then sends it. A `len` outside
    /// 14..=1514 gets as much buffer as exists and is not sent (counted in `tx_dropped`).
    fn consume<R, F>(self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        let lent = len.min(MAX_FRAME_LEN);
        let result = f(&mut self.buffer[..lent]);
        let idle = (0..BUSY_POLLS).any(|_| self.regs.read(TR) & TR_NEWTX == 0);
        if lent != len || len < 14 || !idle {
            self.counters.tx_dropped = self.counters.tx_dropped.wrapping_add(1);
            return result;
        }
        let frame = &self.buffer[..len];
        // `len` is at most 1514 here, so the 16-bit length field holds it.
        let payload_len = u32::from(u16::try_from(len - 14).unwrap_or(u16::MAX));
        self.regs.write(
            DATA,
            payload_len | (u32::from(frame[0]) << 16) | (u32::from(frame[1]) << 24),
        );
        let (words, tail) = frame[2..].as_chunks::<4>();
        for word in words {
            self.regs.write(DATA, u32::from_le_bytes(*word));
        }
        if !tail.is_empty() {
            let mut last = [0u8; 4];
            last[..tail.len()].copy_from_slice(tail);
            self.regs.write(DATA, u32::from_le_bytes(last));
        }
        self.regs.write(TR, TR_NEWTX);
        if self.regs.read(RIS) & RIS_TXER != 0 {
            // Acknowledging TXER also empties the transmit FIFO.
            self.regs.write(RIS, RIS_TXER);
            self.counters.tx_errors = self.counters.tx_errors.wrapping_add(1);
        } else {
            self.counters.tx_frames = self.counters.tx_frames.wrapping_add(1);
        }
        result
    }
}

impl Device for Ethernet<'_> {
    type RxToken<'a>
        = EthernetRxToken<'a>
    where
        Self: 'a;
    type TxToken<'a>
        = EthernetTxToken<'a>
    where
        Self: 'a;

    fn receive(&mut self, _now: Instant) -> Option<(EthernetRxToken<'_>, EthernetTxToken<'_>)> {
        self.check_receive_errors();
        // Bounded by the frames waiting now, so a flood of foreign frames cannot trap us.
        let waiting = self.regs.read(NP) & 0x3F;
        let mut len = None;
        for _ in 0..waiting {
            len = self.pop_frame();
            if len.is_some() {
                break;
            }
        }
        let len = len?;
        let FrameBuffers { rx, tx } = &mut *self.buffers;
        Some((
            EthernetRxToken { frame: &rx[..len] },
            EthernetTxToken {
                regs: &self.regs,
                buffer: tx,
                counters: &mut self.counters,
            },
        ))
    }

    fn transmit(&mut self, _now: Instant) -> Option<EthernetTxToken<'_>> {
        if !self.transmitter_idle() {
            return None;
        }
        Some(EthernetTxToken {
            regs: &self.regs,
            buffer: &mut self.buffers.tx,
            counters: &mut self.counters,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut capabilities = DeviceCapabilities::default();
        capabilities.medium = Medium::Ethernet;
        capabilities.max_transmission_unit = MAX_FRAME_LEN;
        capabilities.max_burst_size = Some(1);
        capabilities
    }
}

impl EthernetMac for Ethernet<'_> {
    fn mac_address(&self) -> EthernetAddress {
        self.address
    }

    fn set_mac_address(&mut self, address: EthernetAddress) {
        self.address = address;
        let [a, b, c, d, e, f] = address.0;
        self.regs.write(IA0, u32::from_le_bytes([a, b, c, d]));
        self.regs.write(IA1, u32::from_le_bytes([e, f, 0, 0]));
    }

    fn link(&mut self) -> LinkState {
        if !self.phy_present {
            return LinkState::Unknown;
        }
        match self.mii_read(PHY_STATUS) {
            Some(status) if status & PHY_STATUS_LINK != 0 => {
                // Follow the duplex the PHY negotiated, or collisions garble half-duplex links.
                if let Some(diagnostic) = self.mii_read(PHY_DIAGNOSTIC) {
                    if diagnostic & PHY_DIAGNOSTIC_FULL_DUPLEX != 0 {
                        self.regs.set_bits(TCTL, TCTL_DUPLEX);
                    } else {
                        self.regs.clear_bits(TCTL, TCTL_DUPLEX);
                    }
                }
                LinkState::Up
            }
            Some(_) => LinkState::Down,
            None => LinkState::Unknown,
        }
    }

    fn counters(&self) -> MacCounters {
        self.counters
    }
}
