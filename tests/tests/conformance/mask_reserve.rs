//! MAC Mask List and Reserve/Release: checklist items 37–40.

use crate::support::*;

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
