//! Query Config: checklist items 14–22.

use crate::support::*;

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
