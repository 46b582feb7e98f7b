//! Ceph RBD images behind the storage seam, through librbd's asynchronous C API.
//!
//! An export of `rbd:POOL/IMAGE[@SNAPSHOT][:conf=PATH][:id=NAME][:keyring=PATH]` ([`RbdSpec`])
//! opens the image with its own librados client. Every READ, WRITE and FLUSH becomes one
//! `rbd_aio_*` call on the request's own frame (a READ's data lands at octet 36 of the reply,
//! a WRITE's data is sent from where it arrived); librbd runs it on its threads, and its
//! completion callback only posts `(slot, result)` to the queue's completion list and signals
//! the worker's [`Waker`]. The engine's work (`Target::complete`) happens on the worker, when it
//! reaps. The frames of requests in flight stay in the queue's table of slots until their
//! completion was posted, which is what the `unsafe` of the private `ffi` module relies on.
//!
//! Guarantees, besides those of the [seam](crate):
//!
//! * **Durability.** The client cache is turned off (`rbd_cache = false`): with it off, librbd
//!   completes a write only when the OSDs acknowledged it, and Ceph's OSDs acknowledge only
//!   writes committed to every replica's journal or WAL, so a completed WRITE is
//!   [`Durability::Stable`] (as stable as the cluster's pool makes it; a memstore OSD in tests
//!   keeps it in RAM). Off rather than write-through: write-through still serialises through
//!   the cache's lock and buys nothing, since the initiator's page cache already caches reads,
//!   and `rbd bench --rbd-cache=false` is then the fair yardstick. If the pool's or the
//!   image's configuration turns the cache back on (`conf_rbd_cache` metadata, which overrides
//!   the client), every write is followed by an `rbd_aio_flush` before it completes.
//! * **Many in flight**: up to [`QUEUE_DEPTH`] requests per queue; no ordering between them
//!   (the seam's `Ordered` adds it).
//! * **Errors**: librbd's negative errno becomes an [`IoError`]; a client that was blocklisted
//!   (`ESHUTDOWN`) or lost the exclusive lock (`EROFS` on a writable image) reports
//!   [`ErrorKind::NotReady`], which a gateway in failover treats as "no longer mine" (it answers
//!   nothing rather than an error).
//! * **Failover support**: [`RbdStorage`] offers what a gateway pair needs: the image's
//!   exclusive lock (take, own, break, which blocklists the old owner), a heartbeat object in
//!   the pool, the image's metadata for the export's state, and a fresh client after this one
//!   was blocklisted ([`RbdStorage::reconnect`]); queues move to the new client on their next
//!   commit.
//! * **Capacity now**: [`Storage::capacity_now`] reads the image's size again, so a resized
//!   image shows its new capacity after a reload.
//!
//! librbd and librados are loaded at run time (see `ffi`): without them, opening an RBD
//! export fails with a message that says what to install.

mod ffi;

use crate::{
    Capabilities, Completion, Durability, IoError, IoOp, IoQueue, Request, Storage, Waker,
};
use aoe_core::disk::{ErrorKind, SECTOR_SIZE};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Requests one queue keeps in flight (librbd has no limit of its own that matters here; the
/// Linux initiator keeps at most 64 per target and path).
pub const QUEUE_DEPTH: usize = 256;

/// How long dropping a queue waits for librbd to finish what is in flight before it gives up
/// and keeps (leaks) the frames librbd may still write.
const DROP_WAIT: Duration = Duration::from_secs(30);

/// Which RBD image (or snapshot) to export, and how to reach its cluster.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RbdSpec {
    /// The pool.
    pub pool: String,
    /// The image.
    pub image: String,
    /// A snapshot: the export is read-only.
    pub snapshot: Option<String>,
    /// The Ceph configuration file (else `CEPH_CONF`, else Ceph's default paths).
    pub conf: Option<String>,
    /// The client id, without `client.` (default `admin`).
    pub id: Option<String>,
    /// The keyring (else the one the configuration names).
    pub keyring: Option<String>,
}

impl RbdSpec {
    /// True if `text` names an RBD image (starts with `rbd:`).
    pub fn is_rbd(text: &str) -> bool {
        text.starts_with("rbd:")
    }

    /// Parses `rbd:POOL/IMAGE[@SNAPSHOT][:conf=PATH][:id=NAME][:keyring=PATH]`.
    ///
    /// # Errors
    /// A sentence naming what is wrong.
    pub fn parse(text: &str) -> Result<RbdSpec, String> {
        let rest = text
            .strip_prefix("rbd:")
            .ok_or_else(|| format!("{text:?} does not start with rbd:"))?;
        let mut parts = rest.split(':');
        let name = parts.next().unwrap_or_default();
        let (pool, image) = name.split_once('/').ok_or_else(|| {
            format!(
                "{text:?}: expected rbd:POOL/IMAGE[@SNAPSHOT][:conf=PATH][:id=NAME][:keyring=PATH]"
            )
        })?;
        let (image, snapshot) = match image.split_once('@') {
            Some((image, snapshot)) => (image, Some(snapshot.to_owned())),
            None => (image, None),
        };
        let bad = |what: &str| format!("{text:?}: empty {what}");
        if pool.is_empty() {
            return Err(bad("pool name"));
        }
        if image.is_empty() || image.contains('/') {
            return Err(format!(
                "{text:?}: the image name must be one non-empty name"
            ));
        }
        if snapshot.as_deref() == Some("") {
            return Err(bad("snapshot name"));
        }
        let mut spec = RbdSpec {
            pool: pool.to_owned(),
            image: image.to_owned(),
            snapshot,
            conf: None,
            id: None,
            keyring: None,
        };
        for option in parts {
            let (key, value) = option
                .split_once('=')
                .ok_or_else(|| format!("{text:?}: option {option:?} is not KEY=VALUE"))?;
            if value.is_empty() {
                return Err(bad(key));
            }
            let slot = match key {
                "conf" => &mut spec.conf,
                "id" => &mut spec.id,
                "keyring" => &mut spec.keyring,
                _ => {
                    return Err(format!(
                        "{text:?}: unknown option {key:?} (conf, id and keyring are known)"
                    ));
                }
            };
            *slot = Some(value.to_owned());
        }
        Ok(spec)
    }

    /// `rbd:pool/image[@snapshot]`, for logs.
    pub fn name(&self) -> String {
        match &self.snapshot {
            Some(snapshot) => format!("rbd:{}/{}@{snapshot}", self.pool, self.image),
            None => format!("rbd:{}/{}", self.pool, self.image),
        }
    }
}

impl fmt::Display for RbdSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// How to open an RBD export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RbdOptions {
    /// Refuse writes (a snapshot is always read-only).
    pub read_only: bool,
}

/// True if librados and librbd can be loaded here; otherwise the reason, for a person.
///
/// # Errors
/// The reason.
pub fn libraries_available() -> Result<(), String> {
    ffi::available()
}

/// The client and image queues run on, replaced by [`RbdStorage::reconnect`]; `generation`
/// counts replacements so that a queue notices one with an atomic load per commit.
#[derive(Debug)]
struct Shared {
    image: Mutex<Arc<ffi::Image>>,
    generation: AtomicU64,
}

impl Shared {
    fn image(&self) -> Arc<ffi::Image> {
        Arc::clone(&lock(&self.image))
    }
}

/// An opened RBD image; see the [module docs](self).
#[derive(Debug)]
pub struct RbdStorage {
    spec: RbdSpec,
    options: RbdOptions,
    capabilities: Capabilities,
    flush_after_write: bool,
    shared: Arc<Shared>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Connects a new client and opens the image.
fn connect(spec: &RbdSpec, options: RbdOptions) -> Result<ffi::Image, String> {
    let mut settings = vec![
        // Completed writes are on the OSDs (see the module docs).
        ("rbd_cache", "false"),
        // A gateway cut off from the cluster must find out, not hang for 5 minutes at start.
        ("client_mount_timeout", "15"),
    ];
    if let Some(keyring) = &spec.keyring {
        settings.push(("keyring", keyring));
    }
    let cluster = ffi::Cluster::connect(spec.id.as_deref(), spec.conf.as_deref(), &settings)
        .map_err(|error| format!("{}: cannot reach the Ceph cluster: {error}", spec.name()))?;
    let cluster = Arc::new(cluster);
    let pool = ffi::Pool::open(cluster, &spec.pool)
        .map_err(|error| format!("{}: pool {}: {error}", spec.name(), spec.pool))?;
    let read_only = options.read_only || spec.snapshot.is_some();
    ffi::Image::open(
        Arc::new(pool),
        &spec.image,
        spec.snapshot.as_deref(),
        read_only,
    )
    .map_err(|error| format!("{}: {error}", spec.name()))
}

impl RbdStorage {
    /// Connects to the cluster and opens the image; does not take the exclusive lock (librbd
    /// takes it on the first write, or [`try_acquire_lock`](Self::try_acquire_lock) does).
    ///
    /// # Errors
    /// When librbd is missing, the cluster cannot be reached, the pool, image or snapshot does
    /// not exist, or the image is smaller than one sector; worded for a person.
    pub fn open(spec: &RbdSpec, options: RbdOptions) -> Result<RbdStorage, String> {
        ffi::available()?;
        let image = connect(spec, options)?;
        let bytes = image
            .size()
            .map_err(|error| format!("{}: {error}", spec.name()))?;
        let sectors = bytes / SECTOR_SIZE as u64;
        if sectors == 0 {
            return Err(format!(
                "{} is {bytes} bytes, smaller than one 512-byte sector",
                spec.name()
            ));
        }
        let cluster = image.pool().cluster();
        let cache = |value: Option<String>| value.is_some_and(|v| v.trim() == "true");
        let flush_after_write = cache(cluster.conf_get("rbd_cache"))
            || cache(image.pool().rbd_metadata("conf_rbd_cache").ok().flatten())
            || cache(image.metadata("conf_rbd_cache").ok().flatten());
        if flush_after_write {
            log::warn!(
                "{}: the image's or pool's configuration turns librbd's cache on; every write is \
                 flushed before it is acknowledged",
                spec.name()
            );
        }
        let read_only = options.read_only || spec.snapshot.is_some();
        Ok(RbdStorage {
            spec: spec.clone(),
            options,
            capabilities: Capabilities {
                sectors,
                read_only,
                durability: Durability::Stable,
                queue_depth: QUEUE_DEPTH,
                completes_inline: false,
            },
            flush_after_write,
            shared: Arc::new(Shared {
                image: Mutex::new(Arc::new(image)),
                generation: AtomicU64::new(0),
            }),
        })
    }

    /// What it exports.
    pub fn spec(&self) -> &RbdSpec {
        &self.spec
    }

    fn image(&self) -> Arc<ffi::Image> {
        self.shared.image()
    }

    /// This client as lock owners and blocklists show it: its address (`IP:0/NONCE`, the form
    /// [`lock_owners`](Self::lock_owners) lists), or `client.N` if librados cannot tell.
    pub fn client_name(&self) -> String {
        let image = self.image();
        let cluster = image.pool().cluster();
        cluster
            .address()
            .map(|address| {
                // `rados_getaddrs` may list several (`[v2:IP:P/N,v1:IP:P/N]`); owners show one.
                let trimmed = address.trim_matches(|c| c == '[' || c == ']');
                let first = trimmed.split(',').next().unwrap_or(trimmed);
                first
                    .split_once(':')
                    .map_or(first, |(proto, rest)| {
                        if proto == "v1" || proto == "v2" || proto == "any" {
                            rest
                        } else {
                            first
                        }
                    })
                    .to_owned()
            })
            .unwrap_or_else(|| format!("client.{}", cluster.instance_id()))
    }

    /// Replaces the client with a new one (after this one was blocklisted or lost the lock):
    /// queues move to it on their next commit; operations in flight on the old one finish
    /// there.
    ///
    /// # Errors
    /// When the cluster cannot be reached or the image opened.
    pub fn reconnect(&self) -> Result<(), String> {
        let image = connect(&self.spec, self.options)?;
        let mut current = lock(&self.shared.image);
        *current = Arc::new(image);
        self.shared.generation.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    /// True if this client holds the image's exclusive lock.
    ///
    /// # Errors
    /// librbd's error, for the log.
    pub fn owns_lock(&self) -> Result<bool, String> {
        self.image().is_lock_owner().map_err(|e| e.to_string())
    }

    /// The clients that hold the exclusive lock (none or one).
    ///
    /// # Errors
    /// librbd's error, for the log.
    pub fn lock_owners(&self) -> Result<Vec<String>, String> {
        self.image().lock_owners().map_err(|e| e.to_string())
    }

    /// Takes the exclusive lock and keeps it against other clients' requests.
    ///
    /// # Errors
    /// When another client holds it (librbd's `EROFS`/`EBUSY`) or the cluster fails.
    pub fn try_acquire_lock(&self) -> Result<(), String> {
        self.image().lock_acquire().map_err(|e| e.to_string())
    }

    /// Gives the exclusive lock up (at a clean shutdown, so a standby need not break it).
    ///
    /// # Errors
    /// librbd's error, for the log.
    pub fn release_lock(&self) -> Result<(), String> {
        self.image().lock_release().map_err(|e| e.to_string())
    }

    /// Breaks `owner`'s lock: librbd blocklists that client in the cluster first, so from now
    /// on its writes fail (`ESHUTDOWN`).
    ///
    /// # Errors
    /// librbd's error, for the log.
    pub fn break_lock(&self, owner: &str) -> Result<(), String> {
        self.image().lock_break(owner).map_err(|e| e.to_string())
    }

    fn heartbeat_object(&self) -> String {
        format!("aoe.heartbeat.{}", self.spec.image)
    }

    /// Replaces the heartbeat object's content (blocking; fails once this client is
    /// blocklisted).
    ///
    /// # Errors
    /// librados's error, for the log.
    pub fn write_heartbeat(&self, content: &[u8]) -> Result<(), String> {
        self.image()
            .pool()
            .write_full(&self.heartbeat_object(), content)
            .map_err(|e| e.to_string())
    }

    /// The heartbeat object's content, `None` if nobody ever wrote it.
    ///
    /// # Errors
    /// librados's error, for the log.
    pub fn read_heartbeat(&self) -> Result<Option<Vec<u8>>, String> {
        self.image()
            .pool()
            .read(&self.heartbeat_object(), 256)
            .map_err(|e| e.to_string())
    }

    /// The image metadata value of `key`.
    ///
    /// # Errors
    /// librbd's error, for the log.
    pub fn metadata(&self, key: &str) -> Result<Option<String>, String> {
        self.image().metadata(key).map_err(|e| e.to_string())
    }

    /// Sets image metadata `key` (blocking; this client must hold the lock if anyone does).
    ///
    /// # Errors
    /// librbd's error, for the log.
    pub fn set_metadata(&self, key: &str, value: &str) -> Result<(), String> {
        self.image()
            .set_metadata(key, value)
            .map_err(|e| e.to_string())
    }
}

impl Storage for RbdStorage {
    fn describe(&self) -> String {
        self.spec.name()
    }

    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    fn queue(&self, waker: &Waker) -> Result<Box<dyn IoQueue>, String> {
        let completions = Arc::new(Completions {
            list: Mutex::new(Vec::with_capacity(QUEUE_DEPTH)),
            posted: Condvar::new(),
            waker: waker.clone(),
        });
        let tickets = (0..QUEUE_DEPTH)
            .map(|slot| ffi::Ticket {
                completions: Arc::clone(&completions),
                slot: u32::try_from(slot).unwrap_or(u32::MAX),
            })
            .collect::<Vec<_>>()
            .into_boxed_slice();
        let generation = self.shared.generation.load(Ordering::Acquire);
        Ok(Box::new(RbdQueue {
            shared: Arc::clone(&self.shared),
            image: self.shared.image(),
            generation,
            completions,
            tickets,
            slots: (0..QUEUE_DEPTH).map(|_| None).collect(),
            free: (0..QUEUE_DEPTH).rev().collect(),
            submitted: Vec::with_capacity(QUEUE_DEPTH),
            done: Vec::with_capacity(QUEUE_DEPTH),
            posted: Vec::with_capacity(QUEUE_DEPTH),
            read_only: self.capabilities.read_only,
            flush_after_write: self.flush_after_write,
        }))
    }

    fn flush(&self) -> Result<(), IoError> {
        if self.capabilities.read_only {
            return Ok(());
        }
        self.image().flush().map_err(|error| io_error(error.errno))
    }

    fn capacity_now(&self) -> Option<u64> {
        self.image()
            .size()
            .ok()
            .map(|bytes| bytes / SECTOR_SIZE as u64)
    }
}

/// Maps librbd's errno to what the initiator is told.
fn io_error(errno: i32) -> IoError {
    let kind = match errno {
        libc::EIO | libc::EILSEQ => ErrorKind::Media,
        // Blocklisted, lost the lock, or cut off: this gateway may no longer serve the image.
        libc::ESHUTDOWN | libc::EROFS | libc::ETIMEDOUT | libc::ENOTCONN => ErrorKind::NotReady,
        libc::EPERM | libc::EACCES => ErrorKind::WriteProtected,
        libc::EINVAL | libc::ERANGE => ErrorKind::OutOfRange,
        _ => ErrorKind::Other,
    };
    IoError { kind, errno }
}

/// Completions posted by librbd's threads for one queue: `(slot, result)`.
#[derive(Debug)]
pub(crate) struct Completions {
    list: Mutex<Vec<(u32, isize)>>,
    posted: Condvar,
    waker: Waker,
}

impl Completions {
    /// Called on a librbd thread: records the result and wakes the worker.
    fn post(&self, slot: u32, result: isize) {
        let mut list = lock(&self.list);
        list.push((slot, result));
        // Only the first completion into an empty list wakes: the worker takes the whole list
        // at once, so later ones until then ride on that wake-up (one syscall per batch).
        if list.len() == 1 {
            drop(list);
            self.posted.notify_all();
            self.waker.wake();
        }
    }
}

/// What a slot of the queue's table holds while librbd works on it.
#[derive(Debug)]
struct InFlight {
    request: Request,
    /// The image the operation runs on (kept open until it completes).
    image: Arc<ffi::Image>,
    /// The write is done and a flush of it is in flight (cache on: see the module docs).
    flushing: bool,
}

/// A queue of an [`RbdStorage`]: one worker's requests, as librbd aio operations.
struct RbdQueue {
    shared: Arc<Shared>,
    image: Arc<ffi::Image>,
    generation: u64,
    completions: Arc<Completions>,
    /// One ticket per slot, handed to librbd as its callback's argument; boxed so that they
    /// never move while the queue lives.
    tickets: Box<[ffi::Ticket]>,
    /// The requests in flight, by slot: each frame stays here until its completion is posted.
    slots: Vec<Option<InFlight>>,
    free: Vec<usize>,
    submitted: Vec<Request>,
    done: Vec<Completion>,
    /// The completion list, swapped out of the shared one (keeps both allocations).
    posted: Vec<(u32, isize)>,
    read_only: bool,
    flush_after_write: bool,
}

impl fmt::Debug for RbdQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RbdQueue")
            .field("in_flight", &(QUEUE_DEPTH - self.free.len()))
            .finish_non_exhaustive()
    }
}

impl RbdQueue {
    /// Starts `op` for the request in `slot`; completes it at once with the error if librbd
    /// refuses to start it.
    fn start(&mut self, slot: usize, op: ffi::AioOp) {
        let Some(in_flight) = self.slots[slot].as_mut() else {
            return;
        };
        let io = in_flight.request.io;
        let (buffer, len) = in_flight.request.frame.io_ptr_mut(io.data_range());
        let len = if op == ffi::AioOp::Flush { 0 } else { len };
        // SAFETY: the frame (and so `buffer .. buffer + len`, see `aoe_net::frame`) stays in
        // `self.slots[slot]` untouched until this slot's completion is posted: `reap` takes it
        // out only after that, and `Drop` waits for every slot in use. The ticket of the slot
        // lives in `self.tickets`, which is never resized or moved out before then.
        let started = unsafe {
            in_flight
                .image
                .aio(op, io.byte_offset(), buffer, len, &self.tickets[slot])
        };
        if let Err(error) = started {
            self.finish(slot, Err(io_error(error.errno)));
        }
    }

    /// Completes the request in `slot` with `result` and frees the slot.
    fn finish(&mut self, slot: usize, result: Result<(), IoError>) {
        if let Some(in_flight) = self.slots[slot].take() {
            self.free.push(slot);
            self.done.push(Completion {
                tag: in_flight.request.tag,
                io: in_flight.request.io,
                result,
                frame: in_flight.request.frame,
            });
        }
    }

    /// Takes posted completions and turns them into `Completion`s (or a follow-up flush).
    fn collect(&mut self) {
        std::mem::swap(&mut *lock(&self.completions.list), &mut self.posted);
        let mut posted = std::mem::take(&mut self.posted);
        for (slot, result) in posted.drain(..) {
            let slot = slot as usize;
            let Some(in_flight) = self.slots.get(slot).and_then(Option::as_ref) else {
                continue;
            };
            let io = in_flight.request.io;
            let outcome = if result < 0 {
                Err(io_error(i32::try_from(-result).unwrap_or(libc::EIO)))
            } else if io.op == IoOp::Read && usize::try_from(result).ok() != Some(io.byte_len()) {
                // A short read: past the end of an image that shrank.
                Err(IoError::of(ErrorKind::OutOfRange))
            } else {
                Ok(())
            };
            if outcome.is_ok()
                && io.op == IoOp::Write
                && self.flush_after_write
                && let Some(in_flight) = self.slots[slot].as_mut()
                && !in_flight.flushing
            {
                in_flight.flushing = true;
                self.start(slot, ffi::AioOp::Flush);
                continue;
            }
            self.finish(slot, outcome);
        }
        self.posted = posted;
    }
}

impl IoQueue for RbdQueue {
    fn submit(&mut self, request: Request) -> Result<(), Request> {
        if self.submitted.len() + (QUEUE_DEPTH - self.free.len()) >= QUEUE_DEPTH {
            return Err(request);
        }
        self.submitted.push(request);
        Ok(())
    }

    fn commit(&mut self) {
        if self.submitted.is_empty() {
            return;
        }
        // Follow a reconnect (failover): new operations go to the new client.
        let generation = self.shared.generation.load(Ordering::Acquire);
        if generation != self.generation {
            self.image = self.shared.image();
            self.generation = generation;
        }
        let mut submitted = std::mem::take(&mut self.submitted);
        for request in submitted.drain(..) {
            if request.io.op == IoOp::Write && self.read_only {
                self.done.push(Completion {
                    tag: request.tag,
                    io: request.io,
                    result: Err(IoError::of(ErrorKind::WriteProtected)),
                    frame: request.frame,
                });
                continue;
            }
            let Some(slot) = self.free.pop() else {
                // submit() keeps the total within the depth, so a slot is free.
                continue;
            };
            let op = match request.io.op {
                IoOp::Read => ffi::AioOp::Read,
                IoOp::Write => ffi::AioOp::Write,
                IoOp::Flush => ffi::AioOp::Flush,
            };
            self.slots[slot] = Some(InFlight {
                request,
                image: Arc::clone(&self.image),
                flushing: false,
            });
            self.start(slot, op);
        }
        self.submitted = submitted;
    }

    fn reap(&mut self, completions: &mut Vec<Completion>) -> usize {
        self.collect();
        let count = self.done.len();
        completions.append(&mut self.done);
        count
    }

    fn in_flight(&self) -> usize {
        self.submitted.len() + (QUEUE_DEPTH - self.free.len()) + self.done.len()
    }

    fn wait(&mut self, timeout: Duration) -> bool {
        if !self.done.is_empty() {
            return true;
        }
        let list = lock(&self.completions.list);
        let (list, _) = self
            .completions
            .posted
            .wait_timeout_while(list, timeout, |list| list.is_empty())
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        !list.is_empty()
    }
}

impl Drop for RbdQueue {
    fn drop(&mut self) {
        // librbd may still write into frames of operations in flight: wait for them.
        let deadline = Instant::now() + DROP_WAIT;
        while self.free.len() < QUEUE_DEPTH && Instant::now() < deadline {
            self.wait(Duration::from_millis(100));
            self.collect();
        }
        if self.free.len() < QUEUE_DEPTH {
            log::error!(
                "{} RBD operations did not complete in {DROP_WAIT:?}; their buffers are kept",
                QUEUE_DEPTH - self.free.len()
            );
            // Never free memory librbd may still write, nor the tickets it will post through.
            std::mem::forget(std::mem::take(&mut self.slots));
            std::mem::forget(std::mem::take(&mut self.tickets));
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn specs_parse_with_options_and_refuse_nonsense() {
        let spec = RbdSpec::parse("rbd:rbd/disk0").unwrap();
        assert_eq!((spec.pool.as_str(), spec.image.as_str()), ("rbd", "disk0"));
        assert_eq!(spec.snapshot, None);
        assert_eq!(spec.name(), "rbd:rbd/disk0");
        let spec =
            RbdSpec::parse("rbd:pool/img@snap1:conf=/etc/ceph/c.conf:id=aoe:keyring=/k").unwrap();
        assert_eq!(spec.snapshot.as_deref(), Some("snap1"));
        assert_eq!(spec.conf.as_deref(), Some("/etc/ceph/c.conf"));
        assert_eq!(spec.id.as_deref(), Some("aoe"));
        assert_eq!(spec.keyring.as_deref(), Some("/k"));
        assert_eq!(spec.name(), "rbd:pool/img@snap1");
        for (bad, why) in [
            ("rbd:", "expected rbd:POOL/IMAGE"),
            ("rbd:pool", "expected rbd:POOL/IMAGE"),
            ("rbd:/img", "empty pool"),
            ("rbd:pool/", "image name"),
            ("rbd:pool/a/b", "image name"),
            ("rbd:pool/img@", "empty snapshot"),
            ("rbd:pool/img:conf", "not KEY=VALUE"),
            ("rbd:pool/img:conf=", "empty conf"),
            ("rbd:pool/img:colour=blue", "unknown option"),
            ("file.img", "does not start with rbd:"),
        ] {
            let error = RbdSpec::parse(bad).unwrap_err();
            assert!(error.contains(why), "{bad}: {error}");
        }
        assert!(RbdSpec::is_rbd("rbd:a/b") && !RbdSpec::is_rbd("/srv/rbd:a"));
    }

    #[test]
    fn librbd_errors_map_to_what_the_initiator_is_told() {
        assert_eq!(io_error(libc::ESHUTDOWN).kind, ErrorKind::NotReady);
        assert_eq!(io_error(libc::EROFS).kind, ErrorKind::NotReady);
        assert_eq!(io_error(libc::EIO).kind, ErrorKind::Media);
        assert_eq!(io_error(libc::EINVAL).kind, ErrorKind::OutOfRange);
        assert_eq!(io_error(libc::ENOMEM).kind, ErrorKind::Other);
        assert_eq!(io_error(libc::EIO).errno, libc::EIO);
    }
}
