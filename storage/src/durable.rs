//! Durable acknowledgements: how a WRITE is made stable before it completes.
//!
//! The Linux `aoe` driver and iPXE never send FLUSH CACHE: for them the reply to each WRITE is
//! the only durability point. So unless an export opts into page-cache acknowledgement
//! (`--writeback`, vblade's behaviour) or opens with `O_SYNC` (`-s`), every back end makes a
//! WRITE stable before it completes it, with one of two [`Commit`] policies:
//!
//! * [`Commit::PerWrite`]: each write carries `RWF_DSYNC` (FUA on a device that has it, or the
//!   file system's own data sync after the write). No extra operation, and concurrent writes
//!   proceed in parallel; each pays its own sync.
//! * [`Commit::Group`]: writes run without a sync; [`GroupCommit`] holds each completed write
//!   back and issues one `fdatasync` covering every write completed since the previous one
//!   started (at most one in flight per queue); when it completes, all of them complete, with
//!   its result. Writes that complete while a sync runs wait for the next one. The window is
//!   natural: as long as one sync takes, with no timer, so a lone write pays one sync and a
//!   burst of 64 pays one or two.
//!
//! Which one a back end uses is chosen per backing type by [`Commit::choose`], from
//! measurements on a real disk (host-sim's README has the table); `AOE_DURABLE_COMMIT=dsync`
//! or `=group` overrides the choice (for measuring).
//!
//! Guarantees of [`GroupCommit`], on top of any [`IoQueue`]:
//!
//! * A WRITE completes `Ok` only after an `fdatasync` that started after the write's own
//!   completion succeeded; if the sync fails, every write it covered completes with its error
//!   (never an acknowledgement).
//! * Reads, flushes and failed writes complete as the inner queue completes them.
//! * Every request still completes exactly once; `in_flight` counts held-back writes.

use crate::{Completion, DiskIo, Frame, IoOp, IoQueue, Request};
use std::time::Duration;

/// How a back end makes a WRITE durable before it completes; see the [module docs](self).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Commit {
    /// Nothing beyond the write itself: page-cache acknowledgement (`--writeback`), or the
    /// file is open with `O_SYNC` (`-s`) so every write is already stable.
    None,
    /// Each write with `RWF_DSYNC`.
    PerWrite,
    /// Writes without sync, then one `fdatasync` for every write completed meanwhile.
    Group,
}

/// What backs an export, for [`Commit::choose`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backing {
    /// A regular file through the page cache.
    CachedFile,
    /// A regular file opened with `O_DIRECT` (`-d`).
    DirectFile,
    /// A block device (with or without `O_DIRECT`).
    BlockDevice,
    /// A regular file on a memory file system (tmpfs, ramfs): the memory is the medium, so a
    /// completed write is as stable as the file ever gets and a sync would only cost a round
    /// trip. Nothing in it survives a power cut of the host, whatever the policy.
    Memory,
}

impl Commit {
    /// The policy for an export that is `writeback` or `sync` (or neither) on `backing`.
    /// `override_text` is `AOE_DURABLE_COMMIT` when set (`dsync`, `group`); anything else is
    /// ignored.
    ///
    /// The choice, measured on this project's machine (host-sim's README): page-cache files
    /// use group commit, because `RWF_DSYNC` on a buffered write runs the whole write-back
    /// and journal commit per write, serialised on the inode; `O_DIRECT` files and block
    /// devices use per-write `RWF_DSYNC`, because the write already went to the device and
    /// only needs FUA or a cache flush, which the kernel merges across concurrent writes,
    /// with no extra round trip through the queue. Files in memory need nothing.
    pub fn choose(
        writeback: bool,
        sync: bool,
        backing: Backing,
        override_text: Option<&str>,
    ) -> Commit {
        if writeback || sync {
            return Commit::None;
        }
        match override_text {
            Some("dsync") => return Commit::PerWrite,
            Some("group") => return Commit::Group,
            _ => {}
        }
        match backing {
            Backing::CachedFile => Commit::Group,
            Backing::DirectFile | Backing::BlockDevice => Commit::PerWrite,
            Backing::Memory => Commit::None,
        }
    }

    /// The policy for `writeback`/`sync` on `backing`, with `AOE_DURABLE_COMMIT` from the
    /// environment.
    pub fn from_env(writeback: bool, sync: bool, backing: Backing) -> Commit {
        let text = std::env::var("AOE_DURABLE_COMMIT").ok();
        Commit::choose(writeback, sync, backing, text.as_deref())
    }

    /// A short name for logs: `none`, `per-write RWF_DSYNC`, `group fdatasync`.
    pub fn describe(self) -> &'static str {
        match self {
            Commit::None => "none",
            Commit::PerWrite => "per-write RWF_DSYNC",
            Commit::Group => "group fdatasync",
        }
    }
}

/// The tag of the sync that [`GroupCommit`] runs through its inner queue.
const SYNC_TAG: u64 = u64::MAX;

/// Group commit on top of another queue; see the [module docs](self).
pub struct GroupCommit {
    inner: Box<dyn IoQueue>,
    /// The frame the internal sync request carries (a FLUSH needs no data, but every request
    /// owns a frame); `None` while the sync is in flight.
    spare: Option<Frame>,
    /// Writes completed by the inner queue and not yet covered by a sync.
    waiting: Vec<Completion>,
    /// Writes the sync in flight covers.
    syncing: Vec<Completion>,
    /// Completions ready for the caller.
    done: Vec<Completion>,
    scratch: Vec<Completion>,
    syncs: u64,
}

impl std::fmt::Debug for GroupCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit")
            .field("waiting", &self.waiting.len())
            .field("syncing", &self.syncing.len())
            .field("syncs", &self.syncs)
            .finish_non_exhaustive()
    }
}

impl GroupCommit {
    /// Group commit of the writes of `inner`.
    pub fn new(inner: Box<dyn IoQueue>) -> GroupCommit {
        let spare = aoe_net::Arena::pool(1).take();
        GroupCommit {
            inner,
            spare,
            waiting: Vec::with_capacity(256),
            syncing: Vec::with_capacity(256),
            done: Vec::with_capacity(256),
            scratch: Vec::with_capacity(256),
            syncs: 0,
        }
    }

    /// `fdatasync`s issued so far.
    pub fn syncs(&self) -> u64 {
        self.syncs
    }

    fn sync_in_flight(&self) -> bool {
        self.spare.is_none()
    }

    /// Starts a sync for every waiting write, if none is in flight. True if one started.
    fn start_sync(&mut self) -> bool {
        if self.waiting.is_empty() {
            return false;
        }
        let Some(frame) = self.spare.take() else {
            return false;
        };
        let io = DiskIo {
            op: IoOp::Flush,
            lba: 0,
            sectors: 0,
        };
        match self.inner.submit(Request {
            tag: SYNC_TAG,
            io,
            frame,
        }) {
            Ok(()) => {
                std::mem::swap(&mut self.waiting, &mut self.syncing);
                self.syncs += 1;
                self.inner.commit();
                true
            }
            Err(request) => {
                // The inner queue is full: try again at the next reap.
                self.spare = Some(request.frame);
                false
            }
        }
    }

    /// Sorts what the inner queue completed.
    fn sort(&mut self) {
        for completion in self.scratch.drain(..) {
            if completion.tag == SYNC_TAG {
                let result = completion.result;
                self.spare = Some(completion.frame);
                for mut write in self.syncing.drain(..) {
                    write.result = result;
                    self.done.push(write);
                }
            } else if completion.io.op == IoOp::Write && completion.result.is_ok() {
                self.waiting.push(completion);
            } else {
                self.done.push(completion);
            }
        }
    }
}

impl IoQueue for GroupCommit {
    fn submit(&mut self, request: Request) -> Result<(), Request> {
        self.inner.submit(request)
    }

    fn commit(&mut self) {
        self.inner.commit();
    }

    fn reap(&mut self, completions: &mut Vec<Completion>) -> usize {
        loop {
            let count = self.inner.reap(&mut self.scratch);
            self.sort();
            // A synchronous inner queue completes the sync at once: go round again.
            let started = !self.sync_in_flight() && self.start_sync();
            if count == 0 && !started {
                break;
            }
        }
        let count = self.done.len();
        completions.append(&mut self.done);
        count
    }

    fn in_flight(&self) -> usize {
        let internal = usize::from(self.sync_in_flight());
        self.inner.in_flight() - internal.min(self.inner.in_flight())
            + self.waiting.len()
            + self.syncing.len()
            + self.done.len()
    }

    fn wait(&mut self, timeout: Duration) -> bool {
        if !self.done.is_empty() {
            return true;
        }
        self.inner.wait(timeout)
    }
}

/// What a completed WRITE means for `options` under `commit` on `backing`.
pub(crate) fn durability_of(
    options: crate::file::DiskOptions,
    commit: Commit,
    backing: Backing,
) -> crate::Durability {
    let in_memory = backing == Backing::Memory && !options.writeback;
    if options.sync || commit != Commit::None || in_memory {
        crate::Durability::Stable
    } else {
        crate::Durability::Volatile
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::mem::MemStorage;
    use crate::{Storage, Waker};
    use aoe_net::Arena;

    #[test]
    fn the_choice_follows_the_mode_and_backing() {
        use Backing::*;
        assert_eq!(Commit::choose(true, false, CachedFile, None), Commit::None);
        assert_eq!(Commit::choose(false, true, DirectFile, None), Commit::None);
        assert_eq!(
            Commit::choose(true, false, BlockDevice, Some("group")),
            Commit::None,
            "writeback wins over the override"
        );
        assert_eq!(
            Commit::choose(false, false, CachedFile, None),
            Commit::Group
        );
        assert_eq!(
            Commit::choose(false, false, DirectFile, None),
            Commit::PerWrite
        );
        assert_eq!(
            Commit::choose(false, false, BlockDevice, None),
            Commit::PerWrite
        );
        assert_eq!(
            Commit::choose(false, false, CachedFile, Some("dsync")),
            Commit::PerWrite
        );
        assert_eq!(
            Commit::choose(false, false, DirectFile, Some("group")),
            Commit::Group
        );
        assert_eq!(
            Commit::choose(false, false, DirectFile, Some("bogus")),
            Commit::PerWrite
        );
        assert_eq!(Commit::choose(false, false, Memory, None), Commit::None);
        assert_eq!(
            Commit::choose(false, false, Memory, Some("group")),
            Commit::Group,
            "the override still measures"
        );
    }

    /// Writes on a reordering memory queue: all complete, each once, with far fewer syncs
    /// than writes.
    #[test]
    fn out_of_order_writes_all_complete_with_shared_syncs() {
        let storage = MemStorage::reordering(64, 11);
        let waker = Waker::new().unwrap();
        let mut queue = GroupCommit::new(storage.queue(&waker).unwrap());
        let pool = Arena::pool(64);
        for tag in 0..48u64 {
            let io = DiskIo {
                op: if tag % 4 == 3 {
                    IoOp::Read
                } else {
                    IoOp::Write
                },
                lba: tag,
                sectors: 1,
            };
            let frame = pool.take().unwrap();
            queue.submit(Request { tag, io, frame }).unwrap();
        }
        queue.commit();
        let mut completions = Vec::new();
        let mut rounds = 0;
        while queue.in_flight() > 0 {
            queue.reap(&mut completions);
            rounds += 1;
            assert!(rounds < 1000, "never drained");
        }
        let mut tags: Vec<u64> = completions.iter().map(|c| c.tag).collect();
        tags.sort_unstable();
        assert_eq!(tags, (0..48).collect::<Vec<_>>(), "each exactly once");
        assert!(completions.iter().all(|c| c.result.is_ok()));
        assert!(
            (1..36).contains(&queue.syncs()),
            "{} syncs for 36 writes: not grouped",
            queue.syncs()
        );
    }

    /// A synchronous queue that logs what it ran, in order, and fails flushes on request.
    #[derive(Debug, Default)]
    struct Scripted {
        done: Vec<Completion>,
        pending: Vec<Request>,
        fail_flush: bool,
        log: std::sync::Arc<std::sync::Mutex<Vec<(IoOp, u64)>>>,
    }

    impl IoQueue for Scripted {
        fn submit(&mut self, request: Request) -> Result<(), Request> {
            self.pending.push(request);
            Ok(())
        }
        fn commit(&mut self) {
            for request in self.pending.drain(..) {
                self.log.lock().unwrap().push((request.io.op, request.tag));
                let result = if request.io.op == IoOp::Flush && self.fail_flush {
                    Err(crate::IoError {
                        kind: crate::ErrorKind::Media,
                        errno: libc::EIO,
                    })
                } else {
                    Ok(())
                };
                self.done.push(Completion {
                    tag: request.tag,
                    io: request.io,
                    result,
                    frame: request.frame,
                });
            }
        }
        fn reap(&mut self, completions: &mut Vec<Completion>) -> usize {
            let count = self.done.len();
            completions.append(&mut self.done);
            count
        }
        fn in_flight(&self) -> usize {
            self.pending.len() + self.done.len()
        }
        fn wait(&mut self, _timeout: Duration) -> bool {
            !self.done.is_empty()
        }
    }

    #[test]
    fn a_failed_sync_fails_every_write_it_covered() {
        let mut queue = GroupCommit::new(Box::new(Scripted {
            fail_flush: true,
            ..Scripted::default()
        }));
        let pool = Arena::pool(4);
        for (tag, op) in [(1, IoOp::Write), (2, IoOp::Read), (3, IoOp::Write)] {
            let io = DiskIo {
                op,
                lba: 0,
                sectors: 1,
            };
            let frame = pool.take().unwrap();
            queue.submit(Request { tag, io, frame }).unwrap();
        }
        queue.commit();
        let mut completions = Vec::new();
        assert_eq!(queue.reap(&mut completions), 3);
        assert_eq!(queue.in_flight(), 0);
        completions.sort_by_key(|c| c.tag);
        assert_eq!(completions[1].result, Ok(()), "the read");
        for write in [&completions[0], &completions[2]] {
            assert_eq!(write.result.map_err(|e| e.errno), Err(libc::EIO));
        }
        assert_eq!(queue.syncs(), 1, "one sync for both writes");
    }

    #[test]
    fn a_write_completes_only_after_a_sync_that_ran_after_it() {
        let log = std::sync::Arc::default();
        let inner = Scripted {
            log: std::sync::Arc::clone(&log),
            ..Scripted::default()
        };
        let mut queue = GroupCommit::new(Box::new(inner));
        let pool = Arena::pool(8);
        let mut completions = Vec::new();
        for round in 0..3u64 {
            for tag in round * 2..round * 2 + 2 {
                let io = DiskIo {
                    op: IoOp::Write,
                    lba: tag,
                    sectors: 1,
                };
                let frame = pool.take().unwrap();
                queue.submit(Request { tag, io, frame }).unwrap();
            }
            queue.commit();
            let mut now = Vec::new();
            queue.reap(&mut now);
            let ran = log.lock().unwrap().clone();
            for write in &now {
                let at = ran
                    .iter()
                    .position(|&(op, tag)| op == IoOp::Write && tag == write.tag)
                    .unwrap();
                assert!(
                    ran[at..]
                        .iter()
                        .any(|&(op, tag)| op == IoOp::Flush && tag == SYNC_TAG),
                    "write {} acknowledged with no sync after it: {ran:?}",
                    write.tag
                );
            }
            completions.extend(now);
        }
        assert_eq!(completions.len(), 6);
        assert_eq!(queue.syncs(), 3, "one sync per batch of two");
    }
}
