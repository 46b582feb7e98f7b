//! The RBD back end against a real single-node Ceph cluster (root and Ceph needed; skipped
//! otherwise, a failure with `AOE_REQUIRE_CEPH=1`).

use aoe_net::Arena;
use aoe_storage::rbd::{RbdOptions, RbdSpec, RbdStorage};
use aoe_storage::{Completion, DiskIo, ErrorKind, IoOp, IoQueue, Ordered, Request, Storage, Waker};
use aoe_testkit::ceph::{Cluster, Store};
use aoe_testkit::require_ceph;
use aoe_testkit::scratch::Scratch;
use std::time::Duration;

fn spec(cluster: &Cluster, image: &str) -> RbdSpec {
    RbdSpec::parse(&format!(
        "rbd:rbd/{image}:conf={}",
        cluster.conf().display()
    ))
    .unwrap()
}

fn pattern(tag: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| tag.to_le_bytes()[0].wrapping_mul(31) ^ i.to_le_bytes()[0].wrapping_mul(7))
        .collect()
}

fn run(queue: &mut dyn IoQueue, requests: Vec<Request>) -> Vec<Completion> {
    for request in requests {
        queue.submit(request).unwrap();
    }
    let mut done = Vec::new();
    queue.drain(&mut done);
    done
}

fn write(pool: &std::sync::Arc<Arena>, tag: u64, lba: u64, sectors: u8) -> Request {
    let io = DiskIo {
        op: IoOp::Write,
        lba,
        sectors,
    };
    let mut frame = pool.take().unwrap();
    frame.buffer_mut()[io.data_range()].copy_from_slice(&pattern(tag, io.byte_len()));
    Request { tag, io, frame }
}

fn read(pool: &std::sync::Arc<Arena>, tag: u64, lba: u64, sectors: u8) -> Request {
    let io = DiskIo {
        op: IoOp::Read,
        lba,
        sectors,
    };
    Request {
        tag,
        io,
        frame: pool.take().unwrap(),
    }
}

#[test]
fn rbd_queue_writes_reads_locks_fences_and_resizes() {
    require_ceph!();
    let scratch = Scratch::on_disk("rbd-storage");
    let cluster = Cluster::up(&scratch.dir.join("ceph"), Store::Mem, None);
    cluster.create_image("t", 64);
    let waker = Waker::new().unwrap();
    let pool = Arena::pool(256);

    // Many writes in flight at once, then reads of all of them.
    let a = RbdStorage::open(&spec(&cluster, "t"), RbdOptions::default()).unwrap();
    assert_eq!(a.capabilities().sectors, 64 * 2048);
    assert!(!a.capabilities().completes_inline);
    let mut queue = Ordered::new(a.queue(&waker).unwrap());
    let writes = (0..128u64)
        .map(|tag| write(&pool, tag, tag * 17, 17))
        .collect();
    let done = run(&mut queue, writes);
    assert_eq!(done.len(), 128);
    assert!(done.iter().all(|c| c.result.is_ok()), "{done:?}");
    drop(done);
    let reads = (0..128u64)
        .map(|tag| read(&pool, tag, tag * 17, 17))
        .collect();
    let done = run(&mut queue, reads);
    for completion in &done {
        assert_eq!(completion.result, Ok(()));
        assert_eq!(
            completion.frame.buffer()[completion.io.data_range()],
            pattern(completion.tag, completion.io.byte_len())[..],
            "read back tag {}",
            completion.tag
        );
    }
    drop(done);
    // The rbd tool sees what we wrote.
    let exported = scratch.dir.join("t.raw");
    cluster.run("rbd", &["export", "rbd/t", exported.to_str().unwrap()]);
    let bytes = std::fs::read(&exported).unwrap();
    assert_eq!(bytes[5 * 17 * 512..6 * 17 * 512], pattern(5, 17 * 512)[..]);

    // Beyond the end: an error, never an ACK.
    let done = run(&mut queue, vec![read(&pool, 999, 64 * 2048 - 1, 2)]);
    assert!(done[0].result.is_err(), "{:?}", done[0].result);

    // Failover's building blocks: A takes the lock; B cannot; B breaks it (blocklisting A),
    // then A's writes fail with "not ready" and B's succeed.
    a.try_acquire_lock().unwrap();
    assert!(a.owns_lock().unwrap());
    let b = RbdStorage::open(&spec(&cluster, "t"), RbdOptions::default()).unwrap();
    assert_eq!(b.lock_owners().unwrap(), vec![a.client_name()]);
    assert!(
        b.try_acquire_lock().is_err(),
        "a second client took a held lock"
    );
    a.write_heartbeat(b"a 1").unwrap();
    assert_eq!(b.read_heartbeat().unwrap().as_deref(), Some(&b"a 1"[..]));
    a.set_metadata("aoe.test", "from a").unwrap();
    assert_eq!(b.metadata("aoe.test").unwrap().as_deref(), Some("from a"));
    b.break_lock(&a.client_name()).unwrap();
    b.try_acquire_lock().unwrap();
    assert!(b.owns_lock().unwrap());
    let done = run(&mut queue, vec![write(&pool, 500, 0, 1)]);
    let error = done[0].result.expect_err("the fenced client wrote");
    assert_eq!(error.kind, ErrorKind::NotReady, "{error}");
    assert!(
        a.write_heartbeat(b"a 2").is_err(),
        "the fenced client wrote its heartbeat"
    );
    let mut b_queue = b.queue(&waker).unwrap();
    let done = run(&mut *b_queue, vec![write(&pool, 501, 0, 1)]);
    assert_eq!(done[0].result, Ok(()));
    drop(done);
    // A fenced gateway comes back as a new client; its queue follows on the next commit.
    a.reconnect().unwrap();
    assert_ne!(a.client_name(), b.client_name());
    let done = run(&mut queue, vec![read(&pool, 502, 0, 1)]);
    assert_eq!(done[0].result, Ok(()));
    assert_eq!(
        done[0].frame.buffer()[done[0].io.data_range()],
        pattern(501, 512)[..]
    );
    drop(done);

    // A resize shows in capacity_now.
    cluster.run("rbd", &["resize", "--size", "96M", "rbd/t"]);
    let mut sectors = None;
    for _ in 0..50 {
        sectors = b.capacity_now();
        if sectors == Some(96 * 2048) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(sectors, Some(96 * 2048));
    drop(queue);
    drop(b_queue);
}

#[test]
fn a_snapshot_exports_read_only_and_missing_images_are_refused() {
    require_ceph!();
    let scratch = Scratch::on_disk("rbd-snap");
    let cluster = Cluster::up(&scratch.dir.join("ceph"), Store::Mem, None);
    cluster.create_image("s", 8);
    let waker = Waker::new().unwrap();
    let pool = Arena::pool(8);
    let live = RbdStorage::open(&spec(&cluster, "s"), RbdOptions::default()).unwrap();
    let mut queue = live.queue(&waker).unwrap();
    assert!(
        run(&mut *queue, vec![write(&pool, 1, 8, 4)])[0]
            .result
            .is_ok()
    );
    cluster.run("rbd", &["snap", "create", "rbd/s@one"]);
    assert!(
        run(&mut *queue, vec![write(&pool, 2, 8, 4)])[0]
            .result
            .is_ok()
    );

    let snap_spec =
        RbdSpec::parse(&format!("rbd:rbd/s@one:conf={}", cluster.conf().display())).unwrap();
    let snap = RbdStorage::open(&snap_spec, RbdOptions::default()).unwrap();
    assert!(snap.capabilities().read_only);
    let mut snap_queue = snap.queue(&waker).unwrap();
    let done = run(&mut *snap_queue, vec![read(&pool, 3, 8, 4)]);
    assert_eq!(
        done[0].frame.buffer()[done[0].io.data_range()],
        pattern(1, 2048)[..],
        "the snapshot shows the data before it"
    );
    drop(done);
    let done = run(&mut *snap_queue, vec![write(&pool, 4, 8, 4)]);
    assert_eq!(
        done[0].result.map_err(|e| e.kind),
        Err(ErrorKind::WriteProtected)
    );
    drop(done);

    let error =
        RbdStorage::open(&spec(&cluster, "nonexistent"), RbdOptions::default()).unwrap_err();
    assert!(
        error.contains("rbd:rbd/nonexistent") && error.contains("rbd_open"),
        "{error}"
    );
    let mut missing_pool = spec(&cluster, "s");
    missing_pool.pool = "nopool".into();
    let error = RbdStorage::open(&missing_pool, RbdOptions::default()).unwrap_err();
    assert!(error.contains("pool nopool"), "{error}");
    drop(queue);
    drop(snap_queue);
}
