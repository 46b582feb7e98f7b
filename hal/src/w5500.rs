//! WIZnet W5500 in MACRAW mode (socket 0 sends and receives whole Ethernet frames) as an
//! [`EthernetMac`], over any embedded-hal 1.0 [`SpiDevice`].
//!
//! Guarantees:
//!
//! * **Only our frames**: the chip's MAC filter (MFEN) passes our address and broadcast, and
//!   multicast and IPv6 are blocked; a frame for anyone else that slips through (never
//!   expected) is dropped in software and counted in `rx_filtered`.
//! * **One frame in flight each way, copied through RAM**: the chip's 16 KiB receive buffer
//!   queues frames; [`Device::receive`] copies one into the driver's receive buffer, hands the
//!   chip its space back at once, and lends that copy. A transmit token lends the driver's
//!   transmit buffer and writes it to the chip's 16 KiB transmit buffer when the closure
//!   returns.
//! * Every wait on the chip is bounded; a stuck chip gives counted errors, never a hang.
//! * An SPI error on receive drops the frame (counted in `rx_errors`); the receive pointer is
//!   only advanced after the whole frame was read, so nothing is skipped silently.
//!
//! Why our own driver and not embassy-net-wiznet: the blade's loop is synchronous and polls
//! one frame at a time (the `EthernetMac` trait); embassy-net-wiznet needs an async executor
//! with a runner task and copies each frame through a channel. MACRAW is a dozen registers.
//!
//! SPI frame (datasheet §2.2): 16-bit offset, control octet (block select << 3 | write << 2 |
//! variable-length mode), then data; one chip-select period per frame.

use crate::{EthernetMac, LinkState, MacCounters};
use aoe_core::wire::EthernetAddress;
use embedded_hal::spi::{Operation, SpiDevice};
use smoltcp::phy::{Device, DeviceCapabilities, Medium, RxToken, TxToken};
use smoltcp::time::Instant;

/// The largest frame MACRAW carries: 1514 octets (header and payload; the chip adds the FCS).
pub const MAX_FRAME_LEN: usize = 1514;
/// Octets before each received frame in the receive buffer: its length, those two included.
const RX_HEADER_LEN: usize = 2;
/// Socket 0's share of the chip's 16 KiB of receive and 16 KiB of transmit buffer, in KiB.
const SOCKET0_BUFFER_KIB: u8 = 16;
/// Polls of the command register before a command counts as failed.
const COMMAND_POLLS: u32 = 10_000;
/// Polls for SEND_OK after a send (a 1514-octet frame leaves in about 120 µs at 100 Mbit/s).
const SEND_POLLS: u32 = 100_000;

/// Block select: common registers.
const COMMON: u8 = 0x00;
/// Block select: socket 0 registers, transmit buffer, receive buffer.
const S0_REGISTERS: u8 = 0x01;
const S0_TX_BUFFER: u8 = 0x02;
const S0_RX_BUFFER: u8 = 0x03;
/// Control octet bit 2: write.
const CONTROL_WRITE: u8 = 1 << 2;

// Common registers.
const MR: u16 = 0x0000;
const MR_RESET: u8 = 0x80;
const SHAR: u16 = 0x0009;
const PHYCFGR: u16 = 0x002E;
const PHYCFGR_LINK: u8 = 0x01;
const VERSIONR: u16 = 0x0039;
const W5500_VERSION: u8 = 0x04;

// Socket registers.
const SN_MR: u16 = 0x0000;
/// MACRAW, with MAC filter (MFEN), multicast blocking (MMB) and IPv6 blocking (MIP6B).
const SN_MR_MACRAW_FILTERED: u8 = 0x04 | 0x80 | 0x20 | 0x10;
const SN_CR: u16 = 0x0001;
const CMD_OPEN: u8 = 0x01;
const CMD_CLOSE: u8 = 0x10;
const CMD_SEND: u8 = 0x20;
const CMD_RECV: u8 = 0x40;
const SN_IR: u16 = 0x0002;
const SN_IR_SEND_OK: u8 = 0x10;
const SN_SR: u16 = 0x0003;
const SOCK_MACRAW: u8 = 0x42;
const SN_RXBUF_SIZE: u16 = 0x001E;
const SN_TXBUF_SIZE: u16 = 0x001F;
const SN_TX_FSR: u16 = 0x0020;
const SN_TX_WR: u16 = 0x0024;
const SN_RX_RSR: u16 = 0x0026;
const SN_RX_RD: u16 = 0x0028;

/// Why the chip could not be started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum W5500Error {
    /// The SPI bus failed: check the wiring and the bus set-up.
    Spi,
    /// VERSIONR did not read 0x04: no W5500 on the bus (or it is held in reset).
    NotFound(u8),
    /// The chip did not take a command (socket 0 status after it).
    Command(u8),
}

/// The SPI side of the chip: register and buffer access.
struct Chip<S> {
    spi: S,
}

impl<S: SpiDevice> Chip<S> {
    /// Reads `data.len()` octets from `offset` in `block`.
    fn read(&mut self, block: u8, offset: u16, data: &mut [u8]) -> Result<(), W5500Error> {
        let [high, low] = offset.to_be_bytes();
        let header = [high, low, block << 3];
        self.spi
            .transaction(&mut [Operation::Write(&header), Operation::Read(data)])
            .map_err(|_| W5500Error::Spi)
    }

    /// Writes `data` at `offset` in `block`.
    fn write(&mut self, block: u8, offset: u16, data: &[u8]) -> Result<(), W5500Error> {
        let [high, low] = offset.to_be_bytes();
        let header = [high, low, (block << 3) | CONTROL_WRITE];
        self.spi
            .transaction(&mut [Operation::Write(&header), Operation::Write(data)])
            .map_err(|_| W5500Error::Spi)
    }

    fn read_u8(&mut self, block: u8, offset: u16) -> Result<u8, W5500Error> {
        let mut value = [0];
        self.read(block, offset, &mut value)?;
        Ok(value[0])
    }

    fn read_u16(&mut self, block: u8, offset: u16) -> Result<u16, W5500Error> {
        let mut value = [0; 2];
        self.read(block, offset, &mut value)?;
        Ok(u16::from_be_bytes(value))
    }

    /// A 16-bit socket 0 counter the chip updates while we read it: read until two reads
    /// agree (the datasheet's advice for Sn_TX_FSR and Sn_RX_RSR).
    fn read_u16_stable(&mut self, offset: u16) -> Result<u16, W5500Error> {
        let mut previous = self.read_u16(S0_REGISTERS, offset)?;
        for _ in 0..8 {
            let now = self.read_u16(S0_REGISTERS, offset)?;
            if now == previous {
                return Ok(now);
            }
            previous = now;
        }
        Err(W5500Error::Spi)
    }

    /// Issues a socket 0 command and waits until the chip took it.
    fn command(&mut self, command: u8) -> Result<(), W5500Error> {
        self.write(S0_REGISTERS, SN_CR, &[command])?;
        for _ in 0..COMMAND_POLLS {
            if self.read_u8(S0_REGISTERS, SN_CR)? == 0 {
                return Ok(());
            }
        }
        Err(W5500Error::Command(command))
    }

    /// Writes `frame` to the chip's transmit buffer and sends it; returns once the chip
    /// reported SEND_OK.
    fn send(&mut self, frame: &[u8]) -> Result<(), W5500Error> {
        let len = u16::try_from(frame.len()).map_err(|_| W5500Error::Command(CMD_SEND))?;
        if self.read_u16_stable(SN_TX_FSR)? < len {
            return Err(W5500Error::Command(CMD_SEND));
        }
        let write_pointer = self.read_u16(S0_REGISTERS, SN_TX_WR)?;
        // Offsets wrap inside the socket's buffer in the chip, so one write is enough.
        self.write(S0_TX_BUFFER, write_pointer, frame)?;
        let next = write_pointer.wrapping_add(len);
        self.write(S0_REGISTERS, SN_TX_WR, &next.to_be_bytes())?;
        self.command(CMD_SEND)?;
        for _ in 0..SEND_POLLS {
            if self.read_u8(S0_REGISTERS, SN_IR)? & SN_IR_SEND_OK != 0 {
                self.write(S0_REGISTERS, SN_IR, &[SN_IR_SEND_OK])?;
                return Ok(());
            }
        }
        Err(W5500Error::Command(CMD_SEND))
    }
}

/// The W5500 in MACRAW mode on its SPI device.
pub struct W5500<S> {
    chip: Chip<S>,
    address: EthernetAddress,
    counters: MacCounters,
    rx: [u8; MAX_FRAME_LEN],
    tx: [u8; MAX_FRAME_LEN],
}

impl<S: SpiDevice> W5500<S> {
    /// Resets the chip (software reset; the board pulses its RST pin before), sets `address`
    /// and gives socket 0 all buffer memory in MACRAW mode with the MAC filter on.
    ///
    /// # Errors
    /// [`W5500Error`] when the chip is absent or does not take the configuration.
    pub fn new(spi: S, address: EthernetAddress) -> Result<W5500<S>, W5500Error> {
        let mut chip = Chip { spi };
        let version = chip.read_u8(COMMON, VERSIONR)?;
        if version != W5500_VERSION {
            return Err(W5500Error::NotFound(version));
        }
        chip.write(COMMON, MR, &[MR_RESET])?;
        // The reset bit clears itself once the chip is ready again.
        if !(0..COMMAND_POLLS).any(|_| chip.read_u8(COMMON, MR).is_ok_and(|mr| mr & MR_RESET == 0))
        {
            return Err(W5500Error::Command(0));
        }
        chip.write(COMMON, SHAR, &address.0)?;
        for socket in 0..8u8 {
            let size = if socket == 0 { SOCKET0_BUFFER_KIB } else { 0 };
            let block = socket * 4 + S0_REGISTERS;
            chip.write(block, SN_RXBUF_SIZE, &[size])?;
            chip.write(block, SN_TXBUF_SIZE, &[size])?;
        }
        chip.write(S0_REGISTERS, SN_MR, &[SN_MR_MACRAW_FILTERED])?;
        chip.command(CMD_OPEN)?;
        let status = chip.read_u8(S0_REGISTERS, SN_SR)?;
        if status != SOCK_MACRAW {
            return Err(W5500Error::Command(status));
        }
        Ok(W5500 {
            chip,
            address,
            counters: MacCounters::default(),
            rx: [0; MAX_FRAME_LEN],
            tx: [0; MAX_FRAME_LEN],
        })
    }

    /// Copies the next frame from the chip into the receive buffer and frees its space in
    /// the chip. `Ok(None)` when nothing is waiting or the frame was dropped.
    fn pop_frame(&mut self) -> Result<Option<usize>, W5500Error> {
        let waiting = usize::from(self.chip.read_u16_stable(SN_RX_RSR)?);
        if waiting < RX_HEADER_LEN {
            return Ok(None);
        }
        let read_pointer = self.chip.read_u16(S0_REGISTERS, SN_RX_RD)?;
        let mut header = [0; RX_HEADER_LEN];
        self.chip.read(S0_RX_BUFFER, read_pointer, &mut header)?;
        let total = u16::from_be_bytes(header);
        let frame_len = usize::from(total).saturating_sub(RX_HEADER_LEN);
        if usize::from(total) < RX_HEADER_LEN
            || usize::from(total) > waiting
            || frame_len > MAX_FRAME_LEN
        {
            // The chip's buffer is out of step: close and reopen the socket to empty it.
            self.counters.rx_errors = self.counters.rx_errors.wrapping_add(1);
            self.chip.command(CMD_CLOSE)?;
            self.chip
                .write(S0_REGISTERS, SN_MR, &[SN_MR_MACRAW_FILTERED])?;
            self.chip.command(CMD_OPEN)?;
            return Ok(None);
        }
        // Offsets wrap inside the socket's buffer in the chip, so one read is enough.
        let data_pointer = read_pointer.wrapping_add(2);
        self.chip
            .read(S0_RX_BUFFER, data_pointer, &mut self.rx[..frame_len])?;
        let next = read_pointer.wrapping_add(total);
        self.chip
            .write(S0_REGISTERS, SN_RX_RD, &next.to_be_bytes())?;
        self.chip.command(CMD_RECV)?;
        if frame_len < 14 {
            self.counters.rx_errors = self.counters.rx_errors.wrapping_add(1);
            return Ok(None);
        }
        if !crate::for_station(&self.rx[..frame_len], self.address) {
            self.counters.rx_filtered = self.counters.rx_filtered.wrapping_add(1);
            return Ok(None);
        }
        self.counters.rx_frames = self.counters.rx_frames.wrapping_add(1);
        Ok(Some(frame_len))
    }
}

/// A received frame, copied out of the chip.
pub struct W5500RxToken<'a> {
    frame: &'a [u8],
}

impl RxToken for W5500RxToken<'_> {
    fn consume<R, F>(self, f: F) -> R
    where
        F: FnOnce(&[u8]) -> R,
    {
        f(self.frame)
    }
}

/// Permission to send one frame through the driver's transmit buffer.
pub struct W5500TxToken<'a, S> {
    chip: &'a mut Chip<S>,
    buffer: &'a mut [u8; MAX_FRAME_LEN],
    counters: &'a mut MacCounters,
}

impl<S: SpiDevice> TxToken for W5500TxToken<'_, S> {
    /// Lends the transmit buffer for a frame of `len` octets, then sends it. A `len` outside
    /// 14..=1514 gets as much buffer as exists and is not sent (counted in `tx_dropped`).
    fn consume<R, F>(self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        let lent = len.min(MAX_FRAME_LEN);
        let result = f(&mut self.buffer[..lent]);
        if lent != len || len < 14 {
            self.counters.tx_dropped = self.counters.tx_dropped.wrapping_add(1);
            return result;
        }
        match self.chip.send(&self.buffer[..len]) {
            Ok(()) => self.counters.tx_frames = self.counters.tx_frames.wrapping_add(1),
            Err(_) => self.counters.tx_errors = self.counters.tx_errors.wrapping_add(1),
        }
        result
    }
}

impl<S: SpiDevice> Device for W5500<S> {
    type RxToken<'a>
        = W5500RxToken<'a>
    where
        Self: 'a;
    type TxToken<'a>
        = W5500TxToken<'a, S>
    where
        Self: 'a;

    fn receive(&mut self, _now: Instant) -> Option<(W5500RxToken<'_>, W5500TxToken<'_, S>)> {
        let len = match self.pop_frame() {
            Ok(len) => len?,
            Err(_) => {
                self.counters.rx_errors = self.counters.rx_errors.wrapping_add(1);
                return None;
            }
        };
        Some((
            W5500RxToken {
                frame: &self.rx[..len],
            },
            W5500TxToken {
                chip: &mut self.chip,
                buffer: &mut self.tx,
                counters: &mut self.counters,
            },
        ))
    }

    /// Always ready: a send waits (bounded) for the chip's SEND_OK before it returns, so the
    /// chip's transmit buffer is free again by the next call.
    fn transmit(&mut self, _now: Instant) -> Option<W5500TxToken<'_, S>> {
        Some(W5500TxToken {
            chip: &mut self.chip,
            buffer: &mut self.tx,
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

impl<S: SpiDevice> EthernetMac for W5500<S> {
    fn mac_address(&self) -> EthernetAddress {
        self.address
    }

    /// Reprograms SHAR, which the MAC filter compares against. An SPI failure here leaves
    /// the old address in the chip; the next call retries.
    fn set_mac_address(&mut self, address: EthernetAddress) {
        self.address = address;
        if self.chip.write(COMMON, SHAR, &address.0).is_err() {
            self.counters.tx_errors = self.counters.tx_errors.wrapping_add(1);
        }
    }

    /// PHYCFGR's link bit (the W5500's own PHY).
    fn link(&mut self) -> LinkState {
        match self.chip.read_u8(COMMON, PHYCFGR) {
            Ok(phy) if phy & PHYCFGR_LINK != 0 => LinkState::Up,
            Ok(_) => LinkState::Down,
            Err(_) => LinkState::Unknown,
        }
    }

    fn counters(&self) -> MacCounters {
        self.counters
    }
}

#[cfg(test)]
mod test {
    //! The driver against a simulated W5500: registers, socket commands and the 16 KiB
    //! buffers with free-running 16-bit pointers that wrap inside the buffer, as the datasheet
    //! describes them.
    extern crate std;

    use super::*;
    use core::convert::Infallible;
    use embedded_hal::spi::ErrorType;
    use std::vec::Vec;

    const BUFFER_LEN: usize = 16 * 1024;
    const OURS: [u8; 6] = [0x02, 0x11, 0x22, 0x33, 0x44, 0x55];

    /// The chip as seen through SPI.
    struct SimulatedChip {
        version: u8,
        common: [u8; 0x40],
        socket: [u8; 0x30],
        rx: Vec<u8>,
        tx: Vec<u8>,
        /// Receive pointers: where the chip writes next, and the read pointer as of the last
        /// RECV command (what Sn_RX_RSR counts from).
        rx_write: u16,
        rx_committed: u16,
        tx_read: u16,
        sent: Vec<Vec<u8>>,
        dropped_by_chip: usize,
    }

    impl SimulatedChip {
        fn new() -> SimulatedChip {
            SimulatedChip {
                version: W5500_VERSION,
                common: [0; 0x40],
                socket: [0; 0x30],
                rx: std::vec![0; BUFFER_LEN],
                tx: std::vec![0; BUFFER_LEN],
                rx_write: 0,
                rx_committed: 0,
                tx_read: 0,
                sent: Vec::new(),
                dropped_by_chip: 0,
            }
        }

        fn socket_u16(&self, offset: u16) -> u16 {
            let at = usize::from(offset);
            u16::from_be_bytes([self.socket[at], self.socket[at + 1]])
        }

        fn set_socket_u16(&mut self, offset: u16, value: u16) {
            let at = usize::from(offset);
            self.socket[at..at + 2].copy_from_slice(&value.to_be_bytes());
        }

        fn received_size(&self) -> u16 {
            self.rx_write.wrapping_sub(self.rx_committed)
        }

        /// A frame arrives from the wire: stored with its 2-octet length header, or dropped
        /// when the receive buffer has no room (as the chip does).
        fn arrive(&mut self, frame: &[u8]) {
            let total = frame.len() + 2;
            if total > BUFFER_LEN - usize::from(self.received_size()) {
                self.dropped_by_chip += 1;
                return;
            }
            let header = u16::try_from(total).unwrap().to_be_bytes();
            self.put_rx(&header);
            self.put_rx(frame);
        }

        /// Writes raw octets at the chip's receive write pointer (also for corrupt headers).
        fn put_rx(&mut self, octets: &[u8]) {
            for &octet in octets {
                self.rx[usize::from(self.rx_write) % BUFFER_LEN] = octet;
                self.rx_write = self.rx_write.wrapping_add(1);
            }
        }

        fn execute(&mut self, command: u8) {
            match command {
                CMD_OPEN if self.socket[usize::from(SN_MR)] & 0x0F == 0x04 => {
                    self.socket[usize::from(SN_SR)] = SOCK_MACRAW;
                    self.rx_write = 0;
                    self.rx_committed = 0;
                    self.set_socket_u16(SN_RX_RD, 0);
                    self.tx_read = 0;
                    self.set_socket_u16(SN_TX_WR, 0);
                }
                CMD_CLOSE => self.socket[usize::from(SN_SR)] = 0,
                CMD_RECV => self.rx_committed = self.socket_u16(SN_RX_RD),
                CMD_SEND => {
                    let end = self.socket_u16(SN_TX_WR);
                    let mut frame = Vec::new();
                    while self.tx_read != end {
                        frame.push(self.tx[usize::from(self.tx_read) % BUFFER_LEN]);
                        self.tx_read = self.tx_read.wrapping_add(1);
                    }
                    self.sent.push(frame);
                    self.socket[usize::from(SN_IR)] |= SN_IR_SEND_OK;
                }
                _ => {}
            }
        }

        fn read_octet(&self, block: u8, offset: u16) -> u8 {
            let at = usize::from(offset);
            match block {
                COMMON if offset == VERSIONR => self.version,
                COMMON => self.common[at],
                S0_REGISTERS => match offset {
                    SN_RX_RSR | 0x27 => self.received_size().to_be_bytes()[at - 0x26],
                    SN_TX_FSR | 0x21 => {
                        let used = self.socket_u16(SN_TX_WR).wrapping_sub(self.tx_read);
                        let free = u16::try_from(BUFFER_LEN).unwrap() - used;
                        free.to_be_bytes()[at - 0x20]
                    }
                    _ => self.socket[at],
                },
                S0_RX_BUFFER => self.rx[at % BUFFER_LEN],
                S0_TX_BUFFER => self.tx[at % BUFFER_LEN],
                _ => 0,
            }
        }

        fn write_octet(&mut self, block: u8, offset: u16, value: u8) {
            let at = usize::from(offset);
            match block {
                // The reset bit clears itself at once.
                COMMON if offset == MR => self.common[at] = value & !MR_RESET,
                COMMON => self.common[at] = value,
                S0_REGISTERS if offset == SN_CR => self.execute(value),
                S0_REGISTERS if offset == SN_IR => self.socket[at] &= !value,
                S0_REGISTERS => self.socket[at] = value,
                S0_TX_BUFFER => self.tx[at % BUFFER_LEN] = value,
                _ => {}
            }
        }
    }

    impl ErrorType for SimulatedChip {
        type Error = Infallible;
    }

    impl SpiDevice for SimulatedChip {
        fn transaction(&mut self, operations: &mut [Operation<'_, u8>]) -> Result<(), Infallible> {
            let [Operation::Write(header), data] = operations else {
                panic!("the driver sends a header, then one data phase");
            };
            let offset = u16::from_be_bytes([header[0], header[1]]);
            let block = header[2] >> 3;
            let write = header[2] & CONTROL_WRITE != 0;
            match data {
                Operation::Read(buffer) => {
                    assert!(!write, "read phase with the write bit set");
                    for (index, octet) in (0u16..).zip(buffer.iter_mut()) {
                        *octet = self.read_octet(block, offset.wrapping_add(index));
                    }
                }
                Operation::Write(buffer) => {
                    assert!(write, "write phase without the write bit");
                    for (index, octet) in (0u16..).zip(buffer.iter()) {
                        self.write_octet(block, offset.wrapping_add(index), *octet);
                    }
                }
                _ => panic!("unexpected SPI operation"),
            }
            Ok(())
        }
    }

    fn frame(destination: [u8; 6], len: usize, seed: u8) -> Vec<u8> {
        let mut frame = Vec::with_capacity(len);
        frame.extend_from_slice(&destination);
        frame.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x99, 0x88, 0xA2]);
        frame.extend((0..len - 14).map(|index| seed.wrapping_add(index.to_le_bytes()[0])));
        frame
    }

    fn started() -> W5500<SimulatedChip> {
        W5500::new(SimulatedChip::new(), EthernetAddress(OURS)).expect("chip starts")
    }

    fn receive_one(driver: &mut W5500<SimulatedChip>) -> Option<Vec<u8>> {
        let (rx, _tx) = driver.receive(Instant::ZERO)?;
        Some(rx.consume(|frame| frame.to_vec()))
    }

    #[test]
    fn test_start() {
        let driver = started();
        let chip = &driver.chip.spi;
        assert_eq!(chip.socket[usize::from(SN_SR)], SOCK_MACRAW);
        assert_eq!(chip.socket[usize::from(SN_MR)], SN_MR_MACRAW_FILTERED);
        assert_eq!(
            &chip.common[usize::from(SHAR)..usize::from(SHAR) + 6],
            &OURS
        );
        assert_eq!(chip.socket[usize::from(SN_RXBUF_SIZE)], 16);
        assert_eq!(chip.socket[usize::from(SN_TXBUF_SIZE)], 16);
        assert_eq!(driver.mac_address(), EthernetAddress(OURS));
    }

    #[test]
    fn test_not_found() {
        let mut chip = SimulatedChip::new();
        chip.version = 0xFF;
        let result = W5500::new(chip, EthernetAddress(OURS));
        assert_eq!(result.err(), Some(W5500Error::NotFound(0xFF)));
    }

    #[test]
    fn test_receive_filters() {
        let mut driver = started();
        let other = frame([0x02, 9, 9, 9, 9, 9], 60, 1);
        let broadcast = frame([0xFF; 6], 60, 2);
        let ours = frame(OURS, 1514, 3);
        for each in [&other, &broadcast, &ours] {
            driver.chip.spi.arrive(each);
        }
        assert_eq!(receive_one(&mut driver), None, "foreign frame dropped");
        assert_eq!(receive_one(&mut driver).as_ref(), Some(&broadcast));
        assert_eq!(receive_one(&mut driver).as_ref(), Some(&ours));
        assert_eq!(receive_one(&mut driver), None, "nothing left");
        let counters = driver.counters();
        assert_eq!((counters.rx_frames, counters.rx_filtered), (2, 1));
        assert_eq!(driver.chip.spi.received_size(), 0, "chip space handed back");
    }

    #[test]
    fn test_pointers_wrap() {
        let mut driver = started();
        // 200 frames of up to 1514 octets move about 150 KiB through the 16 KiB buffer, so
        // the buffer offset wraps many times and the 16-bit pointers wrap too.
        for round in 0..200usize {
            let len = 60 + (round * 97) % (1514 - 60);
            let sent = frame(OURS, len, round.to_le_bytes()[0]);
            driver.chip.spi.arrive(&sent);
            assert_eq!(receive_one(&mut driver), Some(sent), "round {round}");
        }
        assert_eq!(driver.chip.spi.dropped_by_chip, 0);
        assert_eq!(driver.counters().rx_frames, 200);
    }

    #[test]
    fn test_queued_frames_in_order() {
        let mut driver = started();
        let frames: Vec<Vec<u8>> = (0..10).map(|seed| frame(OURS, 1514, seed)).collect();
        for each in &frames {
            driver.chip.spi.arrive(each);
        }
        assert_eq!(
            driver.chip.spi.dropped_by_chip, 0,
            "ten full frames fit 16 KiB"
        );
        for each in &frames {
            assert_eq!(receive_one(&mut driver).as_ref(), Some(each));
        }
        driver.chip.spi.arrive(&frame(OURS, 60, 0));
        assert!(receive_one(&mut driver).is_some());
    }

    #[test]
    fn test_transmit() {
        let mut driver = started();
        for round in 0..30u8 {
            let reply = frame([0x02, 7, 7, 7, 7, 7], 1514, round);
            let token = driver.transmit(Instant::ZERO).expect("always ready");
            token.consume(reply.len(), |buffer| buffer.copy_from_slice(&reply));
            assert_eq!(driver.chip.spi.sent.last(), Some(&reply), "round {round}");
        }
        assert_eq!(driver.counters().tx_frames, 30);
        assert_eq!(
            driver.chip.spi.socket[usize::from(SN_IR)],
            0,
            "SEND_OK acknowledged"
        );
    }

    #[test]
    fn test_transmit_oversize_not_sent() {
        let mut driver = started();
        let token = driver.transmit(Instant::ZERO).expect("always ready");
        let lent = token.consume(2000, |buffer| buffer.len());
        assert_eq!(lent, MAX_FRAME_LEN);
        assert!(driver.chip.spi.sent.is_empty());
        assert_eq!(driver.counters().tx_dropped, 1);
    }

    #[test]
    fn test_reply_through_pair() {
        let mut driver = started();
        driver.chip.spi.arrive(&frame(OURS, 60, 5));
        let (rx, tx) = driver.receive(Instant::ZERO).expect("a frame");
        let request = rx.consume(|frame| frame.to_vec());
        tx.consume(request.len(), |buffer| {
            buffer.copy_from_slice(&request);
            buffer[..6].copy_from_slice(&[0xFF; 6]);
        });
        let sent = &driver.chip.spi.sent[0];
        assert_eq!(&sent[..6], &[0xFF; 6]);
        assert_eq!(&sent[6..], &request[6..]);
    }

    #[test]
    fn test_corrupt_header_reopens() {
        let mut driver = started();
        // A length that claims more than the chip holds: the buffer is out of step.
        driver.chip.spi.put_rx(&[0xFF, 0xFF, 1, 2, 3, 4]);
        assert_eq!(receive_one(&mut driver), None);
        assert_eq!(driver.counters().rx_errors, 1);
        assert_eq!(
            driver.chip.spi.socket[usize::from(SN_SR)],
            SOCK_MACRAW,
            "reopened"
        );
        let good = frame(OURS, 100, 9);
        driver.chip.spi.arrive(&good);
        assert_eq!(receive_one(&mut driver), Some(good));
    }

    #[test]
    fn test_set_mac_address_and_link() {
        let mut driver = started();
        let new = [0x02, 0xAA, 0xBB, 0xCC, 0xDD, 0xEE];
        driver.set_mac_address(EthernetAddress(new));
        assert_eq!(
            &driver.chip.spi.common[usize::from(SHAR)..usize::from(SHAR) + 6],
            &new
        );
        driver.chip.spi.arrive(&frame(OURS, 60, 0));
        assert_eq!(receive_one(&mut driver), None, "old address no longer ours");
        assert_eq!(driver.link(), LinkState::Down);
        driver.chip.spi.common[usize::from(PHYCFGR)] = PHYCFGR_LINK;
        assert_eq!(driver.link(), LinkState::Up);
    }
}
