//! Files and block devices through io_uring: many reads and writes in flight per queue,
//! submitted in batches with one system call, completed in any order.
//!
//! A [`UringStorage`] is a [`FileDisk`] (the same opening rules, window and checks as the
//! synchronous back end) whose queues each own one io_uring:
//!
//! * [`IoQueue::submit`] checks the request against the window (nothing outside it is ever
//!   handed to the kernel) and parks it in the queue's slot table; [`IoQueue::commit`] pushes
//!   one submission entry per parked request and makes one `io_uring_enter` for the batch.
//! * The kernel completes them in any order; every completion signals the worker's [`Waker`]
//!   (the ring's registered eventfd), and [`IoQueue::reap`] turns completion entries back into
//!   [`Completion`]s with their frames.
//! * The file is a registered file. Frame memory is a registered buffer wherever the kernel
//!   allows it: the first time a queue sees a frame of an [`Arena`], it registers the whole
//!   arena (`Arena::region`) in a sparse buffer table and keeps an `Arc` of it, so `O_DIRECT`
//!   transfers go straight between the frame and the disk with no page pinning per I/O.
//!   Arenas the kernel refuses (a memory-lock limit, a mapping it cannot pin) are served with
//!   plain reads and writes.
//! * Durability per [`Commit`]: `RWF_DSYNC` on each write ([`Commit::PerWrite`]), or a
//!   [`GroupCommit`] around the queue ([`Commit::Group`]).
//!
//! Memory safety, the one thing this module must prove: a submission entry names the octets
//! `io.data_range()` of its request's frame. From the push until its completion entry is
//! reaped, the request (and so its `Frame`, which keeps its `Arena` alive at a fixed address:
//! see `aoe_net::frame`) sits in `UringQueue::slots` and nothing else touches it. A queue
//! dropped with requests in the kernel first waits for all their completions; if it cannot,
//! it leaks the slot table and the registered arenas rather than free memory the kernel may
//! still write. Registered arenas stay in `UringQueue::arenas` until the ring is closed.

use crate::durable::{Commit, GroupCommit, durability_of};
use crate::file::{DiskOptions, FileDisk, OpenError, error_kind};
use crate::{Capabilities, Completion, IoError, IoOp, IoQueue, Request, Storage, Waker};
use aoe_core::disk::ErrorKind;
use aoe_net::Arena;
use io_uring::{IoUring, opcode, squeue, types};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Requests one queue keeps in the kernel at most (the ring's submission queue size; its
/// completion queue is twice as large, so it never overflows).
pub const QUEUE_DEPTH: usize = 256;

/// Arenas one queue registers as fixed buffers at most (links and pools it serves).
const MAX_ARENAS: usize = 16;

/// Largest buffer io_uring registers (1 GiB).
const MAX_REGISTERED: usize = 1 << 30;

/// Checks that this process may use io_uring: makes and closes a tiny ring.
///
/// # Errors
/// What the kernel said: `ENOSYS` (no io_uring), `EPERM` (`kernel.io_uring_disabled`, a
/// seccomp filter), `ENOMEM` (a memory-lock limit).
pub fn available() -> io::Result<()> {
    IoUring::new(4).map(drop)
}

/// A [`FileDisk`] served through io_uring; see the [module docs](self).
#[derive(Debug)]
pub struct UringStorage {
    disk: Arc<FileDisk>,
    capabilities: Capabilities,
    commit: Commit,
}

impl UringStorage {
    /// Opens `path` with `options` (see [`FileDisk::open`]); the durability policy comes from
    /// the options and the backing type ([`Commit::from_env`]). Call [`available`] first:
    /// this does not check io_uring.
    ///
    /// # Errors
    /// As [`FileDisk::open`].
    pub fn open(path: &Path, options: DiskOptions) -> Result<UringStorage, OpenError> {
        let disk = FileDisk::open(path, options)?;
        let commit = Commit::from_env(options.writeback, options.sync, disk.backing());
        Ok(UringStorage::with_commit(disk, commit))
    }

    /// `disk` with durability policy `commit`.
    pub fn with_commit(disk: FileDisk, commit: Commit) -> UringStorage {
        let options = disk.options();
        let capabilities = Capabilities {
            sectors: disk.sectors(),
            read_only: options.read_only,
            durability: durability_of(options, commit, disk.backing()),
            queue_depth: QUEUE_DEPTH,
            completes_inline: false,
        };
        UringStorage {
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

    /// A new queue as its own type, without the group commit layer (for tests and
    /// measurements).
    ///
    /// # Errors
    /// When the kernel refuses a ring.
    pub fn uring_queue(&self, waker: &Waker) -> io::Result<UringQueue> {
        UringQueue::new(
            Arc::clone(&self.disk),
            waker,
            self.commit == Commit::PerWrite,
        )
    }
}

impl Storage for UringStorage {
    fn describe(&self) -> String {
        self.disk.path().display().to_string()
    }

    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    fn queue(&self, waker: &Waker) -> Result<Box<dyn IoQueue>, String> {
        let queue = self
            .uring_queue(waker)
            .map_err(|error| format!("cannot set up an io_uring: {error}"))?;
        Ok(match self.commit {
            Commit::Group => Box::new(GroupCommit::new(Box::new(queue))),
            Commit::None | Commit::PerWrite => Box::new(queue),
        })
    }

    fn flush(&self) -> Result<(), IoError> {
        self.disk.flush()
    }
}

/// A request the queue holds: parked until `commit`, then in the kernel until its
/// completion entry is reaped.
#[derive(Debug)]
struct Slot {
    request: Request,
    /// File octet of the transfer.
    at: u64,
}

/// One io_uring and the requests it carries; see the [module docs](self).
///
/// Field order matters: `ring` is dropped (closed) before `slots` and `arenas`.
pub struct UringQueue {
    ring: IoUring,
    /// The table that holds every request's frame from `submit` until its completion is
    /// reaped; the index is the entry's `user_data`.
    slots: Vec<Option<Slot>>,
    free: Vec<u32>,
    /// Slots submitted and not yet pushed to the ring, in arrival order.
    parked: Vec<u32>,
    /// Requests in the kernel.
    in_kernel: usize,
    done: Vec<Completion>,
    /// Registered buffer `i` is all of `arenas[i]`; kept until the ring is closed.
    arenas: Vec<Arc<Arena>>,
    /// Arenas the kernel would not register (served without fixed buffers).
    refused: Vec<Arc<Arena>>,
    /// A sparse fixed-buffer table exists.
    fixed_buffers: bool,
    /// The file is registered file 0.
    fixed_file: bool,
    disk: Arc<FileDisk>,
    fd: RawFd,
    dsync: bool,
    stats: UringStats,
}

/// What a [`UringQueue`] counted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct UringStats {
    /// `io_uring_enter` calls made to submit.
    pub submit_calls: u64,
    /// Entries pushed.
    pub entries: u64,
    /// Reads and writes that used a registered buffer.
    pub fixed_transfers: u64,
    /// Most requests in the kernel at once.
    pub peak_in_kernel: usize,
}

impl std::fmt::Debug for UringQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UringQueue")
            .field("in_kernel", &self.in_kernel)
            .field("parked", &self.parked.len())
            .field("fixed_file", &self.fixed_file)
            .field("fixed_buffers", &self.fixed_buffers)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl UringQueue {
    fn new(disk: Arc<FileDisk>, waker: &Waker, dsync: bool) -> io::Result<UringQueue> {
        let entries = u32::try_from(QUEUE_DEPTH).unwrap_or(256);
        let ring = IoUring::builder()
            .setup_cqsize(entries * 2)
            .build(entries)?;
        let fd = disk.raw_fd();
        let submitter = ring.submitter();
        // Each is an optimisation the kernel may refuse (old kernel, limits); the queue works
        // without it.
        let fixed_file = submitter.register_files(&[fd]).is_ok();
        let fixed_buffers = submitter
            .register_buffers_sparse(u32::try_from(MAX_ARENAS).unwrap_or(0))
            .is_ok();
        if let Err(error) = submitter.register_eventfd(waker.fd().as_raw_fd()) {
            // The worker still polls the queue every millisecond while requests are in flight.
            log::warn!("io_uring: cannot register the wake-up eventfd: {error}");
        }
        Ok(UringQueue {
            ring,
            slots: Vec::with_capacity(QUEUE_DEPTH),
            free: Vec::with_capacity(QUEUE_DEPTH),
            parked: Vec::with_capacity(QUEUE_DEPTH),
            in_kernel: 0,
            done: Vec::with_capacity(QUEUE_DEPTH),
            arenas: Vec::new(),
            refused: Vec::new(),
            fixed_buffers,
            fixed_file,
            disk,
            fd,
            dsync,
            stats: UringStats::default(),
        })
    }

    /// What it counted so far.
    pub fn stats(&self) -> UringStats {
        self.stats
    }

    /// True if the file is a registered file.
    pub fn uses_fixed_file(&self) -> bool {
        self.fixed_file
    }

    fn used(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    fn complete_now(&mut self, request: Request, result: Result<(), IoError>) {
        self.done.push(Completion {
            tag: request.tag,
            io: request.io,
            result,
            frame: request.frame,
        });
    }

    /// The registered-buffer index of `arena`, registering it if there is room and the kernel
    /// agrees; `None` to use a plain transfer.
    fn buffer_index(&mut self, arena: &Arc<Arena>) -> Option<u16> {
        if !self.fixed_buffers {
            return None;
        }
        if let Some(index) = self.arenas.iter().position(|a| Arc::ptr_eq(a, arena)) {
            return u16::try_from(index).ok();
        }
        if self.refused.iter().any(|a| Arc::ptr_eq(a, arena)) || self.arenas.len() >= MAX_ARENAS {
            return None;
        }
        let (base, len) = arena.region();
        let index = self.arenas.len();
        let iovec = libc::iovec {
            iov_base: base.cast(),
            iov_len: len,
        };
        let registered = len <= MAX_REGISTERED
            // SAFETY: `base..base + len` is the arena's whole memory, which stays mapped at that
            // address while an `Arc` of the arena lives (aoe_net::frame: stable). We push that
            // `Arc` into `self.arenas` below, which is dropped only after `self.ring` (field
            // order; Drop leaks it if the ring cannot be drained), so the memory outlives the
            // registration. The kernel only transfers into it for entries naming frames we hold.
            && unsafe {
                self.ring.submitter().register_buffers_update(
                    u32::try_from(index).unwrap_or(u32::MAX),
                    &[iovec],
                    None,
                )
            }
            .is_ok();
        if registered {
            self.arenas.push(Arc::clone(arena));
            u16::try_from(index).ok()
        } else {
            log::debug!("io_uring: frame memory of {len} bytes not registered; plain transfers");
            self.refused.push(Arc::clone(arena));
            None
        }
    }

    /// The submission entry for parked slot `index`.
    fn entry(&mut self, index: u32) -> Option<squeue::Entry> {
        let (op, range, at, arena) = {
            let slot = self.slots.get(index as usize)?.as_ref()?;
            let io = slot.request.io;
            (
                io.op,
                io.data_range(),
                slot.at,
                Arc::clone(slot.request.frame.arena()),
            )
        };
        let buffer = match op {
            IoOp::Flush => None,
            IoOp::Read | IoOp::Write => self.buffer_index(&arena),
        };
        let slot = self.slots.get_mut(index as usize)?.as_mut()?;
        let frame = &mut slot.request.frame;
        let rw_flags = if self.dsync { libc::RWF_DSYNC } else { 0 };
        macro_rules! build {
            ($fd:expr) => {
                match (op, buffer) {
                    (IoOp::Flush, _) => opcode::Fsync::new($fd)
                        .flags(types::FsyncFlags::DATASYNC)
                        .build(),
                    (IoOp::Read, Some(buf_index)) => {
                        let (ptr, len) = frame.io_ptr_mut(range);
                        opcode::ReadFixed::new($fd, ptr, u32::try_from(len).ok()?, buf_index)
                            .offset(at)
                            .build()
                    }
                    (IoOp::Read, None) => {
                        let (ptr, len) = frame.io_ptr_mut(range);
                        opcode::Read::new($fd, ptr, u32::try_from(len).ok()?)
                            .offset(at)
                            .build()
                    }
                    (IoOp::Write, Some(buf_index)) => {
                        let (ptr, len) = frame.io_ptr(range);
                        opcode::WriteFixed::new($fd, ptr, u32::try_from(len).ok()?, buf_index)
                            .offset(at)
                            .rw_flags(rw_flags)
                            .build()
                    }
                    (IoOp::Write, None) => {
                        let (ptr, len) = frame.io_ptr(range);
                        opcode::Write::new($fd, ptr, u32::try_from(len).ok()?)
                            .offset(at)
                            .rw_flags(rw_flags)
                            .build()
                    }
                }
            };
        }
        let entry = if self.fixed_file {
            build!(types::Fixed(0))
        } else {
            build!(types::Fd(self.fd))
        };
        if buffer.is_some() {
            self.stats.fixed_transfers += 1;
        }
        Some(entry.user_data(u64::from(index)))
    }

    /// Hands the pushed entries to the kernel; true on success.
    fn enter(&mut self) -> bool {
        self.stats.submit_calls += 1;
        loop {
            match self.ring.submit() {
                Ok(_) => return true,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => {
                    // EAGAIN/EBUSY: the entries stay in the ring and go with the next commit.
                    log::warn!("io_uring: submit failed: {error}; retrying at the next commit");
                    return false;
                }
            }
        }
    }

    /// Moves every completion entry the kernel posted into `done`; returns how many.
    fn take_completions(&mut self) -> usize {
        let mut count = 0;
        let mut completion = self.ring.completion();
        completion.sync();
        for entry in &mut completion {
            let index = usize::try_from(entry.user_data()).unwrap_or(usize::MAX);
            let Some(slot) = self.slots.get_mut(index).and_then(Option::take) else {
                log::error!("io_uring: completion for unknown slot {index}");
                continue;
            };
            self.free.push(u32::try_from(index).unwrap_or(0));
            self.in_kernel -= 1;
            count += 1;
            let io = slot.request.io;
            let rc = entry.result();
            let result = if rc < 0 {
                let error = io::Error::from_raw_os_error(-rc);
                Err(IoError {
                    kind: error_kind(&error),
                    errno: -rc,
                })
            } else if io.op != IoOp::Flush && usize::try_from(rc).ok() != Some(io.byte_len()) {
                // A short transfer: past the end of a file that shrank, or a failing device.
                Err(IoError::of(ErrorKind::Media))
            } else {
                Ok(())
            };
            self.done.push(Completion {
                tag: slot.request.tag,
                io,
                result,
                frame: slot.request.frame,
            });
        }
        count
    }
}

impl IoQueue for UringQueue {
    fn submit(&mut self, request: Request) -> Result<(), Request> {
        if self.used() + self.done.len() >= QUEUE_DEPTH {
            return Err(request);
        }
        let io = request.io;
        let read_only = self.disk.options().read_only;
        let at = match io.op {
            IoOp::Flush if read_only => {
                self.complete_now(request, Ok(()));
                return Ok(());
            }
            IoOp::Flush => 0,
            IoOp::Write if read_only => {
                self.complete_now(request, Err(IoError::of(ErrorKind::WriteProtected)));
                return Ok(());
            }
            IoOp::Read | IoOp::Write => match self.disk.position(io.lba, io.byte_len()) {
                Ok(at) => at,
                Err(kind) => {
                    self.complete_now(request, Err(IoError::of(kind)));
                    return Ok(());
                }
            },
        };
        if request.frame.capacity() < io.data_range().end {
            self.complete_now(request, Err(IoError::of(ErrorKind::Other)));
            return Ok(());
        }
        let slot = Slot { request, at };
        let index = match self.free.pop() {
            Some(index) => {
                self.slots[index as usize] = Some(slot);
                index
            }
            None => {
                self.slots.push(Some(slot));
                u32::try_from(self.slots.len() - 1).unwrap_or(u32::MAX)
            }
        };
        self.parked.push(index);
        Ok(())
    }

    fn commit(&mut self) {
        if self.parked.is_empty() {
            return;
        }
        let parked = std::mem::take(&mut self.parked);
        for &index in &parked {
            let Some(entry) = self.entry(index) else {
                // Cannot happen (a parked slot holds a request whose length fits), but never
                // leave a request without its completion.
                if let Some(slot) = self.slots.get_mut(index as usize).and_then(Option::take) {
                    self.free.push(index);
                    self.complete_now(slot.request, Err(IoError::of(ErrorKind::Other)));
                }
                continue;
            };
            loop {
                // SAFETY: the entry names octets of the frame of the request in
                // `self.slots[index]` (or no memory, for a flush) and the registered file or
                // `self.fd`, which `self.disk` keeps open. That request stays in the slot table,
                // untouched, until `take_completions` reaps this entry's completion, and `Drop`
                // waits for every completion (or leaks the table), so the memory is valid for
                // the whole operation (module docs; aoe_net::frame: exclusive and stable).
                let pushed = unsafe { self.ring.submission().push(&entry) };
                if pushed.is_ok() {
                    break;
                }
                // The submission queue is full: hand it to the kernel and push again.
                if !self.enter() {
                    std::thread::yield_now();
                }
            }
            self.in_kernel += 1;
            self.stats.entries += 1;
        }
        self.parked = parked;
        self.parked.clear();
        self.stats.peak_in_kernel = self.stats.peak_in_kernel.max(self.in_kernel);
        self.enter();
    }

    fn reap(&mut self, completions: &mut Vec<Completion>) -> usize {
        if self.in_kernel > 0 {
            self.take_completions();
        }
        let count = self.done.len();
        completions.append(&mut self.done);
        count
    }

    fn in_flight(&self) -> usize {
        self.used() + self.done.len()
    }

    fn wait(&mut self, timeout: Duration) -> bool {
        if !self.done.is_empty() {
            return true;
        }
        if self.in_kernel == 0 {
            return false;
        }
        if !self.ring.completion().is_empty() {
            return true;
        }
        let mut poll_fd = libc::pollfd {
            fd: self.ring.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let millis = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
        // SAFETY: one valid pollfd for our own ring descriptor; the kernel writes `revents`.
        let ready = unsafe { libc::poll(&mut poll_fd, 1, millis) };
        ready > 0
    }
}

impl Drop for UringQueue {
    fn drop(&mut self) {
        // Never free a frame the kernel may still write: wait for every completion.
        while self.in_kernel > 0 {
            self.take_completions();
            if self.in_kernel == 0 {
                break;
            }
            match self.ring.submit_and_wait(1) {
                Ok(_) => {}
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => {
                    log::error!(
                        "io_uring: cannot wait for {} requests in flight ({error}); keeping \
                         their frames",
                        self.in_kernel
                    );
                    std::mem::forget(std::mem::take(&mut self.slots));
                    std::mem::forget(std::mem::take(&mut self.arenas));
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::DiskIo;
    use crate::Durability;
    use aoe_testkit::scratch::Scratch;

    fn pattern(seed: u64, len: usize) -> Vec<u8> {
        aoe_testkit::scratch::random_bytes(len, seed)
    }

    fn skip(why: &str) {
        use std::io::Write as _;
        let _ = writeln!(io::stderr(), "SKIPPED io_uring test: {why}");
    }

    fn storage(path: &Path, options: DiskOptions, commit: Commit) -> Option<UringStorage> {
        if let Err(error) = available() {
            skip(&format!("io_uring unavailable: {error}"));
            return None;
        }
        match FileDisk::open(path, options) {
            Ok(disk) => Some(UringStorage::with_commit(disk, commit)),
            Err(OpenError::DirectUnsupported { source, .. }) => {
                skip(&format!("O_DIRECT unsupported here: {source}"));
                None
            }
            Err(other) => panic!("{other}"),
        }
    }

    fn request(pool: &Arc<Arena>, tag: u64, op: IoOp, lba: u64, sectors: u8) -> Request {
        let io = DiskIo { op, lba, sectors };
        let mut frame = pool.take().unwrap();
        if op == IoOp::Write {
            let range = io.data_range();
            let data = pattern(tag, range.len());
            frame.buffer_mut()[range].copy_from_slice(&data);
        }
        Request { tag, io, frame }
    }

    /// Waits until `count` completions came (5 s at most).
    fn collect(queue: &mut dyn IoQueue, count: usize) -> Vec<Completion> {
        let mut completions = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while completions.len() < count {
            assert!(std::time::Instant::now() < deadline, "{completions:?}");
            queue.wait(Duration::from_millis(50));
            queue.reap(&mut completions);
        }
        completions
    }

    #[test]
    fn one_batch_is_one_submit_and_completions_carry_data_and_frames() {
        let scratch = Scratch::on_disk("uring-batch");
        let path = scratch.sparse("disk.img", 1 << 20);
        let options = DiskOptions {
            direct: true,
            ..DiskOptions::default()
        };
        let Some(storage) = storage(&path, options, Commit::PerWrite) else {
            return;
        };
        let waker = Waker::new().unwrap();
        let mut queue = storage.uring_queue(&waker).unwrap();
        assert!(queue.uses_fixed_file(), "the file is registered");
        let pool = Arena::pool(128);
        for tag in 0..64u64 {
            queue
                .submit(request(&pool, tag, IoOp::Write, tag * 8, 8))
                .unwrap();
        }
        queue.commit();
        let stats = queue.stats();
        assert_eq!(stats.submit_calls, 1, "64 writes, one io_uring_enter");
        assert_eq!(stats.entries, 64);
        assert!(stats.peak_in_kernel >= 2, "{stats:?}");
        let writes = collect(&mut queue, 64);
        assert!(writes.iter().all(|c| c.result.is_ok()), "{writes:?}");
        drop(writes);
        for tag in 0..64u64 {
            queue
                .submit(request(&pool, 100 + tag, IoOp::Read, tag * 8, 8))
                .unwrap();
        }
        queue.commit();
        let reads = collect(&mut queue, 64);
        for read in &reads {
            let written = read.tag - 100;
            assert_eq!(read.result, Ok(()));
            assert_eq!(
                read.frame.buffer()[read.io.data_range()],
                pattern(written, 4096)[..],
                "read of write {written}"
            );
        }
        let file = std::fs::read(&path).unwrap();
        assert_eq!(file[8 * 4096..9 * 4096], pattern(8, 4096)[..]);
        assert_eq!(
            queue.stats().fixed_transfers,
            128,
            "pool frames used registered buffers"
        );
        assert_eq!(queue.in_flight(), 0);
    }

    #[test]
    fn window_read_only_and_flush_rules_hold() {
        let scratch = Scratch::on_disk("uring-rules");
        let path = scratch.sparse("disk.img", 64 * 512);
        let options = DiskOptions {
            offset: 8,
            length: Some(16),
            ..DiskOptions::default()
        };
        let Some(storage) = storage(&path, options, Commit::None) else {
            return;
        };
        assert_eq!(storage.capabilities().durability, Durability::Volatile);
        let waker = Waker::new().unwrap();
        let mut queue = storage.queue(&waker).unwrap();
        let pool = Arena::pool(8);
        queue.submit(request(&pool, 1, IoOp::Write, 15, 1)).unwrap();
        queue.submit(request(&pool, 2, IoOp::Write, 15, 2)).unwrap();
        queue.submit(request(&pool, 3, IoOp::Flush, 0, 0)).unwrap();
        queue.commit();
        let mut done = collect(&mut *queue, 3);
        done.sort_by_key(|c| c.tag);
        assert_eq!(done[0].result, Ok(()));
        assert_eq!(done[1].result, Err(IoError::of(ErrorKind::OutOfRange)));
        assert_eq!(done[2].result, Ok(()));
        let file = std::fs::read(&path).unwrap();
        assert_eq!(file[23 * 512..24 * 512], pattern(1, 512)[..], "window");
        assert!(file[24 * 512..].iter().all(|&b| b == 0), "nothing past it");

        let read_only = DiskOptions {
            read_only: true,
            ..DiskOptions::default()
        };
        let storage =
            UringStorage::with_commit(FileDisk::open(&path, read_only).unwrap(), Commit::PerWrite);
        let mut queue = storage.queue(&waker).unwrap();
        queue.submit(request(&pool, 4, IoOp::Write, 0, 1)).unwrap();
        queue.commit();
        let done = collect(&mut *queue, 1);
        assert_eq!(done[0].result, Err(IoError::of(ErrorKind::WriteProtected)));
    }

    #[test]
    fn a_dropped_queue_waits_for_its_requests() {
        let scratch = Scratch::on_disk("uring-drop");
        let path = scratch.sparse("disk.img", 4 << 20);
        let Some(storage) = storage(&path, DiskOptions::default(), Commit::PerWrite) else {
            return;
        };
        let waker = Waker::new().unwrap();
        let pool = Arena::pool(64);
        let mut queue = storage.uring_queue(&waker).unwrap();
        for tag in 0..64u64 {
            queue
                .submit(request(&pool, tag, IoOp::Write, tag * 16, 16))
                .unwrap();
        }
        queue.commit();
        assert!(pool.free() < 64, "frames are out");
        drop(queue);
        assert_eq!(pool.free(), 64, "every frame came back after the drop");
        let file = std::fs::read(&path).unwrap();
        assert_eq!(file[63 * 8192..64 * 8192], pattern(63, 8192)[..]);
    }
}
