//! What every board binary does once its hardware is up: the blade's main loop, the build-time
//! identity defaults, and the crash report its panic and HardFault handlers print.
//!
//! Guarantees:
//!
//! * [`serve`] feeds the watchdog before every poll and nowhere else, so a stalled loop (or a
//!   failed boot, which waits without feeding) ends in a watchdog reset.
//! * The housekeeping round (retry an unsaved record, re-announce when the link comes up, log
//!   a new stack high-water mark) runs only when the MAC has been idle for
//!   [`HOUSEKEEPING_EVERY`] polls: it never delays a frame that is waiting.
//! * [`report_crash`] logs at most one crash per boot: a panic inside the logger (or a fault
//!   while a panic is reported) skips the log, and the caller resets the chip.
//!
//! Board-specific bring-up (clocks, pins, the card's start-up loop and its log, the `#[entry]`
//! function) stays in `src/bin/<board>.rs`; the crash handlers every board shares come from
//! [`crash_handlers!`](crate::crash_handlers), the reset and the stack measure from
//! `aoe_hal::cpu`. [`serve`] and [`crash`] exist on microcontroller builds only.

use crate::Defaults;
use core::sync::atomic::{AtomicBool, Ordering};
#[cfg(target_os = "none")]
use {
    crate::Blade,
    crate::persist::{COPY_LEN, CopyBuffer},
    aoe_core::disk::Disk,
    aoe_hal::cpu::{reset, stack_high_water},
    aoe_hal::{EthernetMac, LinkState},
    smoltcp::time::Instant,
};

/// Shelf when the card's record does not set one (`AOE_SHELF` at build time, default 0).
#[allow(clippy::cast_possible_truncation)] // `parse_decimal` stops the build above `max`.
pub const DEFAULT_SHELF: u16 = parse_decimal(option_env!("AOE_SHELF"), 0, 0xFFFE) as u16;
/// Slot when the card's record does not set one (`AOE_SLOT` at build time, default 1).
#[allow(clippy::cast_possible_truncation)] // `parse_decimal` stops the build above `max`.
pub const DEFAULT_SLOT: u8 = parse_decimal(option_env!("AOE_SLOT"), 1, 0xFE) as u8;
/// Idle polls between housekeeping rounds (a PHY register read, the stack check).
pub const HOUSEKEEPING_EVERY: u32 = 1 << 16;

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

impl Defaults {
    /// The board's MAC and frame figures with the build-time address ([`DEFAULT_SHELF`],
    /// [`DEFAULT_SLOT`]).
    pub fn with_build_address(mac: [u8; 6], buffer_count: u16, max_frame_len: usize) -> Defaults {
        Defaults {
            mac,
            shelf: DEFAULT_SHELF,
            slot: DEFAULT_SLOT,
            buffer_count,
            max_frame_len,
        }
    }
}

/// Boots the blade on `card` and serves it on `mac` for ever: feed the watchdog, answer one
/// frame; when idle, retry an unsaved record, follow the link (announce again when it comes
/// up) and log the deepest stack use so far ([`stack_high_water`], in bytes).
///
/// The state record is read and written through a 2 KiB buffer in a `static` taken here, once.
/// If the boot fails (card too small or unreadable, invalid identity) the error is logged and
/// the watchdog, no longer fed, resets the chip to try again.
// Inlined: the caller never returns, so separate frames for it and this loop would only add
// the caller's frame to the stack the loop runs on (measured: +552 bytes on lm3s6965evb).
#[cfg(target_os = "none")]
#[inline(always)]
pub fn serve<M: EthernetMac, D: Disk>(
    mut mac: M,
    card: D,
    defaults: &Defaults,
    mut feed_watchdog: impl FnMut(),
) -> ! {
    let Some(record_buffer) = cortex_m::singleton!(: CopyBuffer = [0; COPY_LEN]) else {
        // Only a second call gets here; the buffer is the first call's.
        error!("serve called twice; resetting");
        reset()
    };
    let mut blade = match Blade::boot(&mut mac, card, defaults, record_buffer) {
        Ok(blade) => blade,
        Err(error) => {
            error!("boot failed: {}", error);
            loop {
                core::hint::spin_loop();
            }
        }
    };
    let config = blade.target().config();
    info!(
        "export e{=u16}.{=u8} on {=[u8]:02x}: {=u64} sectors, buffer count {=u16}",
        config.shelf,
        config.slot,
        blade.port().mac.0,
        blade.target().sector_count(),
        config.buffer_count
    );
    // No clock: neither the target nor the MAC drivers use the time.
    let now = Instant::ZERO;
    let sent = blade.announce(&mut mac, now);
    info!("announced to {=usize} destination(s); serving", sent);

    let mut link = mac.link();
    info!("link {}", link);
    let mut idle: u32 = 0;
    let mut deepest_stack = 0;
    loop {
        feed_watchdog();
        if blade.poll(&mut mac, now) {
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
        let now_link = mac.link();
        if now_link != link {
            info!("link {}", now_link);
            if now_link == LinkState::Up {
                blade.announce(&mut mac, now);
            }
        }
        link = now_link;
        let stack = stack_high_water();
        if stack > deepest_stack {
            deepest_stack = stack;
            let target = blade.target().stats();
            info!(
                "stack high-water {=usize} bytes; frames {=u64}, replies {=u64}, mac {}",
                stack,
                target.frames,
                target.replies,
                mac.counters()
            );
        }
    }
}

/// Calls `attempt` on `board` until it succeeds and returns its value: the watchdog is fed
/// before each try (a board waiting for a card keeps running; a try that hangs ends in a
/// watchdog reset), and each failure is logged as `what`. Every board starts its card so,
/// because a card may be inserted after power-up.
#[cfg(feature = "defmt")]
pub fn until_ok<B, T, E: defmt::Format>(
    what: &str,
    board: &mut B,
    mut feed_watchdog: impl FnMut(&mut B),
    mut attempt: impl FnMut(&mut B) -> Result<T, E>,
) -> T {
    loop {
        feed_watchdog(board);
        match attempt(board) {
            Ok(value) => return value,
            Err(error) => error!("{=str}: {} (retrying)", what, error),
        }
    }
}

/// A crash for [`report_crash`] to log.
#[derive(Debug, Clone, Copy)]
pub enum Crash<'a> {
    /// From the `#[panic_handler]`.
    Panic(&'a core::panic::PanicInfo<'a>),
    /// From the HardFault handler: the faulting program counter.
    HardFault(u32),
}

/// Set by the first crash report of this boot.
static CRASH_REPORTED: AtomicBool = AtomicBool::new(false);

/// Logs `crash` (unless one was already reported this boot) and resets the chip: what the
/// handlers [`crash_handlers!`](crate::crash_handlers) defines call.
#[cfg(target_os = "none")]
pub fn crash(crash: Crash<'_>) -> ! {
    report_crash(crash);
    reset()
}

/// Defines the board binary's `#[panic_handler]` and HardFault handler: both log the crash
/// once ([`report_crash`]) and reset the chip. Use it once, at the top level of a binary that
/// depends on `cortex-m-rt`.
#[macro_export]
macro_rules! crash_handlers {
    () => {
        #[panic_handler]
        fn panic(info: &core::panic::PanicInfo) -> ! {
            $crate::crash($crate::Crash::Panic(info))
        }

        #[cortex_m_rt::exception]
        unsafe fn HardFault(frame: &cortex_m_rt::ExceptionFrame) -> ! {
            $crate::crash($crate::Crash::HardFault(frame.pc()))
        }
    };
}

/// Logs `crash` unless one was already reported this boot; the caller resets the chip next.
pub fn report_crash(crash: Crash<'_>) {
    // Load and store, not swap: ARMv6-M has no atomic swap, and the guard is against a
    // crash inside the report itself, which comes after the store.
    if CRASH_REPORTED.load(Ordering::Relaxed) {
        return;
    }
    CRASH_REPORTED.store(true, Ordering::Relaxed);
    match crash {
        Crash::Panic(info) => {
            let message = info.message().as_str().unwrap_or("(formatted message)");
            match info.location() {
                Some(location) => error!(
                    "panic at {=str}:{=u32}: {=str}; resetting",
                    location.file(),
                    location.line(),
                    message
                ),
                None => error!("panic: {=str}; resetting", message),
            }
        }
        Crash::HardFault(pc) => error!("hard fault at pc {=u32:#x}; resetting", pc),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_decimal;

    #[test]
    fn build_time_numbers() {
        assert_eq!(parse_decimal(None, 1, 0xFE), 1);
        assert_eq!(parse_decimal(Some("0"), 1, 0xFE), 0);
        assert_eq!(parse_decimal(Some("254"), 1, 0xFE), 254);
        assert_eq!(parse_decimal(Some("65534"), 0, 0xFFFE), 65534);
    }

    #[test]
    #[should_panic(expected = "must be decimal")]
    fn build_time_number_not_decimal() {
        parse_decimal(Some("7a"), 0, 0xFFFE);
    }

    #[test]
    #[should_panic(expected = "below 255")]
    fn build_time_number_too_big() {
        parse_decimal(Some("255"), 1, 0xFE);
    }
}
