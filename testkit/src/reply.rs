//! A view of reply frames by raw offsets (independent of `aoe_core::wire`, like
//! [`frame`](crate::frame)).
//!
//! Accessors index the frame directly and panic on a frame too short for the field: in a test
//! that is a failure with a line number.

use aoe_core::wire::EthernetAddress;

/// A view of a reply frame by raw offsets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The frame's octets.
    pub bytes: Vec<u8>,
}

impl Reply {
    /// Destination MAC.
    pub fn dst(&self) -> EthernetAddress {
        EthernetAddress(self.bytes[0..6].try_into().unwrap())
    }
    /// Source MAC.
    pub fn src(&self) -> EthernetAddress {
        EthernetAddress(self.bytes[6..12].try_into().unwrap())
    }
    /// EtherType.
    pub fn ethertype(&self) -> u16 {
        u16::from_be_bytes([self.bytes[12], self.bytes[13]])
    }
    /// Ver/Flags octet.
    pub fn ver_flags(&self) -> u8 {
        self.bytes[14]
    }
    /// Version nibble.
    pub fn version(&self) -> u8 {
        self.bytes[14] >> 4
    }
    /// R flag.
    pub fn is_response(&self) -> bool {
        self.bytes[14] & 0x08 != 0
    }
    /// E flag.
    pub fn is_error(&self) -> bool {
        self.bytes[14] & 0x04 != 0
    }
    /// Error octet.
    pub fn error(&self) -> u8 {
        self.bytes[15]
    }
    /// Major.
    pub fn major(&self) -> u16 {
        u16::from_be_bytes([self.bytes[16], self.bytes[17]])
    }
    /// Minor.
    pub fn minor(&self) -> u8 {
        self.bytes[18]
    }
    /// Command.
    pub fn command(&self) -> u8 {
        self.bytes[19]
    }
    /// Tag.
    pub fn tag(&self) -> u32 {
        u32::from_be_bytes(self.bytes[20..24].try_into().unwrap())
    }
    /// Octet `i` of the argument (frame offset 24 + i).
    pub fn arg(&self, i: usize) -> u8 {
        self.bytes[24 + i]
    }
    /// The argument and everything after it.
    pub fn arg_bytes(&self) -> &[u8] {
        &self.bytes[24..]
    }
    /// ATA Err/Feature (the Error register).
    pub fn ata_error(&self) -> u8 {
        self.bytes[25]
    }
    /// ATA Sector Count.
    pub fn ata_sector_count(&self) -> u8 {
        self.bytes[26]
    }
    /// ATA Status.
    pub fn ata_status(&self) -> u8 {
        self.bytes[27]
    }
    /// ATA data after the 36-octet headers.
    pub fn ata_data(&self) -> &[u8] {
        &self.bytes[36..]
    }
    /// Query Config Buffer Count.
    pub fn cfg_buffer_count(&self) -> u16 {
        u16::from_be_bytes([self.bytes[24], self.bytes[25]])
    }
    /// Query Config Firmware Version.
    pub fn cfg_firmware_version(&self) -> u16 {
        u16::from_be_bytes([self.bytes[26], self.bytes[27]])
    }
    /// Query Config Sector Count.
    pub fn cfg_sector_count(&self) -> u8 {
        self.bytes[28]
    }
    /// Query Config AoE version nibble.
    pub fn cfg_aoe_version(&self) -> u8 {
        self.bytes[29] >> 4
    }
    /// Query Config CCmd nibble.
    pub fn cfg_ccmd(&self) -> u8 {
        self.bytes[29] & 0x0F
    }
    /// Query Config string.
    pub fn cfg_string(&self) -> &[u8] {
        let len = usize::from(u16::from_be_bytes([self.bytes[30], self.bytes[31]]));
        &self.bytes[32..32 + len]
    }
}
