//! # aoe-board-lm3s6965evb: the EtherDrive blade on a TI Stellaris LM3S6965 evaluation board
//!
//! Board bring-up, and nothing of the protocol: [`Board::take`] switches the clocks on (PLL,
//! 50 MHz from the 8 MHz crystal), muxes the pins, and hands the firmware a ready Ethernet MAC,
//! an SD card on SSI0, the watchdog and the factory MAC address. The same image runs on
//! QEMU's `lm3s6965evb` machine, which CI uses.
//!
//! | function | pins | notes |
//! |---|---|---|
//! | SSI0 clock / receive / transmit | PA2 / PA4 / PA5 (alternate function) | SPI mode 0, 400 kHz while the card initialises, 12.5 MHz after |
//! | SD card chip select | PD0 (GPIO output, active low) | QEMU wires PD0 to the card's select, and its inverse to the OLED's |
//! | OLED chip select | PA3 (GPIO output, held high) | the display shares SSI0 on the real board; kept deselected |
//! | Ethernet LEDs | PF2, PF3 (alternate function) | link and activity on the real board |
//!
//! Memory (`memory.x`): 256 KiB flash at 0, 64 KiB SRAM at 0x2000_0000; the link fails if less
//! than 8 KiB are left for the stack. cortex-m-rt paints the free RAM at start-up, so
//! `aoe_hal::cpu::stack_high_water` can report the deepest stack use.
#![no_std]
#![deny(clippy::undocumented_unsafe_blocks)]
#![warn(missing_docs)]

use aoe_core::wire::EthernetAddress;
use aoe_hal::lm3s::ethernet::{Ethernet, FrameBuffers};
use aoe_hal::lm3s::gpio::{self, OutputPin};
use aoe_hal::lm3s::ssi::Ssi;
use aoe_hal::lm3s::sysctl::{Gate, ResetCause, SystemControl};
use aoe_hal::lm3s::watchdog::Watchdog;
use aoe_hal::sd::{CardInfo, SdCard, SdError};
use core::sync::atomic::{AtomicBool, Ordering};

pub use aoe_hal;
pub use cortex_m;
pub use cortex_m_rt;

/// Core clock after [`Board::take`], when the PLL locked.
pub const SYSTEM_HZ: u32 = 50_000_000;
/// Core clock when the PLL did not lock (the crystal).
const CRYSTAL_HZ: u32 = 8_000_000;
/// SSI clock while the card initialises (the SD specification's limit is 400 kHz).
const SD_INIT_HZ: u32 = 400_000;
/// SSI clock afterwards: system clock / 4, within the PL022's master limit.
const SD_RUN_HZ: u32 = 12_500_000;
/// Watchdog expiry: 1 s at 50 MHz; the chip resets after two expiries without a feed.
pub const WATCHDOG_TICKS: u32 = SYSTEM_HZ;

/// Frames the board can take in while the firmware works on one: the silicon's 2 KiB receive
/// FIFO holds one more full-size frame. Advertised as the AoE Buffer Count (QEMU's model
/// queues 31, so this is the silicon's figure, not QEMU's).
pub const RECEIVE_FRAMES: u16 = 2;

/// The GPIO ports this board uses.
const PORT_A: u8 = 0;
const PORT_D: u8 = 3;
const PORT_F: u8 = 5;

/// The SD card on SSI0 with PD0 as chip select.
pub type Card = SdCard<Ssi, OutputPin>;

/// Everything the firmware gets from the board.
pub struct Board {
    /// The Ethernet MAC, receiving and transmitting.
    pub ethernet: Ethernet<'static>,
    /// The SD card, not yet initialised: call [`Board::init_card`].
    pub card: Card,
    /// The watchdog, not yet started.
    pub watchdog: Watchdog,
    /// The MAC address programmed at the factory (or given to QEMU with `-nic mac=`).
    pub factory_mac: Option<[u8; 6]>,
    /// Why the chip last reset.
    pub reset_cause: ResetCause,
    /// The core clock.
    pub system_hz: u32,
}

static TAKEN: AtomicBool = AtomicBool::new(false);

impl Board {
    /// Brings the board up; `None` if it was already taken. The MAC starts with the factory
    /// address, or `fallback_mac` when the factory registers are blank.
    pub fn take(fallback_mac: [u8; 6]) -> Option<Board> {
        if TAKEN.swap(true, Ordering::AcqRel) {
            return None;
        }
        let frame_buffers: &'static mut FrameBuffers =
            cortex_m::singleton!(: FrameBuffers = FrameBuffers::new())?;

        // SAFETY: one `SystemControl`, made here once (guarded by `TAKEN`), on an LM3S6965.
        let sysctl = unsafe { SystemControl::new() };
        let system_hz = if sysctl.use_pll_50mhz(100_000) {
            SYSTEM_HZ
        } else {
            CRYSTAL_HZ
        };
        for gate in [
            Gate::Watchdog,
            Gate::Ssi0,
            Gate::Gpio(PORT_A),
            Gate::Gpio(PORT_D),
            Gate::Gpio(PORT_F),
            Gate::EthernetMac,
            Gate::EthernetPhy,
        ] {
            sysctl.enable(gate);
        }
        let reset_cause = sysctl.take_reset_cause();
        let factory_mac = sysctl.factory_mac();

        // SAFETY: each port is taken once, its clock is on, on an LM3S6965.
        let port_a = unsafe { gpio::Port::new(PORT_A) };
        // SAFETY: as above.
        let port_d = unsafe { gpio::Port::new(PORT_D) };
        // SAFETY: as above.
        let port_f = unsafe { gpio::Port::new(PORT_F) };
        port_a.alternate((1 << 2) | (1 << 4) | (1 << 5));
        port_a.pull_up(1 << 4);
        let _oled_select = port_a.output(3, true);
        let card_select = port_d.output(0, true);
        port_f.alternate((1 << 2) | (1 << 3));

        // SAFETY: SSI0 is taken once here, its clock and pins are set up.
        let ssi = unsafe { Ssi::new(system_hz, SD_INIT_HZ) };
        // SAFETY: the MAC is taken once here, its and the PHY's clocks are on.
        let ethernet = unsafe {
            Ethernet::new(
                system_hz,
                EthernetAddress(factory_mac.unwrap_or(fallback_mac)),
                frame_buffers,
            )
        };
        // SAFETY: the watchdog is taken once here, its clock is on.
        let watchdog = unsafe { Watchdog::new() };
        Some(Board {
            ethernet,
            card: SdCard::new(ssi, card_select),
            watchdog,
            factory_mac,
            reset_cause,
            system_hz,
        })
    }

    /// Initialises the SD card at 400 kHz, then raises the bus clock.
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
