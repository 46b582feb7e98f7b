//! What [`Target::accept`](super::Target::accept) decides for one frame: a [`Plan`], with the
//! [`DiskIo`] it needs.
//!
//! Guarantees: a [`DiskIo`] names only sectors inside the export (`lba + sectors` within the
//! disk) and a [`DiskIo::data_range`] inside a frame of [`Plan::reply_len`] octets (a read) or
//! inside the request (a write); a plan is `Copy` and holds no borrow, so a host can keep many
//! in flight.

use crate::disk::SECTOR_SIZE;
use crate::wire::aoe::ErrorCode;
use crate::wire::ata::{self, AtaFlags, status};
use crate::wire::cfg::ConfigCommand;
use crate::wire::mask::{self, MaskCommand, MaskError};
use crate::wire::reserve::ReserveCommand;
use crate::wire::{
    AOE_ARG_OFFSET, ATA_DATA_OFFSET, ETHERNET_HEADER_LEN, EthernetAddress, EthernetFrame, aoe,
};
use core::ops::Range;

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
pub(super) enum Action {
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
pub(super) struct AtaOutcome {
    pub(super) status: u8,
    pub(super) error: u8,
    pub(super) sector_count: u8,
}

impl AtaOutcome {
    /// Success: DRDY, no error, no sectors remaining.
    pub(super) const DONE: AtaOutcome = AtaOutcome {
        status: status::DRDY,
        error: 0,
        sector_count: 0,
    };

    /// Failure with `error` bits; Sector Count keeps the request's value (nothing moved).
    pub(super) fn failed(error: u8, sector_count: u8) -> AtaOutcome {
        AtaOutcome {
            status: status::DRDY | status::ERR,
            error,
            sector_count,
        }
    }

    pub(super) fn is_error(&self) -> bool {
        self.status & status::ERR != 0
    }
}

/// The request's ATA registers a reply echoes: AFlags, the six LBA octets, and Sector Count
/// (which a failed command reports unchanged). All zero for other commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub(super) struct AtaEcho {
    pub(super) flags: AtaFlags,
    pub(super) sector_count: u8,
    pub(super) lba: [u8; 6],
}

impl AtaEcho {
    /// The registers of a request's ATA argument.
    pub(super) fn of<T: AsRef<[u8]>>(registers: &ata::Packet<T>) -> AtaEcho {
        AtaEcho {
            flags: registers.ata_flags(),
            sector_count: registers.sector_count(),
            lba: registers.lba_bytes(),
        }
    }
}

/// The decision for one accepted frame: the reply's length, the disk work it needs, and
/// everything of the request the reply repeats (addresses, Command, Tag, ATA registers), so
/// that completing it never parses the request again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[must_use = "a plan does nothing until it is completed"]
pub struct Plan {
    pub(super) action: Action,
    pub(super) reply_len: usize,
    pub(super) requester: EthernetAddress,
    pub(super) tag: u32,
    /// The request's Command octet, echoed as received (also when unknown).
    pub(super) command: u8,
    pub(super) ata: AtaEcho,
    pub(super) local_mac: EthernetAddress,
    pub(super) sectors_per_frame: u8,
    pub(super) generation: u32,
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

    /// True if `frame` carries the source MAC and tag of the request this plan was made from.
    pub(super) fn made_from(&self, frame: &[u8]) -> bool {
        let Some(headers) = frame.get(..AOE_ARG_OFFSET) else {
            return false;
        };
        // Both views fit: `headers` holds the Ethernet and the AoE header.
        EthernetFrame::new_unchecked(headers).src_addr() == self.requester
            && aoe::Packet::new_unchecked(&headers[ETHERNET_HEADER_LEN..]).tag() == self.tag
    }

    /// The octets of the request that the reply repeats at the same frame offsets: the
    /// directives applied before a failed MAC mask edit. Everything else a reply holds comes
    /// from the plan and the export.
    pub(super) fn echoed_request_range(&self) -> Option<Range<usize>> {
        match self.action {
            Action::Mask { error, applied, .. } if error != MaskError::NoError => {
                let start = AOE_ARG_OFFSET + mask::HEADER_LEN;
                Some(start..start + usize::from(applied) * mask::DIRECTIVE_LEN)
            }
            _ => None,
        }
    }

    pub(super) fn is_control(&self) -> bool {
        matches!(
            self.action,
            Action::Config { .. } | Action::Mask { .. } | Action::Reserve { .. }
        )
    }
}
