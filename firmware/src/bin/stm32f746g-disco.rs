//! The EtherDrive blade on ST's STM32F746G-DISCO: Ethernet on the RJ45, the disk on the
//! microSD card.
//!
//! Boot: board bring-up, watchdog on, SD card initialised (retried until a card answers),
//! state record read, export made, announcement broadcast. Then the poll loop: feed the
//! watchdog, answer one frame; when idle, retry an unsaved record, watch the link (announce
//! again when it comes up) and log the deepest stack use so far.
//!
//! Logs are defmt frames over RTT: `cargo run` in `boards/stm32f746g-disco` (probe-rs, see its
//! `.cargo/config.toml` and `boards/README.md`) flashes the image and prints them. A panic logs
//! its location and resets the chip; so does a hard fault. Build-time defaults: `AOE_SHELF`
//! (default 0) and `AOE_SLOT` (default 1); the MAC is derived from the chip's unique ID.
#![no_std]
#![no_main]

use aoe_board_stm32f746g_disco::aoe_hal::{EthernetMac, LinkState};
use aoe_board_stm32f746g_disco::{
    Board, MAX_FRAME_LEN, RECEIVE_FRAMES, cortex_m, reset, stack_high_water,
};
use aoe_firmware::persist::{COPY_LEN, CopyBuffer};
use aoe_firmware::{Blade, Defaults};
use core::sync::atomic::{AtomicBool, Ordering};
use cortex_m_rt::{ExceptionFrame, entry, exception};
use defmt_rtt as _;
use smoltcp::time::Instant;

/// Shelf when the card's record does not set one (`AOE_SHELF` at build time).
#[allow(clippy::cast_possible_truncation)] // `parse_decimal` stops the build above `max`.
const DEFAULT_SHELF: u16 = parse_decimal(option_env!("AOE_SHELF"), 0, 0xFFFE) as u16;
/// Slot when the card's record does not set one (`AOE_SLOT` at build time).
#[allow(clippy::cast_possible_truncation)] // `parse_decimal` stops the build above `max`.
const DEFAULT_SLOT: u8 = parse_decimal(option_env!("AOE_SLOT"), 1, 0xFE) as u8;
/// Idle polls between housekeeping rounds (a PHY read over MDIO, the stack check).
const HOUSEKEEPING_EVERY: u32 = 1 << 16;

/// A decimal number from a build-time variable; `default` when unset. A value that is not
/// decimal or exceeds `max` stops the build (the assertions run in const evaluation).
const fn parse_decimal(text: Option<&str>, default: u32, max: u32) -> u32 {
    let Some(text) = text else {
        return default;
    };
    let bytes = text.as_bytes();
    let mut value: u32 = 0;
    let mut index = 0;
    while index < bytes.len() {
        let digit = bytes[index];
        assert!(digit.is_ascii_digit(), "AOE_SHELF/AOE_SLOT must be decimal");
        value = value * 10 + (digit - b'0') as u32;
        assert!(
            value <= max,
            "AOE_SHELF must be below 65535, AOE_SLOT below 255"
        );
        index += 1;
    }
    value
}

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

    let (card, card_info) = loop {
        board.watchdog.feed();
        match board.slot.init_card() {
            Ok(card) => break card,
            Err(error) => defmt::error!("SD card: {} (retrying)", error),
        }
    };
    defmt::info!(
        "SD card {=str}: {=u64} sectors",
        if card_info.high_capacity {
            "SDHC/SDXC"
        } else {
            "SDSC"
        },
        card_info.sectors
    );

    let defaults = Defaults {
        mac: board.factory_mac,
        shelf: DEFAULT_SHELF,
        slot: DEFAULT_SLOT,
        buffer_count: RECEIVE_FRAMES,
        max_frame_len: MAX_FRAME_LEN,
    };
    let Board {
        mut ethernet,
        mut watchdog,
        ..
    } = board;
    let Some(record_buffer) = cortex_m::singleton!(: CopyBuffer = [0; COPY_LEN]) else {
        reset()
    };
    let mut blade = match Blade::boot(&mut ethernet, card, &defaults, record_buffer) {
        Ok(blade) => blade,
        Err(error) => {
            // Without a feed the watchdog resets the chip and the boot is retried.
            defmt::error!("boot failed: {}", error);
            loop {
                cortex_m::asm::nop();
            }
        }
    };
    let config = blade.target().config();
    defmt::info!(
        "export e{=u16}.{=u8} on {=[u8]:02x}: {=u64} sectors, buffer count {=u16}",
        config.shelf,
        config.slot,
        blade.port().mac.0,
        blade.target().sector_count(),
        config.buffer_count
    );
    let now = Instant::ZERO;
    let sent = blade.announce(&mut ethernet, now);
    defmt::info!("announced to {=usize} destination(s); serving", sent);

    let mut link = ethernet.link();
    defmt::info!("link {}", link);
    let mut idle: u32 = 0;
    let mut deepest_stack = 0;
    loop {
        watchdog.feed();
        if blade.poll(&mut ethernet, now) {
            idle = 0;
            continue;
        }
        idle = idle.wrapping_add(1);
        if !idle.is_multiple_of(HOUSEKEEPING_EVERY) {
            continue;
        }
        if blade.unsaved() {
            blade.save_if_changed();
        }
        let now_link = ethernet.link();
        if now_link != link {
            defmt::info!("link {}", now_link);
            if now_link == LinkState::Up {
                blade.announce(&mut ethernet, now);
            }
        }
        link = now_link;
        let stack = stack_high_water();
        if stack > deepest_stack {
            deepest_stack = stack;
            let target = blade.target().stats();
            defmt::info!(
                "stack high-water {=usize} bytes; frames {=u64}, replies {=u64}, mac {}",
                stack,
                target.frames,
                target.replies,
                ethernet.counters()
            );
        }
    }
}

static PANICKING: AtomicBool = AtomicBool::new(false);

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    // A panic inside the logger would recurse: the second one resets at once.
    if !PANICKING.swap(true, Ordering::Relaxed) {
        let message = info.message().as_str().unwrap_or("(formatted message)");
        match info.location() {
            Some(location) => defmt::error!(
                "panic at {=str}:{=u32}: {=str}; resetting",
                location.file(),
                location.line(),
                message
            ),
            None => defmt::error!("panic: {=str}; resetting", message),
        }
    }
    reset()
}

#[exception]
unsafe fn HardFault(frame: &ExceptionFrame) -> ! {
    if !PANICKING.swap(true, Ordering::Relaxed) {
        defmt::error!("hard fault at pc {=u32:#x}; resetting", frame.pc());
    }
    reset()
}
