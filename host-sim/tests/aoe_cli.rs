//! The `aoe` command over a real veth pair between two network namespaces, against an
//! in-process reference target (`aoe_core::Target` over a `MemDisk` on a raw socket), so the
//! initiator's own network path is tested independently of `host-sim` (needs root).

mod netns;

use aoe_core::disk::MemDisk;
use aoe_core::{Config, Port, Target};
use aoe_host_sim::net::{FrameBufs, Link, PacketLink};
use netns::Pair;
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
        let (ns, iface) = (pair.target_ns.clone(), pair.target_if.clone());
        let flag = stop.clone();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            netns::enter(&ns);
            let mut link = PacketLink::open(&iface).expect("open the target's raw socket");
            let mut config = Config::new(3, 4);
            config.max_frame_len = mtu + 14;
            config.buffer_count = 32;
            let disk = MemDisk::new(vec![0u8; sectors * 512]);
            let mut target = Target::new(config, disk).unwrap();
            let port = Port::new(aoe_core::wire::EthernetAddress(link.mac()), mtu);
            let mut rx = FrameBufs::new(64, mtu + 14);
            let mut tx = FrameBufs::new(64, mtu + 14);
            ready_tx.send(()).unwrap();
            while !flag.load(Ordering::Relaxed) {
                let n = link.recv(&mut rx, Some(Duration::from_millis(20))).unwrap();
                let mut replies = 0;
                for slot in 0..n {
                    if rx.len(slot) == 0 {
                        continue;
                    }
                    let frame = rx.frame(slot);
                    if let Some(len) = target.handle(&port, frame, tx.slot_mut(replies)) {
                        tx.set_len(replies, len);
                        replies += 1;
                    }
                }
                if replies > 0 {
                    link.send(&tx, replies).unwrap();
                }
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
    need_root!("aoe_drives_a_reference_target_over_veth");
    for mtu in [1500u32, 9000] {
        let pair = Pair::new("aoecli", mtu);
        let sectors = 8192; // 4 MiB
        let target = RefTarget::start(&pair, sectors, mtu as usize);
        let spf = if mtu == 1500 { 2 } else { 17 };

        let json = pair.aoe_ok(&["discover", "--wait", "0.3", "--json"]);
        assert!(json.contains("\"target\":\"e3.4\""), "{json}");
        assert!(json.contains(&format!("\"sectors\":{sectors}")), "{json}");
        assert!(
            json.contains(&format!("\"sectors_per_frame\":{spf}")),
            "{json}"
        );
        assert!(json.contains("\"buffer_count\":32"), "{json}");

        let scratch = netns::Scratch::new("aoecli");
        let data = netns::random_bytes(sectors * 512 - 300, u64::from(mtu));
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
    need_root!("aoe_reports_no_answer_and_bad_arguments");
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
