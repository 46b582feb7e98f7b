//! The reserved region at the end of the card: identity and AoE state that survive a reboot.
//!
//! The last [`RESERVED_SECTORS`] (8) sectors of the card are not exported. They hold two
//! copies, A (the first 4 sectors) and B (the last 4), of one record; every save writes the
//! copy that is *not* the newest, with a sequence number one higher, so a power loss during a
//! save leaves the previous record intact. Loading takes the valid copy with the highest
//! sequence number; when neither copy is valid (a blank card) the build-time defaults apply.
//!
//! Record layout (all integers little-endian):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `AOEBLADE` |
//! | 8 | 2 | format version, 1 |
//! | 10 | 2 | payload length *n* |
//! | 12 | 4 | sequence number |
//! | 16 | 4 | CRC-32 (IEEE) of octets 0..16 followed by the payload |
//! | 20 | *n* | payload |
//!
//! Payload: flags (1 octet: bit 0 = MAC set, bit 1 = shelf/slot set), MAC (6), shelf (2),
//! slot (1), config string length (2) and octets, mask count (1) and 6 octets per MAC,
//! reservation count (1) and 6 octets per MAC. Unset identity fields are written as zero and
//! the defaults apply to them. At most 20 + 1434 octets: it fits 4 sectors with room to spare.
//!
//! Guarantee: decoding never panics on any sector contents; a record that fails a check is
//! ignored as a whole.

use aoe_core::disk::{Disk, SECTOR_SIZE, Sector};
use aoe_core::wire::EthernetAddress;
use aoe_core::{Target, target::MASK_CAPACITY, target::RESERVE_CAPACITY};
use heapless::Vec;

/// Sectors at the end of the card kept for the record (two copies of 4 sectors).
pub const RESERVED_SECTORS: u64 = 8;
/// Sectors of one copy.
pub const COPY_SECTORS: usize = 4;
/// Octets of one copy.
pub const COPY_LEN: usize = COPY_SECTORS * SECTOR_SIZE;

const MAGIC: &[u8; 8] = b"AOEBLADE";
const FORMAT_VERSION: u16 = 1;
const HEADER_LEN: usize = 20;
const FLAG_MAC: u8 = 1 << 0;
const FLAG_ADDRESS: u8 = 1 << 1;
/// Longest config string the record holds (AoE's limit).
pub const MAX_CONFIG_STRING: usize = 1024;

/// The identity of the blade; `None` fields fall back to the defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Identity {
    /// The MAC address to use instead of the factory one.
    pub mac: Option<[u8; 6]>,
    /// Shelf and slot of the export.
    pub address: Option<(u16, u8)>,
}

/// Everything a record holds.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Record {
    /// Identity.
    pub identity: Identity,
    /// AoE config string.
    pub config_string: Vec<u8, MAX_CONFIG_STRING>,
    /// AoE MAC mask list.
    pub mask: Vec<EthernetAddress, MASK_CAPACITY>,
    /// AoE reserve list.
    pub reservations: Vec<EthernetAddress, RESERVE_CAPACITY>,
}

impl Record {
    /// Writes the record with `sequence` into `copy` (all of it; the rest is zero).
    pub fn encode(&self, sequence: u32, copy: &mut [u8; COPY_LEN]) {
        encode_parts(
            &self.identity,
            &self.config_string,
            &self.mask,
            &self.reservations,
            sequence,
            copy,
        );
    }

    /// Reads a record and its sequence number from `copy`; `None` if it is not a valid record.
    pub fn decode(copy: &[u8; COPY_LEN]) -> Option<(Record, u32)> {
        let mut record = Record::default();
        let mut fits = true;
        let (identity, sequence) = parse(copy, |field| {
            fits &= match field {
                Field::ConfigString(string) => {
                    record.config_string.extend_from_slice(string).is_ok()
                }
                Field::Mask(mac) => record.mask.push(mac).is_ok(),
                Field::Reservation(mac) => record.reservations.push(mac).is_ok(),
            };
        })?;
        record.identity = identity;
        fits.then_some((record, sequence))
    }
}

/// One list entry or string of a record, as [`parse`] visits it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field<'a> {
    /// The config string.
    ConfigString(&'a [u8]),
    /// A MAC of the mask list.
    Mask(EthernetAddress),
    /// A MAC of the reserve list.
    Reservation(EthernetAddress),
}

/// Writes a record made of these parts into `copy`. The lists are written as given; the
/// target's limits (1024 octets, 32 MACs each) keep them within the copy.
pub fn encode_parts(
    identity: &Identity,
    config_string: &[u8],
    mask: &[EthernetAddress],
    reservations: &[EthernetAddress],
    sequence: u32,
    copy: &mut [u8; COPY_LEN],
) {
    copy.fill(0);
    let mut at = HEADER_LEN;
    let mut put = |bytes: &[u8]| {
        if let Some(slot) = copy.get_mut(at..at + bytes.len()) {
            slot.copy_from_slice(bytes);
        }
        at += bytes.len();
    };
    let mut flags = 0;
    if identity.mac.is_some() {
        flags |= FLAG_MAC;
    }
    if identity.address.is_some() {
        flags |= FLAG_ADDRESS;
    }
    let (shelf, slot) = identity.address.unwrap_or((0, 0));
    put(&[flags]);
    put(&identity.mac.unwrap_or([0; 6]));
    put(&shelf.to_le_bytes());
    put(&[slot]);
    let config_string = &config_string[..config_string.len().min(MAX_CONFIG_STRING)];
    put(&len16(config_string.len()).to_le_bytes());
    put(config_string);
    for list in [
        &mask[..mask.len().min(MASK_CAPACITY)],
        &reservations[..reservations.len().min(RESERVE_CAPACITY)],
    ] {
        put(&[len8(list.len())]);
        for mac in list {
            put(&mac.0);
        }
    }
    let at = at.min(COPY_LEN);
    let payload_len = at - HEADER_LEN;
    copy[..8].copy_from_slice(MAGIC);
    copy[8..10].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    copy[10..12].copy_from_slice(&len16(payload_len).to_le_bytes());
    copy[12..16].copy_from_slice(&sequence.to_le_bytes());
    let crc = crc32_update(crc32_update(!0, &copy[..16]), &copy[HEADER_LEN..at]);
    copy[16..20].copy_from_slice(&(!crc).to_le_bytes());
}

/// Checks a copy and visits its config string and list entries, in order, without copying
/// them. Returns the identity and sequence number, or `None` if the copy is not a valid
/// record (then `visit` may have seen some fields: parse once without effects to validate).
pub fn parse(copy: &[u8; COPY_LEN], mut visit: impl FnMut(Field<'_>)) -> Option<(Identity, u32)> {
    let sequence = header_sequence(copy)?;
    let payload_len = usize::from(u16::from_le_bytes([copy[10], copy[11]]));
    let mut reader = Reader {
        bytes: copy.get(HEADER_LEN..HEADER_LEN + payload_len)?,
    };
    let flags = reader.take(1)?[0];
    let mac: [u8; 6] = reader.take(6)?.try_into().ok()?;
    let shelf = u16::from_le_bytes(reader.take(2)?.try_into().ok()?);
    let slot = reader.take(1)?[0];
    let identity = Identity {
        mac: (flags & FLAG_MAC != 0).then_some(mac),
        address: (flags & FLAG_ADDRESS != 0).then_some((shelf, slot)),
    };
    let config_len = usize::from(u16::from_le_bytes(reader.take(2)?.try_into().ok()?));
    if config_len > MAX_CONFIG_STRING {
        return None;
    }
    visit(Field::ConfigString(reader.take(config_len)?));
    for (capacity, make) in [
        (
            MASK_CAPACITY,
            Field::Mask as fn(EthernetAddress) -> Field<'static>,
        ),
        (RESERVE_CAPACITY, Field::Reservation),
    ] {
        let count = usize::from(reader.take(1)?[0]);
        if count > capacity {
            return None;
        }
        for _ in 0..count {
            let mac: [u8; 6] = reader.take(6)?.try_into().ok()?;
            visit(make(EthernetAddress(mac)));
        }
    }
    Some((identity, sequence))
}

/// The sequence number of a copy whose header and CRC are valid.
fn header_sequence(copy: &[u8; COPY_LEN]) -> Option<u32> {
    if &copy[..8] != MAGIC || u16::from_le_bytes([copy[8], copy[9]]) != FORMAT_VERSION {
        return None;
    }
    let payload_len = usize::from(u16::from_le_bytes([copy[10], copy[11]]));
    let payload = copy.get(HEADER_LEN..HEADER_LEN + payload_len)?;
    let crc = !crc32_update(crc32_update(!0, &copy[..16]), payload);
    if crc.to_le_bytes() != copy[16..20] {
        return None;
    }
    Some(u32::from_le_bytes([copy[12], copy[13], copy[14], copy[15]]))
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.bytes.split_at_checked(len)?;
        self.bytes = rest;
        Some(head)
    }
}

fn len16(len: usize) -> u16 {
    u16::try_from(len).unwrap_or(u16::MAX)
}

fn len8(len: usize) -> u8 {
    u8::try_from(len).unwrap_or(u8::MAX)
}

/// CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320) of `bytes`, continuing from `crc`
/// (start with `!0`, finish with `!`).
pub fn crc32_update(mut crc: u32, bytes: &[u8]) -> u32 {
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xEDB8_8320 & (crc & 1).wrapping_neg());
        }
    }
    crc
}

/// One copy of the record, read and written as [`COPY_SECTORS`] whole sectors.
pub type CopyBuffer = [u8; COPY_LEN];

fn sectors_mut(buffer: &mut CopyBuffer) -> &mut [Sector] {
    buffer.as_chunks_mut::<SECTOR_SIZE>().0
}

/// Where the two copies live and which one is the newest.
#[derive(Debug)]
pub struct Store {
    first_sector: u64,
    newest: Option<(usize, u32)>,
}

impl Store {
    /// The store at the end of a card of `card_sectors` sectors; `None` if the card is too
    /// small to keep any sector for export.
    pub fn for_card(card_sectors: u64) -> Option<Store> {
        let first_sector = card_sectors.checked_sub(RESERVED_SECTORS)?;
        (first_sector > 0).then_some(Store {
            first_sector,
            newest: None,
        })
    }

    /// First reserved sector: also the number of exported sectors.
    pub fn first_sector(&self) -> u64 {
        self.first_sector
    }

    fn copy_lba(&self, copy: usize) -> u64 {
        self.first_sector + (copy * COPY_SECTORS) as u64
    }

    /// Reads both copies, keeps the newest valid one in `buffer`, and returns its identity;
    /// `Ok(None)` for a blank card. Apply its state with [`Store::apply`].
    ///
    /// # Errors
    /// When the card fails to read.
    pub fn load<D: Disk>(
        &mut self,
        card: &mut D,
        buffer: &mut CopyBuffer,
    ) -> Result<Option<Identity>, D::Error> {
        self.newest = None;
        for copy in 0..2 {
            card.read(self.copy_lba(copy), sectors_mut(buffer))?;
            if let Some((_, sequence)) = parse(buffer, |_| {})
                && self.newest.is_none_or(|(_, newest)| sequence > newest)
            {
                self.newest = Some((copy, sequence));
            }
        }
        let Some((copy, _)) = self.newest else {
            return Ok(None);
        };
        card.read(self.copy_lba(copy), sectors_mut(buffer))?;
        Ok(parse(buffer, |_| {}).map(|(identity, _)| identity))
    }

    /// Puts the AoE state of the record [`Store::load`] left in `buffer` into `target`.
    pub fn apply<D: Disk>(buffer: &CopyBuffer, target: &mut Target<D>) {
        let mut reservations: Vec<EthernetAddress, RESERVE_CAPACITY> = Vec::new();
        // `load` validated the copy, and its limits are the target's, so nothing here fails.
        let _ = parse(buffer, |field| match field {
            Field::ConfigString(string) => {
                let _ = target.set_config_string(string);
            }
            Field::Mask(mac) => {
                let _ = target.mask_add(mac);
            }
            Field::Reservation(mac) => {
                let _ = reservations.push(mac);
            }
        });
        let _ = target.set_reservations(&reservations);
    }

    /// Writes a record of these parts over the older copy. `Ok` once the card accepted it
    /// and flushed.
    ///
    /// # Errors
    /// When the card fails; the previous record is then still the newest valid one.
    pub fn save_parts<D: Disk>(
        &mut self,
        card: &mut D,
        identity: &Identity,
        config_string: &[u8],
        mask: &[EthernetAddress],
        reservations: &[EthernetAddress],
        buffer: &mut CopyBuffer,
    ) -> Result<(), D::Error> {
        encode_parts(
            identity,
            config_string,
            mask,
            reservations,
            self.next_sequence(),
            buffer,
        );
        self.write_encoded(card, buffer)
    }

    /// The sequence number the next record must carry.
    pub fn next_sequence(&self) -> u32 {
        self.newest
            .map_or(1, |(_, sequence)| sequence.wrapping_add(1))
    }

    /// Writes a record already encoded with [`Store::next_sequence`] over the older copy.
    /// `Ok` once the card accepted it and flushed.
    ///
    /// # Errors
    /// When the card fails; the previous record is then still the newest valid one.
    pub fn write_encoded<D: Disk>(
        &mut self,
        card: &mut D,
        buffer: &CopyBuffer,
    ) -> Result<(), D::Error> {
        let copy = self.newest.map_or(0, |(newest, _)| 1 - newest);
        card.write(self.copy_lba(copy), buffer.as_chunks::<SECTOR_SIZE>().0)?;
        card.flush()?;
        self.newest = Some((copy, self.next_sequence()));
        Ok(())
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use aoe_core::disk::MemDisk;

    fn sample() -> Record {
        let mut record = Record {
            identity: Identity {
                mac: Some([0x02, 0, 0, 0xAE, 0, 7]),
                address: Some((7, 3)),
            },
            ..Record::default()
        };
        record.config_string.extend_from_slice(b"host=a").unwrap();
        record
            .mask
            .push(EthernetAddress([2, 0, 0, 0, 0, 9]))
            .unwrap();
        record
            .reservations
            .push(EthernetAddress([2, 0, 0, 0, 0, 8]))
            .unwrap();
        record
    }

    #[test]
    fn test_roundtrip() {
        let mut copy = [0u8; COPY_LEN];
        sample().encode(41, &mut copy);
        assert_eq!(Record::decode(&copy), Some((sample(), 41)));
    }

    #[test]
    fn test_full_record_fits() {
        let mut record = Record::default();
        record
            .config_string
            .resize(MAX_CONFIG_STRING, b'x')
            .unwrap();
        for i in 0..32u8 {
            record
                .mask
                .push(EthernetAddress([2, 0, 0, 0, 1, i]))
                .unwrap();
            record
                .reservations
                .push(EthernetAddress([2, 0, 0, 0, 2, i]))
                .unwrap();
        }
        let mut copy = [0u8; COPY_LEN];
        record.encode(1, &mut copy);
        assert_eq!(Record::decode(&copy), Some((record, 1)));
    }

    #[test]
    fn test_damaged_copies_are_ignored() {
        let mut copy = [0u8; COPY_LEN];
        assert_eq!(Record::decode(&copy), None);
        sample().encode(1, &mut copy);
        for index in [0, 9, 12, 17, 25, 40] {
            let mut damaged = copy;
            damaged[index] ^= 0x10;
            assert_eq!(Record::decode(&damaged), None, "flip at {index}");
        }
        // A huge payload length must not panic.
        let mut long = copy;
        long[10..12].copy_from_slice(&u16::MAX.to_le_bytes());
        assert_eq!(Record::decode(&long), None);
    }

    #[test]
    fn test_store_alternates_and_survives_a_torn_save() {
        let mut card = MemDisk::new([0u8; 64 * SECTOR_SIZE]);
        let mut buffer = [0u8; COPY_LEN];
        let mut store = Store::for_card(64).unwrap();
        assert_eq!(store.first_sector(), 56);
        assert_eq!(store.load(&mut card, &mut buffer).unwrap(), None);

        let save =
            |store: &mut Store, card: &mut MemDisk<_>, record: &Record, buffer: &mut CopyBuffer| {
                store
                    .save_parts(
                        card,
                        &record.identity,
                        &record.config_string,
                        &record.mask,
                        &record.reservations,
                        buffer,
                    )
                    .unwrap()
            };
        let loaded = |buffer: &CopyBuffer| Record::decode(buffer).unwrap().0;
        let mut first = sample();
        save(&mut store, &mut card, &first, &mut buffer);
        first.config_string.clear();
        first.config_string.extend_from_slice(b"second").unwrap();
        save(&mut store, &mut card, &first, &mut buffer);

        let mut reloaded = Store::for_card(64).unwrap();
        assert_eq!(
            reloaded.load(&mut card, &mut buffer).unwrap(),
            Some(first.identity)
        );
        assert_eq!(loaded(&buffer), first);

        // Tear the newest copy (B, sectors 60..64): the older one (A) wins.
        let torn = [[0xA5u8; SECTOR_SIZE]; 1];
        card.write(60, &torn).unwrap();
        reloaded.load(&mut card, &mut buffer).unwrap().unwrap();
        assert_eq!(loaded(&buffer), sample());
        // The next save goes over the torn copy, not over the good one.
        save(&mut reloaded, &mut card, &first, &mut buffer);
        reloaded.load(&mut card, &mut buffer).unwrap();
        assert_eq!(loaded(&buffer), first);

        // The state reaches a target.
        let mut target = aoe_core::Target::new(
            aoe_core::Config::new(1, 1),
            MemDisk::new([0u8; 8 * SECTOR_SIZE]),
        )
        .unwrap();
        Store::apply(&buffer, &mut target);
        assert_eq!(target.config_string(), b"second");
        assert_eq!(target.mask(), &first.mask[..]);
        assert_eq!(target.reservations(), &first.reservations[..]);
    }

    #[test]
    fn test_crc32_check_value() {
        assert_eq!(!crc32_update(!0, b"123456789"), 0xCBF4_3926);
    }
}
