//! The state an export keeps besides its disk: config string, MAC mask list, reserve list.
//!
//! All three live in fixed heapless storage (about 1.4 KiB in all), so the target needs no
//! allocator. Every change bumps a generation counter that platforms watch to persist state.

use crate::wire::EthernetAddress;
use crate::wire::cfg::MAX_CONFIG_STRING_LEN;
use core::fmt;
use heapless::Vec;

/// Entries the MAC mask list holds (as vblade).
pub const MASK_CAPACITY: usize = 32;

/// Entries the reserve list holds.
pub const RESERVE_CAPACITY: usize = 32;

/// A change to the export state that does not fit its fixed storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum StateError {
    /// The config string is longer than 1024 octets: shorten it.
    ConfigStringTooLong,
    /// The MAC mask list already holds [`MASK_CAPACITY`] addresses: delete one first.
    MaskFull,
    /// More than [`RESERVE_CAPACITY`] addresses were given for the reserve list.
    TooManyReservations,
}

impl fmt::Display for StateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StateError::ConfigStringTooLong => write!(
                f,
                "config string is longer than {MAX_CONFIG_STRING_LEN} bytes"
            ),
            StateError::MaskFull => write!(f, "MAC mask list is full ({MASK_CAPACITY} addresses)"),
            StateError::TooManyReservations => {
                write!(f, "reserve list takes at most {RESERVE_CAPACITY} addresses")
            }
        }
    }
}

impl core::error::Error for StateError {}

/// Config string, MAC mask list and reserve list of one export.
#[derive(Debug, Clone, Default)]
pub(crate) struct ExportState {
    pub config_string: Vec<u8, MAX_CONFIG_STRING_LEN>,
    pub mask: Vec<EthernetAddress, MASK_CAPACITY>,
    pub reservations: Vec<EthernetAddress, RESERVE_CAPACITY>,
    pub generation: u32,
}

impl ExportState {
    fn bump(&mut self) {
        self.generation = self.generation.wrapping_add(1);
    }

    /// True if `source` may use the export: the mask is empty or names it.
    pub fn mask_allows(&self, source: &EthernetAddress) -> bool {
        self.mask.is_empty() || self.mask.contains(source)
    }

    /// True if `source` may issue ATA commands: nothing is reserved or it holds a reservation.
    pub fn reservation_allows(&self, source: &EthernetAddress) -> bool {
        self.reservations.is_empty() || self.reservations.contains(source)
    }

    pub fn set_config_string(&mut self, string: &[u8]) -> Result<(), StateError> {
        if self.config_string.as_slice() == string {
            return Ok(());
        }
        let mut next = Vec::new();
        next.extend_from_slice(string)
            .map_err(|_| StateError::ConfigStringTooLong)?;
        self.config_string = next;
        self.bump();
        Ok(())
    }

    /// Adds `mac` to the mask list; adding an address already there changes nothing.
    pub fn mask_add(&mut self, mac: EthernetAddress) -> Result<(), StateError> {
        if self.mask.contains(&mac) {
            return Ok(());
        }
        self.mask.push(mac).map_err(|_| StateError::MaskFull)?;
        self.bump();
        Ok(())
    }

    /// Removes `mac` from the mask list; true if it was there.
    pub fn mask_remove(&mut self, mac: &EthernetAddress) -> bool {
        let Some(index) = self.mask.iter().position(|m| m == mac) else {
            return false;
        };
        self.mask.remove(index);
        self.bump();
        true
    }

    /// Replaces the reserve list; duplicates are kept once.
    pub fn set_reservations(
        &mut self,
        macs: impl IntoIterator<Item = EthernetAddress>,
    ) -> Result<(), StateError> {
        let mut next: Vec<EthernetAddress, RESERVE_CAPACITY> = Vec::new();
        for mac in macs {
            if !next.contains(&mac) {
                next.push(mac)
                    .map_err(|_| StateError::TooManyReservations)?;
            }
        }
        if next != self.reservations {
            self.reservations = next;
            self.bump();
        }
        Ok(())
    }
}
