//! What every conformance test shares: the imports, the constants, frame and target helpers,
//! the reply checks (`assert_*`), and a sparse disk for capacity tests.
#![allow(unused_imports)] // each section module uses a different part of this prelude

pub(crate) use aoe_core::disk::{
    Disk, ErrorKind, FaultPlan, FaultyDisk, MemDisk, ReadOnly, Sector, range_fits,
};
pub(crate) use aoe_core::identify::Identity;
pub(crate) use aoe_core::target::{MASK_CAPACITY, StateError};
pub(crate) use aoe_core::wire::{ETHERTYPE_AOE, EthernetAddress};
pub(crate) use aoe_core::{Config, ConfigError, IoOp, Port, Target};
pub(crate) use aoe_tests::{
    BROADCAST_MAC, Frame, Harness, INITIATOR_MAC, Initiator, OTHER_MAC, Reply, SHELF, SLOT,
    TARGET_MAC, aflags, ata_cmd, pattern,
};
pub(crate) use std::collections::BTreeMap;

/// What the transmit buffer holds before the target writes; it must never show in a reply.
pub(crate) const POISON: u8 = 0xA5;
/// What request padding holds in tests that check for request leftovers.
pub(crate) const LEFTOVER: u8 = 0xEE;
/// ATA status DRDY.
pub(crate) const DRDY: u8 = 0x40;
/// ATA status DRDY | ERR.
pub(crate) const DRDY_ERR: u8 = 0x41;
/// ATA error ABRT.
pub(crate) const ABRT: u8 = 0x04;
/// ATA error IDNF.
pub(crate) const IDNF: u8 = 0x10;
/// The largest 48-bit LBA.
pub(crate) const LBA48_MAX: u64 = (1 << 48) - 1;

/// A locally administered unicast MAC, distinct per `last`.
pub(crate) fn mac(last: u8) -> EthernetAddress {
    EthernetAddress([0x02, 0x00, 0x00, 0x00, 0x10, last])
}

/// The default initiator, sending from `mac`.
pub(crate) fn from(mac: EthernetAddress) -> Initiator {
    Initiator {
        mac,
        ..Initiator::default()
    }
}

/// An LBA from its six wire octets (lba0 first).
pub(crate) fn lba_of(b: [u8; 6]) -> u64 {
    u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], 0, 0])
}

/// Pads `frame` with `value` octets up to `len`.
pub(crate) fn pad_with(frame: Frame, value: u8, len: usize) -> Frame {
    let missing = len.saturating_sub(frame.bytes.len());
    frame.pad(&vec![value; missing])
}

/// Hands `frame` to any target on `port` with a poisoned transmit buffer; the reply, if any.
pub(crate) fn send_on<D: Disk>(
    target: &mut Target<D>,
    port: &Port,
    frame: &Frame,
) -> Option<Reply> {
    let mut tx = vec![POISON; 1 << 18];
    let len = target.handle(port, &frame.bytes, &mut tx)?;
    assert!(
        len <= port.max_frame_len(),
        "a reply of {len} octets exceeds the port's MTU"
    );
    tx.truncate(len);
    Some(Reply { bytes: tx })
}

/// Export `SHELF.SLOT` of `disk` with the default configuration.
pub(crate) fn target_of<D: Disk>(disk: D) -> Target<D> {
    Target::new(Config::new(SHELF, SLOT), disk).expect("valid test config")
}

/// A zeroed in-memory disk.
pub(crate) fn mem(sectors: usize) -> MemDisk<Vec<u8>> {
    MemDisk::new(vec![0u8; sectors * 512])
}

/// The standard port.
pub(crate) fn port() -> Port {
    Port::new(TARGET_MAC, 1500)
}

/// Sector `lba` of a harness's disk.
pub(crate) fn sector(h: &Harness, lba: usize) -> &[u8] {
    &h.disk_bytes()[lba * 512..(lba + 1) * 512]
}

/// Checks the reply header against `request`: to the requester, from `port_mac`, EtherType
/// 0x88A2, version 1, R set, E and Error as `error` says, our shelf.slot, Command and Tag
/// copied.
pub(crate) fn assert_header(
    reply: &Reply,
    request: &Frame,
    port_mac: EthernetAddress,
    error: Option<u8>,
) {
    let req = &request.bytes;
    assert_eq!(reply.dst().0[..], req[6..12], "reply goes to the requester");
    assert_eq!(reply.src(), port_mac, "reply comes from the arrival port");
    assert_eq!(reply.ethertype(), 0x88A2);
    match error {
        None => {
            assert_eq!(reply.ver_flags(), 0x18, "version 1, R set, E clear");
            assert_eq!(reply.error(), 0, "Error octet zero without E");
        }
        Some(code) => {
            assert_eq!(reply.ver_flags(), 0x1C, "version 1, R and E set");
            assert_eq!(reply.error(), code, "AoE error code");
        }
    }
    assert_eq!(reply.major(), SHELF, "our shelf, never the wildcard");
    assert_eq!(reply.minor(), SLOT, "our slot, never the wildcard");
    assert_eq!(reply.command(), req[19], "Command copied");
    assert_eq!(reply.bytes[20..24], req[20..24], "Tag copied");
}

/// Checks that the reply is `meaningful` octets padded to 60 with zeros (or exactly
/// `meaningful` octets when that is 60 or more).
pub(crate) fn assert_padded(what: &str, reply: &Reply, meaningful: usize) {
    assert_eq!(
        reply.bytes.len(),
        meaningful.max(60),
        "{what}: reply length"
    );
    let padding = &reply.bytes[meaningful.min(reply.bytes.len())..];
    assert!(
        padding.iter().all(|&b| b == 0),
        "{what}: padding must be zero, got {padding:02x?}"
    );
}

/// Checks ATA Status, Error and Sector Count.
pub(crate) fn assert_ata(reply: &Reply, status: u8, error: u8, count: u8) {
    assert_eq!(
        (
            reply.ata_status(),
            reply.ata_error(),
            reply.ata_sector_count()
        ),
        (status, error, count),
        "ATA (Status, Error, Sector Count)"
    );
}

/// Checks a header-only AoE error reply from the standard port.
pub(crate) fn assert_aoe_error(what: &str, reply: &Reply, request: &Frame, code: u8) {
    assert_header(reply, request, TARGET_MAC, Some(code));
    assert_padded(what, reply, 24);
}

/// Checks a 60-octet ATA reply with no data and no AoE error.
pub(crate) fn assert_ata_only(
    what: &str,
    reply: &Reply,
    request: &Frame,
    status: u8,
    error: u8,
    count: u8,
) {
    assert_header(reply, request, TARGET_MAC, None);
    assert_ata(reply, status, error, count);
    assert_padded(what, reply, 36);
}

/// IDENTIFY word `w` (little-endian).
pub(crate) fn word(data: &[u8], w: usize) -> u16 {
    u16::from_le_bytes([data[2 * w], data[2 * w + 1]])
}

/// The MAC of directive `k` in a MAC Mask List reply, with its reserved octet and DCmd.
pub(crate) fn directive(reply: &Reply, k: usize) -> (u8, u8, EthernetAddress) {
    let d = &reply.bytes[28 + 8 * k..36 + 8 * k];
    (d[0], d[1], EthernetAddress(d[2..8].try_into().unwrap()))
}

/// MAC `k` of a Reserve/Release reply.
pub(crate) fn reserved_mac(reply: &Reply, k: usize) -> EthernetAddress {
    EthernetAddress(reply.bytes[26 + 6 * k..32 + 6 * k].try_into().unwrap())
}

/// A disk of any size that stores only the sectors written (capacity and LBA48 tests).
#[derive(Debug)]
pub(crate) struct SparseDisk {
    sectors: u64,
    /// The sectors written so far.
    pub(crate) written: BTreeMap<u64, Sector>,
}

impl SparseDisk {
    pub(crate) fn new(sectors: u64) -> SparseDisk {
        SparseDisk {
            sectors,
            written: BTreeMap::new(),
        }
    }
}

impl Disk for SparseDisk {
    type Error = ErrorKind;

    fn sector_count(&self) -> u64 {
        self.sectors
    }

    fn read(&mut self, lba: u64, buf: &mut [Sector]) -> Result<(), ErrorKind> {
        if !range_fits(lba, buf.len(), self.sectors) {
            return Err(ErrorKind::OutOfRange);
        }
        for (l, s) in (lba..).zip(buf.iter_mut()) {
            *s = self.written.get(&l).copied().unwrap_or([0; 512]);
        }
        Ok(())
    }

    fn write(&mut self, lba: u64, buf: &[Sector]) -> Result<(), ErrorKind> {
        if !range_fits(lba, buf.len(), self.sectors) {
            return Err(ErrorKind::OutOfRange);
        }
        for (l, s) in (lba..).zip(buf.iter()) {
            self.written.insert(l, *s);
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), ErrorKind> {
        Ok(())
    }
}
