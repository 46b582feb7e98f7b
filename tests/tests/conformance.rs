//! Conformance suite: at least one test per item of the checklist in
//! `/work/shared/docs/aoe-protocol.md` §(b), items 1–42. Every test drives the engine with raw
//! frames built byte by byte and checks raw reply bytes: header fields, exact lengths, zero
//! padding, ATA registers, disk contents and silence. `tests/CONFORMANCE.md` maps items to tests.

use aoe_core::disk::{
    Disk, ErrorKind, FaultPlan, FaultyDisk, MemDisk, ReadOnly, Sector, range_fits,
};
use aoe_core::identify::Identity;
use aoe_core::target::{MASK_CAPACITY, StateError};
use aoe_core::wire::{ETHERTYPE_AOE, EthernetAddress};
use aoe_core::{Config, ConfigError, IoOp, Port, Target};
use aoe_tests::{
    BROADCAST_MAC, Frame, Harness, INITIATOR_MAC, Initiator, OTHER_MAC, Reply, SHELF, SLOT,
    TARGET_MAC, aflags, ata_cmd, pattern,
};
use std::collections::BTreeMap;

// ----- constants and helpers ------------------------------------------------------------------

/// What the transmit buffer holds before the target writes; it must never show in a reply.
const POISON: u8 = 0xA5;
/// What request padding holds in tests that check for request leftovers.
const LEFTOVER: u8 = 0xEE;
/// ATA status DRDY.
const DRDY: u8 = 0x40;
/// ATA status DRDY | ERR.
const DRDY_ERR: u8 = 0x41;
/// ATA error ABRT.
const ABRT: u8 = 0x04;
/// ATA error IDNF.
const IDNF: u8 = 0x10;
/// The largest 48-bit LBA.
const LBA48_MAX: u64 = (1 << 48) - 1;

/// A locally administered unicast MAC, distinct per `last`.
fn mac(last: u8) -> EthernetAddress {
    EthernetAddress([0x02, 0x00, 0x00, 0x00, 0x10, last])
}

/// The default initiator, sending from `mac`.
fn from(mac: EthernetAddress) -> Initiator {
    Initiator {
        mac,
        ..Initiator::default()
    }
}

/// An LBA from its six wire octets (lba0 first).
fn lba_of(b: [u8; 6]) -> u64 {
    u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], 0, 0])
}

/// Pads `frame` with `value` octets up to `len`.
fn pad_with(frame: Frame, value: u8, len: usize) -> Frame {
    let missing = len.saturating_sub(frame.bytes.len());
    frame.pad(&vec![value; missing])
}

/// Hands `frame` to any target on `port` with a poisoned transmit buffer; the reply, if any.
fn send_on<D: Disk>(target: &mut Target<D>, port: &Port, frame: &Frame) -> Option<Reply> {
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
fn target_of<D: Disk>(disk: D) -> Target<D> {
    Target::new(Config::new(SHELF, SLOT), disk).expect("valid test config")
}

/// A zeroed in-memory disk.
fn mem(sectors: usize) -> MemDisk<Vec<u8>> {
    MemDisk::new(vec![0u8; sectors * 512])
}

/// The standard port.
fn port() -> Port {
    Port::new(TARGET_MAC, 1500)
}

/// Sector `lba` of a harness's disk.
fn sector(h: &Harness, lba: usize) -> &[u8] {
    &h.disk_bytes()[lba * 512..(lba + 1) * 512]
}

/// Checks the reply header against `request`: to the requester, from `port_mac`, EtherType
/// 0x88A2, version 1, R set, E and Error as `error` says, our shelf.slot, Command and Tag
/// copied.
fn assert_header(reply: &Reply, request: &Frame, port_mac: EthernetAddress, error: Option<u8>) {
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
fn assert_padded(what: &str, reply: &Reply, meaningful: usize) {
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
fn assert_ata(reply: &Reply, status: u8, error: u8, count: u8) {
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
fn assert_aoe_error(what: &str, reply: &Reply, request: &Frame, code: u8) {
    assert_header(reply, request, TARGET_MAC, Some(code));
    assert_padded(what, reply, 24);
}

/// Checks a 60-octet ATA reply with no data and no AoE error.
fn assert_ata_only(what: &str, reply: &Reply, request: &Frame, status: u8, error: u8, count: u8) {
    assert_header(reply, request, TARGET_MAC, None);
    assert_ata(reply, status, error, count);
    assert_padded(what, reply, 36);
}

/// IDENTIFY word `w` (little-endian).
fn word(data: &[u8], w: usize) -> u16 {
    u16::from_le_bytes([data[2 * w], data[2 * w + 1]])
}

/// The MAC of directive `k` in a MAC Mask List reply, with its reserved octet and DCmd.
fn directive(reply: &Reply, k: usize) -> (u8, u8, EthernetAddress) {
    let d = &reply.bytes[28 + 8 * k..36 + 8 * k];
    (d[0], d[1], EthernetAddress(d[2..8].try_into().unwrap()))
}

/// MAC `k` of a Reserve/Release reply.
fn reserved_mac(reply: &Reply, k: usize) -> EthernetAddress {
    EthernetAddress(reply.bytes[26 + 6 * k..32 + 6 * k].try_into().unwrap())
}

/// A disk of any size that stores only the sectors written (capacity and LBA48 tests).
#[derive(Debug)]
struct SparseDisk {
    sectors: u64,
    written: BTreeMap<u64, Sector>,
}

impl SparseDisk {
    fn new(sectors: u64) -> SparseDisk {
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

// ----- framing, addressing, filtering (items 1–13) --------------------------------------------

/// Item 1: "Must process only frames with EtherType 0x88A2."
#[test]
fn item_01_only_aoe_ethertype() {
    let mut h = Harness::new(64, 1500);
    let i = Initiator::default();
    assert!(h.send(&i.config(1, 0, b"")).is_some(), "control: 0x88A2");
    for ethertype in [0x0800u16, 0x0806, 0x86DD, 0x8100, 0x88A3, 0xA288, 0x0000] {
        let [hi, lo] = ethertype.to_be_bytes();
        for frame in [
            i.config(2, 0, b""),
            i.identify(3),
            i.write48(4, 1, &pattern(1, 1, 1)),
        ] {
            let frame = frame.set(12, hi).set(13, lo);
            assert_eq!(h.send(&frame), None, "EtherType {ethertype:#06x}");
        }
    }
    assert!(h.disk_bytes().iter().all(|&b| b == 0), "no write landed");
}

/// Item 1: "Must process only frames with EtherType 0x88A2" — and only frames addressed to us:
/// another unicast or a multicast destination is dropped.
#[test]
fn item_01_drops_frames_for_another_unicast_or_multicast_mac() {
    let mut h = Harness::new(64, 1500);
    for dst in [
        mac(0x77),
        OTHER_MAC,
        EthernetAddress([0x01, 0x00, 0x5e, 0x00, 0x00, 0x01]),
        EthernetAddress([0x33, 0x33, 0x00, 0x00, 0x00, 0x01]),
    ] {
        let i = Initiator {
            dst,
            ..Initiator::default()
        };
        assert_eq!(h.send(&i.config(1, 0, b"")), None, "dst {dst}");
        assert_eq!(h.send(&i.identify(2)), None, "dst {dst}");
        assert_eq!(h.send(&i.write48(3, 0, &pattern(0, 1, 1))), None);
    }
    assert!(h.disk_bytes().iter().all(|&b| b == 0), "no write landed");
}

/// Item 1: Frames to the broadcast MAC are ours too (Linux discovery broadcasts).
#[test]
fn item_01_accepts_broadcast_destination() {
    let mut h = Harness::new(64, 1500);
    let i = Initiator {
        dst: BROADCAST_MAC,
        ..Initiator::default()
    };
    let request = i.config(7, 0, b"");
    let reply = h.send(&request).expect("broadcast query answered");
    assert_header(&reply, &request, TARGET_MAC, None);
    assert_eq!(reply.dst(), INITIATOR_MAC);
    let request = i.identify(8);
    let reply = h.send(&request).expect("broadcast IDENTIFY answered");
    assert_header(&reply, &request, TARGET_MAC, None);
    assert_eq!(reply.bytes.len(), 548);
}

/// Item 2: "Must never answer a frame whose R flag (byte 14 & 0x08) is set."
#[test]
fn item_02_never_answers_a_response() {
    let mut h = Harness::new(64, 1500);
    let i = Initiator::default();
    let frames = [
        i.identify(1),
        i.read48(2, 0, 1),
        i.write48(3, 0, &pattern(0, 1, 1)),
        i.config(4, 0, b""),
        i.config(5, 4, b"x"),
        i.mask(6, 1, &[(1, INITIATOR_MAC)]),
        i.reserve(7, 1, &[INITIATOR_MAC]),
        i.request(9, 8, &[]),
        i.request(0xF0, 9, &[]),
    ];
    for frame in frames {
        for ver_flags in [0x18u8, 0x1C, 0x08, 0x28] {
            let frame = frame.clone().set(14, ver_flags);
            assert_eq!(h.send(&frame), None, "Ver/Flags {ver_flags:#04x}");
        }
    }
    assert!(h.disk_bytes().iter().all(|&b| b == 0), "no write landed");
    assert!(h.target.config_string().is_empty(), "no config set");
    assert!(h.target.mask().is_empty(), "no mask edit");
    assert!(h.target.reservations().is_empty(), "no reservation");
}

/// Item 2: "...this includes the target's own replies looped back" (torus #384: a DRDY reply read
/// back as ATA command 0x40).
#[test]
fn item_02_ignores_own_reply_looped_back() {
    let mut h = Harness::new(64, 1500);
    let i = Initiator::default();
    let reply = h.send(&i.read48(1, 0, 1)).unwrap();
    assert_eq!(reply.ata_status(), 0x40);

    // As a packet socket on `lo` sees it: to the initiator, from us.
    let looped = Frame {
        bytes: reply.bytes.clone(),
    };
    assert_eq!(h.send(&looped), None);
    // Even readdressed to us from the initiator, R alone keeps it silent...
    let mut readdressed = looped.bytes.clone();
    readdressed[0..6].copy_from_slice(&TARGET_MAC.0);
    readdressed[6..12].copy_from_slice(&INITIATOR_MAC.0);
    let readdressed = Frame { bytes: readdressed };
    assert_eq!(h.send(&readdressed), None);
    // ...because without R it is a request for ATA command 0x40, which gets ABRT.
    let request = readdressed.set(14, 0x10);
    let answered = h.send(&request).expect("a request without R is answered");
    assert_ata_only("0x40 as a command", &answered, &request, DRDY_ERR, ABRT, 0);
}

/// Item 2: Frames from a multicast, broadcast or all-zero source, or from our own MAC (a loop),
/// are dropped.
#[test]
fn item_02_drops_multicast_zero_or_own_source() {
    let mut h = Harness::new(64, 1500);
    assert!(h.send(&Initiator::default().config(1, 0, b"")).is_some());
    for src in [
        TARGET_MAC,
        BROADCAST_MAC,
        EthernetAddress([0x01, 0x80, 0xc2, 0x00, 0x00, 0x0e]),
        EthernetAddress([0x03, 0x00, 0x00, 0x00, 0x00, 0x01]),
        EthernetAddress([0; 6]),
    ] {
        let i = from(src);
        assert_eq!(h.send(&i.config(2, 0, b"")), None, "src {src}");
        assert_eq!(h.send(&i.identify(3)), None, "src {src}");
        assert_eq!(h.send(&i.write48(4, 0, &pattern(0, 1, 1))), None);
    }
    assert!(h.disk_bytes().iter().all(|&b| b == 0), "no write landed");
}

/// Item 3: "Must accept a request when Major ∈ {own shelf, 0xFFFF} and Minor ∈ {own slot, 0xFF},
/// with the two wildcards independent."
#[test]
fn item_03_wildcards_are_independent() {
    let mut h = Harness::new(64, 1500);
    for (shelf, slot) in [(SHELF, SLOT), (0xFFFF, SLOT), (SHELF, 0xFF), (0xFFFF, 0xFF)] {
        let i = Initiator {
            shelf,
            slot,
            ..Initiator::default()
        };
        let request = i.config(1, 0, b"");
        let reply = h.send(&request).unwrap_or_else(|| panic!("{shelf}.{slot}"));
        assert_header(&reply, &request, TARGET_MAC, None);
        let request = i.read48(2, 0, 1);
        let reply = h.send(&request).unwrap_or_else(|| panic!("{shelf}.{slot}"));
        assert_eq!(reply.bytes.len(), 548, "{shelf}.{slot}");
    }
}

/// Item 3: Anything else (another shelf or slot, with or without a wildcard) gets no reply.
#[test]
fn item_03_other_addresses_are_ignored() {
    let mut h = Harness::new(64, 1500);
    for (shelf, slot) in [
        (SHELF + 1, SLOT),
        (SHELF, SLOT + 1),
        (0xFFFF, SLOT + 1),
        (SHELF + 1, 0xFF),
        (u16::from(SLOT), u8::try_from(SHELF).unwrap()),
        (0, 0),
        (0xFFFE, 0xFE),
    ] {
        let i = Initiator {
            shelf,
            slot,
            ..Initiator::default()
        };
        assert_eq!(h.send(&i.config(1, 0, b"")), None, "{shelf}.{slot}");
        assert_eq!(h.send(&i.identify(2)), None, "{shelf}.{slot}");
        assert_eq!(h.send(&i.write48(3, 0, &pattern(0, 1, 1))), None);
        assert_eq!(h.send(&i.mask(4, 1, &[(1, OTHER_MAC)])), None);
    }
    assert!(h.disk_bytes().iter().all(|&b| b == 0));
    assert!(h.target.mask().is_empty());
}

/// Item 4: "Must put its own shelf/slot in Major/Minor of every reply."
#[test]
fn item_04_replies_carry_own_shelf_and_slot() {
    let mut h = Harness::new(64, 1500);
    for (shelf, slot) in [(SHELF, SLOT), (0xFFFF, SLOT), (SHELF, 0xFF), (0xFFFF, 0xFF)] {
        let i = Initiator {
            shelf,
            slot,
            ..Initiator::default()
        };
        for request in [
            i.config(1, 0, b""),
            i.identify(2),
            i.read48(3, 0, 2),
            i.write48(4, 0, &pattern(0, 1, 1)),
            i.read48(5, 1000, 1),
            i.mask(6, 0, &[]),
            i.reserve(7, 0, &[]),
            i.request(0x42, 8, &[]),
            i.config(9, 0, b"").set(14, 0x20),
        ] {
            let reply = h.send(&request).unwrap();
            assert_eq!(
                (reply.major(), reply.minor()),
                (SHELF, SLOT),
                "request to {shelf}.{slot}, command {}",
                request.bytes[19]
            );
        }
    }
}

/// Item 5: "Must send the reply to the request's source MAC, from the MAC of the interface the
/// request came in on, with R set, Ver = 1, and Command and the four Tag bytes copied."
#[test]
fn item_05_reply_addressing_and_header() {
    let mut h = Harness::new(64, 1500);
    for (src, tag) in [
        (INITIATOR_MAC, 0x0123_4567u32),
        (OTHER_MAC, 0xFEDC_BA98),
        (mac(0x55), 0),
    ] {
        let i = from(src);
        let requests = [
            (i.config(tag, 0, b""), None),
            (i.identify(tag), None),
            (i.read48(tag, 3, 1), None),
            (i.write48(tag, 3, &pattern(3, 1, 4)), None),
            (i.mask(tag, 0, &[]), None),
            (i.reserve(tag, 0, &[]), None),
            (i.request(0x99, tag, &[]), Some(1)),
            (i.config(tag, 0, b"").set(14, 0x00), Some(5)),
        ];
        for (request, error) in requests {
            let reply = h.send(&request).unwrap();
            assert_header(&reply, &request, TARGET_MAC, error);
            assert_eq!(reply.dst(), src);
            assert_eq!(reply.tag(), tag);
        }
    }
}

/// Item 6: "Must ignore trailing bytes after the fields a command needs": aoeping's config query
/// (length 1024 + 1024 octets of 0xED).
#[test]
fn item_06_config_query_with_aoeping_filler() {
    let mut h = Harness::new(64, 1500);
    let request = Initiator::default().config(0x8000_0001, 0, &[0xED; 1024]);
    assert_eq!(request.bytes.len(), 24 + 8 + 1024);
    let reply = h.send(&request).expect("aoeping's query is answered");
    assert_header(&reply, &request, TARGET_MAC, None);
    assert_eq!(reply.cfg_string(), b"", "our (empty) string, not theirs");
    assert_eq!(reply.cfg_sector_count(), 2);
    assert_padded("config reply", &reply, 32);
    assert!(h.target.config_string().is_empty(), "a read stores nothing");
}

/// Item 6: aoe-sancheck's IDENTIFY padded to the path MTU is an ordinary IDENTIFY.
#[test]
fn item_06_identify_padded_to_mtu() {
    let mut h = Harness::new(64, 1500);
    let plain = h.send(&Initiator::default().identify(1)).unwrap();
    for len in [60, 548, 1060, 1514] {
        let request = pad_with(Initiator::default().identify(1), LEFTOVER, len);
        let reply = h.send(&request).unwrap();
        assert_eq!(reply, plain, "IDENTIFY padded to {len}");
        assert_eq!(reply.bytes.len(), 548);
    }
}

/// Item 6: Linux probe frames are READs carrying a full data payload: the payload is ignored.
#[test]
fn item_06_read_probe_with_payload() {
    let mut h = Harness::new(64, 1500);
    let stored = pattern(0, 64, 3);
    h.target.disk_mut().as_bytes_mut().copy_from_slice(&stored);
    let i = Initiator::default();
    let request = i.ata(1, aflags::EXT, ata_cmd::READ_EXT, 2, 0, &[0u8; 1024]);
    let reply = h.send(&request).unwrap();
    assert_header(&reply, &request, TARGET_MAC, None);
    assert_ata(&reply, DRDY, 0, 0);
    assert_eq!(reply.bytes.len(), 36 + 1024);
    assert_eq!(
        reply.ata_data(),
        &stored[..1024],
        "disk data, not the payload"
    );
    assert_eq!(
        h.disk_bytes(),
        &stored[..],
        "a READ with data writes nothing"
    );
}

/// Item 6: Octets after a WRITE's Sector Count × 512 data are ignored.
#[test]
fn item_06_write_ignores_bytes_after_payload() {
    let mut h = Harness::new(64, 1500);
    h.fill_sector(5, 0x11);
    let data = pattern(4, 1, 9);
    let mut payload = data.clone();
    payload.extend_from_slice(&[0xEE; 512]);
    let request = Initiator::default().ata(
        1,
        aflags::EXT | aflags::WRITE,
        ata_cmd::WRITE_EXT,
        1,
        4,
        &payload,
    );
    let reply = h.send(&request).unwrap();
    assert_ata_only("write", &reply, &request, DRDY, 0, 0);
    assert_eq!(sector(&h, 4), &data[..]);
    assert!(sector(&h, 5).iter().all(|&b| b == 0x11), "next sector kept");
}

/// Item 6: Config, mask and reserve requests padded to 60 (Ethernet padding) read as unpadded.
#[test]
fn item_06_control_commands_ignore_ethernet_padding() {
    let mut h = Harness::new(64, 1500);
    let i = Initiator::default();
    for (request, string) in [
        (i.config(1, 4, b"abc"), &b"abc"[..]),
        (i.config(2, 1, b"abc"), &b"abc"[..]),
        (i.config(3, 2, b"ab"), &b"abc"[..]),
    ] {
        let reply = h.send(&pad_with(request, LEFTOVER, 60)).unwrap();
        assert!(!reply.is_error());
        assert_eq!(reply.cfg_string(), string);
    }
    let request = pad_with(i.mask(4, 1, &[(1, INITIATOR_MAC)]), LEFTOVER, 60);
    let reply = h.send(&request).unwrap();
    assert_eq!(
        (reply.arg(2), reply.arg(3)),
        (0, 1),
        "one directive applied"
    );
    assert_eq!(h.target.mask(), &[INITIATOR_MAC]);
    let request = pad_with(i.reserve(5, 1, &[INITIATOR_MAC]), LEFTOVER, 60);
    let reply = h.send(&request).unwrap();
    assert!(!reply.is_error());
    assert_eq!(h.target.reservations(), &[INITIATOR_MAC]);
}

/// Item 7: "Should pad every reply to ≥ 60 bytes and zero the padding" — never the transmit
/// buffer's old contents, never request leftovers.
#[test]
fn item_07_every_reply_is_zero_padded_to_60() {
    let mut h = Harness::new(64, 1500);
    let i = Initiator::default();
    let cases = [
        ("config read", i.config(1, 0, b""), 32),
        ("mask read", i.mask(2, 0, &[]), 28),
        ("reserve read", i.reserve(3, 0, &[]), 26),
        ("unknown command", i.request(9, 4, &[]), 24),
        ("vendor command", i.request(0xF5, 4, &[]), 24),
        ("version 2", i.config(5, 0, b"").set(14, 0x20), 24),
        ("bad CCmd", i.config(5, 9, b""), 24),
        ("write", i.write48(6, 1, &pattern(1, 1, 3)), 36),
        (
            "check power mode",
            i.ata(7, 0, ata_cmd::CHECK_POWER_MODE, 0, 0, &[]),
            36,
        ),
        ("flush", i.ata(8, 0, ata_cmd::FLUSH, 0, 0, &[]), 36),
        ("out of range", i.read48(9, 64, 1), 36),
        ("count 0", i.read48(10, 0, 0), 36),
        ("unknown ATA", i.ata(11, 0, 0x00, 1, 0, &[]), 36),
        ("config set", i.config(12, 4, b"ab"), 34),
        ("mask edit", i.mask(13, 1, &[(1, INITIATOR_MAC)]), 36),
        ("reserve set", i.reserve(14, 1, &[INITIATOR_MAC]), 32),
        ("mask bad directive", i.mask(15, 1, &[(7, OTHER_MAC)]), 28),
    ];
    for (what, request, meaningful) in cases {
        let request = pad_with(request, LEFTOVER, 60);
        let reply = h
            .send(&request)
            .unwrap_or_else(|| panic!("{what}: no reply"));
        assert_padded(what, &reply, meaningful);
    }
}

/// Item 7: Replies longer than 60 octets are exactly as long as their content.
#[test]
fn item_07_longer_replies_have_exact_length() {
    let mut h = Harness::new(64, 1500);
    let i = Initiator::default();
    let string = [b'x'; 40];
    let reply = h.send(&i.config(1, 4, &string)).unwrap();
    assert_eq!(reply.bytes.len(), 32 + 40);
    let macs: Vec<_> = (0..5).map(mac).chain([INITIATOR_MAC]).collect();
    let directives: Vec<_> = macs.iter().map(|&m| (1u8, m)).collect();
    let reply = h.send(&i.mask(2, 1, &directives)).unwrap();
    assert_eq!(reply.bytes.len(), 28 + 6 * 8);
    let reply = h.send(&i.reserve(3, 1, &macs)).unwrap();
    assert_eq!(reply.bytes.len(), 26 + 6 * 6);
    assert_eq!(h.send(&i.identify(4)).unwrap().bytes.len(), 36 + 512);
    assert_eq!(h.send(&i.read48(5, 0, 2)).unwrap().bytes.len(), 36 + 1024);
}

/// Item 8: "Should silently drop frames shorter than the fixed header of their command
/// (24/36/32/28/26 bytes, Ethernet header included)."
#[test]
fn item_08_drops_frames_shorter_than_command_header() {
    let mut h = Harness::new(64, 1500);
    let i = Initiator::default();
    let cases = [
        ("empty", i.request(9, 1, &[]).truncate(0)),
        ("Ethernet only", i.request(9, 1, &[]).truncate(14)),
        ("AoE header", i.request(9, 1, &[]).truncate(23)),
        ("ATA", i.identify(2).truncate(35)),
        ("ATA write", i.write48(3, 0, &pattern(0, 1, 1)).truncate(35)),
        ("config", i.config(4, 0, b"").truncate(31)),
        ("config set", i.config(4, 4, b"").truncate(31)),
        ("mask", i.mask(5, 0, &[]).truncate(27)),
        ("reserve", i.reserve(6, 0, &[]).truncate(25)),
    ];
    for (what, frame) in cases {
        assert_eq!(
            h.send(&frame),
            None,
            "{what} of {} octets",
            frame.bytes.len()
        );
    }
    assert!(h.disk_bytes().iter().all(|&b| b == 0));
    assert_eq!(h.target.stats().replies, 0);
}

/// Item 8: Frames of exactly their command's header length are answered.
#[test]
fn item_08_answers_frames_of_exactly_the_header_length() {
    let mut h = Harness::new(64, 1500);
    let i = Initiator::default();
    let cases = [
        ("unknown command", i.request(9, 1, &[]), 24),
        ("IDENTIFY", i.identify(2), 36),
        ("config", i.config(3, 0, b""), 32),
        ("mask", i.mask(4, 0, &[]), 28),
        ("reserve", i.reserve(5, 0, &[]), 26),
    ];
    for (what, frame, len) in cases {
        assert_eq!(frame.bytes.len(), len, "{what}");
        assert!(h.send(&frame).is_some(), "{what} of {len} octets");
    }
}

/// Item 9: "Should answer an unknown command 4–239 with E set and Error 1." Engine choice: a
/// header-only reply (as ggaoed), padded to 60.
#[test]
fn item_09_unknown_commands_get_error_1() {
    let mut h = Harness::new(64, 1500);
    let i = Initiator::default();
    for command in 4u8..=239 {
        for arg in [&[][..], &[LEFTOVER; 40][..]] {
            let request = i.request(command, 0xC0DE_0000 | u32::from(command), arg);
            let reply = h.send(&request).expect("unknown command answered");
            assert_aoe_error("unknown command", &reply, &request, 1);
        }
    }
}

/// Item 9: "Commands 240–255 are vendor-specific." Engine choice: answered like unknown
/// commands (E, Error 1, header only); Linux ignores the reply.
#[test]
fn item_09_vendor_commands_get_error_1() {
    let mut h = Harness::new(64, 1500);
    let i = Initiator::default();
    for command in 240u8..=255 {
        let request = i.request(command, u32::from(command), &[LEFTOVER; 12]);
        let reply = h.send(&request).expect("vendor command answered");
        assert_aoe_error("vendor command", &reply, &request, 1);
    }
}

/// Item 10: "Must not report per-I/O failures (bad range, media error) with the AoE E flag."
#[test]
fn item_10_range_error_is_ata_status_not_aoe_error() {
    let mut h = Harness::new(64, 1500);
    let i = Initiator::default();
    for request in [
        i.read48(1, 64, 1),
        i.write48(2, 63, &pattern(63, 2, 1)),
        i.read28(3, 100, 1),
        i.read48(4, 0, 3),
        i.read48(5, 0, 0),
        i.ata(6, 0, 0x25, 1, 0, &[]),
    ] {
        let reply = h.send(&request).unwrap();
        assert!(!reply.is_error(), "no E flag");
        assert_eq!(reply.error(), 0, "no AoE error code");
        assert_eq!(reply.ata_status(), DRDY_ERR, "the failure is in ATA Status");
        assert_eq!(reply.bytes.len(), 60);
    }
    assert_eq!(h.target.stats().aoe_errors, 0);
}

/// Item 10: A disk failure is ATA Status/Error too, never the AoE E flag.
#[test]
fn item_10_disk_failure_is_ata_status_not_aoe_error() {
    let plan = FaultPlan {
        fail_after: Some(0),
        sticky: true,
        ..FaultPlan::none()
    };
    let mut target = target_of(FaultyDisk::new(mem(64), plan));
    let i = Initiator::default();
    for request in [
        i.read48(1, 0, 1),
        i.write48(2, 0, &pattern(0, 1, 1)),
        i.ata(3, aflags::EXT, ata_cmd::FLUSH_EXT, 0, 0, &[]),
    ] {
        let reply = send_on(&mut target, &port(), &request).unwrap();
        assert_ata_only(
            "disk failure",
            &reply,
            &request,
            DRDY_ERR,
            ABRT,
            request.bytes[26],
        );
    }
    assert_eq!(target.stats().aoe_errors, 0);
    assert_eq!(target.stats().disk_errors, 3);
}

/// Item 11: "Must be idempotent for retransmissions" — Linux resends under a new tag.
#[test]
fn item_11_retransmitted_write_and_read_are_idempotent() {
    let mut h = Harness::new(64, 1500);
    h.fill_sector(9, 0x11);
    h.fill_sector(12, 0x22);
    let i = Initiator::default();
    let data = pattern(10, 2, 5);
    let first = h.send(&i.write48(1, 10, &data)).unwrap();
    let before = h.disk_bytes().to_vec();
    let again = h.send(&i.write48(2, 10, &data)).unwrap();
    assert_eq!(first.bytes[24..], again.bytes[24..], "same answer");
    assert_eq!(again.tag(), 2, "under the new tag");
    assert_eq!(h.disk_bytes(), &before[..], "the duplicate changed nothing");
    assert!(sector(&h, 9).iter().all(|&b| b == 0x11));
    assert!(sector(&h, 12).iter().all(|&b| b == 0x22));

    let read1 = h.send(&i.read48(3, 10, 2)).unwrap();
    let read2 = h.send(&i.read48(4, 10, 2)).unwrap();
    assert_eq!(read1.bytes[24..], read2.bytes[24..]);
    assert_eq!(read1.ata_data(), &data[..]);
}

/// Item 11: Retransmitted control commands (config set, mask add, reserve set) succeed again
/// and leave the same state.
#[test]
fn item_11_retransmitted_control_commands_are_idempotent() {
    let mut h = Harness::new(64, 1500);
    let i = Initiator::default();
    for tag in [1, 2] {
        let reply = h.send(&i.config(tag, 3, b"vblade")).unwrap();
        assert!(
            !reply.is_error(),
            "set with the same string again: no error 4"
        );
        assert_eq!(reply.cfg_string(), b"vblade");
    }
    for tag in [3, 4] {
        let reply = h.send(&i.mask(tag, 1, &[(1, INITIATOR_MAC)])).unwrap();
        assert_eq!((reply.arg(2), reply.arg(3)), (0, 1), "one entry, no error");
    }
    assert_eq!(h.target.mask(), &[INITIATOR_MAC]);
    for tag in [5, 6] {
        let reply = h.send(&i.reserve(tag, 1, &[INITIATOR_MAC])).unwrap();
        assert!(!reply.is_error(), "a member may set again");
        assert_eq!(reply.arg(1), 1);
    }
    assert_eq!(h.target.reservations(), &[INITIATOR_MAC]);
}

/// Item 12: "The target only echoes the tag and must not interpret it" (bit 31 = userland tools).
#[test]
fn item_12_tag_echoed_and_not_interpreted() {
    let mut h = Harness::new(64, 1500);
    h.target
        .disk_mut()
        .as_bytes_mut()
        .copy_from_slice(&pattern(0, 64, 2));
    let i = Initiator::default();
    let builders: [fn(&Initiator, u32) -> Frame; 4] = [
        |i, t| i.config(t, 0, b""),
        |i, t| i.identify(t),
        |i, t| i.read48(t, 1, 2),
        |i, t| i.request(0x55, t, &[]),
    ];
    for build in builders {
        let reference = h.send(&build(&i, 1)).unwrap();
        for tag in [0u32, 0x7FFF_FFFF, 0x8000_0000, 0x8000_1234, 0xFFFF_FFFF] {
            let reply = h.send(&build(&i, tag)).unwrap();
            assert_eq!(reply.tag(), tag);
            assert_eq!(reply.bytes[..20], reference.bytes[..20], "tag {tag:#x}");
            assert_eq!(reply.bytes[24..], reference.bytes[24..], "tag {tag:#x}");
        }
    }
}

/// Item 13: "Should accept any Ver nibble ... or drop non-v1 requests silently." Engine choice:
/// answer non-v1 requests with E + Error 5 (a header-only version 1 reply) and act on
/// nothing.
#[test]
fn item_13_other_versions_get_error_5() {
    let mut h = Harness::new(64, 1500);
    let i = Initiator::default();
    for version in [0u8, 2, 3, 15] {
        for request in [
            i.config(1, 4, b"new"),
            i.identify(2),
            i.write48(3, 0, &pattern(0, 1, 1)),
            i.mask(4, 1, &[(1, INITIATOR_MAC)]),
            i.reserve(5, 1, &[INITIATOR_MAC]),
            i.request(9, 6, &[]),
        ] {
            let request = request.set(14, version << 4);
            let reply = h.send(&request).expect("non-v1 answered");
            assert_aoe_error("version", &reply, &request, 5);
            assert_eq!(reply.version(), 1, "replies are always version 1");
        }
    }
    assert!(h.disk_bytes().iter().all(|&b| b == 0), "nothing written");
    assert!(h.target.config_string().is_empty());
    assert!(h.target.mask().is_empty());
    assert!(h.target.reservations().is_empty());
}

// ----- Query Config (items 14–22) -------------------------------------------------------------

/// Item 14: "Must answer CCmd 0 (read) whatever the request's string length or contents."
#[test]
fn item_14_config_read_answers_any_string() {
    let mut h = Harness::new(64, 1500);
    h.target.set_config_string(b"ours").unwrap();
    let i = Initiator::default();
    for request in [
        i.config(1, 0, b""),
        i.config(2, 0, b"theirs"),
        i.config_with_len(3, 0, 1024, b""),
        i.config_with_len(4, 0, 0xFFFF, b"abc"),
        i.config_with_len(5, 0, 2000, &[0xED; 2000]),
    ] {
        let reply = h.send(&request).expect("a read is always answered");
        assert_header(&reply, &request, TARGET_MAC, None);
        assert_eq!(reply.cfg_buffer_count(), 16);
        assert_eq!(reply.cfg_sector_count(), 2);
        assert_eq!(reply.cfg_aoe_version(), 1);
        assert_eq!(reply.cfg_ccmd(), 0);
        assert_eq!(reply.cfg_string(), b"ours");
        assert_padded("config read", &reply, 36);
    }
    assert_eq!(h.target.config_string(), b"ours", "reads store nothing");
}

/// Item 15: "Must stay silent on CCmd 1 (test) unless the lengths are equal and the bytes match";
/// a match gets a read-style reply (engine: the CCmd nibble echoes the request's).
#[test]
fn item_15_config_test_exact_match_only() {
    let mut h = Harness::new(64, 1500);
    let ours = b"vblade-rs:alpha";
    h.target.set_config_string(ours).unwrap();
    let i = Initiator::default();
    let request = i.config(1, 1, ours);
    let reply = h.send(&request).expect("exact match answered");
    assert_header(&reply, &request, TARGET_MAC, None);
    assert_eq!(reply.cfg_string(), ours);
    assert_eq!(reply.cfg_ccmd(), 1);
    assert_eq!(reply.cfg_sector_count(), 2);
    assert_padded("test reply", &reply, 32 + ours.len());
    for other in [
        &b"vblade-rs:alphA"[..],
        b"vblade-rs:alph",
        b"vblade-rs:alpha!",
        b"",
        b"vblade",
    ] {
        assert_eq!(h.send(&i.config(2, 1, other)), None, "{other:?}");
    }
    let mut empty = Harness::new(64, 1500);
    assert!(empty.send(&i.config(3, 1, b"")).is_some(), "'' == ''");
    assert_eq!(empty.send(&i.config(4, 1, b"x")), None);
}

/// Item 15: "...and on CCmd 2 (prefix) unless the request string is a prefix of its own."
#[test]
fn item_15_config_test_prefix() {
    let mut h = Harness::new(64, 1500);
    let ours = b"vblade-rs:alpha";
    h.target.set_config_string(ours).unwrap();
    let i = Initiator::default();
    for prefix in [&b""[..], b"v", b"vblade", b"vblade-rs:alpha"] {
        let request = i.config(1, 2, prefix);
        let reply = h.send(&request).unwrap_or_else(|| panic!("{prefix:?}"));
        assert_header(&reply, &request, TARGET_MAC, None);
        assert_eq!(reply.cfg_string(), ours);
        assert_eq!(reply.cfg_ccmd(), 2);
    }
    for other in [&b"vblade-rs:alpha!"[..], b"x", b"blade", b"VBLADE"] {
        assert_eq!(h.send(&i.config(2, 2, other)), None, "{other:?}");
    }
}

/// Item 16: "Must, on CCmd 3 (set), store the string and reply if its current string is empty;
/// otherwise reply E + Error 4 with the current string." Engine choice: a set with the
/// identical string succeeds (as vblade, ggaoed, kvblade).
#[test]
fn item_16_config_set_if_empty() {
    let mut h = Harness::new(64, 1500);
    let i = Initiator::default();
    let request = i.config(1, 3, b"one");
    let reply = h.send(&request).unwrap();
    assert_header(&reply, &request, TARGET_MAC, None);
    assert_eq!((reply.cfg_ccmd(), reply.cfg_string()), (3, &b"one"[..]));
    assert_eq!(h.target.config_string(), b"one");

    let request = i.config(2, 3, b"two");
    let reply = h.send(&request).unwrap();
    assert_header(&reply, &request, TARGET_MAC, Some(4));
    assert_eq!(
        reply.cfg_string(),
        b"one",
        "error 4 carries the current string"
    );
    assert_eq!(reply.cfg_buffer_count(), 16);
    assert_padded("error 4", &reply, 35);
    assert_eq!(h.target.config_string(), b"one", "unchanged");

    let reply = h.send(&i.config(3, 3, b"one")).unwrap();
    assert!(!reply.is_error(), "identical string: accepted");
    assert_eq!(reply.cfg_string(), b"one");
}

/// Item 16: "CCmd 4 always stores and replies."
#[test]
fn item_16_config_force_set() {
    let mut h = Harness::new(64, 1500);
    h.target.set_config_string(b"old").unwrap();
    let i = Initiator::default();
    for string in [&b"new"[..], b"", b"third"] {
        let request = i.config(1, 4, string);
        let reply = h.send(&request).unwrap();
        assert_header(&reply, &request, TARGET_MAC, None);
        assert_eq!((reply.cfg_ccmd(), reply.cfg_string()), (4, string));
        assert_eq!(h.target.config_string(), string);
    }
    // After a force set to empty, a conditional set succeeds again.
    h.target.set_config_string(b"").unwrap();
    assert!(!h.send(&i.config(2, 3, b"fresh")).unwrap().is_error());
    assert_eq!(h.target.config_string(), b"fresh");
}

/// Item 16: "CCmd 5–15 → E + Error 2."
#[test]
fn item_16_unknown_ccmd_error_2() {
    let mut h = Harness::new(64, 1500);
    h.target.set_config_string(b"keep").unwrap();
    let i = Initiator::default();
    for ccmd in 5u8..=15 {
        let request = i.config(u32::from(ccmd), ccmd, b"other");
        let reply = h.send(&request).unwrap();
        assert_aoe_error("unknown CCmd", &reply, &request, 2);
    }
    assert_eq!(h.target.config_string(), b"keep");
}

/// Item 17: "Should reject a config string length > 1024, or larger than the bytes present, for
/// set/test." Engine choice: E + Error 2 (as ggaoed).
#[test]
fn item_17_config_string_length_checked() {
    let mut h = Harness::new(64, 1500);
    h.target.set_config_string(b"keep").unwrap();
    let i = Initiator::default();
    for ccmd in 1u8..=4 {
        for request in [
            i.config_with_len(1, ccmd, 1025, &[b'k'; 1025]),
            i.config_with_len(2, ccmd, 0xFFFF, &[b'k'; 1100]),
            i.config_with_len(3, ccmd, 10, b"keep"),
        ] {
            let reply = h.send(&request).expect("answered with error 2");
            assert_aoe_error("bad string length", &reply, &request, 2);
        }
    }
    assert_eq!(h.target.config_string(), b"keep");
    // 1024 is the limit and is accepted.
    let long = [b'L'; 1024];
    let reply = h.send(&i.config(4, 4, &long)).unwrap();
    assert!(!reply.is_error());
    assert_eq!(reply.bytes.len(), 32 + 1024);
    assert_eq!(reply.cfg_string(), &long[..]);
    assert_eq!(h.target.config_string(), &long[..]);
}

/// Item 18: "Must advertise Buffer Count ≥ 2."
#[test]
fn item_18_buffer_count_at_least_2() {
    let mut h = Harness::new(64, 1500);
    let reply = h.send(&Initiator::default().config(1, 0, b"")).unwrap();
    assert_eq!(reply.cfg_buffer_count(), 16, "vblade's default");
    for count in [0u16, 1] {
        let mut config = Config::new(SHELF, SLOT);
        config.buffer_count = count;
        assert_eq!(
            Target::new(config, mem(8)).err(),
            Some(ConfigError::BufferCountTooSmall(count))
        );
    }
    let mut config = Config::new(SHELF, SLOT);
    config.buffer_count = 2;
    let mut target = Target::new(config, mem(8)).expect("2 is enough");
    let reply = send_on(
        &mut target,
        &port(),
        &Initiator::default().config(1, 0, b""),
    )
    .unwrap();
    assert_eq!(reply.cfg_buffer_count(), 2);
}

/// Item 19: "Must advertise Sector Count = floor((MTU−36)/512) for the interface the reply leaves
/// on."
#[test]
fn item_19_sector_count_follows_mtu() {
    for (mtu, sectors) in [
        (548, 1),
        (1035, 1),
        (1059, 1),
        (1060, 2),
        (1500, 2),
        (4000, 7),
        (8739, 16),
        (8740, 17),
        (9000, 17),
    ] {
        let mut h = Harness::new(64, mtu);
        let reply = h.send(&Initiator::default().config(1, 0, b"")).unwrap();
        assert_eq!(reply.cfg_sector_count(), sectors, "MTU {mtu}");
    }
}

/// Item 19: Also bounded by the configured frame buffer, and by 255 (a one-octet field).
#[test]
fn item_19_sector_count_bounded_by_frame_buffer_and_255() {
    let request = Initiator::default().config(1, 0, b"");
    let mut standard = target_of(mem(8));
    let jumbo_port = Port::new(TARGET_MAC, 9000);
    let reply = send_on(&mut standard, &jumbo_port, &request).unwrap();
    assert_eq!(reply.cfg_sector_count(), 2, "1514-octet buffers cap it");

    let mut config = Config::new(SHELF, SLOT);
    config.max_frame_len = 1 << 18;
    let mut huge = Target::new(config, mem(8)).unwrap();
    let reply = send_on(&mut huge, &Port::new(TARGET_MAC, 200_000), &request).unwrap();
    assert_eq!(reply.cfg_sector_count(), 255);
}

/// Item 19: "...and reject or abort requests above it." (Engine: ATA ABRT, see item 31.)
#[test]
fn item_19_requests_above_sector_count_aborted() {
    let mut h = Harness::new(64, 1500);
    h.fill_sector(0, 0x11);
    let i = Initiator::default();
    let request = i.read48(1, 0, 3);
    let reply = h.send(&request).unwrap();
    assert_ata_only("read 3 at MTU 1500", &reply, &request, DRDY_ERR, ABRT, 3);
    let request = i.write48(2, 0, &pattern(0, 3, 1));
    let reply = h.send(&request).unwrap();
    assert_ata_only("write 3 at MTU 1500", &reply, &request, DRDY_ERR, ABRT, 3);
    assert!(sector(&h, 0).iter().all(|&b| b == 0x11), "not written");
    assert!(h.disk_bytes()[512..].iter().all(|&b| b == 0), "not written");
    let reply = h.send(&i.read48(3, 0, 2)).unwrap();
    assert_ata(&reply, DRDY, 0, 0);

    let mut jumbo = Harness::new(64, 9000);
    let reply = jumbo.send(&i.read48(4, 0, 17)).unwrap();
    assert_ata(&reply, DRDY, 0, 0);
    assert_eq!(reply.bytes.len(), 36 + 17 * 512);
    let request = i.read48(5, 0, 18);
    let reply = jumbo.send(&request).unwrap();
    assert_ata(&reply, DRDY_ERR, ABRT, 18);
    assert_eq!(reply.bytes.len(), 60);
}

/// Item 20: "Should re-read the MTU when answering config queries" — core share: Sector Count
/// follows the `Port.mtu` passed with each frame, for config replies, ATA limits and the
/// announcement.
#[test]
fn item_20_sector_count_follows_port_mtu_per_frame() {
    let mut h = Harness::new(64, 1500);
    let i = Initiator::default();
    let read7 = i.read48(2, 0, 7);
    for (mtu, sectors) in [(1500usize, 2u8), (9000, 17), (4000, 7), (1500, 2)] {
        h.port.mtu = mtu;
        let reply = h.send(&i.config(1, 0, b"")).unwrap();
        assert_eq!(reply.cfg_sector_count(), sectors, "MTU {mtu}");
        let reply = h.send(&read7).unwrap();
        let expected = if sectors >= 7 { DRDY } else { DRDY_ERR };
        assert_eq!(reply.ata_status(), expected, "7-sector read at MTU {mtu}");
        let mut tx = vec![POISON; 100];
        let len = h.target.announce(&h.port, BROADCAST_MAC, &mut tx).unwrap();
        assert_eq!(len, 60);
        assert_eq!(tx[28], sectors, "announcement at MTU {mtu}");
    }
}

/// Item 21: "Should broadcast an unsolicited config reply (R set, tag 0, CCmd 0) at startup ...
/// Use Ver = 1."
#[test]
fn item_21_startup_announcement_broadcast() {
    let mut config = Config::new(SHELF, SLOT);
    config.firmware_version = 0x4019;
    let mut target = Target::new(config, mem(8)).unwrap();
    assert_eq!(
        target.announcement_destinations().collect::<Vec<_>>(),
        vec![BROADCAST_MAC]
    );
    let mut tx = vec![POISON; 200];
    let len = target.announce(&port(), BROADCAST_MAC, &mut tx).unwrap();
    assert_eq!(len, 60);
    assert_eq!(len, target.announcement_len());
    let expected: [u8; 32] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // to everyone
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, // from the port
        0x88, 0xA2, // AoE
        0x18, 0x00, // version 1, R; no error
        0x00, 0x07, 0x03, // shelf 7, slot 3
        0x01, // Query Config
        0x00, 0x00, 0x00, 0x00, // tag 0
        0x00, 0x10, // Buffer Count 16
        0x40, 0x19, // Firmware Version
        0x02, // Sector Count at MTU 1500
        0x10, // AoE 1, CCmd 0
        0x00, 0x00, // no string
    ];
    assert_eq!(tx[..32], expected);
    assert!(tx[32..60].iter().all(|&b| b == 0), "zero padding");

    target.set_config_string(b"hello").unwrap();
    let mut tx = vec![POISON; 200];
    let len = target.announce(&port(), BROADCAST_MAC, &mut tx).unwrap();
    assert_eq!(len, 60);
    assert_eq!(tx[30..37], *b"\x00\x05hello");
    assert!(tx[37..60].iter().all(|&b| b == 0));
    assert_eq!(
        target.announce(&port(), BROADCAST_MAC, &mut [0u8; 59]),
        None
    );
}

/// Item 21: "...or unicast one to each allowed MAC when an ACL or mask is set."
#[test]
fn item_21_startup_announcement_unicast_to_mask() {
    let mut target = target_of(mem(8));
    target.mask_add(mac(1)).unwrap();
    target.mask_add(mac(2)).unwrap();
    let destinations: Vec<_> = target.announcement_destinations().collect();
    assert_eq!(destinations, vec![mac(1), mac(2)], "no broadcast");
    for destination in destinations {
        let mut tx = vec![POISON; 100];
        let len = target.announce(&port(), destination, &mut tx).unwrap();
        assert_eq!(len, 60);
        assert_eq!(tx[0..6], destination.0);
        assert_eq!(tx[6..12], TARGET_MAC.0);
        assert_eq!(tx[14], 0x18);
        assert_eq!(tx[19], 1);
        assert_eq!(tx[20..24], [0; 4]);
        assert_eq!(tx[29], 0x10);
        assert!(tx[32..60].iter().all(|&b| b == 0));
    }
}

/// Item 22: "Must not be configured with shelf 0xFFFF or 0x0FFF, or slot 0xFF."
#[test]
fn item_22_reserved_addresses_refused() {
    for shelf in [0xFFFFu16, 0x0FFF] {
        assert_eq!(
            Target::new(Config::new(shelf, 1), mem(8)).err(),
            Some(ConfigError::ReservedShelf(shelf))
        );
    }
    assert_eq!(
        Target::new(Config::new(1, 0xFF), mem(8)).err(),
        Some(ConfigError::ReservedSlot)
    );
    for (shelf, slot) in [(0xFFFEu16, 0xFEu8), (0x0FFE, 0), (0, 0)] {
        let mut target = Target::new(Config::new(shelf, slot), mem(8)).expect("usable address");
        let i = Initiator {
            shelf,
            slot,
            ..Initiator::default()
        };
        let reply = send_on(&mut target, &port(), &i.config(1, 0, b"")).unwrap();
        assert_eq!((reply.major(), reply.minor()), (shelf, slot));
    }
}

// ----- ATA (items 23–36) ----------------------------------------------------------------------

/// Item 23: "Must answer IDENTIFY (0xEC) with Sector Count 1 by returning 512 data bytes (reply =
/// 36 + 512 bytes), Status 0x40, Error 0, Sector Count 0."
#[test]
fn item_23_identify_reply_layout() {
    let mut h = Harness::new(1000, 1500);
    let request = Initiator::default().identify(0x1234);
    let reply = h.send(&request).unwrap();
    assert_header(&reply, &request, TARGET_MAC, None);
    assert_eq!(reply.bytes.len(), 36 + 512);
    assert_ata(&reply, DRDY, 0, 0);
    assert_eq!(reply.bytes[28..36], [0, 0, 0, 0xA0, 0, 0, 0, 0]);
    assert_eq!(word(reply.ata_data(), 60), 1000);
    // Every octet is written by the target: the same reply whatever the buffer held before.
    for fill in [0x00u8, 0xFF] {
        let mut tx = vec![fill; 1514];
        let len = h.target.handle(&h.port, &request.bytes, &mut tx).unwrap();
        assert_eq!(
            tx[..len],
            reply.bytes[..],
            "buffer prefilled with {fill:#04x}"
        );
    }
}

/// Item 23: Engine choice: IDENTIFY with Sector Count ≠ 1 is answered the same way (vblade
/// answers AoE Error 2, which Linux would drop).
#[test]
fn item_23_identify_with_other_sector_counts() {
    let mut h = Harness::new(1000, 1500);
    let i = Initiator::default();
    let normal = h.send(&i.identify(1)).unwrap();
    for count in [0u8, 2, 255] {
        let request = i.ata(1, 0, ata_cmd::IDENTIFY, count, 0xA0 << 24, &[]);
        let reply = h.send(&request).unwrap();
        assert_header(&reply, &request, TARGET_MAC, None);
        assert_ata(&reply, DRDY, 0, 0);
        assert_eq!(reply.ata_data(), normal.ata_data(), "count {count}");
    }
}

/// Item 24: "Must set bit 10 in IDENTIFY word 83 and/or 86 and fill words 100–103 with the
/// capacity"; words 60–61 hold the LBA28 capacity capped at 0x0FFFFFFF.
#[test]
fn item_24_identify_lba48_and_capacity() {
    let sectors = 0x1_2345_6789u64;
    let mut target = target_of(SparseDisk::new(sectors));
    let reply = send_on(&mut target, &port(), &Initiator::default().identify(1)).unwrap();
    let data = reply.ata_data();
    assert_eq!(data.len(), 512);
    assert_ne!(word(data, 83) & (1 << 10), 0, "word 83: 48-bit supported");
    assert_ne!(word(data, 86) & (1 << 10), 0, "word 86: 48-bit enabled");
    assert_eq!(word(data, 83) & 0xC000, 0x4000, "word 83 valid");
    assert_ne!(word(data, 49) & (1 << 9), 0, "word 49: LBA supported");
    let lba48 = (100..104).map(|w| word(data, w)).collect::<Vec<_>>();
    assert_eq!(lba48, [0x6789, 0x2345, 0x0001, 0x0000]);
    assert_eq!(
        (word(data, 60), word(data, 61)),
        (0xFFFF, 0x0FFF),
        "LBA28 capped"
    );
}

/// Item 24: A small disk: words 60–61 and 100–103 both hold the exact capacity.
#[test]
fn item_24_identify_small_disk_capacity() {
    let mut h = Harness::new(1000, 1500);
    let reply = h.send(&Initiator::default().identify(1)).unwrap();
    let data = reply.ata_data();
    assert_eq!((word(data, 60), word(data, 61)), (1000, 0));
    let lba48 = (100..104).map(|w| word(data, w)).collect::<Vec<_>>();
    assert_eq!(lba48, [1000, 0, 0, 0]);
    // 0x0FFFFFFF exactly is not capped further; one more is.
    for (sectors, w60, w61) in [
        (0x0FFF_FFFEu64, 0xFFFE, 0x0FFF),
        (0x0FFF_FFFF, 0xFFFF, 0x0FFF),
        (0x1000_0000, 0xFFFF, 0x0FFF),
    ] {
        let mut target = target_of(SparseDisk::new(sectors));
        let reply = send_on(&mut target, &port(), &Initiator::default().identify(1)).unwrap();
        let data = reply.ata_data();
        assert_eq!((word(data, 60), word(data, 61)), (w60, w61), "{sectors:#x}");
        assert_eq!(
            u64::from(word(data, 100)) | u64::from(word(data, 101)) << 16,
            sectors
        );
    }
}

/// Item 24: Disks beyond 48 bits are exported as 2^48 − 1 sectors, and IDENTIFY says so.
#[test]
fn item_24_identify_clamps_to_48_bits() {
    let mut target = target_of(SparseDisk::new(u64::MAX));
    assert_eq!(target.sector_count(), LBA48_MAX);
    let reply = send_on(&mut target, &port(), &Initiator::default().identify(1)).unwrap();
    let data = reply.ata_data();
    let lba48 = (100..104).map(|w| word(data, w)).collect::<Vec<_>>();
    assert_eq!(lba48, [0xFFFF, 0xFFFF, 0xFFFF, 0]);
}

/// Item 24: IDENTIFY strings are ATA byte-swapped (first character in the high octet), and word
/// 255 carries signature 0xA5 and the checksum.
#[test]
fn item_24_identify_strings_and_checksum() {
    let mut config = Config::new(SHELF, SLOT);
    config.identity = Identity::new("Model ABCDEFG", "SN-0123", "FW9");
    let mut target = Target::new(config, mem(100)).unwrap();
    let reply = send_on(&mut target, &port(), &Initiator::default().identify(1)).unwrap();
    let data = reply.ata_data();
    let ata_string = |first: usize, words: usize| -> Vec<u8> {
        (first..first + words)
            .flat_map(|w| word(data, w).to_be_bytes())
            .collect()
    };
    let padded = |text: &str, len: usize| -> Vec<u8> {
        let mut v = text.as_bytes().to_vec();
        v.resize(len, b' ');
        v
    };
    assert_eq!(ata_string(27, 20), padded("Model ABCDEFG", 40), "model");
    assert_eq!(ata_string(10, 10), padded("SN-0123", 20), "serial");
    assert_eq!(ata_string(23, 4), padded("FW9", 8), "firmware");
    assert_eq!(&data[54..58], b"oMed", "raw octets are swapped");
    assert_eq!(data[510], 0xA5, "integrity signature");
    let sum = data.iter().fold(0u8, |a, &b| a.wrapping_add(b));
    assert_eq!(sum, 0, "checksum makes the 512 octets sum to 0");

    // The default serial is "shelf.slot".
    let mut h = Harness::new(8, 1500);
    let reply = h.send(&Initiator::default().identify(1)).unwrap();
    assert_eq!(&reply.ata_data()[20..24], b".7 3");
}

/// Item 25: "Must implement all four read/write codes" (0x20, 0x24, 0x30, 0x34).
#[test]
fn item_25_all_four_opcodes_round_trip() {
    let mut h = Harness::new(64, 1500);
    let i = Initiator::default();
    let a = pattern(10, 2, 1);
    let reply = h.send(&i.write28(1, 10, &a)).unwrap();
    assert_ata(&reply, DRDY, 0, 0);
    assert_eq!(h.disk_bytes()[10 * 512..12 * 512], a[..]);
    assert_eq!(h.send(&i.read28(2, 10, 2)).unwrap().ata_data(), &a[..]);
    assert_eq!(h.send(&i.read48(3, 10, 2)).unwrap().ata_data(), &a[..]);
    let b = pattern(20, 2, 2);
    let reply = h.send(&i.write48(4, 20, &b)).unwrap();
    assert_ata(&reply, DRDY, 0, 0);
    assert_eq!(h.disk_bytes()[20 * 512..22 * 512], b[..]);
    assert_eq!(h.send(&i.read28(5, 20, 2)).unwrap().ata_data(), &b[..]);
    assert!(h.disk_bytes()[..10 * 512].iter().all(|&x| x == 0));
    assert!(h.disk_bytes()[12 * 512..20 * 512].iter().all(|&x| x == 0));
    assert!(h.disk_bytes()[22 * 512..].iter().all(|&x| x == 0));
}

/// Item 25: "The target must mask LBA28 to 28 bits": the top nibble of lba3 (0xE0 device bits)
/// and lba4/lba5 are ignored; the low nibble of lba3 is part of the address.
#[test]
fn item_25_lba28_masks_device_bits() {
    let mut h = Harness::new(64, 1500);
    h.fill_sector(4, 0x11);
    h.fill_sector(6, 0x22);
    let i = Initiator::default();
    let data = pattern(5, 1, 7);
    let lba = lba_of([5, 0, 0, 0xE0, 0xAB, 0xCD]);
    let reply = h
        .send(&i.ata(1, aflags::WRITE, ata_cmd::WRITE, 1, lba, &data))
        .unwrap();
    assert_ata(&reply, DRDY, 0, 0);
    assert_eq!(sector(&h, 5), &data[..]);
    assert!(sector(&h, 4).iter().all(|&b| b == 0x11));
    assert!(sector(&h, 6).iter().all(|&b| b == 0x22));
    for top in [0x00u8, 0x40, 0xA0, 0xE0, 0xF0] {
        let lba = lba_of([5, 0, 0, top, 0xFF, 0xFF]);
        let reply = h.send(&i.ata(2, 0, ata_cmd::READ, 1, lba, &[])).unwrap();
        assert_eq!(reply.ata_data(), &data[..], "lba3 top nibble {top:#x}");
    }
    // The low nibble of lba3 counts: sector 0x0100_0005 is beyond this disk.
    let lba = lba_of([5, 0, 0, 0xE1, 0, 0]);
    let reply = h.send(&i.ata(3, 0, ata_cmd::READ, 1, lba, &[])).unwrap();
    assert_ata(&reply, DRDY_ERR, IDNF, 1);
}

/// Item 25: "...and take LBA48 from the six bytes."
#[test]
fn item_25_lba48_uses_six_bytes() {
    let mut target = target_of(SparseDisk::new(1 << 41));
    let i = Initiator::default();
    let lba = 0x0123_4567_89ABu64;
    let data = pattern(lba, 2, 3);
    let reply = send_on(&mut target, &port(), &i.write48(1, lba, &data)).unwrap();
    assert_ata(&reply, DRDY, 0, 0);
    let keys: Vec<u64> = target.disk().written.keys().copied().collect();
    assert_eq!(
        keys,
        vec![lba, lba + 1],
        "exactly the two addressed sectors"
    );
    let reply = send_on(&mut target, &port(), &i.read48(2, lba, 2)).unwrap();
    assert_eq!(reply.ata_data(), &data[..]);
    // The extended command does not mask lba3: 0xE0 there is part of the address.
    let mut h = Harness::new(64, 1500);
    let reply = h.send(&i.read48(3, 0xE0 << 24, 1)).unwrap();
    assert_ata(&reply, DRDY_ERR, IDNF, 1);
}

/// Item 26: "Must answer a READ with exactly Sector Count × 512 data bytes after the 36-byte
/// header, Status 0x40, Error 0, Sector Count 0."
#[test]
fn item_26_read_returns_exact_data() {
    let mut h = Harness::new(64, 1500);
    let stored = pattern(0, 64, 7);
    h.target.disk_mut().as_bytes_mut().copy_from_slice(&stored);
    let i = Initiator::default();
    for (lba, count) in [(9u64, 2u8), (0, 1), (63, 1), (62, 2)] {
        let request = i.read48(u32::from(count), lba, count);
        let reply = h.send(&request).unwrap();
        assert_header(&reply, &request, TARGET_MAC, None);
        assert_ata(&reply, DRDY, 0, 0);
        let start = usize::try_from(lba).unwrap() * 512;
        let len = usize::from(count) * 512;
        assert_eq!(reply.bytes.len(), 36 + len);
        assert_eq!(reply.ata_data(), &stored[start..start + len], "LBA {lba}");
    }
}

/// Item 27: "Must accept a WRITE only if the payload is ≥ Sector Count × 512 bytes, and reply
/// with no data: a 60-byte frame, Status 0x40."
#[test]
fn item_27_write_stores_and_replies_60() {
    let mut h = Harness::new(64, 1500);
    h.fill_sector(3, 0x11);
    h.fill_sector(6, 0x22);
    let i = Initiator::default();
    let data = pattern(4, 2, 5);
    let request = i.write48(0xAB, 4, &data);
    let reply = h.send(&request).unwrap();
    assert_ata_only("write", &reply, &request, DRDY, 0, 0);
    assert_eq!(h.disk_bytes()[4 * 512..6 * 512], data[..]);
    assert!(sector(&h, 3).iter().all(|&b| b == 0x11), "before untouched");
    assert!(sector(&h, 6).iter().all(|&b| b == 0x22), "after untouched");
}

/// Item 27: A payload shorter than Sector Count × 512 gets ABRT and writes nothing.
#[test]
fn item_27_short_write_payload_aborted() {
    let mut h = Harness::new(64, 1500);
    let stored = pattern(0, 64, 1);
    h.target.disk_mut().as_bytes_mut().copy_from_slice(&stored);
    let i = Initiator::default();
    let data = pattern(4, 2, 9);
    for request in [
        i.ata(
            1,
            aflags::EXT | aflags::WRITE,
            ata_cmd::WRITE_EXT,
            2,
            4,
            &data[..1023],
        ),
        i.ata(
            2,
            aflags::EXT | aflags::WRITE,
            ata_cmd::WRITE_EXT,
            2,
            4,
            &data[..512],
        ),
        i.ata(
            3,
            aflags::EXT | aflags::WRITE,
            ata_cmd::WRITE_EXT,
            1,
            4,
            &[],
        ),
        i.ata(4, aflags::WRITE, ata_cmd::WRITE, 1, 4, &data[..511]),
    ] {
        let reply = h.send(&request).unwrap();
        let count = request.bytes[26];
        assert_ata_only("short write", &reply, &request, DRDY_ERR, ABRT, count);
    }
    assert_eq!(h.disk_bytes(), &stored[..], "disk untouched");
}

/// Item 27: Engine choice: the opcode, not the AFlags W bit, decides the direction (vblade sizes
/// the reply from W). A WRITE EXT without W still writes; a READ EXT with W still reads.
#[test]
fn item_27_opcode_decides_direction() {
    let mut h = Harness::new(64, 1500);
    let i = Initiator::default();
    let data = pattern(8, 1, 4);
    let request = i.ata(1, aflags::EXT, ata_cmd::WRITE_EXT, 1, 8, &data);
    let reply = h.send(&request).unwrap();
    assert_ata_only("write without W", &reply, &request, DRDY, 0, 0);
    assert_eq!(sector(&h, 8), &data[..]);
    let request = i.ata(
        2,
        aflags::EXT | aflags::WRITE,
        ata_cmd::READ_EXT,
        1,
        8,
        &[0u8; 512],
    );
    let reply = h.send(&request).unwrap();
    assert_ata(&reply, DRDY, 0, 0);
    assert_eq!(reply.ata_data(), &data[..], "read with W still reads");
    assert_eq!(sector(&h, 8), &data[..], "and writes nothing");
}

/// Item 28: "Must answer LBA + count > capacity with Status 0x41 (DRDY|ERR) and Error 0x10
/// (IDNF)."
#[test]
fn item_28_out_of_range_idnf() {
    let mut h = Harness::new(64, 1500);
    let stored = pattern(0, 64, 6);
    h.target.disk_mut().as_bytes_mut().copy_from_slice(&stored);
    let i = Initiator::default();
    for request in [
        i.read48(1, 63, 2),
        i.read48(2, 64, 1),
        i.write48(3, 63, &pattern(63, 2, 1)),
        i.write48(4, 64, &pattern(64, 1, 1)),
        i.read48(5, LBA48_MAX, 1),
        // lba + count wraps to 1 in 48-bit arithmetic: must still be out of range.
        i.read48(6, LBA48_MAX, 2),
        i.write48(7, LBA48_MAX, &pattern(0, 2, 1)),
        i.read48(8, u64::from(u32::MAX), 1),
        i.read28(9, 0x0FFF_FFFF, 1),
        i.write28(10, 0x0FFF_FFFF, &pattern(0, 2, 1)),
        i.read28(11, 64, 1),
    ] {
        let reply = h.send(&request).unwrap();
        let count = request.bytes[26];
        assert_ata_only("out of range", &reply, &request, DRDY_ERR, IDNF, count);
        assert_eq!(reply.bytes[28..34], request.bytes[28..34], "LBA echoed");
    }
    assert_eq!(h.disk_bytes(), &stored[..], "disk untouched");
    assert_ata(&h.send(&i.read48(12, 62, 2)).unwrap(), DRDY, 0, 0);
}

/// Item 28: The last sectors of a full 48-bit disk (2^48 − 1 sectors) are reachable; one past is
/// IDNF, without overflow.
#[test]
fn item_28_lba48_boundary_on_a_full_48_bit_disk() {
    let mut target = target_of(SparseDisk::new(u64::MAX));
    let i = Initiator::default();
    let last = LBA48_MAX - 1;
    let data = pattern(last, 1, 8);
    let reply = send_on(&mut target, &port(), &i.write48(1, last, &data)).unwrap();
    assert_ata(&reply, DRDY, 0, 0);
    let reply = send_on(&mut target, &port(), &i.read48(2, last, 1)).unwrap();
    assert_eq!(reply.ata_data(), &data[..]);
    for request in [
        i.read48(3, last, 2),
        i.read48(4, LBA48_MAX, 1),
        i.write48(5, LBA48_MAX, &pattern(0, 1, 1)),
        i.write48(6, last, &pattern(0, 2, 1)),
    ] {
        let reply = send_on(&mut target, &port(), &request).unwrap();
        assert_ata(&reply, DRDY_ERR, IDNF, request.bytes[26]);
        assert!(!reply.is_error());
    }
    let keys: Vec<u64> = target.disk().written.keys().copied().collect();
    assert_eq!(keys, vec![last]);
}

/// Item 29: "Must answer a backing-store failure with Status ERR and Error ABRT (0x04)." Engine
/// choice: ABRT for every disk error kind (not UNC).
#[test]
fn item_29_read_failure_abrt() {
    for kind in [ErrorKind::Media, ErrorKind::NotReady, ErrorKind::Other] {
        let plan = FaultPlan {
            fail_after: Some(0),
            kind,
            ..FaultPlan::none()
        };
        let mut target = target_of(FaultyDisk::new(mem(64), plan));
        let i = Initiator::default();
        let request = i.read48(1, 2, 2);
        let reply = send_on(&mut target, &port(), &request).unwrap();
        assert_ata_only("failed read", &reply, &request, DRDY_ERR, ABRT, 2);
        assert_eq!(reply.bytes[28..34], request.bytes[28..34]);
        // Not sticky: the next read works and carries the data.
        let reply = send_on(&mut target, &port(), &i.read48(2, 2, 2)).unwrap();
        assert_ata(&reply, DRDY, 0, 0);
        assert_eq!(reply.bytes.len(), 36 + 1024);
    }
    // Bad sectors fail reads that touch them, and only those.
    let plan = FaultPlan {
        bad_sectors: Some((10, 11)),
        ..FaultPlan::none()
    };
    let mut target = target_of(FaultyDisk::new(mem(64), plan));
    let i = Initiator::default();
    let request = i.read48(1, 9, 2);
    let reply = send_on(&mut target, &port(), &request).unwrap();
    assert_ata_only("bad sector", &reply, &request, DRDY_ERR, ABRT, 2);
    let reply = send_on(&mut target, &port(), &i.read48(2, 11, 2)).unwrap();
    assert_ata(&reply, DRDY, 0, 0);
}

/// Item 29: A failed write is ABRT, and is never acknowledged as done.
#[test]
fn item_29_write_failure_abrt() {
    let plan = FaultPlan {
        fail_after: Some(0),
        ..FaultPlan::none()
    };
    let mut target = target_of(FaultyDisk::new(mem(64), plan));
    let i = Initiator::default();
    let request = i.write48(1, 4, &pattern(4, 2, 1));
    let reply = send_on(&mut target, &port(), &request).unwrap();
    assert_ata_only("failed write", &reply, &request, DRDY_ERR, ABRT, 2);
    assert!(target.disk().inner().as_bytes().iter().all(|&b| b == 0));
    assert_eq!(target.stats().sectors_written, 0);
    assert_eq!(target.stats().ata_errors, 1);
}

/// Item 30: "Must answer an unknown ATA opcode with Status 0x41 and Error 0x04, not with an AoE
/// error."
#[test]
fn item_30_unknown_ata_opcodes_abrt() {
    let mut h = Harness::new(64, 1500);
    let i = Initiator::default();
    for opcode in [
        0x00u8, 0x08, 0x25, 0x35, 0x40, 0x41, 0x90, 0xC8, 0xCA, 0xE0, 0xEF, 0xF8, 0xFF,
    ] {
        let request = i.ata(u32::from(opcode), 0, opcode, 1, 0, &pattern(0, 1, 1));
        let reply = h.send(&request).unwrap();
        assert_ata_only("unknown opcode", &reply, &request, DRDY_ERR, ABRT, 1);
    }
    assert!(h.disk_bytes().iter().all(|&b| b == 0), "nothing written");
}

/// Item 30: SMART (0xB0, used by `aoeping -S`): RETURN STATUS (feature 0xDA, lba1 0x4F, lba2
/// 0xC2) answers healthy (Status 0x40, signature echoed); other sub-commands or a missing
/// signature are ABRT. IDENTIFY advertises SMART (word 82 bit 0), as aoeping requires.
#[test]
fn item_30_smart_return_status() {
    let mut h = Harness::new(64, 1500);
    let i = Initiator::default();
    let signed = lba_of([0, 0x4F, 0xC2, 0, 0, 0]);
    let request = i.ata_with_feature(1, 0, 0xDA, ata_cmd::SMART, 0, signed, &[]);
    let reply = h.send(&request).unwrap();
    assert_ata_only("SMART RETURN STATUS", &reply, &request, DRDY, 0, 0);
    assert_eq!(reply.bytes[29..31], [0x4F, 0xC2], "healthy signature");
    let request = i.ata_with_feature(2, 0, 0xD8, ata_cmd::SMART, 0, signed, &[]);
    let reply = h.send(&request).unwrap();
    assert_ata_only("SMART ENABLE", &reply, &request, DRDY, 0, 0);
    for (feature, lba) in [
        (0xDAu8, 0u64),
        (0xD0, signed),
        (0xD5, signed),
        (0x00, signed),
    ] {
        let request = i.ata_with_feature(3, 0, feature, ata_cmd::SMART, 1, lba, &[]);
        let reply = h.send(&request).unwrap();
        assert_ata_only("SMART other", &reply, &request, DRDY_ERR, ABRT, 1);
    }
    let reply = h.send(&i.identify(4)).unwrap();
    assert_ne!(word(reply.ata_data(), 82) & 1, 0, "SMART supported");
    assert_ne!(word(reply.ata_data(), 85) & 1, 0, "SMART enabled");
}

/// Item 31: "Should reject Sector Count above the advertised maximum ... Count 0 ..." Engine
/// choice: both get ATA ABRT (never AoE Error 2), and nothing is transferred.
#[test]
fn item_31_sector_count_zero_or_too_many_aborted() {
    let mut h = Harness::new(64, 1500);
    let stored = pattern(0, 64, 3);
    h.target.disk_mut().as_bytes_mut().copy_from_slice(&stored);
    let i = Initiator::default();
    let requests = [
        i.read48(1, 0, 0),
        i.read28(2, 0, 0),
        i.ata(
            3,
            aflags::EXT | aflags::WRITE,
            ata_cmd::WRITE_EXT,
            0,
            0,
            &[9u8; 512],
        ),
        i.ata(4, aflags::WRITE, ata_cmd::WRITE, 0, 0, &[9u8; 512]),
        i.read48(5, 0, 3),
        i.read48(6, 0, 255),
        i.write48(7, 0, &[9u8; 3 * 512]),
    ];
    for request in requests {
        let reply = h.send(&request).unwrap();
        let count = request.bytes[26];
        assert_ata_only("bad count", &reply, &request, DRDY_ERR, ABRT, count);
    }
    assert_eq!(h.disk_bytes(), &stored[..]);
}

/// Item 32: "Should answer FLUSH CACHE (0xE7) and FLUSH CACHE EXT (0xEA) with Status 0x40 after
/// fsync" — the engine really calls `Disk::flush`.
#[test]
fn item_32_flush_cache_calls_disk_flush() {
    let mut target = target_of(FaultyDisk::new(mem(64), FaultPlan::none()));
    let i = Initiator::default();
    assert_eq!(target.disk().stats().flushes_ok, 0);
    let request = i.ata(1, 0, ata_cmd::FLUSH, 0, 0, &[]);
    let reply = send_on(&mut target, &port(), &request).unwrap();
    assert_ata_only("FLUSH CACHE", &reply, &request, DRDY, 0, 0);
    assert_eq!(target.disk().stats().flushes_ok, 1);
    let request = i.ata(2, aflags::EXT, ata_cmd::FLUSH_EXT, 0, 0, &[]);
    let reply = send_on(&mut target, &port(), &request).unwrap();
    assert_ata_only("FLUSH CACHE EXT", &reply, &request, DRDY, 0, 0);
    assert_eq!(target.disk().stats().flushes_ok, 2);
    assert_eq!(target.stats().flushes, 2);
    // A read or write is not a flush.
    let _ = send_on(&mut target, &port(), &i.write48(3, 0, &pattern(0, 1, 1))).unwrap();
    assert_eq!(target.disk().stats().flushes, 2);
}

/// Item 32: A failing flush is reported: Status 0x41, Error ABRT, no AoE error.
#[test]
fn item_32_failing_flush_abrt() {
    let plan = FaultPlan {
        fail_after: Some(0),
        sticky: true,
        ..FaultPlan::none()
    };
    let mut target = target_of(FaultyDisk::new(mem(64), plan));
    let i = Initiator::default();
    for request in [
        i.ata(1, 0, ata_cmd::FLUSH, 0, 0, &[]),
        i.ata(2, aflags::EXT, ata_cmd::FLUSH_EXT, 0, 0, &[]),
    ] {
        let reply = send_on(&mut target, &port(), &request).unwrap();
        assert_ata_only("failed flush", &reply, &request, DRDY_ERR, ABRT, 0);
    }
    assert_eq!(target.disk().stats().flushes, 2, "flush was attempted");
    assert_eq!(target.disk().stats().flushes_ok, 0);
    assert_eq!(target.stats().flushes, 0);
}

/// Item 33: "Should answer CHECK POWER MODE (0xE5) with Status 0x40, Error 0, Sector Count 0xFF."
#[test]
fn item_33_check_power_mode() {
    let mut h = Harness::new(64, 1500);
    let i = Initiator::default();
    for count in [0u8, 1, 0x80] {
        let request = i.ata(1, 0, ata_cmd::CHECK_POWER_MODE, count, 0, &[]);
        let reply = h.send(&request).unwrap();
        assert_ata_only("CHECK POWER MODE", &reply, &request, DRDY, 0, 0xFF);
    }
}

/// Item 34: "Should fail writes to a read-only export with Status 0x41 and Error ABRT."
#[test]
fn item_34_read_only_export_refuses_writes() {
    let stored = pattern(0, 64, 4);
    let mut target = target_of(ReadOnly(MemDisk::new(stored.clone())));
    let i = Initiator::default();
    for request in [
        i.write48(1, 0, &pattern(0, 2, 9)),
        i.write28(2, 10, &pattern(10, 1, 9)),
    ] {
        let reply = send_on(&mut target, &port(), &request).unwrap();
        let count = request.bytes[26];
        assert_ata_only("read-only write", &reply, &request, DRDY_ERR, ABRT, count);
    }
    assert_eq!(target.disk().0.as_bytes(), &stored[..], "disk untouched");
    let reply = send_on(&mut target, &port(), &i.read48(3, 0, 2)).unwrap();
    assert_ata(&reply, DRDY, 0, 0);
    assert_eq!(reply.ata_data(), &stored[..1024], "reads still work");
    let reply = send_on(
        &mut target,
        &port(),
        &i.ata(4, 0, ata_cmd::FLUSH, 0, 0, &[]),
    )
    .unwrap();
    assert_ata(&reply, DRDY, 0, 0);
}

/// Item 35: "Should leave every ATA-header byte except Err, Sector Count and Cmd/Status as
/// sent" — AFlags and LBA echoed; the two reserved octets are zero in replies.
#[test]
fn item_35_registers_echoed_reserved_zero() {
    let mut h = Harness::new(64, 1500);
    let i = Initiator::default();
    let d = 0x10u8; // AFlags D
    let a = 0x02u8; // AFlags A
    let requests = [
        i.ata(1, aflags::EXT | d, ata_cmd::READ_EXT, 1, 5, &[]),
        i.ata(
            2,
            aflags::EXT | aflags::WRITE | a,
            ata_cmd::WRITE_EXT,
            1,
            6,
            &[3u8; 512],
        ),
        i.ata(3, 0, ata_cmd::READ, 1, lba_of([7, 0, 0, 0xE0, 0, 0]), &[]),
        i.ata(4, aflags::EXT, ata_cmd::READ_EXT, 1, 0x0102_0304_0506, &[]),
        i.ata(5, 0, 0x00, 1, lba_of([1, 2, 3, 4, 5, 6]), &[]),
        i.ata(
            6,
            0,
            ata_cmd::CHECK_POWER_MODE,
            0,
            lba_of([9, 8, 7, 6, 5, 4]),
            &[],
        ),
        i.ata(
            7,
            aflags::EXT,
            ata_cmd::FLUSH_EXT,
            0,
            lba_of([1, 1, 1, 1, 1, 1]),
            &[],
        ),
        i.identify(8),
        i.read48(9, 0, 0),
    ];
    for request in requests {
        let request = request.set(34, 0xFF).set(35, 0x5A);
        let reply = h.send(&request).unwrap();
        assert_eq!(reply.arg(0), request.bytes[24], "AFlags echoed");
        assert_eq!(reply.bytes[28..34], request.bytes[28..34], "LBA echoed");
        assert_eq!(reply.bytes[34..36], [0, 0], "reserved octets zero");
    }
}

/// Item 36: "Should queue at least Buffer Count frames without dropping" — core share: the
/// advertised Buffer Count is the configured one (queueing is the platform's), and below 2 is
/// refused.
#[test]
fn item_36_buffer_count_as_configured() {
    for count in [2u16, 16, 64, 1000, u16::MAX] {
        let mut config = Config::new(SHELF, SLOT);
        config.buffer_count = count;
        let mut target = Target::new(config, mem(8)).unwrap();
        let reply = send_on(
            &mut target,
            &port(),
            &Initiator::default().config(1, 0, b""),
        )
        .unwrap();
        assert_eq!(reply.cfg_buffer_count(), count);
        let mut tx = [0u8; 60];
        target.announce(&port(), BROADCAST_MAC, &mut tx).unwrap();
        assert_eq!(tx[24..26], count.to_be_bytes(), "announcement too");
    }
    let mut config = Config::new(SHELF, SLOT);
    config.buffer_count = 1;
    assert!(Target::new(config, mem(8)).is_err());
}

// ----- MAC mask and reserve/release (items 37–40) ---------------------------------------------

/// Item 37: "Should, while the mask list is non-empty, silently ignore every command from a source
/// MAC not on it."
#[test]
fn item_37_mask_silences_other_macs() {
    let mut h = Harness::new(64, 1500);
    h.target.mask_add(OTHER_MAC).unwrap();
    let outsider = Initiator::default();
    let broadcast = Initiator {
        dst: BROADCAST_MAC,
        shelf: 0xFFFF,
        slot: 0xFF,
        ..outsider
    };
    for request in [
        outsider.config(1, 0, b""),
        broadcast.config(2, 0, b""),
        outsider.identify(3),
        outsider.read48(4, 0, 1),
        outsider.write48(5, 0, &pattern(0, 1, 1)),
        outsider.config(6, 4, b"mine"),
        outsider.mask(7, 1, &[(1, INITIATOR_MAC)]),
        outsider.mask(8, 0, &[]),
        outsider.reserve(9, 2, &[INITIATOR_MAC]),
        outsider.request(9, 10, &[]),
        outsider.config(11, 0, b"").set(14, 0x20),
    ] {
        assert_eq!(h.send(&request), None, "command {}", request.bytes[19]);
    }
    assert!(h.disk_bytes().iter().all(|&b| b == 0));
    assert!(h.target.config_string().is_empty());
    assert_eq!(h.target.mask(), &[OTHER_MAC]);
    assert!(h.target.reservations().is_empty());

    // A MAC on the list is served; once it empties the list, everyone is.
    let member = from(OTHER_MAC);
    assert!(h.send(&member.identify(12)).is_some());
    let reply = h.send(&member.mask(13, 1, &[(2, OTHER_MAC)])).unwrap();
    assert_eq!((reply.arg(2), reply.arg(3)), (0, 0));
    assert!(h.send(&outsider.identify(14)).is_some());
}

/// Item 38: "MCmd 0 returns the list as directives with DCmd 0. MCmd 1 applies directives in order
/// — 0 nop, 1 add, 2 delete."
#[test]
fn item_38_mask_read_and_edit() {
    let mut h = Harness::new(64, 1500);
    let i = Initiator::default();
    let (a, b, c) = (mac(0xA), mac(0xB), mac(0xC));
    let request = i.mask(1, 1, &[(1, INITIATOR_MAC), (1, a), (0, c), (1, b), (1, a)]);
    let reply = h.send(&request).unwrap();
    assert_header(&reply, &request, TARGET_MAC, None);
    assert_eq!(
        reply.arg_bytes()[..4],
        [0, 1, 0, 3],
        "MCmd 1, no error, 3 entries"
    );
    for (k, m) in [INITIATOR_MAC, a, b].into_iter().enumerate() {
        assert_eq!(directive(&reply, k), (0, 0, m), "entry {k} as DCmd 0");
    }
    assert_padded("mask edit", &reply, 28 + 24);
    assert_eq!(h.target.mask(), &[INITIATOR_MAC, a, b], "nop added nothing");

    let request = i.mask(2, 0, &[]);
    let reply = h.send(&request).unwrap();
    assert_header(&reply, &request, TARGET_MAC, None);
    assert_eq!(reply.arg_bytes()[..4], [0, 0, 0, 3]);
    for (k, m) in [INITIATOR_MAC, a, b].into_iter().enumerate() {
        assert_eq!(directive(&reply, k), (0, 0, m));
    }

    let reply = h.send(&i.mask(3, 1, &[(2, a), (2, c), (0, a)])).unwrap();
    assert_eq!(
        reply.arg_bytes()[..4],
        [0, 1, 0, 2],
        "delete a; c was absent"
    );
    assert_eq!(directive(&reply, 0), (0, 0, INITIATOR_MAC));
    assert_eq!(directive(&reply, 1), (0, 0, b));
    assert_eq!(h.target.mask(), &[INITIATOR_MAC, b]);
}

/// Item 38: "...any other code MError 2 — and stops at the first error with Dir Count = index of
/// the failing directive." Earlier directives stay applied.
#[test]
fn item_38_mask_bad_directive() {
    let mut h = Harness::new(64, 1500);
    let i = Initiator::default();
    let (a, b, c) = (mac(0xA), mac(0xB), mac(0xC));
    let request = i
        .mask(1, 1, &[(1, INITIATOR_MAC), (1, a), (3, b), (1, c)])
        .set(28, 0x77); // a non-zero reserved octet in the first directive
    let reply = h.send(&request).unwrap();
    assert_header(&reply, &request, TARGET_MAC, None);
    assert_eq!(
        reply.arg_bytes()[..4],
        [0, 1, 2, 2],
        "MError 2, Dir Count 2"
    );
    assert_eq!(
        directive(&reply, 0),
        (0, 1, INITIATOR_MAC),
        "applied, echoed"
    );
    assert_eq!(directive(&reply, 1), (0, 1, a));
    assert_padded("bad directive", &reply, 28 + 16);
    assert_eq!(h.target.mask(), &[INITIATOR_MAC, a], "b and c not applied");

    for dcmd in [3u8, 4, 0x80, 0xFF] {
        let reply = h.send(&i.mask(2, 1, &[(dcmd, c)])).unwrap();
        assert_eq!(reply.arg_bytes()[..4], [0, 1, 2, 0], "DCmd {dcmd}");
        assert_padded("bad directive", &reply, 28);
    }
    assert_eq!(h.target.mask(), &[INITIATOR_MAC, a]);
}

/// Item 38: "1 add (MError 3 when full; vblade holds 32)."
#[test]
fn item_38_mask_list_full() {
    let mut h = Harness::new(64, 1500);
    let i = Initiator::default();
    h.target.mask_add(INITIATOR_MAC).unwrap();
    for k in 0..30 {
        h.target.mask_add(mac(k)).unwrap();
    }
    let (x, y, z) = (mac(0xF0), mac(0xF1), mac(0xF2));
    let reply = h.send(&i.mask(1, 1, &[(1, x), (1, y), (1, z)])).unwrap();
    assert_eq!(
        reply.arg_bytes()[..4],
        [0, 1, 3, 1],
        "MError 3 at directive 1"
    );
    assert_eq!(directive(&reply, 0), (0, 1, x));
    assert_padded("list full", &reply, 36);
    assert_eq!(h.target.mask().len(), MASK_CAPACITY);
    assert_eq!(MASK_CAPACITY, 32);
    assert!(h.target.mask().contains(&x));
    assert!(!h.target.mask().contains(&y) && !h.target.mask().contains(&z));
    // Adding a MAC already there is not an error even when full.
    let reply = h.send(&i.mask(2, 1, &[(1, x)])).unwrap();
    assert_eq!(reply.arg_bytes()[..4], [0, 1, 0, 32]);
    assert_eq!(reply.bytes.len(), 28 + 32 * 8);

    // 33 adds in one request: 32 applied, Dir Count 32.
    let mut fresh = Harness::new(64, 1500);
    let macs: Vec<_> = std::iter::once(INITIATOR_MAC)
        .chain((0..32).map(mac))
        .collect();
    let directives: Vec<_> = macs.iter().map(|&m| (1u8, m)).collect();
    let reply = fresh.send(&i.mask(3, 1, &directives)).unwrap();
    assert_eq!(reply.arg_bytes()[..4], [0, 1, 3, 32]);
    assert_eq!(reply.bytes.len(), 28 + 32 * 8);
    assert_eq!(directive(&reply, 31), (0, 1, macs[31]));
    assert_eq!(fresh.target.mask(), &macs[..32]);
}

/// Item 38: "An unknown MCmd → AoE Error 2"; so is a Dir Count beyond the directives present.
#[test]
fn item_38_mask_unknown_mcmd_and_short_directives() {
    let mut h = Harness::new(64, 1500);
    let i = Initiator::default();
    for mcmd in [2u8, 3, 0x80, 0xFF] {
        let request = i.mask(1, mcmd, &[(1, INITIATOR_MAC)]);
        let reply = h.send(&request).unwrap();
        assert_aoe_error("unknown MCmd", &reply, &request, 2);
    }
    let request = i.mask(2, 1, &[(1, INITIATOR_MAC)]).set(27, 3);
    let reply = h.send(&request).unwrap();
    assert_aoe_error("Dir Count beyond frame", &reply, &request, 2);
    assert!(h.target.mask().is_empty(), "nothing applied");
}

/// Item 39: "RCmd 0 reads; RCmd 1 sets only if the list is empty or the sender is on it ...;
/// RCmd 2 force-sets; every reply carries the current list." An empty list releases.
#[test]
fn item_39_reserve_set_read_force_release() {
    let mut h = Harness::new(64, 1500);
    let i = Initiator::default();
    let other = from(OTHER_MAC);
    let a = mac(0xA);

    let request = i.reserve(1, 0, &[]);
    let reply = h.send(&request).unwrap();
    assert_header(&reply, &request, TARGET_MAC, None);
    assert_eq!((reply.arg(0), reply.arg(1)), (0, 0));
    assert_padded("empty list", &reply, 26);

    let request = i.reserve(2, 1, &[INITIATOR_MAC, a]);
    let reply = h.send(&request).unwrap();
    assert_header(&reply, &request, TARGET_MAC, None);
    assert_eq!((reply.arg(0), reply.arg(1)), (1, 2));
    assert_eq!(
        (reserved_mac(&reply, 0), reserved_mac(&reply, 1)),
        (INITIATOR_MAC, a)
    );
    assert_padded("set", &reply, 38);
    assert_eq!(h.target.reservations(), &[INITIATOR_MAC, a]);

    let reply = h.send(&other.reserve(3, 0, &[])).unwrap();
    assert!(!reply.is_error(), "anyone may read");
    assert_eq!((reply.arg(0), reply.arg(1)), (0, 2));
    assert_eq!(reserved_mac(&reply, 1), a);

    let reply = h.send(&i.reserve(4, 1, &[INITIATOR_MAC])).unwrap();
    assert!(!reply.is_error(), "a member may set");
    assert_eq!(h.target.reservations(), &[INITIATOR_MAC]);

    let request = other.reserve(5, 2, &[OTHER_MAC]);
    let reply = h.send(&request).unwrap();
    assert_header(&reply, &request, TARGET_MAC, None);
    assert_eq!((reply.arg(0), reply.arg(1)), (2, 1));
    assert_eq!(reserved_mac(&reply, 0), OTHER_MAC);
    assert_eq!(h.target.reservations(), &[OTHER_MAC], "force set");

    let reply = h.send(&other.reserve(6, 1, &[])).unwrap();
    assert!(!reply.is_error());
    assert_eq!((reply.arg(0), reply.arg(1)), (1, 0));
    assert_padded("release", &reply, 26);
    assert!(h.target.reservations().is_empty(), "released");
}

/// Item 39: "...else AoE Error 6" — with the current list in the reply, which is unchanged.
#[test]
fn item_39_reserve_set_refused_error_6() {
    let mut h = Harness::new(64, 1500);
    let i = Initiator::default();
    assert!(
        !h.send(&i.reserve(1, 1, &[INITIATOR_MAC]))
            .unwrap()
            .is_error()
    );
    for macs in [&[OTHER_MAC][..], &[], &[OTHER_MAC, INITIATOR_MAC]] {
        let request = from(OTHER_MAC).reserve(2, 1, macs);
        let reply = h.send(&request).unwrap();
        assert_header(&reply, &request, TARGET_MAC, Some(6));
        assert_eq!(
            (reply.arg(0), reply.arg(1)),
            (1, 1),
            "RCmd echoed, the list"
        );
        assert_eq!(reserved_mac(&reply, 0), INITIATOR_MAC);
        assert_padded("error 6", &reply, 32);
        assert_eq!(h.target.reservations(), &[INITIATOR_MAC], "unchanged");
    }
}

/// Pinned state (`Config::pinned`, the administrator's choice, not the protocol's): requests
/// that would change a pinned part are refused with the protocol's "not now" answers and change
/// nothing; requests that change nothing are answered as usual; unpinned parts still change.
#[test]
fn pinned_state_refuses_changes_and_answers_reads() {
    let mut config = Config::new(SHELF, SLOT);
    config.max_frame_len = 9014;
    config.pinned.config_string = true;
    config.pinned.mask = true;
    config.pinned.reservations = true;
    let mut h = Harness::with_config(config, 64, 1500);
    h.target.set_config_string(b"rack 4").unwrap();
    h.target.mask_add(INITIATOR_MAC).unwrap();
    h.target.set_reservations(&[INITIATOR_MAC]).unwrap();
    let generation = h.target.generation();
    let i = Initiator::default();

    // Config: Set and Force Set of another string get error 4; the same string is fine.
    for ccmd in [3, 4] {
        let request = i.config(1, ccmd, b"other");
        let reply = h.send(&request).unwrap();
        assert_header(&reply, &request, TARGET_MAC, Some(4));
        assert_eq!(
            reply.cfg_string(),
            b"rack 4",
            "the reply shows the kept string"
        );
    }
    let reply = h.send(&i.config(2, 4, b"rack 4")).unwrap();
    assert!(
        !reply.is_error(),
        "setting the pinned string itself changes nothing"
    );
    assert_eq!(
        h.send(&i.config(3, 0, b"")).unwrap().cfg_string(),
        b"rack 4"
    );

    // Mask: an edit with an add or delete gets MError 1 and applies nothing; a read is fine.
    let reply = h
        .send(&i.mask(4, 1, &[(1, mac(0xA)), (2, INITIATOR_MAC)]))
        .unwrap();
    assert!(!reply.is_error());
    assert_eq!(
        reply.arg_bytes()[..4],
        [0, 1, 1, 0],
        "MError 1, nothing applied"
    );
    assert_eq!(h.target.mask(), &[INITIATOR_MAC]);
    assert_eq!(
        h.send(&i.mask(5, 0, &[])).unwrap().arg_bytes()[..4],
        [0, 0, 0, 1]
    );

    // Reserve: Set or Force Set of another list gets error 6; the same list is fine.
    for (rcmd, macs) in [
        (1, &[][..]),
        (2, &[mac(0xB)][..]),
        (2, &[INITIATOR_MAC, mac(0xB)][..]),
    ] {
        let request = i.reserve(6, rcmd, macs);
        let reply = h.send(&request).unwrap();
        assert_header(&reply, &request, TARGET_MAC, Some(6));
        assert_eq!(reserved_mac(&reply, 0), INITIATOR_MAC);
    }
    let reply = h
        .send(&i.reserve(7, 1, &[INITIATOR_MAC, INITIATOR_MAC]))
        .unwrap();
    assert!(!reply.is_error(), "the same list, duplicates counted once");
    assert_eq!(h.target.reservations(), &[INITIATOR_MAC]);
    assert_eq!(h.target.generation(), generation, "nothing changed");

    // Only what is pinned is fixed.
    let mut config = Config::new(SHELF, SLOT);
    config.pinned.mask = true;
    let mut h = Harness::with_config(config, 64, 1500);
    assert!(!h.send(&i.config(8, 3, b"free")).unwrap().is_error());
    assert_eq!(h.target.config_string(), b"free");
    assert!(
        !h.send(&i.reserve(9, 1, &[INITIATOR_MAC]))
            .unwrap()
            .is_error()
    );
    assert_eq!(h.target.reservations(), &[INITIATOR_MAC]);
    let reply = h.send(&i.mask(10, 1, &[(1, INITIATOR_MAC)])).unwrap();
    assert_eq!(reply.arg_bytes()[..4], [0, 1, 1, 0]);
    assert!(h.target.mask().is_empty());
}

/// Item 39: "NMacs larger than the payload, or an unknown RCmd → Error 2." Engine choice: more
/// than 32 MACs (its list capacity) is Error 2 too.
#[test]
fn item_39_reserve_bad_arguments_error_2() {
    let mut h = Harness::new(64, 1500);
    let i = Initiator::default();
    let too_many: Vec<_> = (0..33).map(mac).collect();
    for request in [
        i.reserve(1, 1, &[OTHER_MAC]).set(25, 3),
        i.reserve(2, 2, &[OTHER_MAC]).set(25, 2),
        i.reserve(3, 1, &[]).set(25, 1),
        i.reserve(4, 3, &[OTHER_MAC]),
        i.reserve(5, 0xFF, &[]),
        i.reserve(6, 2, &too_many),
    ] {
        let reply = h.send(&request).unwrap();
        assert_aoe_error("bad reserve", &reply, &request, 2);
    }
    assert!(h.target.reservations().is_empty());
}

/// Item 39: "While reserved, VB answers all ATA commands except IDENTIFY from non-members with
/// Error 6." Engine choice: vblade's (IDENTIFY exempt, every other ATA command blocked);
/// non-ATA commands are not blocked.
#[test]
fn item_39_reservation_blocks_ata_except_identify() {
    let mut h = Harness::new(64, 1500);
    h.target.set_reservations(&[OTHER_MAC]).unwrap();
    let i = Initiator::default();
    let signed = lba_of([0, 0x4F, 0xC2, 0, 0, 0]);
    for request in [
        i.read48(1, 0, 1),
        i.read28(2, 0, 1),
        i.write48(3, 0, &pattern(0, 1, 1)),
        i.write28(4, 0, &pattern(0, 1, 1)),
        i.ata(5, 0, ata_cmd::FLUSH, 0, 0, &[]),
        i.ata(6, 0, ata_cmd::CHECK_POWER_MODE, 0, 0, &[]),
        i.ata_with_feature(7, 0, 0xDA, ata_cmd::SMART, 0, signed, &[]),
        i.ata(8, 0, 0x00, 1, 0, &[]),
    ] {
        let reply = h.send(&request).unwrap();
        assert_aoe_error("reserved", &reply, &request, 6);
    }
    assert!(h.disk_bytes().iter().all(|&b| b == 0), "no write landed");

    let request = i.identify(9);
    let reply = h.send(&request).unwrap();
    assert_header(&reply, &request, TARGET_MAC, None);
    assert_eq!(reply.bytes.len(), 548);
    for request in [
        i.config(10, 0, b""),
        i.mask(11, 0, &[]),
        i.reserve(12, 0, &[]),
    ] {
        assert!(
            !h.send(&request).unwrap().is_error(),
            "control is not blocked"
        );
    }
    let member = from(OTHER_MAC);
    let data = pattern(0, 1, 2);
    assert_ata(&h.send(&member.write48(13, 0, &data)).unwrap(), DRDY, 0, 0);
    assert_eq!(sector(&h, 0), &data[..]);
}

/// Item 40: "Should keep the config string, mask list and reserve list across restarts" — core
/// share: `generation()` changes on every state change (so the platform knows to persist),
/// and not on reads.
#[test]
fn item_40_generation_tracks_state_changes() {
    let mut h = Harness::new(64, 1500);
    let i = Initiator::default();
    let mut last = h.target.generation();
    let mut expect_change = |h: &Harness, what: &str| {
        let now = h.target.generation();
        assert_ne!(now, last, "{what} must change the generation");
        last = now;
    };
    h.send(&i.config(1, 3, b"one")).unwrap();
    expect_change(&h, "config set");
    h.send(&i.config(2, 4, b"two")).unwrap();
    expect_change(&h, "config force set");
    h.send(&i.mask(3, 1, &[(1, INITIATOR_MAC)])).unwrap();
    expect_change(&h, "mask add");
    h.send(&i.mask(4, 1, &[(1, OTHER_MAC)])).unwrap();
    expect_change(&h, "second mask add");
    h.send(&i.mask(5, 1, &[(2, OTHER_MAC)])).unwrap();
    expect_change(&h, "mask delete");
    h.send(&i.reserve(6, 1, &[INITIATOR_MAC])).unwrap();
    expect_change(&h, "reserve set");
    h.send(&i.reserve(7, 2, &[INITIATOR_MAC, OTHER_MAC]))
        .unwrap();
    expect_change(&h, "reserve force set");
    h.send(&i.reserve(8, 1, &[])).unwrap();
    expect_change(&h, "release");
    h.target.set_config_string(b"api").unwrap();
    expect_change(&h, "set_config_string");
    h.target.mask_add(OTHER_MAC).unwrap();
    expect_change(&h, "mask_add");
    assert!(h.target.mask_remove(&OTHER_MAC));
    expect_change(&h, "mask_remove");
    h.target.set_reservations(&[OTHER_MAC]).unwrap();
    expect_change(&h, "set_reservations");
    h.target.set_reservations(&[]).unwrap();
    expect_change(&h, "set_reservations([])");

    let before = h.target.generation();
    for request in [
        i.config(9, 0, b""),
        i.mask(10, 0, &[]),
        i.reserve(11, 0, &[]),
        i.read48(12, 0, 1),
        i.write48(13, 0, &pattern(0, 1, 1)),
        i.identify(14),
    ] {
        h.send(&request).unwrap();
    }
    assert_eq!(
        h.target.generation(),
        before,
        "reads and I/O change nothing"
    );
}

/// Item 40: Restoring persisted state through `set_config_string`, `mask_add` and
/// `set_reservations` gives a target whose replies and filtering show it.
#[test]
fn item_40_restored_state_shows_in_replies() {
    let mut h = Harness::new(64, 1500);
    let third = mac(0x33);
    h.target.set_config_string(b"persisted").unwrap();
    h.target.mask_add(INITIATOR_MAC).unwrap();
    h.target.mask_add(third).unwrap();
    h.target
        .set_reservations(&[INITIATOR_MAC, OTHER_MAC])
        .unwrap();
    let i = Initiator::default();
    assert_eq!(
        h.send(&i.config(1, 0, b"")).unwrap().cfg_string(),
        b"persisted"
    );
    let reply = h.send(&i.mask(2, 0, &[])).unwrap();
    assert_eq!(reply.arg(3), 2);
    assert_eq!(directive(&reply, 0), (0, 0, INITIATOR_MAC));
    assert_eq!(directive(&reply, 1), (0, 0, third));
    let reply = h.send(&i.reserve(3, 0, &[])).unwrap();
    assert_eq!(reply.arg(1), 2);
    assert_eq!(reserved_mac(&reply, 0), INITIATOR_MAC);
    assert_eq!(reserved_mac(&reply, 1), OTHER_MAC);
    assert_eq!(h.send(&from(OTHER_MAC).identify(4)), None, "mask enforced");
    let request = from(third).read48(5, 0, 1);
    let reply = h.send(&request).unwrap();
    assert_aoe_error("reservation enforced", &reply, &request, 6);
    let reply = h.send(&i.config(6, 3, b"other")).unwrap();
    assert_eq!(
        reply.error(),
        4,
        "a restored string blocks a conditional set"
    );

    assert_eq!(
        h.target.set_config_string(&[b'x'; 1025]),
        Err(StateError::ConfigStringTooLong)
    );
    let too_many: Vec<_> = (0..33).map(mac).collect();
    assert_eq!(
        h.target.set_reservations(&too_many),
        Err(StateError::TooManyReservations)
    );
    for k in 0..30 {
        h.target.mask_add(mac(k)).unwrap();
    }
    assert_eq!(h.target.mask_add(mac(0xFE)), Err(StateError::MaskFull));
    assert_eq!(
        h.target.config_string(),
        b"persisted",
        "failed restores keep state"
    );
}

// ----- host mechanics, several interfaces (items 41–42) ---------------------------------------

/// Item 41: "AF_PACKET/SOCK_RAW socket on protocol htons(0x88A2) ... the data at offset 36 is
/// page-aligned" — core share: EtherType 0x88A2, the frame layout a host relies on (data at
/// offset 36 of request and reply, `Port::max_frame_len` = MTU + 14). Sockets, BPF, ioctls
/// and buffer sizes are the host's.
#[test]
fn item_41_frame_layout_for_the_host() {
    assert_eq!(ETHERTYPE_AOE, 0x88A2);
    assert_eq!(Port::new(TARGET_MAC, 1500).max_frame_len(), 1514);
    assert_eq!(Port::new(TARGET_MAC, 9000).max_frame_len(), 9014);
    let mut h = Harness::new(64, 1500);
    let i = Initiator::default();

    let read = i.read48(1, 6, 2);
    let plan = h.target.accept(&h.port, &read.bytes).unwrap();
    let io = plan.io().unwrap();
    assert_eq!((io.op, io.lba, io.sectors), (IoOp::Read, 6, 2));
    assert_eq!(
        io.data_range(),
        36..36 + 1024,
        "read data lands at offset 36"
    );
    assert_eq!(plan.reply_len(), 36 + 1024);

    let data = pattern(6, 2, 5);
    let write = i.write48(2, 6, &data);
    let plan = h.target.accept(&h.port, &write.bytes).unwrap();
    let io = plan.io().unwrap();
    assert_eq!((io.op, io.lba, io.sectors), (IoOp::Write, 6, 2));
    assert_eq!(
        &write.bytes[io.data_range()],
        &data[..],
        "write data at offset 36"
    );
    assert_eq!(plan.reply_len(), 60);
    let mut tx = vec![POISON; plan.reply_len()];
    let len = h.target.respond(&plan, &write.bytes, &mut tx).unwrap();
    assert_eq!(len, 60);
    assert_eq!(tx[12..14], [0x88, 0xA2]);
    assert_eq!(h.disk_bytes()[6 * 512..8 * 512], data[..]);

    let flush = i.ata(3, 0, ata_cmd::FLUSH, 0, 0, &[]);
    let plan = h.target.accept(&h.port, &flush.bytes).unwrap();
    assert_eq!(plan.io().map(|io| io.op), Some(IoOp::Flush));
    let plan = h
        .target
        .accept(&h.port, &i.config(4, 0, b"").bytes)
        .unwrap();
    assert_eq!(plan.io(), None, "control commands need no disk I/O");
}

/// Item 42: "Should answer on every interface it serves, each reply carrying that interface's
/// MAC."
#[test]
fn item_42_replies_from_the_arrival_port_mac() {
    let mac_b = EthernetAddress([0x02, 0x00, 0x00, 0x00, 0x00, 0x02]);
    let port_a = Port::new(TARGET_MAC, 1500);
    let port_b = Port::new(mac_b, 9000);
    let mut config = Config::new(SHELF, SLOT);
    config.max_frame_len = 9014;
    let mut target = Target::new(config, mem(64)).unwrap();
    let via_a = Initiator::default();
    let via_b = Initiator {
        dst: mac_b,
        ..Initiator::default()
    };
    let broadcast = Initiator {
        dst: BROADCAST_MAC,
        ..Initiator::default()
    };

    let request = via_a.config(1, 0, b"");
    let reply = send_on(&mut target, &port_a, &request).unwrap();
    assert_header(&reply, &request, TARGET_MAC, None);
    assert_eq!(reply.cfg_sector_count(), 2);
    let request = via_b.config(2, 0, b"");
    let reply = send_on(&mut target, &port_b, &request).unwrap();
    assert_header(&reply, &request, mac_b, None);
    assert_eq!(reply.cfg_sector_count(), 17);

    for (port, expected) in [(&port_a, TARGET_MAC), (&port_b, mac_b)] {
        let request = broadcast.identify(3);
        let reply = send_on(&mut target, port, &request).unwrap();
        assert_header(&reply, &request, expected, None);
    }
    // A frame for port A's MAC that shows up on port B is not for us there.
    assert_eq!(send_on(&mut target, &port_b, &via_a.identify(4)), None);
    assert_eq!(send_on(&mut target, &port_a, &via_b.identify(5)), None);

    // One export behind both ports.
    let data = pattern(3, 2, 6);
    let reply = send_on(&mut target, &port_a, &via_a.write48(6, 3, &data)).unwrap();
    assert_eq!((reply.src(), reply.ata_status()), (TARGET_MAC, DRDY));
    let reply = send_on(&mut target, &port_b, &via_b.read48(7, 3, 2)).unwrap();
    assert_eq!(reply.src(), mac_b);
    assert_eq!(reply.ata_data(), &data[..]);
    let mut tx = [0u8; 60];
    target.announce(&port_b, BROADCAST_MAC, &mut tx).unwrap();
    assert_eq!((tx[6..12].to_vec(), tx[28]), (mac_b.0.to_vec(), 17));
}
