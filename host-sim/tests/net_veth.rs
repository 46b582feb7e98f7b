//! The raw-frame layer on a real veth pair in a private network namespace (needs root).

mod common;

use aoe_host_sim::net::{self, FrameBufs, Link, LinkSpec, NetError, PacketLink};
use std::time::Duration;

fn aoe_frame(dst: [u8; 6], src: [u8; 6], tag: u32, len: usize) -> Vec<u8> {
    let mut frame = vec![0u8; len];
    frame[..6].copy_from_slice(&dst);
    frame[6..12].copy_from_slice(&src);
    frame[12..14].copy_from_slice(&0x88a2u16.to_be_bytes());
    frame[14..20].copy_from_slice(&[0x10, 0, 0xff, 0xff, 0xff, 1]);
    frame[20..24].copy_from_slice(&tag.to_be_bytes());
    frame
}

#[test]
fn frames_cross_a_veth_pair_in_batches() {
    require_root!();
    let veth = common::VethNs::new("nv", 9000);
    let (a, b) = (veth.a.clone(), veth.b.clone());
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                veth.enter();
                let mut left = PacketLink::open(&a).unwrap();
                let mut right = net::open(&LinkSpec::packet(&b)).unwrap();
                assert_eq!(left.mtu().unwrap(), 9000);
                assert_ne!(left.mac(), right.mac());
                let (rx_granted, _) = right
                    .set_buffer_bytes(net::buffer_bytes_for(64, 9000), 1 << 20)
                    .unwrap();
                assert!(
                    rx_granted >= net::buffer_bytes_for(64, 9000),
                    "granted {rx_granted}"
                );

                // Nothing queued: recv times out with 0.
                let mut rx = FrameBufs::new(64, 9014);
                assert_eq!(
                    right
                        .recv(&mut rx, Some(Duration::from_millis(20)))
                        .unwrap(),
                    0
                );

                // 40 frames of mixed sizes, including a jumbo one, sent as one batch.
                let mut tx = FrameBufs::new(40, 9014);
                for slot in 0..40 {
                    let len = if slot == 7 { 9014 } else { 60 + slot };
                    let frame =
                        aoe_frame(right.mac(), left.mac(), u32::try_from(slot).unwrap(), len);
                    tx.slot_mut(slot)[..len].copy_from_slice(&frame);
                    tx.set_len(slot, len);
                }
                assert_eq!(left.send(&tx, 40).unwrap(), 40);

                let mut tags = Vec::new();
                while tags.len() < 40 {
                    let n = right.recv(&mut rx, Some(Duration::from_secs(2))).unwrap();
                    assert!(n > 0, "timed out after {} frames", tags.len());
                    for slot in 0..n {
                        let frame = rx.frame(slot);
                        let tag = u32::from_be_bytes(frame[20..24].try_into().unwrap());
                        let expected = if tag == 7 { 9014 } else { 60 + tag as usize };
                        assert_eq!(frame.len(), expected, "tag {tag}");
                        assert_eq!(frame, tx.frame(tag as usize), "tag {tag}");
                        tags.push(tag);
                    }
                }
                assert_eq!(tags, (0..40).collect::<Vec<_>>());
                assert_eq!(right.take_drops(), 0);
                // The sender does not see its own frames.
                assert_eq!(
                    left.recv(&mut rx, Some(Duration::from_millis(20))).unwrap(),
                    0
                );

                // A frame longer than the slot is reported with length 0, not cut.
                let mut small = FrameBufs::new(4, 1514);
                left.send_frame(&aoe_frame(right.mac(), left.mac(), 99, 3000))
                    .unwrap();
                let n = right
                    .recv(&mut small, Some(Duration::from_secs(2)))
                    .unwrap();
                assert_eq!(n, 1);
                assert_eq!(small.len(0), 0);
            })
            .join()
            .unwrap();
    });
}

#[test]
fn opening_explains_what_is_wrong() {
    require_root!();
    let veth = common::VethNs::new("ne", 1500);
    let a = veth.a.clone();
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                veth.enter();
                match PacketLink::open("nosuch0") {
                    Err(NetError::NoSuchInterface(name)) => assert_eq!(name, "nosuch0"),
                    other => panic!("{other:?}"),
                }
                veth.exec(&["ip", "link", "set", &a, "down"]);
                match PacketLink::open(&a) {
                    Err(error @ NetError::InterfaceDown(_)) => {
                        assert!(error.to_string().contains("is down"));
                    }
                    other => panic!("{other:?}"),
                }
            })
            .join()
            .unwrap();
    });
}

#[test]
fn tap_link_exchanges_frames_with_a_packet_socket() {
    require_root!();
    let veth = common::VethNs::new("nt", 1500);
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                veth.enter();
                let name = format!("tp{}", std::process::id());
                let mut tap = net::open(&LinkSpec::tap(&name)).unwrap();
                let mut kernel_side = PacketLink::open(&name).unwrap();
                assert_eq!(tap.mtu().unwrap(), 1500);
                assert_ne!(tap.mac(), kernel_side.mac());
                // Kernel side -> TAP program.
                kernel_side
                    .send_frame(&aoe_frame(tap.mac(), kernel_side.mac(), 5, 60))
                    .unwrap();
                let mut rx = FrameBufs::new(8, 1514);
                let mut seen = false;
                for _ in 0..20 {
                    let n = tap.recv(&mut rx, Some(Duration::from_millis(200))).unwrap();
                    // IPv6 router solicitations etc. arrive too, with length 0 (not AoE).
                    if (0..n).any(|slot| rx.len(slot) == 60 && rx.frame(slot)[23] == 5) {
                        seen = true;
                        break;
                    }
                }
                assert!(seen, "the TAP program did not receive the frame");
                // TAP program -> kernel side.
                tap.send_frame(&aoe_frame(kernel_side.mac(), tap.mac(), 6, 60))
                    .unwrap();
                let n = kernel_side
                    .recv(&mut rx, Some(Duration::from_secs(2)))
                    .unwrap();
                assert!((0..n).any(|slot| rx.len(slot) == 60 && rx.frame(slot)[23] == 6));
            })
            .join()
            .unwrap();
    });
}
