//! Phase 5: the fuzz seed corpus and mutations of it, replayed into the blade.

use crate::blade::{initiator, initiator_from};
use crate::qemu::Qemu;
use crate::{ATA_ERR, CMD_MASK, CMD_RESERVE, Result};
use aoe_testkit::frame::{INITIATOR_MAC, OTHER_MAC, TARGET_MAC};
use std::fs;
use std::path::Path;
use std::time::Duration;

/// The frames of the fuzz seed corpus, each addressed to the blade.
pub(crate) fn seed_frames(dir: &Path) -> Result<Vec<Vec<u8>>> {
    const SEPARATOR: &[u8] = b"=FRAME=";
    let mut frames = Vec::new();
    let mut add_dir = |sub: &str, raw_aoe: bool| -> Result<()> {
        let mut paths: Vec<_> = fs::read_dir(dir.join(sub))
            .map_err(|e| format!("{}: {e}", dir.join(sub).display()))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| path.extension().is_some_and(|e| e == "bin"))
            .collect();
        paths.sort();
        for path in paths {
            let bytes = fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            if raw_aoe {
                // wire_roundtrip seeds are AoE headers or arguments without Ethernet.
                let mut frame = Vec::new();
                frame.extend_from_slice(&TARGET_MAC.0);
                frame.extend_from_slice(&INITIATOR_MAC.0);
                frame.extend_from_slice(&[0x88, 0xA2]);
                frame.extend_from_slice(&bytes);
                frames.push(frame);
                continue;
            }
            // target_frame: frame, then (separator, 2-octet MTU, frame)*.
            let mut rest = &bytes[..];
            let mut first = true;
            loop {
                let end = rest
                    .windows(SEPARATOR.len())
                    .position(|w| w == SEPARATOR)
                    .unwrap_or(rest.len());
                let segment = &rest[..end];
                let frame = if first {
                    segment
                } else {
                    segment.get(2..).unwrap_or(&[])
                };
                if !frame.is_empty() {
                    frames.push(frame.to_vec());
                }
                first = false;
                if end == rest.len() {
                    break;
                }
                rest = &rest[end + SEPARATOR.len()..];
            }
        }
        Ok(())
    };
    add_dir("target_frame", false)?;
    add_dir("wire_roundtrip", true)?;
    Ok(frames)
}

pub(crate) fn fuzz(qemu: &mut Qemu, seeds: &Path, mutations: usize) -> Result<usize> {
    let corpus = seed_frames(seeds)?;
    ensure!(!corpus.is_empty(), "no seeds in {}", seeds.display());
    let mut sent = 0;
    let drain = |qemu: &Qemu| qemu.drain();
    for frame in &corpus {
        qemu.send(frame)?;
        sent += 1;
        drain(qemu);
    }
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut random = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..mutations {
        let seed = &corpus[usize::try_from(random() % corpus.len() as u64).unwrap_or(0)];
        let mut frame = seed.clone();
        let flips = 1 + random() % 4;
        for _ in 0..flips {
            if frame.len() > 14 {
                let at = 14 + usize::try_from(random() % (frame.len() as u64 - 14)).unwrap_or(0);
                frame[at] ^= 1 << (random() % 8);
            }
        }
        if random() % 8 == 0 && frame.len() > 14 {
            // Cut anywhere after the Ethernet header: no shorter frame crosses a wire, and
            // QEMU's datagram netdev takes an empty datagram for the end of the connection.
            let cut = 14 + random() % (frame.len() as u64 - 14);
            frame.truncate(usize::try_from(cut).unwrap_or(14));
        }
        // Mask and reserve edits with random MACs would lock the test initiator out for good;
        // the unmutated corpus covers those commands.
        if matches!(frame.get(19), Some(&(CMD_MASK | CMD_RESERVE))) {
            continue;
        }
        qemu.send(&frame)?;
        sent += 1;
        drain(qemu);
    }
    // Longer than the watchdog's two expiries (2 s): a hang would have reset the chip, and
    // with -no-reboot a reset ends QEMU.
    std::thread::sleep(Duration::from_millis(2500));
    drain(qemu);
    ensure!(
        qemu.running(),
        "QEMU exited during the fuzz replay: the firmware reset (panic, fault or watchdog); log: {}",
        qemu.log.display()
    );
    // The corpus may have left a mask (of the initiator and OTHER_MAC) and reservations:
    // clear both from each possible member, then prove the blade answers.
    for (index, source) in [INITIATOR_MAC, OTHER_MAC].into_iter().enumerate() {
        let tag = 0x7000_0000 + u32::try_from(index).unwrap_or(0);
        let frame = initiator_from(source).mask(tag, 1, &[(2, INITIATOR_MAC), (2, OTHER_MAC)]);
        qemu.send(&frame.bytes)?;
    }
    drain(qemu);
    let reply = qemu.exchange(&initiator().mask(0x7000_0010, 0, &[]).bytes, 0x7000_0010)?;
    ensure!(
        reply.arg(3) == 0,
        "after the fuzz replay the mask still holds {} MACs",
        reply.arg(3)
    );
    let reply = qemu.exchange(&initiator().reserve(0x7000_0011, 2, &[]).bytes, 0x7000_0011)?;
    ensure!(
        !reply.is_error(),
        "forced release refused: error {}",
        reply.error()
    );
    let reply = qemu.exchange(&initiator().identify(0x7000_0012).bytes, 0x7000_0012)?;
    ensure!(
        reply.ata_status() & ATA_ERR == 0,
        "IDENTIFY after the fuzz replay failed"
    );
    Ok(sent)
}
