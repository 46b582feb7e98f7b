//! The AoE header: the ten octets after the Ethernet header (frame offsets 14–23).
//!
//! | offset | field | |
//! |---:|---|---|
//! | 0 | Ver (bits 7–4), Flags (bits 3–0) | R = 0x08 response, E = 0x04 error |
//! | 1 | Error | meaningful only when E is set |
//! | 2–3 | Major (shelf), big-endian | 0xFFFF = every shelf |
//! | 4 | Minor (slot) | 0xFF = every slot |
//! | 5 | Command | |
//! | 6–9 | Tag | opaque to the target, echoed verbatim |
//! | 10– | Arg | command-specific |

use super::{Error, Result, enum_with_unknown};
use core::fmt;

mod field {
    use core::ops::{Range, RangeFrom};
    pub const VER_FLAGS: usize = 0;
    pub const ERROR: usize = 1;
    pub const MAJOR: Range<usize> = 2..4;
    pub const MINOR: usize = 4;
    pub const COMMAND: usize = 5;
    pub const TAG: Range<usize> = 6..10;
    pub const ARG: RangeFrom<usize> = 10..;
}

/// Length of the AoE header, not counting the Ethernet header.
pub const HEADER_LEN: usize = field::ARG.start;

/// The only protocol version AoE r11 defines.
pub const VERSION: u8 = 1;

/// Major (shelf) address that matches every shelf.
pub const BROADCAST_MAJOR: u16 = 0xFFFF;

/// Minor (slot) address that matches every slot.
pub const BROADCAST_MINOR: u8 = 0xFF;

/// Response flag (R), bit 3 of the Ver/Flags octet.
const FLAG_RESPONSE: u8 = 0x08;
/// Error flag (E), bit 2 of the Ver/Flags octet.
const FLAG_ERROR: u8 = 0x04;

enum_with_unknown! {
    /// The Command field (AoE r11 §2). Codes 240–255 are vendor-specific.
    pub enum Command(u8) {
        /// Issue ATA Command.
        IssueAta = 0,
        /// Query Config Information.
        QueryConfig = 1,
        /// MAC Mask List.
        MacMaskList = 2,
        /// Reserve/Release.
        ReserveRelease = 3,
    }
}

impl Command {
    /// True for the vendor-specific range 240–255.
    pub fn is_vendor_specific(self) -> bool {
        u8::from(self) >= 0xF0
    }
}

enum_with_unknown! {
    /// The Error field, meaningful when the E flag is set (AoE r11 §2).
    pub enum ErrorCode(u8) {
        /// Unrecognized command code.
        UnrecognizedCommand = 1,
        /// Bad argument parameter.
        BadArgument = 2,
        /// Device unavailable: the server can no longer accept ATA commands.
        DeviceUnavailable = 3,
        /// Config string present: a conditional set found a different string.
        ConfigStringPresent = 4,
        /// Unsupported version.
        UnsupportedVersion = 5,
        /// Target is reserved (new in r11).
        TargetReserved = 6,
    }
}

/// A read/write view of an AoE header and its argument.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking its length. Accessors may panic until
    /// [`check_len`](Self::check_len) has succeeded; use this only to emit into a buffer that
    /// is long enough.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps a received buffer after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Ensures the ten header octets are present. After `Ok(())` no accessor panics.
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

    /// Ver field (high nibble of octet 0).
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_FLAGS] >> 4
    }

    /// Response flag (R): set on every message a target sends.
    pub fn is_response(&self) -> bool {
        self.buffer.as_ref()[field::VER_FLAGS] & FLAG_RESPONSE != 0
    }

    /// Error flag (E): the Error field holds a code.
    pub fn is_error(&self) -> bool {
        self.buffer.as_ref()[field::VER_FLAGS] & FLAG_ERROR != 0
    }

    /// Error field, as sent (meaningful only when [`is_error`](Self::is_error)).
    pub fn error(&self) -> ErrorCode {
        ErrorCode::from(self.buffer.as_ref()[field::ERROR])
    }

    /// Major field: the shelf address.
    pub fn major(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::MAJOR];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// Minor field: the slot address.
    pub fn minor(&self) -> u8 {
        self.buffer.as_ref()[field::MINOR]
    }

    /// Command field.
    pub fn command(&self) -> Command {
        Command::from(self.buffer.as_ref()[field::COMMAND])
    }

    /// Tag field, read big-endian (the Linux initiator's convention; the target only echoes it).
    pub fn tag(&self) -> u32 {
        let b = &self.buffer.as_ref()[field::TAG];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// The command argument and everything after it, borrowed for the buffer's lifetime.
    pub fn arg(&self) -> &'a [u8] {
        &self.buffer.as_ref()[field::ARG]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the Ver nibble and the R and E flags; the two reserved flag bits become zero.
    pub fn set_version_flags(&mut self, version: u8, response: bool, error: bool) {
        let mut octet = version << 4;
        if response {
            octet |= FLAG_RESPONSE;
        }
        if error {
            octet |= FLAG_ERROR;
        }
        self.buffer.as_mut()[field::VER_FLAGS] = octet;
    }

    /// Sets the Error field.
    pub fn set_error(&mut self, code: ErrorCode) {
        self.buffer.as_mut()[field::ERROR] = code.into();
    }

    /// Sets the Major field.
    pub fn set_major(&mut self, major: u16) {
        self.buffer.as_mut()[field::MAJOR].copy_from_slice(&major.to_be_bytes());
    }

    /// Sets the Minor field.
    pub fn set_minor(&mut self, minor: u8) {
        self.buffer.as_mut()[field::MINOR] = minor;
    }

    /// Sets the Command field.
    pub fn set_command(&mut self, command: Command) {
        self.buffer.as_mut()[field::COMMAND] = command.into();
    }

    /// Sets the Tag field.
    pub fn set_tag(&mut self, tag: u32) {
        self.buffer.as_mut()[field::TAG].copy_from_slice(&tag.to_be_bytes());
    }

    /// The command argument and everything after it, mutable.
    pub fn arg_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::ARG]
    }
}

impl<T: AsRef<[u8]>> fmt::Display for Packet<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match Repr::parse(self) {
            Ok(repr) => write!(f, "{repr}"),
            Err(_) => f.write_str("AoE (truncated)"),
        }
    }
}

/// The meaning of an AoE header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Repr {
    /// Protocol version (1 in AoE r11).
    pub version: u8,
    /// R flag.
    pub response: bool,
    /// E flag and Error field: `Some(code)` when E is set.
    pub error: Option<ErrorCode>,
    /// Shelf address.
    pub major: u16,
    /// Slot address.
    pub minor: u8,
    /// Command.
    pub command: Command,
    /// Tag.
    pub tag: u32,
}

impl Repr {
    /// Reads a header. The Error field is ignored when the E flag is clear.
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Repr> {
        packet.check_len()?;
        Ok(Repr {
            version: packet.version(),
            response: packet.is_response(),
            error: packet.is_error().then(|| packet.error()),
            major: packet.major(),
            minor: packet.minor(),
            command: packet.command(),
            tag: packet.tag(),
        })
    }

    /// Octets [`emit`](Self::emit) writes: the header only.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header. A version above 15 is truncated to its low nibble.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        packet.set_version_flags(self.version & 0x0F, self.response, self.error.is_some());
        packet.set_error(self.error.unwrap_or(ErrorCode::Unknown(0)));
        packet.set_major(self.major);
        packet.set_minor(self.minor);
        packet.set_command(self.command);
        packet.set_tag(self.tag);
    }
}

impl fmt::Display for Repr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "AoE v{} {} e{}.{} cmd={:?} tag={:#010x}",
            self.version,
            if self.response { "rsp" } else { "req" },
            self.major,
            self.minor,
            self.command,
            self.tag
        )?;
        if let Some(code) = self.error {
            write!(f, " error={code:?}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod test {
    use super::*;

    // Linux's discovery broadcast: Query Config, ver 1, shelf 0xFFFF, slot 0xFF, tag 0.
    static DISCOVER: [u8; 10] = [0x10, 0x00, 0xff, 0xff, 0xff, 0x01, 0x00, 0x00, 0x00, 0x00];

    #[test]
    fn test_deconstruct() {
        let packet = Packet::new_checked(&DISCOVER[..]).unwrap();
        assert_eq!(packet.version(), 1);
        assert!(!packet.is_response());
        assert!(!packet.is_error());
        assert_eq!(packet.major(), BROADCAST_MAJOR);
        assert_eq!(packet.minor(), BROADCAST_MINOR);
        assert_eq!(packet.command(), Command::QueryConfig);
        assert_eq!(packet.tag(), 0);
        assert!(packet.arg().is_empty());
    }

    #[test]
    fn test_construct() {
        let repr = Repr {
            version: 1,
            response: true,
            error: Some(ErrorCode::TargetReserved),
            major: 0x0102,
            minor: 3,
            command: Command::IssueAta,
            tag: 0xdead_beef,
        };
        let mut bytes = [0xAAu8; HEADER_LEN];
        repr.emit(&mut Packet::new_unchecked(&mut bytes[..]));
        assert_eq!(
            bytes,
            [0x1c, 0x06, 0x01, 0x02, 0x03, 0x00, 0xde, 0xad, 0xbe, 0xef]
        );
        assert_eq!(
            Repr::parse(&Packet::new_checked(&bytes[..]).unwrap()),
            Ok(repr)
        );
    }

    #[test]
    fn test_reserved_flag_bits_are_not_emitted() {
        let mut bytes = DISCOVER;
        bytes[0] = 0x13; // ver 1 + both reserved bits
        let repr = Repr::parse(&Packet::new_checked(&bytes[..]).unwrap()).unwrap();
        let mut out = [0u8; HEADER_LEN];
        repr.emit(&mut Packet::new_unchecked(&mut out[..]));
        assert_eq!(out[0], 0x10);
    }

    #[test]
    fn test_impossible_len() {
        assert_eq!(Packet::new_checked(&DISCOVER[..9]).err(), Some(Error));
    }

    #[test]
    fn test_command_codes_are_total() {
        for code in 0..=255u8 {
            assert_eq!(u8::from(Command::from(code)), code);
            assert_eq!(u8::from(ErrorCode::from(code)), code);
        }
        assert!(Command::from(0xF0).is_vendor_specific());
        assert!(!Command::from(0xEF).is_vendor_specific());
    }
}
