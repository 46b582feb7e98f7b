//! The AoE target: one export (shelf.slot, a [`Disk`], its state) answering frames.
//!
//! Guarantees, for any byte sequence handed to [`Target::accept`]:
//!
//! * **No panic**, and no disk access outside `0..sector_count`: every LBA and sector count is
//!   checked against the capacity before a [`DiskIo`] is planned, with overflow-free arithmetic.
//! * **Silence or the spec's answer.** Frames that are not AoE, not addressed to this export
//!   (shelf/slot with independent wildcards, destination MAC), from a multicast or all-zero
//!   source or from ourselves, responses (R set), shorter than their command's fixed header, or from a MAC
//!   outside a non-empty mask list get no reply. Everything else gets exactly one reply.
//! * **Replies** go to the requester's MAC from the port's MAC, carry R, version 1, this
//!   export's shelf/slot, and the request's Command and Tag unchanged. Every reply is at least
//!   60 octets, every octet of it written by the target (padding is zero, never request
//!   leftovers), and it never exceeds the port's MTU or the configured frame buffer.
//! * **Per-I/O failures are ATA status, never AoE errors**: an out-of-range request gets
//!   DRDY|ERR with IDNF, a disk failure DRDY|ERR with ABRT. (The Linux initiator drops replies
//!   with the AoE E flag and retransmits for 180 s.)
//! * A WRITE is acknowledged only after [`Disk::write`] returned `Ok`, a FLUSH CACHE only after
//!   [`Disk::flush`] did.
//!
//! # Two ways in, one engine
//!
//! Processing a frame has two halves: [`Target::accept`] parses and validates it, applies
//! control commands (config string, mask, reservations) and returns a [`Plan`] that knows the
//! reply's length, the disk operation, if any, and everything of the request the reply repeats
//! (addresses, Command, Tag, ATA registers). [`Target::complete`] then writes the reply over
//! the request, in the same buffer, once the disk operation has run; it never parses the
//! request again. Between the two, the disk work is described by [`Plan::io`]: an LBA, a
//! sector count and the frame range where the data lives.
//!
//! * A **microcontroller** calls [`Target::handle`] (or [`Target::poll`] /
//!   [`Target::poll_with`] with a `smoltcp::phy::Device`), which runs the disk operation
//!   through the target's own blocking [`Disk`] and completes the reply into the transmit
//!   buffer ([`Target::complete_into`]), one frame at a time.
//! * A **host fast path** accepts a batch of frames, runs their [`DiskIo`]s however it likes
//!   (vectored or asynchronous I/O straight into the frame buffers), and completes each in
//!   place. READ data lands directly in the reply at [`DiskIo::data_range`]; WRITE data is
//!   taken directly from the request at the same range. The core never copies sector data.
//!
//! A platform that serves several exports routes a frame with
//! [`wire::aoe_header`](crate::wire::aoe_header) and
//! [`Config::answers`], the rule `accept` applies.
//!
//! A plan for a control command must be completed before the next `accept`, because the reply
//! shows the state as that command left it; a stale control plan completes to `None` (no
//! reply, and the initiator retries). Plans for ATA commands have no such limit.
//!
//! # Layout
//!
//! This file holds [`Target`] and its public API. The work is split by phase: `config`
//! ([`Config`], [`Port`]), `plan` (what `accept` decides: [`Plan`], [`DiskIo`]), `decide`
//! (every check and the control commands' state changes), `disk` (the blocking path's disk
//! I/O), `emit` (the reply and the announcement) and `state` (config string, mask and reserve
//! lists).

mod config;
mod decide;
mod disk;
mod emit;
mod plan;
mod state;

pub use config::{
    Config, ConfigError, DEFAULT_BUFFER_COUNT, DEFAULT_FIRMWARE_VERSION, Pinned, Port,
    STANDARD_FRAME_LEN,
};
pub use plan::{DiskIo, IoOp, Plan};
pub use state::{MASK_CAPACITY, RESERVE_CAPACITY, StateError};

use crate::disk::{Disk, ErrorKind, SECTOR_SIZE};
use crate::wire::aoe::{self, Command};
use crate::wire::ata;
use crate::wire::cfg::{self, ConfigCommand};
use crate::wire::{AOE_ARG_OFFSET, ATA_DATA_OFFSET, EthernetAddress, MIN_FRAME_LEN};
use emit::Header;
use state::ExportState;

/// Octets the MTU must leave for the headers before data, as every AoE implementation computes
/// sectors per frame: `(MTU − 36) / 512`.
const SECTOR_OVERHEAD: usize = ATA_DATA_OFFSET;

/// Counters of what the target did. They wrap on overflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Stats {
    /// Frames handed to [`Target::accept`].
    pub frames: u64,
    /// Frames that got no reply.
    pub dropped: u64,
    /// Replies completed.
    pub replies: u64,
    /// Replies with the AoE error flag.
    pub aoe_errors: u64,
    /// ATA replies with ERR in the status.
    pub ata_errors: u64,
    /// Disk operations that failed.
    pub disk_errors: u64,
    /// Sectors read from the disk into replies.
    pub sectors_read: u64,
    /// Sectors written to the disk.
    pub sectors_written: u64,
    /// Flushes that succeeded.
    pub flushes: u64,
}

/// One AoE export: shelf.slot, a disk, and the export's state.
#[derive(Debug)]
pub struct Target<D> {
    disk: D,
    config: Config,
    sectors: u64,
    state: ExportState,
    stats: Stats,
}

impl<D: Disk> Target<D> {
    /// Makes an export of `disk`. The capacity is read once; disks larger than 2^48 sectors
    /// are exported as their first 2^48 − 1 sectors.
    ///
    /// # Errors
    /// When the configuration would make an export no initiator can use.
    pub fn new(config: Config, disk: D) -> Result<Target<D>, ConfigError> {
        if config.shelf == aoe::BROADCAST_MAJOR || config.shelf == 0x0FFF {
            return Err(ConfigError::ReservedShelf(config.shelf));
        }
        if config.slot == aoe::BROADCAST_MINOR {
            return Err(ConfigError::ReservedSlot);
        }
        if config.buffer_count < 2 {
            return Err(ConfigError::BufferCountTooSmall(config.buffer_count));
        }
        if config.max_frame_len < SECTOR_OVERHEAD + SECTOR_SIZE {
            return Err(ConfigError::FrameBufferTooSmall(config.max_frame_len));
        }
        let sectors = disk.sector_count().min(ata::LBA48_LIMIT - 1);
        if sectors == 0 {
            return Err(ConfigError::EmptyDisk);
        }
        info!(
            "export e{}.{}: {} sectors, buffer count {}",
            config.shelf, config.slot, sectors, config.buffer_count
        );
        Ok(Target {
            disk,
            config,
            sectors,
            state: ExportState::default(),
            stats: Stats::default(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Exported sectors.
    pub fn sector_count(&self) -> u64 {
        self.sectors
    }

    /// The disk.
    pub fn disk(&self) -> &D {
        &self.disk
    }

    /// The disk, mutable (for a host fast path that runs [`DiskIo`]s itself).
    pub fn disk_mut(&mut self) -> &mut D {
        &mut self.disk
    }

    /// Returns the disk.
    pub fn into_disk(self) -> D {
        self.disk
    }

    /// The counters so far.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Sectors per ATA request on `port`: `(MTU − 36) / 512`, bounded by the frame buffer and
    /// by 255 (the Sector Count field is one octet). Zero if the MTU cannot carry a sector.
    pub fn sectors_per_frame(&self, port: &Port) -> u8 {
        let by_mtu = port.mtu.saturating_sub(SECTOR_OVERHEAD) / SECTOR_SIZE;
        let by_buffer = self.config.max_frame_len.saturating_sub(SECTOR_OVERHEAD) / SECTOR_SIZE;
        u8::try_from(by_mtu.min(by_buffer)).unwrap_or(u8::MAX)
    }

    /// The config string.
    pub fn config_string(&self) -> &[u8] {
        &self.state.config_string
    }

    /// Sets the config string (for restoring persisted state).
    ///
    /// # Errors
    /// When it is longer than 1024 octets.
    pub fn set_config_string(&mut self, string: &[u8]) -> Result<(), StateError> {
        self.state.set_config_string(string)
    }

    /// The MAC mask list. While it is not empty, frames from other MACs are ignored.
    pub fn mask(&self) -> &[EthernetAddress] {
        &self.state.mask
    }

    /// Adds a MAC to the mask list (vblade `-m`).
    ///
    /// # Errors
    /// When the list is full.
    pub fn mask_add(&mut self, mac: EthernetAddress) -> Result<(), StateError> {
        self.state.mask_add(mac)
    }

    /// Removes a MAC from the mask list; true if it was there.
    pub fn mask_remove(&mut self, mac: &EthernetAddress) -> bool {
        self.state.mask_remove(mac)
    }

    /// The reserve list. While it is not empty, ATA commands other than IDENTIFY from other
    /// MACs get AoE error 6.
    pub fn reservations(&self) -> &[EthernetAddress] {
        &self.state.reservations
    }

    /// Replaces the reserve list (for restoring persisted state); an empty list releases.
    ///
    /// # Errors
    /// When more than [`RESERVE_CAPACITY`] distinct addresses are given.
    pub fn set_reservations(&mut self, macs: &[EthernetAddress]) -> Result<(), StateError> {
        self.state.set_reservations(macs.iter().copied())
    }

    /// A counter that changes whenever the config string, mask or reserve list changes, so that
    /// a platform can persist them.
    pub fn generation(&self) -> u32 {
        self.state.generation
    }

    /// Decides what to do with a received frame (Ethernet header included). `None` means no
    /// reply. Control commands take effect here.
    pub fn accept(&mut self, port: &Port, rx: &[u8]) -> Option<Plan> {
        self.stats.frames = self.stats.frames.wrapping_add(1);
        let plan = self.decide(port, rx);
        if plan.is_none() {
            self.stats.dropped = self.stats.dropped.wrapping_add(1);
        }
        plan
    }

    /// Completes `plan` in place: `frame` holds the request the plan was made from on entry
    /// and the reply on return, whose length is returned. The plan's [`DiskIo`] (if any) has
    /// run with result `io`; for a READ its data is already at [`DiskIo::data_range`] of this
    /// same buffer (over whatever the request carried there). A host receives a frame into a
    /// buffer, runs the I/O in it and sends the reply from it, without a copy.
    ///
    /// `frame` is the whole buffer, at least [`Plan::reply_len`] octets, not just the octets
    /// received. Every octet of the reply is written by the target (padding to 60 is zero);
    /// the only request octets it keeps are the ones the reply echoes at the same offsets (the
    /// directives applied before a failed MAC mask edit).
    ///
    /// Returns `None`, writing nothing, if `frame` is shorter than [`Plan::reply_len`], does
    /// not carry the source MAC and tag of the request the plan was made from, or a control
    /// plan went stale (see the module docs).
    pub fn complete(
        &mut self,
        plan: &Plan,
        io: Result<(), ErrorKind>,
        frame: &mut [u8],
    ) -> Option<usize> {
        if !self.may_complete(plan, frame, frame.len()) {
            return None;
        }
        self.emit_padded(plan, io, frame)
    }

    /// Completes `plan` into a separate transmit buffer: like [`complete`](Self::complete),
    /// with the request in `rx` and the reply written to `tx` (at least [`Plan::reply_len`]
    /// octets). For a READ the data is already at [`DiskIo::data_range`] of `tx`.
    ///
    /// Returns `None`, writing nothing, if `tx` is too short, `rx` does not carry the source MAC
    /// and tag of the request the plan was made from (or lacks the octets the reply echoes),
    /// or a control plan went stale.
    pub fn complete_into(
        &mut self,
        plan: &Plan,
        io: Result<(), ErrorKind>,
        rx: &[u8],
        tx: &mut [u8],
    ) -> Option<usize> {
        let echoed = match plan.echoed_request_range() {
            Some(range) => Some((rx.get(range.clone())?, range)),
            None => None,
        };
        if !self.may_complete(plan, rx, tx.len()) {
            return None;
        }
        // Put what the in-place path keeps of the request where it expects it.
        if let Some((octets, range)) = echoed {
            tx[range].copy_from_slice(octets);
        }
        self.emit_padded(plan, io, tx)
    }

    /// True if `plan` may be completed from `request` into a buffer of `buffer_len` octets;
    /// counts a stale control plan as dropped.
    fn may_complete(&mut self, plan: &Plan, request: &[u8], buffer_len: usize) -> bool {
        if buffer_len < plan.reply_len || !plan.made_from(request) {
            return false;
        }
        if plan.is_control() && plan.generation != self.state.generation {
            debug!("stale control plan: dropped");
            self.stats.dropped = self.stats.dropped.wrapping_add(1);
            return false;
        }
        true
    }

    /// Emits the reply into `frame` (checked to hold [`Plan::reply_len`] octets) and zeroes
    /// its padding.
    fn emit_padded(
        &mut self,
        plan: &Plan,
        io: Result<(), ErrorKind>,
        frame: &mut [u8],
    ) -> Option<usize> {
        let written = self.emit_reply(plan, io, frame)?;
        let len = written.max(MIN_FRAME_LEN);
        frame[written..len].fill(0);
        self.stats.replies = self.stats.replies.wrapping_add(1);
        Some(len)
    }

    /// Runs the plan's disk operation through the target's own [`Disk`] (a READ straight into
    /// `tx`, a WRITE straight from `rx`), then [`complete_into`](Self::complete_into)s the
    /// reply in `tx`.
    pub fn respond(&mut self, plan: &Plan, rx: &[u8], tx: &mut [u8]) -> Option<usize> {
        let io = match plan.io() {
            Some(io) => self.run_io(&io, rx, tx)?,
            None => Ok(()),
        };
        self.complete_into(plan, io, rx, tx)
    }

    /// Handles one frame start to finish: [`accept`](Self::accept), then
    /// [`respond`](Self::respond). Returns the reply's length in `tx`, or `None` for silence.
    pub fn handle(&mut self, port: &Port, rx: &[u8], tx: &mut [u8]) -> Option<usize> {
        let plan = self.accept(port, rx)?;
        self.respond(&plan, rx, tx)
    }

    /// Receives at most one frame from a smoltcp device and transmits the reply, if any.
    /// Returns true if a frame was received. The same as [`poll_with`](Self::poll_with) with
    /// a step that always lets the reply go.
    pub fn poll<P: smoltcp::phy::Device>(
        &mut self,
        port: &Port,
        device: &mut P,
        now: smoltcp::time::Instant,
    ) -> bool {
        self.poll_with(port, device, now, |_| true)
    }

    /// Receives at most one frame from a smoltcp device and transmits the reply, if any, with
    /// a platform step between deciding and replying. Returns true if a frame was received.
    ///
    /// `before_reply` runs once for every frame that gets a reply, after
    /// [`accept`](Self::accept) applied it (so a control command's state change is visible,
    /// and [`generation`](Self::generation) has moved) and before the disk I/O and the reply.
    /// It is where a platform saves state that must be durable before the initiator hears of
    /// it. When it returns false the reply is withheld (no disk I/O, nothing transmitted): the
    /// initiator retries. It must not change the export's state, or a control command's reply
    /// goes stale and a zeroed frame leaves in its place.
    pub fn poll_with<P: smoltcp::phy::Device>(
        &mut self,
        port: &Port,
        device: &mut P,
        now: smoltcp::time::Instant,
        mut before_reply: impl FnMut(&mut Target<D>) -> bool,
    ) -> bool {
        use smoltcp::phy::{RxToken, TxToken};
        let Some((rx_token, tx_token)) = device.receive(now) else {
            return false;
        };
        rx_token.consume(|frame| {
            let Some(plan) = self.accept(port, frame) else {
                return;
            };
            if !before_reply(self) {
                return;
            }
            tx_token.consume(plan.reply_len(), |buf| {
                // `respond` cannot refuse here: the buffer is exactly `reply_len` long and
                // nothing that changes the state ran between accept and respond. Zero whatever
                // it did not write.
                let len = self.respond(&plan, frame, buf).unwrap_or(0);
                buf[len..].fill(0);
            });
        });
        true
    }

    /// Octets of the start-up announcement (an unsolicited Query Config reply).
    pub fn announcement_len(&self) -> usize {
        (AOE_ARG_OFFSET + cfg::HEADER_LEN + self.state.config_string.len()).max(MIN_FRAME_LEN)
    }

    /// Where to send the announcement: the broadcast address, or each MAC of a non-empty mask
    /// list.
    pub fn announcement_destinations(&self) -> impl Iterator<Item = EthernetAddress> + '_ {
        let broadcast = self
            .state
            .mask
            .is_empty()
            .then_some(EthernetAddress::BROADCAST);
        broadcast.into_iter().chain(self.state.mask.iter().copied())
    }

    /// Writes the announcement to `destination` from `port` into `tx`: a Query Config reply
    /// with tag 0 and version 1. Returns its length, or `None` if `tx` is too short or the
    /// port's MTU cannot carry one sector.
    pub fn announce(
        &self,
        port: &Port,
        destination: EthernetAddress,
        tx: &mut [u8],
    ) -> Option<usize> {
        let len = self.announcement_len();
        if tx.len() < len || !self.can_announce(port) {
            return None;
        }
        let header = Header {
            destination,
            source: port.mac,
            command: Command::QueryConfig.into(),
            tag: 0,
            error: None,
        };
        self.emit_header(tx, &header);
        let written = self.emit_config_arg(
            self.sectors_per_frame(port),
            ConfigCommand::Read,
            &mut tx[AOE_ARG_OFFSET..],
        );
        tx[written..len].fill(0);
        Some(len)
    }

    /// Sends the announcement on a smoltcp device to every destination. Returns how many were
    /// handed to the device.
    pub fn announce_on<P: smoltcp::phy::Device>(
        &self,
        port: &Port,
        device: &mut P,
        now: smoltcp::time::Instant,
    ) -> usize {
        use smoltcp::phy::TxToken;
        if !self.can_announce(port) {
            return 0;
        }
        let mut sent = 0;
        for destination in self.announcement_destinations() {
            let Some(token) = device.transmit(now) else {
                break;
            };
            token.consume(self.announcement_len(), |buf| {
                let len = self.announce(port, destination, buf).unwrap_or(0);
                buf[len..].fill(0);
            });
            sent += 1;
        }
        sent
    }

    /// True if `port` can carry the announcement and at least one sector per frame.
    fn can_announce(&self, port: &Port) -> bool {
        self.announcement_len() <= port.max_frame_len() && self.sectors_per_frame(port) > 0
    }
}
