//! The EtherDrive blade on the TI LM3S6965 evaluation board and on QEMU's `lm3s6965evb`.
//!
//! Boot: board bring-up, watchdog on, SD card initialised (retried until a card answers);
//! then [`aoe_firmware::serve`] reads the state record, makes the export, announces it and
//! runs the poll loop.
//!
//! Logs are defmt frames over semihosting (feature `semihosting`; QEMU:
//! `-semihosting-config enable=on,target=native`, decode with `defmt-print -e <elf>`) or RTT
//! (feature `rtt`, for a real board with a debug probe: `probe-rs run`). A panic logs its
//! location and resets the chip; so does a hard fault. The build-time defaults come from the
//! environment at build time: `AOE_SHELF` (default 0) and `AOE_SLOT` (default 1); the MAC is
//! the board's factory address or, on a blank chip, 02:00:00:ae:00:01.
#![no_std]
#![no_main]

use aoe_board_lm3s6965evb::aoe_hal::{cpu::reset, lm3s::ethernet::MAX_FRAME_LEN};
use aoe_board_lm3s6965evb::{Board, RECEIVE_FRAMES, WATCHDOG_TICKS};
use aoe_firmware::{Defaults, serve, until_ok};
use cortex_m_rt::entry;
#[cfg(feature = "rtt")]
use defmt_rtt as _;
#[cfg(feature = "semihosting")]
use defmt_semihosting as _;

#[cfg(all(feature = "semihosting", feature = "rtt"))]
compile_error!("pick one log transport: feature `semihosting` or `rtt`, not both");
#[cfg(not(any(feature = "semihosting", feature = "rtt")))]
compile_error!(
    "pick a log transport: --features lm3s6965evb,semihosting (QEMU) or lm3s6965evb,rtt (a board with a debug probe)"
);

/// MAC used when the chip's factory registers are blank (locally administered).
const FALLBACK_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0xAE, 0x00, 0x01];

#[entry]
fn main() -> ! {
    let Some(mut board) = Board::take(FALLBACK_MAC) else {
        reset()
    };
    defmt::info!(
        "aoe-firmware {=str} on lm3s6965evb: core {=u32} Hz, reset cause {=u32:#x}",
        env!("CARGO_PKG_VERSION"),
        board.system_hz,
        board.reset_cause.0
    );
    if board.reset_cause.watchdog() {
        defmt::warn!("the watchdog reset the chip");
    }
    board.watchdog.start(WATCHDOG_TICKS);

    let feed_watchdog = |board: &mut Board| board.watchdog.feed();
    let card_info = until_ok("SD card", &mut board, feed_watchdog, Board::init_card);
    defmt::info!("SD card {}", card_info);

    let defaults = Defaults::with_build_address(
        board.factory_mac.unwrap_or(FALLBACK_MAC),
        RECEIVE_FRAMES,
        MAX_FRAME_LEN,
    );
    let mut watchdog = board.watchdog;
    serve(board.ethernet, board.card, &defaults, || watchdog.feed())
}

aoe_firmware::crash_handlers!();
