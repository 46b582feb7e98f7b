//! Typed access to memory-mapped registers: the only `unsafe` of the driver crates.
//!
//! Guarantee: once a [`Block`] exists, every read and write through it is a single volatile
//! 32-bit access to `base + offset`. Creating a `Block` is `unsafe`, because only the caller
//! knows that the address range is a peripheral of this chip and that no other code drives it
//! concurrently; everything after that is safe code. Drivers name registers with the
//! [`RegisterOffset`] constants of their chip module, never with bare numbers.

/// Byte offset of one 32-bit register inside a peripheral block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegisterOffset(pub usize);

/// One peripheral's register block at a fixed base address.
#[derive(Debug)]
pub struct Block {
    base: usize,
}

impl Block {
    /// A register block at `base`.
    ///
    /// # Safety
    /// `base` must be the start of a memory-mapped peripheral of the running chip whose
    /// registers are 32-bit wide and 4-byte aligned, every offset the driver uses must lie
    /// inside it, and nothing else (another `Block`, an interrupt handler) may access the
    /// same registers while this value exists. Register accesses have side effects (FIFO
    /// pops), so the caller also accepts that reads are not idempotent.
    pub const unsafe fn new(base: usize) -> Block {
        Block { base }
    }

    /// The base address.
    pub fn base(&self) -> usize {
        self.base
    }

    /// Reads the register at `offset`.
    #[inline]
    pub fn read(&self, offset: RegisterOffset) -> u32 {
        let address = (self.base + offset.0) as *const u32;
        // SAFETY: `Block::new`'s contract makes `base + offset` a valid, aligned,
        // exclusively owned device register; a volatile read is the defined way to access it.
        unsafe { address.read_volatile() }
    }

    /// Writes `value` to the register at `offset`.
    #[inline]
    pub fn write(&self, offset: RegisterOffset, value: u32) {
        let address = (self.base + offset.0) as *mut u32;
        // SAFETY: as in `read`: a valid, aligned, exclusively owned device register.
        unsafe { address.write_volatile(value) }
    }

    /// Reads, changes with `f`, and writes back the register at `offset` (not atomic against
    /// interrupts; the drivers of this crate run in one context).
    #[inline]
    pub fn modify(&self, offset: RegisterOffset, f: impl FnOnce(u32) -> u32) {
        let value = self.read(offset);
        self.write(offset, f(value));
    }

    /// Sets `bits` in the register at `offset`.
    #[inline]
    pub fn set_bits(&self, offset: RegisterOffset, bits: u32) {
        self.modify(offset, |value| value | bits);
    }

    /// Clears `bits` in the register at `offset`.
    #[inline]
    pub fn clear_bits(&self, offset: RegisterOffset, bits: u32) {
        self.modify(offset, |value| value & !bits);
    }
}
