//! `host-sim` end to end: the target in one network namespace on a sparse file, the `aoe`
//! initiator in another, joined by a veth pair (needs root and `ip`; see `netns`).
//!
//! Exports are small (4 to 16 MiB) so that the whole file runs in well under a minute on two
//! cores. Every test checks the backing file itself, not only what the target says.

use aoe_initiator::control::{Retry, Session};
use aoe_initiator::engine::{Engine, EngineConfig, IoRequest, Next, Op, Workload};
use aoe_initiator::port::NetPort;
use aoe_initiator::work::pattern_sector;
use aoe_initiator::{Error, Transport};
use aoe_net::{self as net, LinkSpec};
use aoe_testkit::netns::Pair;
use aoe_testkit::process::Proc;
use aoe_testkit::require_root;
use aoe_testkit::scratch::{Scratch, random_bytes};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const MIB: u64 = 1 << 20;

/// Sends SIGTERM and expects a clean exit (status 0) within 10 s.
fn stop(target: &mut Proc) -> String {
    target.signal(libc::SIGTERM);
    let (status, output) = target.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "host-sim exited with {status}:\n{output}");
    output
}

fn json_field<'a>(json: &'a str, field: &str) -> &'a str {
    let key = format!("\"{field}\":");
    let start = json
        .find(&key)
        .unwrap_or_else(|| panic!("{field} in {json}"))
        + key.len();
    let rest = &json[start..];
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    rest[..end].trim_matches('"')
}

#[test]
fn discovery_identify_and_config_strings() {
    require_root!();
    let pair = Pair::new("discover", 1500);
    let scratch = Scratch::new("discover");
    let file = scratch.sparse("disk.img", 8 * MIB);
    let mut target = pair.start_host_sim(&["-b", "24"], 5, 1, &file);
    pair.wait_for_target("5.1", &mut target);

    let json = pair.aoe_ok(&["discover", "--wait", "1", "--json"]);
    assert_eq!(json_field(&json, "target"), "e5.1", "{json}");
    assert_eq!(json_field(&json, "sectors"), (8 * MIB / 512).to_string());
    assert_eq!(json_field(&json, "buffer_count"), "24");
    assert_eq!(json_field(&json, "sectors_per_frame"), "2");
    assert_eq!(json_field(&json, "config"), "");
    let human = pair.aoe_ok(&["discover", "--wait", "1"]);
    assert!(
        human.contains("e5.1") && human.contains("8.0 MiB"),
        "{human}"
    );
    let identify = pair.aoe_ok(&["identify", "-t", "5.1"]);
    assert!(identify.contains("16384 sectors"), "{identify}");

    assert_eq!(pair.aoe_ok(&["config", "get", "-t", "5.1"]), "\n");
    pair.aoe_ok(&["config", "set", "rack 4, row b", "-t", "5.1"]);
    assert_eq!(
        pair.aoe_ok(&["config", "get", "-t", "5.1"]),
        "rack 4, row b\n"
    );
    let err = pair.aoe_fails(&["config", "set", "other", "-t", "5.1"]);
    assert!(err.contains("config string present"), "{err}");
    pair.aoe_ok(&["config", "set", "other", "--force", "-t", "5.1"]);
    let json = pair.aoe_ok(&["discover", "--wait", "1", "--json"]);
    assert_eq!(json_field(&json, "config"), "other");
    stop(&mut target);
}

fn whole_export_round_trip(mtu: u32, spf: &str) {
    let test = format!("roundtrip{mtu}");
    let pair = Pair::new(&test, mtu);
    let scratch = Scratch::new(&test);
    let size = 8 * MIB;
    let file = scratch.sparse("disk.img", size);
    let mut target = pair.start_host_sim(&[], 1, 2, &file);
    pair.wait_for_target("1.2", &mut target);
    let json = pair.aoe_ok(&["discover", "--wait", "1", "--json"]);
    assert_eq!(json_field(&json, "sectors_per_frame"), spf, "{json}");

    let out = pair.aoe_ok(&["verify", "-t", "1.2", "--seed", "11"]);
    assert!(out.contains("all match"), "{out}");

    let data = random_bytes(usize::try_from(size).unwrap(), u64::from(mtu));
    let input = scratch.file("in.bin", &data);
    let output = scratch.dir.join("out.bin");
    pair.aoe_ok(&["write", input.to_str().unwrap(), "-t", "1.2"]);
    pair.aoe_ok(&["read", output.to_str().unwrap(), "-t", "1.2"]);
    assert!(std::fs::read(&output).unwrap() == data, "read back differs");
    pair.aoe_ok(&["verify", "--file", input.to_str().unwrap(), "-t", "1.2"]);
    stop(&mut target);
    assert!(
        std::fs::read(&file).unwrap() == data,
        "backing file differs"
    );
}

#[test]
fn whole_export_write_read_verify_mtu_1500() {
    require_root!();
    whole_export_round_trip(1500, "2");
}

#[test]
fn whole_export_write_read_verify_mtu_9000() {
    require_root!();
    whole_export_round_trip(9000, "17");
}

#[test]
fn read_only_export_refuses_writes() {
    require_root!();
    let pair = Pair::new("readonly", 1500);
    let scratch = Scratch::new("readonly");
    let original = random_bytes(usize::try_from(4 * MIB).unwrap(), 5);
    let file = scratch.file("disk.img", &original);
    let mut target = pair.start_host_sim(&["-r"], 2, 0, &file);
    pair.wait_for_target("2.0", &mut target);

    let other = scratch.file("other.bin", &random_bytes(64 * 1024, 6));
    let err = pair.aoe_fails(&["write", other.to_str().unwrap(), "-t", "2.0"]);
    assert!(err.contains("ABRT"), "{err}");
    let err = pair.aoe_fails(&["verify", "-t", "2.0", "--count", "64"]);
    assert!(err.contains("ABRT"), "{err}");
    let output = scratch.dir.join("out.bin");
    pair.aoe_ok(&["read", output.to_str().unwrap(), "-t", "2.0"]);
    assert!(std::fs::read(&output).unwrap() == original);
    stop(&mut target);
    assert!(std::fs::read(&file).unwrap() == original, "file changed");
}

#[test]
fn offset_and_length_expose_only_their_window() {
    require_root!();
    let pair = Pair::new("window", 1500);
    let scratch = Scratch::new("window");
    let (offset, length) = (2048usize, 4096usize);
    let file = scratch.file("disk.img", &vec![0xEEu8; 8 * 1024 * 1024]);
    let mut target = pair.start_host_sim(
        &["-o", &offset.to_string(), "-l", &length.to_string()],
        3,
        3,
        &file,
    );
    pair.wait_for_target("3.3", &mut target);
    let json = pair.aoe_ok(&["discover", "--wait", "1", "--json"]);
    assert_eq!(json_field(&json, "sectors"), length.to_string(), "{json}");

    pair.aoe_ok(&["verify", "-t", "3.3", "--seed", "3"]);
    let err = pair.aoe_fails(&["verify", "-t", "3.3", "--lba", &length.to_string()]);
    assert!(err.contains("beyond"), "{err}");
    let output = scratch.dir.join("out.bin");
    pair.aoe_ok(&["read", output.to_str().unwrap(), "-t", "3.3"]);
    stop(&mut target);

    let disk = std::fs::read(&file).unwrap();
    let window = offset * 512..(offset + length) * 512;
    assert!(
        disk[..window.start].iter().all(|&b| b == 0xEE),
        "before the window"
    );
    assert!(
        disk[window.end..].iter().all(|&b| b == 0xEE),
        "after the window"
    );
    let read = std::fs::read(&output).unwrap();
    assert_eq!(read.len(), length * 512);
    assert!(read == disk[window.clone()], "the export is the window");
    let mut expected = [0u8; 512];
    pattern_sector(0, 3, &mut expected);
    assert_eq!(&disk[window.start..window.start + 512], &expected[..]);
}

#[test]
fn mac_mask_and_reservations() {
    require_root!();
    let pair = Pair::new("mask", 1500);
    let scratch = Scratch::new("mask");
    let file = scratch.sparse("disk.img", 4 * MIB);
    let us = pair.init_mac();
    let friend = "02:00:00:00:00:99";

    // Masked to someone else: silence, even to discovery.
    let mut target = pair.start_host_sim(&["-m", friend], 4, 1, &file);
    std::thread::sleep(Duration::from_millis(300));
    let err = pair.aoe_fails(&["identify", "-t", "4.1", "--timeout", "1"]);
    assert!(err.contains("no answer"), "{err}");
    assert!(
        target.try_exit().is_none(),
        "host-sim died: {}",
        target.output()
    );
    stop(&mut target);

    let mut target = pair.start_host_sim(&["-m", &format!("{us},{friend}")], 4, 1, &file);
    pair.wait_for_target("4.1", &mut target);
    let list = pair.aoe_ok(&["mask", "list", "-t", "4.1"]);
    assert!(list.contains(&us) && list.contains(friend), "{list}");

    // Reserved for another initiator: I/O refused with AoE error 6, IDENTIFY still answered.
    let reserved = pair.aoe_ok(&["reserve", friend, "-t", "4.1"]);
    assert_eq!(reserved.trim(), friend);
    let output = scratch.dir.join("out.bin");
    let err = pair.aoe_fails(&[
        "read",
        output.to_str().unwrap(),
        "-t",
        "4.1",
        "--count",
        "8",
    ]);
    assert!(err.contains("AoE error 6"), "{err}");
    pair.aoe_ok(&["identify", "-t", "4.1"]);
    let err = pair.aoe_fails(&["release", "-t", "4.1"]);
    assert!(err.contains("AoE error 6"), "{err}");
    pair.aoe_ok(&["release", "--force", "-t", "4.1"]);
    pair.aoe_ok(&[
        "read",
        output.to_str().unwrap(),
        "-t",
        "4.1",
        "--count",
        "8",
    ]);
    // Our own reservation lets us work.
    pair.aoe_ok(&["reserve", "-t", "4.1"]);
    pair.aoe_ok(&["verify", "-t", "4.1", "--count", "64"]);
    pair.aoe_ok(&["release", "-t", "4.1"]);

    // Taking ourselves off the mask: the target answers the edit, then never again.
    let list = pair.aoe_ok(&["mask", "del", &us, "-t", "4.1"]);
    assert_eq!(list.trim(), friend);
    let err = pair.aoe_fails(&["identify", "-t", "4.1", "--timeout", "1"]);
    assert!(err.contains("no answer"), "{err}");
    stop(&mut target);
}

/// Frames no initiator should send: truncated headers, impossible lengths and counts.
fn junk_frames(us: [u8; 6], count: usize) -> Vec<Vec<u8>> {
    let header = |command: u8, flags: u8, len: usize| {
        let mut frame = vec![0u8; len.max(14)];
        frame[..6].fill(0xff);
        frame[6..12].copy_from_slice(&us);
        frame[12..14].copy_from_slice(&[0x88, 0xa2]);
        if len >= 24 {
            frame[14..24].copy_from_slice(&[flags, 0, 0xff, 0xff, 0xff, command, 1, 2, 3, 4]);
        }
        frame
    };
    let mut frames = Vec::new();
    for len in [14, 15, 20, 23, 24, 25, 30, 35] {
        for command in 0..5 {
            frames.push(header(command, 0x10, len));
        }
    }
    // Config with a length beyond the frame and beyond 1024.
    let mut config = header(1, 0x10, 60);
    config[30..32].copy_from_slice(&0xffffu16.to_be_bytes());
    frames.push(config);
    // Mask edit claiming 255 directives in a short frame.
    let mut mask = header(2, 0x10, 60);
    mask[25] = 1;
    mask[27] = 255;
    frames.push(mask);
    // Reserve claiming 255 MACs.
    let mut reserve = header(3, 0x10, 60);
    reserve[24] = 2;
    reserve[25] = 255;
    frames.push(reserve);
    // ATA: 255 sectors, a write without its data, an LBA at the very end of LBA48.
    for (cmd, count, lba) in [
        (0x24u8, 255u8, 0u64),
        (0x34, 200, 0),
        (0x24, 1, (1 << 48) - 1),
    ] {
        let mut ata = header(0, 0x10, 60);
        ata[24] = 0x41;
        ata[26] = count;
        ata[27] = cmd;
        ata[28..34].copy_from_slice(&lba.to_le_bytes()[..6]);
        frames.push(ata);
    }
    // Other versions, the response flag, unknown and vendor commands.
    for flags in [0x00, 0xf0, 0x18, 0x1c] {
        frames.push(header(1, flags, 60));
    }
    for command in [4, 0x7f, 0xf0, 0xff] {
        frames.push(header(command, 0x10, 60));
    }
    // Random bytes behind a valid Ethernet header.
    let noise = random_bytes(count * 1514, 77);
    for k in 0..count {
        let len = 14 + (usize::from(noise[k * 1514]) * 6) % 1500;
        let mut frame = noise[k * 1514..k * 1514 + len].to_vec();
        frame[..6].fill(0xff);
        frame[6..12].copy_from_slice(&us);
        frame[12..14].copy_from_slice(&[0x88, 0xa2]);
        frames.push(frame);
    }
    frames
}

#[test]
fn malformed_frames_leave_the_target_answering() {
    require_root!();
    let pair = Pair::new("junk", 1500);
    let scratch = Scratch::new("junk");
    let file = scratch.sparse("disk.img", 4 * MIB);
    let mut target = pair.start_host_sim(&[], 6, 6, &file);
    pair.wait_for_target("6.6", &mut target);

    let sent = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                pair.initiator.enter();
                let mut link = net::open(&LinkSpec::packet(&pair.init_if)).expect("raw socket");
                let frames = junk_frames(link.mac().0, 2000);
                for chunk in frames.chunks(64) {
                    aoe_testkit::link::send_all(&mut *link, chunk);
                }
                frames.len()
            })
            .join()
            .expect("junk sender")
    });
    assert!(sent > 2000);
    pair.aoe_ok(&["verify", "-t", "6.6", "--count", "512"]);
    assert!(
        target.try_exit().is_none(),
        "host-sim died: {}",
        target.output()
    );
    stop(&mut target);
}

#[test]
fn target_restart_in_the_middle_of_a_workload_loses_nothing() {
    require_root!();
    let pair = Pair::new("restart", 1500);
    let scratch = Scratch::new("restart");
    let file = scratch.sparse("disk.img", 16 * MIB);
    let mut target = pair.start_host_sim(&[], 7, 7, &file);
    pair.wait_for_target("7.7", &mut target);

    let mut command = pair.aoe_command(&["verify", "-t", "7.7", "--seed", "21", "--timeout", "20"]);
    command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut workload = Proc::spawn(command, "aoe verify");
    // Restart once the pattern has reached 1 MiB into the 16 MiB export: mid-workload, however
    // fast or loaded the machine is.
    let start = std::time::Instant::now();
    let mut probe = [0u8; 8];
    loop {
        use std::os::unix::fs::FileExt as _;
        let file = std::fs::File::open(&file).unwrap();
        file.read_exact_at(&mut probe, MIB).unwrap();
        if probe != [0; 8] {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20) && workload.try_exit().is_none(),
            "the workload never reached 1 MiB: {}",
            workload.output()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(
        workload.try_exit().is_none(),
        "the workload finished before the restart: make the export bigger"
    );
    target.signal(libc::SIGKILL);
    let _ = target.wait_exit(Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(300));
    let mut target = pair.start_host_sim(&[], 7, 7, &file);
    let (status, output) = workload.wait_exit(Duration::from_secs(60));
    assert!(
        status.success(),
        "aoe verify failed across the restart:\n{output}"
    );
    assert!(output.contains("all match"), "{output}");
    let retransmitted: u64 = output
        .split(" retransmitted")
        .next()
        .and_then(|head| head.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(
        retransmitted > 0,
        "the restart cost no retransmission?\n{output}"
    );
    stop(&mut target);
}

/// Writes the pattern over a range and records every sector whose write was acknowledged.
struct AckedWrites {
    next: u64,
    sectors: u64,
    per_frame: u8,
    seed: u64,
    acked: Vec<bool>,
    acked_frames: Arc<AtomicU64>,
}

impl Workload for AckedWrites {
    fn next(&mut self, _now: Duration) -> Next {
        if self.next >= self.sectors {
            return Next::Done;
        }
        let count = (self.sectors - self.next).min(u64::from(self.per_frame));
        let req = IoRequest {
            op: Op::Write,
            lba: self.next,
            sectors: u8::try_from(count).unwrap(),
            cookie: 0,
        };
        self.next += count;
        Next::Issue(req)
    }

    fn fill(&mut self, req: &IoRequest, data: &mut [u8]) {
        for (lba, sector) in (req.lba..).zip(data.chunks_exact_mut(512)) {
            pattern_sector(lba, self.seed, sector);
        }
    }

    fn complete(&mut self, req: &IoRequest, _data: &[u8], _at: Duration) -> Result<(), Error> {
        for lba in req.lba..req.lba + u64::from(req.sectors) {
            self.acked[usize::try_from(lba).unwrap()] = true;
        }
        self.acked_frames.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

#[test]
fn sigterm_with_writes_in_flight_keeps_every_acknowledged_write() {
    require_root!();
    let pair = Pair::new("sigterm", 1500);
    let scratch = Scratch::new("sigterm");
    let sectors = 16 * MIB / 512;
    let file = scratch.sparse("disk.img", 16 * MIB);
    let mut target = pair.start_host_sim(&[], 8, 8, &file);
    pair.wait_for_target("8.8", &mut target);

    let acked_frames = Arc::new(AtomicU64::new(0));
    let seed = 0xfeed;
    let (acked, result, status) = std::thread::scope(|scope| {
        let counter = acked_frames.clone();
        let writer = scope.spawn(|| {
            pair.initiator.enter();
            let mut port = NetPort::open(&LinkSpec::packet(&pair.init_if)).expect("port");
            let session = Session::open(&mut port, 8, 8, Retry::default()).expect("session");
            let mut config = EngineConfig::new(
                usize::from(session.info.buffer_count),
                session.sectors_per_frame,
            );
            config.give_up = Duration::from_secs(2);
            let mut engine =
                Engine::new(port.mac(), port.mtu(), session.address(), config).unwrap();
            let mut work = AckedWrites {
                next: 0,
                sectors,
                per_frame: session.sectors_per_frame,
                seed,
                acked: vec![false; usize::try_from(sectors).unwrap()],
                acked_frames: counter,
            };
            let result = engine.run(&mut port, &mut work);
            (work.acked, result)
        });
        while acked_frames.load(Ordering::Relaxed) < 2000 {
            assert!(!writer.is_finished(), "the writer stopped early");
            std::thread::sleep(Duration::from_millis(1));
        }
        target.signal(libc::SIGTERM);
        let (status, output) = target.wait_exit(Duration::from_secs(10));
        let (acked, result) = writer.join().expect("writer thread");
        (acked, result, (status, output))
    });
    assert!(
        status.0.success(),
        "host-sim exited with {}:\n{}",
        status.0,
        status.1
    );
    assert!(
        result.is_err(),
        "the whole export was written before SIGTERM took effect: make it bigger"
    );
    let disk = std::fs::read(&file).unwrap();
    let mut expected = [0u8; 512];
    let mut checked = 0;
    for (lba, _) in acked.iter().enumerate().filter(|(_, acked)| **acked) {
        pattern_sector(lba as u64, seed, &mut expected);
        assert!(
            disk[lba * 512..(lba + 1) * 512] == expected,
            "acknowledged sector {lba} is not in the file"
        );
        checked += 1;
    }
    assert!(checked >= 4000, "only {checked} sectors acknowledged");
    eprintln!("{checked} acknowledged sectors all in the file; {result:?}");
}

#[test]
fn aoe_over_a_tap_device_drives_host_sim_on_its_kernel_side() {
    require_root!();
    // One namespace is enough: aoe is the far end of the TAP cable, host-sim listens on the
    // kernel side of the same device.
    let pair = Pair::new("tap", 1500);
    let scratch = Scratch::new("tap");
    let file = scratch.sparse("disk.img", 4 * MIB);
    let tap = format!("tp{}", std::process::id());
    let ip_ns = |args: &[&str]| pair.target.ip_ok(args);
    ip_ns(&["tuntap", "add", &tap, "mode", "tap"]);
    ip_ns(&["link", "set", &tap, "up"]);
    let mut command = pair
        .target
        .command(&[env!("CARGO_BIN_EXE_host-sim"), "9", "1", &tap]);
    command.arg(&file);
    let mut target = Proc::spawn(command, "host-sim");
    let aoe_binary = aoe_testkit::process::workspace_binary("aoe");
    let aoe = |args: &[&str]| {
        pair.target
            .command(&[])
            .arg(&aoe_binary)
            .args(args)
            .args(["--tap", &tap])
            .output()
            .expect("run aoe")
    };
    let start = std::time::Instant::now();
    loop {
        let out = aoe(&["identify", "-t", "9.1", "--timeout", "0.5"]);
        if out.status.success() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no answer over TAP: {}\nhost-sim: {}",
            String::from_utf8_lossy(&out.stderr),
            target.output()
        );
    }
    let out = aoe(&["verify", "-t", "9.1", "--seed", "4"]);
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("all match"),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    stop(&mut target);
    let disk = std::fs::read(&file).unwrap();
    let mut expected = [0u8; 512];
    pattern_sector(8191, 4, &mut expected);
    assert_eq!(
        &disk[8191 * 512..],
        &expected[..],
        "the last sector is in the file"
    );
}
