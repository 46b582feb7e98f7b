//! SD cards in SPI mode as an [`aoe_core::Disk`]: SDSC (byte addresses) and SDHC/SDXC
//! (block addresses), over any embedded-hal 1.0 [`SpiBus`] and chip-select [`OutputPin`].
//!
//! Guarantees:
//!
//! * Every wait on the card is bounded: a card that stops answering gives
//!   [`SdError::Timeout`], never a hang (the watchdog is the last resort, not the plan).
//! * Read data is checked against its CRC16 and retried once; write data carries its CRC16
//!   (cards check it once CRC is on; in SPI mode it is off by default); commands carry a
//!   correct CRC7 (CMD0 and CMD8 need it).
//! * A write returns `Ok` only after the card accepted the data token, left busy, and (where
//!   the card answers CMD13) reported no error: the data is on the card.
//! * Chip select is held low for a whole command with its data phase and released after it,
//!   followed by one idle octet so the card lets go of its data line.
//!
//! Why a bus plus a pin and not an embedded-hal `SpiDevice`: the SD protocol polls (for the
//! R1 octet, the data token, the end of busy) inside one chip-select period, and needs 74
//! clocks with chip select *high* at power-up. A `SpiDevice` transaction is a fixed list of
//! operations, so it could only do this by toggling chip select per octet.
//!
//! Commands used: CMD0, CMD8, CMD55 + ACMD41, CMD58, CMD16 (SDSC), CMD9, CMD17, CMD24, CMD13.
//!
//! QEMU's `ssi-sd` model (7.2 and 10.0) differs from real cards in ways this driver tolerates,
//! each noted where it is handled: CMD58's R1 stays "idle" after initialisation; the model
//! needs one octet after a response before the next command or data token (real cards need
//! it too: Nwr ≥ 1); QEMU 10 refuses CMD9 after initialisation, so the capacity is then found
//! by probing reads; QEMU 10 answers CMD13 with "illegal command".

use crate::crc::{crc7, crc16};
use aoe_core::disk::{Disk, Error as DiskError, ErrorKind, SECTOR_SIZE, Sector, range_fits};
use core::fmt;
use embedded_hal::digital::OutputPin;
use embedded_hal::spi::SpiBus;

/// Polls for a command's R1 octet (the card answers within 8 octets; NCR).
const R1_POLLS: u32 = 16;
/// Polls for a data token after CMD17/CMD9: 100 ms at 12.5 MHz is about 150 000 octets.
const TOKEN_POLLS: u32 = 200_000;
/// Polls while the card is busy programming a block (up to 250 ms on real cards).
const BUSY_POLLS: u32 = 500_000;
/// ACMD41 attempts before giving up; a real card may need up to a second at 400 kHz.
const INIT_ATTEMPTS: u32 = 4_000;

/// CMD16 argument: 512-octet blocks.
const BLOCK_LEN: u32 = 512;
const R1_IDLE: u8 = 0x01;
const R1_ILLEGAL_COMMAND: u8 = 0x04;
const TOKEN_START_BLOCK: u8 = 0xFE;
const DATA_RESPONSE_MASK: u8 = 0x1F;
const DATA_ACCEPTED: u8 = 0x05;
/// OCR bit 30: card capacity status (block addressing).
const OCR_CCS: u32 = 1 << 30;
/// ACMD41 argument bit 30: the host supports high-capacity cards.
const ACMD41_HCS: u32 = 1 << 30;
/// CMD8 argument: 2.7–3.6 V and the check pattern 0xAA.
const CMD8_ARG: u32 = 0x1AA;

/// Which kind of card answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum CardKind {
    /// SD version 1, standard capacity (byte addresses).
    Sdsc1,
    /// SD version 2, standard capacity (byte addresses).
    Sdsc2,
    /// SD version 2, high or extended capacity (block addresses).
    Sdhc,
}

/// What went wrong talking to the card. Each variant says what to try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum SdError {
    /// The SPI bus or chip-select pin reported an error: check the board's pin setup.
    Bus,
    /// The card did not answer in time (no card, or it hung): re-seat it, then re-initialise.
    Timeout,
    /// A command got an error R1: `command` and the R1 bits (0x04 illegal, 0x08 CRC,
    /// 0x20 address, 0x40 parameter).
    Command {
        /// The command index.
        command: u8,
        /// The R1 octet.
        r1: u8,
    },
    /// CMD8 echoed the wrong pattern or voltage: the card does not support 3.3 V.
    InterfaceCondition,
    /// A read got an error token instead of data (bits: 0x01 error, 0x02 controller error,
    /// 0x04 ECC failed, 0x08 out of range).
    DataToken(u8),
    /// Read data failed its CRC twice: the card or the wiring is bad.
    Crc {
        /// CRC the card sent.
        expected: u16,
        /// CRC of the data received.
        got: u16,
    },
    /// The card refused written data (data response 0x0B: CRC error, 0x0D: write error).
    WriteRejected(u8),
    /// CMD13 after a write reported an error (R2 second octet).
    WriteFailed(u8),
    /// The sectors are beyond the end of the card.
    OutOfRange,
    /// The card has not been initialised (or its initialisation failed).
    NotInitialized,
    /// The card's capacity could not be read or probed.
    Capacity,
}

impl fmt::Display for SdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SdError::Bus => f.write_str("SPI bus error"),
            SdError::Timeout => f.write_str("SD card did not answer"),
            SdError::Command { command, r1 } => {
                write!(f, "SD CMD{command} failed with R1 {r1:#04x}")
            }
            SdError::InterfaceCondition => f.write_str("SD card refused 3.3 V (CMD8)"),
            SdError::DataToken(token) => write!(f, "SD read error token {token:#04x}"),
            SdError::Crc { expected, got } => {
                write!(
                    f,
                    "SD read CRC mismatch: card {expected:#06x}, data {got:#06x}"
                )
            }
            SdError::WriteRejected(response) => {
                write!(f, "SD card rejected written data ({response:#04x})")
            }
            SdError::WriteFailed(status) => write!(f, "SD write failed, status {status:#04x}"),
            SdError::OutOfRange => f.write_str("sector beyond the end of the SD card"),
            SdError::NotInitialized => f.write_str("SD card not initialised"),
            SdError::Capacity => f.write_str("SD card capacity unreadable"),
        }
    }
}

impl core::error::Error for SdError {}

impl DiskError for SdError {
    fn kind(&self) -> ErrorKind {
        match self {
            SdError::OutOfRange => ErrorKind::OutOfRange,
            SdError::NotInitialized | SdError::Timeout => ErrorKind::NotReady,
            SdError::Crc { .. }
            | SdError::DataToken(_)
            | SdError::WriteRejected(_)
            | SdError::WriteFailed(_) => ErrorKind::Media,
            _ => ErrorKind::Other,
        }
    }
}

/// What initialisation found. Its `defmt` form is the boot log's line, e.g.
/// `Sdhc: 8388608 sectors (probed)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CardInfo {
    /// The kind of card.
    pub kind: CardKind,
    /// 512-octet blocks.
    pub sectors: u64,
    /// True if the capacity came from probing reads because CMD9 was refused (QEMU 10).
    pub capacity_probed: bool,
}

#[cfg(feature = "defmt")]
impl defmt::Format for CardInfo {
    fn format(&self, f: defmt::Formatter) {
        let probed = if self.capacity_probed {
            " (probed)"
        } else {
            ""
        };
        defmt::write!(
            f,
            "{}: {=u64} sectors{=str}",
            self.kind,
            self.sectors,
            probed
        );
    }
}

/// An SD card on an SPI bus with its own chip-select pin.
#[derive(Debug)]
pub struct SdCard<B, C> {
    bus: B,
    cs: C,
    kind: Option<CardKind>,
    sectors: u64,
    /// CMD13 answered "illegal command" once (QEMU 10): stop asking.
    status_unsupported: bool,
}

impl<B: SpiBus<u8>, C: OutputPin> SdCard<B, C> {
    /// A card on `bus` selected by `cs` (active low). Nothing is sent until [`init`](Self::init).
    pub fn new(bus: B, cs: C) -> SdCard<B, C> {
        SdCard {
            bus,
            cs,
            kind: None,
            sectors: 0,
            status_unsupported: false,
        }
    }

    /// The bus, to change its clock after initialisation (at most 400 kHz during `init`, up
    /// to 25 MHz after).
    pub fn bus_mut(&mut self) -> &mut B {
        &mut self.bus
    }

    /// The card's kind, once initialised.
    pub fn kind(&self) -> Option<CardKind> {
        self.kind
    }

    /// Puts the card in SPI mode and reads its capacity. Run the bus at 100–400 kHz.
    ///
    /// # Errors
    /// When no card answers, or it is not a usable SD card.
    pub fn init(&mut self) -> Result<CardInfo, SdError> {
        self.kind = None;
        self.sectors = 0;
        // At least 74 clocks with chip select high let the card power up.
        self.cs.set_high().map_err(|_| SdError::Bus)?;
        self.bus.write(&[0xFF; 10]).map_err(|_| SdError::Bus)?;

        let mut idle = false;
        for _ in 0..16 {
            if self.command_r1(0, 0)? == R1_IDLE {
                idle = true;
                break;
            }
        }
        if !idle {
            return Err(SdError::Timeout);
        }

        let version2 = self.check_interface_condition()?;
        let argument = if version2 { ACMD41_HCS } else { 0 };
        let mut ready = false;
        for _ in 0..INIT_ATTEMPTS {
            self.command_r1(55, 0)?;
            match self.command_r1(41, argument)? {
                0 => {
                    ready = true;
                    break;
                }
                R1_IDLE => {}
                r1 => return Err(SdError::Command { command: 41, r1 }),
            }
        }
        if !ready {
            return Err(SdError::Timeout);
        }

        let kind = if version2 {
            if self.read_ocr()? & OCR_CCS != 0 {
                CardKind::Sdhc
            } else {
                CardKind::Sdsc2
            }
        } else {
            CardKind::Sdsc1
        };
        if kind != CardKind::Sdhc {
            // Standard-capacity cards may default to another block length.
            let r1 = self.command_r1(16, BLOCK_LEN)?;
            if r1 != 0 {
                return Err(SdError::Command { command: 16, r1 });
            }
        }
        self.kind = Some(kind);
        let (sectors, capacity_probed) = match self.read_csd_sectors() {
            Ok(sectors) => (sectors, false),
            Err(_) => {
                // QEMU 10 refuses CMD9 and reports the refusal in the *next* R1 (a stale
                // "illegal command"): absorb it with a harmless CMD16, then probe.
                self.command_r1(16, BLOCK_LEN)?;
                (self.probe_sectors(kind)?, true)
            }
        };
        if sectors == 0 {
            self.kind = None;
            return Err(SdError::Capacity);
        }
        self.sectors = sectors;
        Ok(CardInfo {
            kind,
            sectors,
            capacity_probed,
        })
    }

    /// Reads one block.
    ///
    /// # Errors
    /// Out of range, not initialised, or any card error (after one retry).
    pub fn read_block(&mut self, lba: u64, block: &mut Sector) -> Result<(), SdError> {
        let address = self.address(lba)?;
        match self.read_block_once(address, block) {
            Err(SdError::Crc { .. } | SdError::Timeout) => self.read_block_once(address, block),
            other => other,
        }
    }

    /// Writes one block; `Ok` once the card has programmed it.
    ///
    /// # Errors
    /// Out of range, not initialised, or any card error.
    pub fn write_block(&mut self, lba: u64, block: &Sector) -> Result<(), SdError> {
        let address = self.address(lba)?;
        self.select()?;
        let result = self.write_block_selected(address, block);
        self.deselect()?;
        result?;
        self.check_status()
    }

    // ----- commands ---------------------------------------------------------------------

    /// The card address of block `lba`: the block number (SDHC) or its byte offset (SDSC).
    fn address(&self, lba: u64) -> Result<u32, SdError> {
        let kind = self.kind.ok_or(SdError::NotInitialized)?;
        if lba >= self.sectors {
            return Err(SdError::OutOfRange);
        }
        let address = match kind {
            CardKind::Sdhc => lba,
            CardKind::Sdsc1 | CardKind::Sdsc2 => lba * SECTOR_SIZE as u64,
        };
        u32::try_from(address).map_err(|_| SdError::OutOfRange)
    }

    fn select(&mut self) -> Result<(), SdError> {
        self.cs.set_low().map_err(|_| SdError::Bus)
    }

    /// Releases chip select, then clocks one octet so the card releases its data line.
    fn deselect(&mut self) -> Result<(), SdError> {
        self.cs.set_high().map_err(|_| SdError::Bus)?;
        self.bus.write(&[0xFF]).map_err(|_| SdError::Bus)
    }

    fn exchange(&mut self, word: u8) -> Result<u8, SdError> {
        let mut buffer = [word];
        self.bus
            .transfer_in_place(&mut buffer)
            .map_err(|_| SdError::Bus)?;
        Ok(buffer[0])
    }

    /// Sends a command (chip select already low) and returns its R1.
    fn send_command(&mut self, command: u8, argument: u32) -> Result<u8, SdError> {
        // The leading idle octet is the Ncs gap, and what moves QEMU's model from the
        // previous response back to command state.
        let [a3, a2, a1, a0] = argument.to_be_bytes();
        let mut frame = [0xFF, 0x40 | (command & 0x3F), a3, a2, a1, a0, 0];
        frame[6] = (crc7(&frame[1..6]) << 1) | 1;
        self.bus.write(&frame).map_err(|_| SdError::Bus)?;
        for _ in 0..R1_POLLS {
            let r1 = self.exchange(0xFF)?;
            if r1 & 0x80 == 0 {
                return Ok(r1);
            }
        }
        Err(SdError::Timeout)
    }

    /// A command with an R1-only answer, in its own chip-select period.
    fn command_r1(&mut self, command: u8, argument: u32) -> Result<u8, SdError> {
        self.select()?;
        let r1 = self.send_command(command, argument);
        self.deselect()?;
        r1
    }

    /// CMD8: true for a version 2 card (which must echo the pattern), false for version 1.
    fn check_interface_condition(&mut self) -> Result<bool, SdError> {
        self.select()?;
        let result = (|| {
            let r1 = self.send_command(8, CMD8_ARG)?;
            if r1 & R1_ILLEGAL_COMMAND != 0 {
                return Ok(false);
            }
            let mut r7 = [0xFF; 4];
            self.bus
                .transfer_in_place(&mut r7)
                .map_err(|_| SdError::Bus)?;
            if u32::from(r7[2] & 0x0F) << 8 | u32::from(r7[3]) != CMD8_ARG {
                return Err(SdError::InterfaceCondition);
            }
            Ok(true)
        })();
        self.deselect()?;
        result
    }

    /// CMD58: the operation conditions register.
    fn read_ocr(&mut self) -> Result<u32, SdError> {
        self.select()?;
        let result = (|| {
            let r1 = self.send_command(58, 0)?;
            // QEMU keeps answering CMD58 with R1 "idle" after initialisation finished; the
            // idle bit carries no error, so only the other bits count.
            if r1 & !R1_IDLE != 0 {
                return Err(SdError::Command { command: 58, r1 });
            }
            let mut ocr = [0xFF; 4];
            self.bus
                .transfer_in_place(&mut ocr)
                .map_err(|_| SdError::Bus)?;
            Ok(u32::from_be_bytes(ocr))
        })();
        self.deselect()?;
        result
    }

    /// Waits for the first non-idle octet: a data token, or a data response.
    fn wait_token(&mut self, polls: u32) -> Result<u8, SdError> {
        for _ in 0..polls {
            let octet = self.exchange(0xFF)?;
            if octet != 0xFF {
                return Ok(octet);
            }
        }
        Err(SdError::Timeout)
    }

    /// Receives a data block (after a read command's R1) and checks its CRC.
    fn receive_data(&mut self, data: &mut [u8]) -> Result<(), SdError> {
        let token = self.wait_token(TOKEN_POLLS)?;
        if token != TOKEN_START_BLOCK {
            return Err(SdError::DataToken(token));
        }
        data.fill(0xFF);
        self.bus.transfer_in_place(data).map_err(|_| SdError::Bus)?;
        let mut crc = [0xFF; 2];
        self.bus
            .transfer_in_place(&mut crc)
            .map_err(|_| SdError::Bus)?;
        let expected = u16::from_be_bytes(crc);
        let got = crc16(data);
        if expected != got {
            return Err(SdError::Crc { expected, got });
        }
        Ok(())
    }

    fn read_block_once(&mut self, address: u32, block: &mut Sector) -> Result<(), SdError> {
        self.select()?;
        let result = (|| {
            let r1 = self.send_command(17, address)?;
            if r1 != 0 {
                return Err(SdError::Command { command: 17, r1 });
            }
            self.receive_data(block)
        })();
        self.deselect()?;
        result
    }

    fn write_block_selected(&mut self, address: u32, block: &Sector) -> Result<(), SdError> {
        let r1 = self.send_command(24, address)?;
        if r1 != 0 {
            return Err(SdError::Command { command: 24, r1 });
        }
        // One idle octet (Nwr) before the token; QEMU swallows a token sent straight after R1.
        self.bus
            .write(&[0xFF, TOKEN_START_BLOCK])
            .map_err(|_| SdError::Bus)?;
        self.bus.write(block).map_err(|_| SdError::Bus)?;
        self.bus
            .write(&crc16(block).to_be_bytes())
            .map_err(|_| SdError::Bus)?;
        let response = self.wait_token(R1_POLLS)?;
        if response & DATA_RESPONSE_MASK != DATA_ACCEPTED {
            return Err(SdError::WriteRejected(response & DATA_RESPONSE_MASK));
        }
        // The card holds its data line low while it programs the block.
        for _ in 0..BUSY_POLLS {
            if self.exchange(0xFF)? == 0xFF {
                return Ok(());
            }
        }
        Err(SdError::Timeout)
    }

    /// CMD13 after a write: the card's own verdict on the programming.
    fn check_status(&mut self) -> Result<(), SdError> {
        if self.status_unsupported {
            return Ok(());
        }
        self.select()?;
        let result = (|| {
            let r1 = self.send_command(13, 0)?;
            let status = self.exchange(0xFF)?;
            Ok((r1, status))
        })();
        self.deselect()?;
        match result? {
            (0, 0) => Ok(()),
            // QEMU 10's model answers CMD13 in SPI mode with "illegal command" although the
            // block was written; the data response already said "accepted".
            (R1_ILLEGAL_COMMAND, _) => {
                self.status_unsupported = true;
                Ok(())
            }
            (0, status) => Err(SdError::WriteFailed(status)),
            (r1, _) => Err(SdError::Command { command: 13, r1 }),
        }
    }

    /// CMD9: capacity in blocks from the card-specific data register.
    fn read_csd_sectors(&mut self) -> Result<u64, SdError> {
        let mut csd = [0u8; 16];
        self.select()?;
        let result = (|| {
            let r1 = self.send_command(9, 0)?;
            if r1 & !R1_IDLE != 0 {
                return Err(SdError::Command { command: 9, r1 });
            }
            self.receive_data(&mut csd)
        })();
        self.deselect()?;
        result?;
        csd_sectors(&csd).ok_or(SdError::Capacity)
    }

    /// The capacity without CMD9: the first unreadable block, found by bisection (about 32
    /// reads). Out-of-range reads fail with an address error in R1 on real cards and in QEMU.
    fn probe_sectors(&mut self, kind: CardKind) -> Result<u64, SdError> {
        let limit: u64 = match kind {
            // Byte addresses are 32 bits: at most 4 GiB, 2 GiB in practice.
            CardKind::Sdsc1 | CardKind::Sdsc2 => 1 << 23,
            CardKind::Sdhc => 1 << 32,
        };
        let mut block = [0u8; SECTOR_SIZE];
        self.sectors = limit;
        let mut readable = 0u64;
        let mut unreadable = limit;
        self.read_block_once(self.address(0)?, &mut block)?;
        while unreadable - readable > 1 {
            let middle = readable + (unreadable - readable) / 2;
            if self
                .read_block_once(self.address(middle)?, &mut block)
                .is_ok()
            {
                readable = middle;
            } else {
                unreadable = middle;
            }
        }
        Ok(unreadable)
    }
}

/// Capacity in 512-octet blocks from a CSD register (structure version 1 or 2).
pub fn csd_sectors(csd: &[u8; 16]) -> Option<u64> {
    // Bits [hi:lo] of the 128-bit big-endian register.
    let bits = |hi: u32, lo: u32| -> u64 {
        let value = u128::from_be_bytes(*csd);
        // At most 22 bits wide, so the value fits a u64.
        u64::try_from((value >> lo) & ((1u128 << (hi - lo + 1)) - 1)).unwrap_or(0)
    };
    match csd[0] >> 6 {
        0 => {
            let read_bl_len = bits(83, 80);
            let c_size = bits(73, 62);
            let c_size_mult = bits(49, 47);
            let bytes = (c_size + 1) << (c_size_mult + 2 + read_bl_len);
            Some(bytes / SECTOR_SIZE as u64)
        }
        1 => Some((bits(69, 48) + 1) * 1024),
        _ => None,
    }
}

impl<B: SpiBus<u8>, C: OutputPin> Disk for SdCard<B, C> {
    type Error = SdError;

    fn sector_count(&self) -> u64 {
        self.sectors
    }

    fn read(&mut self, lba: u64, buf: &mut [Sector]) -> Result<(), SdError> {
        if !range_fits(lba, buf.len(), self.sectors) {
            return Err(SdError::OutOfRange);
        }
        for (block_lba, block) in (lba..).zip(buf.iter_mut()) {
            self.read_block(block_lba, block)?;
        }
        Ok(())
    }

    fn write(&mut self, lba: u64, buf: &[Sector]) -> Result<(), SdError> {
        if !range_fits(lba, buf.len(), self.sectors) {
            return Err(SdError::OutOfRange);
        }
        for (block_lba, block) in (lba..).zip(buf.iter()) {
            self.write_block(block_lba, block)?;
        }
        Ok(())
    }

    /// Blocks are programmed before `write` returns (the card left busy); there is no
    /// volatile cache to flush in SPI mode.
    fn flush(&mut self) -> Result<(), SdError> {
        if self.kind.is_none() {
            return Err(SdError::NotInitialized);
        }
        Ok(())
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn test_csd_version2_capacity() {
        // C_SIZE 0x001DFF: (0x1DFF + 1) × 512 KiB = 3.75 GiB.
        let mut csd = [0u8; 16];
        csd[0] = 0x40;
        csd[7] = 0x00;
        csd[8] = 0x1D;
        csd[9] = 0xFF;
        assert_eq!(csd_sectors(&csd), Some((0x1DFF + 1) * 1024));
    }

    #[test]
    fn test_csd_version1_capacity() {
        // READ_BL_LEN 9, C_SIZE 4095, C_SIZE_MULT 7: 4096 × 512 × 512 octets = 1 GiB.
        let mut value: u128 = 0;
        value |= 9u128 << 80;
        value |= 4095u128 << 62;
        value |= 7u128 << 47;
        let csd = value.to_be_bytes();
        assert_eq!(csd_sectors(&csd), Some(4096 * 512));
    }

    #[test]
    fn test_csd_unknown_structure() {
        let mut csd = [0u8; 16];
        csd[0] = 0xC0;
        assert_eq!(csd_sectors(&csd), None);
    }
}
