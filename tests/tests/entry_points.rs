//! The engine's two other ways in: a smoltcp `phy::Device` driven by `Target::poll` and
//! `Target::poll_with` (the microcontroller shape), and the split `accept` / external I/O /
//! `complete` path that a host fast path uses to batch frames, in place in the request's own
//! buffer or into a separate one (`complete_into`).

use aoe_core::disk::{Disk, ErrorKind, MemDisk};
use aoe_core::{Config, IoOp, Port, Target};
use aoe_testkit::device::QueueDevice;
use aoe_tests::{Harness, INITIATOR_MAC, Initiator, Reply, SHELF, SLOT, TARGET_MAC, pattern};
use smoltcp::time::Instant;

fn ram_target(sectors: usize) -> Target<MemDisk<Vec<u8>>> {
    Target::new(
        Config::new(SHELF, SLOT),
        MemDisk::new(vec![0u8; sectors * 512]),
    )
    .unwrap()
}

#[test]
fn poll_answers_one_frame_per_call_through_smoltcp_tokens() {
    let mut target = ram_target(32);
    let port = Port::new(TARGET_MAC, 1500);
    let mut device = QueueDevice::default();
    let initiator = Initiator::default();
    let data = pattern(4, 2, 9);
    device.rx.push_back(initiator.write48(1, 4, &data).bytes);
    device.rx.push_back(initiator.read48(2, 4, 2).bytes);
    // A response (R set) must be swallowed without a transmission.
    device
        .rx
        .push_back(initiator.read48(3, 4, 2).set(14, 0x18).bytes);

    let now = Instant::from_millis(0);
    assert!(target.poll(&port, &mut device, now));
    assert!(target.poll(&port, &mut device, now));
    assert!(target.poll(&port, &mut device, now));
    assert!(!target.poll(&port, &mut device, now), "queue is empty");

    assert_eq!(device.tx.len(), 2, "two replies, the response got none");
    let write = Reply {
        bytes: device.tx[0].clone(),
    };
    assert_eq!(write.bytes.len(), 60);
    assert_eq!(write.ata_status(), 0x40);
    assert_eq!(write.tag(), 1);
    assert!(write.bytes[36..].iter().all(|&b| b == 0), "zero padding");
    let read = Reply {
        bytes: device.tx[1].clone(),
    };
    assert_eq!(read.dst(), INITIATOR_MAC);
    assert_eq!(read.src(), TARGET_MAC);
    assert_eq!(read.ata_data(), &data[..]);
}

#[test]
fn poll_with_runs_the_step_after_accept_and_can_withhold_the_reply() {
    let mut target = ram_target(32);
    let port = Port::new(TARGET_MAC, 1500);
    let mut device = QueueDevice::default();
    let initiator = Initiator::default();
    let now = Instant::from_millis(0);
    let start = target.generation();

    // A config force-set: the step sees the new generation before the reply leaves, and
    // withholds it. The state change stays (the initiator retries and gets the same answer).
    device.rx.push_back(initiator.config(1, 4, b"saved").bytes);
    let mut seen = Vec::new();
    assert!(target.poll_with(&port, &mut device, now, |target| {
        seen.push(target.generation());
        false
    }));
    assert_eq!(
        seen,
        vec![start.wrapping_add(1)],
        "one call, after the change"
    );
    assert!(device.tx.is_empty(), "withheld");
    assert_eq!(target.config_string(), b"saved");

    // A write withheld by the step never reaches the disk.
    device
        .rx
        .push_back(initiator.write48(2, 0, &pattern(0, 1, 1)).bytes);
    assert!(target.poll_with(&port, &mut device, now, |_| false));
    assert!(device.tx.is_empty());
    assert!(target.disk().as_bytes()[..512].iter().all(|&b| b == 0));

    // Let through, it answers as `poll` does; frames that get no reply never run the step.
    device.rx.push_back(initiator.config(3, 0, b"").bytes);
    device
        .rx
        .push_back(initiator.read48(4, 0, 1).set(14, 0x18).bytes);
    let mut calls = 0;
    for _ in 0..2 {
        assert!(target.poll_with(&port, &mut device, now, |_| {
            calls += 1;
            true
        }));
    }
    assert_eq!(calls, 1, "the response got no reply and no step");
    assert_eq!(device.tx.len(), 1);
    let reply = Reply {
        bytes: device.tx[0].clone(),
    };
    assert_eq!(reply.tag(), 3);
    assert_eq!(reply.cfg_string(), b"saved");
    assert!(!target.poll_with(&port, &mut device, now, |_| unreachable!()));
}

#[test]
fn announce_on_broadcasts_or_unicasts_to_the_mask() {
    let mut target = ram_target(8);
    let port = Port::new(TARGET_MAC, 1500);
    let mut device = QueueDevice::default();
    assert_eq!(
        target.announce_on(&port, &mut device, Instant::from_millis(0)),
        1
    );
    let reply = Reply {
        bytes: device.tx.remove(0),
    };
    assert_eq!(reply.dst().0, [0xff; 6]);
    assert_eq!(reply.ver_flags(), 0x18, "version 1, R set");
    assert_eq!(reply.tag(), 0);
    assert_eq!((reply.major(), reply.minor()), (SHELF, SLOT));

    let a = smoltcp::wire::EthernetAddress([2, 0, 0, 0, 0, 0xa]);
    let b = smoltcp::wire::EthernetAddress([2, 0, 0, 0, 0, 0xb]);
    target.mask_add(a).unwrap();
    target.mask_add(b).unwrap();
    assert_eq!(
        target.announce_on(&port, &mut device, Instant::from_millis(0)),
        2
    );
    let destinations: Vec<_> = device
        .tx
        .iter()
        .map(|f| Reply { bytes: f.clone() }.dst())
        .collect();
    assert_eq!(destinations, vec![a, b]);
}

/// The host fast path: accept a batch, run the disk work outside the engine (here in reverse
/// order, straight between the frames and a separate backing store), then complete each.
#[test]
fn batch_path_moves_data_directly_between_frames_and_disk() {
    let mut h = Harness::new(256, 9000);
    let initiator = Initiator::default();
    let mut backing = vec![0u8; 256 * 512];

    // Eight writes of 17 sectors each, then eight reads of the same ranges.
    let writes: Vec<_> = (0..8u64)
        .map(|i| {
            initiator.write48(
                100 + u32::try_from(i).unwrap(),
                i * 17,
                &pattern(i * 17, 17, 3),
            )
        })
        .collect();
    let plans: Vec<_> = writes
        .iter()
        .map(|f| h.target.accept(&h.port, &f.bytes).expect("a plan"))
        .collect();
    let mut replies = vec![vec![0xA5u8; 9014]; plans.len()];
    for (k, plan) in plans.iter().enumerate().rev() {
        let io = plan.io().expect("a write needs disk work");
        assert_eq!(io.op, IoOp::Write);
        let start = usize::try_from(io.byte_offset()).unwrap();
        backing[start..start + io.byte_len()].copy_from_slice(&writes[k].bytes[io.data_range()]);
        let len = h
            .target
            .complete_into(plan, Ok(()), &writes[k].bytes, &mut replies[k])
            .unwrap();
        assert_eq!(len, 60);
        assert_eq!(replies[k][27], 0x40);
    }
    for i in 0..8u64 {
        let at = usize::try_from(i * 17 * 512).unwrap();
        assert_eq!(&backing[at..at + 17 * 512], &pattern(i * 17, 17, 3)[..]);
    }

    let reads: Vec<_> = (0..8u64)
        .map(|i| initiator.read48(200 + u32::try_from(i).unwrap(), i * 17, 17))
        .collect();
    let plans: Vec<_> = reads
        .iter()
        .map(|f| h.target.accept(&h.port, &f.bytes).unwrap())
        .collect();
    for (k, plan) in plans.iter().enumerate() {
        let io = plan.io().unwrap();
        assert_eq!(io.op, IoOp::Read);
        assert_eq!(plan.reply_len(), 36 + 17 * 512);
        let mut tx = vec![0xA5u8; plan.reply_len()];
        let start = usize::try_from(io.byte_offset()).unwrap();
        tx[io.data_range()].copy_from_slice(&backing[start..start + io.byte_len()]);
        let len = h
            .target
            .complete_into(plan, Ok(()), &reads[k].bytes, &mut tx)
            .unwrap();
        assert_eq!(len, plan.reply_len());
        let reply = Reply { bytes: tx };
        assert_eq!(reply.tag(), 200 + u32::try_from(k).unwrap());
        assert_eq!(reply.ata_status(), 0x40);
        assert_eq!(reply.ata_data(), &pattern(k as u64 * 17, 17, 3)[..]);
    }
}

/// The host shape of the fast path: each request sits in a receive buffer of the largest
/// frame, its disk work runs in that buffer, and the reply is completed in place. The replies
/// are octet for octet what `respond` makes with separate buffers.
#[test]
fn in_place_completion_matches_respond() {
    let initiator = Initiator::default();
    let other = Initiator {
        mac: aoe_tests::OTHER_MAC,
        ..initiator
    };
    let requests = [
        initiator.write48(1, 3, &pattern(3, 2, 5)),
        initiator.read48(2, 3, 2),
        initiator.read28(3, 4, 1),
        initiator.read48(4, 300, 1), // out of range: IDNF, Sector Count echoed
        initiator.ata(5, 0x40, 0xEA, 0, 0, &[]),
        initiator.identify(6),
        initiator.ata(7, 0x50, 0x99, 3, 0x0102_0304_0506, &[]), // unknown: ABRT
        initiator.config(8, 4, b"in place"),
        initiator.config(9, 0, b""),
        initiator.reserve(10, 1, &[INITIATOR_MAC]),
        other.read48(11, 0, 1),           // reserved: AoE error 6
        initiator.request(0x77, 12, &[]), // unknown command: echoed, error 1
        // A bad directive after one applied: the applied one is echoed from the request.
        initiator.mask(13, 1, &[(1, INITIATOR_MAC), (9, TARGET_MAC)]),
    ];
    let mut in_place = Harness::new(64, 1500);
    let mut two_buffers = Harness::new(64, 1500);
    for request in &requests {
        let expected = two_buffers
            .send(request)
            .unwrap_or_else(|| panic!("no reply to {:02x?}", &request.bytes[..30]));
        let plan = in_place
            .target
            .accept(&in_place.port, &request.bytes)
            .unwrap();
        let mut frame = vec![0xA5u8; 1514];
        frame[..request.bytes.len()].copy_from_slice(&request.bytes);
        let io = plan.io().map_or(Ok(()), |io| {
            let disk = in_place.target.disk_mut();
            match io.op {
                IoOp::Read => disk.read(io.lba, frame[io.data_range()].as_chunks_mut().0),
                IoOp::Write => disk.write(io.lba, frame[io.data_range()].as_chunks().0),
                IoOp::Flush => disk.flush(),
            }
        });
        let len = in_place.target.complete(&plan, io, &mut frame).unwrap();
        assert_eq!(
            &frame[..len],
            &expected.bytes[..],
            "tag {}: in place differs from respond",
            expected.tag()
        );
    }
    assert_eq!(in_place.disk_bytes(), two_buffers.disk_bytes());
    assert_eq!(in_place.target.stats(), two_buffers.target.stats());
}

#[test]
fn in_place_completion_refuses_without_writing() {
    let mut h = Harness::new(64, 1500);
    let initiator = Initiator::default();
    let read = initiator.read48(1, 0, 2);
    let plan = h.target.accept(&h.port, &read.bytes).unwrap();
    // The received octets alone are too short for the reply: pass the whole buffer.
    let mut received = read.bytes.clone();
    assert_eq!(h.target.complete(&plan, Ok(()), &mut received), None);
    assert_eq!(received, read.bytes, "nothing written");
    let mut other_tag = initiator.read48(2, 0, 2).pad_to(plan.reply_len()).bytes;
    let before = other_tag.clone();
    assert_eq!(h.target.complete(&plan, Ok(()), &mut other_tag), None);
    assert_eq!(other_tag, before, "nothing written");
    let mut frame = read.pad_to(plan.reply_len()).bytes;
    assert_eq!(
        h.target.complete(&plan, Ok(()), &mut frame),
        Some(plan.reply_len())
    );
}

#[test]
fn batch_path_reports_external_io_failures_as_ata_errors() {
    let mut h = Harness::new(64, 1500);
    let frame = Initiator::default().read48(7, 2, 2);
    let plan = h.target.accept(&h.port, &frame.bytes).unwrap();
    let mut tx = vec![0xA5u8; plan.reply_len()];
    let len = h
        .target
        .complete_into(&plan, Err(ErrorKind::Media), &frame.bytes, &mut tx)
        .unwrap();
    assert_eq!(len, 60, "a failed read carries no data");
    let reply = Reply {
        bytes: tx[..len].to_vec(),
    };
    assert!(!reply.is_error(), "never an AoE-level error for I/O");
    assert_eq!(reply.ata_status(), 0x41);
    assert_eq!(reply.ata_error(), 0x04);
    assert!(reply.bytes[36..].iter().all(|&b| b == 0));
    assert_eq!(h.target.stats().disk_errors, 1);
}

#[test]
fn complete_refuses_short_buffers_and_stale_control_plans() {
    let mut h = Harness::new(64, 1500);
    let initiator = Initiator::default();
    let read = initiator.read48(1, 0, 2);
    let plan = h.target.accept(&h.port, &read.bytes).unwrap();
    let mut short = vec![0u8; plan.reply_len() - 1];
    assert_eq!(h.target.respond(&plan, &read.bytes, &mut short), None);
    assert!(short.iter().all(|&b| b == 0), "nothing written");

    // A config read planned, then a force-set accepted before it completes: the first plan
    // would show state it did not decide on, so it completes to silence.
    let query = initiator.config(2, 0, b"");
    let stale = h.target.accept(&h.port, &query.bytes).unwrap();
    let set = initiator.config(3, 4, b"new");
    let fresh = h.target.accept(&h.port, &set.bytes).unwrap();
    let mut tx = vec![0u8; 1514];
    assert_eq!(
        h.target
            .complete_into(&stale, Ok(()), &query.bytes, &mut tx),
        None
    );
    let len = h
        .target
        .complete_into(&fresh, Ok(()), &set.bytes, &mut tx)
        .unwrap();
    assert_eq!(
        Reply {
            bytes: tx[..len].to_vec()
        }
        .cfg_string(),
        b"new"
    );
}

#[test]
fn disk_trait_objects_work_through_mut_references() {
    // `&mut D` is a Disk too, so a platform can keep ownership of its disk.
    let mut disk = MemDisk::new(vec![0u8; 16 * 512]);
    {
        let mut target = Target::new(Config::new(1, 1), &mut disk).unwrap();
        let port = Port::new(TARGET_MAC, 1500);
        let initiator = Initiator {
            shelf: 1,
            slot: 1,
            ..Initiator::default()
        };
        let mut tx = [0u8; 1514];
        let data = pattern(3, 1, 1);
        assert!(
            target
                .handle(&port, &initiator.write48(1, 3, &data).bytes, &mut tx)
                .is_some()
        );
    }
    let mut sector = [[0u8; 512]; 1];
    disk.read(3, &mut sector).unwrap();
    assert_eq!(&sector[0][..], &pattern(3, 1, 1)[..]);
}

#[test]
fn a_port_that_cannot_carry_a_sector_is_silent_to_discovery() {
    // MTU 547 gives (547 - 36) / 512 = 0 sectors; advertising 0 would read as 2 to Linux.
    let mut target = ram_target(8);
    let port = Port::new(TARGET_MAC, 547);
    let mut tx = [0u8; 1514];
    let query = Initiator::default().config(1, 0, b"");
    assert_eq!(target.handle(&port, &query.bytes, &mut tx), None);
    assert_eq!(target.announce(&port, TARGET_MAC, &mut tx), None);
    let mut device = QueueDevice::default();
    assert_eq!(
        target.announce_on(&port, &mut device, Instant::from_millis(0)),
        0
    );
    assert!(device.tx.is_empty());
    // One octet more of MTU and discovery works, advertising one sector.
    let port = Port::new(TARGET_MAC, 548);
    let len = target.handle(&port, &query.bytes, &mut tx).unwrap();
    assert_eq!(
        Reply {
            bytes: tx[..len].to_vec()
        }
        .cfg_sector_count(),
        1
    );
}

#[test]
fn complete_refuses_a_frame_other_than_the_planned_one() {
    let mut h = Harness::new(64, 1500);
    let initiator = Initiator::default();
    let read = initiator.read48(1, 0, 2);
    let plan = h.target.accept(&h.port, &read.bytes).unwrap();
    let mut tx = vec![0u8; plan.reply_len()];
    let other_tag = initiator.read48(2, 0, 2);
    assert_eq!(
        h.target
            .complete_into(&plan, Ok(()), &other_tag.bytes, &mut tx),
        None
    );
    let other_source = Initiator {
        mac: aoe_tests::OTHER_MAC,
        ..initiator
    }
    .read48(1, 0, 2);
    assert_eq!(
        h.target
            .complete_into(&plan, Ok(()), &other_source.bytes, &mut tx),
        None
    );
    assert_eq!(
        h.target
            .complete_into(&plan, Ok(()), &read.bytes[..20], &mut tx),
        None
    );
    assert!(tx.iter().all(|&b| b == 0), "nothing written");
    assert_eq!(
        h.target.complete_into(&plan, Ok(()), &read.bytes, &mut tx),
        Some(plan.reply_len())
    );
}

#[test]
fn a_config_string_too_long_for_the_frame_buffer_is_refused_not_stored() {
    // The frame buffer holds 600 octets: a 1024-octet string could never be read back.
    let mut config = Config::new(SHELF, SLOT);
    config.max_frame_len = 600;
    let mut target = Target::new(config, MemDisk::new(vec![0u8; 8 * 512])).unwrap();
    let port = Port::new(TARGET_MAC, 1500);
    let mut tx = vec![0u8; 1514];
    let long = vec![b'x'; 1024];
    let len = target
        .handle(
            &port,
            &Initiator::default().config(1, 4, &long).bytes,
            &mut tx,
        )
        .unwrap();
    let reply = Reply {
        bytes: tx[..len].to_vec(),
    };
    assert!(reply.is_error());
    assert_eq!(reply.error(), 2);
    assert_eq!(target.config_string(), b"");
    // The longest string that fits (600 - 32 octets) is stored and read back.
    let fits = vec![b'y'; 600 - 32];
    let len = target
        .handle(
            &port,
            &Initiator::default().config(2, 4, &fits).bytes,
            &mut tx,
        )
        .unwrap();
    assert_eq!(len, 600);
    assert_eq!(target.config_string(), &fits[..]);
}

#[test]
fn config_answers_its_address_with_independent_wildcards() {
    let config = Config::new(SHELF, SLOT);
    assert!(config.answers(SHELF, SLOT));
    assert!(config.answers(0xFFFF, SLOT));
    assert!(config.answers(SHELF, 0xFF));
    assert!(config.answers(0xFFFF, 0xFF));
    assert!(!config.answers(SHELF + 1, SLOT));
    assert!(!config.answers(SHELF, SLOT + 1));
    assert!(!config.answers(0xFFFF, SLOT + 1));
    assert!(!config.answers(SHELF + 1, 0xFF));
}

#[test]
fn aoe_header_reads_a_frame_through_the_wire_view() {
    use aoe_core::wire::{aoe, aoe_header};
    let frame = Initiator::default().read48(0x0102_0304, 0, 1);
    let header = aoe_header(&frame.bytes).expect("an AoE frame");
    assert_eq!((header.major(), header.minor()), (SHELF, SLOT));
    assert_eq!(header.command(), aoe::Command::IssueAta);
    assert_eq!(header.tag(), 0x0102_0304);
    assert!(aoe_header(&frame.bytes[..23]).is_err(), "short AoE header");
    assert!(
        aoe_header(&frame.clone().set(12, 0x08).set(13, 0).bytes).is_err(),
        "another EtherType"
    );
}
