//! host-sim as a process on a veth pair in a private network namespace (needs root): start-up
//! announcement, discovery, IDENTIFY, batched writes and reads, jumbo frames after an MTU
//! change, read-only and windowed exports, foreign unicast ignored, SIGHUP reload, and SIGTERM.

mod common;

use aoe_host_sim::net::{Link, PacketLink};
use common::aoe::{Client, Reply, collect, exchange, pattern, send_all};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SECOND: Duration = Duration::from_secs(1);

struct Daemon(Child);

impl Daemon {
    /// Starts host-sim in the calling thread's network namespace and waits for its start-up
    /// line(s) on stdout.
    fn start(args: &[&str], lines: usize) -> Daemon {
        let mut child = Command::new(env!("CARGO_BIN_EXE_host-sim"))
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("start host-sim");
        let mut out = BufReader::new(child.stdout.take().unwrap());
        for _ in 0..lines {
            let mut line = String::new();
            out.read_line(&mut line).unwrap();
            assert!(line.starts_with("pid "), "start-up line: {line:?}");
        }
        // Keep draining stdout so that later lines (reloads) never block the daemon.
        std::thread::spawn(move || for _ in out.lines() {});
        Daemon(child)
    }

    fn signal(&self, signal: libc::c_int) {
        let pid = i32::try_from(self.0.id()).unwrap();
        // SAFETY: kill(2) on the child we started.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
    }

    fn wait(mut self, timeout: Duration) -> std::process::ExitStatus {
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

fn in_netns<F: FnOnce(&common::VethNs) + Send>(tag: &str, mtu: u32, body: F) {
    let veth = common::VethNs::new(tag, mtu);
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

fn client_for(link: &PacketLink, target: [u8; 6], shelf: u16, slot: u8) -> Client {
    Client {
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
        let mut link = PacketLink::open(&veth.b).unwrap();
        let daemon = Daemon::start(&["1", "2", &veth.a, file.to_str().unwrap()], 1);

        // The start-up announcement: a broadcast Query Config reply, version 1, tag 0.
        let announced = collect(&mut link, 1, 3 * SECOND);
        assert_eq!(announced.len(), 1, "no announcement");
        let ad = &announced[0];
        assert_eq!(
            (ad.major(), ad.minor(), ad.command(), ad.tag()),
            (1, 2, 1, 0)
        );
        assert_eq!(ad.0[0..6], [0xff; 6]);
        assert_eq!(ad.0[14], 0x18);
        let target = ad.src();

        // Discovery by broadcast: real address, Buffer Count 64, 2 sectors per frame.
        let broadcast = Client {
            mac: link.mac(),
            dst: [0xff; 6],
            shelf: 0xffff,
            slot: 0xff,
        };
        let reply = exchange(&mut link, &broadcast.query_config(7), SECOND).unwrap();
        assert_eq!((reply.major(), reply.minor()), (1, 2));
        assert_eq!(reply.buffer_count(), 64);
        assert_eq!(reply.sectors_per_frame(), 2);

        let client = client_for(&link, target, 1, 2);
        let identify = exchange(&mut link, &client.identify(8), SECOND).unwrap();
        assert_eq!(identify.ata_status(), 0x40);
        let words = identify.data();
        let lba48 = u64::from_le_bytes(words[200..208].try_into().unwrap());
        assert_eq!(lba48, (64 << 20) / 512);

        // 64 writes of 2 sectors in one batch (the advertised buffer count), all acknowledged.
        let frames: Vec<Vec<u8>> = (0..64u32)
            .map(|i| client.write(1000 + i, u64::from(i) * 2, &pattern(u64::from(i), 1024)))
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
        let flushed = exchange(&mut link, &client.flush(9), SECOND).unwrap();
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
            .map(|i| client.read(2000 + i, u64::from(i) * 2, 2))
            .collect();
        send_all(&mut link, &frames);
        let replies = collect(&mut link, 64, 5 * SECOND);
        assert_eq!(replies.len(), 64);
        for reply in &replies {
            let i = reply.tag() - 2000;
            assert_eq!(reply.ata_status(), 0x40);
            assert_eq!(
                reply.data()[..1024],
                pattern(u64::from(i), 1024)[..],
                "tag {}",
                reply.tag()
            );
        }

        // Out of range: ATA IDNF, never an AoE error.
        let last = (64u64 << 20) / 512 - 1;
        let reply = exchange(&mut link, &client.read(10, last, 2), SECOND).unwrap();
        assert_eq!(
            (reply.ata_status(), reply.ata_error(), reply.is_error()),
            (0x41, 0x10, false)
        );

        // Frames for another unicast MAC are ignored.
        let stranger = client_for(&link, [0x02, 9, 9, 9, 9, 9], 1, 2);
        assert!(
            exchange(
                &mut link,
                &stranger.query_config(11),
                Duration::from_millis(300)
            )
            .is_none()
        );

        // Jumbo frames once the MTU grows: re-read on Query Config.
        veth.exec(&["ip", "link", "set", &veth.a, "mtu", "9000"]);
        veth.exec(&["ip", "link", "set", &veth.b, "mtu", "9000"]);
        let reply = exchange(&mut link, &client.query_config(12), SECOND).unwrap();
        assert_eq!(reply.sectors_per_frame(), 17);
        let big = pattern(99, 17 * 512);
        let reply = exchange(&mut link, &client.write(13, 1000, &big), SECOND).unwrap();
        assert_eq!(reply.ata_status(), 0x40);
        let reply = exchange(&mut link, &client.read(14, 1000, 17), SECOND).unwrap();
        assert_eq!(reply.data()[..17 * 512], big[..]);

        // SIGTERM: clean exit 0, data on disk.
        daemon.signal(libc::SIGTERM);
        assert!(daemon.wait(5 * SECOND).success());
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
        let mut link = PacketLink::open(&veth.b).unwrap();
        let me = aoe_host_sim::spec::format_mac(&link.mac());
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
        assert_eq!(ad[0].0[0..6], link.mac());
        let client = client_for(&link, ad[0].src(), 3, 4);
        let identify = exchange(&mut link, &client.identify(1), SECOND).unwrap();
        assert_eq!(
            u64::from_le_bytes(identify.data()[200..208].try_into().unwrap()),
            16
        );
        let reply = exchange(&mut link, &client.read(2, 0, 1), SECOND).unwrap();
        assert!(
            reply.data()[..512].iter().all(|&b| b == 0x5A),
            "window starts at sector 8"
        );
        let reply = exchange(&mut link, &client.write(3, 0, &[1; 512]), SECOND).unwrap();
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
        let mut link = PacketLink::open(&veth.b).unwrap();
        let daemon = Daemon::start(&["--config", config.to_str().unwrap()], 1);
        assert_eq!(collect(&mut link, 1, 3 * SECOND).len(), 1);
        let target = {
            let broadcast = Client {
                mac: link.mac(),
                dst: [0xff; 6],
                shelf: 5,
                slot: 0,
            };
            exchange(&mut link, &broadcast.query_config(1), SECOND)
                .unwrap()
                .src()
        };
        // Give e5.0 a config string; it must survive a reload that leaves e5.0 alone.
        let client = client_for(&link, target, 5, 0);
        let mut set = client.header(1, 2);
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
        let reply = exchange(&mut link, &client.query_config(3), SECOND).unwrap();
        assert_eq!(&reply.0[32..36], b"keep", "unchanged export kept its state");

        // A broken file keeps the running config.
        std::fs::write(&config, "[[export]\n").unwrap();
        daemon.signal(libc::SIGHUP);
        std::thread::sleep(Duration::from_millis(300));
        let second = client_for(&link, target, 5, 1);
        assert!(exchange(&mut link, &second.query_config(4), SECOND).is_some());

        // Removing e5.0 stops answers for it.
        std::fs::write(&config, export(1, &b)).unwrap();
        daemon.signal(libc::SIGHUP);
        std::thread::sleep(Duration::from_millis(500));
        assert!(
            exchange(
                &mut link,
                &client.query_config(5),
                Duration::from_millis(300)
            )
            .is_none()
        );
        assert!(exchange(&mut link, &second.query_config(6), SECOND).is_some());

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
    let reply = Reply({
        let mut f = vec![0u8; 60];
        f[14] = 0x18;
        f[16..18].copy_from_slice(&7u16.to_be_bytes());
        f[18] = 3;
        f[20..24].copy_from_slice(&9u32.to_be_bytes());
        f
    });
    assert!(reply.is_response() && !reply.is_error());
    assert_eq!((reply.major(), reply.minor(), reply.tag()), (7, 3, 9));
}
