//! End-to-end test of the EtherDrive blade firmware in QEMU's `lm3s6965evb`.
//!
//! Boots the firmware ELF with an SD card image and talks to it over QEMU's rootless unix
//! datagram netdev (each datagram is one Ethernet frame; nothing touches a real interface, no
//! root needed), as an AoE initiator built from `aoe_testkit::frame::Initiator`. Every check
//! asserts something that can fail; the first failure stops the run with a message and exit
//! code 1.
//!
//! Phases (the SDHC run, `--sdhc`, does boot, discovery, identify and the disk checks only):
//!
//! 1. **boot**: the identity written into the image's reserved region (MAC
//!    02:00:00:00:00:01, e7.3) is used instead of QEMU's NIC address; the announcement comes;
//!    boot time is measured from QEMU's start to the announcement. The watchdog (read through
//!    the QEMU monitor) counts with reset enabled and does not expire.
//! 2. **discovery / identify**: broadcast Query Config; IDENTIFY's LBA48 capacity is the image
//!    minus the 8 reserved sectors.
//! 3. **disk**: writes, reads back and compares 2-sector blocks spread over the whole disk
//!    (first, last, and a deterministic spread), checks them in the image file too, checks
//!    that the reserved region is untouched and that reads past the end fail with IDNF.
//! 4. **throughput**: sequential WRITE then READ of `--throughput-mib` MiB, with as many
//!    frames in flight as the blade's Buffer Count.
//! 5. **fuzz corpus**: replays `fuzz/seeds` (both targets), then `--fuzz-frames` mutations of
//!    them; QEMU runs with `-no-reboot`, so a panic, fault or watchdog reset would end it. The
//!    blade must still be running and answer afterwards.
//! 6. **mask and persistence**: sets a config string and a two-MAC mask; a non-member gets
//!    silence; QEMU is killed (a power cut); the image's reserved region holds a valid record
//!    with identity, string and mask; QEMU restarts on the same image; the announcement
//!    goes to each mask member, the config string and mask are back, the non-member is still
//!    ignored, and the data of phase 3 is still there.
//! 7. **stack**: the deepest stack use, read from a RAM dump (QEMU monitor `pmemsave`) as the
//!    untouched part of cortex-m-rt's stack paint.
//! 8. **watchdog reset**: the CPU is sent into a `b .` loop through QEMU's gdbstub; the
//!    watchdog must reset the chip (QEMU exits under `-no-reboot`) after its two expiries.
//! 9. **fault**: a third boot; the CPU is sent to execute from the system region; the
//!    HardFault handler must log and reset at once (well before the watchdog would).
//!
//! Usage: `blade-qemu-test --firmware ELF --workdir DIR [--qemu BIN] [--nm BIN]
//! [--seeds DIR] [--image-mib N | --sdhc] [--throughput-mib N] [--fuzz-frames N]`
//!
//! Layout: `options` (the command line), `qemu` (one QEMU run: netdev, monitor, gdbstub),
//! `image` (the SD card image and its state record), `blade` (the AoE initiator side),
//! `disk` (phases 3–4), `fuzz` (phase 5), `health` (watchdog registers, symbols, stack); the
//! phases run in order in `run` below.

/// Returns early with an error message unless the condition holds.
macro_rules! ensure {
    ($cond:expr, $($message:tt)+) => {
        if !$cond {
            return Err(format!($($message)+));
        }
    };
}

mod blade;
mod disk;
mod fuzz;
mod health;
mod image;
mod options;
mod qemu;

use aoe_core::wire::EthernetAddress;
use aoe_firmware::persist::RESERVED_SECTORS;
use aoe_testkit::frame::{BROADCAST_MAC, INITIATOR_MAC, OTHER_MAC, TARGET_MAC};
use aoe_testkit::reply::Reply;
use aoe_testkit::sectors::pattern;
use blade::{
    discover, initiator, initiator_from, members, read_mask, read_sectors, wait_announcements,
    write_sectors,
};
use disk::{disk_checks, stream};
use fuzz::fuzz;
use health::{check_watchdog, stack_high_water, symbol, symbol_table};
use image::{check_record_on_card, make_image};
use options::{Options, parse_options};
use qemu::Qemu;
use std::fs;
use std::process::ExitCode;
use std::time::Duration;

/// The identity the test writes into the card's reserved region.
pub(crate) const BLADE_SHELF: u16 = 7;
pub(crate) const BLADE_SLOT: u8 = 3;
/// The address QEMU gives the NIC (and the factory registers); the record overrides it.
pub(crate) const QEMU_NIC_MAC: &str = "52:54:00:12:34:56";
/// A second member of the mask list.
pub(crate) const MASK_MEMBER: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x77]);
pub(crate) const SECTOR: u64 = 512;
/// AoE commands.
pub(crate) const CMD_CONFIG: u8 = 1;
pub(crate) const CMD_MASK: u8 = 2;
pub(crate) const CMD_RESERVE: u8 = 3;
/// ATA status and error bits.
pub(crate) const ATA_ERR: u8 = 0x01;
pub(crate) const ATA_IDNF: u8 = 0x10;

pub(crate) type Result<T> = std::result::Result<T, String>;

fn run(options: &Options) -> Result<()> {
    fs::create_dir_all(&options.workdir).map_err(|e| format!("workdir: {e}"))?;
    let image = options
        .workdir
        .join(if options.sdhc { "sdhc.img" } else { "sd.img" });
    make_image(&image, options.image_bytes)?;
    let capacity = options.image_bytes / SECTOR - RESERVED_SECTORS;
    let kind = if options.sdhc { "SDHC" } else { "SDSC" };
    println!(
        "image {} ({} MiB, {kind}), exported capacity {capacity} sectors",
        image.display(),
        options.image_bytes >> 20
    );

    let mut qemu = Qemu::start(options, &image, if options.sdhc { "sdhc" } else { "boot1" })?;
    let (announcements, boot_time) = wait_announcements(&qemu, 1)?;
    ensure!(
        announcements[0].dst() == BROADCAST_MAC && announcements[0].src() == TARGET_MAC,
        "announcement went {:?} -> {:?}, expected the record's MAC to broadcast",
        announcements[0].src(),
        announcements[0].dst()
    );
    println!("ok  boot: announcement after {} ms", boot_time.as_millis());
    check_watchdog(&qemu)?;

    let (buffer_count, _, _) = discover(&qemu, capacity)?;
    println!(
        "ok  discovery and identify: e{BLADE_SHELF}.{BLADE_SLOT}, buffer count {buffer_count}, {capacity} sectors"
    );

    let lbas = disk_checks(&qemu, &image, capacity, 0x11)?;
    println!(
        "ok  disk: {} blocks across the disk written, read back and found in the image; reads past the end fail",
        lbas.len()
    );
    if options.sdhc {
        println!("all SDHC checks passed");
        return Ok(());
    }

    if options.throughput_mib > 0 {
        let window = usize::from(buffer_count);
        let write = stream(&qemu, true, 4096, options.throughput_mib, window)?;
        let read = stream(&qemu, false, 4096, options.throughput_mib, window)?;
        println!(
            "ok  throughput: {} MiB sequential, {window} frames in flight: write {write:.2} MB/s, read {read:.2} MB/s",
            options.throughput_mib
        );
    }

    if let Some(seeds) = &options.seeds {
        let sent = fuzz(&mut qemu, seeds, options.fuzz_frames)?;
        println!(
            "ok  fuzz corpus: {sent} frames replayed (seeds and mutations); no reset, still answering"
        );
    }

    // Fresh data over the spread (the fuzz replay wrote at random LBAs), acknowledged just
    // before the power cut, must survive it.
    for (index, &lba) in lbas.iter().enumerate() {
        let tag = 0x6300_0000 + u32::try_from(index).unwrap_or(0);
        write_sectors(&qemu, tag, lba, &pattern(lba, 2, 0x22))?;
    }

    // Config string and mask, then a power cut.
    let config = format!("firmware-qemu-test {}", std::process::id());
    let reply = qemu.exchange(
        &initiator().config(0x6000_0001, 4, config.as_bytes()).bytes,
        0x6000_0001,
    )?;
    ensure!(
        !reply.is_error(),
        "config set refused: error {}",
        reply.error()
    );
    let reply = qemu.exchange(
        &initiator()
            .mask(0x6000_0002, 1, &[(1, INITIATOR_MAC), (1, MASK_MEMBER)])
            .bytes,
        0x6000_0002,
    )?;
    ensure!(
        !reply.is_error() && reply.arg(2) == 0,
        "mask edit refused: error {} merror {}",
        reply.error(),
        reply.arg(2)
    );
    let outsider = initiator_from(OTHER_MAC);
    qemu.expect_silence(&outsider.config(0x6000_0003, 0, b"").bytes, 0x6000_0003)?;
    qemu.expect_silence(&outsider.read48(0x6000_0004, 0, 1).bytes, 0x6000_0004)?;
    let reply = qemu.exchange(&initiator().config(0x6000_0005, 0, b"").bytes, 0x6000_0005)?;
    ensure!(
        reply.cfg_string() == config.as_bytes(),
        "config string reads back as {:?}",
        String::from_utf8_lossy(reply.cfg_string())
    );
    println!("ok  mask: a MAC outside the mask gets silence, members are answered");

    let stack = stack_high_water(&qemu, options)?;
    qemu.kill();
    check_record_on_card(&image, capacity, config.as_bytes())?;
    let mut qemu = Qemu::start(options, &image, "boot2")?;
    let (announcements, boot_time) = wait_announcements(&qemu, 2)?;
    let mut destinations: Vec<_> = announcements.iter().map(Reply::dst).collect();
    destinations.sort_by_key(|mac| mac.0);
    ensure!(
        destinations == members(),
        "after reboot the announcements went to {destinations:?}, expected the two mask members"
    );
    ensure!(
        announcements[0].cfg_string() == config.as_bytes(),
        "the announcement after reboot carries config string {:?}",
        String::from_utf8_lossy(announcements[0].cfg_string())
    );
    let reply = qemu.exchange(&initiator().config(0x6100_0001, 0, b"").bytes, 0x6100_0001)?;
    ensure!(
        reply.cfg_string() == config.as_bytes(),
        "config string after reboot: {:?}",
        String::from_utf8_lossy(reply.cfg_string())
    );
    let mut mask = read_mask(&qemu, 0x6100_0002)?;
    mask.sort_by_key(|mac| mac.0);
    ensure!(mask == members(), "mask after reboot: {mask:?}");
    qemu.expect_silence(&outsider.config(0x6100_0003, 0, b"").bytes, 0x6100_0003)?;
    for (index, &lba) in lbas.iter().enumerate() {
        let tag = 0x6200_0000 + u32::try_from(index).unwrap_or(0);
        ensure!(
            read_sectors(&qemu, tag, lba, 2)? == pattern(lba, 2, 0x22),
            "data at LBA {lba} lost across the power cut"
        );
    }
    println!(
        "ok  power cut and reboot: announced to both mask members after {} ms; config string, mask and data kept; outsider still ignored",
        boot_time.as_millis()
    );
    let stack_after_reboot = stack_high_water(&qemu, options)?;
    println!(
        "ok  stack high-water: {stack} bytes after the full run, {stack_after_reboot} bytes after reboot checks"
    );
    ensure!(qemu.running(), "QEMU exited");

    // A hung CPU stops feeding the watchdog: the chip must reset (QEMU, under -no-reboot,
    // exits) after its two 1 s expiries, and not before the first.
    let nm = symbol_table(options)?;
    let idle_ram = u32::try_from(symbol(&nm, "_stack_end")?).map_err(|e| e.to_string())?;
    qemu.hang_cpu(idle_ram)?;
    let reset_after = qemu.wait_exit(Duration::from_secs(6)).ok_or(
        "the firmware hung for 6 s and the watchdog did not reset it (QEMU still running)",
    )?;
    ensure!(
        reset_after >= Duration::from_millis(900),
        "QEMU exited {} ms after the hang: too early for a watchdog reset",
        reset_after.as_millis()
    );
    println!(
        "ok  watchdog reset: a hung CPU was reset {} ms after it stopped feeding the watchdog",
        reset_after.as_millis()
    );
    // A fault (here: executing from the never-executable system region) must reset the
    // chip at once through the HardFault handler, not after the watchdog's 2 s.
    let mut qemu = Qemu::start(options, &image, "boot3")?;
    wait_announcements(&qemu, 2)?;
    qemu.jump(0xE000_0000, false)?;
    let reset_after = qemu
        .wait_exit(Duration::from_secs(6))
        .ok_or("a hard fault did not reset the chip within 6 s")?;
    ensure!(
        reset_after < Duration::from_millis(800),
        "the fault reset the chip only after {} ms: the HardFault handler did not reset at once",
        reset_after.as_millis()
    );
    println!(
        "ok  fault: the HardFault handler reset the chip {} ms after the fault (log: {})",
        reset_after.as_millis(),
        qemu.log.display()
    );
    println!("stack_high_water_bytes={}", stack.max(stack_after_reboot));
    println!("all checks passed");
    Ok(())
}

fn main() -> ExitCode {
    let result = parse_options().and_then(|options| run(&options));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("FAIL: {message}");
            ExitCode::FAILURE
        }
    }
}
