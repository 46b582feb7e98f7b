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
//! reply's length and the disk operation, if any. [`Target::complete`] then writes the reply
//! once the disk operation has run. Between the two, the disk work is described by
//! [`Plan::io`]: an LBA, a sector count and the frame range where the data lives.
//!
//! * A **microcontroller** calls [`Target::handle`] (or [`Target::poll`] with a
//!   `smoltcp::phy::Device`), which runs the disk operation through the target's own blocking
//!   [`Disk`] and completes the reply, one frame at a time.
//! * A **host fast path** accepts a batch of frames, runs their [`DiskIo`]s however it likes
//!   (vectored or asynchronous I/O straight into the reply buffers), and completes each. READ
//!   data lands directly in the reply frame at [`DiskIo::data_range`]; WRITE data is taken
//!   directly from the request frame at the same range. The core never copies sector data.
//!
//! A plan for a control command must be completed before the next `accept`, because the reply
//! shows the state as that command left it; a stale control plan completes to `None` (no
//! reply, and the initiator retries). Plans for ATA commands have no such limit.

mod state;

pub use state::{MASK_CAPACITY, RESERVE_CAPACITY, StateError};

use crate::disk::{Disk, Error as _, ErrorKind, SECTOR_SIZE, range_fits};
use crate::identify::{IDENTIFY_LEN, Identity, identify_data};
use crate::wire::aoe::{self, Command, ErrorCode};
use crate::wire::ata::{self, AtaCommand, error as ata_error, status};
use crate::wire::cfg::{self, ConfigCommand};
use crate::wire::mask::{self, DirectiveCommand, MaskCommand, MaskError};
use crate::wire::reserve::{self, ReserveCommand};
use crate::wire::{
    AOE_ARG_OFFSET, ATA_DATA_OFFSET, ETHERNET_HEADER_LEN, ETHERTYPE_AOE, EthernetAddress,
    EthernetFrame, MIN_FRAME_LEN,
};
use core::fmt;
use core::ops::Range;
use state::ExportState;

/// Buffer Count advertised unless configured: vblade's default.
pub const DEFAULT_BUFFER_COUNT: u16 = 16;

/// Firmware Version advertised in Query Config replies unless configured.
pub const DEFAULT_FIRMWARE_VERSION: u16 = 0x0001;

/// The largest frame a standard 1500-octet MTU carries, Ethernet header included.
pub const STANDARD_FRAME_LEN: usize = 1514;

/// Octets the MTU must leave for the headers before data, as every AoE implementation computes
/// sectors per frame: `(MTU − 36) / 512`.
const SECTOR_OVERHEAD: usize = ATA_DATA_OFFSET;

/// SMART sub-commands (Features register) the target answers.
const SMART_RETURN_STATUS: u8 = 0xDA;
const SMART_ENABLE_OPERATIONS: u8 = 0xD8;
/// LBA mid/high signature every SMART command carries, and a healthy RETURN STATUS echoes.
const SMART_SIGNATURE: [u8; 2] = [0x4F, 0xC2];

/// How an export presents itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Config {
    /// Shelf (Major) address; 0xFFFF and 0x0FFF are refused (the Linux initiator rejects them).
    pub shelf: u16,
    /// Slot (Minor) address; 0xFF is refused.
    pub slot: u8,
    /// Buffer Count advertised: frames the platform queues without dropping. At least 2, or the
    /// Linux initiator never uses the device.
    pub buffer_count: u16,
    /// Firmware Version advertised.
    pub firmware_version: u16,
    /// The largest frame (Ethernet header included, FCS excluded) the platform's buffers hold.
    /// It bounds sectors per frame along with each port's MTU. At least 548 (one sector).
    pub max_frame_len: usize,
    /// Strings reported by IDENTIFY DEVICE.
    pub identity: Identity,
}

impl Config {
    /// The defaults for export `shelf.slot`: Buffer Count 16, standard 1514-octet frames.
    ///
    /// The frame limit suits a microcontroller's standard Ethernet buffers. A platform with
    /// bigger buffers must raise [`max_frame_len`](Self::max_frame_len) (to 9014 for jumbo
    /// frames), or a port with MTU 9000 still gets 2 sectors per frame.
    pub fn new(shelf: u16, slot: u8) -> Config {
        Config {
            shelf,
            slot,
            buffer_count: DEFAULT_BUFFER_COUNT,
            firmware_version: DEFAULT_FIRMWARE_VERSION,
            max_frame_len: STANDARD_FRAME_LEN,
            identity: Identity::default_for(shelf, slot),
        }
    }
}

/// Why a [`Target`] could not be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ConfigError {
    /// Shelf 0xFFFF is the broadcast address and 0x0FFF is refused by Linux: pick another.
    ReservedShelf(u16),
    /// Slot 0xFF is the broadcast address: pick another.
    ReservedSlot,
    /// A Buffer Count below 2 leaves the device unusable by the Linux initiator.
    BufferCountTooSmall(u16),
    /// The frame buffer cannot hold one sector (548 octets).
    FrameBufferTooSmall(usize),
    /// The disk has no sectors.
    EmptyDisk,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::ReservedShelf(shelf) => write!(
                f,
                "shelf {shelf} is reserved (65535 is broadcast, 4095 is refused by Linux)"
            ),
            ConfigError::ReservedSlot => f.write_str("slot 255 is the broadcast slot"),
            ConfigError::BufferCountTooSmall(count) => write!(
                f,
                "buffer count {count} is below 2; the Linux initiator needs at least 2"
            ),
            ConfigError::FrameBufferTooSmall(len) => write!(
                f,
                "frame buffer of {len} bytes cannot hold one sector (needs {})",
                SECTOR_OVERHEAD + SECTOR_SIZE
            ),
            ConfigError::EmptyDisk => f.write_str("the disk has no 512-byte sectors"),
        }
    }
}

impl core::error::Error for ConfigError {}

/// The Ethernet port a frame arrived on: its MAC (the reply's source) and its MTU (which
/// bounds sectors per frame). Pass the current MTU each time; it may change at run time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Port {
    /// The port's MAC address.
    pub mac: EthernetAddress,
    /// The port's MTU (Ethernet payload octets; 1500 for standard Ethernet).
    pub mtu: usize,
}

impl Port {
    /// A port with this MAC and MTU.
    pub const fn new(mac: EthernetAddress, mtu: usize) -> Port {
        Port { mac, mtu }
    }

    /// The longest frame this port can send, Ethernet header included.
    pub fn max_frame_len(&self) -> usize {
        self.mtu.saturating_add(ETHERNET_HEADER_LEN)
    }
}

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

/// A disk operation a frame needs: what a host fast path runs itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct DiskIo {
    /// Read, write or flush.
    pub op: IoOp,
    /// First sector (0 for a flush). `lba + sectors` is within the disk.
    pub lba: u64,
    /// Sectors to transfer (0 for a flush, 1 to 255 otherwise).
    pub sectors: u8,
}

/// The kind of a [`DiskIo`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum IoOp {
    /// Read sectors into the reply frame at [`DiskIo::data_range`].
    Read,
    /// Write sectors from the request frame at [`DiskIo::data_range`].
    Write,
    /// Make every accepted write durable.
    Flush,
}

impl DiskIo {
    /// Octets transferred.
    pub fn byte_len(&self) -> usize {
        usize::from(self.sectors) * SECTOR_SIZE
    }

    /// Offset of the first octet on the disk.
    pub fn byte_offset(&self) -> u64 {
        self.lba * SECTOR_SIZE as u64
    }

    /// Where the data lives in the frame: in the reply for a read, in the request for a write.
    pub fn data_range(&self) -> Range<usize> {
        ATA_DATA_OFFSET..ATA_DATA_OFFSET + self.byte_len()
    }
}

/// What a reply will say, decided by [`Target::accept`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
enum Action {
    /// A header-only reply with the E flag.
    AoeError(ErrorCode),
    /// The config string, with error 4 when a conditional set found another string.
    Config {
        command: ConfigCommand,
        string_present: bool,
    },
    /// The mask list, or on an edit error the directives applied before the failing one.
    Mask {
        command: MaskCommand,
        error: MaskError,
        applied: u8,
    },
    /// The reserve list, with error 6 when a conditional set was refused.
    Reserve {
        command: ReserveCommand,
        refused: bool,
    },
    /// ATA registers only.
    AtaStatus(AtaOutcome),
    /// IDENTIFY DEVICE data.
    Identify,
    /// A disk operation, then the ATA status from its result.
    AtaIo(DiskIo),
}

/// The ATA registers a reply sets; AFlags and the LBA are echoed from the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
struct AtaOutcome {
    status: u8,
    error: u8,
    sector_count: u8,
}

impl AtaOutcome {
    /// Success: DRDY, no error, no sectors remaining.
    const DONE: AtaOutcome = AtaOutcome {
        status: status::DRDY,
        error: 0,
        sector_count: 0,
    };

    /// Failure with `error` bits; Sector Count keeps the request's value (nothing moved).
    fn failed(error: u8, sector_count: u8) -> AtaOutcome {
        AtaOutcome {
            status: status::DRDY | status::ERR,
            error,
            sector_count,
        }
    }

    fn is_error(&self) -> bool {
        self.status & status::ERR != 0
    }
}

/// The decision for one accepted frame: the reply's length and the disk work it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[must_use = "a plan does nothing until it is completed"]
pub struct Plan {
    action: Action,
    reply_len: usize,
    requester: EthernetAddress,
    tag: u32,
    local_mac: EthernetAddress,
    sectors_per_frame: u8,
    generation: u32,
}

impl Plan {
    /// Octets of the reply, at most; the transmit buffer must hold this many. A failed read
    /// completes to a shorter (60-octet) reply.
    pub fn reply_len(&self) -> usize {
        self.reply_len
    }

    /// The disk operation this frame needs before its reply can be completed, if any.
    pub fn io(&self) -> Option<DiskIo> {
        match self.action {
            Action::AtaIo(io) => Some(io),
            _ => None,
        }
    }

    /// True if `rx` carries the source MAC and tag of the request this plan was made from.
    fn made_from(&self, rx: &[u8]) -> bool {
        rx.get(6..12) == Some(&self.requester.0[..])
            && rx.get(ETHERNET_HEADER_LEN + 6..AOE_ARG_OFFSET) == Some(&self.tag.to_be_bytes()[..])
    }

    fn is_control(&self) -> bool {
        matches!(
            self.action,
            Action::Config { .. } | Action::Mask { .. } | Action::Reserve { .. }
        )
    }
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

    /// Writes the reply for `plan` into `tx` and returns its length, once the plan's
    /// [`DiskIo`] (if any) has run with result `io`. For a read, the caller has already put the
    /// data at [`DiskIo::data_range`] of `tx`; `rx` is the request the plan came from.
    ///
    /// Returns `None`, writing nothing, if `tx` is shorter than [`Plan::reply_len`], `rx` does
    /// not carry the source MAC and tag of the request the plan was made from, or a control
    /// plan went stale (see the module docs).
    pub fn complete(
        &mut self,
        plan: &Plan,
        io: Result<(), ErrorKind>,
        rx: &[u8],
        tx: &mut [u8],
    ) -> Option<usize> {
        if tx.len() < plan.reply_len || !plan.made_from(rx) {
            return None;
        }
        if plan.is_control() && plan.generation != self.state.generation {
            debug!("stale control plan: dropped");
            self.stats.dropped = self.stats.dropped.wrapping_add(1);
            return None;
        }
        let written = self.emit_reply(plan, io, rx, tx)?;
        let len = written.max(MIN_FRAME_LEN);
        tx[written..len].fill(0);
        self.stats.replies = self.stats.replies.wrapping_add(1);
        Some(len)
    }

    /// Runs the plan's disk operation through the target's own [`Disk`], then
    /// [`complete`](Self::complete)s the reply.
    pub fn respond(&mut self, plan: &Plan, rx: &[u8], tx: &mut [u8]) -> Option<usize> {
        let io = match plan.io() {
            Some(io) => self.run_io(&io, rx, tx)?,
            None => Ok(()),
        };
        self.complete(plan, io, rx, tx)
    }

    /// Handles one frame start to finish: [`accept`](Self::accept), then
    /// [`respond`](Self::respond). Returns the reply's length in `tx`, or `None` for silence.
    pub fn handle(&mut self, port: &Port, rx: &[u8], tx: &mut [u8]) -> Option<usize> {
        let plan = self.accept(port, rx)?;
        self.respond(&plan, rx, tx)
    }

    /// Receives at most one frame from a smoltcp device and transmits the reply, if any.
    /// Returns true if a frame was received.
    pub fn poll<P: smoltcp::phy::Device>(
        &mut self,
        port: &Port,
        device: &mut P,
        now: smoltcp::time::Instant,
    ) -> bool {
        use smoltcp::phy::{RxToken, TxToken};
        let Some((rx_token, tx_token)) = device.receive(now) else {
            return false;
        };
        rx_token.consume(|frame| {
            if let Some(plan) = self.accept(port, frame) {
                tx_token.consume(plan.reply_len(), |buf| {
                    // `respond` cannot refuse here: the buffer is exactly `reply_len` long and
                    // nothing ran between accept and respond. Zero whatever it did not write.
                    let len = self.respond(&plan, frame, buf).unwrap_or(0);
                    buf[len..].fill(0);
                });
            }
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
        self.emit_header(
            tx,
            destination,
            port.mac,
            Command::QueryConfig.into(),
            [0; 4],
            None,
        );
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

    // ----- deciding -------------------------------------------------------------------------

    fn decide(&mut self, port: &Port, rx: &[u8]) -> Option<Plan> {
        let frame = EthernetFrame::new_checked(rx).ok()?;
        if u16::from(frame.ethertype()) != ETHERTYPE_AOE {
            return None;
        }
        let destination = frame.dst_addr();
        let source = frame.src_addr();
        if destination != port.mac && !destination.is_broadcast() {
            trace!("drop: for another MAC");
            return None;
        }
        if !source.is_unicast() || source == port.mac || source.0 == [0; 6] {
            debug!("drop: source MAC is multicast, zero or our own");
            return None;
        }
        let header = aoe::Packet::new_checked(&rx[ETHERNET_HEADER_LEN..]).ok()?;
        if header.is_response() {
            trace!("drop: a response");
            return None;
        }
        let shelf_matches =
            header.major() == self.config.shelf || header.major() == aoe::BROADCAST_MAJOR;
        let slot_matches =
            header.minor() == self.config.slot || header.minor() == aoe::BROADCAST_MINOR;
        if !shelf_matches || !slot_matches {
            trace!("drop: for e{}.{}", header.major(), header.minor());
            return None;
        }
        if !self.state.mask_allows(&source) {
            debug!("drop: source not on the MAC mask list");
            return None;
        }
        trace!("rx: tag {:x} command {:?}", header.tag(), header.command());

        let sectors_per_frame = self.sectors_per_frame(port);
        let arg = header.arg();
        let action = if header.version() != aoe::VERSION {
            Action::AoeError(ErrorCode::UnsupportedVersion)
        } else {
            match header.command() {
                Command::IssueAta => self.decide_ata(&source, sectors_per_frame, arg)?,
                // A Sector Count of 0 would read as 2 to an initiator (AoE r11 §3.2): a port
                // that cannot carry one sector stays silent to discovery instead.
                Command::QueryConfig if sectors_per_frame == 0 => {
                    debug!("drop: port MTU {} carries no sector", port.mtu);
                    return None;
                }
                Command::QueryConfig => {
                    let frame_limit = port.max_frame_len().min(self.config.max_frame_len);
                    self.decide_config(arg, frame_limit)?
                }
                Command::MacMaskList => self.decide_mask(arg)?,
                Command::ReserveRelease => self.decide_reserve(&source, arg)?,
                Command::Unknown(_) => Action::AoeError(ErrorCode::UnrecognizedCommand),
            }
        };
        let reply_len = self.reply_len(&action);
        if reply_len > port.max_frame_len() || reply_len > self.config.max_frame_len {
            debug!(
                "drop: a reply of {} octets would not fit the port",
                reply_len
            );
            return None;
        }
        Some(Plan {
            action,
            reply_len,
            requester: source,
            tag: header.tag(),
            local_mac: port.mac,
            sectors_per_frame,
            generation: self.state.generation,
        })
    }

    fn decide_ata(
        &mut self,
        source: &EthernetAddress,
        sectors_per_frame: u8,
        arg: &[u8],
    ) -> Option<Action> {
        let registers = ata::Packet::new_checked(arg).ok()?;
        let command = AtaCommand::from(registers.cmd_status());
        if command != AtaCommand::IdentifyDevice && !self.state.reservation_allows(source) {
            debug!("ATA from a MAC without the reservation: error 6");
            return Some(Action::AoeError(ErrorCode::TargetReserved));
        }
        let count = registers.sector_count();
        let aborted = Action::AtaStatus(AtaOutcome::failed(ata_error::ABRT, count));
        let transfer =
            |op, lba| self.decide_transfer(op, lba, count, sectors_per_frame, registers.data());
        let action = match command {
            AtaCommand::ReadSectors => transfer(IoOp::Read, registers.lba28()),
            AtaCommand::WriteSectors => transfer(IoOp::Write, registers.lba28()),
            AtaCommand::ReadSectorsExt => transfer(IoOp::Read, registers.lba48()),
            AtaCommand::WriteSectorsExt => transfer(IoOp::Write, registers.lba48()),
            AtaCommand::IdentifyDevice => Action::Identify,
            AtaCommand::FlushCache | AtaCommand::FlushCacheExt => Action::AtaIo(DiskIo {
                op: IoOp::Flush,
                lba: 0,
                sectors: 0,
            }),
            AtaCommand::CheckPowerMode => Action::AtaStatus(AtaOutcome {
                sector_count: 0xFF, // active or idle
                ..AtaOutcome::DONE
            }),
            AtaCommand::Smart => {
                let lba = registers.lba_bytes();
                let signed = [lba[1], lba[2]] == SMART_SIGNATURE;
                match registers.err_feature() {
                    SMART_RETURN_STATUS | SMART_ENABLE_OPERATIONS if signed => {
                        // The LBA mid/high octets are echoed: 4F/C2 means no threshold exceeded.
                        Action::AtaStatus(AtaOutcome::DONE)
                    }
                    _ => aborted,
                }
            }
            AtaCommand::Unknown(code) => {
                debug!("ATA command {:02x} not supported: ABRT", code);
                aborted
            }
        };
        Some(action)
    }

    fn decide_transfer(
        &self,
        op: IoOp,
        lba: u64,
        count: u8,
        sectors_per_frame: u8,
        data: &[u8],
    ) -> Action {
        let failed = |error| Action::AtaStatus(AtaOutcome::failed(error, count));
        // Count 0 would mean 256 (or 65536) sectors to ATA, more than any frame carries.
        if count == 0 || count > sectors_per_frame {
            debug!(
                "sector count {} outside 1..={}: ABRT",
                count, sectors_per_frame
            );
            return failed(ata_error::ABRT);
        }
        if !range_fits(lba, usize::from(count), self.sectors) {
            debug!(
                "LBA {} + {} beyond {} sectors: IDNF",
                lba, count, self.sectors
            );
            return failed(ata_error::IDNF);
        }
        if op == IoOp::Write && data.len() < usize::from(count) * SECTOR_SIZE {
            debug!(
                "write of {} sectors carries {} octets: ABRT",
                count,
                data.len()
            );
            return failed(ata_error::ABRT);
        }
        Action::AtaIo(DiskIo {
            op,
            lba,
            sectors: count,
        })
    }

    fn decide_config(&mut self, arg: &[u8], frame_limit: usize) -> Option<Action> {
        let request = cfg::Packet::new_checked(arg).ok()?;
        let command = request.command();
        let reply = |string_present| {
            Some(Action::Config {
                command,
                string_present,
            })
        };
        if command == ConfigCommand::Read {
            // Answered whatever the request's string length says (aoeping sends 1024 + filler).
            return reply(false);
        }
        if let ConfigCommand::Unknown(code) = command {
            debug!("config sub-command {} unknown: error 2", code);
            return Some(Action::AoeError(ErrorCode::BadArgument));
        }
        let Ok(string) = request.config_string() else {
            debug!("config string length beyond 1024 or the frame: error 2");
            return Some(Action::AoeError(ErrorCode::BadArgument));
        };
        let ours = self.state.config_string.as_slice();
        match command {
            ConfigCommand::Test if string == ours => reply(false),
            ConfigCommand::TestPrefix if ours.starts_with(string) => reply(false),
            ConfigCommand::Test | ConfigCommand::TestPrefix => None,
            ConfigCommand::Set if !ours.is_empty() && ours != string => reply(true),
            _ if AOE_ARG_OFFSET + cfg::HEADER_LEN + string.len() > frame_limit => {
                // Storing it would make every later config reply too long for this port.
                debug!(
                    "config string of {} octets would not fit a reply: error 2",
                    string.len()
                );
                Some(Action::AoeError(ErrorCode::BadArgument))
            }
            _ => {
                // Set on an empty (or identical) string, or ForceSet. The length was bounded
                // by `config_string`, so this cannot fail.
                self.state.set_config_string(string).ok()?;
                reply(false)
            }
        }
    }

    fn decide_mask(&mut self, arg: &[u8]) -> Option<Action> {
        let request = mask::Packet::new_checked(arg).ok()?;
        let command = request.command();
        let mut error = MaskError::NoError;
        let mut applied = 0u8;
        match command {
            MaskCommand::Read => {}
            MaskCommand::Edit => {
                let Ok(directives) = request.directives() else {
                    debug!("mask Dir Count beyond the frame: error 2");
                    return Some(Action::AoeError(ErrorCode::BadArgument));
                };
                for directive in directives.iter() {
                    match directive.command {
                        DirectiveCommand::None => {}
                        DirectiveCommand::Add => {
                            if self.state.mask_add(directive.mac).is_err() {
                                error = MaskError::ListFull;
                            }
                        }
                        DirectiveCommand::Delete => {
                            self.state.mask_remove(&directive.mac);
                        }
                        DirectiveCommand::Unknown(_) => error = MaskError::BadDirective,
                    }
                    if error != MaskError::NoError {
                        break;
                    }
                    applied = applied.saturating_add(1);
                }
            }
            MaskCommand::Unknown(code) => {
                debug!("mask MCmd {} unknown: error 2", code);
                return Some(Action::AoeError(ErrorCode::BadArgument));
            }
        }
        Some(Action::Mask {
            command,
            error,
            applied,
        })
    }

    fn decide_reserve(&mut self, source: &EthernetAddress, arg: &[u8]) -> Option<Action> {
        let request = reserve::Packet::new_checked(arg).ok()?;
        let command = request.command();
        let reply = |refused| Some(Action::Reserve { command, refused });
        match command {
            ReserveCommand::Read => reply(false),
            ReserveCommand::Set | ReserveCommand::ForceSet => {
                let macs = match request.macs() {
                    Ok(macs) if macs.len() <= RESERVE_CAPACITY => macs,
                    _ => {
                        debug!("reserve NMacs beyond the frame or the list: error 2");
                        return Some(Action::AoeError(ErrorCode::BadArgument));
                    }
                };
                if command == ReserveCommand::Set && !self.state.reservation_allows(source) {
                    debug!("reserve set by a MAC without the reservation: error 6");
                    return reply(true);
                }
                self.state.set_reservations(macs.iter()).ok()?;
                reply(false)
            }
            ReserveCommand::Unknown(code) => {
                debug!("reserve RCmd {} unknown: error 2", code);
                Some(Action::AoeError(ErrorCode::BadArgument))
            }
        }
    }

    /// Octets of the reply to `action`, before padding to 60.
    fn reply_len(&self, action: &Action) -> usize {
        let len = match action {
            Action::AoeError(_) | Action::AtaStatus(_) => AOE_ARG_OFFSET,
            Action::Config { .. } => {
                AOE_ARG_OFFSET + cfg::HEADER_LEN + self.state.config_string.len()
            }
            Action::Mask { error, applied, .. } => {
                let entries = if *error == MaskError::NoError {
                    self.state.mask.len()
                } else {
                    usize::from(*applied)
                };
                AOE_ARG_OFFSET + mask::HEADER_LEN + entries * mask::DIRECTIVE_LEN
            }
            Action::Reserve { .. } => {
                AOE_ARG_OFFSET
                    + reserve::HEADER_LEN
                    + self.state.reservations.len() * reserve::MAC_LEN
            }
            Action::Identify => ATA_DATA_OFFSET + IDENTIFY_LEN,
            Action::AtaIo(io) => match io.op {
                IoOp::Read => ATA_DATA_OFFSET + io.byte_len(),
                IoOp::Write | IoOp::Flush => ATA_DATA_OFFSET,
            },
        };
        len.max(MIN_FRAME_LEN)
    }

    // ----- disk -----------------------------------------------------------------------------

    /// Runs `io` on the target's disk. `None` if the frames cannot hold the data.
    fn run_io(&mut self, io: &DiskIo, rx: &[u8], tx: &mut [u8]) -> Option<Result<(), ErrorKind>> {
        let result = match io.op {
            IoOp::Read => {
                let sectors = tx
                    .get_mut(io.data_range())?
                    .as_chunks_mut::<SECTOR_SIZE>()
                    .0;
                self.disk.read(io.lba, sectors)
            }
            IoOp::Write => {
                let sectors = rx.get(io.data_range())?.as_chunks::<SECTOR_SIZE>().0;
                self.disk.write(io.lba, sectors)
            }
            IoOp::Flush => self.disk.flush(),
        };
        Some(result.map_err(|error| {
            let kind = error.kind();
            warn!("disk {:?} at LBA {} failed: {:?}", io.op, io.lba, kind);
            kind
        }))
    }

    // ----- emitting -------------------------------------------------------------------------

    /// Writes Ethernet and AoE headers with this export's address.
    fn emit_header(
        &self,
        tx: &mut [u8],
        destination: EthernetAddress,
        source: EthernetAddress,
        command: u8,
        tag: [u8; 4],
        error: Option<ErrorCode>,
    ) {
        tx[0..6].copy_from_slice(&destination.0);
        tx[6..12].copy_from_slice(&source.0);
        tx[12..14].copy_from_slice(&ETHERTYPE_AOE.to_be_bytes());
        let mut header = aoe::Packet::new_unchecked(&mut tx[ETHERNET_HEADER_LEN..AOE_ARG_OFFSET]);
        header.set_version_flags(aoe::VERSION, true, error.is_some());
        header.set_error(error.unwrap_or(ErrorCode::Unknown(0)));
        header.set_major(self.config.shelf);
        header.set_minor(self.config.slot);
        header.set_command(Command::from(command));
        let tag = u32::from_be_bytes(tag);
        header.set_tag(tag);
    }

    /// Writes a Query Config argument describing this export; returns the frame length so far.
    fn emit_config_arg(
        &self,
        sectors_per_frame: u8,
        command: ConfigCommand,
        arg: &mut [u8],
    ) -> usize {
        let repr = cfg::Repr {
            buffer_count: self.config.buffer_count,
            firmware_version: self.config.firmware_version,
            sector_count: sectors_per_frame,
            aoe_version: aoe::VERSION,
            command,
            config_string: &self.state.config_string,
        };
        repr.emit(&mut cfg::Packet::new_unchecked(
            &mut arg[..repr.buffer_len()],
        ));
        AOE_ARG_OFFSET + repr.buffer_len()
    }

    /// Writes the reply; returns the octets written before padding.
    fn emit_reply(
        &mut self,
        plan: &Plan,
        io: Result<(), ErrorKind>,
        rx: &[u8],
        tx: &mut [u8],
    ) -> Option<usize> {
        let requester = plan.requester;
        let command = rx[ETHERNET_HEADER_LEN + 5];
        let tag = plan.tag.to_be_bytes();
        let error = match plan.action {
            Action::AoeError(code) => Some(code),
            Action::Config {
                string_present: true,
                ..
            } => Some(ErrorCode::ConfigStringPresent),
            Action::Reserve { refused: true, .. } => Some(ErrorCode::TargetReserved),
            _ => None,
        };
        if error.is_some() {
            self.stats.aoe_errors = self.stats.aoe_errors.wrapping_add(1);
        }

        match plan.action {
            Action::AoeError(_) => {
                self.emit_header(tx, requester, plan.local_mac, command, tag, error);
                Some(AOE_ARG_OFFSET)
            }
            Action::Config { command: ccmd, .. } => {
                self.emit_header(tx, requester, plan.local_mac, command, tag, error);
                Some(self.emit_config_arg(plan.sectors_per_frame, ccmd, &mut tx[AOE_ARG_OFFSET..]))
            }
            Action::Mask {
                command: mcmd,
                error: merror,
                applied,
            } => {
                let directives = if merror == MaskError::NoError {
                    None
                } else {
                    let request = mask::Packet::new_checked(rx.get(AOE_ARG_OFFSET..)?).ok()?;
                    Some(
                        request
                            .directives_ref()
                            .ok()?
                            .raw_prefix(usize::from(applied)),
                    )
                };
                self.emit_header(tx, requester, plan.local_mac, command, tag, error);
                Some(self.emit_mask_arg(mcmd, merror, directives, &mut tx[AOE_ARG_OFFSET..]))
            }
            Action::Reserve { command: rcmd, .. } => {
                self.emit_header(tx, requester, plan.local_mac, command, tag, error);
                let list = &self.state.reservations;
                let count = u8::try_from(list.len()).unwrap_or(u8::MAX);
                let mut arg = reserve::Packet::new_unchecked(&mut tx[AOE_ARG_OFFSET..]);
                arg.set_header(rcmd, count);
                for (index, mac) in list.iter().enumerate() {
                    arg.set_mac(index, *mac);
                }
                Some(AOE_ARG_OFFSET + reserve::HEADER_LEN + list.len() * reserve::MAC_LEN)
            }
            Action::AtaStatus(outcome) => {
                self.emit_ata(tx, rx, plan, command, outcome)?;
                if outcome.is_error() {
                    self.stats.ata_errors = self.stats.ata_errors.wrapping_add(1);
                }
                Some(ATA_DATA_OFFSET)
            }
            Action::Identify => {
                self.emit_ata(tx, rx, plan, command, AtaOutcome::DONE)?;
                let data = tx.get_mut(ATA_DATA_OFFSET..ATA_DATA_OFFSET + IDENTIFY_LEN)?;
                let data: &mut [u8; IDENTIFY_LEN] = data.try_into().ok()?;
                identify_data(&self.config.identity, self.sectors, data);
                Some(ATA_DATA_OFFSET + IDENTIFY_LEN)
            }
            Action::AtaIo(disk_io) => {
                let Err(kind) = io else {
                    self.emit_ata(tx, rx, plan, command, AtaOutcome::DONE)?;
                    let sectors = u64::from(disk_io.sectors);
                    let stats = &mut self.stats;
                    return Some(match disk_io.op {
                        IoOp::Read => {
                            stats.sectors_read = stats.sectors_read.wrapping_add(sectors);
                            ATA_DATA_OFFSET + disk_io.byte_len()
                        }
                        IoOp::Write => {
                            stats.sectors_written = stats.sectors_written.wrapping_add(sectors);
                            ATA_DATA_OFFSET
                        }
                        IoOp::Flush => {
                            stats.flushes = stats.flushes.wrapping_add(1);
                            ATA_DATA_OFFSET
                        }
                    });
                };
                let error = if kind == ErrorKind::OutOfRange {
                    ata_error::IDNF
                } else {
                    ata_error::ABRT
                };
                let sector_count = rx.get(AOE_ARG_OFFSET + 2).copied()?;
                self.emit_ata(
                    tx,
                    rx,
                    plan,
                    command,
                    AtaOutcome::failed(error, sector_count),
                )?;
                self.stats.disk_errors = self.stats.disk_errors.wrapping_add(1);
                self.stats.ata_errors = self.stats.ata_errors.wrapping_add(1);
                Some(ATA_DATA_OFFSET)
            }
        }
    }

    /// Writes headers and the ATA registers: AFlags and LBA echoed, reserved octets zero.
    fn emit_ata(
        &self,
        tx: &mut [u8],
        rx: &[u8],
        plan: &Plan,
        command: u8,
        outcome: AtaOutcome,
    ) -> Option<()> {
        let request = ata::Packet::new_checked(rx.get(AOE_ARG_OFFSET..)?).ok()?;
        let tag = plan.tag.to_be_bytes();
        self.emit_header(tx, plan.requester, plan.local_mac, command, tag, None);
        let mut reply = ata::Packet::new_unchecked(&mut tx[AOE_ARG_OFFSET..ATA_DATA_OFFSET]);
        reply.set_ata_flags(request.ata_flags());
        reply.set_err_feature(outcome.error);
        reply.set_sector_count(outcome.sector_count);
        reply.set_cmd_status(outcome.status);
        reply.set_lba_bytes(request.lba_bytes());
        reply.clear_reserved();
        Some(())
    }

    /// Writes a MAC Mask List argument: the list, or the applied directives after an error.
    fn emit_mask_arg(
        &self,
        command: MaskCommand,
        error: MaskError,
        applied_directives: Option<&[u8]>,
        arg: &mut [u8],
    ) -> usize {
        let mut packet = mask::Packet::new_unchecked(&mut *arg);
        let entries = match applied_directives {
            Some(raw) => {
                let count = raw.len() / mask::DIRECTIVE_LEN;
                packet.set_header(command, error, u8::try_from(count).unwrap_or(u8::MAX));
                packet.directives_mut()[..raw.len()].copy_from_slice(raw);
                // Reserved octets of echoed directives are zeroed, as r11 asks of senders.
                for directive in packet.directives_mut()[..raw.len()].as_chunks_mut::<8>().0 {
                    directive[0] = 0;
                }
                count
            }
            None => {
                let list = &self.state.mask;
                packet.set_header(command, error, u8::try_from(list.len()).unwrap_or(u8::MAX));
                for (index, mac) in list.iter().enumerate() {
                    packet.set_directive(
                        index,
                        mask::Directive {
                            command: DirectiveCommand::None,
                            mac: *mac,
                        },
                    );
                }
                list.len()
            }
        };
        AOE_ARG_OFFSET + mask::HEADER_LEN + entries * mask::DIRECTIVE_LEN
    }
}
