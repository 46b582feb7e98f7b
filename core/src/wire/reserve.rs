//! The Reserve/Release argument of command 3: two octets (frame offsets 24–25), then MACs.
//!
//! | offset | field | |
//! |---:|---|---|
//! | 0 | RCmd | 0 read, 1 set, 2 force set |
//! | 1 | NMacs | addresses that follow |
//! | 2 + 6k | MAC k | |

use super::{Error, EthernetAddress, Result, enum_with_unknown, mac_at};

mod field {
    use core::ops::RangeFrom;
    pub const RCMD: usize = 0;
    pub const NMACS: usize = 1;
    pub const MACS: RangeFrom<usize> = 2..;
}

/// Length of the fixed part of the argument.
pub const HEADER_LEN: usize = field::MACS.start;

/// Length of one MAC address.
pub const MAC_LEN: usize = 6;

enum_with_unknown! {
    /// The RCmd field.
    pub enum ReserveCommand(u8) {
        /// Read the reserve list.
        Read = 0,
        /// Set the list, only if it is empty or the sender is on it.
        Set = 1,
        /// Set the list unconditionally.
        ForceSet = 2,
    }
}

/// A list of MAC addresses over received octets, exactly `6 × count` long.
#[derive(Debug, Clone, Copy)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct MacList<'a> {
    bytes: &'a [u8],
}

impl<'a> MacList<'a> {
    /// Wraps octets holding whole addresses; a trailing partial address is ignored.
    pub fn new(bytes: &'a [u8]) -> MacList<'a> {
        let whole = bytes.len() / MAC_LEN * MAC_LEN;
        MacList {
            bytes: &bytes[..whole],
        }
    }

    /// Number of addresses.
    pub fn len(&self) -> usize {
        self.bytes.len() / MAC_LEN
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The addresses in order.
    pub fn iter(&self) -> impl Iterator<Item = EthernetAddress> + 'a {
        self.bytes
            .as_chunks::<MAC_LEN>()
            .0
            .iter()
            .map(|mac| mac_at(mac))
    }
}

impl PartialEq for MacList<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}

impl Eq for MacList<'_> {}

/// The addresses of a checked argument, bounded by the octets present.
fn macs_in(buffer: &[u8]) -> Result<MacList<'_>> {
    let len = usize::from(buffer[field::NMACS]) * MAC_LEN;
    let rest = &buffer[field::MACS];
    if len > rest.len() {
        return Err(Error);
    }
    Ok(MacList::new(&rest[..len]))
}

/// A read/write view of a Reserve/Release argument.
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

    /// Ensures the two fixed octets are present. After `Ok(())` no accessor panics; NMacs is
    /// checked by [`macs`](Self::macs).
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

    /// RCmd field.
    pub fn command(&self) -> ReserveCommand {
        ReserveCommand::from(self.buffer.as_ref()[field::RCMD])
    }

    /// NMacs field, as sent.
    pub fn mac_count(&self) -> u8 {
        self.buffer.as_ref()[field::NMACS]
    }

    /// The addresses, or an error when NMacs × 6 is more than the octets present.
    pub fn macs(&self) -> Result<MacList<'_>> {
        macs_in(self.buffer.as_ref())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets RCmd and NMacs.
    pub fn set_header(&mut self, command: ReserveCommand, mac_count: u8) {
        let b = self.buffer.as_mut();
        b[field::RCMD] = command.into();
        b[field::NMACS] = mac_count;
    }

    /// Writes address `index`; the buffer must hold it.
    pub fn set_mac(&mut self, index: usize, mac: EthernetAddress) {
        let start = HEADER_LEN + index * MAC_LEN;
        self.buffer.as_mut()[start..start + MAC_LEN].copy_from_slice(&mac.0);
    }
}

/// The meaning of a Reserve/Release argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Repr<'a> {
    /// RCmd.
    pub command: ReserveCommand,
    /// The addresses (at most 255).
    pub macs: MacList<'a>,
}

impl<'a> Repr<'a> {
    /// Reads the argument, with an NMacs bounded by the octets present.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&'a T>) -> Result<Repr<'a>> {
        packet.check_len()?;
        let buffer: &'a [u8] = packet.buffer.as_ref();
        let macs = macs_in(buffer)?;
        Ok(Repr {
            command: packet.command(),
            macs,
        })
    }

    /// Octets [`emit`](Self::emit) writes.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN + self.macs.len().min(255) * MAC_LEN
    }

    /// Writes the argument; addresses past the 255th are dropped.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        let count = u8::try_from(self.macs.len()).unwrap_or(u8::MAX);
        packet.set_header(self.command, count);
        for (index, mac) in self.macs.iter().take(usize::from(count)).enumerate() {
            packet.set_mac(index, mac);
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;

    static SET: [u8; 14] = [1, 2, 2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];

    #[test]
    fn test_deconstruct() {
        let packet = Packet::new_checked(&SET[..]).unwrap();
        assert_eq!(packet.command(), ReserveCommand::Set);
        let macs = packet.macs().unwrap();
        assert_eq!(macs.len(), 2);
        assert_eq!(
            macs.iter().nth(1),
            Some(EthernetAddress([2, 0, 0, 0, 0, 2]))
        );
    }

    #[test]
    fn test_roundtrip() {
        let repr = Repr::parse(&Packet::new_checked(&SET[..]).unwrap()).unwrap();
        let mut bytes = [0u8; 14];
        repr.emit(&mut Packet::new_unchecked(&mut bytes[..]));
        assert_eq!(bytes, SET);
    }

    #[test]
    fn test_nmacs_beyond_payload() {
        let mut bytes = SET;
        bytes[1] = 3;
        assert!(Packet::new_checked(&bytes[..]).unwrap().macs().is_err());
    }

    #[test]
    fn test_impossible_len() {
        assert!(Packet::new_checked(&SET[..1]).is_err());
    }
}
