//! An in-memory demo of the engine: export e1.0 (an 8 MiB `MemDisk`) on a port with MTU 9000,
//! then act as an initiator the way Linux `aoe` does: broadcast discovery, IDENTIFY, write a
//! few MiB with WRITE SECTORS EXT frames of the largest size the export offers, read them back
//! and compare, FLUSH CACHE EXT. Nothing touches a network interface.
//!
//! `cargo run --release -p aoe-tests --bin aoe-demo`. Exits with status 1 on any mismatch.

use aoe_core::disk::MemDisk;
use aoe_core::wire::EthernetAddress;
use aoe_core::{Config, Port, Target};
use aoe_tests::{BROADCAST_MAC, INITIATOR_MAC, Initiator, Reply, ata_cmd, pattern};
use std::process::ExitCode;
use std::time::Instant;

const SHELF: u16 = 1;
const SLOT: u8 = 0;
const DISK_BYTES: usize = 8 << 20;
const MTU: usize = 9000;
/// Written and read back, from LBA 0.
const TRANSFER_BYTES: usize = 4 << 20;
const PORT_MAC: EthernetAddress = EthernetAddress([0x02, 0x00, 0x00, 0x00, 0x01, 0x00]);

/// ATA status bits.
const DRDY: u8 = 0x40;
const ERR: u8 = 0x01;

struct Demo {
    target: Target<MemDisk<Vec<u8>>>,
    port: Port,
    tx: Vec<u8>,
    frames: u64,
}

impl Demo {
    /// Hands one request to the engine; the reply, or an error on silence.
    fn send(&mut self, request: &[u8]) -> Result<Reply, String> {
        self.frames += 1;
        let len = self
            .target
            .handle(&self.port, request, &mut self.tx)
            .ok_or("the target did not answer")?;
        Ok(Reply {
            bytes: self.tx[..len].to_vec(),
        })
    }
}

/// Checks the common part of an ATA reply: R set, no AoE error, tag echoed, DRDY without ERR.
fn check_ata(reply: &Reply, tag: u32, what: &str) -> Result<(), String> {
    if !reply.is_response() || reply.is_error() || reply.tag() != tag {
        return Err(format!("{what}: not a clean response to tag {tag}"));
    }
    if reply.ata_status() & (DRDY | ERR) != DRDY {
        return Err(format!(
            "{what}: ATA status {:#04x} error {:#04x}",
            reply.ata_status(),
            reply.ata_error()
        ));
    }
    Ok(())
}

/// Word `w` of IDENTIFY DEVICE data (little-endian).
fn word(data: &[u8], w: usize) -> u16 {
    u16::from_le_bytes([data[2 * w], data[2 * w + 1]])
}

/// An ATA string of `words` words from `first`: the high octet of each word comes first.
fn ata_string(data: &[u8], first: usize, words: usize) -> String {
    let bytes: Vec<u8> = (first..first + words)
        .flat_map(|w| word(data, w).to_be_bytes())
        .collect();
    String::from_utf8_lossy(&bytes).trim_end().to_string()
}

fn mb_per_s(bytes: usize, seconds: f64) -> f64 {
    bytes as f64 / seconds / 1e6
}

fn run() -> Result<(), String> {
    let mut config = Config::new(SHELF, SLOT);
    config.max_frame_len = MTU + 14;
    let disk = MemDisk::new(vec![0u8; DISK_BYTES]);
    let target = Target::new(config, disk).map_err(|e| e.to_string())?;
    let mut demo = Demo {
        target,
        port: Port::new(PORT_MAC, MTU),
        tx: vec![0u8; MTU + 14],
        frames: 0,
    };
    println!(
        "export e{SHELF}.{SLOT}: {} MiB in memory, port {} MTU {MTU}",
        DISK_BYTES >> 20,
        demo.port.mac
    );

    // Discovery: Query Config (read) to every shelf and slot, to the broadcast MAC.
    let discover = Initiator {
        mac: INITIATOR_MAC,
        dst: BROADCAST_MAC,
        shelf: 0xFFFF,
        slot: 0xFF,
    };
    let reply = demo.send(&discover.config(1, 0, b"").bytes)?;
    if !reply.is_response() || reply.is_error() || reply.command() != 1 {
        return Err("discovery: not a Query Config response".into());
    }
    let sectors_per_frame = reply.cfg_sector_count();
    println!(
        "discovered e{}.{} at {}: buffer count {}, {} sectors/frame, firmware {:#06x}, AoE v{}",
        reply.major(),
        reply.minor(),
        reply.src(),
        reply.cfg_buffer_count(),
        sectors_per_frame,
        reply.cfg_firmware_version(),
        reply.cfg_aoe_version()
    );
    if (reply.major(), reply.minor()) != (SHELF, SLOT) || sectors_per_frame != 17 {
        return Err("discovery: unexpected address or sectors per frame".into());
    }
    // From now on, talk to the export that answered, at its own MAC.
    let initiator = Initiator {
        mac: INITIATOR_MAC,
        dst: reply.src(),
        shelf: reply.major(),
        slot: reply.minor(),
    };

    // IDENTIFY DEVICE.
    let reply = demo.send(&initiator.identify(2).bytes)?;
    check_ata(&reply, 2, "IDENTIFY")?;
    let id = reply.ata_data();
    let lba48 = word(id, 83) & (1 << 10) != 0;
    let capacity = (0..4).fold(0u64, |acc, i| {
        acc | u64::from(word(id, 100 + i)) << (16 * i)
    });
    println!(
        "IDENTIFY: model \"{}\", serial \"{}\", firmware \"{}\", {} sectors ({} MiB), LBA48 {}",
        ata_string(id, 27, 20),
        ata_string(id, 10, 10),
        ata_string(id, 23, 4),
        capacity,
        (capacity * 512) >> 20,
        if lba48 { "yes" } else { "no" }
    );
    if capacity * 512 != DISK_BYTES as u64 || !lba48 {
        return Err("IDENTIFY: capacity or LBA48 bit does not match the disk".into());
    }

    // Write, read back, flush.
    let total_sectors = TRANSFER_BYTES / 512;
    let data = pattern(0, total_sectors, 0x5A);
    let step = usize::from(sectors_per_frame);
    let mut tag = 16u32;
    let started = Instant::now();
    for first in (0..total_sectors).step_by(step) {
        let chunk = &data[first * 512..(first + step).min(total_sectors) * 512];
        tag += 1;
        let reply = demo.send(&initiator.write48(tag, first as u64, chunk).bytes)?;
        check_ata(&reply, tag, "WRITE EXT")?;
    }
    let wrote = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let mut mismatches = 0usize;
    for first in (0..total_sectors).step_by(step) {
        let count = step.min(total_sectors - first);
        tag += 1;
        let count_u8 = u8::try_from(count).map_err(|e| e.to_string())?;
        let reply = demo.send(&initiator.read48(tag, first as u64, count_u8).bytes)?;
        check_ata(&reply, tag, "READ EXT")?;
        let expected = &data[first * 512..(first + count) * 512];
        if reply.ata_data().get(..expected.len()) != Some(expected) {
            mismatches += 1;
        }
    }
    let read = started.elapsed().as_secs_f64();
    if mismatches > 0 {
        return Err(format!(
            "read back: {mismatches} frames differ from what was written"
        ));
    }
    if demo.target.disk().as_bytes()[..TRANSFER_BYTES] != data[..] {
        return Err("the disk does not hold what was written".into());
    }
    let io_frames = demo.frames - 2;
    println!(
        "wrote {} MiB in {} WRITE EXT frames ({:.0} MB/s), read back {} MiB ({:.0} MB/s): identical",
        TRANSFER_BYTES >> 20,
        io_frames / 2,
        mb_per_s(TRANSFER_BYTES, wrote),
        TRANSFER_BYTES >> 20,
        mb_per_s(TRANSFER_BYTES, read)
    );

    tag += 1;
    let flush = initiator.ata(tag, 0x40, ata_cmd::FLUSH_EXT, 0, 0, &[]);
    let reply = demo.send(&flush.bytes)?;
    check_ata(&reply, tag, "FLUSH CACHE EXT")?;
    println!("FLUSH CACHE EXT: status {:#04x}", reply.ata_status());

    let stats = *demo.target.stats();
    let bytes = (stats.sectors_read + stats.sectors_written) * 512;
    println!(
        "summary: {} frames, {} replies, {} payload bytes, {:.0} MB/s (building the frames included), {} errors",
        stats.frames,
        stats.replies,
        bytes,
        bytes as f64 / (wrote + read) / 1e6,
        stats.aoe_errors + stats.ata_errors + stats.dropped
    );
    if stats.frames != demo.frames || stats.replies != demo.frames || stats.dropped != 0 {
        return Err("engine counters do not match the frames sent".into());
    }
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("aoe-demo: FAILED: {message}");
            ExitCode::FAILURE
        }
    }
}
