//! host-sim exporting Ceph RBD images, with a real single-node cluster (root and Ceph needed;
//! skipped otherwise, a failure with `AOE_REQUIRE_CEPH=1`):
//!
//! * one gateway: discovery, IDENTIFY, the whole export written, read back and compared with
//!   `rbd export`, the config string, a read-only snapshot export, and a resize shown after a
//!   SIGHUP reload;
//! * two failover gateways (`--ha rbd-lock`) in two namespaces on one LAN with the cluster and
//!   the initiator: ten cuts of the active gateway, alternately SIGKILL and its link taken
//!   down while it keeps running. I/O (write, flush, read back, compare) runs all along; after
//!   every cut it must resume through the other gateway within 15 s, the cut gateway must be
//!   blocklisted, and the config string must follow the image. The times from cut to the first
//!   answered I/O are printed as `FAILOVER` lines.

use aoe_testkit::ceph::{Cluster, Store};
use aoe_testkit::netns::{Lan, Namespace, Pair};
use aoe_testkit::process::{Proc, workspace_binary};
use aoe_testkit::scratch::{Scratch, random_bytes};
use aoe_testkit::{require_ceph, require_root};
use std::io::{BufRead, BufReader, Write as _};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const MIB: u64 = 1 << 20;

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

/// A host-sim process whose log lines are collected as they come.
struct Gateway {
    proc: Proc,
    log: Arc<Mutex<Vec<(Instant, String)>>>,
    name: String,
}

impl Gateway {
    fn start(ns: &Namespace, args: &[&str], name: &str) -> Gateway {
        let mut command = ns.command(&[]);
        command.arg(workspace_binary("host-sim")).args(args);
        let mut proc = Proc::spawn(command, name);
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = proc.take_stderr().expect("stderr");
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push((Instant::now(), line));
            }
        });
        Gateway {
            proc,
            log,
            name: name.to_owned(),
        }
    }

    /// When a log line containing `text` arrived after `since`, if one did.
    fn logged_after(&self, text: &str, since: Instant) -> Option<Instant> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .find(|(at, line)| *at >= since && line.contains(text))
            .map(|(at, _)| *at)
    }

    fn wait_log(&mut self, text: &str, since: Instant, limit: Duration) -> Instant {
        let start = Instant::now();
        loop {
            if let Some(at) = self.logged_after(text, since) {
                return at;
            }
            if let Some(status) = self.proc.try_exit() {
                panic!("{} exited with {status}:\n{}", self.name, self.dump());
            }
            assert!(
                start.elapsed() < limit,
                "{}: no {text:?} within {limit:?}:\n{}",
                self.name,
                self.dump()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn dump(&self) -> String {
        self.log
            .lock()
            .unwrap()
            .iter()
            .map(|(_, line)| line.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn stop(mut self) -> String {
        self.proc.signal(libc::SIGTERM);
        let (status, _) = self.proc.wait_exit(Duration::from_secs(20));
        assert!(
            status.success(),
            "{} exited with {status}:\n{}",
            self.name,
            self.dump()
        );
        self.dump()
    }
}

fn aoe_in(ns: &Namespace, interface: &str, args: &[&str]) -> std::process::Output {
    let mut command = ns.command(&[]);
    command
        .arg(workspace_binary("aoe"))
        .args(args)
        .args(["-i", interface]);
    command.output().expect("run aoe")
}

fn aoe_ok(ns: &Namespace, interface: &str, args: &[&str]) -> String {
    let out = aoe_in(ns, interface, args);
    assert!(
        out.status.success(),
        "aoe {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn an_rbd_export_serves_the_whole_image_a_snapshot_and_a_resize() {
    require_root!();
    require_ceph!();
    let pair = Pair::new("rbdexp", 9000);
    let scratch = Scratch::on_disk("rbdexp");
    // The cluster runs in the target's namespace, on its loopback.
    let cluster = Cluster::up(
        &scratch.dir.join("ceph"),
        Store::Mem,
        Some((&pair.target, "127.0.0.1")),
    );
    cluster.create_image("disk", 16);
    cluster.run("rbd", &["snap", "create", "rbd/disk@empty"]);
    let conf = cluster.conf();
    let config = scratch.file(
        "host-sim.toml",
        format!(
            "[[export]]\nshelf = 1\nslot = 3\ninterfaces = [\"{ifc}\"]\n\
             file = \"rbd:rbd/disk:conf={conf}\"\n\n\
             [[export]]\nshelf = 1\nslot = 4\ninterfaces = [\"{ifc}\"]\nread_only = true\n\
             file = \"rbd:rbd/disk@empty:conf={conf}\"\n",
            ifc = pair.target_if,
            conf = conf.display()
        )
        .as_bytes(),
    );
    let mut target = Gateway::start(
        &pair.target,
        &["--config", config.to_str().unwrap()],
        "host-sim",
    );
    let started = Instant::now();
    target.wait_log("running, pid", started, Duration::from_secs(30));
    pair.wait_for_target("1.3", &mut target.proc);

    let json = pair.aoe_ok(&["discover", "--wait", "1", "--json"]);
    assert!(json.contains("e1.3") && json.contains("e1.4"), "{json}");
    assert_eq!(json_field(&json, "sectors"), "32768", "{json}");
    let identify = pair.aoe_ok(&["identify", "-t", "1.3"]);
    assert!(identify.contains("32768 sectors"), "{identify}");
    let out = pair.aoe_ok(&["verify", "-t", "1.3", "--seed", "15"]);
    assert!(out.contains("all match"), "{out}");

    let data = random_bytes(usize::try_from(16 * MIB).unwrap(), 15);
    let input = scratch.file("in.bin", &data);
    let output = scratch.dir.join("out.bin");
    pair.aoe_ok(&["write", input.to_str().unwrap(), "-t", "1.3"]);
    pair.aoe_ok(&["read", output.to_str().unwrap(), "-t", "1.3"]);
    assert!(std::fs::read(&output).unwrap() == data, "read back differs");
    let exported = scratch.dir.join("exported.raw");
    cluster.run("rbd", &["export", "rbd/disk", exported.to_str().unwrap()]);
    assert!(
        std::fs::read(&exported).unwrap() == data,
        "rbd export differs from what was written through AoE"
    );

    pair.aoe_ok(&["config", "set", "rbd gateway", "-t", "1.3"]);
    assert_eq!(
        pair.aoe_ok(&["config", "get", "-t", "1.3"]),
        "rbd gateway\n"
    );

    // The snapshot: read-only, and it still shows the empty image.
    let err = pair.aoe_fails(&[
        "write",
        input.to_str().unwrap(),
        "-t",
        "1.4",
        "--count",
        "8",
    ]);
    assert!(err.contains("ABRT"), "{err}");
    let snap_out = scratch.dir.join("snap.bin");
    pair.aoe_ok(&[
        "read",
        snap_out.to_str().unwrap(),
        "-t",
        "1.4",
        "--count",
        "2048",
    ]);
    assert!(std::fs::read(&snap_out).unwrap().iter().all(|&b| b == 0));

    // Resize, reload: the new capacity shows, the config string stays.
    cluster.run("rbd", &["resize", "--size", "24M", "rbd/disk"]);
    target.proc.signal(libc::SIGHUP);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let identify = pair.aoe_ok(&["identify", "-t", "1.3"]);
        if identify.contains("49152 sectors") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no new capacity: {identify}\n{}",
            target.dump()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        pair.aoe_ok(&["config", "get", "-t", "1.3"]),
        "rbd gateway\n"
    );
    let out = pair.aoe_ok(&["verify", "-t", "1.3", "--lba", "40000", "--count", "9152"]);
    assert!(out.contains("all match"), "{out}");
    let log = target.stop();
    assert!(
        log.contains("capacity is now 49152 sectors (was 32768)"),
        "{log}"
    );
    drop(cluster);
}

/// What the I/O loop saw: (start, end, ok) of every `aoe verify`.
type Outcomes = Arc<Mutex<Vec<(Instant, Instant, bool)>>>;

#[test]
fn two_gateways_fail_over_ten_times_on_kill_and_on_link_cut() {
    require_root!();
    require_ceph!();
    let scratch = Scratch::on_disk("rbdfo");
    let lan = Lan::new("rbdfo", 1500);
    lan.address_bridge("10.15.0.1/24");
    let cluster = Cluster::up(
        &scratch.dir.join("ceph"),
        Store::Mem,
        Some((&lan.ns, "10.15.0.1")),
    );
    cluster.create_image("ha", 16);
    let gateways_ns = [Namespace::new("gwa"), Namespace::new("gwb")];
    let interfaces = [
        lan.attach(&gateways_ns[0], Some("10.15.0.2/24")),
        lan.attach(&gateways_ns[1], Some("10.15.0.3/24")),
    ];
    let initiator = Namespace::new("ini");
    let ini_if = lan.attach(&initiator, None);
    let spec = format!("rbd:rbd/ha:conf={}", cluster.conf().display());
    let start_gateway = |index: usize| {
        Gateway::start(
            &gateways_ns[index],
            &["--ha", "rbd-lock", "7", "1", &interfaces[index], &spec],
            ["gateway-a", "gateway-b"][index],
        )
    };

    let t0 = Instant::now();
    let mut gateways = [Some(start_gateway(0)), None];
    gateways[0]
        .as_mut()
        .unwrap()
        .wait_log("ACTIVE", t0, Duration::from_secs(30));
    gateways[1] = Some(start_gateway(1));
    gateways[1]
        .as_mut()
        .unwrap()
        .wait_log("standby until", t0, Duration::from_secs(30));
    // The standby is silent: only one answer to discovery.
    std::thread::sleep(Duration::from_millis(500));
    let json = aoe_ok(&initiator, &ini_if, &["discover", "--wait", "1", "--json"]);
    assert_eq!(json.matches("\"target\"").count(), 1, "{json}");
    aoe_ok(
        &initiator,
        &ini_if,
        &["config", "set", "ha image", "-t", "7.1"],
    );

    // I/O all along: write a pattern, flush, read back, compare, over rotating ranges.
    let stop = Arc::new(AtomicBool::new(false));
    let outcomes: Outcomes = Arc::new(Mutex::new(Vec::new()));
    let io_thread = {
        let stop = Arc::clone(&stop);
        let outcomes = Arc::clone(&outcomes);
        let initiator_name = initiator.name.clone();
        let ini_if = ini_if.clone();
        let aoe = workspace_binary("aoe");
        std::thread::spawn(move || {
            let mut round = 0u64;
            let mut mismatches = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let lba = (round * 64) % 30000;
                let begin = Instant::now();
                let out = Command::new("ip")
                    .args(["netns", "exec", &initiator_name])
                    .arg(&aoe)
                    .args(["verify", "-t", "7.1", "--count", "64", "--timeout", "1"])
                    .args(["--lba", &lba.to_string(), "--seed", &round.to_string()])
                    .args(["-i", &ini_if])
                    .output()
                    .expect("run aoe");
                let text = String::from_utf8_lossy(&out.stderr).into_owned();
                if text.contains("mismatch") {
                    mismatches.push(text);
                }
                outcomes
                    .lock()
                    .unwrap()
                    .push((begin, Instant::now(), out.status.success()));
                round += 1;
            }
            mismatches
        })
    };
    let first_ok_after = |since: Instant| {
        outcomes
            .lock()
            .unwrap()
            .iter()
            .find(|(begin, _, ok)| *ok && *begin >= since)
            .map(|(_, end, _)| *end)
    };

    let mut active = 0usize;
    let mut timings = Vec::new();
    let mut blocklisted = 0usize;
    for cut in 0..10 {
        // Wait for I/O to flow through the active gateway.
        let flowing = Instant::now();
        let deadline = flowing + Duration::from_secs(20);
        while first_ok_after(flowing).is_none() {
            assert!(
                Instant::now() < deadline,
                "cut {cut}: no I/O before the cut"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let standby = 1 - active;
        let kill = cut % 2 == 0;
        let cut_at = Instant::now();
        if kill {
            gateways[active]
                .as_ref()
                .unwrap()
                .proc
                .signal(libc::SIGKILL);
        } else {
            gateways_ns[active].ip_ok(&["link", "set", &interfaces[active], "down"]);
        }
        let took_over =
            gateways[standby]
                .as_mut()
                .unwrap()
                .wait_log("ACTIVE", cut_at, Duration::from_secs(30));
        let deadline = Instant::now() + Duration::from_secs(30);
        let resumed = loop {
            if let Some(at) = first_ok_after(cut_at) {
                break at;
            }
            assert!(Instant::now() < deadline, "cut {cut}: I/O never resumed");
            std::thread::sleep(Duration::from_millis(20));
        };
        let seconds = resumed.duration_since(cut_at).as_secs_f64();
        let _ = writeln!(
            std::io::stderr(),
            "FAILOVER cut={} kind={} takeover_s={:.2} first_io_s={seconds:.2}",
            cut + 1,
            if kill { "sigkill" } else { "link-down" },
            took_over.duration_since(cut_at).as_secs_f64(),
        );
        timings.push(seconds);
        assert!(
            seconds < 15.0,
            "cut {cut}: I/O resumed after {seconds:.1} s"
        );

        // The old gateway is blocklisted.
        let list = cluster.run("ceph", &["osd", "blocklist", "ls"]);
        let entries = list.lines().filter(|l| l.contains(':')).count();
        assert!(
            entries > blocklisted,
            "cut {cut}: no new blocklist entry:\n{list}"
        );
        blocklisted = entries;

        // The old one comes back as the standby.
        let back = Instant::now();
        if kill {
            let dead = gateways[active].take().unwrap();
            drop(dead);
            gateways[active] = Some(start_gateway(active));
            gateways[active].as_mut().unwrap().wait_log(
                "standby until",
                back,
                Duration::from_secs(30),
            );
        } else {
            let old = gateways[active].as_mut().unwrap();
            // Cut off, it fell silent by itself before the standby took over.
            let fenced = old.wait_log("FENCED", cut_at, Duration::from_secs(10));
            assert!(
                fenced < took_over,
                "cut {cut}: the old gateway fenced after the takeover"
            );
            gateways_ns[active].ip_ok(&["link", "set", &interfaces[active], "up"]);
            old.wait_log("; standby", back, Duration::from_secs(60));
        }
        active = standby;
    }
    stop.store(true, Ordering::Relaxed);
    let mismatches = io_thread.join().unwrap();
    assert!(mismatches.is_empty(), "data mismatches: {mismatches:?}");
    // The state followed the image through every takeover.
    assert_eq!(
        aoe_ok(&initiator, &ini_if, &["config", "get", "-t", "7.1"]),
        "ha image\n"
    );
    let json = aoe_ok(&initiator, &ini_if, &["discover", "--wait", "1", "--json"]);
    assert_eq!(json.matches("\"target\"").count(), 1, "two answer: {json}");
    timings.sort_by(f64::total_cmp);
    let _ = writeln!(
        std::io::stderr(),
        "FAILOVER summary cuts={} min_s={:.2} median_s={:.2} max_s={:.2}",
        timings.len(),
        timings[0],
        timings[timings.len() / 2],
        timings[timings.len() - 1]
    );
    for gateway in gateways.into_iter().flatten() {
        gateway.stop();
    }
    drop(cluster);
}
