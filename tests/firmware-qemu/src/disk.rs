//! Phases 3 and 4: blocks spread over the whole disk, and sequential throughput.

use crate::blade::{initiator, read_sectors, write_sectors};
use crate::image::read_at;
use crate::qemu::Qemu;
use crate::{ATA_ERR, ATA_IDNF, Result, SECTOR};
use aoe_testkit::sectors::pattern;
use std::path::Path;
use std::time::{Duration, Instant};

/// The LBAs of phase 3: first, last, and a deterministic spread, 2 sectors each.
pub(crate) fn spread_lbas(capacity: u64) -> Vec<u64> {
    let mut lbas = vec![0, capacity - 2, capacity / 2, capacity / 3 + 1];
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    for _ in 0..12 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        lbas.push(state % (capacity - 1));
    }
    lbas
}

pub(crate) fn disk_checks(qemu: &Qemu, image: &Path, capacity: u64, seed: u8) -> Result<Vec<u64>> {
    let lbas = spread_lbas(capacity);
    let mut tag = 0x3000_0000;
    for &lba in &lbas {
        tag += 1;
        write_sectors(qemu, tag, lba, &pattern(lba, 2, seed))?;
    }
    for &lba in &lbas {
        tag += 1;
        let data = read_sectors(qemu, tag, lba, 2)?;
        ensure!(
            data == pattern(lba, 2, seed),
            "data read back at LBA {lba} differs from what was written"
        );
        ensure!(
            read_at(image, lba * SECTOR, 1024)? == pattern(lba, 2, seed),
            "the image file does not hold the data written at LBA {lba}"
        );
    }
    // Past the end: IDNF, and nothing reaches the reserved region.
    for (lba, count) in [(capacity - 1, 2u8), (capacity, 1), (capacity + 7, 1)] {
        tag += 1;
        let reply = qemu.exchange(&initiator().read48(tag, lba, count).bytes, tag)?;
        ensure!(
            reply.ata_status() & ATA_ERR != 0 && reply.ata_error() & ATA_IDNF != 0,
            "READ of {count} at {lba} (capacity {capacity}) should fail with IDNF, got status {:#04x} error {:#04x}",
            reply.ata_status(),
            reply.ata_error()
        );
        tag += 1;
        let reply = qemu.exchange(
            &initiator()
                .write48(tag, lba, &vec![0xEE; usize::from(count) * 512])
                .bytes,
            tag,
        )?;
        ensure!(
            reply.ata_status() & ATA_ERR != 0,
            "WRITE past the end at {lba} succeeded"
        );
    }
    let reserved = read_at(image, capacity * SECTOR, 8)?;
    ensure!(
        &reserved == b"AOEBLADE",
        "the reserved region's record was overwritten"
    );
    Ok(lbas)
}

/// Sequential transfer with `window` frames in flight; returns MB/s (10^6 octets per second).
pub(crate) fn stream(
    qemu: &Qemu,
    write: bool,
    first_lba: u64,
    mib: u64,
    window: usize,
) -> Result<f64> {
    let frames = mib * 1024;
    let started = Instant::now();
    let mut next = 0u64;
    let mut done = 0u64;
    let mut in_flight: Vec<(u32, u64, Instant)> = Vec::new();
    let tag_of = |frame: u64| 0x5000_0000 | u32::try_from(frame & 0x0FFF_FFFF).unwrap_or(0);
    let request = |frame: u64| {
        let lba = first_lba + frame * 2;
        if write {
            initiator()
                .write48(tag_of(frame), lba, &pattern(lba, 2, 0x5A))
                .bytes
        } else {
            initiator().read48(tag_of(frame), lba, 2).bytes
        }
    };
    while done < frames {
        while in_flight.len() < window && next < frames {
            qemu.send(&request(next))?;
            in_flight.push((tag_of(next), next, Instant::now()));
            next += 1;
        }
        let deadline = Instant::now() + Duration::from_millis(200);
        match qemu.receive(deadline) {
            Some(reply) if reply.is_response() => {
                if let Some(index) = in_flight.iter().position(|f| f.0 == reply.tag()) {
                    let (_, frame, _) = in_flight.swap_remove(index);
                    ensure!(
                        reply.ata_status() & ATA_ERR == 0,
                        "streaming {} failed at frame {frame}",
                        if write { "write" } else { "read" }
                    );
                    if !write {
                        let lba = first_lba + frame * 2;
                        ensure!(
                            reply.ata_data().get(..1024) == Some(&pattern(lba, 2, 0x5A)[..]),
                            "streamed read at LBA {lba} returned other data"
                        );
                    }
                    done += 1;
                }
            }
            _ => {
                // Retransmit what waited too long (QEMU does not lose frames; be safe).
                for entry in in_flight.iter_mut() {
                    if entry.2.elapsed() > Duration::from_secs(2) {
                        qemu.send(&request(entry.1))?;
                        entry.2 = Instant::now();
                    }
                }
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok((frames * 1024) as f64 / seconds / 1e6)
}
