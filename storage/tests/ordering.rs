//! The ordering rules of `aoe_storage::ordered`, checked against the real asynchronous back
//! ends (io_uring, buffered and `O_DIRECT`; the thread pool), in every durability mode:
//!
//! * a READ that overlaps an earlier WRITE still in flight sees the new data;
//! * overlapping WRITEs land in arrival order (the file ends equal to the sequential model);
//! * a FLUSH completes only after every WRITE that arrived before it.
//!
//! Each run is a seeded random workload of reads, writes and flushes over a 24-sector file,
//! so requests overlap often, submitted in batches of five with reaps in between; a model
//! applies the requests one by one in arrival order.

use aoe_net::Arena;
use aoe_storage::durable::Commit;
use aoe_storage::file::{DiskOptions, FileDisk, OpenError};
use aoe_storage::threads::ThreadStorage;
use aoe_storage::uring::{self, UringStorage};
use aoe_storage::{Completion, DiskIo, IoOp, IoQueue, Ordered, Request, Storage, Waker};
use aoe_testkit::scratch::Scratch;
use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

const SECTORS: u64 = 24;

fn workload(seed: u64, count: u64) -> Vec<DiskIo> {
    let mut x = seed | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    (0..count)
        .map(|_| {
            let kind = next() % 10;
            let sectors = 1 + u8::try_from(next() % 4).unwrap();
            let lba = next() % (SECTORS - u64::from(sectors));
            let op = match kind {
                0 => IoOp::Flush,
                1..=4 => IoOp::Write,
                _ => IoOp::Read,
            };
            if op == IoOp::Flush {
                DiskIo {
                    op,
                    lba: 0,
                    sectors: 0,
                }
            } else {
                DiskIo { op, lba, sectors }
            }
        })
        .collect()
}

fn write_data(tag: u64, len: usize) -> Vec<u8> {
    aoe_testkit::scratch::random_bytes(len, tag + 1)
}

/// Runs seeded workloads through `Ordered` over queues of `storage`; checks every read
/// against the model, every flush against the writes before it, and the file at the end.
fn check(name: &str, storage: &dyn Storage, path: &Path, seeds: u64) {
    for seed in 1..=seeds {
        std::fs::write(path, vec![0u8; usize::try_from(SECTORS).unwrap() * 512]).unwrap();
        let waker = Waker::new().unwrap();
        let mut queue = Ordered::new(storage.queue(&waker).unwrap());
        let pool = Arena::pool(32);
        let requests = workload(seed * 7919, 200);
        let mut model = vec![0u8; usize::try_from(SECTORS).unwrap() * 512];
        let mut expected_reads: HashMap<u64, Vec<u8>> = HashMap::new();
        // Completion order, to check flushes.
        let mut completed: Vec<u64> = Vec::new();
        let mut completions = Vec::new();
        for (tag, io) in (0u64..).zip(requests.iter().copied()) {
            let start = usize::try_from(io.byte_offset()).unwrap();
            let range = start..start + io.byte_len();
            match io.op {
                IoOp::Write => model[range].copy_from_slice(&write_data(tag, io.byte_len())),
                IoOp::Read => {
                    expected_reads.insert(tag, model[range].to_vec());
                }
                IoOp::Flush => {}
            }
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut frame = loop {
                if let Some(frame) = pool.take() {
                    break frame;
                }
                assert!(Instant::now() < deadline, "{name}: frames never came back");
                queue.commit();
                queue.wait(Duration::from_millis(10));
                queue.reap(&mut completions);
                finish(
                    &format!("{name} seed {seed}"),
                    &requests,
                    &expected_reads,
                    &mut completions,
                    &mut completed,
                );
            };
            if io.op == IoOp::Write {
                frame.buffer_mut()[io.data_range()]
                    .copy_from_slice(&write_data(tag, io.byte_len()));
            }
            queue.submit(Request { tag, io, frame }).unwrap();
            if tag % 5 == 4 {
                queue.commit();
                queue.reap(&mut completions);
                finish(
                    &format!("{name} seed {seed}"),
                    &requests,
                    &expected_reads,
                    &mut completions,
                    &mut completed,
                );
            }
        }
        queue.drain(&mut completions);
        finish(
            &format!("{name} seed {seed}"),
            &requests,
            &expected_reads,
            &mut completions,
            &mut completed,
        );
        assert_eq!(queue.in_flight(), 0);
        assert_eq!(
            completed.len(),
            requests.len(),
            "{name}: each completes once"
        );
        drop(queue);
        assert_eq!(
            std::fs::read(path).unwrap(),
            model,
            "{name} seed {seed}: final contents (overlapping writes in arrival order)"
        );
    }
}

/// Checks `completions` (and moves their tags to `completed`, in completion order): each
/// succeeded, each read saw the model's data, each flush came after every earlier write.
fn finish(
    what: &str,
    requests: &[DiskIo],
    expected_reads: &HashMap<u64, Vec<u8>>,
    completions: &mut Vec<Completion>,
    completed: &mut Vec<u64>,
) {
    for completion in completions.drain(..) {
        let tag = completion.tag;
        assert_eq!(completion.result, Ok(()), "{what}: tag {tag}");
        if completion.io.op == IoOp::Read {
            let data = &completion.frame.buffer()[completion.io.data_range()];
            assert!(
                data == &expected_reads[&tag][..],
                "{what}: read tag {tag} sees stale data"
            );
        }
        if completion.io.op == IoOp::Flush {
            for (earlier, io) in (0..tag).zip(requests) {
                if io.op == IoOp::Write {
                    assert!(
                        completed.contains(&earlier),
                        "{what}: flush {tag} completed before write {earlier}"
                    );
                }
            }
        }
        completed.push(tag);
    }
}

fn skipped(why: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "SKIPPED ordering test: {why}");
}

fn open(path: &Path, direct: bool) -> Option<FileDisk> {
    let options = DiskOptions {
        direct,
        ..DiskOptions::default()
    };
    match FileDisk::open(path, options) {
        Ok(disk) => Some(disk),
        Err(OpenError::DirectUnsupported { source, .. }) => {
            skipped(&format!("O_DIRECT unsupported: {source}"));
            None
        }
        Err(other) => panic!("{other}"),
    }
}

#[test]
fn io_uring_keeps_the_ordering_rules_in_every_mode() {
    if let Err(error) = uring::available() {
        skipped(&format!("io_uring unavailable: {error}"));
        return;
    }
    let scratch = Scratch::on_disk("order-uring");
    let path = scratch.sparse("disk.img", SECTORS * 512);
    for (direct, commit) in [
        (false, Commit::None),
        (false, Commit::Group),
        (false, Commit::PerWrite),
        (true, Commit::PerWrite),
        (true, Commit::Group),
    ] {
        let Some(disk) = open(&path, direct) else {
            continue;
        };
        let storage = UringStorage::with_commit(disk, commit);
        check(
            &format!("io_uring direct={direct} {commit:?}"),
            &storage,
            &path,
            4,
        );
    }
}

#[test]
fn the_thread_pool_keeps_the_ordering_rules_in_every_mode() {
    let scratch = Scratch::on_disk("order-threads");
    let path = scratch.sparse("disk.img", SECTORS * 512);
    for commit in [Commit::None, Commit::Group, Commit::PerWrite] {
        let storage = ThreadStorage::with_commit(open(&path, false).unwrap(), commit);
        check(&format!("threads {commit:?}"), &storage, &path, 4);
    }
}

/// Without `Ordered`, the io_uring queue puts a whole batch in the kernel at once, so requests
/// of one batch may run in any order: the ordering above is `Ordered`'s work, and needed.
#[test]
fn io_uring_alone_runs_a_batch_in_parallel() {
    if uring::available().is_err() {
        skipped("io_uring unavailable");
        return;
    }
    let scratch = Scratch::on_disk("order-parallel");
    let path = scratch.sparse("disk.img", 1 << 20);
    let storage = UringStorage::with_commit(open(&path, false).unwrap(), Commit::None);
    let waker = Waker::new().unwrap();
    let mut queue = storage.uring_queue(&waker).unwrap();
    let pool = Arena::pool(64);
    for tag in 0..64u64 {
        let io = DiskIo {
            op: if tag % 2 == 0 {
                IoOp::Write
            } else {
                IoOp::Read
            },
            lba: tag * 16,
            sectors: 16,
        };
        queue
            .submit(Request {
                tag,
                io,
                frame: pool.take().unwrap(),
            })
            .unwrap();
    }
    queue.commit();
    assert!(
        queue.stats().peak_in_kernel >= 32,
        "a batch is in the kernel at once: {:?}",
        queue.stats()
    );
    let mut completions = Vec::new();
    queue.drain(&mut completions);
    assert_eq!(completions.len(), 64);
}
