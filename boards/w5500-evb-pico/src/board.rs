//! The board: bring-up, pins, watchdog, MAC address (microcontroller builds only).

use aoe_core::wire::EthernetAddress;
use aoe_hal::sd::{CardInfo, SdCard, SdError};
use aoe_hal::w5500::{self, W5500, W5500Error};
use embassy_rp::flash::{Blocking as FlashBlocking, Flash};
use embassy_rp::gpio::{Level, Output};
use embassy_rp::peripherals::{FLASH, SPI0, SPI1};
use embassy_rp::spi::{self, Blocking, Spi};
use embassy_rp::watchdog::ResetReason;
use embedded_hal_bus::spi::{ExclusiveDevice, NoDelay};
use portable_atomic::{AtomicBool, Ordering};

pub use aoe_hal;
pub use cortex_m;
pub use cortex_m_rt;
pub use embassy_rp;
pub use portable_atomic;

/// Core clock after [`Board::take`] (embassy-rp's default clock set-up).
pub const SYSTEM_HZ: u32 = 125_000_000;
/// W5500 SPI clock: the peripheral clock / 4.
const W5500_SPI_HZ: u32 = 31_250_000;
/// SD clock while the card initialises (the SD specification's limit is 400 kHz).
const SD_INIT_HZ: u32 = 400_000;
/// SD clock afterwards: modest, for a breakout on jumper wires.
const SD_RUN_HZ: u32 = 12_500_000;
/// Watchdog expiry in microseconds (the RP2040 allows at most about 8.3 s).
pub const WATCHDOG_TIMEOUT_US: u64 = 2_000_000;
/// Size of the board's flash, for embassy-rp's flash driver.
const FLASH_SIZE: usize = 2 * 1024 * 1024;

/// Frames the board takes in while the firmware works on one: the W5500's 16 KiB receive
/// buffer holds ten full-size frames with their 2-octet headers. Advertised as the AoE
/// Buffer Count.
pub const RECEIVE_FRAMES: u16 = 10;

/// The largest frame the MAC carries (header included, FCS excluded).
pub const MAX_FRAME_LEN: usize = w5500::MAX_FRAME_LEN;

/// The W5500 on SPI0 with GP17 as chip select.
pub type Ethernet = W5500<ExclusiveDevice<Spi<'static, SPI0, Blocking>, Output<'static>, NoDelay>>;

/// The microSD card on SPI1 with GP13 as chip select.
pub type Card = SdCard<Spi<'static, SPI1, Blocking>, Output<'static>>;

/// The RP2040 watchdog.
pub struct Watchdog {
    inner: embassy_rp::watchdog::Watchdog,
}

impl Watchdog {
    /// Starts the watchdog with [`WATCHDOG_TIMEOUT_US`]; it pauses while a debugger halts
    /// the core.
    pub fn start(&mut self) {
        self.inner.pause_on_debug(true);
        self.inner
            .start(embassy_time::Duration::from_micros(WATCHDOG_TIMEOUT_US));
    }

    /// Reloads the watchdog.
    pub fn feed(&mut self) {
        self.inner
            .feed(embassy_time::Duration::from_micros(WATCHDOG_TIMEOUT_US));
    }
}

/// Why the board could not be brought up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, defmt::Format)]
pub enum BringUpError {
    /// [`Board::take`] was called twice.
    AlreadyTaken,
    /// The W5500 did not answer or start: check that nothing else drives GP16–GP21.
    Ethernet(W5500Error),
}

/// Everything the firmware gets from the board.
pub struct Board {
    /// The W5500 in MACRAW mode, receiving and transmitting.
    pub ethernet: Ethernet,
    /// The SD card, not yet initialised: call [`Board::init_card`].
    pub card: Card,
    /// The watchdog, not yet started.
    pub watchdog: Watchdog,
    /// The MAC address derived from the flash chip's unique ID.
    pub factory_mac: [u8; 6],
    /// True when the last reset came from the watchdog.
    pub watchdog_reset: bool,
    /// The core clock.
    pub system_hz: u32,
}

static TAKEN: AtomicBool = AtomicBool::new(false);

/// Busy-waits about `micros` microseconds at [`SYSTEM_HZ`].
fn delay_us(micros: u32) {
    cortex_m::asm::delay(micros.saturating_mul(SYSTEM_HZ / 1_000_000));
}

impl Board {
    /// Brings the board up.
    ///
    /// # Errors
    /// [`BringUpError`] when called twice or when the W5500 does not start.
    pub fn take() -> Result<Board, BringUpError> {
        if TAKEN.swap(true, Ordering::AcqRel) {
            return Err(BringUpError::AlreadyTaken);
        }
        let p = embassy_rp::init(embassy_rp::config::Config::default());
        let watchdog = embassy_rp::watchdog::Watchdog::new(p.WATCHDOG);
        let watchdog_reset = matches!(watchdog.reset_reason(), Some(ResetReason::TimedOut));

        let mut flash = Flash::<FLASH, FlashBlocking, FLASH_SIZE>::new_blocking(p.FLASH);
        let mut unique_id = [0u8; 8];
        // A failed read leaves zeros: the MAC is then 02:00:00:00:00:00 plus nothing, still
        // valid, and the log shows it.
        let _ = flash.blocking_unique_id(&mut unique_id);
        let factory_mac = aoe_hal::mac_from_unique_id(&unique_id);

        // The W5500 wants its reset low for at least 500 µs, then about 1 ms for its PLL.
        let mut reset = Output::new(p.PIN_20, Level::Low);
        delay_us(1_000);
        reset.set_high();
        delay_us(10_000);
        // Keep the reset pin driven high for the life of the firmware.
        core::mem::forget(reset);

        let mut w5500_config = spi::Config::default();
        w5500_config.frequency = W5500_SPI_HZ;
        let w5500_bus = Spi::new_blocking(p.SPI0, p.PIN_18, p.PIN_19, p.PIN_16, w5500_config);
        let w5500_select = Output::new(p.PIN_17, Level::High);
        let Ok(w5500_device) = ExclusiveDevice::new_no_delay(w5500_bus, w5500_select);
        let ethernet = W5500::new(w5500_device, EthernetAddress(factory_mac))
            .map_err(BringUpError::Ethernet)?;

        let mut card_config = spi::Config::default();
        card_config.frequency = SD_INIT_HZ;
        let card_bus = Spi::new_blocking(p.SPI1, p.PIN_10, p.PIN_11, p.PIN_12, card_config);
        let card_select = Output::new(p.PIN_13, Level::High);

        Ok(Board {
            ethernet,
            card: SdCard::new(card_bus, card_select),
            watchdog: Watchdog { inner: watchdog },
            factory_mac,
            watchdog_reset,
            system_hz: SYSTEM_HZ,
        })
    }

    /// Initialises the SD card: at 400 kHz, then switches the bus to 12.5 MHz.
    ///
    /// # Errors
    /// When no usable card answers; the caller may retry (a card being inserted).
    pub fn init_card(&mut self) -> Result<CardInfo, SdError> {
        self.card.bus_mut().set_frequency(SD_INIT_HZ);
        let info = self.card.init()?;
        self.card.bus_mut().set_frequency(SD_RUN_HZ);
        Ok(info)
    }
}
