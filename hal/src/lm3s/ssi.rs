//! SSI0, an ARM PL022 synchronous serial port, as an embedded-hal 1.0 [`SpiBus`] master.
//!
//! Guarantees: SPI mode 0 (Freescale format, CPOL = 0, CPHA = 0), 8-bit words, master only;
//! every word sent produces exactly one word read back, so the receive FIFO never holds stale
//! data between calls; [`SpiBus::read`] clocks out `0xFF`, which SD cards in SPI mode need.
//! Chip select is not part of the bus: the caller drives a GPIO (see
//! [`crate::lm3s::gpio::OutputPin`]).
//!
//! QEMU note: the model transfers instantly and ignores the clock rate and frame format.

use crate::mmio::{Block, RegisterOffset};
use core::convert::Infallible;
use embedded_hal::spi::{ErrorType, SpiBus};

/// Base address of SSI0.
pub const SSI0_BASE: usize = 0x4000_8000;

const CR0: RegisterOffset = RegisterOffset(0x00);
const CR1: RegisterOffset = RegisterOffset(0x04);
const DR: RegisterOffset = RegisterOffset(0x08);
const SR: RegisterOffset = RegisterOffset(0x0C);
const CPSR: RegisterOffset = RegisterOffset(0x10);

/// CR0 data size select: 8-bit words.
const CR0_DSS_8BIT: u32 = 0x7;
/// CR1 synchronous serial port enable (MS, bit 2, stays 0: master).
const CR1_SSE: u32 = 1 << 1;
/// SR: transmit FIFO not full.
const SR_TNF: u32 = 1 << 1;
/// SR: receive FIFO not empty.
const SR_RNE: u32 = 1 << 2;
/// SR: busy shifting a frame.
const SR_BSY: u32 = 1 << 4;

/// Word clocked out when the caller has nothing to send.
const FILL: u8 = 0xFF;

/// The PL022 as an SPI master bus.
#[derive(Debug)]
pub struct Ssi {
    regs: Block,
    clock_hz: u32,
}

impl Ssi {
    /// Takes SSI0 (its clock and pins must already be set up) and runs it at no more than
    /// `bus_hz`, from a system clock of `system_hz`.
    ///
    /// # Safety
    /// Only one `Ssi` for SSI0 may exist, its clock must be on, and the code must run on an
    /// LM3S6965.
    pub unsafe fn new(system_hz: u32, bus_hz: u32) -> Ssi {
        let ssi = Ssi {
            // SAFETY: the caller guarantees the chip, the clock and exclusive ownership.
            regs: unsafe { Block::new(SSI0_BASE) },
            clock_hz: system_hz,
        };
        ssi.set_frequency(bus_hz);
        ssi
    }

    /// Sets the bit rate to the fastest rate not above `bus_hz` the dividers allow
    /// (system clock / (CPSR × (1 + SCR)), CPSR even 2–254, SCR 0–255).
    pub fn set_frequency(&self, bus_hz: u32) {
        let bus_hz = bus_hz.max(1);
        let mut prescale = 2u32;
        let mut scr = 0u32;
        while prescale <= 254 {
            // The smallest 1 + SCR with clock / (prescale × (1 + SCR)) <= bus_hz.
            let divisor = self.clock_hz.div_ceil(prescale * bus_hz).max(1);
            if divisor <= 256 {
                scr = divisor - 1;
                break;
            }
            prescale += 2;
        }
        let prescale = prescale.min(254);
        self.regs.clear_bits(CR1, CR1_SSE);
        self.regs.write(CPSR, prescale);
        self.regs.write(CR0, (scr.min(255) << 8) | CR0_DSS_8BIT);
        self.regs.write(CR1, CR1_SSE);
    }

    /// Sends one word and returns the word received meanwhile.
    #[inline]
    fn exchange(&mut self, word: u8) -> u8 {
        while self.regs.read(SR) & SR_TNF == 0 {}
        self.regs.write(DR, u32::from(word));
        while self.regs.read(SR) & SR_RNE == 0 {}
        (self.regs.read(DR) & 0xFF) as u8
    }
}

impl ErrorType for Ssi {
    type Error = Infallible;
}

impl SpiBus<u8> for Ssi {
    fn read(&mut self, words: &mut [u8]) -> Result<(), Infallible> {
        for word in words {
            *word = self.exchange(FILL);
        }
        Ok(())
    }

    fn write(&mut self, words: &[u8]) -> Result<(), Infallible> {
        for &word in words {
            self.exchange(word);
        }
        Ok(())
    }

    fn transfer(&mut self, read: &mut [u8], write: &[u8]) -> Result<(), Infallible> {
        for index in 0..read.len().max(write.len()) {
            let received = self.exchange(write.get(index).copied().unwrap_or(FILL));
            if let Some(slot) = read.get_mut(index) {
                *slot = received;
            }
        }
        Ok(())
    }

    fn transfer_in_place(&mut self, words: &mut [u8]) -> Result<(), Infallible> {
        for word in words {
            *word = self.exchange(*word);
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), Infallible> {
        while self.regs.read(SR) & SR_BSY != 0 {}
        Ok(())
    }
}
