//! The NBD back end against real servers: `qemu-nbd` serving qcow2, and `nbdkit`'s memory
//! plugin (also with its FUA filter hiding FUA, so writes are flushed instead; and over TCP).
//! Needs the Debian packages qemu-utils and nbdkit; skipped without them, a failure with
//! `AOE_REQUIRE_NBD=1`.

use aoe_net::Arena;
use aoe_storage::nbd::{NbdAddress, NbdOptions, NbdStorage};
use aoe_storage::{Completion, DiskIo, ErrorKind, IoOp, IoQueue, Ordered, Request, Storage, Waker};
use aoe_testkit::process::Proc;
use aoe_testkit::scratch::Scratch;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|out| out.status.success())
}

fn can_run(test: &str, tools: &[&str]) -> bool {
    let missing: Vec<&str> = tools.iter().copied().filter(|t| !have(t)).collect();
    if missing.is_empty() {
        return true;
    }
    assert!(
        std::env::var("AOE_REQUIRE_NBD").as_deref() != Ok("1"),
        "{test}: {} missing and AOE_REQUIRE_NBD=1",
        missing.join(", ")
    );
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {test}: needs {} (apt-get install qemu-utils nbdkit)",
        missing.join(", ")
    );
    false
}

fn wait_socket(path: &Path, server: &mut Proc) {
    let start = Instant::now();
    while !path.exists() {
        assert!(
            server.try_exit().is_none(),
            "the server exited: {}",
            server.output()
        );
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no socket {path:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn qemu_nbd(image: &Path, socket: &Path) -> Proc {
    let _ = std::fs::remove_file(socket);
    let mut command = Command::new("qemu-nbd");
    command
        .args(["-f", "qcow2", "-t", "--cache=none", "-k"])
        .arg(socket)
        .arg(image);
    let mut server = Proc::spawn(command, "qemu-nbd");
    wait_socket(socket, &mut server);
    server
}

/// `nbdkit` with `filters` (`--filter=…`) in front of the memory plugin, and their `params`.
fn nbdkit(socket: &Path, filters: &[&str], params: &[&str]) -> Proc {
    let _ = std::fs::remove_file(socket);
    let mut command = Command::new("nbdkit");
    command.args(["-f", "-U"]).arg(socket).args(filters);
    command.args(["memory", "32M"]).args(params);
    let mut server = Proc::spawn(command, "nbdkit");
    wait_socket(socket, &mut server);
    server
}

fn address(socket: &Path) -> NbdAddress {
    NbdAddress::parse(&format!("nbd+unix:///?socket={}", socket.display())).unwrap()
}

fn pattern(tag: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| tag.to_le_bytes()[0].wrapping_mul(29) ^ i.to_le_bytes()[0].wrapping_mul(11))
        .collect()
}

fn request(pool: &Arc<Arena>, op: IoOp, tag: u64, lba: u64, sectors: u8) -> Request {
    let io = DiskIo { op, lba, sectors };
    let mut frame = pool.take().expect("a free frame");
    if op == IoOp::Write {
        frame.buffer_mut()[io.data_range()].copy_from_slice(&pattern(tag, io.byte_len()));
    }
    Request { tag, io, frame }
}

fn run(queue: &mut dyn IoQueue, requests: Vec<Request>) -> Vec<Completion> {
    for request in requests {
        queue.submit(request).unwrap();
    }
    let mut done = Vec::new();
    queue.drain(&mut done);
    done
}

/// 100 writes of 17 sectors in flight, then 100 reads; every read shows its write.
fn write_then_read(storage: &NbdStorage, pool: &Arc<Arena>) {
    let waker = Waker::new().unwrap();
    let mut queue = Ordered::new(storage.queue(&waker).unwrap());
    let writes = (0..100u64)
        .map(|tag| request(pool, IoOp::Write, tag, tag * 17 + 3, 17))
        .collect();
    let done = run(&mut queue, writes);
    assert_eq!(done.len(), 100);
    assert!(done.iter().all(|c| c.result.is_ok()), "{done:?}");
    drop(done);
    let mut requests: Vec<Request> = (0..100u64)
        .map(|tag| request(pool, IoOp::Read, tag, tag * 17 + 3, 17))
        .collect();
    requests.push(request(pool, IoOp::Flush, 1000, 0, 0));
    let done = run(&mut queue, requests);
    assert_eq!(done.len(), 101);
    for c in &done {
        assert_eq!(c.result, Ok(()), "tag {}", c.tag);
        if c.io.op == IoOp::Read {
            assert_eq!(
                c.frame.buffer()[c.io.data_range()],
                pattern(c.tag, c.io.byte_len())[..],
                "tag {}",
                c.tag
            );
        }
    }
}

#[test]
fn uris_parse_and_nonsense_is_refused() {
    let unix = NbdAddress::parse("nbd+unix:///disk%20a?socket=/run/q.sock").unwrap();
    assert_eq!(unix.export, "disk a");
    assert_eq!(
        unix.transport,
        aoe_storage::nbd::Transport::Unix(PathBuf::from("/run/q.sock"))
    );
    let tcp = NbdAddress::parse("nbd://[::1]:10810/e").unwrap();
    assert_eq!(
        tcp.transport,
        aoe_storage::nbd::Transport::Tcp("::1".into(), 10810)
    );
    let tcp = NbdAddress::parse("nbd://localhost").unwrap();
    assert_eq!(
        (tcp.transport, tcp.export.as_str()),
        (
            aoe_storage::nbd::Transport::Tcp("localhost".into(), 10809),
            ""
        )
    );
    for bad in [
        "nbd+unix://host/x?socket=/s",
        "nbd+unix:///x",
        "nbd+unix:///x?sock=/s",
        "nbd://:10809/x",
        "nbd://h:0/x",
        "nbd://h:99999/x",
        "nbd://h/x?y=1",
        "nbd://h/%zz",
        "/srv/disk",
    ] {
        assert!(NbdAddress::parse(bad).is_err(), "{bad}");
    }
    assert!(NbdAddress::is_nbd("nbd://h") && NbdAddress::is_nbd("nbd+unix:///?socket=s"));
    assert!(!NbdAddress::is_nbd("/nbd://x"));
}

#[test]
fn qemu_nbd_qcow2_and_nbdkit_memory_serve_many_requests_in_flight() {
    if !can_run("nbd servers", &["qemu-nbd", "qemu-img", "nbdkit"]) {
        return;
    }
    let scratch = Scratch::new("nbd");
    let pool = Arena::pool(128);
    // qemu-nbd, qcow2: FUA and FLUSH offered, structured replies.
    let image = scratch.dir.join("d.qcow2");
    let status = Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2"])
        .arg(&image)
        .arg("64M")
        .status()
        .unwrap();
    assert!(status.success());
    let socket = scratch.dir.join("q.sock");
    let server = qemu_nbd(&image, &socket);
    let storage = NbdStorage::open(&address(&socket), NbdOptions::default()).unwrap();
    let info = storage.info();
    assert!(info.structured && info.fua() && info.flush(), "{info:?}");
    assert_eq!(storage.capabilities().sectors, 64 * 2048);
    assert_eq!(
        storage.capabilities().durability,
        aoe_storage::Durability::Stable
    );
    write_then_read(&storage, &pool);
    drop(storage);
    drop(server);
    // What was acknowledged is in the qcow2 file: a new server reads it back.
    let server = qemu_nbd(&image, &socket);
    let storage = NbdStorage::open(&address(&socket), NbdOptions { read_only: true }).unwrap();
    assert!(storage.capabilities().read_only);
    let waker = Waker::new().unwrap();
    let mut queue = storage.queue(&waker).unwrap();
    let done = run(
        &mut *queue,
        vec![request(&pool, IoOp::Read, 42, 42 * 17 + 3, 17)],
    );
    assert_eq!(
        done[0].frame.buffer()[done[0].io.data_range()],
        pattern(42, 17 * 512)[..]
    );
    drop(done);
    let done = run(&mut *queue, vec![request(&pool, IoOp::Write, 7, 0, 1)]);
    assert_eq!(
        done[0].result.map_err(|e| e.kind),
        Err(ErrorKind::WriteProtected)
    );
    drop(done);
    drop(queue);
    drop(storage);
    drop(server);

    // nbdkit's memory plugin, a second server.
    let socket = scratch.dir.join("k.sock");
    let server = nbdkit(&socket, &[], &[]);
    let storage = NbdStorage::open(&address(&socket), NbdOptions::default()).unwrap();
    assert_eq!(storage.capabilities().sectors, 32 * 2048);
    write_then_read(&storage, &pool);
    drop(storage);
    drop(server);
    // The same behind nbdkit's FUA filter, whose default hides FUA: writes are flushed
    // before they complete instead.
    let server = nbdkit(&socket, &["--filter=fua"], &[]);
    let storage = NbdStorage::open(&address(&socket), NbdOptions::default()).unwrap();
    assert!(
        !storage.info().fua() && storage.info().flush(),
        "{:?}",
        storage.info()
    );
    write_then_read(&storage, &pool);
    drop(storage);
    drop(server);
    // A missing export and a missing server are refused with a reason.
    let server = qemu_nbd(&image, &scratch.dir.join("q2.sock"));
    let wrong = NbdAddress::parse(&format!(
        "nbd+unix:///nosuch?socket={}",
        scratch.dir.join("q2.sock").display()
    ))
    .unwrap();
    let error = NbdStorage::open(&wrong, NbdOptions::default()).unwrap_err();
    assert!(error.contains("nosuch"), "{error}");
    drop(server);
    let error = NbdStorage::open(
        &address(&scratch.dir.join("none.sock")),
        NbdOptions::default(),
    )
    .unwrap_err();
    assert!(error.contains("cannot connect"), "{error}");
}

#[test]
fn nbd_over_tcp_serves_many_requests_in_flight() {
    if !can_run("nbd over TCP", &["nbdkit"]) {
        return;
    }
    let pool = Arena::pool(128);
    // A port the kernel just handed out and took back: free unless something races us for it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut command = Command::new("nbdkit");
    command
        .args(["-f", "-i", "127.0.0.1", "-p", &port.to_string()])
        .args(["memory", "32M"]);
    let mut server = Proc::spawn(command, "nbdkit");
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            server.try_exit().is_none(),
            "nbdkit exited: {}",
            server.output()
        );
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "nbdkit never listened on {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let address = NbdAddress::parse(&format!("nbd://127.0.0.1:{port}/")).unwrap();
    let storage = NbdStorage::open(&address, NbdOptions::default()).unwrap();
    assert_eq!(storage.capabilities().sectors, 32 * 2048);
    write_then_read(&storage, &pool);
    drop(storage);
    drop(server);
}

#[test]
fn a_crashed_server_gives_errors_never_acks_and_service_resumes_when_it_is_back() {
    if !can_run("nbd crash", &["qemu-nbd", "qemu-img"]) {
        return;
    }
    let scratch = Scratch::new("nbd-crash");
    let image = scratch.dir.join("c.qcow2");
    assert!(
        Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2"])
            .arg(&image)
            .arg("64M")
            .status()
            .unwrap()
            .success()
    );
    let socket = scratch.dir.join("c.sock");
    let server = qemu_nbd(&image, &socket);
    let storage = NbdStorage::open(&address(&socket), NbdOptions::default()).unwrap();
    let waker = Waker::new().unwrap();
    let mut queue = storage.queue(&waker).unwrap();
    let pool = Arena::pool(128);

    // Writes stream in batches; the server is SIGKILLed while they are in flight.
    let mut acked = Vec::new();
    let mut failed = 0;
    let mut tag = 0u64;
    let mut completions = Vec::new();
    for round in 0..40 {
        if round == 20 {
            server.signal(libc::SIGKILL);
        }
        for _ in 0..16 {
            queue
                .submit(request(&pool, IoOp::Write, tag, (tag % 7000) * 17, 17))
                .unwrap();
            tag += 1;
        }
        queue.commit();
        std::thread::sleep(Duration::from_millis(5));
        queue.reap(&mut completions);
        for c in completions.drain(..) {
            match c.result {
                Ok(()) => acked.push(c.tag),
                Err(error) => {
                    assert_eq!(error.kind, ErrorKind::NotReady, "tag {}: {error}", c.tag);
                    failed += 1;
                }
            }
        }
    }
    queue.drain(&mut completions);
    for c in completions.drain(..) {
        match c.result {
            Ok(()) => acked.push(c.tag),
            Err(_) => failed += 1,
        }
    }
    assert!(failed > 0, "the crash failed no request");
    assert!(!storage.connected(), "still connected to a dead server");
    // While it is down, requests fail at once.
    let done = run(&mut *queue, vec![request(&pool, IoOp::Read, 9999, 0, 1)]);
    assert_eq!(done[0].result.map_err(|e| e.kind), Err(ErrorKind::NotReady));
    drop(done);
    drop(server);

    // Back: the client reconnects by itself, and every acknowledged write is in the image.
    let server = qemu_nbd(&image, &socket);
    let start = Instant::now();
    while !storage.connected() {
        assert!(start.elapsed() < Duration::from_secs(10), "no reconnect");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Later writes to the same sector supersede earlier ones: check the last acked per LBA.
    let mut last_by_lba = std::collections::HashMap::new();
    for &t in &acked {
        let lba = (t % 7000) * 17;
        let e = last_by_lba.entry(lba).or_insert(t);
        *e = (*e).max(t);
    }
    let mut checked = 0;
    for (&lba, &t) in &last_by_lba {
        // Only where no later (failed) write to the same LBA may have landed partly.
        if (t + 1..tag).any(|later| (later % 7000) * 17 == lba) {
            continue;
        }
        let done = run(&mut *queue, vec![request(&pool, IoOp::Read, t, lba, 17)]);
        assert_eq!(done[0].result, Ok(()));
        assert_eq!(
            done[0].frame.buffer()[done[0].io.data_range()],
            pattern(t, 17 * 512)[..],
            "acknowledged write {t} at LBA {lba} is not in the image"
        );
        checked += 1;
    }
    assert!(checked > 100, "only {checked} acknowledged writes checked");
    drop(queue);
    drop(storage);
    drop(server);
}
