//! The EtherDrive blade on ST's STM32F746G-DISCO: Ethernet on the RJ45, the disk on the
//! microSD card.
//!
//! Boot: board bring-up, watchdog on, SD card initialised (retried until a card answers);
//! then [`aoe_firmware::serve`] reads the state record, makes the export, announces it and
//! runs the poll loop.
//!
//! Logs are defmt frames over RTT: `cargo run` in `boards/stm32f746g-disco` (probe-rs, see its
//! `.cargo/config.toml` and `boards/README.md`) flashes the image and prints them. A panic logs
//! its location and resets the chip; so does a hard fault. Build-time defaults: `AOE_SHELF`
//! (default 0) and `AOE_SLOT` (default 1); the MAC is derived from the chip's unique ID.
#![no_std]
#![no_main]

use aoe_board_stm32f746g_disco::aoe_hal::cpu::reset;
use aoe_board_stm32f746g_disco::{Board, MAX_FRAME_LEN, RECEIVE_FRAMES};
use aoe_firmware::{Defaults, serve, until_ok};
use cortex_m_rt::entry;
use defmt_rtt as _;

#[entry]
fn main() -> ! {
    let Some(mut board) = Board::take() else {
        reset()
    };
    defmt::info!(
        "aoe-firmware {=str} on stm32f746g-disco: core {=u32} Hz",
        env!("CARGO_PKG_VERSION"),
        board.system_hz,
    );
    if board.watchdog_reset {
        defmt::warn!("the watchdog reset the chip");
    }
    board.watchdog.start();

    let (card, card_info) = until_ok(
        "SD card",
        &mut board,
        |board| board.watchdog.feed(),
        |board| board.slot.init_card(),
    );
    defmt::info!(
        "SD card {=str}: {=u64} sectors",
        if card_info.high_capacity {
            "SDHC/SDXC"
        } else {
            "SDSC"
        },
        card_info.sectors
    );

    let defaults = Defaults::with_build_address(board.factory_mac, RECEIVE_FRAMES, MAX_FRAME_LEN);
    let mut watchdog = board.watchdog;
    serve(board.ethernet, card, &defaults, || watchdog.feed())
}

aoe_firmware::crash_handlers!();
