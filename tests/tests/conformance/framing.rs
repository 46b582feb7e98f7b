//! Framing, addressing and filtering: checklist items 1–13.

use crate::support::*;

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
