//! Frames per second through the AoE engine on an in-memory disk.
//!
//! `cargo bench -p aoe-tests --bench engine` (set `AOE_BENCH_SECONDS`, default 1, for the time
//! budget of each case; CI uses 0.2).
//!
//! Cases: READ SECTORS EXT and WRITE SECTORS EXT of 2 sectors (1 KiB, the most an MTU of 1500
//! carries) and of 17 sectors (8.5 KiB, MTU 9000), each through
//!
//! * `handle`: [`Target::handle`], one frame at a time, the target's own `Disk` doing the I/O
//!   (the microcontroller shape);
//! * `split/32`: [`Target::accept`] on a batch of 32 frames, then each [`Plan::io`] run here
//!   against the disk (reads copied from the disk's bytes straight into the reply frame at
//!   `DiskIo::data_range`, writes through `Disk::write` straight from the request frame), then
//!   [`Target::complete_into`] on each (the host fast-path shape, with separate reply
//!   buffers so that the request frames are built only once).
//!
//! Access pattern: sequential LBAs over a 64 MiB `MemDisk`, wrapping at the end, so the data
//! streams through memory rather than staying in the CPU caches. The disk is filled with a
//! non-zero byte first so that every page is resident before timing starts (a zeroed `Vec`
//! would map the shared zero page and fault on first write). Request frames are built once;
//! only the tag and LBA octets change per frame, as a NIC would deliver them into fixed
//! buffers. Every reply's length and ATA status are checked; a bad one fails the run.
//!
//! One thread, wall-clock time (`std::time::Instant`). After a warm-up of a tenth of the budget,
//! each case runs as ten slices of a tenth of the budget; the table shows the median slice
//! (frames/s, MB/s and ns/frame all derive from it) and the spread, (max − min) / median of
//! the slices, as a hint of how noisy the machine was. MB/s counts payload octets (sector
//! data) in 10^6 octets per second.

use aoe_core::disk::{Disk, Error as _, MemDisk};
use aoe_core::{Config, IoOp, Plan, Port, Target};
use aoe_tests::{Initiator, SHELF, SLOT, TARGET_MAC, pattern};
use std::hint::black_box;
use std::time::{Duration, Instant};

/// Disk size: large enough that a sequential pass does not fit in the CPU caches.
const DISK_BYTES: usize = 64 << 20;
/// Frames accepted before their I/O runs, on the split path.
const BATCH: usize = 32;
/// Timed slices per case; the median is reported.
const SLICES: usize = 10;
/// Frames between two looks at the clock.
const CHUNK: usize = 256;
/// Frame offsets (AoE r11): tag, and the six LBA octets of the ATA header.
const TAG: std::ops::Range<usize> = 20..24;
const LBA: std::ops::Range<usize> = 28..34;
/// ATA status octet of a reply, and its DRDY bit.
const STATUS: usize = 27;
const DRDY: u8 = 0x40;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Path {
    Handle,
    Split,
}

#[derive(Clone, Copy)]
struct Case {
    op: IoOp,
    path: Path,
    sectors: u8,
    mtu: usize,
}

impl Case {
    fn name(&self) -> String {
        let op = if self.op == IoOp::Read {
            "READ"
        } else {
            "WRITE"
        };
        let path = match self.path {
            Path::Handle => "handle".to_string(),
            Path::Split => format!("split/{BATCH}"),
        };
        format!("{op} {path}")
    }

    fn payload(&self) -> usize {
        usize::from(self.sectors) * 512
    }

    /// Reply length: headers (36 octets) plus data for a read.
    fn reply_len(&self) -> usize {
        match self.op {
            IoOp::Read => 36 + self.payload(),
            _ => 60,
        }
    }

    fn request(&self) -> Vec<u8> {
        let initiator = Initiator::default();
        match self.op {
            IoOp::Read => initiator.read48(0, 0, self.sectors).bytes,
            _ => {
                initiator
                    .write48(0, 0, &pattern(0, usize::from(self.sectors), 3))
                    .bytes
            }
        }
    }
}

/// Sequential LBAs, wrapping at the end of the disk.
struct Sequence {
    next: u64,
    step: u64,
    end: u64,
    tag: u32,
}

impl Sequence {
    /// Writes the next tag and LBA into a request frame.
    fn stamp(&mut self, frame: &mut [u8]) {
        if self.next + self.step > self.end {
            self.next = 0;
        }
        self.tag = self.tag.wrapping_add(1);
        frame[TAG].copy_from_slice(&self.tag.to_be_bytes());
        frame[LBA].copy_from_slice(&self.next.to_le_bytes()[..6]);
        self.next += self.step;
    }
}

type MemTarget = Target<MemDisk<Vec<u8>>>;

/// Frames through `handle` until `budget` has passed; returns (frames, elapsed, bad replies).
fn run_handle(
    target: &mut MemTarget,
    case: &Case,
    seq: &mut Sequence,
    budget: Duration,
) -> (u64, Duration, u64) {
    let port = Port::new(TARGET_MAC, case.mtu);
    let mut rx = case.request();
    let mut tx = vec![0u8; port.max_frame_len()];
    let expected = Some(case.reply_len());
    let (mut frames, mut bad) = (0u64, 0u64);
    let start = Instant::now();
    loop {
        for _ in 0..CHUNK {
            seq.stamp(&mut rx);
            let len = target.handle(&port, black_box(&rx), black_box(&mut tx));
            if len != expected || tx[STATUS] != DRDY {
                bad += 1;
            }
        }
        frames += CHUNK as u64;
        let elapsed = start.elapsed();
        if elapsed >= budget {
            return (frames, elapsed, bad);
        }
    }
}

/// Batches through `accept`, our own I/O and `complete` until `budget` has passed.
fn run_split(
    target: &mut MemTarget,
    case: &Case,
    seq: &mut Sequence,
    budget: Duration,
) -> (u64, Duration, u64) {
    let port = Port::new(TARGET_MAC, case.mtu);
    let mut rx: Vec<Vec<u8>> = (0..BATCH).map(|_| case.request()).collect();
    let mut tx: Vec<Vec<u8>> = (0..BATCH)
        .map(|_| vec![0u8; port.max_frame_len()])
        .collect();
    let mut plans: Vec<Option<Plan>> = Vec::with_capacity(BATCH);
    let expected = Some(case.reply_len());
    let (mut frames, mut bad) = (0u64, 0u64);
    let start = Instant::now();
    loop {
        for _ in 0..CHUNK / BATCH {
            plans.clear();
            for frame in &mut rx {
                seq.stamp(frame);
                plans.push(target.accept(&port, black_box(frame)));
            }
            for ((plan, rx), tx) in plans.iter().zip(&rx).zip(&mut tx) {
                let Some(plan) = plan else {
                    bad += 1;
                    continue;
                };
                let result = match plan.io() {
                    Some(io) if io.op == IoOp::Read => {
                        let start = usize::try_from(io.byte_offset()).expect("in memory");
                        let source = &target.disk().as_bytes()[start..start + io.byte_len()];
                        tx[io.data_range()].copy_from_slice(source);
                        Ok(())
                    }
                    Some(io) if io.op == IoOp::Write => {
                        let sectors = rx[io.data_range()].as_chunks::<512>().0;
                        target
                            .disk_mut()
                            .write(io.lba, sectors)
                            .map_err(|e| e.kind())
                    }
                    Some(_) | None => Ok(()),
                };
                let len = target.complete_into(plan, result, rx, black_box(tx));
                if len != expected || tx[STATUS] != DRDY {
                    bad += 1;
                }
            }
        }
        frames += CHUNK as u64;
        let elapsed = start.elapsed();
        if elapsed >= budget {
            return (frames, elapsed, bad);
        }
    }
}

fn budget() -> Duration {
    let seconds = match std::env::var("AOE_BENCH_SECONDS") {
        Ok(value) => value
            .parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && *s > 0.0)
            .unwrap_or_else(|| panic!("AOE_BENCH_SECONDS={value:?} is not a positive number")),
        Err(_) => 1.0,
    };
    Duration::from_secs_f64(seconds)
}

fn main() {
    let budget = budget();
    let mut config = Config::new(SHELF, SLOT);
    config.max_frame_len = 9014;
    let disk = MemDisk::new(vec![0x5Au8; DISK_BYTES]);
    let mut target = Target::new(config, disk).expect("valid config");
    let end = target.sector_count();

    println!(
        "aoe-core engine, in memory: {} MiB MemDisk, sequential LBAs, {:.2} s per case, one thread",
        DISK_BYTES >> 20,
        budget.as_secs_f64()
    );
    println!(
        "{:<15} {:>28} {:>10} {:>8} {:>9} {:>8}",
        "case", "payload", "frames/s", "MB/s", "ns/frame", "spread"
    );
    let mut failed = false;
    for (sectors, mtu) in [(2u8, 1500usize), (17, 9000)] {
        for op in [IoOp::Read, IoOp::Write] {
            for path in [Path::Handle, Path::Split] {
                let case = Case {
                    op,
                    path,
                    sectors,
                    mtu,
                };
                let mut seq = Sequence {
                    next: 0,
                    step: u64::from(sectors),
                    end,
                    tag: 0,
                };
                let run = match path {
                    Path::Handle => run_handle,
                    Path::Split => run_split,
                };
                // Warm-up, then SLICES equal slices of the budget; the median slice is reported
                // (robust against another process taking the core for a moment), with the
                // spread of all slices.
                let (_, _, mut bad) = run(&mut target, &case, &mut seq, budget / 10);
                let mut rates = Vec::with_capacity(SLICES);
                for _ in 0..SLICES {
                    let (frames, elapsed, slice_bad) =
                        run(&mut target, &case, &mut seq, budget.div_f64(SLICES as f64));
                    rates.push(frames as f64 / elapsed.as_secs_f64());
                    bad += slice_bad;
                }
                rates.sort_by(f64::total_cmp);
                let per_second = rates[SLICES / 2];
                let spread = (rates[SLICES - 1] - rates[0]) / per_second * 100.0;
                let kib = case.payload() as f64 / 1024.0;
                let payload = format!("{kib} KiB ({sectors} sect, MTU {mtu})");
                println!(
                    "{:<15} {:>28} {:>10.0} {:>8.0} {:>9.1} {:>7.0}%",
                    case.name(),
                    payload,
                    per_second,
                    per_second * case.payload() as f64 / 1e6,
                    1e9 / per_second,
                    spread
                );
                if bad > 0 {
                    eprintln!("{}: {} bad replies", case.name(), bad);
                    failed = true;
                }
            }
        }
    }
    let stats = target.stats();
    if failed || stats.dropped != 0 || stats.ata_errors != 0 {
        eprintln!("engine benchmark: FAILED ({stats:?})");
        std::process::exit(1);
    }
}
