//! A minimal AoE load generator for measuring a target (host-sim or vblade) on one link.
//!
//! ```text
//! cargo run --release -p aoe-host-sim --example blast -- IFACE SHELF SLOT read|write seq|rand QD SECONDS [TARGET_PID]
//! ```
//!
//! It discovers the target with a Query Config, then keeps QD requests in flight for SECONDS,
//! each one full frame (the advertised sectors per frame) at the next LBA (`seq`) or at a
//! random frame-aligned LBA (`rand`), resending any request unanswered after 200 ms. It prints MB/s, IOPS, p50/p99
//! latency, retransmits and, given the target's PID, the target's CPU seconds per GB moved.
//! The `aoe bench` command of the initiator is the full tool; this is for quick figures.

// Statistics arithmetic on counts far below 2^52: the float conversions are exact enough.
#![allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]

use aoe_host_sim::net::{FrameBufs, Link, PacketLink};
use std::time::{Duration, Instant};

fn header(frame: &mut [u8], dst: [u8; 6], src: [u8; 6], shelf: u16, slot: u8, cmd: u8, tag: u32) {
    frame[..6].copy_from_slice(&dst);
    frame[6..12].copy_from_slice(&src);
    frame[12..14].copy_from_slice(&0x88a2u16.to_be_bytes());
    frame[14] = 0x10;
    frame[15] = 0;
    frame[16..18].copy_from_slice(&shelf.to_be_bytes());
    frame[18] = slot;
    frame[19] = cmd;
    frame[20..24].copy_from_slice(&tag.to_be_bytes());
}

fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks: f64 = fields.get(11..13).map_or(0.0, |f| {
        f.iter().map(|v| v.parse::<f64>().unwrap_or(0.0)).sum()
    });
    // SAFETY: sysconf has no preconditions.
    ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

struct Xorshift(u64);

impl Xorshift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 7 {
        eprintln!("usage: blast IFACE SHELF SLOT read|write seq|rand QD SECONDS [TARGET_PID]");
        std::process::exit(2);
    }
    let shelf: u16 = args[1].parse().expect("shelf");
    let slot: u8 = args[2].parse().expect("slot");
    let write = args[3] == "write";
    let random = args[4] == "rand";
    let depth: usize = args[5].parse().expect("queue depth");
    let seconds: f64 = args[6].parse().expect("seconds");
    let target_pid: Option<u32> = args.get(7).map(|p| p.parse().expect("pid"));

    // PacketLink receives from the socket queue: on veth, filling a receive ring would be
    // billed to the sender (the target under test).
    let mut link = PacketLink::open(&args[0]).expect("open link");
    // Room for a full window of jumbo replies, or the initiator itself drops them.
    let _ = link.set_buffer_bytes(
        aoe_host_sim::net::buffer_bytes_for(depth.max(64), 9000),
        1 << 20,
    );
    let me = link.mac();
    let mut rx = FrameBufs::new(64, 9014);
    let mut tx = FrameBufs::new(depth.max(1), 9014);

    // Discover: MAC, sectors per frame, buffer count, then capacity from IDENTIFY.
    let mut query = [0u8; 60];
    header(&mut query, [0xff; 6], me, shelf, slot, 1, 1);
    link.send_frame(&query).unwrap();
    let (target, spf, bufcnt) = loop {
        let n = link.recv(&mut rx, Some(Duration::from_secs(2))).unwrap();
        assert!(n > 0, "no target answered");
        if let Some(f) = (0..n)
            .map(|i| rx.frame(i))
            .find(|f| f.len() >= 32 && f[14] & 0x08 != 0 && f[19] == 1)
        {
            break (
                <[u8; 6]>::try_from(&f[6..12]).unwrap(),
                f[28],
                u16::from_be_bytes([f[24], f[25]]),
            );
        }
    };
    let mut ident = [0u8; 60];
    header(&mut ident, target, me, shelf, slot, 0, 2);
    ident[24..28].copy_from_slice(&[0, 0, 1, 0xEC]);
    link.send_frame(&ident).unwrap();
    let sectors = loop {
        let n = link.recv(&mut rx, Some(Duration::from_secs(2))).unwrap();
        assert!(n > 0, "no IDENTIFY reply");
        if let Some(f) = (0..n)
            .map(|i| rx.frame(i))
            .find(|f| f.len() >= 36 + 512 && f[20..24] == 2u32.to_be_bytes())
        {
            break u64::from_le_bytes(f[36 + 200..36 + 208].try_into().unwrap());
        }
    };
    let per_frame = u64::from(spf);
    let frames_on_disk = sectors / per_frame;
    eprintln!(
        "target {target:02x?}: {sectors} sectors, {spf} sectors/frame, buffer count {bufcnt}"
    );

    let mut rng = Xorshift(0x9E37_79B9_7F4A_7C15);
    let mut next_seq = 0u64;
    let mut tag = 1000u32;
    // In flight: tag -> (sent at, lba)
    let mut inflight: Vec<(u32, Instant, u64)> = Vec::with_capacity(depth);
    let mut latencies: Vec<u32> = Vec::with_capacity(1 << 20);
    let mut retransmits = 0u64;
    let mut done = 0u64;
    let build = |tx: &mut FrameBufs, index: usize, tag: u32, lba: u64| {
        let len = if write {
            36 + 512 * per_frame as usize
        } else {
            60
        };
        let frame = tx.slot_mut(index);
        header(frame, target, me, shelf, slot, 0, tag);
        frame[24] = 0x40 | u8::from(write);
        frame[25] = 0;
        frame[26] = u8::try_from(per_frame).unwrap();
        frame[27] = if write { 0x34 } else { 0x24 };
        frame[28..34].copy_from_slice(&lba.to_le_bytes()[..6]);
        frame[34] = 0;
        frame[35] = 0;
        tx.set_len(index, len);
    };
    let cpu_before = target_pid.map(cpu_seconds);
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(seconds);
    let mut pick = |rng: &mut Xorshift| {
        let frame = if random {
            rng.next() % frames_on_disk
        } else {
            let f = next_seq % frames_on_disk;
            next_seq += 1;
            f
        };
        frame * per_frame
    };
    // Fill the window.
    for i in 0..depth {
        let lba = pick(&mut rng);
        build(&mut tx, i, tag, lba);
        inflight.push((tag, Instant::now(), lba));
        tag = tag.wrapping_add(1);
    }
    link.send(&tx, depth).unwrap();
    while Instant::now() < deadline {
        let n = link.recv(&mut rx, Some(Duration::from_millis(50))).unwrap();
        let mut count = 0;
        for i in 0..n {
            let f = rx.frame(i);
            if f.len() < 28 || f[14] & 0x08 == 0 || f[19] != 0 {
                continue;
            }
            let t = u32::from_be_bytes(f[20..24].try_into().unwrap());
            if let Some(pos) = inflight.iter().position(|e| e.0 == t) {
                assert_eq!(f[27] & 0x01, 0, "ATA error status {:#x}", f[27]);
                let (_, sent, _) = inflight.swap_remove(pos);
                latencies.push(u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX));
                done += 1;
                let lba = pick(&mut rng);
                build(&mut tx, count, tag, lba);
                inflight.push((tag, Instant::now(), lba));
                tag = tag.wrapping_add(1);
                count += 1;
            }
        }
        // Resend anything unanswered for 200 ms, with a new tag (as Linux does).
        let now = Instant::now();
        for entry in inflight.iter_mut() {
            if count < tx.count() && now.duration_since(entry.1) > Duration::from_millis(200) {
                build(&mut tx, count, tag, entry.2);
                *entry = (tag, now, entry.2);
                tag = tag.wrapping_add(1);
                retransmits += 1;
                count += 1;
            }
        }
        if count > 0 {
            link.send(&tx, count).unwrap();
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = target_pid
        .map(cpu_seconds)
        .zip(cpu_before)
        .map(|(after, before)| after - before);
    latencies.sort_unstable();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * p) as usize)
            .copied()
            .unwrap_or(0)
    };
    let bytes = done as f64 * per_frame as f64 * 512.0;
    let mb_s = bytes / elapsed / 1e6;
    let cpu_per_gb = cpu.map_or(String::from("-"), |c| format!("{:.2}", c / (bytes / 1e9)));
    println!(
        "{} {} qd {depth:>2} spf {spf:>2}: {mb_s:8.1} MB/s {:9.0} IOPS p50 {:5} us p99 {:6} us retransmits {retransmits:5} target CPU s/GB {cpu_per_gb}",
        if write { "write" } else { "read " },
        if random { "rand" } else { "seq " },
        done as f64 / elapsed,
        pct(0.5),
        pct(0.99),
    );
}
