//! The Query Config argument of command 1: eight octets (frame offsets 24–31), then the string.
//!
//! | offset | field | |
//! |---:|---|---|
//! | 0–1 | Buffer Count, big-endian | frames the server queues; more are dropped |
//! | 2–3 | Firmware Version, big-endian | vendor value |
//! | 4 | Sector Count | most sectors per ATA request; 0 means 2 |
//! | 5 | AoE (bits 7–4), CCmd (bits 3–0) | protocol version the server speaks; sub-command |
//! | 6–7 | Config String Length, big-endian | at most 1024 |
//! | 8– | Config String | |

use super::{Error, Result, enum_with_unknown};

mod field {
    use core::ops::{Range, RangeFrom};
    pub const BUFFER_COUNT: Range<usize> = 0..2;
    pub const FIRMWARE_VERSION: Range<usize> = 2..4;
    pub const SECTOR_COUNT: usize = 4;
    pub const VERSION_CCMD: usize = 5;
    pub const STRING_LEN: Range<usize> = 6..8;
    pub const STRING: RangeFrom<usize> = 8..;
}

/// Length of the fixed part of the argument.
pub const HEADER_LEN: usize = field::STRING.start;

/// The longest config string AoE r11 allows.
pub const MAX_CONFIG_STRING_LEN: usize = 1024;

enum_with_unknown! {
    /// The CCmd nibble.
    pub enum ConfigCommand(u8) {
        /// Read the config string.
        Read = 0,
        /// Answer only if the request's string equals the server's.
        Test = 1,
        /// Answer only if the request's string is a prefix of the server's.
        TestPrefix = 2,
        /// Set the string if the server's is empty; otherwise answer with error 4.
        Set = 3,
        /// Set the string unconditionally.
        ForceSet = 4,
    }
}

/// The bounded config string of a checked argument.
fn config_string_in(buffer: &[u8]) -> Result<&[u8]> {
    let len = usize::from(u16::from_be_bytes([buffer[6], buffer[7]]));
    let rest = &buffer[field::STRING];
    if len > MAX_CONFIG_STRING_LEN || len > rest.len() {
        return Err(Error);
    }
    Ok(&rest[..len])
}

/// A read/write view of a Query Config argument.
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

    /// Ensures the eight fixed octets are present. After `Ok(())` no accessor panics; the string
    /// length is checked separately by [`config_string`](Self::config_string).
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

    /// Buffer Count field.
    pub fn buffer_count(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::BUFFER_COUNT];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// Firmware Version field.
    pub fn firmware_version(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::FIRMWARE_VERSION];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// Sector Count field.
    pub fn sector_count(&self) -> u8 {
        self.buffer.as_ref()[field::SECTOR_COUNT]
    }

    /// AoE field: the protocol version the server supports (high nibble).
    pub fn aoe_version(&self) -> u8 {
        self.buffer.as_ref()[field::VERSION_CCMD] >> 4
    }

    /// CCmd field (low nibble).
    pub fn command(&self) -> ConfigCommand {
        ConfigCommand::from(self.buffer.as_ref()[field::VERSION_CCMD] & 0x0F)
    }

    /// Config String Length field, as sent.
    pub fn config_string_len(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::STRING_LEN];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// The config string, or an error when its length is above 1024 or beyond the octets
    /// present. Octets after the string (Ethernet padding, filler) are ignored.
    pub fn config_string(&self) -> Result<&[u8]> {
        config_string_in(self.buffer.as_ref())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the Buffer Count field.
    pub fn set_buffer_count(&mut self, value: u16) {
        self.buffer.as_mut()[field::BUFFER_COUNT].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the Firmware Version field.
    pub fn set_firmware_version(&mut self, value: u16) {
        self.buffer.as_mut()[field::FIRMWARE_VERSION].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the Sector Count field.
    pub fn set_sector_count(&mut self, value: u8) {
        self.buffer.as_mut()[field::SECTOR_COUNT] = value;
    }

    /// Sets the AoE version and CCmd nibbles.
    pub fn set_version_command(&mut self, version: u8, command: ConfigCommand) {
        self.buffer.as_mut()[field::VERSION_CCMD] = (version << 4) | (u8::from(command) & 0x0F);
    }

    /// Writes the config string and its length. `string` must fit the buffer and be at most
    /// [`MAX_CONFIG_STRING_LEN`] octets (the caller sized the buffer with `buffer_len`).
    pub fn set_config_string(&mut self, string: &[u8]) {
        let len = string.len().min(MAX_CONFIG_STRING_LEN);
        let len16 = u16::try_from(len).unwrap_or(0);
        self.buffer.as_mut()[field::STRING_LEN].copy_from_slice(&len16.to_be_bytes());
        self.buffer.as_mut()[field::STRING][..len].copy_from_slice(&string[..len]);
    }
}

/// The meaning of a Query Config argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Repr<'a> {
    /// Buffer Count.
    pub buffer_count: u16,
    /// Firmware Version.
    pub firmware_version: u16,
    /// Sector Count.
    pub sector_count: u8,
    /// AoE protocol version nibble.
    pub aoe_version: u8,
    /// CCmd.
    pub command: ConfigCommand,
    /// Config string, at most [`MAX_CONFIG_STRING_LEN`] octets.
    pub config_string: &'a [u8],
}

impl<'a> Repr<'a> {
    /// Reads the argument, including a bounded config string.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&'a T>) -> Result<Repr<'a>> {
        packet.check_len()?;
        let buffer: &'a [u8] = packet.buffer.as_ref();
        let string = config_string_in(buffer)?;
        Ok(Repr {
            buffer_count: packet.buffer_count(),
            firmware_version: packet.firmware_version(),
            sector_count: packet.sector_count(),
            aoe_version: packet.aoe_version(),
            command: packet.command(),
            config_string: string,
        })
    }

    /// Octets [`emit`](Self::emit) writes.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN + self.config_string.len().min(MAX_CONFIG_STRING_LEN)
    }

    /// Writes the argument; a string longer than 1024 octets is cut to 1024.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        packet.set_buffer_count(self.buffer_count);
        packet.set_firmware_version(self.firmware_version);
        packet.set_sector_count(self.sector_count);
        packet.set_version_command(self.aoe_version & 0x0F, self.command);
        packet.set_config_string(self.config_string);
    }
}

#[cfg(test)]
mod test {
    use super::*;

    // vblade's reply to iPXE: bufcnt 16, fw 0x4019, scnt 2, ver/ccmd 0x10, empty string.
    static VBLADE_REPLY: [u8; 8] = [0x00, 0x10, 0x40, 0x19, 0x02, 0x10, 0x00, 0x00];

    #[test]
    fn test_deconstruct() {
        let packet = Packet::new_checked(&VBLADE_REPLY[..]).unwrap();
        assert_eq!(packet.buffer_count(), 16);
        assert_eq!(packet.firmware_version(), 0x4019);
        assert_eq!(packet.sector_count(), 2);
        assert_eq!(packet.aoe_version(), 1);
        assert_eq!(packet.command(), ConfigCommand::Read);
        assert_eq!(packet.config_string(), Ok(&[][..]));
    }

    #[test]
    fn test_construct() {
        let repr = Repr {
            buffer_count: 16,
            firmware_version: 0x4019,
            sector_count: 2,
            aoe_version: 1,
            command: ConfigCommand::ForceSet,
            config_string: b"hello",
        };
        let mut bytes = [0u8; 13];
        assert_eq!(repr.buffer_len(), 13);
        repr.emit(&mut Packet::new_unchecked(&mut bytes[..]));
        assert_eq!(&bytes[..], b"\x00\x10\x40\x19\x02\x14\x00\x05hello");
        assert_eq!(
            Repr::parse(&Packet::new_checked(&bytes[..]).unwrap()),
            Ok(repr)
        );
    }

    #[test]
    fn test_string_length_bounds() {
        // aoeping: length 1024 followed by 1024 filler octets is fine.
        let mut bytes = [0xedu8; HEADER_LEN + 1024 + 4];
        bytes[..HEADER_LEN].copy_from_slice(&[0, 0, 0, 0, 0, 0x10, 0x04, 0x00]);
        assert_eq!(
            Packet::new_checked(&bytes[..])
                .unwrap()
                .config_string()
                .map(<[u8]>::len),
            Ok(1024)
        );
        // 1025 is over the limit even when the octets are present.
        bytes[6..8].copy_from_slice(&1025u16.to_be_bytes());
        assert!(
            Packet::new_checked(&bytes[..])
                .unwrap()
                .config_string()
                .is_err()
        );
        // A length beyond the octets present.
        assert!(
            Packet::new_checked(&b"\0\0\0\0\0\x13\x00\x04abc"[..])
                .unwrap()
                .config_string()
                .is_err()
        );
    }

    #[test]
    fn test_impossible_len() {
        assert!(Packet::new_checked(&VBLADE_REPLY[..7]).is_err());
    }
}
