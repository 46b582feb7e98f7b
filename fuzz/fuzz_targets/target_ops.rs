//! Sequences of reads, writes, flushes, IDENTIFY and config commands against a shadow disk, on
//! a `FaultyDisk` whose fuel, stickiness, torn writes and bad sectors come from the input.
//!
//! The shadow disk (`aoe_testkit::shadow::ShadowDisk`, the same model the proptest suite
//! uses) keeps, per sector, the contents it may hold: one normally, and after a failed write
//! also that write's data (a torn write lands any subset of its sectors). A successful read
//! must return one of them, and narrows the sector to it. Its fault model mirrors
//! `FaultyDisk`, so every reply's ATA registers are predicted exactly: a failed write or read
//! is DRDY|ERR with ABRT (IDNF for an out-of-range request), never an AoE error.
//! Half the steps go through the host fast path (`accept`, run `Plan::io` on the disk by hand
//! in the request's own buffer, `complete` in place), the others through `respond`.
#![no_main]

use aoe_core::disk::{Disk, Error as _, ErrorKind, FaultPlan, FaultyDisk, MemDisk, SECTOR_SIZE};
use aoe_core::{IoOp, Plan, Port, Target};
use aoe_fuzz::{MAX_FRAME, TARGET_MAC, check_envelope, export, mtu_from, respond};
use aoe_testkit::frame::{Initiator, aflags, ata_cmd};
use aoe_testkit::sectors::write_images;
use aoe_testkit::shadow::{Outcome, ShadowDisk};
use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;

type TestDisk = FaultyDisk<MemDisk<Vec<u8>>>;

const LBA48_MASK: u64 = (1 << 48) - 1;
const LBA28_MASK: u64 = 0x0FFF_FFFF;

#[derive(Arbitrary, Debug, Clone, Copy)]
struct FaultInput {
    fail_after: Option<u8>,
    sticky: bool,
    torn: u8,
    bad: Option<(u8, u8)>,
    kind: u8,
}

impl FaultInput {
    fn plan(&self) -> FaultPlan {
        FaultPlan {
            fail_after: self.fail_after.map(u32::from),
            sticky: self.sticky,
            torn_sectors: usize::from(self.torn % 5),
            bad_sectors: self
                .bad
                .map(|(start, len)| (u64::from(start), u64::from(start) + u64::from(len % 8))),
            kind: match self.kind % 8 {
                0 => ErrorKind::NotReady,
                1 => ErrorKind::WriteProtected,
                2 => ErrorKind::Other,
                3 => ErrorKind::OutOfRange,
                _ => ErrorKind::Media,
            },
        }
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Lba {
    /// Reduced modulo a little more than the disk: in range, at the end, just past it.
    Near(u16),
    /// Any 64-bit value, cut to the command's 28 or 48 bits.
    Far(u64),
}

#[derive(Arbitrary, Debug, Clone)]
enum Op {
    Write {
        ext: bool,
        lba: Lba,
        count: u8,
        short: Option<u16>,
    },
    Read {
        ext: bool,
        lba: Lba,
        count: u8,
    },
    Flush {
        ext: bool,
    },
    Identify,
    ConfigRead,
    ConfigForceSet(Vec<u8>),
    Arm(FaultInput),
}

#[derive(Arbitrary, Debug, Clone)]
struct Step {
    fast_path: bool,
    tag: u32,
    op: Op,
}

#[derive(Arbitrary, Debug)]
struct Input {
    sectors: u8,
    mtu: u16,
    fault: FaultInput,
    steps: Vec<Step>,
}

/// The shadow disk and the config string the export should have.
struct Model {
    disk: ShadowDisk,
    config_string: Vec<u8>,
}

/// What a step's ATA reply must say.
enum AtaExpect {
    /// Status 0x40; a read also returns `count` sectors from `lba`.
    Ok { read: Option<(u64, u8)> },
    /// Status 0x41 with this Error register, Sector Count echoed.
    Err(u8),
}

/// The host fast path: the request sits in a receive buffer of the largest frame; the
/// plan's I/O runs on the disk by hand in that buffer, and the reply is completed in place.
fn fast_path(target: &mut Target<TestDisk>, port: &Port, plan: &Plan, rx: &[u8]) -> Vec<u8> {
    let Some(io) = plan.io() else {
        return respond(target, port, plan, rx);
    };
    let mut frame = vec![0xA5u8; MAX_FRAME.max(rx.len())];
    frame[..rx.len()].copy_from_slice(rx);
    let disk = target.disk_mut();
    let result = match io.op {
        IoOp::Read => disk.read(
            io.lba,
            frame[io.data_range()].as_chunks_mut::<SECTOR_SIZE>().0,
        ),
        IoOp::Write => disk.write(io.lba, frame[io.data_range()].as_chunks::<SECTOR_SIZE>().0),
        IoOp::Flush => disk.flush(),
    };
    let len = target
        .complete(plan, result.map_err(|e| e.kind()), &mut frame)
        .expect("complete refused the request's own buffer");
    assert!((60..=plan.reply_len()).contains(&len));
    frame.truncate(len);
    frame
}

fn run(input: &Input) {
    let sectors = 1 + u64::from(input.sectors % 128);
    let mtu = mtu_from(input.mtu);
    let port = Port::new(TARGET_MAC, mtu);
    let plan = input.fault.plan();
    let bytes = vec![0u8; usize::try_from(sectors).unwrap() * SECTOR_SIZE];
    let mut target = export(FaultyDisk::new(MemDisk::new(bytes), plan));
    let spf = target.sectors_per_frame(&port);
    let mut model = Model {
        disk: ShadowDisk::new(sectors, spf),
        config_string: Vec::new(),
    };
    model.disk.set_fault_plan(plan);
    let initiator = Initiator::default();
    let lba_of = |lba: Lba, ext: bool| {
        let raw = match lba {
            Lba::Near(near) => u64::from(near) % (sectors + 20),
            Lba::Far(far) => far,
        };
        raw & if ext { LBA48_MASK } else { LBA28_MASK }
    };

    for step in &input.steps {
        let tag = step.tag;
        let mut write_id = 0;
        let (rx, transfer) = match &step.op {
            Op::Arm(fault) => {
                let plan = fault.plan();
                target.disk_mut().set_plan(plan);
                model.disk.set_fault_plan(plan);
                continue;
            }
            Op::Write {
                ext,
                lba,
                count,
                short,
            } => {
                let lba = lba_of(*lba, *ext);
                let count = *count % spf.saturating_add(2);
                write_id = model.disk.next_write_id();
                let mut data = write_images(lba, count, write_id);
                if let Some(cut) = short {
                    let cut = 1 + usize::from(*cut) % data.len().max(1);
                    data.truncate(data.len().saturating_sub(cut));
                }
                let frame = if *ext {
                    let flags = aflags::EXT | aflags::WRITE;
                    initiator.ata(tag, flags, ata_cmd::WRITE_EXT, count, lba, &data)
                } else {
                    let lba28 = lba | 0xE000_0000;
                    initiator.ata(tag, aflags::WRITE, ata_cmd::WRITE, count, lba28, &data)
                };
                (frame.bytes, Some((true, lba, count, data.len())))
            }
            Op::Read { ext, lba, count } => {
                let lba = lba_of(*lba, *ext);
                let count = *count % spf.saturating_add(2);
                let frame = if *ext {
                    initiator.read48(tag, lba, count)
                } else {
                    initiator.read28(tag, u32::try_from(lba).unwrap(), count)
                };
                (frame.bytes, Some((false, lba, count, 0)))
            }
            Op::Flush { ext } => {
                let frame = if *ext {
                    initiator.ata(tag, aflags::EXT, ata_cmd::FLUSH_EXT, 0, 0, &[])
                } else {
                    initiator.ata(tag, 0, ata_cmd::FLUSH, 0, 0, &[])
                };
                (frame.bytes, None)
            }
            Op::Identify => (initiator.identify(tag).bytes, None),
            Op::ConfigRead => (initiator.config(tag, 0, b"").bytes, None),
            Op::ConfigForceSet(string) => {
                let string = &string[..string.len().min(1024)];
                (initiator.config(tag, 4, string).bytes, None)
            }
        };

        let plan = target
            .accept(&port, &rx)
            .expect("every step's request gets a reply");
        let reply = if step.fast_path {
            fast_path(&mut target, &port, &plan, &rx)
        } else {
            respond(&mut target, &port, &plan, &rx)
        };
        check_envelope(&reply, &rx, &port);
        // A config string whose replies could never fit this port is refused with error 2.
        let refused = matches!(&step.op, Op::ConfigForceSet(string)
            if 32 + string.len().min(1024) > port.max_frame_len().min(MAX_FRAME));
        if refused {
            assert_eq!(reply[14], 0x1C, "E flag on a refused config string");
            assert_eq!(reply[15], 2, "error 2 (bad argument)");
            assert_eq!(reply.len(), 60, "a header-only error reply");
            continue;
        }
        assert_eq!(reply[14], 0x18, "no AoE error in any other reply");

        let expect = match (&step.op, transfer) {
            (_, Some((write, lba, count, data_len))) => {
                let outcome = if write {
                    model.disk.write(lba, count, data_len, write_id)
                } else {
                    model.disk.read(lba, count)
                };
                Some(match outcome {
                    Outcome::Failed(error) => AtaExpect::Err(error),
                    Outcome::Done if write => AtaExpect::Ok { read: None },
                    Outcome::Done => AtaExpect::Ok {
                        read: Some((lba, count)),
                    },
                })
            }
            (Op::Flush { .. }, _) => Some(match model.disk.flush() {
                Outcome::Failed(error) => AtaExpect::Err(error),
                Outcome::Done => AtaExpect::Ok { read: None },
            }),
            (Op::Identify, _) => {
                assert_eq!(reply.len(), 36 + 512, "IDENTIFY reply length");
                assert_eq!(reply[27], 0x40, "IDENTIFY status");
                None
            }
            (Op::ConfigForceSet(string), _) => {
                model.config_string = string[..string.len().min(1024)].to_vec();
                None
            }
            _ => None,
        };
        match expect {
            Some(AtaExpect::Ok { read }) => {
                assert_eq!(
                    [reply[25], reply[26], reply[27]],
                    [0, 0, 0x40],
                    "ATA success"
                );
                match read {
                    Some((lba, count)) => {
                        assert_eq!(reply.len(), 36 + usize::from(count) * SECTOR_SIZE);
                        if let Err(why) = model.disk.check_read(lba, &reply[36..]) {
                            panic!("{why}");
                        }
                    }
                    None => assert_eq!(reply.len(), 60, "a reply without data"),
                }
            }
            Some(AtaExpect::Err(error)) => {
                assert_eq!(reply.len(), 60, "an ATA error carries no data");
                assert_eq!(reply[27], 0x41, "ATA status after a failure");
                assert_eq!(reply[25], error, "ATA error register");
                assert_eq!(reply[26], rx[26], "Sector Count echoed on failure");
            }
            None if rx[19] == 1 => {
                assert_eq!(reply[28], spf, "config Sector Count");
                let len = usize::from(u16::from_be_bytes([reply[30], reply[31]]));
                assert_eq!(
                    &reply[32..32 + len],
                    &model.config_string[..],
                    "config string"
                );
            }
            None => {}
        }
        // A request that did not write must leave the disk as the model has it.
        if !matches!(
            expect,
            Some(AtaExpect::Ok { read: None }) if matches!(step.op, Op::Write { .. })
        ) && !matches!(step.op, Op::Read { .. })
        {
            check_disk(&model, &target);
        }
    }
    check_disk(&model, &target);
}

/// Every sector of the disk holds what the model allows.
fn check_disk(model: &Model, target: &Target<TestDisk>) {
    if let Err(why) = model.disk.check_disk(target.disk().inner().as_bytes()) {
        panic!("{why}");
    }
}

fuzz_target!(|input: Input| run(&input));
