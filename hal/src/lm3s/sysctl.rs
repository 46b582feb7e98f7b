//! System control: clock gating, the PLL, the factory MAC address and the reset cause.
//!
//! Guarantee: [`SystemControl::use_pll_50mhz`] never waits forever; if the PLL does not lock
//! it leaves the chip on the crystal and says so.

use crate::mmio::{Block, RegisterOffset};

/// Base address of the system control block.
pub const BASE: usize = 0x400F_E000;

const RIS: RegisterOffset = RegisterOffset(0x050);
const RESC: RegisterOffset = RegisterOffset(0x05C);
const RCC: RegisterOffset = RegisterOffset(0x060);
const RCGC0: RegisterOffset = RegisterOffset(0x100);
const RCGC1: RegisterOffset = RegisterOffset(0x104);
const RCGC2: RegisterOffset = RegisterOffset(0x108);
const USER0: RegisterOffset = RegisterOffset(0x1E0);
const USER1: RegisterOffset = RegisterOffset(0x1E4);

/// RIS: the PLL has locked.
const RIS_PLLLRIS: u32 = 1 << 6;
const RCC_BYPASS: u32 = 1 << 11;
/// RCC: PLL output disabled (set at reset).
const RCC_OEN: u32 = 1 << 12;
const RCC_PWRDN: u32 = 1 << 13;
const RCC_USESYSDIV: u32 = 1 << 22;
const RCC_XTAL_MASK: u32 = 0x1F << 6;
const RCC_OSCSRC_MASK: u32 = 0x3 << 4;
const RCC_SYSDIV_MASK: u32 = 0xF << 23;
/// XTAL field value for the 8 MHz crystal of the LM3S6965 evaluation board.
const RCC_XTAL_8MHZ: u32 = 0xE << 6;
/// SYSDIV 3 divides the 200 MHz PLL by 4: 50 MHz, the chip's maximum.
const RCC_SYSDIV_50MHZ: u32 = 3 << 23;

/// Peripherals whose clock can be gated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Gate {
    /// The watchdog (RCGC0 bit 3).
    Watchdog,
    /// SSI0 (RCGC1 bit 4).
    Ssi0,
    /// A GPIO port, 0 = A … 6 = G (RCGC2 bits 0–6).
    Gpio(u8),
    /// The Ethernet MAC (RCGC2 bit 28).
    EthernetMac,
    /// The Ethernet PHY (RCGC2 bit 30).
    EthernetPhy,
}

/// Why the chip last reset (RESC bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ResetCause(pub u32);

impl ResetCause {
    /// The watchdog reset the chip.
    pub fn watchdog(&self) -> bool {
        self.0 & (1 << 3) != 0
    }

    /// Software asked for the reset (the panic handler does).
    pub fn software(&self) -> bool {
        self.0 & (1 << 4) != 0
    }
}

/// The system control block.
#[derive(Debug)]
pub struct SystemControl {
    regs: Block,
}

impl SystemControl {
    /// Takes the system control block.
    ///
    /// # Safety
    /// Only one `SystemControl` may exist, and the code must run on an LM3S6965.
    pub unsafe fn new() -> SystemControl {
        SystemControl {
            // SAFETY: the caller guarantees the chip and that this is the only owner.
            regs: unsafe { Block::new(BASE) },
        }
    }

    /// Switches a peripheral's clock on. The datasheet asks for a few cycles before the
    /// peripheral is touched; the caller's next register writes take longer than that.
    pub fn enable(&self, gate: Gate) {
        let (register, bit) = match gate {
            Gate::Watchdog => (RCGC0, 3),
            Gate::Ssi0 => (RCGC1, 4),
            Gate::Gpio(port) => (RCGC2, u32::from(port.min(6))),
            Gate::EthernetMac => (RCGC2, 28),
            Gate::EthernetPhy => (RCGC2, 30),
        };
        self.regs.set_bits(register, 1 << bit);
        // Read back: the write has reached the clock gate before we go on.
        let _ = self.regs.read(register);
    }

    /// Runs the core from the PLL at 50 MHz (8 MHz crystal). Returns false, leaving the
    /// chip on the crystal, if the PLL did not report lock within `lock_polls` reads.
    pub fn use_pll_50mhz(&self, lock_polls: u32) -> bool {
        // Datasheet order: bypass the PLL and stop the divider, then program the crystal,
        // power the PLL and enable its output (RCC resets with PWRDN and OEN set), then pick
        // the divider and wait for lock before leaving bypass.
        self.regs
            .modify(RCC, |rcc| (rcc | RCC_BYPASS) & !RCC_USESYSDIV);
        self.regs.modify(RCC, |rcc| {
            (rcc & !(RCC_XTAL_MASK | RCC_OSCSRC_MASK | RCC_PWRDN | RCC_OEN)) | RCC_XTAL_8MHZ
        });
        self.regs.modify(RCC, |rcc| {
            (rcc & !RCC_SYSDIV_MASK) | RCC_SYSDIV_50MHZ | RCC_USESYSDIV
        });
        for _ in 0..lock_polls {
            if self.regs.read(RIS) & RIS_PLLLRIS != 0 {
                self.regs.clear_bits(RCC, RCC_BYPASS);
                return true;
            }
        }
        false
    }

    /// The MAC address programmed at the factory into USER0/USER1 (three octets each, low
    /// octet first), or `None` when the registers are blank (all ones, or all zero). QEMU puts the `-nic
    /// mac=` address here, as TI's boards ship it.
    pub fn factory_mac(&self) -> Option<[u8; 6]> {
        let user0 = self.regs.read(USER0);
        let user1 = self.regs.read(USER1);
        if user0 == u32::MAX || user1 == u32::MAX {
            return None;
        }
        let [a, b, c, _] = user0.to_le_bytes();
        let [d, e, f, _] = user1.to_le_bytes();
        let mac = [a, b, c, d, e, f];
        // QEMU without a NIC leaves them zero.
        (mac != [0; 6]).then_some(mac)
    }

    /// The reset cause; cleared so that the next boot sees only its own cause.
    pub fn take_reset_cause(&self) -> ResetCause {
        let cause = self.regs.read(RESC);
        self.regs.write(RESC, 0);
        ResetCause(cause)
    }
}
