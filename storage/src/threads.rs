//! Files and block devices through a small thread pool: the fallback where io_uring is not
//! available (`kernel.io_uring_disabled`, a seccomp filter, an old kernel).
//!
//! Each queue of a [`ThreadStorage`] has [`THREADS`] threads of its own. `commit` hands the
//! batch to them under one lock; each thread takes one request at a time, runs it with a
//! positional system call straight on the request's frame (`pread`, `pwritev2` with
//! `RWF_DSYNC` under [`Commit::PerWrite`], `fdatasync` for a flush), queues its completion and
//! signals the worker's [`Waker`]. So up to [`THREADS`] transfers are in the kernel at once per
//! queue, completing in any order, and the worker thread never blocks on the disk. With
//! [`Commit::Group`] a [`GroupCommit`] runs around the queue, as for io_uring.
//!
//! Guarantees: as the [storage seam](crate): the window is checked before every system call;
//! a request's frame is touched only by the one thread running it, between taking it from the
//! job list and queuing its completion; a dropped queue lets its threads finish every request
//! it was given (they drain the job list before they stop) and joins them.

use crate::durable::durability_of;
use crate::durable::{Commit, GroupCommit};
use crate::file::{DiskOptions, FileDisk, OpenError};
use crate::{Capabilities, Completion, IoError, IoOp, IoQueue, Request, Storage, Waker};
use aoe_core::disk::ErrorKind;
use std::collections::VecDeque;
use std::io;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

/// Threads per queue: transfers one queue keeps in the kernel at once.
pub const THREADS: usize = 8;

/// Requests one queue takes before `submit` refuses.
pub const QUEUE_DEPTH: usize = 256;

/// A [`FileDisk`] served by thread pools; see the [module docs](self).
#[derive(Debug)]
pub struct ThreadStorage {
    disk: Arc<FileDisk>,
    capabilities: Capabilities,
    commit: Commit,
}

impl ThreadStorage {
    /// Opens `path` with `options` (see [`FileDisk::open`]); the durability policy comes from
    /// the options and the backing type ([`Commit::from_env`]).
    ///
    /// # Errors
    /// As [`FileDisk::open`].
    pub fn open(path: &Path, options: DiskOptions) -> Result<ThreadStorage, OpenError> {
        let disk = FileDisk::open(path, options)?;
        let commit = Commit::from_env(options.writeback, options.sync, disk.backing());
        Ok(ThreadStorage::with_commit(disk, commit))
    }

    /// `disk` with durability policy `commit`.
    pub fn with_commit(disk: FileDisk, commit: Commit) -> ThreadStorage {
        let options = disk.options();
        let capabilities = Capabilities {
            sectors: disk.sectors(),
            read_only: options.read_only,
            durability: durability_of(options, commit, disk.backing()),
            queue_depth: QUEUE_DEPTH,
            completes_inline: false,
        };
        ThreadStorage {
            disk: Arc::new(disk),
            capabilities,
            commit,
        }
    }

    /// The file.
    pub fn disk(&self) -> &FileDisk {
        &self.disk
    }

    /// The durability policy.
    pub fn commit_policy(&self) -> Commit {
        self.commit
    }

    /// A new queue as its own type, without the group commit layer.
    ///
    /// # Errors
    /// When a thread cannot be started.
    pub fn thread_queue(&self, waker: &Waker) -> io::Result<ThreadQueue> {
        ThreadQueue::new(
            Arc::clone(&self.disk),
            waker.clone(),
            self.commit == Commit::PerWrite,
        )
    }
}

impl Storage for ThreadStorage {
    fn describe(&self) -> String {
        self.disk.path().display().to_string()
    }

    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    fn queue(&self, waker: &Waker) -> Result<Box<dyn IoQueue>, String> {
        let queue = self
            .thread_queue(waker)
            .map_err(|error| format!("cannot start I/O threads: {error}"))?;
        Ok(match self.commit {
            Commit::Group => Box::new(GroupCommit::new(Box::new(queue))),
            Commit::None | Commit::PerWrite => Box::new(queue),
        })
    }

    fn flush(&self) -> Result<(), IoError> {
        self.disk.flush()
    }
}

/// What the threads of one queue share.
#[derive(Debug, Default)]
struct State {
    jobs: VecDeque<Request>,
    done: Vec<Completion>,
    /// Requests being run now, and the most ever at once.
    running: usize,
    peak_running: usize,
    stop: bool,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    /// Signalled when jobs arrive or the queue stops.
    work: Condvar,
    /// Signalled when a completion is queued.
    finished: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A thread that panicked mid-update left the lists consistent (push/pop only).
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One queue and its threads; see the [module docs](self).
#[derive(Debug)]
pub struct ThreadQueue {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    parked: Vec<Request>,
    /// Submitted and not yet reaped.
    outstanding: usize,
}

impl ThreadQueue {
    fn new(disk: Arc<FileDisk>, waker: Waker, dsync: bool) -> io::Result<ThreadQueue> {
        let shared = Arc::new(Shared::default());
        let mut threads = Vec::with_capacity(THREADS);
        for index in 0..THREADS {
            let (own, disk, waker) = (Arc::clone(&shared), Arc::clone(&disk), waker.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("storage io {index}"))
                .stack_size(64 * 1024)
                .spawn(move || serve(&own, &disk, &waker, dsync));
            match spawned {
                Ok(handle) => threads.push(handle),
                Err(error) => {
                    stop(&shared, &mut threads);
                    return Err(error);
                }
            }
        }
        Ok(ThreadQueue {
            shared,
            threads,
            parked: Vec::with_capacity(QUEUE_DEPTH),
            outstanding: 0,
        })
    }

    /// The most requests its threads ever ran at once.
    pub fn peak_running(&self) -> usize {
        self.shared.lock().peak_running
    }
}

/// Stops the threads after they drained the job list, and joins them.
fn stop(shared: &Shared, threads: &mut Vec<JoinHandle<()>>) {
    shared.lock().stop = true;
    shared.work.notify_all();
    for thread in threads.drain(..) {
        let _ = thread.join();
    }
}

/// One thread's loop: take a request, run it, queue its completion, wake the worker.
fn serve(shared: &Shared, disk: &FileDisk, waker: &Waker, dsync: bool) {
    let mut state = shared.lock();
    loop {
        let Some(mut request) = state.jobs.pop_front() else {
            if state.stop {
                return;
            }
            state = shared.work.wait(state).unwrap_or_else(|p| p.into_inner());
            continue;
        };
        state.running += 1;
        state.peak_running = state.peak_running.max(state.running);
        drop(state);
        let result = run(disk, &mut request, dsync);
        state = shared.lock();
        state.running -= 1;
        state.done.push(Completion {
            tag: request.tag,
            io: request.io,
            result,
            frame: request.frame,
        });
        shared.finished.notify_all();
        waker.wake();
    }
}

/// Runs one request on `disk`, straight between the file and its frame.
fn run(disk: &FileDisk, request: &mut Request, dsync: bool) -> Result<(), IoError> {
    let io = request.io;
    let Some(data) = request.frame.buffer_mut().get_mut(io.data_range()) else {
        return Err(IoError::of(ErrorKind::Other));
    };
    match io.op {
        IoOp::Read => disk.read_at(io.lba, data),
        IoOp::Write if dsync => disk.write_at_dsync(io.lba, data),
        IoOp::Write => disk.write_at(io.lba, data),
        IoOp::Flush => disk.flush(),
    }
}

impl IoQueue for ThreadQueue {
    fn submit(&mut self, request: Request) -> Result<(), Request> {
        if self.outstanding >= QUEUE_DEPTH {
            return Err(request);
        }
        self.outstanding += 1;
        self.parked.push(request);
        Ok(())
    }

    fn commit(&mut self) {
        if self.parked.is_empty() {
            return;
        }
        let count = self.parked.len();
        self.shared.lock().jobs.extend(self.parked.drain(..));
        if count == 1 {
            self.shared.work.notify_one();
        } else {
            self.shared.work.notify_all();
        }
    }

    fn reap(&mut self, completions: &mut Vec<Completion>) -> usize {
        let mut state = self.shared.lock();
        let count = state.done.len();
        completions.append(&mut state.done);
        self.outstanding -= count;
        count
    }

    fn in_flight(&self) -> usize {
        self.outstanding
    }

    fn wait(&mut self, timeout: Duration) -> bool {
        let state = self.shared.lock();
        if !state.done.is_empty() {
            return true;
        }
        if self.outstanding == 0 {
            return false;
        }
        let (state, _) = self
            .shared
            .finished
            .wait_timeout(state, timeout)
            .unwrap_or_else(|p| p.into_inner());
        !state.done.is_empty()
    }
}

impl Drop for ThreadQueue {
    fn drop(&mut self) {
        // Parked requests were never handed to a thread: they are simply dropped. The threads
        // finish every job they were given before they stop.
        stop(&self.shared, &mut self.threads);
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::DiskIo;
    use aoe_net::Arena;
    use aoe_testkit::scratch::{Scratch, random_bytes};

    fn request(pool: &Arc<Arena>, tag: u64, op: IoOp, lba: u64, sectors: u8) -> Request {
        let io = DiskIo { op, lba, sectors };
        let mut frame = pool.take().unwrap();
        if op == IoOp::Write {
            let range = io.data_range();
            frame.buffer_mut()[range.clone()].copy_from_slice(&random_bytes(range.len(), tag));
        }
        Request { tag, io, frame }
    }

    fn collect(queue: &mut dyn IoQueue, count: usize) -> Vec<Completion> {
        let mut completions = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while completions.len() < count {
            assert!(std::time::Instant::now() < deadline);
            queue.wait(Duration::from_millis(50));
            queue.reap(&mut completions);
        }
        completions
    }

    #[test]
    fn the_pool_keeps_several_transfers_in_flight_and_wakes_the_worker() {
        let scratch = Scratch::on_disk("threads-parallel");
        let path = scratch.sparse("disk.img", 8 << 20);
        // Durable writes with RWF_DSYNC: each one waits for the disk, so the threads overlap.
        let storage = ThreadStorage::with_commit(
            FileDisk::open(&path, DiskOptions::default()).unwrap(),
            Commit::PerWrite,
        );
        let waker = Waker::new().unwrap();
        let mut queue = storage.thread_queue(&waker).unwrap();
        let pool = Arena::pool(64);
        let mut peak = 0;
        for round in 0..5u64 {
            for index in 0..64u64 {
                let tag = round * 64 + index;
                queue
                    .submit(request(&pool, tag, IoOp::Write, index * 8, 8))
                    .unwrap();
            }
            queue.commit();
            let done = collect(&mut queue, 64);
            assert!(done.iter().all(|c| c.result.is_ok()), "{done:?}");
            peak = queue.peak_running();
            if peak >= 2 {
                break;
            }
        }
        assert!(peak >= 2, "the threads never ran two transfers at once");
        assert!(peak <= THREADS);
        // The waker was signalled by the completing threads.
        let mut poll_fd = libc::pollfd {
            fd: std::os::fd::AsRawFd::as_raw_fd(&waker.fd()),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, no wait.
        assert_eq!(unsafe { libc::poll(&mut poll_fd, 1, 0) }, 1);
        // Read back through the pool.
        for index in 0..8u64 {
            queue
                .submit(request(&pool, 1000 + index, IoOp::Read, index * 8, 8))
                .unwrap();
        }
        queue.commit();
        let reads = collect(&mut queue, 8);
        let file = std::fs::read(&path).unwrap();
        for read in &reads {
            let index = usize::try_from(read.tag - 1000).unwrap();
            assert_eq!(
                read.frame.buffer()[read.io.data_range()],
                file[index * 4096..(index + 1) * 4096]
            );
        }
    }

    #[test]
    fn a_dropped_queue_finishes_what_it_was_given() {
        let scratch = Scratch::on_disk("threads-drop");
        let path = scratch.sparse("disk.img", 1 << 20);
        let storage = ThreadStorage::with_commit(
            FileDisk::open(&path, DiskOptions::default()).unwrap(),
            Commit::None,
        );
        let waker = Waker::new().unwrap();
        let pool = Arena::pool(32);
        let mut queue = storage.queue(&waker).unwrap();
        for tag in 0..32u64 {
            queue
                .submit(request(&pool, tag, IoOp::Write, tag * 4, 4))
                .unwrap();
        }
        queue.commit();
        drop(queue);
        assert_eq!(pool.free(), 32, "every frame back");
        let file = std::fs::read(&path).unwrap();
        for tag in 0..32u64 {
            let at = usize::try_from(tag).unwrap() * 2048;
            assert_eq!(
                file[at..at + 2048],
                random_bytes(2048, tag)[..],
                "write {tag}"
            );
        }
    }
}
