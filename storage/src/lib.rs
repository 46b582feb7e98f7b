//! Storage back ends for the AoE host target, behind one asynchronous seam.
//!
//! The engine (`aoe_core::Target`) decides what a frame needs and describes the disk work as a
//! [`DiskIo`] (read, write or flush of up to 255 sectors); the host target runs that work
//! through this crate, with the sector data in the request's own [`Frame`] at octet 36 (see
//! `DiskIo::data_range`): a READ's data lands where the reply is sent from, a WRITE's data is
//! taken from where it arrived. No sector data is copied in user space.
//!
//! # The seam
//!
//! A [`Storage`] is one export's opened back end (a file, a block device; later an io_uring
//! file, an NBD export, a Ceph RBD image). It states its [`Capabilities`] once, at open, and
//! hands out [`IoQueue`]s, one per worker thread (as SPDK's `get_io_channel` or
//! cloud-hypervisor's `create_async_io` do). An `IoQueue` is where the work goes:
//!
//! 1. [`IoQueue::submit`] takes a [`Request`] (a tag, the `DiskIo`, the frame) by value.
//! 2. [`IoQueue::commit`] hands everything submitted to the device, in as few system calls as
//!    the back end can (one for the batch).
//! 3. [`IoQueue::reap`] returns [`Completion`]s (tag, result, the frame back), in any order.
//!    A queue that completes requests later (not during `commit`) signals the [`Waker`] it was
//!    made with whenever completions become ready, so one worker waits for its link and all
//!    its queues on two descriptors.
//!
//! What every implementation guarantees:
//!
//! * **Ownership.** The frame of a request belongs to the queue from `submit` until it comes
//!   back in its completion, success or not, exactly once. Nothing else touches it meanwhile;
//!   the queue (or the kernel, or a storage library) may read or write its data range.
//! * **Completion.** Every submitted request completes exactly once. A WRITE completes `Ok` only
//!   when all its octets were accepted with the durability the capabilities state
//!   ([`Durability`]); a READ completes `Ok` only with all its octets in the frame; a FLUSH
//!   completes `Ok` only when every WRITE completed before it was submitted is on stable
//!   storage. Failures carry an [`IoError`]: the kind decides the ATA error the initiator sees,
//!   the errno is for the operator's log. Nothing outside the export's sectors is ever touched.
//! * **No ordering** between requests in flight: completions come in any order, and two
//!   requests in flight may run in any order or at once. The ordering rules AoE initiators rely
//!   on are added on top, once, by [`Ordered`] (see [`ordered`]).
//! * **Backpressure is a refusal, not a drop.** `submit` returns the request when the queue is
//!   full ([`Capabilities::queue_depth`] in flight); the caller completes something first.
//! * **Draining, not cancelling.** [`IoQueue::drain`] waits for every request in flight; a queue
//!   dropped with requests in flight waits for them (or keeps their frames, never freeing memory
//!   the kernel may still write).
//!
//! Back ends: [`uring`] (files and block devices through one io_uring per queue: what the
//! host target uses), [`threads`] (the same through a small thread pool per queue, where
//! io_uring is unavailable), [`file`](mod@file) (run synchronously at `commit`, contiguous
//! transfers merged into one `preadv`/`pwritev`: a simple reference), [`mem`] (memory, with
//! optional reordering of completions: the reference model in tests), [`rbd`] (Ceph RBD images
//! through librbd's aio, loaded at run time), [`nbd`] (an NBD server's export, through our own
//! client). [`durable`] makes WRITEs stable before they complete (the default; AoE initiators
//! never flush). [`open`] picks the engine for files.

pub mod durable;
pub mod file;
pub mod mem;
pub mod nbd;
pub mod ordered;
pub mod rbd;
pub mod threads;
#[cfg(target_os = "linux")]
pub mod uring;
mod waker;

pub use aoe_core::disk::ErrorKind;
pub use aoe_core::{DiskIo, IoOp};
pub use aoe_net::Frame;
pub use ordered::Ordered;
pub use waker::Waker;

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// The engine that runs a file's I/O.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// One io_uring per queue (`uring`; Linux only).
    #[cfg(target_os = "linux")]
    IoUring,
    /// A thread pool per queue ([`threads`]): the fallback.
    Threads,
    /// Synchronously in the worker thread at commit, contiguous transfers merged
    /// ([`file::FileStorage`]): what [`open`] uses for a file in memory (tmpfs, ramfs), which
    /// never waits for a device. io_uring hands such I/O to kernel worker threads (tmpfs
    /// cannot complete it at submission), a round trip through another thread per batch that
    /// halved IOPS on this project's machine.
    Inline,
}

impl Engine {
    /// The engine this process can use: io_uring unless `AOE_STORAGE_ENGINE=threads` is set
    /// or the kernel refuses a ring; with the reason when it is not io_uring (for the start-up
    /// log).
    pub fn detect() -> (Engine, Option<String>) {
        Engine::detect_with(std::env::var("AOE_STORAGE_ENGINE").ok().as_deref())
    }

    /// As [`detect`](Self::detect), with the variable's value given.
    pub fn detect_with(forced: Option<&str>) -> (Engine, Option<String>) {
        if forced == Some("threads") {
            return (
                Engine::Threads,
                Some("AOE_STORAGE_ENGINE=threads asks for the thread pool".into()),
            );
        }
        #[cfg(target_os = "linux")]
        match uring::available() {
            Ok(()) => (Engine::IoUring, None),
            Err(error) => (Engine::Threads, Some(Engine::why_not_uring(&error))),
        }
        #[cfg(not(target_os = "linux"))]
        (
            Engine::Threads,
            Some("io_uring is Linux's; this system runs files on the thread pool".into()),
        )
    }

    /// Why io_uring cannot be used, for a person, from the error a ring setup returned.
    pub fn why_not_uring(error: &std::io::Error) -> String {
        let why = match error.raw_os_error() {
            Some(libc::ENOSYS) => "the kernel has no io_uring",
            Some(libc::EPERM) => {
                "io_uring is not permitted (kernel.io_uring_disabled or a seccomp filter)"
            }
            Some(libc::ENOMEM) => "io_uring cannot lock its memory (RLIMIT_MEMLOCK)",
            _ => "io_uring is unavailable",
        };
        format!("{why}: {error}")
    }

    /// A short name for logs.
    pub fn describe(self) -> String {
        match self {
            #[cfg(target_os = "linux")]
            Engine::IoUring => format!("io_uring, {} in flight per queue", uring::QUEUE_DEPTH),
            Engine::Threads => format!("thread pool, {} threads per queue", threads::THREADS),
            Engine::Inline => "synchronous in the worker thread (a file in memory)".to_string(),
        }
    }
}

/// A file opened by [`open`], with what the start-up log says about it.
#[derive(Debug)]
pub struct Opened {
    /// The back end.
    pub storage: Arc<dyn Storage>,
    /// How its writes are made durable.
    pub commit: durable::Commit,
    /// The file is a block device.
    pub block_device: bool,
    /// What backs it (the policy's input; [`durable::Backing::Memory`] for tmpfs).
    pub backing: durable::Backing,
    /// The engine it runs on: `engine` as asked, or [`Engine::Inline`] for a file in memory.
    pub engine: Engine,
}

/// Opens `path` with `options` on `engine`, or inline ([`Engine::Inline`]) when the file is in
/// memory. The storage's durability follows the options and the backing
/// ([`durable::Commit::from_env`]).
///
/// # Errors
/// As [`file::FileDisk::open`].
pub fn open(
    path: &Path,
    options: file::DiskOptions,
    engine: Engine,
) -> Result<Opened, file::OpenError> {
    let disk = file::FileDisk::open(path, options)?;
    let backing = disk.backing();
    let block_device = disk.is_block_device();
    let commit = durable::Commit::from_env(options.writeback, options.sync, backing);
    let engine = if backing == durable::Backing::Memory {
        Engine::Inline
    } else {
        engine
    };
    let storage: Arc<dyn Storage> = match engine {
        #[cfg(target_os = "linux")]
        Engine::IoUring => Arc::new(uring::UringStorage::with_commit(disk, commit)),
        Engine::Threads => Arc::new(threads::ThreadStorage::with_commit(disk, commit)),
        Engine::Inline => Arc::new(file::FileStorage::with_commit(disk, commit)),
    };
    Ok(Opened {
        storage,
        commit,
        block_device,
        backing,
        engine,
    })
}

/// One unit of disk work: what to do, and the frame whose data range it reads into or writes
/// from.
#[derive(Debug)]
pub struct Request {
    /// The caller's name for it, given back in the completion.
    pub tag: u64,
    /// The operation, first sector and sector count (already checked against the export's
    /// capacity by the engine).
    pub io: DiskIo,
    /// The frame: data at `io.data_range()`.
    pub frame: Frame,
}

/// A finished [`Request`].
#[derive(Debug)]
pub struct Completion {
    /// The request's tag.
    pub tag: u64,
    /// The operation it was.
    pub io: DiskIo,
    /// How it went.
    pub result: Result<(), IoError>,
    /// The request's frame, back to the caller (with the data of a successful READ).
    pub frame: Frame,
}

/// Why an operation failed: the kind the engine turns into an ATA error, and the system's
/// error number (0 when there is none) for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IoError {
    /// What the initiator is told (IDNF for out of range, ABRT otherwise).
    pub kind: ErrorKind,
    /// `errno`, or 0.
    pub errno: i32,
}

impl IoError {
    /// An error of `kind` with no system error behind it.
    pub const fn of(kind: ErrorKind) -> IoError {
        IoError { kind, errno: 0 }
    }

    /// The error the system reported as `error`.
    pub fn from_io(error: &std::io::Error) -> IoError {
        IoError {
            kind: file::error_kind(error),
            errno: error.raw_os_error().unwrap_or(0),
        }
    }
}

impl fmt::Display for IoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.errno == 0 {
            write!(f, "{}", self.kind)
        } else {
            write!(
                f,
                "{} ({})",
                self.kind,
                std::io::Error::from_raw_os_error(self.errno)
            )
        }
    }
}

/// What a completed WRITE means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// On stable storage: it survives a power cut of this host.
    Stable,
    /// In a volatile cache (the page cache): it survives a crash of this process, not of the
    /// host. A FLUSH makes it stable.
    Volatile,
}

/// What a back end can do, fixed when it is opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capabilities {
    /// Sectors exported.
    pub sectors: u64,
    /// Writes are refused (completed with [`ErrorKind::WriteProtected`]).
    pub read_only: bool,
    /// What a completed WRITE means.
    pub durability: Durability,
    /// Requests one queue keeps in flight at most before `submit` refuses.
    pub queue_depth: usize,
    /// Every request completes during [`IoQueue::commit`] (a synchronous back end): the caller
    /// may lend it frames that must not be held long ([`Frame::is_transient`]).
    pub completes_inline: bool,
}

/// One export's opened back end; see the [crate docs](crate).
pub trait Storage: Send + Sync + fmt::Debug {
    /// What it is, for logs (`/srv/disk0.img`, `rbd:pool/image`).
    fn describe(&self) -> String;

    /// What it can do.
    fn capabilities(&self) -> &Capabilities;

    /// A new queue for one worker thread, which signals `waker` when completions become ready
    /// outside [`IoQueue::commit`].
    ///
    /// # Errors
    /// When the back end cannot make one (io_uring refused, connection failed), worded for a
    /// person.
    fn queue(&self, waker: &Waker) -> Result<Box<dyn IoQueue>, String>;

    /// Makes every completed write durable, blocking (at shutdown and when an export is
    /// removed).
    ///
    /// # Errors
    /// When the back end reports that written data could not be stored.
    fn flush(&self) -> Result<(), IoError>;

    /// The back end's size now, in sectors, when it can change while exported (an RBD image
    /// that was resized); `None` when it cannot tell. A reload compares it with
    /// [`Capabilities::sectors`] to show a new capacity.
    fn capacity_now(&self) -> Option<u64> {
        None
    }
}

/// One worker's submission and completion queue; see the [crate docs](crate).
pub trait IoQueue: Send {
    /// Takes `request`, or gives it back when [`Capabilities::queue_depth`] requests are in
    /// flight (reap and complete some, then submit again).
    ///
    /// # Errors
    /// The request itself, untouched, when the queue is full.
    fn submit(&mut self, request: Request) -> Result<(), Request>;

    /// Hands every submitted request to the device.
    fn commit(&mut self);

    /// Appends the completions that are ready to `completions`, without waiting; returns how
    /// many.
    fn reap(&mut self, completions: &mut Vec<Completion>) -> usize;

    /// Requests submitted and not yet reaped.
    fn in_flight(&self) -> usize;

    /// Waits up to `timeout` until a completion is ready (returns at once if one is); false on
    /// timeout.
    fn wait(&mut self, timeout: Duration) -> bool;

    /// Commits, then waits for every request in flight and appends all their completions.
    fn drain(&mut self, completions: &mut Vec<Completion>) {
        self.commit();
        while self.in_flight() > 0 {
            self.wait(Duration::from_millis(100));
            self.reap(completions);
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn the_engine_is_forced_or_detected_and_a_refusal_says_why() {
        let (engine, why) = Engine::detect_with(Some("threads"));
        assert_eq!(engine, Engine::Threads);
        assert!(why.unwrap().contains("AOE_STORAGE_ENGINE=threads"));
        let (engine, why) = Engine::detect_with(None);
        assert_eq!(engine == Engine::IoUring, uring::available().is_ok());
        assert_eq!(why.is_none(), engine == Engine::IoUring);
        for (errno, text) in [
            (libc::EPERM, "kernel.io_uring_disabled or a seccomp filter"),
            (libc::ENOSYS, "the kernel has no io_uring"),
            (libc::ENOMEM, "RLIMIT_MEMLOCK"),
            (libc::EINVAL, "io_uring is unavailable"),
        ] {
            let why = Engine::why_not_uring(&std::io::Error::from_raw_os_error(errno));
            assert!(why.contains(text), "{why}");
        }
        assert!(Engine::IoUring.describe().starts_with("io_uring"));
        assert!(Engine::Threads.describe().contains("8 threads"));
    }
}
