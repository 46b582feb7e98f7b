//! The link back ends on real veth pairs and TAP devices in private network namespaces (root
//! only): batches cross without loss or reordering, ring frames are handed out without copies
//! at aligned addresses and go back to the kernel when dropped (more frames pass than the ring
//! holds), frames held across batches stay intact, batches larger than the transmit ring go
//! out whole and in order, oversized and own frames are never returned, and a link that goes
//! down says so.

use aoe_net::{
    self as net, EthernetAddress, Frame, Link, LinkSpec, NetError, PacketLink, RingLink,
};
use aoe_testkit::frame::Frame as TestFrame;
use aoe_testkit::netns::{Namespace, veth_in};
use aoe_testkit::require_root;
use std::time::Duration;

/// A broadcast Query Config of `len` octets from `src` to `dst` with tag `tag`, the octets from
/// 36 on a pattern of the tag (so that a frame mixed up with another shows).
fn aoe_frame(dst: EthernetAddress, src: EthernetAddress, tag: u32, len: usize) -> Vec<u8> {
    let body: Vec<u8> = (36..len)
        .map(|i| u8::try_from((i * 13 + tag as usize) % 251).unwrap())
        .collect();
    TestFrame::aoe(dst, src, 0x10, 0xffff, 0xff, 1, tag, &[0; 12])
        .pad(&body)
        .bytes
}

fn tag_of(frame: &[u8]) -> u32 {
    u32::from_be_bytes(frame[20..24].try_into().unwrap())
}

/// Sends `frames` (as bytes) on `link` through its pool.
fn send_all(link: &mut dyn Link, frames: &[Vec<u8>]) -> usize {
    let mut batch: Vec<Frame> = frames
        .iter()
        .map(|bytes| {
            let mut frame = link.alloc().expect("a free pool frame");
            frame.fill(bytes);
            frame
        })
        .collect();
    let sent = link.send(&mut batch).unwrap();
    assert!(batch.is_empty(), "send takes every frame");
    sent
}

/// Receives until `count` frames came (2 s per wait).
fn recv_n(link: &mut dyn Link, count: usize) -> Vec<Frame> {
    let mut frames = Vec::new();
    while frames.len() < count {
        assert!(
            link.wait(Some(Duration::from_secs(2))).unwrap(),
            "timed out after {} of {count} frames",
            frames.len()
        );
        let missing = count - frames.len();
        link.recv(&mut frames, missing).unwrap();
    }
    frames
}

/// Runs `body` on a thread inside a fresh namespace holding a veth pair of `mtu`.
fn in_veth_namespace(mtu: u32, body: impl FnOnce(&Namespace, &str, &str) + Send) {
    let ns = Namespace::new("net");
    let (a, b) = veth_in(&ns, mtu);
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                ns.enter();
                body(&ns, &a, &b);
            })
            .join()
            .unwrap();
    });
}

#[test]
fn frames_cross_a_veth_pair_in_batches() {
    require_root!();
    in_veth_namespace(9000, |_, a, b| {
        let mut left = PacketLink::open(a, 128).unwrap();
        let mut right = net::open(&LinkSpec::packet(b)).unwrap();
        assert_eq!(left.mtu().unwrap(), 9000);
        assert_ne!(left.mac(), right.mac());
        let (rx_granted, _) = right
            .set_buffer_bytes(net::buffer_bytes_for(64, 9000), 1 << 20)
            .unwrap();
        assert!(
            rx_granted >= net::buffer_bytes_for(64, 9000),
            "granted {rx_granted}"
        );

        // Nothing queued: wait times out, recv gives nothing.
        assert!(!right.wait(Some(Duration::from_millis(20))).unwrap());
        let mut none = Vec::new();
        assert_eq!(right.recv(&mut none, 64).unwrap(), 0);

        // 40 frames of mixed sizes, including a jumbo one, sent as one batch; one empty frame
        // in the batch is skipped.
        let frames: Vec<Vec<u8>> = (0..40u32)
            .map(|tag| {
                let len = if tag == 7 { 9014 } else { 60 + tag as usize };
                aoe_frame(right.mac(), left.mac(), tag, len)
            })
            .collect();
        let mut batch: Vec<Frame> = Vec::new();
        for (index, bytes) in frames.iter().enumerate() {
            let mut frame = left.alloc().unwrap();
            frame.fill(bytes);
            batch.push(frame);
            if index == 3 {
                batch.push(left.alloc().unwrap());
            }
        }
        assert_eq!(left.send(&mut batch).unwrap(), 40);
        let received = recv_n(&mut *right, 40);
        let tags: Vec<u32> = received.iter().map(|f| tag_of(f.as_slice())).collect();
        assert_eq!(tags, (0..40).collect::<Vec<_>>(), "in order");
        for frame in &received {
            let tag = tag_of(frame.as_slice());
            assert_eq!(frame.as_slice(), &frames[tag as usize][..], "tag {tag}");
            assert_eq!(
                frame.buffer()[36..].as_ptr() as usize % 4096,
                0,
                "aligned data"
            );
        }
        assert_eq!(right.take_drops(), 0);
        // The sender does not see its own frames.
        assert!(!left.wait(Some(Duration::from_millis(20))).unwrap());
        // Every frame went back to the pools: allocations succeed again.
        drop(received);
        let all: Vec<Frame> = (0..128).map(|_| left.alloc().unwrap()).collect();
        assert!(left.alloc().is_none(), "the pool holds 128 frames");
        drop(all);
        assert!(left.alloc().is_some());
    });
}

#[test]
fn frames_longer_than_a_buffer_are_dropped_not_cut() {
    require_root!();
    // An MTU beyond what any pool frame holds.
    in_veth_namespace(16000, |_, a, b| {
        let mut left = PacketLink::open(a, 16).unwrap();
        let mut right = PacketLink::open(b, 16).unwrap();
        let long = aoe_frame(right.mac(), left.mac(), 99, 14_000);
        let short = aoe_frame(right.mac(), left.mac(), 100, 60);
        // The long frame goes out through a socket of the test's own (no pool frame holds
        // it), then a short one through the link.
        send_raw(a, &long);
        send_all(&mut left, &[short]);
        let got = recv_n(&mut right, 1);
        assert_eq!(
            tag_of(got[0].as_slice()),
            100,
            "only the short frame arrives"
        );
    });
}

/// Sends `bytes` on `interface` with a plain `AF_PACKET` socket of this test's own (frames
/// longer than any pool frame cannot go through a link).
fn send_raw(interface: &str, bytes: &[u8]) {
    let name = std::ffi::CString::new(interface).unwrap();
    // SAFETY: a valid NUL-terminated name.
    let index = i32::try_from(unsafe { libc::if_nametoindex(name.as_ptr()) }).unwrap();
    assert!(index > 0, "{interface} exists");
    // SAFETY: plain socket(2); checked below.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) };
    assert!(fd >= 0);
    // SAFETY: sockaddr_ll is plain data; all-zero is valid before filling.
    let mut address: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    address.sll_family = u16::try_from(libc::AF_PACKET).unwrap();
    address.sll_ifindex = index;
    address.sll_halen = 6;
    // SAFETY: `bytes` and `address` are live for the call; their sizes are passed.
    let sent = unsafe {
        libc::sendto(
            fd,
            bytes.as_ptr().cast(),
            bytes.len(),
            0,
            std::ptr::from_ref(&address).cast(),
            u32::try_from(size_of::<libc::sockaddr_ll>()).unwrap(),
        )
    };
    // SAFETY: fd is ours.
    unsafe { libc::close(fd) };
    assert_eq!(usize::try_from(sent).ok(), Some(bytes.len()), "sendto");
}

#[test]
fn ring_frames_are_lent_in_order_and_go_back_when_dropped() {
    require_root!();
    in_veth_namespace(9000, |ns, a, b| {
        let mut plain = PacketLink::open(a, 256).unwrap();
        let _ = plain.set_buffer_bytes(8 << 20, 8 << 20);
        let mut ring = RingLink::open(b, 64).unwrap();
        assert!(
            !ring.wait(Some(Duration::from_millis(20))).unwrap(),
            "nothing queued"
        );

        // 1200 frames (more than the 512-frame ring) in batches of 50: only passes if dropped
        // ring frames go back to the kernel. One frame of each batch is held until the end
        // of the next batch, and must still read the same then.
        let len_of = |tag: u32| {
            if tag % 97 == 5 {
                9014
            } else {
                60 + (tag as usize % 1400)
            }
        };
        let mut held: Option<Frame> = None;
        let mut next_expected = 0u32;
        for batch in 0..24u32 {
            let frames: Vec<Vec<u8>> = (0..50)
                .map(|slot| {
                    let tag = batch * 50 + slot;
                    aoe_frame(ring.mac(), plain.mac(), tag, len_of(tag))
                })
                .collect();
            assert_eq!(send_all(&mut plain, &frames), 50);
            let mut received = recv_n(&mut ring, 50);
            for frame in &received {
                let tag = tag_of(frame.as_slice());
                assert_eq!(tag, next_expected, "frames in order");
                assert_eq!(frame.as_slice(), &frames[(tag % 50) as usize][..]);
                assert!(frame.is_transient(), "a ring frame, lent without a copy");
                // AoE data of a ring frame is page-aligned (O_DIRECT from it works).
                assert_eq!(
                    frame.buffer()[36..].as_ptr() as usize % 4096,
                    0,
                    "tag {tag}"
                );
                next_expected += 1;
            }
            if let Some(old) = held.take() {
                let tag = tag_of(old.as_slice());
                assert_eq!(
                    old.as_slice(),
                    &aoe_frame(ring.mac(), plain.mac(), tag, len_of(tag))[..]
                );
            }
            held = Some(received.swap_remove(17));
        }
        assert_eq!(ring.take_drops(), 0);

        // A reply built in a ring frame goes out from there; pool frames too.
        let mut frames = Vec::new();
        let mut reply = held.take().unwrap();
        let bytes = aoe_frame(plain.mac(), ring.mac(), 50_000, 1200);
        reply.fill(&bytes);
        frames.push(reply);
        let mut pooled = ring.alloc().unwrap();
        pooled.fill(&aoe_frame(plain.mac(), ring.mac(), 50_001, 70));
        frames.push(pooled);
        assert_eq!(ring.send(&mut frames).unwrap(), 2);
        let got = recv_n(&mut plain, 2);
        assert_eq!(got[0].as_slice(), &bytes[..]);
        assert_eq!(tag_of(got[1].as_slice()), 50_001);

        // Taking the interface down is reported, so the worker can reopen it.
        ns.exec(&["ip", "link", "set", b, "down"]);
        let mut failed = false;
        for _ in 0..20 {
            let mut frames = Vec::new();
            if ring.wait(Some(Duration::from_millis(100))).is_err()
                || ring.recv(&mut frames, 64).is_err()
            {
                failed = true;
                break;
            }
        }
        assert!(failed, "the ring reports the interface going down");
    });
}

/// Sends go through a transmit ring of 256 slots: a batch of more frames than that (READ-reply
/// sized, longer than a page) still arrives whole, in order, with nothing dropped, batch after
/// batch (the ring's slots come back).
#[test]
fn batches_larger_than_the_transmit_ring_arrive_whole_and_in_order() {
    require_root!();
    in_veth_namespace(9000, |_, a, b| {
        let mut sender = RingLink::open(a, 700).unwrap();
        let mut receiver = PacketLink::open(b, 1024).unwrap();
        assert!(sender.has_transmit_ring() && receiver.has_transmit_ring());
        let _ = receiver.set_buffer_bytes(64 << 20, 1 << 20);
        let mut next_expected = 0u32;
        for round in 0..3u32 {
            let frames: Vec<Vec<u8>> = (0..600u32)
                .map(|index| {
                    let tag = round * 600 + index;
                    let len = if index % 50 == 0 { 9014 } else { 4132 };
                    aoe_frame(receiver.mac(), sender.mac(), tag, len)
                })
                .collect();
            assert_eq!(send_all(&mut sender, &frames), 600, "round {round}");
            for frame in recv_n(&mut receiver, 600) {
                let tag = tag_of(frame.as_slice());
                assert_eq!(tag, next_expected, "in order");
                assert_eq!(
                    frame.as_slice(),
                    &frames[(tag % 600) as usize][..],
                    "tag {tag}"
                );
                next_expected += 1;
            }
        }
        assert_eq!(receiver.take_drops(), 0);
    });
}

#[test]
fn opening_explains_what_is_wrong() {
    require_root!();
    in_veth_namespace(1500, |ns, a, _| {
        match PacketLink::open("nosuch0", 4) {
            Err(NetError::NoSuchInterface(name)) => assert_eq!(name, "nosuch0"),
            other => panic!("{other:?}"),
        }
        ns.exec(&["ip", "link", "set", a, "down"]);
        match PacketLink::open(a, 4) {
            Err(error @ NetError::InterfaceDown(_)) => {
                assert!(error.to_string().contains("is down"));
            }
            other => panic!("{other:?}"),
        }
    });
}

#[test]
fn tap_link_exchanges_frames_with_a_packet_socket() {
    require_root!();
    in_veth_namespace(1500, |_, _, _| {
        let name = format!("tp{}", std::process::id());
        let mut tap = net::open(&LinkSpec::tap(&name)).unwrap();
        let mut kernel_side = PacketLink::open(&name, 16).unwrap();
        assert_eq!(tap.mtu().unwrap(), 1500);
        assert_ne!(tap.mac(), kernel_side.mac());
        // Kernel side -> TAP program. IPv6 router solicitations etc. arrive too; only AoE
        // frames are returned.
        let frame = aoe_frame(tap.mac(), kernel_side.mac(), 5, 60);
        send_all(&mut kernel_side, &[frame]);
        let got = recv_n(&mut *tap, 1);
        assert_eq!(got[0].len(), 60);
        assert_eq!(tag_of(got[0].as_slice()), 5);
        // TAP program -> kernel side.
        let frame = aoe_frame(kernel_side.mac(), tap.mac(), 6, 60);
        send_all(&mut *tap, &[frame]);
        let got = recv_n(&mut kernel_side, 1);
        assert_eq!(tag_of(got[0].as_slice()), 6);
    });
}
