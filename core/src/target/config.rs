//! How an export is configured and where frames arrive: [`Config`], [`Port`].
//!
//! Guarantees: [`Target::new`](super::Target::new) refuses, with a [`ConfigError`] saying what
//! to change, every configuration no initiator could use; a [`Port`] is passed with each frame,
//! so an MTU change takes effect on the next frame.

use super::SECTOR_OVERHEAD;
use crate::disk::SECTOR_SIZE;
use crate::identify::Identity;
use crate::wire::{ETHERNET_HEADER_LEN, EthernetAddress, aoe};
use core::fmt;

/// Buffer Count advertised unless configured: vblade's default.
pub const DEFAULT_BUFFER_COUNT: u16 = 16;

/// Firmware Version advertised in Query Config replies unless configured.
pub const DEFAULT_FIRMWARE_VERSION: u16 = 0x0001;

/// The largest frame a standard 1500-octet MTU carries, Ethernet header included.
pub const STANDARD_FRAME_LEN: usize = 1514;

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
    /// The platform acknowledges WRITEs before they are on stable storage (a page cache), so
    /// IDENTIFY reports a volatile write cache, enabled (words 82 and 85, bit 5), and FLUSH
    /// CACHE is what makes acknowledged writes stable. False (the default) when every
    /// acknowledged WRITE is already stable; FLUSH CACHE is still accepted.
    pub volatile_write_cache: bool,
    /// Parts of the export's state that initiators may not change.
    pub pinned: Pinned,
}

/// Parts of an export's state its administrator fixed: initiators can read them but not
/// change them. The platform still sets them ([`Target::set_config_string`](super::Target::set_config_string),
/// [`Target::mask_add`](super::Target::mask_add), [`Target::set_reservations`](super::Target::set_reservations)).
///
/// A request that would change a pinned part is refused with the answer the protocol has for
/// "not now": a Set or Force Set of another config string gets AoE error 4 (config string
/// present), a mask edit with an add or delete directive gets MError 1 (unspecified) with no
/// directive applied, a reserve Set or Force Set of another list gets AoE error 6. Requests that
/// change nothing (setting the same string or list, reading) are answered as usual.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Pinned {
    /// The config string.
    pub config_string: bool,
    /// The MAC mask list.
    pub mask: bool,
    /// The reserve list.
    pub reservations: bool,
}

impl Config {
    /// The defaults for export `shelf.slot`: Buffer Count 16, standard 1514-octet frames, no
    /// volatile write cache.
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
            volatile_write_cache: false,
            pinned: Pinned::default(),
        }
    }
}

impl Config {
    /// True if a request addressed to shelf `major`, slot `minor` is for this export: the
    /// Major matches the shelf or is 0xFFFF (every shelf), and, independently, the Minor
    /// matches the slot or is 0xFF (every slot). This is the rule
    /// [`Target::accept`](super::Target::accept) applies; a platform with several exports
    /// routes frames with it.
    pub fn answers(&self, major: u16, minor: u8) -> bool {
        let shelf_matches = major == self.shelf || major == aoe::BROADCAST_MAJOR;
        let slot_matches = minor == self.slot || minor == aoe::BROADCAST_MINOR;
        shelf_matches && slot_matches
    }
}

/// Why a [`Target`](super::Target) could not be made.
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
