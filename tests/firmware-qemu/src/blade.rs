//! The AoE side of the test: the initiator, the boot announcements (phase 1), discovery and
//! IDENTIFY (phase 2), sector reads and writes, the mask list (phase 6).

use crate::qemu::Qemu;
use crate::{ATA_ERR, BLADE_SHELF, BLADE_SLOT, CMD_CONFIG, MASK_MEMBER, Result};
use aoe_core::wire::EthernetAddress;
use aoe_firmware::persist::RESERVED_SECTORS;
use aoe_testkit::frame::{BROADCAST_MAC, INITIATOR_MAC, Initiator, TARGET_MAC};
use aoe_testkit::reply::Reply;
use std::time::{Duration, Instant};

/// Waits for the boot announcement: a Query Config reply with tag 0 from the blade. Returns
/// the announcements seen (one per destination) and the time since QEMU started.
pub(crate) fn wait_announcements(qemu: &Qemu, expected: usize) -> Result<(Vec<Reply>, Duration)> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    let mut first = None;
    while seen.len() < expected {
        let Some(reply) = qemu.receive(deadline) else {
            break;
        };
        if reply.is_response() && reply.command() == CMD_CONFIG && reply.tag() == 0 {
            first.get_or_insert_with(|| qemu.started.elapsed());
            seen.push(reply);
        }
    }
    ensure!(
        seen.len() == expected,
        "expected {expected} announcement(s) within 10 s, saw {} (log: {}, QEMU stderr next to it)",
        seen.len(),
        qemu.log.display()
    );
    Ok((seen, first.unwrap_or_default()))
}

pub(crate) fn initiator() -> Initiator {
    Initiator {
        mac: INITIATOR_MAC,
        dst: TARGET_MAC,
        shelf: BLADE_SHELF,
        slot: BLADE_SLOT,
    }
}

pub(crate) fn initiator_from(mac: EthernetAddress) -> Initiator {
    Initiator { mac, ..initiator() }
}

/// Discovery and identify: returns (buffer count, sectors per frame, capacity in sectors).
pub(crate) fn discover(qemu: &Qemu, expected_sectors: u64) -> Result<(u16, u8, u64)> {
    let discovery = Initiator {
        dst: BROADCAST_MAC,
        shelf: 0xFFFF,
        slot: 0xFF,
        ..initiator()
    };
    let reply = qemu.exchange(&discovery.config(0x0D15_C000, 0, b"").bytes, 0x0D15_C000)?;
    ensure!(
        reply.src() == TARGET_MAC,
        "discovery reply from {:?}, expected the MAC of the record ({:?}), not QEMU's",
        reply.src(),
        TARGET_MAC
    );
    ensure!(
        (reply.major(), reply.minor()) == (BLADE_SHELF, BLADE_SLOT),
        "discovery reply from e{}.{}, expected e{BLADE_SHELF}.{BLADE_SLOT} (the record's)",
        reply.major(),
        reply.minor()
    );
    let buffer_count = reply.cfg_buffer_count();
    let sectors_per_frame = reply.cfg_sector_count();
    ensure!(buffer_count >= 2, "buffer count {buffer_count} < 2");
    ensure!(
        sectors_per_frame == 2,
        "sectors per frame {sectors_per_frame}, expected 2 at MTU 1500"
    );

    let reply = qemu.exchange(&initiator().identify(0x1D00_0001).bytes, 0x1D00_0001)?;
    ensure!(
        reply.ata_status() & ATA_ERR == 0,
        "IDENTIFY failed: status {:#04x}",
        reply.ata_status()
    );
    let data = reply.ata_data();
    ensure!(data.len() >= 512, "IDENTIFY returned {} octets", data.len());
    let word = |i: usize| u64::from(u16::from_le_bytes([data[2 * i], data[2 * i + 1]]));
    let lba48 = word(100) | word(101) << 16 | word(102) << 32 | word(103) << 48;
    ensure!(
        lba48 == expected_sectors,
        "IDENTIFY capacity {lba48} sectors, expected {expected_sectors} (image minus {RESERVED_SECTORS} reserved)"
    );
    Ok((buffer_count, sectors_per_frame, lba48))
}

/// Reads `count` sectors at `lba`.
pub(crate) fn read_sectors(qemu: &Qemu, tag: u32, lba: u64, count: u8) -> Result<Vec<u8>> {
    let reply = qemu.exchange(&initiator().read48(tag, lba, count).bytes, tag)?;
    ensure!(
        reply.ata_status() & ATA_ERR == 0,
        "READ at {lba} failed: status {:#04x} error {:#04x}",
        reply.ata_status(),
        reply.ata_error()
    );
    let len = usize::from(count) * 512;
    ensure!(reply.ata_data().len() >= len, "READ at {lba}: short reply");
    Ok(reply.ata_data()[..len].to_vec())
}

pub(crate) fn write_sectors(qemu: &Qemu, tag: u32, lba: u64, data: &[u8]) -> Result<()> {
    let reply = qemu.exchange(&initiator().write48(tag, lba, data).bytes, tag)?;
    ensure!(
        reply.ata_status() & ATA_ERR == 0,
        "WRITE at {lba} failed: status {:#04x} error {:#04x}",
        reply.ata_status(),
        reply.ata_error()
    );
    Ok(())
}

/// The mask list phase 6 sets, sorted.
pub(crate) fn members() -> Vec<EthernetAddress> {
    let mut members = vec![INITIATOR_MAC, MASK_MEMBER];
    members.sort_by_key(|mac| mac.0);
    members
}

/// Reads the mask list (MCmd 0) and returns its MACs.
pub(crate) fn read_mask(qemu: &Qemu, tag: u32) -> Result<Vec<EthernetAddress>> {
    let reply = qemu.exchange(&initiator().mask(tag, 0, &[]).bytes, tag)?;
    let count = usize::from(reply.arg(3));
    let arg = reply.arg_bytes();
    let mut macs = Vec::new();
    for index in 0..count {
        let at = 4 + index * 8 + 2;
        let mac: [u8; 6] = arg
            .get(at..at + 6)
            .and_then(|m| m.try_into().ok())
            .ok_or("short mask reply")?;
        macs.push(EthernetAddress(mac));
    }
    Ok(macs)
}
