//! The watchdog timer: resets the chip if the firmware stops feeding it.
//!
//! Guarantee: once [`Watchdog::start`] ran, the chip resets unless [`Watchdog::feed`] is
//! called at least every `2 × timeout` (the first expiry raises an interrupt we leave masked,
//! the second resets), and the configuration is locked against stray writes.

use crate::mmio::{Block, RegisterOffset};

/// Base address of watchdog 0.
pub const BASE: usize = 0x4000_0000;

const LOAD: RegisterOffset = RegisterOffset(0x000);
const CTL: RegisterOffset = RegisterOffset(0x008);
const ICR: RegisterOffset = RegisterOffset(0x00C);
const LOCK: RegisterOffset = RegisterOffset(0xC00);

/// CTL: count and raise the interrupt on expiry.
const CTL_INTEN: u32 = 1 << 0;
/// CTL: reset on the second expiry.
const CTL_RESEN: u32 = 1 << 1;
/// LOCK: the key that unlocks the registers; any other value locks them.
const UNLOCK_KEY: u32 = 0x1ACC_E551;

/// Watchdog 0.
#[derive(Debug)]
pub struct Watchdog {
    regs: Block,
}

impl Watchdog {
    /// Takes watchdog 0 (its clock must be on).
    ///
    /// # Safety
    /// Only one `Watchdog` may exist, and the code must run on an LM3S6965.
    pub unsafe fn new() -> Watchdog {
        Watchdog {
            // SAFETY: the caller guarantees the chip, the clock and exclusive ownership.
            regs: unsafe { Block::new(BASE) },
        }
    }

    /// Starts counting `ticks` system clock cycles per expiry, with reset enabled.
    pub fn start(&mut self, ticks: u32) {
        self.regs.write(LOCK, UNLOCK_KEY);
        self.regs.write(LOAD, ticks);
        self.regs.write(CTL, CTL_INTEN | CTL_RESEN);
        self.regs.write(LOCK, 0);
    }

    /// Reloads the counter.
    #[inline]
    pub fn feed(&mut self) {
        self.regs.write(LOCK, UNLOCK_KEY);
        // Clearing the interrupt reloads the counter from LOAD.
        self.regs.write(ICR, 1);
        self.regs.write(LOCK, 0);
    }
}
