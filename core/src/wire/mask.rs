//! The MAC Mask List argument of command 2: four octets (frame offsets 24–27), then directives.
//!
//! | offset | field | |
//! |---:|---|---|
//! | 0 | reserved | |
//! | 1 | MCmd | 0 read, 1 edit |
//! | 2 | MError | 0 none, 1 unspecified, 2 bad DCmd, 3 list full |
//! | 3 | Dir Count | directives that follow |
//! | 4 + 8k | directive k | +0 reserved, +1 DCmd (0 none, 1 add, 2 delete), +2–7 MAC |

use super::{Error, EthernetAddress, Result, enum_with_unknown, mac_at};

mod field {
    use core::ops::RangeFrom;
    pub const RESERVED: usize = 0;
    pub const MCMD: usize = 1;
    pub const MERROR: usize = 2;
    pub const DIR_COUNT: usize = 3;
    pub const DIRECTIVES: RangeFrom<usize> = 4..;
}

/// Length of the fixed part of the argument.
pub const HEADER_LEN: usize = field::DIRECTIVES.start;

/// Length of one directive.
pub const DIRECTIVE_LEN: usize = 8;

enum_with_unknown! {
    /// The MCmd field.
    pub enum MaskCommand(u8) {
        /// Read the mask list.
        Read = 0,
        /// Apply the directives in order.
        Edit = 1,
    }
}

enum_with_unknown! {
    /// The MError field of a reply.
    pub enum MaskError(u8) {
        /// No error.
        NoError = 0,
        /// Unspecified error.
        Unspecified = 1,
        /// A directive had an unknown DCmd.
        BadDirective = 2,
        /// The list has no room for an added MAC.
        ListFull = 3,
    }
}

enum_with_unknown! {
    /// The DCmd field of a directive.
    pub enum DirectiveCommand(u8) {
        /// No directive: skipped on edit; used for every entry of a read reply.
        None = 0,
        /// Add the MAC to the list.
        Add = 1,
        /// Delete the MAC from the list.
        Delete = 2,
    }
}

/// One directive: a command and a MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Directive {
    /// DCmd.
    pub command: DirectiveCommand,
    /// The MAC address it applies to.
    pub mac: EthernetAddress,
}

impl Directive {
    /// Reads a directive from its eight octets.
    pub fn parse(bytes: &[u8; DIRECTIVE_LEN]) -> Directive {
        Directive {
            command: DirectiveCommand::from(bytes[1]),
            mac: mac_at(&bytes[2..]),
        }
    }

    /// Writes the directive, with a zero reserved octet.
    pub fn emit(&self, bytes: &mut [u8; DIRECTIVE_LEN]) {
        bytes[0] = 0;
        bytes[1] = self.command.into();
        bytes[2..].copy_from_slice(&self.mac.0);
    }
}

/// A list of directives over the received octets, exactly `8 × count` long.
#[derive(Debug, Clone, Copy)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Directives<'a> {
    bytes: &'a [u8],
}

impl<'a> Directives<'a> {
    /// Wraps octets holding whole directives; a trailing partial directive is ignored.
    pub fn new(bytes: &'a [u8]) -> Directives<'a> {
        let whole = bytes.len() / DIRECTIVE_LEN * DIRECTIVE_LEN;
        Directives {
            bytes: &bytes[..whole],
        }
    }

    /// Number of directives.
    pub fn len(&self) -> usize {
        self.bytes.len() / DIRECTIVE_LEN
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The directives in order.
    pub fn iter(&self) -> impl Iterator<Item = Directive> + 'a {
        self.bytes
            .as_chunks::<DIRECTIVE_LEN>()
            .0
            .iter()
            .map(Directive::parse)
    }

    /// The first `count` directives' octets, as received.
    pub fn raw_prefix(&self, count: usize) -> &'a [u8] {
        &self.bytes[..count.min(self.len()) * DIRECTIVE_LEN]
    }
}

impl PartialEq for Directives<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for Directives<'_> {}

/// The directives of a checked argument, bounded by the octets present.
fn directives_in(buffer: &[u8]) -> Result<Directives<'_>> {
    let len = usize::from(buffer[field::DIR_COUNT]) * DIRECTIVE_LEN;
    let rest = &buffer[field::DIRECTIVES];
    if len > rest.len() {
        return Err(Error);
    }
    Ok(Directives::new(&rest[..len]))
}

/// A read/write view of a MAC Mask List argument.
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

    /// Ensures the four fixed octets are present. After `Ok(())` no accessor panics; the
    /// directive count is checked by [`directives`](Self::directives).
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

    /// MCmd field.
    pub fn command(&self) -> MaskCommand {
        MaskCommand::from(self.buffer.as_ref()[field::MCMD])
    }

    /// MError field.
    pub fn error(&self) -> MaskError {
        MaskError::from(self.buffer.as_ref()[field::MERROR])
    }

    /// Dir Count field, as sent.
    pub fn dir_count(&self) -> u8 {
        self.buffer.as_ref()[field::DIR_COUNT]
    }

    /// The directives, or an error when Dir Count × 8 is more than the octets present.
    pub fn directives(&self) -> Result<Directives<'_>> {
        directives_in(self.buffer.as_ref())
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// The directives, borrowed for the buffer's lifetime (see [`directives`](Self::directives)).
    pub fn directives_ref(&self) -> Result<Directives<'a>> {
        let buffer: &'a [u8] = self.buffer.as_ref();
        directives_in(buffer)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets MCmd, MError and Dir Count, and zeroes the reserved octet.
    pub fn set_header(&mut self, command: MaskCommand, error: MaskError, dir_count: u8) {
        let b = self.buffer.as_mut();
        b[field::RESERVED] = 0;
        b[field::MCMD] = command.into();
        b[field::MERROR] = error.into();
        b[field::DIR_COUNT] = dir_count;
    }

    /// Writes directive `index`; the buffer must hold it.
    pub fn set_directive(&mut self, index: usize, directive: Directive) {
        let start = HEADER_LEN + index * DIRECTIVE_LEN;
        let slot = &mut self.buffer.as_mut()[start..start + DIRECTIVE_LEN];
        if let Ok(slot) = <&mut [u8; DIRECTIVE_LEN]>::try_from(slot) {
            directive.emit(slot);
        }
    }

    /// The octets after the fixed part, mutable.
    pub fn directives_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::DIRECTIVES]
    }
}

/// The meaning of a MAC Mask List argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Repr<'a> {
    /// MCmd.
    pub command: MaskCommand,
    /// MError.
    pub error: MaskError,
    /// The directives (at most 255).
    pub directives: Directives<'a>,
}

impl<'a> Repr<'a> {
    /// Reads the argument, with a Dir Count bounded by the octets present.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&'a T>) -> Result<Repr<'a>> {
        packet.check_len()?;
        let buffer: &'a [u8] = packet.buffer.as_ref();
        let directives = directives_in(buffer)?;
        Ok(Repr {
            command: packet.command(),
            error: packet.error(),
            directives,
        })
    }

    /// Octets [`emit`](Self::emit) writes.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN + self.directives.len().min(255) * DIRECTIVE_LEN
    }

    /// Writes the argument; directives past the 255th are dropped.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        let count = u8::try_from(self.directives.len()).unwrap_or(u8::MAX);
        packet.set_header(self.command, self.error, count);
        for (index, directive) in self.directives.iter().take(usize::from(count)).enumerate() {
            packet.set_directive(index, directive);
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;

    static EDIT: [u8; 20] = [
        0, 1, 0, 2, // edit, two directives
        0, 1, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, // add 02:00:00:00:00:01
        0, 2, 0x02, 0x00, 0x00, 0x00, 0x00, 0x02, // delete 02:00:00:00:00:02
    ];

    #[test]
    fn test_deconstruct() {
        let packet = Packet::new_checked(&EDIT[..]).unwrap();
        assert_eq!(packet.command(), MaskCommand::Edit);
        assert_eq!(packet.error(), MaskError::NoError);
        let directives = packet.directives().unwrap();
        assert_eq!(directives.len(), 2);
        let mut it = directives.iter();
        assert_eq!(
            it.next(),
            Some(Directive {
                command: DirectiveCommand::Add,
                mac: EthernetAddress([2, 0, 0, 0, 0, 1])
            })
        );
        assert_eq!(it.next().map(|d| d.command), Some(DirectiveCommand::Delete));
        assert_eq!(it.next(), None);
    }

    #[test]
    fn test_roundtrip() {
        let repr = Repr::parse(&Packet::new_checked(&EDIT[..]).unwrap()).unwrap();
        let mut bytes = [0xffu8; 20];
        assert_eq!(repr.buffer_len(), 20);
        repr.emit(&mut Packet::new_unchecked(&mut bytes[..]));
        assert_eq!(bytes, EDIT);
    }

    #[test]
    fn test_dir_count_beyond_payload() {
        let mut bytes = EDIT;
        bytes[3] = 3;
        assert!(
            Packet::new_checked(&bytes[..])
                .unwrap()
                .directives()
                .is_err()
        );
        assert!(Repr::parse(&Packet::new_checked(&bytes[..]).unwrap()).is_err());
    }

    #[test]
    fn test_impossible_len() {
        assert!(Packet::new_checked(&EDIT[..3]).is_err());
    }
}
