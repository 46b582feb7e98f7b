//! The `PACKET_MMAP` ring backend on a real veth pair in a private network namespace (needs
//! root): frames lent without copies at aligned addresses, lent frames handed back (more
//! frames than the ring holds pass), replies built in the transmit ring, copies where needed,
//! and an interface going down reported as an error.

mod common;

use aoe_host_sim::net::{FrameBufs, Link, PacketLink, RingLink};
use std::time::Duration;

fn aoe_frame(dst: [u8; 6], src: [u8; 6], tag: u32, len: usize) -> Vec<u8> {
    let mut frame = vec![0u8; len];
    frame[..6].copy_from_slice(&dst);
    frame[6..12].copy_from_slice(&src);
    frame[12..14].copy_from_slice(&0x88a2u16.to_be_bytes());
    frame[14..20].copy_from_slice(&[0x10, 0, 0xff, 0xff, 0xff, 1]);
    frame[20..24].copy_from_slice(&tag.to_be_bytes());
    for (i, octet) in frame.iter_mut().enumerate().skip(36) {
        *octet = u8::try_from((i * 13 + tag as usize) % 251).unwrap();
    }
    frame
}

fn tag_of(frame: &[u8]) -> u32 {
    u32::from_be_bytes(frame[20..24].try_into().unwrap())
}

#[test]
fn ring_link_receives_and_sends_without_losing_or_mixing_frames() {
    require_root!();
    let veth = common::VethNs::new("nr", 9000);
    let (a, b) = (veth.a.clone(), veth.b.clone());
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                veth.enter();
                let mut plain = PacketLink::open(&a).unwrap();
                let _ = plain.set_buffer_bytes(8 << 20, 8 << 20);
                let mut ring = RingLink::open(&b).unwrap();
                let mut rx = FrameBufs::new(64, 9014);
                assert_eq!(
                    ring.recv(&mut rx, Some(Duration::from_millis(20))).unwrap(),
                    0,
                    "nothing queued: timeout"
                );

                // 600 frames (more than the 256-frame ring) in batches of 50: only passes if
                // lent frames go back to the kernel.
                let mut tx = FrameBufs::new(50, 9014);
                let mut next_expected = 0u32;
                for batch in 0..12u32 {
                    for slot in 0..50 {
                        let tag = batch * 50 + u32::try_from(slot).unwrap();
                        let len = if tag % 97 == 5 {
                            9014
                        } else {
                            60 + (tag as usize % 1400)
                        };
                        let frame = aoe_frame(ring.mac(), plain.mac(), tag, len);
                        tx.slot_mut(slot)[..len].copy_from_slice(&frame);
                        tx.set_len(slot, len);
                    }
                    assert_eq!(plain.send(&tx, 50).unwrap(), 50);
                    let mut got = 0;
                    while got < 50 {
                        let n = ring.recv(&mut rx, Some(Duration::from_secs(2))).unwrap();
                        assert!(n > 0, "timed out in batch {batch} after {got}");
                        for slot in 0..n {
                            let frame = rx.frame(slot);
                            let tag = tag_of(frame);
                            assert_eq!(tag, next_expected, "frames in order");
                            let len = if tag % 97 == 5 {
                                9014
                            } else {
                                60 + (tag as usize % 1400)
                            };
                            assert_eq!(frame, &aoe_frame(ring.mac(), plain.mac(), tag, len)[..]);
                            // AoE data of a lent frame is page-aligned (O_DIRECT from it works).
                            assert_eq!(frame[36..].as_ptr() as usize % 4096, 0, "tag {tag}");
                            next_expected += 1;
                        }
                        got += n;
                    }
                }
                assert_eq!(ring.take_drops(), 0);
                assert_eq!(
                    ring.receive_copies(),
                    0,
                    "every frame was lent, none copied"
                );

                // Slots larger than a ring frame can lend get copies.
                let mut big = FrameBufs::new(4, 16_000);
                plain
                    .send_frame(&aoe_frame(ring.mac(), plain.mac(), 77, 200))
                    .unwrap();
                assert_eq!(
                    ring.recv(&mut big, Some(Duration::from_secs(2))).unwrap(),
                    1
                );
                assert_eq!(
                    big.frame(0),
                    &aoe_frame(ring.mac(), plain.mac(), 77, 200)[..]
                );
                assert_eq!(ring.receive_copies(), 1);

                // Replies built in lent transmit frames, one slot left empty, and a frame
                // copied in from an ordinary buffer in between.
                let mut replies = FrameBufs::new(96, 9014);
                for round in 0..20u32 {
                    // Half the rounds send long frames by reference to the ring page.
                    ring.set_linear_max(if round < 10 { usize::MAX } else { 256 });
                    let copies = ring.transmit_copies();
                    ring.prepare_send(&mut replies);
                    for slot in 0..20 {
                        let tag = 10_000 + round * 100 + u32::try_from(slot).unwrap();
                        let len = if slot == 3 { 9014 } else { 100 + slot };
                        let frame = aoe_frame(plain.mac(), ring.mac(), tag, len);
                        replies.slot_mut(slot)[..len].copy_from_slice(&frame);
                        replies.set_len(slot, if slot == 7 { 0 } else { len });
                    }
                    assert_eq!(
                        replies.slot(0)[36..].as_ptr() as usize % 4096,
                        0,
                        "lent transmit data is page-aligned"
                    );
                    assert_eq!(ring.send(&replies, 20).unwrap(), 19);
                    // Slots 0..7 went out in place; those after the gap were moved up a frame.
                    assert_eq!(ring.transmit_copies() - copies, 12, "round {round}");
                    // After the send the slots no longer alias queued frames.
                    replies.slot_mut(0).fill(0xee);
                    ring.send_frame(&aoe_frame(plain.mac(), ring.mac(), 20_000 + round, 70))
                        .unwrap();

                    let mut expected: Vec<u32> = (0..20)
                        .filter(|&slot| slot != 7)
                        .map(|slot| 10_000 + round * 100 + slot)
                        .collect();
                    expected.push(20_000 + round);
                    let mut seen = Vec::new();
                    let mut plain_rx = FrameBufs::new(64, 9014);
                    while seen.len() < expected.len() {
                        let n = plain
                            .recv(&mut plain_rx, Some(Duration::from_secs(2)))
                            .unwrap();
                        assert!(n > 0, "round {round}: timed out after {seen:?}");
                        for slot in 0..n {
                            let frame = plain_rx.frame(slot);
                            let tag = tag_of(frame);
                            let len = match tag {
                                20_000.. => 70,
                                _ if tag % 100 == 3 => 9014,
                                _ => 100 + (tag as usize % 100),
                            };
                            assert_eq!(frame, &aoe_frame(plain.mac(), ring.mac(), tag, len)[..]);
                            seen.push(tag);
                        }
                    }
                    assert_eq!(seen, expected, "round {round}");
                }

                // Taking the interface down is reported, so the server can reopen it.
                veth.exec(&["ip", "link", "set", &b, "down"]);
                let mut failed = false;
                for _ in 0..20 {
                    if ring
                        .recv(&mut rx, Some(Duration::from_millis(100)))
                        .is_err()
                    {
                        failed = true;
                        break;
                    }
                }
                assert!(failed, "recv reports the interface going down");
            })
            .join()
            .unwrap();
    });
}
