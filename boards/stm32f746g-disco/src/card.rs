//! The microSD slot on SDMMC1 (4-bit bus, DMA) as an [`aoe_core::Disk`].
//!
//! Guarantees:
//!
//! * A write returns `Ok` only after the card took the block and reported "ready for data"
//!   again (embassy-stm32 polls CMD13 after each block): the data is on the card, so
//!   [`Disk::flush`] has nothing left to do.
//! * Sectors are copied through one word-aligned bounce block: the SDMMC DMA moves 32-bit
//!   words, and an AoE frame's payload has no alignment.
//! * Every transfer is bounded by the SDMMC data timeout and embassy-stm32's busy-poll limit;
//!   a pulled card gives an error, not a hang.
//!
//! embassy-stm32's transfers are `async`; [`embassy_futures::block_on`] polls each one to
//! completion (the SDMMC and DMA interrupts do the work), since the blade's loop is
//! synchronous.

use aoe_core::disk::{Disk, Error as DiskError, ErrorKind, SECTOR_SIZE, Sector, range_fits};
use core::fmt;
use embassy_futures::block_on;
use embassy_stm32::sdmmc;
use embassy_stm32::sdmmc::sd::{self as sd_card, Addressable, CmdBlock, DataBlock, StorageDevice};

/// The initialised card, with the bus it owns.
pub type StorageCard = StorageDevice<'static, 'static, sd_card::Card>;

/// What went wrong on the SD bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, defmt::Format)]
pub enum CardError {
    /// No card in the slot (the card-detect switch is open): insert one.
    NoCard,
    /// The card timed out: re-seat it.
    Timeout,
    /// A transfer failed its CRC: the card or its contacts are bad.
    Crc,
    /// The card is not an SD card this driver supports (SDSC/SDHC/SDXC at 3.3 V).
    Unsupported,
    /// The sectors are beyond the end of the card.
    OutOfRange,
    /// The card has not been initialised.
    NotInitialized,
    /// Any other SDMMC error (DMA underrun, bad clock).
    Other,
}

impl From<sdmmc::Error> for CardError {
    fn from(error: sdmmc::Error) -> CardError {
        match error {
            sdmmc::Error::NoCard => CardError::NoCard,
            sdmmc::Error::Timeout | sdmmc::Error::SoftwareTimeout => CardError::Timeout,
            sdmmc::Error::Crc => CardError::Crc,
            sdmmc::Error::UnsupportedCardVersion
            | sdmmc::Error::UnsupportedCardType
            | sdmmc::Error::UnsupportedVoltage
            | sdmmc::Error::BusWidth => CardError::Unsupported,
            _ => CardError::Other,
        }
    }
}

impl fmt::Display for CardError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CardError::NoCard => "no SD card in the slot",
            CardError::Timeout => "SD card did not answer",
            CardError::Crc => "SD transfer failed its CRC",
            CardError::Unsupported => "SD card type or voltage not supported",
            CardError::OutOfRange => "sector beyond the end of the SD card",
            CardError::NotInitialized => "SD card not initialised",
            CardError::Other => "SDMMC error",
        })
    }
}

impl core::error::Error for CardError {}

impl DiskError for CardError {
    fn kind(&self) -> ErrorKind {
        match self {
            CardError::OutOfRange => ErrorKind::OutOfRange,
            CardError::NoCard | CardError::Timeout | CardError::NotInitialized => {
                ErrorKind::NotReady
            }
            CardError::Crc => ErrorKind::Media,
            CardError::Unsupported | CardError::Other => ErrorKind::Other,
        }
    }
}

/// What initialisation found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, defmt::Format)]
pub struct CardInfo {
    /// True for SDHC/SDXC (block addressing), false for SDSC.
    pub high_capacity: bool,
    /// 512-octet sectors.
    pub sectors: u64,
}

/// The SD card on SDMMC1.
pub struct Card {
    device: StorageCard,
    sectors: u64,
    bounce: DataBlock,
}

impl Card {
    /// Initialises the card behind `device` at `bus_hz` (25 MHz is the default-speed
    /// maximum). On failure `device` stays usable for another attempt.
    ///
    /// # Errors
    /// [`CardError`] when no card answers or it is not supported.
    pub fn acquire(device: &mut StorageCard, bus_hz: u32) -> Result<CardInfo, CardError> {
        let mut command_block = CmdBlock::new();
        block_on(device.reacquire(&mut command_block, embassy_stm32::time::Hertz(bus_hz)))?;
        let info = device.card();
        Ok(CardInfo {
            high_capacity: info.ocr.high_capacity(),
            sectors: info.size() / SECTOR_SIZE as u64,
        })
    }

    /// The card behind an acquired `device`.
    pub fn new(device: StorageCard, info: CardInfo) -> Card {
        Card {
            device,
            sectors: info.sectors,
            bounce: DataBlock::new(),
        }
    }

    /// The sector number as the card's 32-bit block index.
    fn block_index(&self, lba: u64, count: usize) -> Result<u32, CardError> {
        if !range_fits(lba, count, self.sectors) {
            return Err(CardError::OutOfRange);
        }
        u32::try_from(lba).map_err(|_| CardError::OutOfRange)
    }
}

impl Disk for Card {
    type Error = CardError;

    fn sector_count(&self) -> u64 {
        self.sectors
    }

    fn read(&mut self, lba: u64, buf: &mut [Sector]) -> Result<(), CardError> {
        let first = self.block_index(lba, buf.len())?;
        for (index, sector) in (first..).zip(buf.iter_mut()) {
            block_on(self.device.read_block(index, &mut self.bounce))?;
            sector.copy_from_slice(&self.bounce[..]);
        }
        Ok(())
    }

    fn write(&mut self, lba: u64, buf: &[Sector]) -> Result<(), CardError> {
        let first = self.block_index(lba, buf.len())?;
        for (index, sector) in (first..).zip(buf.iter()) {
            self.bounce.copy_from_slice(sector);
            block_on(self.device.write_block(index, &self.bounce))?;
        }
        Ok(())
    }

    /// Every write already waited until the card was ready again; SD cards in their default
    /// mode have no write cache to flush.
    fn flush(&mut self) -> Result<(), CardError> {
        Ok(())
    }
}
