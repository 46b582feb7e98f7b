//! Arbitrary frames into one `Target<MemDisk>`, through `accept` and `respond`.
//!
//! # Input
//!
//! One raw Ethernet frame (so a captured `.bin` frame is a seed as it is), received on a port
//! with MTU 1500; or several, each later one introduced by [`FRAME_SEPARATOR`] and two octets
//! (little endian) that pick its port's MTU in 576..=9000. The frames go to the same export, in
//! order, so config, mask and reserve state carries over.
//!
//! # Oracle
//!
//! No panic. A frame that is not AoE, not for this export or port, a response, from a
//! multicast source or from the port itself, or from a MAC outside a non-empty mask list gets
//! no reply. Any reply is planned and completed within 60..=MTU + 14 octets, goes to the
//! requester, and carries R, version 1, this export's shelf/slot and the request's command and
//! tag; an ATA reply never carries an AoE error except a refusal of the whole command; an ATA
//! error status names ABRT or IDNF. The disk is a fault-free `MemDisk`, so any disk error means
//! the target sent an I/O outside the disk. Before each reply, the plan is also completed
//! against the previous frame (a caller's mistake), into a separate buffer and in place, which
//! must not panic, and a refused in-place completion must leave the frame untouched.
#![no_main]

use aoe_core::disk::MemDisk;
use aoe_core::wire::EthernetAddress;
use aoe_core::{Port, Target};
use aoe_fuzz::{
    FRAME_SEPARATOR, SHELF, SLOT, TARGET_MAC, check_envelope, export, is_unicast, mtu_from,
    respond, source_of,
};
use libfuzzer_sys::fuzz_target;

/// Disk size of the export: small, so that out-of-range LBAs are easy to find.
const SECTORS: usize = 64;

/// Splits the input into (MTU, frame) pairs.
fn frames(data: &[u8]) -> Vec<(usize, &[u8])> {
    let mut out = Vec::new();
    let mut rest = data;
    let mut mtu = 1500;
    loop {
        let end = rest
            .windows(FRAME_SEPARATOR.len())
            .position(|window| window == FRAME_SEPARATOR);
        let Some(end) = end else {
            out.push((mtu, rest));
            return out;
        };
        out.push((mtu, &rest[..end]));
        rest = &rest[end + FRAME_SEPARATOR.len()..];
        let low = rest.first().copied().unwrap_or(0);
        let high = rest.get(1).copied().unwrap_or(0);
        mtu = mtu_from(u16::from_le_bytes([low, high]));
        rest = rest.get(2..).unwrap_or(&[]);
    }
}

/// True if the target may answer `rx` at all (given the mask list before it arrived).
fn may_answer(rx: &[u8], mask: &[EthernetAddress]) -> bool {
    if rx.len() < 24 || rx[12..14] != [0x88, 0xA2] {
        return false;
    }
    let to_us = rx[0..6] == TARGET_MAC.0 || rx[0..6] == [0xFF; 6];
    let source = &rx[6..12];
    let from_peer = is_unicast(source) && source != TARGET_MAC.0;
    let request = rx[14] & 0x08 == 0;
    let major = u16::from_be_bytes([rx[16], rx[17]]);
    let addressed = (major == SHELF || major == 0xFFFF) && (rx[18] == SLOT || rx[18] == 0xFF);
    let allowed = mask.is_empty() || source_of(rx).is_some_and(|mac| mask.contains(&mac));
    to_us && from_peer && request && addressed && allowed
}

fn check_frame(
    target: &mut Target<MemDisk<Vec<u8>>>,
    port: &Port,
    rx: &[u8],
    previous: Option<&[u8]>,
) {
    let mask = target.mask().to_vec();
    let Some(plan) = target.accept(port, rx) else {
        return;
    };
    assert!(may_answer(rx, &mask), "answered a frame it must ignore");
    // Completing a plan with the wrong request is a caller's mistake, but must not panic or
    // overrun the buffer; it changes nothing but counters.
    if let Some(other) = previous {
        let mut scratch = vec![0u8; plan.reply_len()];
        if let Some(len) = target.complete_into(&plan, Ok(()), other, &mut scratch) {
            assert!(len <= scratch.len());
        }
        // The same mistake in place: a refusal leaves the buffer as it was.
        let mut in_place = other.to_vec();
        in_place.resize(in_place.len().max(plan.reply_len()), 0);
        let before = in_place.clone();
        match target.complete(&plan, Ok(()), &mut in_place) {
            Some(len) => assert!(len <= in_place.len()),
            None => assert_eq!(in_place, before, "a refused completion wrote to the frame"),
        }
    }
    let reply = respond(target, port, &plan, rx);
    check_envelope(&reply, rx, port);
    let is_ata = rx[19] == 0;
    if is_ata && reply[14] & 0x04 == 0 {
        let status = reply[27];
        if status & 0x01 != 0 {
            let error = reply[25];
            assert!(
                error == 0x04 || error == 0x10,
                "ATA error register {error:#04x}"
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let disk = MemDisk::new(vec![0u8; SECTORS * 512]);
    let mut target = export(disk);
    let mut previous = None;
    for (mtu, rx) in frames(data) {
        let port = Port::new(TARGET_MAC, mtu);
        check_frame(&mut target, &port, rx, previous);
        previous = Some(rx);
    }
    assert_eq!(
        target.stats().disk_errors,
        0,
        "a fault-free disk failed: I/O outside the disk"
    );
});
