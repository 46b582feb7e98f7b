//! host-sim exporting NBD exports (root needed for the namespaces; `qemu-nbd` from qemu-utils,
//! and for the RBD case Ceph and qemu-block-extra; skipped without them, a failure with
//! `AOE_REQUIRE_NBD=1` / `AOE_REQUIRE_CEPH=1`):
//!
//! * qcow2 through `qemu-nbd`: the whole export verified; `qemu-nbd` SIGKILLed while the
//!   initiator writes: the initiator gets ATA errors (ABRT), never a success for a write that
//!   was not stored; with `qemu-nbd` back, I/O works again and what was acknowledged is there;
//! * an RBD image through `qemu-nbd`'s rbd driver: verified, and compared with `rbd export`.

use aoe_testkit::ceph::{Cluster, Store};
use aoe_testkit::netns::Pair;
use aoe_testkit::process::Proc;
use aoe_testkit::scratch::{Scratch, random_bytes};
use aoe_testkit::{require_ceph, require_root};
use std::io::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const MIB: u64 = 1 << 20;

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|out| out.status.success())
}

fn can_run(test: &str) -> bool {
    if have("qemu-nbd") && have("qemu-img") {
        return true;
    }
    assert!(
        std::env::var("AOE_REQUIRE_NBD").as_deref() != Ok("1"),
        "{test}: qemu-nbd missing and AOE_REQUIRE_NBD=1"
    );
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {test}: needs qemu-nbd (apt-get install qemu-utils)"
    );
    false
}

/// `qemu-nbd` serving `image` (`-f FORMAT`) on unix socket `socket` in the target namespace.
fn qemu_nbd(pair: &Pair, format: &str, image: &str, socket: &Path, env: &[(&str, &Path)]) -> Proc {
    let _ = std::fs::remove_file(socket);
    let mut command = pair
        .target
        .command(&["qemu-nbd", "-f", format, "-t", "--cache=none", "-k"]);
    command.arg(socket).arg(image);
    for (key, value) in env {
        command.env(key, value);
    }
    let mut server = Proc::spawn(command, "qemu-nbd");
    let start = Instant::now();
    while !socket.exists() {
        assert!(
            server.try_exit().is_none(),
            "qemu-nbd exited: {}",
            server.output()
        );
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "no socket {socket:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    server
}

fn stop(target: &mut Proc) -> String {
    target.signal(libc::SIGTERM);
    let (status, output) = target.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "host-sim exited with {status}:\n{output}");
    output
}

#[test]
fn qcow2_through_qemu_nbd_survives_a_crash_of_the_server() {
    require_root!();
    if !can_run("nbd export") {
        return;
    }
    let pair = Pair::new("nbdexp", 9000);
    let scratch = Scratch::on_disk("nbdexp");
    let image = scratch.dir.join("disk.qcow2");
    assert!(
        Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2"])
            .arg(&image)
            .arg("16M")
            .status()
            .unwrap()
            .success()
    );
    let socket = scratch.dir.join("nbd.sock");
    let server = qemu_nbd(&pair, "qcow2", image.to_str().unwrap(), &socket, &[]);
    let uri = format!("nbd+unix:///?socket={}", socket.display());
    let mut target = pair.start_host_sim(&[], 2, 5, Path::new(&uri));
    pair.wait_for_target("2.5", &mut target);
    let identify = pair.aoe_ok(&["identify", "-t", "2.5"]);
    assert!(identify.contains("32768 sectors"), "{identify}");
    let out = pair.aoe_ok(&["verify", "-t", "2.5", "--seed", "3"]);
    assert!(out.contains("all match"), "{out}");
    let data = random_bytes(usize::try_from(16 * MIB).unwrap(), 3);
    let input = scratch.file("in.bin", &data);
    pair.aoe_ok(&["write", input.to_str().unwrap(), "-t", "2.5"]);

    // The server dies: clear ATA errors, at once.
    server.signal(libc::SIGKILL);
    drop(server);
    let small = scratch.file("small.bin", &random_bytes(64 * 1024, 4));
    let began = Instant::now();
    let err = pair.aoe_fails(&[
        "write",
        small.to_str().unwrap(),
        "-t",
        "2.5",
        "--timeout",
        "3",
    ]);
    assert!(err.contains("ABRT"), "{err}");
    assert!(
        began.elapsed() < Duration::from_secs(3),
        "the error took {:?}",
        began.elapsed()
    );
    let err = pair.aoe_fails(&["verify", "-t", "2.5", "--count", "64", "--timeout", "3"]);
    assert!(err.contains("ABRT"), "{err}");

    // Back: service resumes by itself, and the data written before the crash is there.
    let server = qemu_nbd(&pair, "qcow2", image.to_str().unwrap(), &socket, &[]);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = pair.aoe(&["verify", "--file", input.to_str().unwrap(), "-t", "2.5"]);
        if out.status.success() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no recovery: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let out = pair.aoe_ok(&["verify", "-t", "2.5", "--lba", "100", "--count", "1000"]);
    assert!(out.contains("all match"), "{out}");
    let log = stop(&mut target);
    assert!(
        log.contains("connection lost") && log.contains("connected again"),
        "{log}"
    );
    drop(server);
}

#[test]
fn an_rbd_image_through_qemu_nbd_is_served() {
    require_root!();
    require_ceph!();
    if !can_run("nbd rbd") {
        return;
    }
    // qemu-nbd's rbd driver is in qemu-block-extra, which must match qemu-utils' version.
    let block_rbd = Command::new("sh")
        .args(["-c", "ls /usr/lib/x86_64-linux-gnu/qemu/block-rbd.so /usr/lib/*/qemu/block-rbd.so 2>/dev/null"])
        .output()
        .unwrap();
    if block_rbd.stdout.is_empty() {
        assert!(
            std::env::var("AOE_REQUIRE_NBD").as_deref() != Ok("1"),
            "qemu-block-extra missing and AOE_REQUIRE_NBD=1"
        );
        let _ = writeln!(std::io::stderr(), "SKIPPED nbd rbd: needs qemu-block-extra");
        return;
    }
    let pair = Pair::new("nbdrbd", 1500);
    let scratch = Scratch::on_disk("nbdrbd");
    let cluster = Cluster::up(
        &scratch.dir.join("ceph"),
        Store::Mem,
        Some((&pair.target, "127.0.0.1")),
    );
    cluster.create_image("viaqemu", 8);
    let socket = scratch.dir.join("rbd.sock");
    let spec = format!("rbd:rbd/viaqemu:conf={}:id=admin", cluster.conf().display());
    let server = qemu_nbd(
        &pair,
        "raw",
        &spec,
        &socket,
        &[("CEPH_CONF", &cluster.conf())],
    );
    let uri = format!("nbd+unix:///?socket={}", socket.display());
    let mut target = pair.start_host_sim(&[], 3, 1, Path::new(&uri));
    pair.wait_for_target("3.1", &mut target);
    let data = random_bytes(usize::try_from(8 * MIB).unwrap(), 9);
    let input = scratch.file("in.bin", &data);
    pair.aoe_ok(&["write", input.to_str().unwrap(), "-t", "3.1"]);
    pair.aoe_ok(&["verify", "--file", input.to_str().unwrap(), "-t", "3.1"]);
    stop(&mut target);
    drop(server);
    let exported = scratch.dir.join("out.raw");
    cluster.run(
        "rbd",
        &["export", "rbd/viaqemu", exported.to_str().unwrap()],
    );
    assert!(
        std::fs::read(&exported).unwrap() == data,
        "rbd export differs"
    );
}
