//! The I/O engine: keeps up to a window of ATA frames outstanding at one target.
//!
//! Guarantees:
//!
//! * At most [`EngineConfig::window`] frames are outstanding; callers set it to the target's
//!   Buffer Count (or less), so a well-behaved target never has to drop a frame.
//! * Every transmission, including each retransmission, carries a fresh tag: the slot index in
//!   the low [`SLOT_BITS`] bits and a send counter above them (bit 31 clear, as Linux does).
//!   A reply is accepted only if its tag is the slot's current one and it comes from the
//!   target's MAC and shelf.slot; late answers to an earlier transmission, duplicates and
//!   foreign frames are counted in [`EngineStats::stale`] and ignored.
//! * A frame with no answer is retransmitted after the retransmission timeout (RTO), which
//!   adapts to the measured round-trip time (Jacobson/Karels: SRTT + 4·RTTVAR, clamped to
//!   [`EngineConfig::min_rto`]..[`EngineConfig::max_rto`]) and
//!   doubles for each further retransmission of the same frame. A frame unanswered for
//!   [`EngineConfig::give_up`] fails the run with [`Error::NoAnswer`].
//! * No allocation per frame: slots and their frame buffers are allocated once, write data is
//!   copied straight from the workload into the slot's frame, read data is handed to the
//!   workload straight from the received frame.

use super::frame::{
    ATA_FLUSH_EXT, ATA_READ_EXT, ATA_WRITE_EXT, Address, AtaReply, Reply, set_tag, write_ata,
};
use super::{Error, Transport};
use aoe_core::wire::aoe::Command;
use aoe_core::wire::{ATA_DATA_OFFSET, ETHERNET_HEADER_LEN, EthernetAddress};
use std::time::Duration;

/// Low tag bits that hold the slot index.
pub const SLOT_BITS: u32 = 10;
/// The most frames the engine keeps outstanding.
pub const MAX_WINDOW: usize = 1 << SLOT_BITS;
const SLOT_MASK: u32 = (1 << SLOT_BITS) - 1;
/// Send-counter bits above the slot index; bit 31 stays clear.
const COUNTER_MASK: u32 = (1 << (31 - SLOT_BITS)) - 1;
/// Frames handed to [`Transport::send`] at once.
const SEND_BATCH: usize = 64;

/// What a frame asks the target to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// READ SECTORS EXT.
    Read,
    /// WRITE SECTORS EXT.
    Write,
    /// FLUSH CACHE EXT.
    Flush,
}

/// One frame's worth of work, as a workload hands it to the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IoRequest {
    /// Read, write or flush.
    pub op: Op,
    /// First sector.
    pub lba: u64,
    /// Sectors (1 to sectors per frame; 0 for a flush).
    pub sectors: u8,
    /// The workload's own reference, handed back on completion.
    pub cookie: u64,
}

/// A workload's answer to "what next?".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Send this frame.
    Issue(IoRequest),
    /// Nothing until an outstanding frame completes.
    Wait,
    /// Nothing more: the run ends when the outstanding frames complete.
    Done,
}

/// Work the engine runs: where frames come from and where their results go.
pub trait Workload {
    /// The next frame to send, at time `now`.
    fn next(&mut self, now: Duration) -> Next;

    /// Writes the data of write request `req` into `data` (exactly `req.sectors * 512` octets).
    fn fill(&mut self, req: &IoRequest, data: &mut [u8]);

    /// Takes the result of `req`: read data (`req.sectors * 512` octets, empty otherwise) and
    /// the time its reply arrived.
    ///
    /// # Errors
    /// To stop the run (for example when read data does not match).
    fn complete(&mut self, req: &IoRequest, data: &[u8], at: Duration) -> Result<(), Error>;
}

/// How the engine paces itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineConfig {
    /// Most frames outstanding (at most [`MAX_WINDOW`]).
    pub window: usize,
    /// Most sectors per frame (from the MTU and the target's limit).
    pub sectors_per_frame: u8,
    /// RTO before the first round-trip sample.
    pub initial_rto: Duration,
    /// Smallest RTO.
    pub min_rto: Duration,
    /// Largest RTO.
    pub max_rto: Duration,
    /// How long one frame may go unanswered before the run fails.
    pub give_up: Duration,
}

impl EngineConfig {
    /// Defaults for `window` frames of `sectors_per_frame`: RTO 200 ms at first, adaptive
    /// between 100 ms and 2 s; give up after 10 s.
    ///
    /// The 100 ms floor is far above a LAN round trip (about 0.2 ms on a veth pair) on purpose:
    /// a busy host stalls a target for tens of milliseconds now and then, and a retransmission
    /// then only adds load; a lost frame is rare on a LAN and costs one floor's wait.
    pub fn new(window: usize, sectors_per_frame: u8) -> EngineConfig {
        EngineConfig {
            window,
            sectors_per_frame,
            initial_rto: Duration::from_millis(200),
            min_rto: Duration::from_millis(100),
            max_rto: Duration::from_secs(2),
            give_up: Duration::from_secs(10),
        }
    }
}

/// What the engine counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EngineStats {
    /// Frames sent, retransmissions included.
    pub sent: u64,
    /// Retransmissions.
    pub retransmits: u64,
    /// Frames completed.
    pub completed: u64,
    /// Received frames ignored: stale or duplicate tags, other senders, not AoE.
    pub stale: u64,
    /// Sectors moved.
    pub sectors: u64,
}

/// Jacobson/Karels round-trip estimator.
#[derive(Debug, Clone, Copy)]
struct RttEstimator {
    srtt: Option<Duration>,
    rttvar: Duration,
    rto: Duration,
}

impl RttEstimator {
    fn sample(&mut self, rtt: Duration, config: &EngineConfig) {
        match self.srtt {
            None => {
                self.srtt = Some(rtt);
                self.rttvar = rtt / 2;
            }
            Some(srtt) => {
                let delta = srtt.abs_diff(rtt);
                self.rttvar = (self.rttvar * 3 + delta) / 4;
                self.srtt = Some((srtt * 7 + rtt) / 8);
            }
        }
        let srtt = self.srtt.unwrap_or(rtt);
        self.rto = (srtt + self.rttvar * 4).clamp(config.min_rto, config.max_rto);
    }
}

/// One outstanding-frame slot with its own frame buffer.
struct Slot {
    busy: bool,
    req: IoRequest,
    tag: u32,
    first_sent: Duration,
    sent_at: Duration,
    deadline: Duration,
    tries: u32,
    len: usize,
    frame: Box<[u8]>,
}

/// The I/O engine for one target. Reusable across runs; its RTT estimate carries over.
pub struct Engine {
    us: EthernetAddress,
    target: Address,
    config: EngineConfig,
    slots: Vec<Slot>,
    free: Vec<usize>,
    in_flight: usize,
    counter: u32,
    rtt: RttEstimator,
    to_send: Vec<usize>,
    stats: EngineStats,
}

impl Engine {
    /// An engine sending from `us` on a port of `mtu` to the target at `target`.
    ///
    /// # Errors
    /// When the window is 0 or above [`MAX_WINDOW`], the sectors per frame are 0, or a frame
    /// of that many sectors does not fit the MTU.
    pub fn new(
        us: EthernetAddress,
        mtu: usize,
        target: Address,
        config: EngineConfig,
    ) -> Result<Engine, Error> {
        if config.window == 0 || config.window > MAX_WINDOW {
            return Err(Error::Invalid(format!(
                "window of {} frames: must be 1 to {MAX_WINDOW}",
                config.window
            )));
        }
        let data = usize::from(config.sectors_per_frame) * aoe_core::SECTOR_SIZE;
        if data == 0 || ATA_DATA_OFFSET + data > mtu + ETHERNET_HEADER_LEN {
            return Err(Error::Invalid(format!(
                "{} sectors per frame do not fit MTU {mtu}",
                config.sectors_per_frame
            )));
        }
        let frame_len = ATA_DATA_OFFSET + data.max(aoe_core::wire::MIN_FRAME_LEN);
        let slots = (0..config.window)
            .map(|_| Slot {
                busy: false,
                req: IoRequest {
                    op: Op::Read,
                    lba: 0,
                    sectors: 0,
                    cookie: 0,
                },
                tag: 0,
                first_sent: Duration::ZERO,
                sent_at: Duration::ZERO,
                deadline: Duration::ZERO,
                tries: 0,
                len: 0,
                frame: vec![0u8; frame_len].into_boxed_slice(),
            })
            .collect();
        Ok(Engine {
            us,
            target,
            config,
            slots,
            free: (0..config.window).rev().collect(),
            in_flight: 0,
            counter: 0,
            rtt: RttEstimator {
                srtt: None,
                rttvar: Duration::ZERO,
                rto: config.initial_rto,
            },
            to_send: Vec::with_capacity(config.window),
            stats: EngineStats::default(),
        })
    }

    /// The counters so far (over every run).
    pub fn stats(&self) -> EngineStats {
        self.stats
    }

    /// The configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// The current retransmission timeout.
    pub fn rto(&self) -> Duration {
        self.rtt.rto
    }

    /// Frames outstanding now.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Runs `work` to its end: sends its frames, keeps the window full, retransmits, and hands
    /// every result back. On error, frames may still be outstanding; their late replies are
    /// ignored by the next run (their tags are no longer current).
    ///
    /// # Errors
    /// The first failure: the port, a frame unanswered for `give_up`, an AoE or ATA error
    /// reply, a malformed reply, or an error from the workload.
    pub fn run<L, W>(&mut self, link: &mut L, work: &mut W) -> Result<(), Error>
    where
        L: Transport + ?Sized,
        W: Workload + ?Sized,
    {
        let result = self.run_inner(link, work);
        if result.is_err() {
            self.abandon();
        }
        result
    }

    fn run_inner<L, W>(&mut self, link: &mut L, work: &mut W) -> Result<(), Error>
    where
        L: Transport + ?Sized,
        W: Workload + ?Sized,
    {
        let mut issuing = true;
        loop {
            let mut now = link.now();
            if self.in_flight > 0 && self.next_deadline() <= now {
                // A deadline passed while this process was not running (a busy host): take the
                // replies that arrived meanwhile before retransmitting anything, so a stall of
                // the initiator is not counted against the target.
                self.receive(link, Duration::ZERO, work)?;
                now = link.now();
            }
            while issuing && self.in_flight < self.config.window {
                match work.next(now) {
                    Next::Issue(req) => self.issue(req, now, work)?,
                    Next::Wait => break,
                    Next::Done => issuing = false,
                }
            }
            self.retransmit_due(now)?;
            self.send_queued(link)?;
            if self.in_flight == 0 {
                if !issuing {
                    return Ok(());
                }
                // The loop above stopped on `Wait` with an empty window: nothing would wake it.
                return Err(Error::Invalid(
                    "workload waits with nothing outstanding".to_string(),
                ));
            }
            let timeout = self.next_deadline().saturating_sub(now);
            self.receive(link, timeout, work)?;
        }
    }

    /// One receive call of up to `timeout`; hands each reply to [`Self::on_frame`].
    fn receive<L, W>(&mut self, link: &mut L, timeout: Duration, work: &mut W) -> Result<(), Error>
    where
        L: Transport + ?Sized,
        W: Workload + ?Sized,
    {
        let mut failure = None;
        link.recv(timeout, &mut |frame, at| {
            if failure.is_none()
                && let Err(err) = self.on_frame(frame, at, work)
            {
                failure = Some(err);
            }
        })?;
        failure.map_or(Ok(()), Err)
    }

    /// Forgets every outstanding frame (after an error), so the engine can run again.
    fn abandon(&mut self) {
        for (index, slot) in self.slots.iter_mut().enumerate() {
            if slot.busy {
                slot.busy = false;
                self.free.push(index);
            }
        }
        self.in_flight = 0;
        self.to_send.clear();
    }

    fn next_tag(&mut self, index: usize) -> u32 {
        self.counter = self.counter.wrapping_add(1) & COUNTER_MASK;
        // `index < MAX_WINDOW`, so it fits the slot bits.
        (self.counter << SLOT_BITS) | (u32::try_from(index).unwrap_or(0) & SLOT_MASK)
    }

    fn issue<W: Workload + ?Sized>(
        &mut self,
        req: IoRequest,
        now: Duration,
        work: &mut W,
    ) -> Result<(), Error> {
        let (command, sectors) = match req.op {
            Op::Read => (ATA_READ_EXT, req.sectors),
            Op::Write => (ATA_WRITE_EXT, req.sectors),
            Op::Flush => (ATA_FLUSH_EXT, 0),
        };
        if req.op != Op::Flush && (sectors == 0 || sectors > self.config.sectors_per_frame) {
            return Err(Error::Invalid(format!(
                "request of {sectors} sectors: must be 1 to {}",
                self.config.sectors_per_frame
            )));
        }
        let Some(index) = self.free.pop() else {
            return Err(Error::Invalid("no free slot".to_string()));
        };
        let tag = self.next_tag(index);
        let (us, target, rto) = (self.us, self.target, self.rtt.rto);
        let slot = &mut self.slots[index];
        slot.len = write_ata(&mut slot.frame, us, target, tag, command, req.lba, sectors);
        if req.op == Op::Write {
            let end = ATA_DATA_OFFSET + usize::from(sectors) * aoe_core::SECTOR_SIZE;
            work.fill(&req, &mut slot.frame[ATA_DATA_OFFSET..end]);
        }
        slot.busy = true;
        slot.req = req;
        slot.tag = tag;
        slot.first_sent = now;
        slot.sent_at = now;
        slot.deadline = now + rto;
        slot.tries = 0;
        self.in_flight += 1;
        self.to_send.push(index);
        Ok(())
    }

    fn retransmit_due(&mut self, now: Duration) -> Result<(), Error> {
        for index in 0..self.slots.len() {
            let slot = &self.slots[index];
            if !slot.busy || slot.deadline > now {
                continue;
            }
            if now.saturating_sub(slot.first_sent) >= self.config.give_up {
                let req = slot.req;
                return Err(Error::NoAnswer {
                    what: format!(
                        "{:?} of {} sectors at LBA {} (sent {} times)",
                        req.op,
                        req.sectors,
                        req.lba,
                        slot.tries + 1
                    ),
                    waited: self.config.give_up,
                });
            }
            let backoff = self.rtt.rto.saturating_mul(1 << slot.tries.min(6));
            let tag = self.next_tag(index);
            let rto = backoff.min(self.config.max_rto);
            let slot = &mut self.slots[index];
            slot.tries += 1;
            slot.tag = tag;
            slot.sent_at = now;
            slot.deadline = now + rto;
            set_tag(&mut slot.frame, tag);
            self.to_send.push(index);
            self.stats.retransmits += 1;
        }
        Ok(())
    }

    fn send_queued<L: Transport + ?Sized>(&mut self, link: &mut L) -> Result<(), Error> {
        let mut batch: [&[u8]; SEND_BATCH] = [&[]; SEND_BATCH];
        for chunk in self.to_send.chunks(SEND_BATCH) {
            for (out, &index) in batch.iter_mut().zip(chunk) {
                let slot = &self.slots[index];
                *out = &slot.frame[..slot.len];
            }
            link.send(&batch[..chunk.len()])?;
        }
        self.stats.sent += self.to_send.len() as u64;
        self.to_send.clear();
        Ok(())
    }

    fn next_deadline(&self) -> Duration {
        self.slots
            .iter()
            .filter(|slot| slot.busy)
            .map(|slot| slot.deadline)
            .min()
            .unwrap_or(Duration::ZERO)
    }

    fn on_frame<W: Workload + ?Sized>(
        &mut self,
        frame: &[u8],
        at: Duration,
        work: &mut W,
    ) -> Result<(), Error> {
        let Some(reply) = Reply::parse(frame, self.us) else {
            self.stats.stale += 1;
            return Ok(());
        };
        let index = (reply.header.tag & SLOT_MASK) as usize;
        let current = self.slots.get(index).is_some_and(|slot| {
            slot.busy && reply.answers(self.target, Command::IssueAta, slot.tag)
        });
        if !current {
            self.stats.stale += 1;
            return Ok(());
        }
        let slot = &self.slots[index];
        let req = slot.req;
        let command = match req.op {
            Op::Read => ATA_READ_EXT,
            Op::Write => ATA_WRITE_EXT,
            Op::Flush => ATA_FLUSH_EXT,
        };
        if let Some(code) = reply.aoe_error() {
            return Err(Error::Aoe {
                command: Command::IssueAta,
                code,
            });
        }
        let Some(ata) = AtaReply::parse(reply.arg) else {
            return Err(Error::BadReply(
                "ATA reply shorter than its registers".to_string(),
            ));
        };
        if ata.failed() {
            return Err(Error::Ata {
                command,
                lba: req.lba,
                status: ata.status,
                error: ata.error,
            });
        }
        let data_len = match req.op {
            Op::Read => usize::from(req.sectors) * aoe_core::SECTOR_SIZE,
            _ => 0,
        };
        let Some(data) = ata.data.get(..data_len) else {
            return Err(Error::BadReply(format!(
                "read of {} sectors at LBA {} returned {} data octets",
                req.sectors,
                req.lba,
                ata.data.len()
            )));
        };
        self.rtt
            .sample(at.saturating_sub(slot.sent_at), &self.config);
        self.slots[index].busy = false;
        self.free.push(index);
        self.in_flight -= 1;
        self.stats.completed += 1;
        self.stats.sectors += u64::from(req.sectors);
        work.complete(&req, data, at)
    }
}
