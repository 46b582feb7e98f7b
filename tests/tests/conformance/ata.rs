//! ATA commands: checklist items 23–36.

use crate::support::*;

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
