//! The `aoe` command over a real veth pair between two network namespaces, against an
//! in-process reference target (`aoe_core::Target` over a `MemDisk` on a raw socket), so the
//! initiator's own network path is tested independently of `host-sim` (needs root); and
//! against Debian's vblade.

use aoe_core::disk::MemDisk;
use aoe_core::{Config, Port, Target};
use aoe_net::{Frame, Link, PacketLink};
use aoe_testkit::netns::Pair;
use aoe_testkit::process::Proc;
use aoe_testkit::programs::vblade_available;
use aoe_testkit::require_root;
use aoe_testkit::scratch::{Scratch, random_bytes};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// `aoe_core::Target` answering on the target end of a pair, in a thread; stopped on drop.
struct RefTarget {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Vec<u8>>>,
}

impl RefTarget {
    fn start(pair: &Pair, sectors: usize, mtu: usize) -> RefTarget {
        let stop = Arc::new(AtomicBool::new(false));
        let iface = pair.target_if.clone();
        let ns = pair.target.name.clone();
        let flag = stop.clone();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            aoe_testkit::netns::enter(&ns);
            let mut link = PacketLink::open(&iface, 256).expect("open the target's raw socket");
            let mut config = Config::new(3, 4);
            config.max_frame_len = mtu + 14;
            config.buffer_count = 32;
            let disk = MemDisk::new(vec![0u8; sectors * 512]);
            let mut target = Target::new(config, disk).unwrap();
            let port = Port::new(link.mac(), mtu);
            let mut rx: Vec<Frame> = Vec::new();
            let mut tx: Vec<Frame> = Vec::new();
            ready_tx.send(()).unwrap();
            while !flag.load(Ordering::Relaxed) {
                if !link.wait(Some(Duration::from_millis(20))).unwrap() {
                    continue;
                }
                link.recv(&mut rx, 64).unwrap();
                for request in rx.drain(..) {
                    let mut reply = link.alloc().expect("a free frame");
                    if let Some(len) = target.handle(&port, request.as_slice(), reply.buffer_mut())
                    {
                        reply.set_len(len);
                        tx.push(reply);
                    }
                }
                link.send(&mut tx).unwrap();
            }
            target.into_disk().into_inner()
        });
        ready_rx
            .recv_timeout(Duration::from_secs(5))
            .expect("reference target started");
        RefTarget {
            stop,
            thread: Some(thread),
        }
    }

    fn disk(mut self) -> Vec<u8> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().expect("target thread")
    }
}

impl Drop for RefTarget {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[test]
fn aoe_drives_a_reference_target_over_veth() {
    require_root!();
    for mtu in [1500u32, 9000] {
        let pair = Pair::new("aoecli", mtu);
        let sectors = 8192; // 4 MiB
        let target = RefTarget::start(&pair, sectors, mtu as usize);
        let spf = if mtu == 1500 { 2 } else { 17 };

        let json = pair.aoe_ok(&["discover", "--wait", "1", "--json"]);
        assert!(json.contains("\"target\":\"e3.4\""), "{json}");
        assert!(json.contains(&format!("\"sectors\":{sectors}")), "{json}");
        assert!(
            json.contains(&format!("\"sectors_per_frame\":{spf}")),
            "{json}"
        );
        assert!(json.contains("\"buffer_count\":32"), "{json}");

        let scratch = Scratch::new("aoecli");
        let data = random_bytes(sectors * 512 - 300, u64::from(mtu));
        let input = scratch.file("in.bin", &data);
        let output = scratch.dir.join("out.bin");
        pair.aoe_ok(&["write", input.to_str().unwrap(), "-t", "3.4"]);
        pair.aoe_ok(&["read", output.to_str().unwrap(), "-t", "3.4"]);
        let back = std::fs::read(&output).unwrap();
        assert_eq!(back.len(), sectors * 512);
        assert_eq!(&back[..data.len()], &data[..], "MTU {mtu}");
        assert!(
            back[data.len()..].iter().all(|&b| b == 0),
            "zero-padded tail"
        );
        pair.aoe_ok(&["verify", "-t", "3.4", "--file", input.to_str().unwrap()]);

        let bench = pair.aoe_ok(&[
            "bench",
            "-t",
            "3.4",
            "--mode",
            "seq-read",
            "--seconds",
            "0.3",
            "--json",
        ]);
        assert!(bench.contains("\"mode\":\"seq-read\""), "{bench}");
        assert!(bench.contains(&format!("\"bs\":{}", spf * 512)), "{bench}");
        eprintln!("MTU {mtu}: {bench}");
        let disk = target.disk();
        assert_eq!(&disk[..data.len()], &data[..]);
    }
}

#[test]
fn aoe_reports_no_answer_and_bad_arguments() {
    require_root!();
    let pair = Pair::new("aoenone", 1500);
    let err = pair.aoe_fails(&["identify", "-t", "1.1", "--timeout", "0.5"]);
    assert!(err.contains("no answer"), "{err}");
    let out = pair.aoe(&["discover", "--wait", "0.2"]);
    assert_eq!(out.status.code(), Some(1));
    let out = pair.aoe(&["bench", "-t", "1.1", "--bs", "1000"]);
    assert_eq!(out.status.code(), Some(2), "bad arguments exit 2");
    assert!(String::from_utf8_lossy(&out.stderr).contains("multiple of 512"));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_aoe"))
        .args(["identify", "-t", "1.1", "-i", "no-such-if0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no-such-if0"), "{err}");
}

#[test]
fn aoe_works_with_debians_vblade() {
    require_root!();
    if !vblade_available("aoe_works_with_debians_vblade") {
        return;
    }
    let pair = Pair::new("vblade", 1500);
    let scratch = Scratch::new("vblade");
    let file = scratch.sparse("disk.img", 8 << 20);
    let mut command = pair.target.command(&["vblade", "1", "2", &pair.target_if]);
    command.arg(&file);
    let mut vblade = Proc::spawn(command, "vblade");
    pair.wait_for_target("1.2", &mut vblade);

    let json = pair.aoe_ok(&["discover", "--wait", "1", "--json"]);
    assert!(
        json.contains("\"firmware_version\":16409"),
        "vblade 25 is 0x4019: {json}"
    );
    assert!(json.contains("\"buffer_count\":16"), "{json}");
    let identify = pair.aoe_ok(&["identify", "-t", "1.2"]);
    assert!(identify.contains("FLUSH CACHE (no EXT)"), "{identify}");

    let data = random_bytes(1 << 20, 25);
    let input = scratch.file("in.bin", &data);
    let output = scratch.dir.join("out.bin");
    pair.aoe_ok(&["write", input.to_str().unwrap(), "-t", "1.2"]);
    pair.aoe_ok(&[
        "read",
        output.to_str().unwrap(),
        "-t",
        "1.2",
        "--count",
        "2048",
    ]);
    assert!(std::fs::read(&output).unwrap() == data);
    pair.aoe_ok(&["verify", "-t", "1.2", "--lba", "2048", "--count", "4096"]);
    let disk = std::fs::read(&file).unwrap();
    assert!(
        disk[..data.len()] == data[..],
        "vblade's file holds what aoe wrote"
    );
    drop(vblade);
}

#[test]
fn discover_without_an_interface_and_stdio_transfers() {
    require_root!();
    let pair = Pair::new("aoestdio", 1500);
    let sectors = 2048;
    let _target = RefTarget::start(&pair, sectors, 1500);
    let aoe = aoe_testkit::process::workspace_binary("aoe");

    // No -i: every AoE-capable interface of the namespace (here the one veth end; lo is not).
    let out = pair
        .initiator
        .command(&[aoe.to_str().unwrap(), "discover", "--wait", "1"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let row = text.lines().find(|l| l.starts_with("e3.4 ")).expect(&text);
    assert!(row.contains(&format!(" {} ", pair.init_if)), "{text}");
    assert!(!row.contains("CONFLICT"), "{text}");

    // write - takes standard input until it ends (here 3 sectors and a half: 4 written).
    let data = random_bytes(3 * 512 + 256, 77);
    let mut child = pair
        .aoe_command(&["write", "-", "-t", "3.4", "--lba", "10"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write as _;
        child.stdin.take().unwrap().write_all(&data).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("write: 4 sectors"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // read - puts exactly the sectors on standard output, the summary on standard error.
    let out = pair
        .aoe_command(&["read", "-", "-t", "3.4", "--lba", "10", "--count", "4"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(out.stdout.len(), 4 * 512);
    assert_eq!(&out.stdout[..data.len()], &data[..]);
    assert!(
        out.stdout[data.len()..].iter().all(|&b| b == 0),
        "zero padding"
    );
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("read: 4 sectors"));
    // read into /dev/null succeeds (nothing to sync).
    pair.aoe_ok(&["read", "/dev/null", "-t", "3.4", "--count", "64"]);
    // ping answers; the reference target answers SMART RETURN STATUS as healthy.
    let text = pair.aoe_ok(&["ping", "-t", "3.4", "--count", "2", "--smart"]);
    assert!(
        text.contains("2 sent, 2 answered") && text.contains("SMART: ok"),
        "{text}"
    );
}
