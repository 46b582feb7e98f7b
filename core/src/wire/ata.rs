//! The ATA argument of command 0: twelve register octets (frame offsets 24–35), then data.
//!
//! | offset | field | request | response |
//! |---:|---|---|---|
//! | 0 | AFlags | E (0x40) LBA48, D (0x10), A (0x02) async, W (0x01) write | echoed |
//! | 1 | Err/Feature | Features register | Error register |
//! | 2 | Sector Count | sectors to transfer | sectors remaining |
//! | 3 | Cmd/Status | ATA command | Status register |
//! | 4–9 | lba0…lba5 | LBA, least significant octet first | echoed |
//! | 10–11 | reserved | zero | zero |
//! | 12– | data | Sector Count × 512 for writes | Sector Count × 512 for reads |
//!
//! [`check_len`](Packet::check_len) checks only that the twelve register octets are present;
//! whether the data length fits the sector count and direction is the target's business.

use super::{Error, Result, enum_with_unknown};

mod field {
    use core::ops::{Range, RangeFrom};
    pub const AFLAGS: usize = 0;
    pub const ERR_FEATURE: usize = 1;
    pub const SECTOR_COUNT: usize = 2;
    pub const CMD_STATUS: usize = 3;
    pub const LBA: Range<usize> = 4..10;
    pub const RESERVED: Range<usize> = 10..12;
    pub const DATA: RangeFrom<usize> = 12..;
}

/// Length of the ATA register block before the data.
pub const HEADER_LEN: usize = field::DATA.start;

/// The largest LBA a 48-bit address can name, plus one.
pub const LBA48_LIMIT: u64 = 1 << 48;

/// The AFlags octet of the ATA argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct AtaFlags(pub u8);

impl AtaFlags {
    /// E: the command is an LBA48 (extended) command.
    pub const EXTENDED: u8 = 0x40;
    /// D: the device/head register flag.
    pub const DEVICE: u8 = 0x10;
    /// A: asynchronous write; the initiator does not wait for the disk.
    pub const ASYNC: u8 = 0x02;
    /// W: the request carries data to write.
    pub const WRITE: u8 = 0x01;

    /// E flag.
    pub fn extended(self) -> bool {
        self.0 & Self::EXTENDED != 0
    }

    /// A flag.
    pub fn asynchronous(self) -> bool {
        self.0 & Self::ASYNC != 0
    }

    /// W flag.
    pub fn write(self) -> bool {
        self.0 & Self::WRITE != 0
    }
}

enum_with_unknown! {
    /// ATA command codes a target meets (the Cmd/Status octet of a request).
    pub enum AtaCommand(u8) {
        /// READ SECTORS (LBA28).
        ReadSectors = 0x20,
        /// READ SECTORS EXT (LBA48).
        ReadSectorsExt = 0x24,
        /// WRITE SECTORS (LBA28).
        WriteSectors = 0x30,
        /// WRITE SECTORS EXT (LBA48).
        WriteSectorsExt = 0x34,
        /// SMART; the Features register selects the sub-command.
        Smart = 0xB0,
        /// CHECK POWER MODE.
        CheckPowerMode = 0xE5,
        /// FLUSH CACHE.
        FlushCache = 0xE7,
        /// FLUSH CACHE EXT.
        FlushCacheExt = 0xEA,
        /// IDENTIFY DEVICE.
        IdentifyDevice = 0xEC,
    }
}

/// ATA Status register bits.
pub mod status {
    /// Busy.
    pub const BSY: u8 = 0x80;
    /// Device ready.
    pub const DRDY: u8 = 0x40;
    /// Device fault.
    pub const DF: u8 = 0x20;
    /// Data request.
    pub const DRQ: u8 = 0x08;
    /// Error: the Error register says which.
    pub const ERR: u8 = 0x01;
}

/// ATA Error register bits.
pub mod error {
    /// Uncorrectable data error.
    pub const UNC: u8 = 0x40;
    /// ID not found: the address is outside the device.
    pub const IDNF: u8 = 0x10;
    /// Command aborted.
    pub const ABRT: u8 = 0x04;
}

/// A read/write view of an ATA argument and its data.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking its length.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps a received buffer after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Ensures the twelve register octets are present. After `Ok(())` no accessor panics.
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(Error)
        } else {
            Ok(())
        }
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// AFlags field.
    pub fn ata_flags(&self) -> AtaFlags {
        AtaFlags(self.buffer.as_ref()[field::AFLAGS])
    }

    /// Err/Feature field: Features in a request, Error in a response.
    pub fn err_feature(&self) -> u8 {
        self.buffer.as_ref()[field::ERR_FEATURE]
    }

    /// Sector Count field.
    pub fn sector_count(&self) -> u8 {
        self.buffer.as_ref()[field::SECTOR_COUNT]
    }

    /// Cmd/Status field: the command in a request, Status in a response.
    pub fn cmd_status(&self) -> u8 {
        self.buffer.as_ref()[field::CMD_STATUS]
    }

    /// The six LBA octets lba0…lba5 as sent.
    pub fn lba_bytes(&self) -> [u8; 6] {
        let mut lba = [0u8; 6];
        lba.copy_from_slice(&self.buffer.as_ref()[field::LBA]);
        lba
    }

    /// The 48-bit LBA of an extended command (lba0 least significant).
    pub fn lba48(&self) -> u64 {
        let b = self.lba_bytes();
        u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], 0, 0])
    }

    /// The 28-bit LBA of a non-extended command: lba0–lba2 and the low nibble of lba3. The
    /// high nibble of lba3 holds device bits (Linux and iPXE put 0xE0 there) and is masked off.
    pub fn lba28(&self) -> u64 {
        let b = self.lba_bytes();
        u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3] & 0x0F]))
    }

    /// Data after the registers: write data in a request, read data in a response.
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[field::DATA]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the AFlags field.
    pub fn set_ata_flags(&mut self, flags: AtaFlags) {
        self.buffer.as_mut()[field::AFLAGS] = flags.0;
    }

    /// Sets the Err/Feature field.
    pub fn set_err_feature(&mut self, value: u8) {
        self.buffer.as_mut()[field::ERR_FEATURE] = value;
    }

    /// Sets the Sector Count field.
    pub fn set_sector_count(&mut self, value: u8) {
        self.buffer.as_mut()[field::SECTOR_COUNT] = value;
    }

    /// Sets the Cmd/Status field.
    pub fn set_cmd_status(&mut self, value: u8) {
        self.buffer.as_mut()[field::CMD_STATUS] = value;
    }

    /// Sets the six LBA octets.
    pub fn set_lba_bytes(&mut self, lba: [u8; 6]) {
        self.buffer.as_mut()[field::LBA].copy_from_slice(&lba);
    }

    /// Sets a 48-bit LBA; bits above 48 are dropped.
    pub fn set_lba48(&mut self, lba: u64) {
        let b = lba.to_le_bytes();
        self.set_lba_bytes([b[0], b[1], b[2], b[3], b[4], b[5]]);
    }

    /// Zeroes the two reserved octets.
    pub fn clear_reserved(&mut self) {
        self.buffer.as_mut()[field::RESERVED].fill(0);
    }

    /// Data after the registers, mutable.
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::DATA]
    }
}

/// The meaning of an ATA register block (the data is not part of it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Repr {
    /// AFlags.
    pub flags: AtaFlags,
    /// Err/Feature.
    pub err_feature: u8,
    /// Sector Count.
    pub sector_count: u8,
    /// Cmd/Status.
    pub cmd_status: u8,
    /// All 48 LBA bits as sent (no LBA28 masking: that depends on the command).
    pub lba: u64,
}

impl Repr {
    /// Reads the register block. Reserved octets are ignored.
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Repr> {
        packet.check_len()?;
        Ok(Repr {
            flags: packet.ata_flags(),
            err_feature: packet.err_feature(),
            sector_count: packet.sector_count(),
            cmd_status: packet.cmd_status(),
            lba: packet.lba48(),
        })
    }

    /// Octets [`emit`](Self::emit) writes: the register block only.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the register block with zero reserved octets; LBA bits above 48 are dropped.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        packet.set_ata_flags(self.flags);
        packet.set_err_feature(self.err_feature);
        packet.set_sector_count(self.sector_count);
        packet.set_cmd_status(self.cmd_status);
        packet.set_lba48(self.lba);
        packet.clear_reserved();
    }
}

#[cfg(test)]
mod test {
    use super::*;

    // iPXE's IDENTIFY: aflags 0, count 1, cmd 0xEC, LBA field 0x00000000e0000000.
    static IDENTIFY: [u8; 12] = [0, 0, 1, 0xec, 0, 0, 0, 0xe0, 0, 0, 0, 0];
    // Linux WRITE SECTORS EXT, aflags E|W, 2 sectors at LBA 0x0000_0102_0304_0506.
    static WRITE_EXT: [u8; 14] = [
        0x41, 0, 2, 0x34, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01, 0, 0, 0xaa, 0xbb,
    ];

    #[test]
    fn test_deconstruct() {
        let packet = Packet::new_checked(&IDENTIFY[..]).unwrap();
        assert_eq!(
            AtaCommand::from(packet.cmd_status()),
            AtaCommand::IdentifyDevice
        );
        assert_eq!(packet.sector_count(), 1);
        assert_eq!(packet.lba28(), 0, "device bits in lba3 must be masked");
        assert_eq!(packet.lba48(), 0xe000_0000);

        let packet = Packet::new_checked(&WRITE_EXT[..]).unwrap();
        assert!(packet.ata_flags().extended());
        assert!(packet.ata_flags().write());
        assert!(!packet.ata_flags().asynchronous());
        assert_eq!(packet.lba48(), 0x0102_0304_0506);
        assert_eq!(packet.lba28(), 0x0304_0506 & 0x0FFF_FFFF);
        assert_eq!(packet.data(), &[0xaa, 0xbb]);
    }

    #[test]
    fn test_construct() {
        let repr = Repr::parse(&Packet::new_checked(&WRITE_EXT[..]).unwrap()).unwrap();
        let mut bytes = [0xffu8; HEADER_LEN];
        repr.emit(&mut Packet::new_unchecked(&mut bytes[..]));
        assert_eq!(bytes[..], WRITE_EXT[..HEADER_LEN]);
    }

    #[test]
    fn test_impossible_len() {
        assert!(Packet::new_checked(&IDENTIFY[..11]).is_err());
    }
}
