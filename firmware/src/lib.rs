//! # aoe-firmware: the EtherDrive blade
//!
//! The board-independent half of the firmware: a [`Blade`] owns an [`aoe_core::Target`] over
//! the card's exported area (an [`aoe_core::disk::Window`] of its first sectors), the persisted
//! state ([`persist`]) and the poll step that turns one received frame into at most one reply
//! (the core's [`Target::poll_with`], with the save as its step before the reply). On a
//! microcontroller it also holds what every board binary shares: the main loop (`serve`:
//! boot, announce, poll, housekeeping) and the crash handlers ([`crash_handlers!`], which log
//! through [`report_crash`] and reset). A board binary (`src/bin/<board>.rs`) brings up the
//! hardware and the card, then hands the MAC, the card and its watchdog to `serve`.
//!
//! Guarantees:
//!
//! * Only frames the MAC driver lets through (our address or broadcast; see
//!   [`aoe_hal::EthernetMac`]) reach the target, and the target answers at most once each.
//! * **A state change is acknowledged only once it is on the card**: when a frame changed the
//!   config string, mask or reserve list (the target's generation counter moved), the record
//!   is saved before the reply is sent; if the save fails the reply is withheld (the
//!   initiator retries) and the save is retried.
//! * The exported capacity is the card minus [`persist::RESERVED_SECTORS`]; no AoE command
//!   can reach the reserved sectors.
//!
//! Identity: the record's MAC and shelf/slot when set, else the board's factory MAC and the
//! build-time defaults ([`Defaults`]).
#![no_std]
#![warn(missing_docs)]

mod fmt;
pub mod persist;
mod serve;

#[cfg(feature = "defmt")]
pub use serve::until_ok;
pub use serve::{Crash, DEFAULT_SHELF, DEFAULT_SLOT, HOUSEKEEPING_EVERY, report_crash};
#[cfg(target_os = "none")]
pub use serve::{crash, serve};

use aoe_core::disk::{Disk, Error as _, ErrorKind, Window};
use aoe_core::wire::{ETHERNET_HEADER_LEN, EthernetAddress};
use aoe_core::{Config, ConfigError, Port, Target};
use aoe_hal::EthernetMac;
use persist::{CopyBuffer, Identity, Store};
use smoltcp::time::Instant;

/// What the initiators see: the card's first sectors, its reserved tail cut off. Through
/// [`Window::inner_mut`] the state store reaches the whole card.
pub type ExportedCard<D> = Window<D>;

/// What applies when the card's record does not say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Defaults {
    /// The MAC address (the board's factory address, or a build-time one).
    pub mac: [u8; 6],
    /// Shelf.
    pub shelf: u16,
    /// Slot.
    pub slot: u8,
    /// AoE Buffer Count: frames the board takes in while it works on one.
    pub buffer_count: u16,
    /// The largest frame the MAC carries (Ethernet header included).
    pub max_frame_len: usize,
}

/// Why the blade could not start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum BootError {
    /// The card has no more sectors than the reserved region: use a bigger card.
    CardTooSmall(u64),
    /// The card failed while the record was read: check or replace the card.
    Card(ErrorKind),
    /// The identity makes no valid export (shelf 0xFFFF, slot 0xFF…): rewrite the record.
    Config(ConfigError),
}

/// Counters of the blade's own work (the target and the MAC keep theirs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct BladeStats {
    /// Records saved.
    pub saves: u32,
    /// Saves that failed (the reply was withheld).
    pub save_failures: u32,
}

/// The blade: one AoE export on one MAC.
pub struct Blade<'b, D> {
    target: Target<ExportedCard<D>>,
    port: Port,
    store: Store,
    identity: Identity,
    saved_generation: u32,
    buffer: &'b mut CopyBuffer,
    stats: BladeStats,
}

/// The state record's side of the blade, borrowed apart from the target so that the core's
/// poll step can save through it while it holds the target. (Kept as borrowed fields, not as
/// a struct the `Blade` owns: that layout made the main loop's stack frame 1.4 KiB larger on
/// lm3s6965evb.)
struct Saver<'a> {
    store: &'a mut Store,
    identity: &'a Identity,
    saved_generation: &'a mut u32,
    buffer: &'a mut CopyBuffer,
    stats: &'a mut BladeStats,
}

impl Saver<'_> {
    /// Saves the record if the state of `target` changed. Returns false if a save was needed
    /// and failed.
    fn save_if_changed<D: Disk>(&mut self, target: &mut Target<ExportedCard<D>>) -> bool {
        let generation = target.generation();
        if generation == *self.saved_generation {
            return true;
        }
        // Encode first (reading the target), then write (borrowing its disk).
        persist::encode_parts(
            self.identity,
            target.config_string(),
            target.mask(),
            target.reservations(),
            self.store.next_sequence(),
            self.buffer,
        );
        let card = target.disk_mut().inner_mut();
        match self.store.write_encoded(card, self.buffer) {
            Ok(()) => {
                *self.saved_generation = generation;
                self.stats.saves = self.stats.saves.wrapping_add(1);
                info!("state saved (generation {})", generation);
                true
            }
            Err(error) => {
                self.stats.save_failures = self.stats.save_failures.wrapping_add(1);
                error!("state save failed: {}", error.kind());
                false
            }
        }
    }
}

impl<'b, D: Disk> Blade<'b, D> {
    /// Reads the record from `card`, sets the MAC's address, and makes the export. `buffer`
    /// holds one copy of the record while it is read or written (keep it in a `static`: it
    /// is 2 KiB).
    ///
    /// # Errors
    /// When the card is too small or unreadable, or the identity is not a valid export.
    pub fn boot<M: EthernetMac>(
        mac: &mut M,
        mut card: D,
        defaults: &Defaults,
        buffer: &'b mut CopyBuffer,
    ) -> Result<Blade<'b, D>, BootError> {
        let card_sectors = card.sector_count();
        let mut store =
            Store::for_card(card_sectors).ok_or(BootError::CardTooSmall(card_sectors))?;
        let loaded = store
            .load(&mut card, buffer)
            .map_err(|error| BootError::Card(error.kind()))?;
        match &loaded {
            Some(_) => info!("state record found on the card"),
            None => info!("no state record on the card: build-time defaults"),
        }
        let identity = loaded.unwrap_or_default();
        let (shelf, slot) = identity.address.unwrap_or((defaults.shelf, defaults.slot));
        let address = EthernetAddress(identity.mac.unwrap_or(defaults.mac));
        mac.set_mac_address(address);

        let mut config = Config::new(shelf, slot);
        config.buffer_count = defaults.buffer_count;
        config.max_frame_len = defaults.max_frame_len;
        // `for_card` left at least one sector before the store, so the window is never empty.
        let exported = Window::new(card, 0, Some(store.first_sector()))
            .map_err(|_| BootError::CardTooSmall(card_sectors))?;
        let mut target = Target::new(config, exported).map_err(BootError::Config)?;
        if loaded.is_some() {
            Store::apply(buffer, &mut target);
        }
        let mtu = mac
            .capabilities()
            .max_transmission_unit
            .saturating_sub(ETHERNET_HEADER_LEN);
        Ok(Blade {
            saved_generation: target.generation(),
            target,
            port: Port::new(address, mtu),
            store,
            identity,
            buffer,
            stats: BladeStats::default(),
        })
    }

    /// The export.
    pub fn target(&self) -> &Target<ExportedCard<D>> {
        &self.target
    }

    /// The port (our MAC and MTU).
    pub fn port(&self) -> &Port {
        &self.port
    }

    /// The blade's counters.
    pub fn stats(&self) -> BladeStats {
        self.stats
    }

    /// Sends the start-up announcement (broadcast, or to each MAC of the mask list).
    pub fn announce<M: EthernetMac>(&self, mac: &mut M, now: Instant) -> usize {
        self.target.announce_on(&self.port, mac, now)
    }

    /// True if the export's state changed since it was last saved (a save failed).
    pub fn unsaved(&self) -> bool {
        self.target.generation() != self.saved_generation
    }

    /// Saves the record if the state changed. Returns false if a save was needed and failed.
    pub fn save_if_changed(&mut self) -> bool {
        let (target, mut saver) = self.split();
        saver.save_if_changed(target)
    }

    /// The target, and the record's side borrowed apart from it.
    fn split(&mut self) -> (&mut Target<ExportedCard<D>>, Saver<'_>) {
        let saver = Saver {
            store: &mut self.store,
            identity: &self.identity,
            saved_generation: &mut self.saved_generation,
            buffer: self.buffer,
            stats: &mut self.stats,
        };
        (&mut self.target, saver)
    }

    /// Receives at most one frame and sends its reply, if any. Returns true if a frame came in.
    /// A frame that changed the config string, mask or reserve list is saved on the card
    /// before its reply leaves; if the save fails the reply is withheld.
    pub fn poll<M: EthernetMac>(&mut self, mac: &mut M, now: Instant) -> bool {
        let port = self.port;
        let (target, mut saver) = self.split();
        target.poll_with(&port, mac, now, |target| saver.save_if_changed(target))
    }
}
