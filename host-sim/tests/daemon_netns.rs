//! host-sim as a process on a veth pair in a private network namespace (needs root): start-up
//! announcement, discovery, IDENTIFY, batched writes and reads, jumbo frames after an MTU
//! change, read-only and windowed exports, foreign unicast ignored, SIGHUP reload, and SIGTERM.

mod common;

use aoe_net::{EthernetAddress, Link, MacText, PacketLink};
use aoe_testkit::frame::Initiator;
use aoe_testkit::netns::Veth;
use aoe_testkit::reply::Reply;
use aoe_testkit::require_root;
use aoe_testkit::scratch::random_bytes;
use common::{collect, exchange, send_all};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SECOND: Duration = Duration::from_secs(1);

/// `len` reproducible bytes for `seed`.
fn pattern(seed: u64, len: usize) -> Vec<u8> {
    random_bytes(len, seed)
}

struct Daemon(Child, std::sync::Arc<std::sync::Mutex<Vec<String>>>);

impl Daemon {
    /// Starts host-sim in the calling thread's network namespace and waits for its start-up
    /// line(s) on stdout.
    fn start(args: &[&str], lines: usize) -> Daemon {
        let mut child = Command::new(env!("CARGO_BIN_EXE_host-sim"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start host-sim");
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let err = BufReader::new(child.stderr.take().unwrap());
        let sink = std::sync::Arc::clone(&log);
        std::thread::spawn(move || {
            for line in err.lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let mut out = BufReader::new(child.stdout.take().unwrap());
        for _ in 0..lines {
            let mut line = String::new();
            out.read_line(&mut line).unwrap();
            assert!(line.starts_with("pid "), "start-up line: {line:?}");
        }
        // Keep draining stdout so that later lines (reloads) never block the daemon.
        std::thread::spawn(move || for _ in out.lines() {});
        Daemon(child, log)
    }

    fn signal(&self, signal: libc::c_int) {
        let pid = i32::try_from(self.0.id()).unwrap();
        // SAFETY: kill(2) on the child we started.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
    }

    /// The log lines so far that contain `needle`.
    fn log_lines(&self, needle: &str) -> Vec<String> {
        self.1
            .lock()
            .unwrap()
            .iter()
            .filter(|line| line.contains(needle))
            .cloned()
            .collect()
    }

    fn wait(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "host-sim did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn scratch(name: &str, bytes: u64) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe
        .parent()
        .unwrap()
        .join(format!("{name}-{}.img", std::process::id()));
    std::fs::File::create(&path)
        .unwrap()
        .set_len(bytes)
        .unwrap();
    path
}

fn in_netns<F: FnOnce(&Veth) + Send>(tag: &str, mtu: u32, body: F) {
    let veth = Veth::new(tag, mtu);
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                veth.enter();
                body(&veth);
            })
            .join()
            .unwrap();
    });
}

fn client_for(link: &PacketLink, target: EthernetAddress, shelf: u16, slot: u8) -> Initiator {
    Initiator {
        mac: link.mac(),
        dst: target,
        shelf,
        slot,
    }
}

#[test]
fn serves_a_sparse_file_end_to_end() {
    require_root!();
    in_netns("ds", 1500, |veth| {
        let file = scratch("e2e", 64 << 20);
        let mut link = PacketLink::open(&veth.b, 256).unwrap();
        let mut daemon = Daemon::start(&["1", "2", &veth.a, file.to_str().unwrap()], 1);

        // The start-up announcement: a broadcast Query Config reply, version 1, tag 0.
        let announced = collect(&mut link, 1, 3 * SECOND);
        assert_eq!(announced.len(), 1, "no announcement");
        let ad = &announced[0];
        assert_eq!(
            (ad.major(), ad.minor(), ad.command(), ad.tag()),
            (1, 2, 1, 0)
        );
        assert_eq!(ad.bytes[0..6], [0xff; 6]);
        assert_eq!(ad.bytes[14], 0x18);
        let target = ad.src();

        // Discovery by broadcast: real address, Buffer Count 64, 2 sectors per frame.
        let broadcast = Initiator {
            mac: link.mac(),
            dst: EthernetAddress([0xff; 6]),
            shelf: 0xffff,
            slot: 0xff,
        };
        let reply = exchange(&mut link, &broadcast.query_config(7).bytes, SECOND).unwrap();
        assert_eq!((reply.major(), reply.minor()), (1, 2));
        assert_eq!(reply.cfg_buffer_count(), 64);
        assert_eq!(reply.cfg_sector_count(), 2);

        let client = client_for(&link, target, 1, 2);
        let identify = exchange(&mut link, &client.identify(8).bytes, SECOND).unwrap();
        assert_eq!(identify.ata_status(), 0x40);
        let words = identify.ata_data();
        let lba48 = u64::from_le_bytes(words[200..208].try_into().unwrap());
        assert_eq!(lba48, (64 << 20) / 512);
        // Serial (words 10-19, byte-swapped pairs) as vblade's: "shelf.slot:hostname".
        let serial: Vec<u8> = words[20..40]
            .chunks(2)
            .flat_map(|pair| [pair[1], pair[0]])
            .collect();
        assert!(
            serial.starts_with(b"1.2:"),
            "{:?}",
            String::from_utf8_lossy(&serial)
        );

        // 64 writes of 2 sectors in one batch (the advertised buffer count), all acknowledged.
        let frames: Vec<Vec<u8>> = (0..64u32)
            .map(|i| {
                client
                    .write48(1000 + i, u64::from(i) * 2, &pattern(u64::from(i), 1024))
                    .bytes
            })
            .collect();
        send_all(&mut link, &frames);
        let replies = collect(&mut link, 64, 5 * SECOND);
        assert_eq!(replies.len(), 64, "every write answered, none dropped");
        for reply in &replies {
            assert_eq!(
                (reply.ata_status(), reply.is_error()),
                (0x40, false),
                "tag {}",
                reply.tag()
            );
        }
        let flushed = exchange(&mut link, &client.flush_ext(9).bytes, SECOND).unwrap();
        assert_eq!(flushed.ata_status(), 0x40);
        let on_disk = std::fs::read(&file).unwrap();
        for i in 0..64usize {
            assert_eq!(
                on_disk[i * 1024..(i + 1) * 1024],
                pattern(i as u64, 1024)[..],
                "sectors {}",
                i * 2
            );
        }

        // Read them back in one batch.
        let frames: Vec<Vec<u8>> = (0..64u32)
            .map(|i| client.read48(2000 + i, u64::from(i) * 2, 2).bytes)
            .collect();
        send_all(&mut link, &frames);
        let replies = collect(&mut link, 64, 5 * SECOND);
        assert_eq!(replies.len(), 64);
        for reply in &replies {
            let i = reply.tag() - 2000;
            assert_eq!(reply.ata_status(), 0x40);
            assert_eq!(
                reply.ata_data()[..1024],
                pattern(u64::from(i), 1024)[..],
                "tag {}",
                reply.tag()
            );
        }

        // Out of range: ATA IDNF, never an AoE error.
        let last = (64u64 << 20) / 512 - 1;
        let reply = exchange(&mut link, &client.read48(10, last, 2).bytes, SECOND).unwrap();
        assert_eq!(
            (reply.ata_status(), reply.ata_error(), reply.is_error()),
            (0x41, 0x10, false)
        );

        // Frames for another unicast MAC are ignored.
        let stranger = client_for(&link, EthernetAddress([0x02, 9, 9, 9, 9, 9]), 1, 2);
        assert!(
            exchange(
                &mut link,
                &stranger.query_config(11).bytes,
                Duration::from_millis(300)
            )
            .is_none()
        );

        // Jumbo frames once the MTU grows: re-read on Query Config.
        veth.exec(&["ip", "link", "set", &veth.a, "mtu", "9000"]);
        veth.exec(&["ip", "link", "set", &veth.b, "mtu", "9000"]);
        let reply = exchange(&mut link, &client.query_config(12).bytes, SECOND).unwrap();
        assert_eq!(reply.cfg_sector_count(), 17);
        let big = pattern(99, 17 * 512);
        let reply = exchange(&mut link, &client.write48(13, 1000, &big).bytes, SECOND).unwrap();
        assert_eq!(reply.ata_status(), 0x40);
        let reply = exchange(&mut link, &client.read48(14, 1000, 17).bytes, SECOND).unwrap();
        assert_eq!(reply.ata_data()[..17 * 512], big[..]);

        // SIGUSR1 logs the counters: 64 × 2 + 17 sectors written, one flush.
        daemon.signal(libc::SIGUSR1);
        std::thread::sleep(Duration::from_millis(300));
        let counters = daemon.log_lines("e1.2: ");
        assert!(
            counters
                .iter()
                .any(|l| l.contains("145 sectors written, 1 flushes")),
            "{counters:?}"
        );

        // SIGTERM: clean exit 0, data on disk.
        daemon.signal(libc::SIGTERM);
        assert!(daemon.wait(5 * SECOND).success());
        assert_eq!(
            daemon
                .log_lines("INFO")
                .last()
                .map(|l| l.ends_with("stopped")),
            Some(true)
        );
        let on_disk = std::fs::read(&file).unwrap();
        assert_eq!(on_disk[1000 * 512..1017 * 512], big[..]);
        std::fs::remove_file(&file).unwrap();
    });
}

#[test]
fn read_only_window_and_mask() {
    require_root!();
    in_netns("dr", 1500, |veth| {
        let file = scratch("ro", 1 << 20);
        let mut contents = vec![0u8; 1 << 20];
        contents[8 * 512..9 * 512].fill(0x5A);
        std::fs::write(&file, &contents).unwrap();
        let mut link = PacketLink::open(&veth.b, 256).unwrap();
        let me = MacText(link.mac()).to_string();
        let _daemon = Daemon::start(
            &[
                "-r",
                "-o",
                "8",
                "-l",
                "16",
                "-m",
                &me,
                "3",
                "4",
                &veth.a,
                file.to_str().unwrap(),
            ],
            1,
        );
        // With a mask, the announcement goes to each listed MAC, not to broadcast.
        let ad = collect(&mut link, 1, 3 * SECOND);
        assert_eq!(ad.len(), 1);
        assert_eq!(ad[0].bytes[0..6], link.mac().0);
        let client = client_for(&link, ad[0].src(), 3, 4);
        let identify = exchange(&mut link, &client.identify(1).bytes, SECOND).unwrap();
        assert_eq!(
            u64::from_le_bytes(identify.ata_data()[200..208].try_into().unwrap()),
            16
        );
        let reply = exchange(&mut link, &client.read48(2, 0, 1).bytes, SECOND).unwrap();
        assert!(
            reply.ata_data()[..512].iter().all(|&b| b == 0x5A),
            "window starts at sector 8"
        );
        let reply = exchange(&mut link, &client.write48(3, 0, &[1; 512]).bytes, SECOND).unwrap();
        assert_eq!(
            (reply.ata_status(), reply.ata_error()),
            (0x41, 0x04),
            "read-only: ABRT"
        );
        assert_eq!(std::fs::read(&file).unwrap(), contents);
        std::fs::remove_file(&file).unwrap();
    });
}

#[test]
fn sighup_reloads_the_config_and_keeps_unchanged_exports() {
    require_root!();
    in_netns("dh", 1500, |veth| {
        let a = scratch("hup-a", 1 << 20);
        let b = scratch("hup-b", 2 << 20);
        let config = a.with_extension("toml");
        let export = |slot: u8, file: &Path| {
            format!(
                "[[export]]\nshelf = 5\nslot = {slot}\ninterfaces = [\"{}\"]\nfile = \"{}\"\n",
                veth.a,
                file.display()
            )
        };
        std::fs::write(&config, export(0, &a)).unwrap();
        let mut link = PacketLink::open(&veth.b, 256).unwrap();
        let mut daemon = Daemon::start(&["--config", config.to_str().unwrap()], 1);
        assert_eq!(collect(&mut link, 1, 3 * SECOND).len(), 1);
        let target = {
            let broadcast = Initiator {
                mac: link.mac(),
                dst: EthernetAddress([0xff; 6]),
                shelf: 5,
                slot: 0,
            };
            exchange(&mut link, &broadcast.query_config(1).bytes, SECOND)
                .unwrap()
                .src()
        };
        // Give e5.0 a config string; it must survive a reload that leaves e5.0 alone.
        let client = client_for(&link, target, 5, 0);
        let mut set = client.header(1, 2).bytes;
        set.extend_from_slice(&[0, 0, 0, 0, 0, 0x14, 0, 4]);
        set.extend_from_slice(b"keep");
        assert!(!exchange(&mut link, &set, SECOND).unwrap().is_error());

        std::fs::write(&config, export(0, &a) + &export(1, &b)).unwrap();
        daemon.signal(libc::SIGHUP);
        let ad = collect(&mut link, 1, 3 * SECOND);
        assert_eq!(
            (ad[0].major(), ad[0].minor()),
            (5, 1),
            "new export announced"
        );
        let reply = exchange(&mut link, &client.query_config(3).bytes, SECOND).unwrap();
        assert_eq!(
            &reply.bytes[32..36],
            b"keep",
            "unchanged export kept its state"
        );
        // Both exports share the interface's socket; a broadcast reaches each of them.
        let everyone = Initiator {
            mac: link.mac(),
            dst: EthernetAddress([0xff; 6]),
            shelf: 0xffff,
            slot: 0xff,
        };
        send_all(&mut link, &[everyone.query_config(30).bytes]);
        let mut answered: Vec<(u16, u8)> = collect(&mut link, 2, SECOND)
            .iter()
            .filter(|r| r.tag() == 30)
            .map(|r| (r.major(), r.minor()))
            .collect();
        answered.sort_unstable();
        assert_eq!(answered, [(5, 0), (5, 1)]);

        // A broken file keeps the running config.
        std::fs::write(&config, "[[export]\n").unwrap();
        daemon.signal(libc::SIGHUP);
        std::thread::sleep(Duration::from_millis(300));
        let second = client_for(&link, target, 5, 1);
        assert!(exchange(&mut link, &second.query_config(4).bytes, SECOND).is_some());

        // Removing e5.0 stops answers for it.
        std::fs::write(&config, export(1, &b)).unwrap();
        daemon.signal(libc::SIGHUP);
        std::thread::sleep(Duration::from_millis(500));
        assert!(
            exchange(
                &mut link,
                &client.query_config(5).bytes,
                Duration::from_millis(300)
            )
            .is_none()
        );
        assert!(exchange(&mut link, &second.query_config(6).bytes, SECOND).is_some());

        daemon.signal(libc::SIGINT);
        assert!(daemon.wait(5 * SECOND).success());
        for path in [&a, &b, &config] {
            std::fs::remove_file(path).unwrap();
        }
    });
}

/// Runs host-sim to a refusal and returns its one stderr line.
fn refusal(args: &[&str], as_nobody: bool) -> String {
    use std::os::unix::process::CommandExt;
    let mut command = Command::new(env!("CARGO_BIN_EXE_host-sim"));
    command.args(args);
    if as_nobody {
        command.uid(65534).gid(65534);
    }
    let out = command.output().unwrap();
    assert!(!out.status.success(), "{args:?} succeeded");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr:?}");
    stderr
}

#[test]
fn refuses_down_interfaces_and_missing_privilege() {
    require_root!();
    in_netns("dp", 1500, |veth| {
        let file = scratch("perm", 1 << 20);
        let path = file.to_str().unwrap();
        // Readable by nobody, so the refusal is about the socket, not the file.
        std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o666))
            .unwrap();
        let message = refusal(&["1", "1", &veth.a, path], true);
        assert!(
            message.contains("no permission to open a raw packet socket"),
            "{message}"
        );
        assert!(message.contains("CAP_NET_RAW"), "{message}");
        veth.exec(&["ip", "link", "set", &veth.a, "down"]);
        let message = refusal(&["1", "1", &veth.a, path], false);
        assert!(message.contains("is down"), "{message}");
        std::fs::remove_file(&file).unwrap();
    });
}

#[test]
fn collected_reply_helpers_are_honest() {
    // Runs everywhere: the helper reads the fields from the documented offsets.
    let reply = Reply {
        bytes: {
            let mut f = vec![0u8; 60];
            f[14] = 0x18;
            f[16..18].copy_from_slice(&7u16.to_be_bytes());
            f[18] = 3;
            f[20..24].copy_from_slice(&9u32.to_be_bytes());
            f
        },
    };
    assert!(reply.is_response() && !reply.is_error());
    assert_eq!((reply.major(), reply.minor(), reply.tag()), (7, 3, 9));
}

#[test]
fn exports_over_a_tap_device() {
    require_root!();
    in_netns("dt", 1500, |_veth| {
        let file = scratch("tap", 1 << 20);
        let tap = format!("hst{}", std::process::id());
        let daemon = Daemon::start(&["--tap", &tap, "2", "3", file.to_str().unwrap()], 1);
        // host-sim created the TAP device and brought it up; talk to it from the kernel side.
        let deadline = Instant::now() + 3 * SECOND;
        let mut link = loop {
            match PacketLink::open(&tap, 256) {
                Ok(link) => break link,
                Err(error) => {
                    assert!(Instant::now() < deadline, "{error}");
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        };
        let broadcast = Initiator {
            mac: link.mac(),
            dst: EthernetAddress([0xff; 6]),
            shelf: 2,
            slot: 3,
        };
        // Frames sent into a TAP device that has just come up can be dropped while the kernel
        // activates its queue (up to a second), so ask again as an initiator would.
        let deadline = Instant::now() + 5 * SECOND;
        let reply = loop {
            if let Some(reply) = exchange(
                &mut link,
                &broadcast.query_config(1).bytes,
                Duration::from_millis(250),
            ) {
                break reply;
            }
            assert!(
                Instant::now() < deadline,
                "no reply; log: {:?}",
                daemon.log_lines("")
            );
        };
        assert_ne!(reply.src(), link.mac(), "the TAP end has its own MAC");
        let client = client_for(&link, reply.src(), 2, 3);
        let data = pattern(5, 1024);
        assert_eq!(
            exchange(&mut link, &client.write48(2, 6, &data).bytes, SECOND)
                .unwrap()
                .ata_status(),
            0x40
        );
        let reply = exchange(&mut link, &client.read48(3, 6, 2).bytes, SECOND).unwrap();
        assert_eq!(reply.ata_data()[..1024], data[..]);
        std::fs::remove_file(&file).unwrap();
    });
}

#[test]
fn direct_and_sync_exports_round_trip() {
    require_root!();
    in_netns("dd", 9000, |veth| {
        let file = scratch("direct", 4 << 20);
        let mut link = PacketLink::open(&veth.b, 256).unwrap();
        let mut daemon = Command::new(env!("CARGO_BIN_EXE_host-sim"))
            .args(["-d", "-s", "1", "5", &veth.a, file.to_str().unwrap()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = String::new();
        BufReader::new(daemon.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        if first.is_empty() {
            let out = daemon.wait_with_output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(stderr.contains("direct I/O (-d)"), "{stderr}");
            use std::io::Write as _;
            let _ = writeln!(std::io::stderr(), "SKIPPED direct export: {stderr}");
            return;
        }
        let mut daemon = Daemon(daemon, Default::default());
        let ad = collect(&mut link, 1, 3 * SECOND);
        assert_eq!(ad[0].cfg_sector_count(), 17);
        let client = client_for(&link, ad[0].src(), 1, 5);
        // 17-sector frames at odd LBAs: the file offsets are 512-aligned, the buffers page-aligned.
        let frames: Vec<Vec<u8>> = (0..16u32)
            .map(|i| {
                client
                    .write48(
                        i,
                        1 + u64::from(i) * 17,
                        &pattern(u64::from(i) + 50, 17 * 512),
                    )
                    .bytes
            })
            .collect();
        send_all(&mut link, &frames);
        let replies = collect(&mut link, 16, 5 * SECOND);
        assert_eq!(replies.len(), 16);
        assert!(replies.iter().all(|r| r.ata_status() == 0x40));
        let reply = exchange(&mut link, &client.read48(99, 1 + 3 * 17, 17).bytes, SECOND).unwrap();
        assert_eq!(reply.ata_data()[..17 * 512], pattern(53, 17 * 512)[..]);
        daemon.signal(libc::SIGTERM);
        assert!(daemon.wait(5 * SECOND).success());
        let on_disk = std::fs::read(&file).unwrap();
        for i in 0..16usize {
            let at = (1 + i * 17) * 512;
            assert_eq!(
                on_disk[at..at + 17 * 512],
                pattern(i as u64 + 50, 17 * 512)[..]
            );
        }
        std::fs::remove_file(&file).unwrap();
    });
}

#[test]
fn sigterm_with_writes_in_flight_keeps_every_acknowledged_write() {
    require_root!();
    in_netns("dw", 1500, |veth| {
        let file = scratch("inflight", 16 << 20);
        let mut link = PacketLink::open(&veth.b, 256).unwrap();
        let mut daemon = Daemon::start(&["1", "6", &veth.a, file.to_str().unwrap()], 1);
        let ad = collect(&mut link, 1, 3 * SECOND);
        let client = client_for(&link, ad[0].src(), 1, 6);
        let mut acknowledged = Vec::new();
        let mut signalled = false;
        let started = Instant::now();
        // Windows of 32 writes (tag = frame index, LBA = 2 × index) until the target stops
        // answering; SIGTERM after 150 ms, in the middle of the stream.
        for window in 0..2000u32 {
            let frames: Vec<Vec<u8>> = (window * 32..window * 32 + 32)
                .map(|i| {
                    client
                        .write48(i, u64::from(i) * 2, &pattern(u64::from(i), 1024))
                        .bytes
                })
                .collect();
            send_all(&mut link, &frames);
            if !signalled && started.elapsed() > Duration::from_millis(150) {
                daemon.signal(libc::SIGTERM);
                signalled = true;
            }
            let replies = collect(&mut link, 32, Duration::from_millis(300));
            acknowledged.extend(
                replies
                    .iter()
                    .filter(|r| r.ata_status() == 0x40)
                    .map(Reply::tag),
            );
            if replies.len() < 32 {
                break;
            }
        }
        assert!(signalled, "the stream ended before SIGTERM");
        assert!(!acknowledged.is_empty());
        assert!(daemon.wait(5 * SECOND).success());
        let on_disk = std::fs::read(&file).unwrap();
        for tag in &acknowledged {
            let at = *tag as usize * 1024;
            assert_eq!(
                on_disk[at..at + 1024],
                pattern(u64::from(*tag), 1024)[..],
                "acknowledged write {tag}"
            );
        }
        std::fs::remove_file(&file).unwrap();
    });
}

#[test]
fn survives_its_interface_going_down_and_being_recreated() {
    require_root!();
    in_netns("dl", 1500, |veth| {
        let file = scratch("relink", 1 << 20);
        let mut link = PacketLink::open(&veth.b, 256).unwrap();
        let daemon = Daemon::start(&["1", "7", &veth.a, file.to_str().unwrap()], 1);
        let ad = collect(&mut link, 1, 3 * SECOND);
        let client = client_for(&link, ad[0].src(), 1, 7);
        assert!(exchange(&mut link, &client.query_config(1).bytes, SECOND).is_some());

        // Down and up again: answered again (the same socket, or a reopened one).
        veth.exec(&["ip", "link", "set", &veth.a, "down"]);
        std::thread::sleep(Duration::from_millis(300));
        veth.exec(&["ip", "link", "set", &veth.a, "up"]);
        let deadline = Instant::now() + 5 * SECOND;
        while exchange(
            &mut link,
            &client.query_config(2).bytes,
            Duration::from_millis(300),
        )
        .is_none()
        {
            assert!(
                Instant::now() < deadline,
                "no answer after the interface came back up"
            );
        }

        // Deleted and recreated under the same name: reopened and announced again.
        veth.exec(&["ip", "link", "del", &veth.a]);
        std::thread::sleep(Duration::from_millis(300));
        veth.exec(&[
            "ip", "link", "add", &veth.a, "type", "veth", "peer", "name", &veth.b,
        ]);
        veth.exec(&["ip", "link", "set", &veth.a, "up"]);
        veth.exec(&["ip", "link", "set", &veth.b, "up"]);
        let mut link = PacketLink::open(&veth.b, 256).unwrap();
        let ad = collect(&mut link, 1, 5 * SECOND);
        assert_eq!(
            ad.len(),
            1,
            "no announcement after the interface was recreated"
        );
        assert_eq!((ad[0].major(), ad[0].minor()), (1, 7));
        let client = client_for(&link, ad[0].src(), 1, 7);
        assert!(exchange(&mut link, &client.query_config(3).bytes, SECOND).is_some());
        assert!(
            !daemon.log_lines(": reopened (").is_empty(),
            "the link was reopened"
        );
        std::fs::remove_file(&file).unwrap();
    });
}
