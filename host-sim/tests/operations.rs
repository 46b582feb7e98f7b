//! host-sim run as an operator runs it (needs root: network namespaces): target state that
//! survives a crash, a restart and a SIGHUP; the double-export guards against host-sim and
//! against Debian's vblade; interfaces that come late; metrics under load, `host-sim stats`
//! and systemd's readiness protocol; the log levels the README promises.
//!
//! Each test prints what an operator would see (run with `--nocapture` to read it).

use aoe_testkit::netns::{Lan, Pair};
use aoe_testkit::process::Proc;
use aoe_testkit::programs::vblade_available;
use aoe_testkit::require_root;
use aoe_testkit::scratch::Scratch;
use std::io::{Read as _, Write as _};
use std::path::Path;
use std::time::{Duration, Instant};

const MIB: u64 = 1 << 20;

/// Sends `signal` and waits for a clean exit.
fn stop(proc: &mut Proc, signal: i32) -> String {
    proc.signal(signal);
    let (status, output) = proc.wait_exit(Duration::from_secs(10));
    if signal == libc::SIGTERM {
        assert!(status.success(), "exit {status}:\n{output}");
    }
    output
}

/// Runs host-sim to its refusal in namespace `command`; returns its stderr line.
fn refused(mut proc: Proc) -> String {
    let (status, output) = proc.wait_exit(Duration::from_secs(15));
    assert_eq!(
        status.code(),
        Some(1),
        "should have been refused:\n{output}"
    );
    output
        .lines()
        .find(|line| line.starts_with("host-sim: "))
        .unwrap_or_else(|| panic!("no refusal line in\n{output}"))
        .to_owned()
}

fn config(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

fn export_toml(shelf: u16, slot: u8, interface: &str, file: &Path, extra: &str) -> String {
    format!(
        "[[export]]\nshelf = {shelf}\nslot = {slot}\ninterfaces = [\"{interface}\"]\nfile = \"{}\"\n{extra}\n",
        file.display()
    )
}

/// `aoe config get`, `mask list` and `reserve list` of `target`, as three strings.
fn target_state(pair: &Pair, target: &str) -> (String, String, String) {
    (
        pair.aoe_ok(&["config", "get", "-t", target]),
        pair.aoe_ok(&["mask", "list", "-t", target]),
        pair.aoe_ok(&["reserve", "list", "-t", target]),
    )
}

#[test]
fn restart_crash_and_sighup_keep_config_string_mask_and_reservation() {
    require_root!();
    let pair = Pair::new("keepstate", 1500);
    let scratch = Scratch::new("keepstate");
    let disk = scratch.sparse("disk.img", 8 * MIB);
    let other = scratch.sparse("other.img", 8 * MIB);
    let state_dir = scratch.dir.join("state");
    let toml = scratch.dir.join("exports.toml");
    let header = format!("state_dir = \"{}\"\n", state_dir.display());
    config(
        &toml,
        &(header.clone() + &export_toml(6, 1, &pair.target_if, &disk, "buffer_count = 16")),
    );
    let toml_arg = toml.to_str().unwrap();
    let us = pair.init_mac();
    let friend = "02:00:00:00:00:99";

    let mut target = pair.host_sim(&["--config", toml_arg]);
    pair.wait_for_target("6.1", &mut target);
    pair.aoe_ok(&["config", "set", "rack 7, shelf 2", "-t", "6.1"]);
    pair.aoe_ok(&["mask", "add", &us, friend, "-t", "6.1"]);
    pair.aoe_ok(&["reserve", &us, "-t", "6.1"]);
    let expected = (
        "rack 7, shelf 2\n".to_owned(),
        format!("{us}\n{friend}\n"),
        format!("{us}\n"),
    );
    assert_eq!(target_state(&pair, "6.1"), expected);
    let files: Vec<_> = std::fs::read_dir(&state_dir).unwrap().collect();
    assert_eq!(files.len(), 1, "one state file");
    let record = std::fs::read_to_string(files[0].as_ref().unwrap().path()).unwrap();
    eprintln!("---- the state file ----\n{record}");
    assert!(
        record.contains("# config string: \"rack 7, shelf 2\""),
        "{record}"
    );

    // A crash (SIGKILL: no chance to save anything at exit), then a start: the state is back.
    target.signal(libc::SIGKILL);
    target.wait_exit(Duration::from_secs(5));
    let mut target = pair.host_sim(&["--config", toml_arg]);
    pair.wait_for_target("6.1", &mut target);
    assert_eq!(
        target_state(&pair, "6.1"),
        expected,
        "after SIGKILL and a start"
    );
    let line = target.wait_for_line("e6.1: state restored", Duration::from_secs(1));
    eprintln!("after the crash: {line}");

    // A clean restart.
    stop(&mut target, libc::SIGTERM);
    let mut target = pair.host_sim(&["--config", toml_arg]);
    pair.wait_for_target("6.1", &mut target);
    assert_eq!(
        target_state(&pair, "6.1"),
        expected,
        "after SIGTERM and a start"
    );

    // SIGHUP that changes a setting (buffer count) but not shelf.slot or file: kept.
    config(
        &toml,
        &(header.clone() + &export_toml(6, 1, &pair.target_if, &disk, "buffer_count = 24")),
    );
    target.signal(libc::SIGHUP);
    let line = target.wait_for_line("settings changed", Duration::from_secs(5));
    eprintln!("SIGHUP: {line}");
    assert!(
        line.contains("(buffer count); reopened, keeping its state: config string \"rack 7, shelf 2\", 2 MAC(s) in the mask, 1 reserved"),
        "{line}"
    );
    assert!(
        !target
            .log()
            .iter()
            .any(|l| l.contains("e6.1: no longer served")),
        "a kept export is not reported as stopped: {:?}",
        target.log()
    );
    let json = pair.aoe_ok(&["identify", "-t", "6.1", "--json"]);
    assert!(json.contains("\"buffer_count\":24"), "{json}");
    assert_eq!(target_state(&pair, "6.1"), expected, "after SIGHUP");

    // SIGHUP that changes the file: another identity, a fresh state; back: restored.
    config(
        &toml,
        &(header.clone() + &export_toml(6, 1, &pair.target_if, &other, "buffer_count = 24")),
    );
    target.signal(libc::SIGHUP);
    target.wait_for_line("reloaded: 1 exports", Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(
        target_state(&pair, "6.1"),
        (
            "\n".to_owned(),
            "mask list empty\n".to_owned(),
            "reserve list empty\n".to_owned()
        )
    );
    config(
        &toml,
        &(header.clone() + &export_toml(6, 1, &pair.target_if, &disk, "buffer_count = 24")),
    );
    target.signal(libc::SIGHUP);
    std::thread::sleep(Duration::from_millis(700));
    pair.wait_for_target("6.1", &mut target);
    assert_eq!(
        target_state(&pair, "6.1"),
        expected,
        "the first file's state again"
    );

    // A save that fails withholds the reply (the initiator gets no answer and retries);
    // once the directory is back, the change goes through.
    std::fs::remove_dir_all(&state_dir).unwrap();
    let err = pair.aoe_fails(&[
        "config",
        "set",
        "x",
        "--force",
        "-t",
        "6.1",
        "--timeout",
        "1",
    ]);
    assert!(err.contains("no answer"), "{err}");
    let line = target.wait_for_line("cannot save its state", Duration::from_secs(2));
    eprintln!("save failure: {line}");
    std::fs::create_dir(&state_dir).unwrap();
    pair.aoe_ok(&["config", "set", "x", "--force", "-t", "6.1"]);
    assert_eq!(pair.aoe_ok(&["config", "get", "-t", "6.1"]), "x\n");
    stop(&mut target, libc::SIGTERM);
}

#[test]
fn presets_and_pins_from_the_config_file() {
    require_root!();
    let pair = Pair::new("pins", 1500);
    let scratch = Scratch::new("pins");
    let disk = scratch.sparse("disk.img", 4 * MIB);
    let toml = scratch.dir.join("exports.toml");
    let us = pair.init_mac();
    let text = |string: &str| {
        format!("state_dir = \"{}\"\n", scratch.dir.join("state").display())
            + &export_toml(
                2,
                9,
                &pair.target_if,
                &disk,
                &format!("config_string = \"{string}\"\nreserve = [\"{us}\"]\npin = [\"reserve\"]"),
            )
    };
    config(&toml, &text("preset one"));
    let mut target = pair.host_sim(&["--config", toml.to_str().unwrap()]);
    pair.wait_for_target("2.9", &mut target);
    assert_eq!(pair.aoe_ok(&["config", "get", "-t", "2.9"]), "preset one\n");
    assert_eq!(
        pair.aoe_ok(&["reserve", "list", "-t", "2.9"]),
        format!("{us}\n")
    );
    // The pinned reservation cannot be changed, even by its holder with --force.
    let err = pair.aoe_fails(&["release", "--force", "-t", "2.9"]);
    assert!(err.contains("AoE error 6"), "{err}");
    // The config string can; the change is kept over a restart...
    pair.aoe_ok(&["config", "set", "changed", "--force", "-t", "2.9"]);
    stop(&mut target, libc::SIGTERM);
    let mut target = pair.host_sim(&["--config", toml.to_str().unwrap()]);
    pair.wait_for_target("2.9", &mut target);
    assert_eq!(pair.aoe_ok(&["config", "get", "-t", "2.9"]), "changed\n");
    // ...until the administrator changes the preset: the newer word wins.
    config(&toml, &text("preset two"));
    target.signal(libc::SIGHUP);
    target.wait_for_line("settings changed", Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(pair.aoe_ok(&["config", "get", "-t", "2.9"]), "preset two\n");
    stop(&mut target, libc::SIGTERM);
}

#[test]
fn the_file_lock_refuses_a_second_exporter_and_names_it() {
    require_root!();
    let pair = Pair::new("filelock", 1500);
    let scratch = Scratch::new("filelock");
    let disk = scratch.sparse("disk.img", 4 * MIB);
    let disk_arg = disk.to_str().unwrap();
    let interface = pair.target_if.clone();

    // host-sim against host-sim: another address, the same file.
    let mut first = pair.host_sim(&["1", "1", &interface, disk_arg]);
    pair.wait_for_target("1.1", &mut first);
    let line = refused(pair.host_sim(&["--wait-link=0", "2", "2", &interface, disk_arg]));
    eprintln!("host-sim against host-sim: {line}");
    assert!(
        line.contains("is already exported by pid")
            && line.contains(&format!("1 1 {interface}"))
            && line.contains("needs it to itself"),
        "{line}"
    );
    // A read-only export of it is refused too while it is exported writable.
    let line = refused(pair.host_sim(&["-r", "2", "2", &interface, disk_arg]));
    assert!(line.contains("exported writable there"), "{line}");
    stop(&mut first, libc::SIGTERM);
    // Read-only exports share.
    let mut reader = pair.host_sim(&["-r", "1", "1", &interface, disk_arg]);
    pair.wait_for_target("1.1", &mut reader);
    let mut second = pair.host_sim(&["-r", "2", "2", &interface, disk_arg]);
    pair.wait_for_target("2.2", &mut second);
    stop(&mut second, libc::SIGTERM);
    stop(&mut reader, libc::SIGTERM);

    // host-sim against Debian's vblade, which takes no lock: found by its open descriptor.
    if !vblade_available("the_file_lock_refuses_a_second_exporter_and_names_it") {
        return;
    }
    let mut command = pair.target.command(&["vblade", "3", "3", &interface]);
    command.arg(&disk);
    let mut vblade = Proc::spawn(command, "vblade");
    pair.wait_for_target("3.3", &mut vblade);
    let line = refused(pair.host_sim(&["2", "2", &interface, disk_arg]));
    eprintln!("host-sim against vblade: {line}");
    assert!(
        line.contains("is open for writing by pid") && line.contains("(vblade 3 3"),
        "{line}"
    );
}

#[test]
fn one_file_under_two_addresses_in_one_config_is_refused() {
    require_root!();
    let pair = Pair::new("twoaddr", 1500);
    let scratch = Scratch::new("twoaddr");
    let disk = scratch.sparse("disk.img", 4 * MIB);
    let toml = scratch.dir.join("exports.toml");
    config(
        &toml,
        &(export_toml(1, 1, &pair.target_if, &disk, "")
            + &export_toml(1, 2, &pair.target_if, &disk, "")),
    );
    let line = refused(pair.host_sim(&["--config", toml.to_str().unwrap()]));
    eprintln!("host-sim --config: {line}");
    assert!(
        line.contains("is exported as e1.1 (sectors 0..) and as e1.2 (sectors 0..)"),
        "{line}"
    );
    let line = refused(pair.host_sim(&["--check-config", toml.to_str().unwrap()]));
    assert!(line.contains("is exported as e1.1"), "{line}");
    // Read-only both, or disjoint windows: accepted (--check-config says so).
    config(
        &toml,
        &(export_toml(1, 1, &pair.target_if, &disk, "length = 4096")
            + &export_toml(1, 2, &pair.target_if, &disk, "offset = 4096")),
    );
    let mut check = pair.host_sim(&["--check-config", toml.to_str().unwrap()]);
    let (status, report) = check.wait_exit(Duration::from_secs(10));
    eprintln!("--check-config:\n{report}");
    assert!(status.success(), "{report}");
    assert!(
        report.contains("e1.1 on ")
            && report.contains("4096 sectors, read-write")
            && report.ends_with("OK\n"),
        "{report}"
    );
}

#[test]
fn a_second_target_with_our_address_is_refused_on_the_lan_and_on_the_host() {
    require_root!();
    // Hosts 0 and 1 serve, host 2 is the initiator.
    let lan = Lan::with_hosts("dupe", 3, 1500);
    let scratch = Scratch::new("dupe");
    let a = scratch.sparse("a.img", 4 * MIB);
    let b = scratch.sparse("b.img", 4 * MIB);
    let c = scratch.sparse("c.img", 4 * MIB);
    let (a, b, c) = (
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        c.to_str().unwrap(),
    );
    let iface = Lan::IFACE;

    // host-sim on host 1 serves e4.4; host-sim on host 0 probes, finds it and refuses.
    let mut other = lan.host_sim(1, &["4", "4", iface, b]);
    lan.wait_for_target(2, "4.4", &mut other);
    let line = refused(lan.host_sim(0, &["4", "4", iface, a]));
    eprintln!("host-sim against host-sim on the LAN: {line}");
    assert!(
        line.contains(&format!(
            "another target answers e4.4 from {}",
            lan.mac_of(1)
        )) && line.contains("--allow-duplicate"),
        "{line}"
    );
    // On host 1 itself (same interface): the address claim refuses a second host-sim.
    let line = refused(lan.host_sim(1, &["4", "4", iface, c]));
    eprintln!("host-sim against host-sim on one host: {line}");
    assert!(
        line.contains("e4.4 is already served on lan0 by another host-sim on this host by pid")
            && line.contains(&format!("4 4 {iface} {b}")),
        "{line}"
    );
    // With --allow-duplicate both answer from one MAC: aoe discover marks it.
    let mut twin = lan.host_sim(1, &["--allow-duplicate", "4", "4", iface, c]);
    twin.wait_for_line("serving anyway", Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(700));
    let out = lan.aoe(2, &["discover", "--wait", "1"]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    eprintln!("aoe discover:\n{stdout}{stderr}");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("e4.4 ") && l.ends_with("CONFLICT")),
        "{stdout}"
    );
    assert!(stderr.contains("two targets share this MAC"), "{stderr}");
    stop(&mut twin, libc::SIGTERM);
    stop(&mut other, libc::SIGTERM);

    if !vblade_available("a_second_target_with_our_address_is_refused") {
        return;
    }
    // Debian's vblade on host 1 serves e5.5: host-sim on host 0 refuses...
    let mut vblade = lan.vblade(1, &["5", "5", iface, b]);
    lan.wait_for_target(2, "5.5", &mut vblade);
    let line = refused(lan.host_sim(0, &["5", "5", iface, a]));
    eprintln!("host-sim against vblade on the LAN: {line}");
    assert!(
        line.contains(&format!(
            "another target answers e5.5 from {}",
            lan.mac_of(1)
        )),
        "{line}"
    );
    // ...unless told otherwise; then discover lists both MACs as a conflict.
    let mut anyway = lan.host_sim(0, &["--allow-duplicate", "5", "5", iface, a]);
    anyway.wait_for_line("serving anyway", Duration::from_secs(5));
    let json = lan.aoe_ok(2, &["discover", "--wait", "1", "--json"]);
    eprintln!("aoe discover --json: {json}");
    assert_eq!(
        json.matches("\"conflict\":\"answered from 2 MACs").count(),
        2,
        "{json}"
    );
    stop(&mut anyway, libc::SIGTERM);

    // A link that comes back is probed again: host-sim serves e5.6 on host 0; its link goes
    // down, vblade takes e5.6 on host 1, the link comes back: host-sim holds e5.6 back.
    let mut target = lan.host_sim(
        0,
        &[
            "--control",
            &format!("{}/c.sock", scratch.dir.display()),
            "5",
            "6",
            iface,
            c,
        ],
    );
    lan.wait_for_target(2, "5.6", &mut target);
    lan.hosts[0].ip_ok(&["link", "set", iface, "down"]);
    target.wait_for_line("reopening it once a second", Duration::from_secs(5));
    let vblade56 = lan.vblade(1, &["5", "6", iface, b]);
    std::thread::sleep(Duration::from_millis(300));
    lan.hosts[0].ip_ok(&["link", "set", iface, "up"]);
    let line = target.wait_for_line("another target answers e5.6", Duration::from_secs(10));
    eprintln!("after the link came back: {line}");
    assert!(line.contains("not announcing or serving it here"), "{line}");
    let mut stats = lan.hosts[0].command(&[]);
    stats
        .arg(aoe_testkit::process::workspace_binary("host-sim"))
        .args([
            "stats",
            "--control",
            &format!("{}/c.sock", scratch.dir.display()),
        ]);
    let table = String::from_utf8(stats.output().unwrap().stdout).unwrap();
    eprintln!("host-sim stats:\n{table}");
    assert!(table.contains("e5.6 conflict"), "{table}");
    // Only vblade answers e5.6 now.
    let json = lan.aoe_ok(2, &["discover", "-t", "5.6", "--wait", "1", "--json"]);
    assert_eq!(json.matches("\"target\":\"e5.6\"").count(), 1, "{json}");
    assert!(json.contains(&lan.mac_of(1)), "{json}");
    // vblade leaves: the next probe (every 10 s) finds nobody, host-sim serves again.
    drop(vblade56);
    let line = target.wait_for_nth_line("e5.6 on lan0 (", 2, Duration::from_secs(15));
    eprintln!("after vblade left: {line}");
    lan.wait_for_target(2, "5.6", &mut target);
    stop(&mut target, libc::SIGTERM);
    drop(vblade);
}

#[test]
fn interfaces_that_come_late_are_waited_for() {
    require_root!();
    let pair = Pair::new("late", 1500);
    let scratch = Scratch::new("late");
    let disk = scratch.sparse("disk.img", 4 * MIB);
    let disk_arg = disk.to_str().unwrap();
    let late = format!("lt{}", std::process::id() % 100_000);
    let peer = format!("lp{}", std::process::id() % 100_000);

    // --wait-link bounds the wait: refused after it.
    let started = Instant::now();
    let line = refused(pair.host_sim(&["--wait-link=1", "8", "1", &late, disk_arg]));
    eprintln!("--wait-link=1: {line}");
    assert!(
        line.contains(&format!(
            "no network interface named \"{late}\", still after 1 s (--wait-link)"
        )),
        "{line}"
    );
    assert!(started.elapsed() >= Duration::from_secs(1));

    // By default: waited for, then announced when it appears and comes up.
    let mut target = pair.host_sim(&["8", "1", &late, disk_arg]);
    let line = target.wait_for_line("waiting for it", Duration::from_secs(5));
    eprintln!("at start: {line}");
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        target.try_exit().is_none(),
        "still running:\n{}",
        target.output()
    );
    pair.target.ip_ok(&[
        "link",
        "add",
        &late,
        "type",
        "veth",
        "peer",
        "name",
        &peer,
        "netns",
        &pair.initiator.name,
    ]);
    pair.initiator.ip_ok(&["link", "set", &peer, "up"]);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        !target.log().iter().any(|l| l.contains("announced")),
        "not announced while down"
    );
    pair.target.ip_ok(&["link", "set", &late, "up"]);
    let line = target.wait_for_line("e8.1 on", Duration::from_secs(5));
    eprintln!("when it came up: {line}");
    assert!(line.contains("announced"), "{line}");
    let aoe = aoe_testkit::process::workspace_binary("aoe");
    let out = pair
        .initiator
        .command(&[aoe.to_str().unwrap(), "identify", "-t", "8.1", "-i", &peer])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stop(&mut target, libc::SIGTERM);
}

/// Fetches `http://127.0.0.1:PORT/metrics` from inside `namespace`.
fn scrape(namespace: &str, port: u16) -> String {
    let namespace = namespace.to_owned();
    std::thread::spawn(move || {
        aoe_testkit::netns::enter(&namespace);
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response
    })
    .join()
    .unwrap()
}

fn sample(text: &str, name_and_labels: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name_and_labels)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("{name_and_labels} missing in\n{text}"))
        .parse()
        .unwrap()
}

#[test]
fn metrics_under_load_stats_and_systemd_readiness() {
    require_root!();
    use std::os::unix::net::UnixDatagram;
    let pair = Pair::new("metrics", 9000);
    let scratch = Scratch::new("metrics");
    let disk = scratch.sparse("disk.img", 64 * MIB);
    let notify_path = scratch.dir.join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let control = scratch.dir.join("control.sock");
    let toml = scratch.dir.join("exports.toml");
    config(&toml, &export_toml(1, 1, &pair.target_if, &disk, ""));
    let port = 9188;
    let mut command = pair.target.command(&[]);
    command
        .arg(aoe_testkit::process::workspace_binary("host-sim"))
        .args([
            "--config",
            toml.to_str().unwrap(),
            "--metrics",
            &format!("127.0.0.1:{port}"),
        ])
        .args(["--control", control.to_str().unwrap()])
        .env("NOTIFY_SOCKET", &notify_path);
    let mut target = Proc::spawn_watched(command, "host-sim");
    let mut buf = [0u8; 512];
    let n = notify.recv(&mut buf).unwrap();
    let ready = String::from_utf8_lossy(&buf[..n]).into_owned();
    eprintln!("sd_notify: {ready:?}");
    assert!(
        ready.starts_with("READY=1\nSTATUS=serving 1 export(s)"),
        "{ready}"
    );
    pair.wait_for_target("1.1", &mut target);

    // Load: a sequential write benchmark for 3 s; scrapes in the middle of it.
    let bench = {
        let command = pair.aoe_command(&[
            "bench",
            "-t",
            "1.1",
            "--mode",
            "seq-write",
            "--seconds",
            "3",
            "--json",
        ]);
        std::thread::spawn(move || {
            let mut command = command;
            command.output().unwrap()
        })
    };
    std::thread::sleep(Duration::from_millis(1500));
    let first = scrape(&pair.target.name, port);
    std::thread::sleep(Duration::from_millis(1200));
    let second = scrape(&pair.target.name, port);
    let out = bench.join().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("---- a scrape under load ----\n{second}");
    eprintln!(
        "---- the benchmark ----\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(first.starts_with("HTTP/1.0 200 OK\r\n"), "{first}");
    let labels = format!("export=\"e1.1\",file=\"{}\"", disk.display());
    let writes = |text: &str| {
        sample(
            text,
            &format!("vblade_rs_export_requests_total{{{labels},op=\"write\"}}"),
        )
    };
    assert!(
        writes(&first) > 0.0 && writes(&second) > writes(&first),
        "writes grow"
    );
    assert!(sample(&second, &format!("vblade_rs_export_iops{{{labels}}}")) > 0.0);
    let latency_count = sample(
        &second,
        &format!("vblade_rs_export_latency_seconds_count{{{labels}}}"),
    );
    assert!(
        latency_count >= writes(&second),
        "every write's reply timed"
    );
    assert!(
        sample(
            &second,
            &format!("vblade_rs_export_bytes_total{{{labels},direction=\"write\"}}")
        ) > 0.0
    );
    let frames = sample(
        &second,
        &format!("vblade_rs_link_frames_total{{link=\"{}\"}}", pair.target_if),
    );
    assert!(frames >= writes(&second), "{frames}");
    assert_eq!(
        sample(
            &second,
            &format!("vblade_rs_link_up{{link=\"{}\"}}", pair.target_if)
        ),
        1.0
    );

    // host-sim stats over the control socket.
    let mut stats = pair.target.command(&[]);
    stats
        .arg(aoe_testkit::process::workspace_binary("host-sim"))
        .args(["stats", "--control", control.to_str().unwrap()]);
    let table = String::from_utf8(stats.output().unwrap().stdout).unwrap();
    eprintln!("---- host-sim stats ----\n{table}");
    let row = table
        .lines()
        .find(|l| l.starts_with("e1.1 "))
        .expect("e1.1 row");
    let requests: u64 = row.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(requests > 0, "{row}");
    assert!(table.contains(&format!("{} ", pair.target_if)) && table.contains("e1.1 serving"));

    // Reload and stop, as systemd sees them.
    target.signal(libc::SIGHUP);
    let n = notify.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"RELOADING=1");
    let n = notify.recv(&mut buf).unwrap();
    assert!(buf[..n].starts_with(b"READY=1"));
    target.signal(libc::SIGTERM);
    let n = notify.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"STOPPING=1");
    let (status, _) = target.wait_exit(Duration::from_secs(10));
    assert!(status.success());
    assert!(!control.exists(), "the control socket is removed at exit");
}

#[test]
fn debug_logs_refusal_reasons_and_trace_every_frame() {
    require_root!();
    let pair = Pair::new("loglevel", 1500);
    let scratch = Scratch::new("loglevel");
    let disk = scratch.sparse("disk.img", 4 * MIB);
    let disk_arg = disk.to_str().unwrap();
    for level in ["info", "debug", "trace"] {
        let mut target =
            pair.host_sim(&["--log-level", level, "9", "9", &pair.target_if, disk_arg]);
        pair.wait_for_target("9.9", &mut target);
        // Reserved for someone else: our READ gets AoE error 6, and debug says why.
        pair.aoe_ok(&["reserve", "02:00:00:00:00:99", "-t", "9.9"]);
        let err = pair.aoe_fails(&["read", "/dev/null", "-t", "9.9", "--count", "2"]);
        assert!(err.contains("AoE error 6"), "{err}");
        pair.aoe_ok(&["release", "--force", "-t", "9.9"]);
        std::thread::sleep(Duration::from_millis(200));
        stop(&mut target, libc::SIGTERM);
        let log = target.log();
        let has = |needle: &str| log.iter().any(|line| line.contains(needle));
        // debug: the engine's reasons for refusals and dropped frames, and socket buffer sizes.
        assert_eq!(
            has("ATA from a MAC without the reservation: error 6"),
            level != "info",
            "{level}"
        );
        assert_eq!(has("socket buffers rx"), level != "info", "{level}");
        // trace: a line for every frame the engine takes.
        assert_eq!(has("rx: tag"), level == "trace", "{level}");
    }
}
