//! The EtherDrive blade on a WIZnet W5500-EVB-Pico: Ethernet through the W5500 in MACRAW
//! mode, the disk on a microSD breakout on SPI1.
//!
//! Boot: board bring-up, watchdog on, SD card initialised (retried until a card answers);
//! then [`aoe_firmware::serve`] reads the state record, makes the export, announces it and
//! runs the poll loop.
//!
//! Logs are defmt frames over RTT: `cargo run` in `boards/w5500-evb-pico` (probe-rs, see its
//! `.cargo/config.toml` and `boards/README.md`) flashes the image and prints them. A panic logs
//! its location and resets the chip; so does a hard fault. Build-time defaults: `AOE_SHELF`
//! (default 0) and `AOE_SLOT` (default 1); the MAC is derived from the flash chip's unique ID.
#![no_std]
#![no_main]

use aoe_board_w5500_evb_pico::aoe_hal::cpu::reset;
use aoe_board_w5500_evb_pico::{Board, MAX_FRAME_LEN, RECEIVE_FRAMES};
use aoe_firmware::{Defaults, serve, until_ok};
use cortex_m_rt::entry;
use defmt_rtt as _;

#[entry]
fn main() -> ! {
    let mut board = match Board::take() {
        Ok(board) => board,
        Err(error) => {
            defmt::error!("bring-up failed: {}; resetting", error);
            reset()
        }
    };
    defmt::info!(
        "aoe-firmware {=str} on w5500-evb-pico: core {=u32} Hz",
        env!("CARGO_PKG_VERSION"),
        board.system_hz,
    );
    if board.watchdog_reset {
        defmt::warn!("the watchdog reset the chip");
    }
    board.watchdog.start();

    let feed_watchdog = |board: &mut Board| board.watchdog.feed();
    let card_info = until_ok("SD card", &mut board, feed_watchdog, Board::init_card);
    defmt::info!("SD card {}", card_info);

    let defaults = Defaults::with_build_address(board.factory_mac, RECEIVE_FRAMES, MAX_FRAME_LEN);
    let mut watchdog = board.watchdog;
    serve(board.ethernet, board.card, &defaults, || watchdog.feed())
}

aoe_firmware::crash_handlers!();
