//! # aoe-board-stm32f746g-disco: the EtherDrive blade on ST's STM32F746G-DISCO
//!
//! Board bring-up, and nothing of the protocol: [`Board::take`] sets the clocks (216 MHz from
//! the 25 MHz crystal, 48 MHz for SDMMC1), starts the Ethernet MAC with its DMA rings and the
//! LAN8742A PHY, and hands the firmware the MAC ([`ethernet::Ethernet`], an
//! [`aoe_hal::EthernetMac`]), the microSD slot ([`CardSlot::init_card`] gives a
//! [`card::Card`], an [`aoe_core::Disk`]), the independent watchdog and a MAC address.
//! The vendor HAL is embassy-stm32; the AoE path stays in `aoe-core` and `aoe-firmware`.
//!
//! | function | pins (UM1907) | notes |
//! |---|---|---|
//! | RMII REF_CLK / CRS_DV / RXD0 / RXD1 | PA1 / PA7 / PC4 / PC5 | 50 MHz from the PHY |
//! | RMII TX_EN / TXD0 / TXD1 | PG11 / PG13 / PG14 | |
//! | MDIO / MDC | PA2 / PC1 | LAN8742A, address found by scanning |
//! | SDMMC1 CK / CMD / D0–D3 | PC12 / PD2 / PC8–PC11 | 4-bit, DMA2 stream 3 |
//! | microSD detect | PC13 | low when a card is in the slot |
//!
//! Memory (`memory.x`): 1 MiB flash at 0x0800_0000, 320 KiB SRAM at 0x2000_0000 (DTCM and
//! SRAM1/2, all reachable by the Ethernet and SDMMC DMA). The data cache stays off, so DMA
//! buffers need no cache maintenance; the link fails if less than 16 KiB are left for the
//! stack.
//!
//! MAC address: the chip has no factory MAC; [`Board::take`] derives a locally administered
//! one from the 96-bit unique device ID, so each board keeps the same address across resets
//! and two boards differ.
#![no_std]
#![deny(clippy::undocumented_unsafe_blocks)]
#![warn(missing_docs)]

pub mod card;
pub mod ethernet;

use aoe_core::wire::EthernetAddress;
use core::sync::atomic::{AtomicBool, Ordering};
use embassy_stm32::gpio::{Input, Pull};
use embassy_stm32::peripherals::{DMA2_CH3, IWDG, SDMMC1};
use embassy_stm32::sdmmc::Sdmmc;
use embassy_stm32::wdg::IndependentWatchdog;
use embassy_stm32::{Config, bind_interrupts, dma, eth, pac, sdmmc};

pub use aoe_hal;
pub use cortex_m;
pub use cortex_m_rt;
pub use embassy_stm32;

use card::{Card, CardError, CardInfo, StorageCard};
use embassy_stm32::sdmmc::sd::StorageDevice;
use ethernet::{Ethernet, PacketQueue};

/// Core clock after [`Board::take`].
pub const SYSTEM_HZ: u32 = 216_000_000;
/// SD bus clock: the default-speed maximum, from the 48 MHz kernel clock.
const SD_BUS_HZ: u32 = 24_000_000;
/// Watchdog expiry in microseconds; the main loop feeds it far more often.
pub const WATCHDOG_TIMEOUT_US: u32 = 2_000_000;

/// Frames the board takes in while the firmware works on one: the receive descriptors.
/// Advertised as the AoE Buffer Count.
#[allow(clippy::cast_possible_truncation)] // a handful of descriptors
pub const RECEIVE_FRAMES: u16 = ethernet::RX_DESCRIPTORS as u16;

/// The largest frame the MAC carries (header included, FCS excluded).
pub const MAX_FRAME_LEN: usize = ethernet::MAX_FRAME_LEN;

bind_interrupts!(struct Irqs {
    ETH => eth::InterruptHandler;
    SDMMC1 => sdmmc::InterruptHandler<SDMMC1>;
    DMA2_STREAM3 => dma::InterruptHandler<DMA2_CH3>;
});

/// The independent watchdog (LSI-clocked: it keeps running if the main clock fails).
pub struct Watchdog {
    inner: IndependentWatchdog<'static, IWDG>,
}

impl Watchdog {
    /// Starts the watchdog; it cannot be stopped again. It stops counting while a debugger
    /// halts the core.
    pub fn start(&mut self) {
        pac::DBGMCU.apb1fzr().modify(|w| w.set_iwdg(true));
        self.inner.unleash();
    }

    /// Reloads the watchdog.
    pub fn feed(&mut self) {
        self.inner.pet();
    }
}

/// The microSD slot before its card is initialised.
pub struct CardSlot {
    device: Option<StorageCard>,
    detect: Input<'static>,
}

/// Everything the firmware gets from the board.
pub struct Board {
    /// The Ethernet MAC, receiving and transmitting.
    pub ethernet: Ethernet,
    /// The microSD slot: call [`CardSlot::init_card`].
    pub slot: CardSlot,
    /// The independent watchdog, not yet started.
    pub watchdog: Watchdog,
    /// The MAC address derived from the unique device ID.
    pub factory_mac: [u8; 6],
    /// True when the last reset came from a watchdog.
    pub watchdog_reset: bool,
    /// The core clock.
    pub system_hz: u32,
}

static TAKEN: AtomicBool = AtomicBool::new(false);

/// Clocks: HSE 25 MHz → PLL (/25 ×432) → 216 MHz system clock (/2), 48 MHz (/9) for SDMMC1;
/// APB1 54 MHz, APB2 108 MHz.
fn clock_config() -> Config {
    use embassy_stm32::rcc::{
        AHBPrescaler, APBPrescaler, Hse, HseMode, Pll, PllMul, PllPDiv, PllPreDiv, PllQDiv,
        PllSource, Sysclk, mux,
    };
    let mut config = Config::default();
    config.rcc.hse = Some(Hse {
        freq: embassy_stm32::time::Hertz(25_000_000),
        mode: HseMode::Oscillator,
    });
    config.rcc.pll_src = PllSource::HSE;
    config.rcc.pll = Some(Pll {
        prediv: PllPreDiv::DIV25,
        mul: PllMul::MUL432,
        divp: Some(PllPDiv::DIV2),
        divq: Some(PllQDiv::DIV9),
        divr: None,
    });
    config.rcc.ahb_pre = AHBPrescaler::DIV1;
    config.rcc.apb1_pre = APBPrescaler::DIV4;
    config.rcc.apb2_pre = APBPrescaler::DIV2;
    config.rcc.sys = Sysclk::PLL1_P;
    config.rcc.mux.clk48sel = mux::Clk48sel::PLL1_Q;
    config.rcc.mux.sdmmc1sel = mux::Sdmmcsel::CLK48;
    config
}

impl Board {
    /// Brings the board up; `None` if it was already taken.
    ///
    /// # Panics
    /// embassy-stm32 panics when no PHY answers on MDIO (a board fault); the firmware's panic
    /// handler logs it and resets.
    pub fn take() -> Option<Board> {
        if TAKEN.swap(true, Ordering::AcqRel) {
            return None;
        }
        // Read before anything clears them: the reset flags in RCC_CSR, then clear them.
        let flags = pac::RCC.csr().read();
        let watchdog_reset = flags.wdgrstf() || flags.wwdgrstf();
        pac::RCC.csr().modify(|w| w.set_rmvf(true));

        let p = embassy_stm32::init(clock_config());
        let factory_mac = aoe_hal::mac_from_unique_id(&embassy_stm32::uid::uid()[..]);

        static QUEUE: static_cell::ConstStaticCell<PacketQueue> =
            static_cell::ConstStaticCell::new(PacketQueue::new());
        let inner = eth::Ethernet::new(
            QUEUE.take(),
            p.ETH,
            Irqs,
            p.PA1,
            p.PA7,
            p.PC4,
            p.PC5,
            p.PG13,
            p.PG14,
            p.PG11,
            factory_mac,
            p.ETH_SMA,
            p.PA2,
            p.PC1,
        );
        let ethernet = Ethernet::new(inner, EthernetAddress(factory_mac));

        static BUS: static_cell::StaticCell<Sdmmc<'static>> = static_cell::StaticCell::new();
        let bus = BUS.init(Sdmmc::new_4bit(
            p.SDMMC1,
            p.DMA2_CH3,
            Irqs,
            p.PC12,
            p.PD2,
            p.PC8,
            p.PC9,
            p.PC10,
            p.PC11,
            sdmmc::Config::default(),
        ));
        let detect = Input::new(p.PC13, Pull::Up);

        Some(Board {
            ethernet,
            slot: CardSlot {
                device: Some(StorageDevice::new_uninit_sd_card(bus)),
                detect,
            },
            watchdog: Watchdog {
                inner: IndependentWatchdog::new(p.IWDG, WATCHDOG_TIMEOUT_US),
            },
            factory_mac,
            watchdog_reset,
            system_hz: SYSTEM_HZ,
        })
    }
}

impl CardSlot {
    /// True when the card-detect switch sees a card.
    pub fn card_present(&self) -> bool {
        self.detect.is_low()
    }

    /// Initialises the card; call again after a failure (a card being inserted). After a
    /// success the slot is empty: the [`Card`] owns the bus.
    ///
    /// # Errors
    /// [`CardError::NoCard`] when the slot is empty, any other [`CardError`] when the card
    /// did not initialise, [`CardError::NotInitialized`] when the card was already taken.
    pub fn init_card(&mut self) -> Result<(Card, CardInfo), CardError> {
        if !self.card_present() {
            return Err(CardError::NoCard);
        }
        let device = self.device.as_mut().ok_or(CardError::NotInitialized)?;
        let info = Card::acquire(device, SD_BUS_HZ)?;
        let device = self.device.take().ok_or(CardError::NotInitialized)?;
        Ok((Card::new(device, info), info))
    }
}
