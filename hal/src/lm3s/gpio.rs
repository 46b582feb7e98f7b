//! GPIO ports: direction, alternate functions and address-masked output pins.
//!
//! Guarantee: an [`OutputPin`] changes only its own pin; the port's DATA register is written
//! through the address mask, so no read-modify-write race with other pins exists.

use crate::mmio::{Block, RegisterOffset};
use core::convert::Infallible;

/// Base addresses of ports A to G.
pub const PORT_BASES: [usize; 7] = [
    0x4000_4000,
    0x4000_5000,
    0x4000_6000,
    0x4000_7000,
    0x4002_4000,
    0x4002_5000,
    0x4002_6000,
];

const DIR: RegisterOffset = RegisterOffset(0x400);
const AFSEL: RegisterOffset = RegisterOffset(0x420);
const DR2R: RegisterOffset = RegisterOffset(0x500);
const PUR: RegisterOffset = RegisterOffset(0x510);
const DEN: RegisterOffset = RegisterOffset(0x51C);

/// The DATA register as seen through the mask of pin `pin`: bits [9:2] of the address select
/// which data bits a write changes.
fn masked_data(pin: u8) -> RegisterOffset {
    RegisterOffset((1usize << pin) << 2)
}

/// One GPIO port.
#[derive(Debug)]
pub struct Port {
    regs: Block,
}

impl Port {
    /// Takes GPIO port `index` (0 = A … 6 = G, clamped).
    ///
    /// # Safety
    /// Only one `Port` per port may exist, its clock must be on, and the code must run on an
    /// LM3S6965.
    pub unsafe fn new(index: u8) -> Port {
        let base = PORT_BASES[usize::from(index.min(6))];
        Port {
            // SAFETY: the caller guarantees the chip, the clock and exclusive ownership.
            regs: unsafe { Block::new(base) },
        }
    }

    /// Hands pins `mask` to their peripheral (alternate function), digital, 2 mA drive.
    pub fn alternate(&self, mask: u8) {
        let mask = u32::from(mask);
        self.regs.set_bits(AFSEL, mask);
        self.regs.set_bits(DR2R, mask);
        self.regs.set_bits(DEN, mask);
    }

    /// Makes pins `mask` digital inputs with pull-ups (for SSI receive lines).
    pub fn pull_up(&self, mask: u8) {
        self.regs.set_bits(PUR, u32::from(mask));
    }

    /// Makes `pin` (0–7) a digital output driven to `high`, and returns it.
    ///
    /// QEMU's model only changes DATA bits that DIR marks as outputs, so the direction is set
    /// before the level.
    pub fn output(&self, pin: u8, high: bool) -> OutputPin {
        let pin = pin & 7;
        let bit = 1u32 << pin;
        self.regs.clear_bits(AFSEL, bit);
        self.regs.set_bits(DEN, bit);
        self.regs.set_bits(DIR, bit);
        let output = OutputPin {
            // SAFETY: the same register block this `Port` owns; the pin only ever writes its
            // own masked DATA address, which no other pin's accesses overlap.
            regs: unsafe { Block::new(self.regs.base()) },
            data: masked_data(pin),
        };
        output.set(high);
        output
    }
}

/// A GPIO output pin.
#[derive(Debug)]
pub struct OutputPin {
    regs: Block,
    data: RegisterOffset,
}

impl OutputPin {
    fn set(&self, high: bool) {
        self.regs.write(self.data, if high { 0xFF } else { 0 });
    }
}

impl embedded_hal::digital::ErrorType for OutputPin {
    type Error = Infallible;
}

impl embedded_hal::digital::OutputPin for OutputPin {
    fn set_low(&mut self) -> Result<(), Infallible> {
        self.set(false);
        Ok(())
    }

    fn set_high(&mut self) -> Result<(), Infallible> {
        self.set(true);
        Ok(())
    }
}
