//! One worker's path to one export: frames through the engine's split path and the storage
//! queue, and replies back into the frames they came in.
//!
//! A frame that needs no disk work (control commands, IDENTIFY, refusals) is completed at once,
//! in place: the reply overwrites the request in its own frame. A READ, WRITE or FLUSH becomes
//! a storage [`Request`] carrying the frame (a READ's data lands at octet 36 of that frame, a
//! WRITE's data is taken from there), tagged with the index of its [`Plan`] in a slab, and is
//! completed in place when its completion comes back, in whatever order completions come.
//!
//! Guarantees:
//!
//! * A WRITE's reply is built only from a completion whose result is `Ok`, that is, after the
//!   storage accepted all its octets with the durability it states; a failed operation gets
//!   the engine's ATA error (never an ACK), and is counted per export and kind (reported at
//!   SIGUSR1 and exit) and logged (at most once a second per kind, per export and worker).
//! * The ordering rules of [`aoe_storage::ordered`] hold between requests of this channel.
//! * Frames lent by a kernel receive ring ([`Frame::is_transient`]) are held only by a storage
//!   queue that completes during its commit; for other queues the request is copied into a
//!   pool frame first, so a slow disk never stops the ring.
//! * A control command that changed the export's target state is saved before its reply is
//!   written (in the state directory, or in the image's metadata for a failover export); if
//!   the save fails the reply is withheld (the initiator retries) and the failure is logged and
//!   counted. A retired export (a reload replaced it) answers nothing new.
//! * While the export's gate is closed (a failover gateway that does not hold its image) no
//!   reply leaves, not even for I/O that completed; a failover export whose storage refuses an
//!   I/O as "not ready" (blocklisted, lost the lock) closes its gate at once and that request
//!   gets no reply (the initiator retries it on the gateway that took over).
//! * Nothing is allocated per frame: the plan slab, the completion list and the list of
//!   replies waiting to be sent keep their capacity. Counters are relaxed atomics
//!   ([`crate::metrics`]); a reply's latency is measured from the start of the turn that
//!   received its request to the send of the turn's replies ([`Channel::replies_sent`]).

use crate::export::Export;
use aoe_core::{IoOp, Plan, Port};
use aoe_net::{Frame, Link};
use aoe_storage::{Completion, IoQueue, Ordered, Request, Waker};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often one kind of disk error is logged per channel.
const ERROR_LOG_INTERVAL: Duration = Duration::from_secs(1);

/// Plans waiting for their storage completion, with the time their request arrived, indexed
/// by tag.
#[derive(Debug, Default)]
struct PlanSlab {
    plans: Vec<Option<(Plan, Instant)>>,
    free: Vec<usize>,
}

impl PlanSlab {
    fn insert(&mut self, plan: Plan, received: Instant) -> u64 {
        let entry = Some((plan, received));
        let index = match self.free.pop() {
            Some(index) => {
                self.plans[index] = entry;
                index
            }
            None => {
                self.plans.push(entry);
                self.plans.len() - 1
            }
        };
        index as u64
    }

    fn take(&mut self, tag: u64) -> Option<(Plan, Instant)> {
        let index = usize::try_from(tag).ok()?;
        let plan = self.plans.get_mut(index)?.take()?;
        self.free.push(index);
        Some(plan)
    }
}

/// When each kind of disk error was last logged by this channel (the counts are the
/// export's, [`Export::disk_errors`]).
#[derive(Debug, Default)]
struct ErrorLog {
    logged: HashMap<String, Instant>,
}

/// Where an export stands on one link (the worker decides; see `worker`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OnLink {
    /// Not yet started (just opened).
    New,
    /// Probing for another target with its shelf.slot; answers nothing yet.
    Probing {
        /// The probe.
        probe: crate::guard::Probe,
        /// When its first query went out.
        started: Instant,
        /// Whether the second query went out.
        resent: bool,
    },
    /// Announced and answering.
    Serving,
    /// Another target answered the probe: held back since then.
    Conflict {
        /// When the conflict was found.
        since: Instant,
    },
}

/// One worker's queue to one export; see the [module docs](self).
pub struct Channel {
    /// Where the export stands on this worker's link.
    pub on_link: OnLink,
    export: Arc<Export>,
    queue: Ordered,
    inline: bool,
    plans: PlanSlab,
    completions: Vec<Completion>,
    /// When the requests of the replies built but not yet sent arrived.
    /// Replies built and not yet sent: when their request came, and the successful disk
    /// operation they answer (counted once the reply is out, with its latency).
    unsent: Vec<(Instant, Option<(IoOp, u64)>)>,
    errors: ErrorLog,
    /// Requests dropped because no pool frame was free to copy a ring frame into.
    pub pool_drops: u64,
    /// The export's gate epoch the worker last announced.
    pub announced_epoch: u32,
    /// The gate epoch of the last disk I/O answered (a failover gateway logs the first one
    /// after each takeover: the end of the initiator's outage).
    answered_epoch: u32,
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel")
            .field("export", &self.export.spec().name())
            .field("queue", &self.queue)
            .finish_non_exhaustive()
    }
}

impl Channel {
    /// A channel to `export`, with a new storage queue that signals `waker`.
    ///
    /// # Errors
    /// When the storage cannot make a queue (worded for a person).
    pub fn open(export: Arc<Export>, waker: &Waker) -> Result<Channel, String> {
        let queue = export
            .storage()
            .queue(waker)
            .map_err(|error| format!("{}: {error}", export.spec().name()))?;
        let inline = export.storage().capabilities().completes_inline;
        Ok(Channel {
            on_link: OnLink::New,
            queue: Ordered::new(queue),
            inline,
            plans: PlanSlab::default(),
            completions: Vec::with_capacity(256),
            unsent: Vec::with_capacity(256),
            errors: ErrorLog::default(),
            pool_drops: 0,
            announced_epoch: export.gate().epoch(),
            answered_epoch: export.gate().epoch(),
            export,
        })
    }

    /// The export.
    pub fn export(&self) -> &Arc<Export> {
        &self.export
    }

    /// Requests submitted and not yet completed.
    pub fn in_flight(&self) -> usize {
        self.queue.in_flight()
    }

    /// Runs `frame`, received at `received` (the start of the worker's turn), through the
    /// engine. A reply that is ready goes to `replies`; disk work goes to the storage queue
    /// (committed by [`commit`](Self::commit)). `link` lends a pool frame when a ring frame must
    /// not be held.
    pub fn accept(
        &mut self,
        port: &Port,
        mut frame: Frame,
        link: &mut dyn Link,
        replies: &mut Vec<Frame>,
        received: Instant,
    ) {
        if self.export.is_retired() {
            self.export.metrics().handover_drops.add(1);
            return;
        }
        let mut target = self.export.target();
        let Some(plan) = target.accept(port, frame.as_slice()) else {
            return;
        };
        let Some(io) = plan.io() else {
            // A control command may have changed the target state: saved before the reply.
            if !self.export.persist(&target) {
                return;
            }
            if let Some(len) = target.complete(&plan, Ok(()), frame.buffer_mut()) {
                frame.set_len(len);
                replies.push(frame);
                self.unsent.push((received, None));
            }
            return;
        };
        drop(target);
        if frame.is_transient() && !self.inline || frame.capacity() < plan.reply_len() {
            // Keep the kernel's ring moving: the request waits for its I/O in a pool frame.
            let Some(mut copy) = link.alloc() else {
                self.pool_drops += 1;
                self.export.metrics().pool_drops.add(1);
                return;
            };
            copy.fill(frame.as_slice());
            frame = copy;
        }
        let tag = self.plans.insert(plan, received);
        self.export.metrics().in_flight.add(1);
        // `Ordered` takes every request (it holds back what cannot go yet).
        let _ = self.queue.submit(Request { tag, io, frame });
    }

    /// Records the latency of every reply built since the last call, now that they were sent.
    /// The counters of requests and bytes move here too, so that every request counted has
    /// its latency recorded (a scrape never sees one without the other).
    pub fn replies_sent(&mut self, now: Instant) {
        let metrics = self.export.metrics();
        for (received, done) in self.unsent.drain(..) {
            metrics
                .latency
                .record(now.saturating_duration_since(received));
            match done {
                Some((IoOp::Read, bytes)) => {
                    metrics.reads.add(1);
                    metrics.read_bytes.add(bytes);
                }
                Some((IoOp::Write, bytes)) => {
                    metrics.writes.add(1);
                    metrics.written_bytes.add(bytes);
                }
                Some((IoOp::Flush, _)) => metrics.flushes.add(1),
                None => {}
            }
        }
    }

    /// Hands the submitted requests to the storage.
    pub fn commit(&mut self) {
        self.queue.commit();
    }

    /// Completes the replies of every finished request into `replies`; returns how many
    /// requests finished.
    pub fn reap(&mut self, replies: &mut Vec<Frame>) -> usize {
        let count = self.queue.reap(&mut self.completions);
        self.finish(replies);
        count
    }

    /// Waits for every request in flight and completes their replies into `replies`.
    pub fn drain(&mut self, replies: &mut Vec<Frame>) {
        self.queue.drain(&mut self.completions);
        self.finish(replies);
    }

    fn finish(&mut self, replies: &mut Vec<Frame>) {
        if self.completions.is_empty() {
            return;
        }
        let mut target = self.export.target();
        let metrics = self.export.metrics();
        let failover = self.export.is_failover();
        for completion in self.completions.drain(..) {
            let Some((plan, received)) = self.plans.take(completion.tag) else {
                continue;
            };
            metrics.in_flight.add(-1);
            if failover
                && matches!(completion.result, Err(e) if e.kind == aoe_core::disk::ErrorKind::NotReady)
            {
                // Blocklisted or no longer the lock holder: another gateway owns the image now.
                self.export.gate().close_fenced();
            }
            if !self.export.serving() {
                continue;
            }
            let done = completion
                .result
                .is_ok()
                .then(|| (completion.io.op, u64::from(completion.io.sectors) * 512));
            let result = match completion.result {
                Ok(()) => Ok(()),
                Err(error) => {
                    let key = error.to_string();
                    metrics.io_error(&key);
                    let count = self.export.count_disk_error(&key);
                    let now = Instant::now();
                    let due = self
                        .errors
                        .logged
                        .get(&key)
                        .is_none_or(|last| now.duration_since(*last) >= ERROR_LOG_INTERVAL);
                    if due {
                        log::error!(
                            "{}: {:?} of {} sectors at LBA {} failed: {error} ({} so far)",
                            self.export.spec().name(),
                            completion.io.op,
                            completion.io.sectors,
                            completion.io.lba,
                            count
                        );
                        self.errors.logged.insert(key, now);
                    }
                    Err(error.kind)
                }
            };
            let mut frame = completion.frame;
            if let Some(len) = target.complete(&plan, result, frame.buffer_mut()) {
                frame.set_len(len);
                replies.push(frame);
                self.unsent.push((received, done));
                if failover {
                    let epoch = self.export.gate().epoch();
                    if epoch != self.answered_epoch {
                        self.answered_epoch = epoch;
                        log::warn!(
                            "{}: first I/O answered since becoming active",
                            self.export.spec().name()
                        );
                    }
                }
            }
        }
    }
}
