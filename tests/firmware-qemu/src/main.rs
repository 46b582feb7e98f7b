//! End-to-end test of the EtherDrive blade firmware in QEMU's `lm3s6965evb`.
//!
//! Boots the firmware ELF with an SD card image and talks to it over QEMU's rootless unix
//! datagram netdev (each datagram is one Ethernet frame; nothing touches a real interface, no
//! root needed), as an AoE initiator built from `aoe_tests::Initiator`. Every check asserts
//! something that can fail; the first failure stops the run with a message and exit code 1.
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

use aoe_core::wire::EthernetAddress;
use aoe_firmware::persist::{COPY_LEN, Identity, RESERVED_SECTORS, encode_parts};
use aoe_tests::{BROADCAST_MAC, INITIATOR_MAC, Initiator, OTHER_MAC, Reply, TARGET_MAC, pattern};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

/// The identity the test writes into the card's reserved region.
const BLADE_SHELF: u16 = 7;
const BLADE_SLOT: u8 = 3;
/// The address QEMU gives the NIC (and the factory registers); the record overrides it.
const QEMU_NIC_MAC: &str = "52:54:00:12:34:56";
/// A second member of the mask list.
const MASK_MEMBER: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x77]);
const SECTOR: u64 = 512;
/// AoE commands.
const CMD_CONFIG: u8 = 1;
const CMD_MASK: u8 = 2;
const CMD_RESERVE: u8 = 3;
/// ATA status and error bits.
const ATA_ERR: u8 = 0x01;
const ATA_IDNF: u8 = 0x10;

type Result<T> = std::result::Result<T, String>;

macro_rules! ensure {
    ($cond:expr, $($message:tt)+) => {
        if !$cond {
            return Err(format!($($message)+));
        }
    };
}

#[derive(Debug, Clone)]
struct Options {
    firmware: PathBuf,
    workdir: PathBuf,
    qemu: String,
    nm: Option<String>,
    seeds: Option<PathBuf>,
    image_bytes: u64,
    sdhc: bool,
    throughput_mib: u64,
    fuzz_frames: usize,
}

fn parse_options() -> Result<Options> {
    let mut args = std::env::args().skip(1);
    let mut options = Options {
        firmware: PathBuf::new(),
        workdir: PathBuf::new(),
        qemu: "qemu-system-arm".into(),
        nm: None,
        seeds: None,
        image_bytes: 16 << 20,
        sdhc: false,
        throughput_mib: 2,
        fuzz_frames: 3000,
    };
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        let number = |text: String| {
            text.parse::<u64>()
                .map_err(|_| format!("{flag}: not a number: {text}"))
        };
        match flag.as_str() {
            "--firmware" => options.firmware = value()?.into(),
            "--workdir" => options.workdir = value()?.into(),
            "--qemu" => options.qemu = value()?,
            "--nm" => options.nm = Some(value()?),
            "--seeds" => options.seeds = Some(value()?.into()),
            "--image-mib" => options.image_bytes = number(value()?)? << 20,
            "--sdhc" => {
                options.sdhc = true;
                options.image_bytes = 4 << 30;
            }
            "--throughput-mib" => options.throughput_mib = number(value()?)?,
            "--fuzz-frames" => {
                options.fuzz_frames = usize::try_from(number(value()?)?).unwrap_or(usize::MAX)
            }
            "-h" | "--help" => {
                return Err(
                    "usage: blade-qemu-test --firmware ELF --workdir DIR [--qemu BIN] \
                     [--nm BIN] [--seeds DIR] [--image-mib N | --sdhc] [--throughput-mib N] \
                     [--fuzz-frames N]"
                        .into(),
                );
            }
            other => return Err(format!("unknown argument {other} (try --help)")),
        }
    }
    ensure!(
        !options.firmware.as_os_str().is_empty() && !options.workdir.as_os_str().is_empty(),
        "--firmware and --workdir are required (try --help)"
    );
    ensure!(
        options.image_bytes.is_power_of_two(),
        "QEMU's SD card needs a power-of-two image size"
    );
    Ok(options)
}

/// One QEMU run of the firmware.
struct Qemu {
    child: Child,
    socket: UnixDatagram,
    qemu_socket: PathBuf,
    monitor: PathBuf,
    gdb: PathBuf,
    started: Instant,
    log: PathBuf,
}

impl Qemu {
    fn start(options: &Options, image: &Path, run: &str) -> Result<Qemu> {
        let dir = &options.workdir;
        let peer = dir.join(format!("{run}-peer.sock"));
        let qemu_socket = dir.join(format!("{run}-qemu.sock"));
        let monitor = dir.join(format!("{run}-monitor.sock"));
        let gdb = dir.join(format!("{run}-gdb.sock"));
        for path in [&peer, &qemu_socket, &monitor, &gdb] {
            let _ = fs::remove_file(path);
        }
        // The peer binds first: QEMU drops frames sent to a socket nobody listens on.
        let socket = UnixDatagram::bind(&peer).map_err(|e| format!("bind {peer:?}: {e}"))?;
        let log = dir.join(format!("{run}.defmt"));
        let stdout = File::create(&log).map_err(|e| format!("create {log:?}: {e}"))?;
        let stderr = File::create(dir.join(format!("{run}.stderr")))
            .map_err(|e| format!("create stderr log: {e}"))?;
        let netdev = format!(
            "dgram,id=n0,local.type=unix,local.path={},remote.type=unix,remote.path={}",
            qemu_socket.display(),
            peer.display()
        );
        let started = Instant::now();
        let child = Command::new(&options.qemu)
            .args(["-M", "lm3s6965evb", "-display", "none", "-serial", "none"])
            .args([
                "-semihosting-config",
                "enable=on,target=native",
                "-no-reboot",
            ])
            // An explicit silent audio backend: QEMU then loads no audio module (a QEMU
            // unpacked next to another version's modules would refuse to).
            .args(["-audiodev", "none,id=snd0"])
            .arg("-monitor")
            .arg(format!("unix:{},server=on,wait=off", monitor.display()))
            .arg("-gdb")
            .arg(format!("unix:{},server=on,wait=off", gdb.display()))
            .arg("-drive")
            .arg(format!("if=sd,format=raw,file={}", image.display()))
            .args(["-netdev", &netdev])
            .arg("-net")
            .arg(format!(
                "nic,netdev=n0,model=stellaris,macaddr={QEMU_NIC_MAC}"
            ))
            .arg("-kernel")
            .arg(&options.firmware)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", options.qemu))?;
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .map_err(|e| e.to_string())?;
        // A full socket means QEMU stopped taking frames: fail instead of waiting forever.
        socket
            .set_write_timeout(Some(Duration::from_secs(10)))
            .map_err(|e| e.to_string())?;
        Ok(Qemu {
            child,
            socket,
            qemu_socket,
            monitor,
            gdb,
            started,
            log,
        })
    }

    fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    fn send(&self, frame: &[u8]) -> Result<()> {
        // QEMU creates its socket as it starts; retry briefly.
        let mut last_error = None;
        for _ in 0..100 {
            match self.socket.send_to(frame, &self.qemu_socket) {
                Ok(_) => return Ok(()),
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
                    return Err("QEMU stopped taking frames for 10 s".into());
                }
                Err(error) => last_error = Some(error),
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(format!("cannot send to QEMU's socket: {last_error:?}"))
    }

    /// The next AoE frame from the blade before `deadline`.
    fn receive(&self, deadline: Instant) -> Option<Reply> {
        let mut buffer = [0u8; 2048];
        while Instant::now() < deadline {
            if let Ok(len) = self.socket.recv(&mut buffer)
                && len >= 24
                && buffer[12..14] == [0x88, 0xA2]
            {
                return Some(Reply {
                    bytes: buffer[..len].to_vec(),
                });
            }
        }
        None
    }

    /// Discards whatever frames are waiting, without blocking.
    fn drain(&self) {
        let mut buffer = [0u8; 2048];
        if self.socket.set_nonblocking(true).is_ok() {
            while self.socket.recv(&mut buffer).is_ok() {}
            let _ = self.socket.set_nonblocking(false);
        }
    }

    /// Sends `frame` and waits for the reply carrying `tag`, retrying twice.
    fn exchange(&self, frame: &[u8], tag: u32) -> Result<Reply> {
        for _ in 0..3 {
            self.send(frame)?;
            let deadline = Instant::now() + Duration::from_secs(2);
            while let Some(reply) = self.receive(deadline) {
                if reply.is_response() && reply.tag() == tag {
                    return Ok(reply);
                }
            }
        }
        Err(format!("no reply to tag {tag:#010x}"))
    }

    /// Sends `frame` and checks that nothing answers `tag` within half a second.
    fn expect_silence(&self, frame: &[u8], tag: u32) -> Result<()> {
        self.send(frame)?;
        let deadline = Instant::now() + Duration::from_millis(500);
        while let Some(reply) = self.receive(deadline) {
            ensure!(
                !(reply.is_response() && reply.tag() == tag),
                "tag {tag:#010x} was answered but should have been ignored"
            );
        }
        Ok(())
    }

    /// Sends an HMP command to the monitor, waits for its prompt, returns what it printed.
    fn monitor(&self, command: &str) -> Result<String> {
        let mut stream = UnixStream::connect(&self.monitor).map_err(|e| format!("monitor: {e}"))?;
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .map_err(|e| e.to_string())?;
        let mut seen = Vec::new();
        let wait_prompt = |stream: &mut UnixStream, seen: &mut Vec<u8>| -> Result<()> {
            let mut chunk = [0u8; 512];
            while !seen.ends_with(b"(qemu) ") {
                let len = stream
                    .read(&mut chunk)
                    .map_err(|e| format!("monitor: {e}"))?;
                ensure!(len > 0, "monitor closed");
                seen.extend_from_slice(&chunk[..len]);
            }
            Ok(())
        };
        wait_prompt(&mut stream, &mut seen)?;
        seen.clear();
        stream
            .write_all(format!("{command}\n").as_bytes())
            .map_err(|e| format!("monitor: {e}"))?;
        wait_prompt(&mut stream, &mut seen)?;
        Ok(String::from_utf8_lossy(&seen).into_owned())
    }

    /// One 32-bit word of guest physical memory (a device register), read by the monitor.
    fn read_word(&self, address: u32) -> Result<u32> {
        let output = self.monitor(&format!("xp /1wx {address:#x}"))?;
        output
            .split_whitespace()
            .find_map(|word| u32::from_str_radix(word.strip_prefix("0x")?, 16).ok())
            .ok_or(format!("cannot parse the monitor's answer {output:?}"))
    }

    /// Hangs the firmware: through QEMU's gdbstub, writes a Thumb `b .` at `address` (unused,
    /// painted stack) and points the program counter at it, then lets the CPU run.
    fn hang_cpu(&self, address: u32) -> Result<()> {
        self.jump(address, true)
    }

    /// Through QEMU's gdbstub, points the program counter at `address` (after writing a Thumb
    /// `b .` there if `write_loop`), then lets the CPU run.
    fn jump(&self, address: u32, write_loop: bool) -> Result<()> {
        let mut stream = UnixStream::connect(&self.gdb).map_err(|e| format!("gdbstub: {e}"))?;
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .map_err(|e| e.to_string())?;
        // Connecting stops the VM; `?` confirms it. QEMU may report the stop twice: drain.
        gdb_packet(&mut stream, "?", true)?;
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .map_err(|e| e.to_string())?;
        let mut stale = [0u8; 256];
        while matches!(stream.read(&mut stale), Ok(n) if n > 0) {}
        let _ = stream.write_all(b"+");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .map_err(|e| e.to_string())?;
        if write_loop {
            let reply = gdb_packet(&mut stream, &format!("M{address:x},2:fee7"), true)?;
            ensure!(reply == "OK", "gdbstub memory write: {reply}");
        }
        // All registers, r0..r15 first (8 hex digits each, little-endian); PC is r15. (QEMU
        // takes the single-register `P` only from clients that negotiated XML descriptions.)
        let registers = gdb_packet(&mut stream, "g", true)?;
        ensure!(
            registers.len() >= 128 && registers.is_ascii(),
            "gdbstub register read: {registers}"
        );
        let pc: String = address
            .to_le_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let registers = format!("{}{pc}{}", &registers[..120], &registers[128..]);
        let reply = gdb_packet(&mut stream, &format!("G{registers}"), true)?;
        ensure!(reply == "OK", "gdbstub register write: {reply}");
        gdb_packet(&mut stream, "c", false)?;
        Ok(())
    }

    /// Waits up to `limit` for QEMU to exit; returns how long it took.
    fn wait_exit(&mut self, limit: Duration) -> Option<Duration> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if !self.running() {
                return Some(start.elapsed());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Power cut: kill QEMU without letting anything flush.
    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Qemu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends one GDB remote-protocol packet and, if `reply`, returns the answer's payload.
fn gdb_packet(stream: &mut UnixStream, body: &str, reply: bool) -> Result<String> {
    let checksum = body.bytes().fold(0u8, |sum, b| sum.wrapping_add(b));
    stream
        .write_all(format!("${body}#{checksum:02x}").as_bytes())
        .map_err(|e| format!("gdbstub: {e}"))?;
    let mut received = Vec::new();
    let mut byte = [0u8; 1];
    // The acknowledgement, then (if asked) one `$payload#xx` packet.
    loop {
        stream
            .read_exact(&mut byte)
            .map_err(|e| format!("gdbstub: {e}"))?;
        match byte[0] {
            b'+' if !reply => return Ok(String::new()),
            b'+' => {}
            b'-' => return Err("gdbstub refused a packet".into()),
            b'$' => received.clear(),
            b'#' => {
                let mut sum = [0u8; 2];
                stream
                    .read_exact(&mut sum)
                    .map_err(|e| format!("gdbstub: {e}"))?;
                stream
                    .write_all(b"+")
                    .map_err(|e| format!("gdbstub: {e}"))?;
                return Ok(String::from_utf8_lossy(&received).into_owned());
            }
            other => received.push(other),
        }
    }
}

/// Writes a blank image of `bytes` with the test identity in the reserved region.
fn make_image(path: &Path, bytes: u64) -> Result<()> {
    let file = File::create(path).map_err(|e| format!("create {path:?}: {e}"))?;
    file.set_len(bytes)
        .map_err(|e| format!("size {path:?}: {e}"))?;
    let identity = Identity {
        mac: Some(TARGET_MAC.0),
        address: Some((BLADE_SHELF, BLADE_SLOT)),
    };
    let mut copy = [0u8; COPY_LEN];
    encode_parts(&identity, b"", &[], &[], 1, &mut copy);
    write_at(path, bytes - RESERVED_SECTORS * SECTOR, &copy)
}

fn write_at(path: &Path, offset: u64, data: &[u8]) -> Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| format!("open {path:?}: {e}"))?;
    file.seek(SeekFrom::Start(offset))
        .and_then(|_| file.write_all(data))
        .map_err(|e| format!("write {path:?}: {e}"))
}

fn read_at(path: &Path, offset: u64, len: usize) -> Result<Vec<u8>> {
    let mut file = File::open(path).map_err(|e| format!("open {path:?}: {e}"))?;
    let mut data = vec![0u8; len];
    file.seek(SeekFrom::Start(offset))
        .and_then(|_| file.read_exact(&mut data))
        .map_err(|e| format!("read {path:?}: {e}"))?;
    Ok(data)
}

/// Waits for the boot announcement: a Query Config reply with tag 0 from the blade. Returns
/// the announcements seen (one per destination) and the time since QEMU started.
fn wait_announcements(qemu: &Qemu, expected: usize) -> Result<(Vec<Reply>, Duration)> {
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

fn initiator() -> Initiator {
    Initiator {
        mac: INITIATOR_MAC,
        dst: TARGET_MAC,
        shelf: BLADE_SHELF,
        slot: BLADE_SLOT,
    }
}

fn initiator_from(mac: EthernetAddress) -> Initiator {
    Initiator { mac, ..initiator() }
}

/// Discovery and identify: returns (buffer count, sectors per frame, capacity in sectors).
fn discover(qemu: &Qemu, expected_sectors: u64) -> Result<(u16, u8, u64)> {
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
fn read_sectors(qemu: &Qemu, tag: u32, lba: u64, count: u8) -> Result<Vec<u8>> {
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

fn write_sectors(qemu: &Qemu, tag: u32, lba: u64, data: &[u8]) -> Result<()> {
    let reply = qemu.exchange(&initiator().write48(tag, lba, data).bytes, tag)?;
    ensure!(
        reply.ata_status() & ATA_ERR == 0,
        "WRITE at {lba} failed: status {:#04x} error {:#04x}",
        reply.ata_status(),
        reply.ata_error()
    );
    Ok(())
}

/// The LBAs of phase 3: first, last, and a deterministic spread, 2 sectors each.
fn spread_lbas(capacity: u64) -> Vec<u64> {
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

fn disk_checks(qemu: &Qemu, image: &Path, capacity: u64, seed: u8) -> Result<Vec<u64>> {
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
fn stream(qemu: &Qemu, write: bool, first_lba: u64, mib: u64, window: usize) -> Result<f64> {
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

/// The frames of the fuzz seed corpus, each addressed to the blade.
fn seed_frames(dir: &Path) -> Result<Vec<Vec<u8>>> {
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

fn fuzz(qemu: &mut Qemu, seeds: &Path, mutations: usize) -> Result<usize> {
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

/// The mask list phase 6 sets, sorted.
fn members() -> Vec<EthernetAddress> {
    let mut members = vec![INITIATOR_MAC, MASK_MEMBER];
    members.sort_by_key(|mac| mac.0);
    members
}

/// The newest valid record in the image's reserved region holds the identity and the state.
fn check_record_on_card(image: &Path, capacity: u64, config: &[u8]) -> Result<()> {
    let mut newest: Option<(u32, aoe_firmware::persist::Record)> = None;
    for copy in 0..2u64 {
        let offset = (capacity + copy * 4) * SECTOR;
        let bytes: [u8; COPY_LEN] = read_at(image, offset, COPY_LEN)?
            .try_into()
            .map_err(|_| "short copy")?;
        if let Some((record, sequence)) = aoe_firmware::persist::Record::decode(&bytes)
            && newest.as_ref().is_none_or(|(s, _)| sequence > *s)
        {
            newest = Some((sequence, record));
        }
    }
    let (sequence, record) = newest.ok_or("no valid record in the reserved region")?;
    ensure!(
        record.config_string.as_slice() == config,
        "record {sequence} on the card has config string {:?}",
        String::from_utf8_lossy(&record.config_string)
    );
    let mut mask = record.mask.to_vec();
    mask.sort_by_key(|mac| mac.0);
    ensure!(
        mask == members(),
        "record {sequence} on the card has mask {mask:?}"
    );
    ensure!(
        record.identity.mac == Some(TARGET_MAC.0)
            && record.identity.address == Some((BLADE_SHELF, BLADE_SLOT)),
        "record {sequence} lost the identity: {:?}",
        record.identity
    );
    println!(
        "ok  reserved region: record {sequence} on the card holds the identity, config string and mask"
    );
    Ok(())
}

/// The watchdog runs with reset enabled and is being fed: CTL has INTEN and RESEN, LOAD is one
/// second at 50 MHz, and the counter is reloaded (two reads a moment apart stay near LOAD).
fn check_watchdog(qemu: &Qemu) -> Result<()> {
    const WATCHDOG: u32 = 0x4000_0000;
    let load = qemu.read_word(WATCHDOG)?;
    let control = qemu.read_word(WATCHDOG + 8)?;
    ensure!(
        control & 0b11 == 0b11,
        "watchdog CTL {control:#x}: counting with reset enabled expected"
    );
    ensure!(
        load == 50_000_000,
        "watchdog LOAD {load}, expected 1 s at 50 MHz"
    );
    std::thread::sleep(Duration::from_millis(1200));
    let interrupt = qemu.read_word(WATCHDOG + 0x10)?;
    ensure!(
        interrupt & 1 == 0,
        "watchdog expired once (RIS {interrupt:#x}): the firmware does not feed it"
    );
    println!(
        "ok  watchdog: counting with reset enabled, 1 s per expiry, fed (no expiry after 1.2 s)"
    );
    Ok(())
}

/// Reads the mask list (MCmd 0) and returns its MACs.
fn read_mask(qemu: &Qemu, tag: u32) -> Result<Vec<EthernetAddress>> {
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

/// The firmware's symbol table, as `nm` prints it.
fn symbol_table(options: &Options) -> Result<String> {
    let nm = options.nm.clone().unwrap_or_else(|| "llvm-nm".into());
    let output = Command::new(&nm)
        .arg(&options.firmware)
        .output()
        .map_err(|e| format!("{nm}: {e}"))?;
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// The address of `name` in an `nm` listing.
fn symbol(symbols: &str, name: &str) -> Result<u64> {
    symbols
        .lines()
        .find(|line| line.ends_with(&format!(" {name}")))
        .and_then(|line| u64::from_str_radix(line.split_whitespace().next()?, 16).ok())
        .ok_or(format!("symbol {name} not found by nm"))
}

/// The deepest stack use, from a RAM dump and the ELF's `_stack_end`/`_stack_start`.
fn stack_high_water(qemu: &Qemu, options: &Options) -> Result<u64> {
    let symbols = symbol_table(options)?;
    let bottom = symbol(&symbols, "_stack_end")?;
    let top = symbol(&symbols, "_stack_start")?;
    let dump = options.workdir.join("ram.bin");
    let _ = fs::remove_file(&dump);
    qemu.monitor(&format!(
        "pmemsave 0x20000000 0x10000 \"{}\"",
        dump.display()
    ))?;
    let ram = fs::read(&dump).map_err(|e| format!("RAM dump: {e}"))?;
    let offset = |address: u64| usize::try_from(address - 0x2000_0000).unwrap_or(usize::MAX);
    let region = ram
        .get(offset(bottom)..offset(top))
        .ok_or("stack region outside the RAM dump")?;
    let untouched = region
        .chunks_exact(4)
        .take_while(|word| *word == [0xCC; 4])
        .count()
        * 4;
    Ok(top - bottom - untouched as u64)
}

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
