//! The processor core, as every board uses it: resetting the chip and measuring the stack.
//!
//! Built for microcontrollers only (`target_os = "none"`), on Cortex-M (ARMv6-M and up).
//!
//! Guarantees: [`reset`] never returns; [`stack_high_water`] only reads (volatile) the RAM
//! cortex-m-rt set aside for the stack, and reports how much of it has been written since
//! reset. It needs cortex-m-rt's `paint-stack` feature (each board crate enables it), which
//! fills that RAM with `0xCCCC_CCCC` before `main`; without it the figure is meaningless.

/// The paint cortex-m-rt's `paint-stack` feature puts on every unused stack word.
const STACK_PAINT: u32 = 0xCCCC_CCCC;

/// Resets the chip (SYSRESETREQ in the System Control Block): after a panic, or to retry the
/// boot. Under QEMU with `-no-reboot` this ends the emulator.
pub fn reset() -> ! {
    cortex_m::peripheral::SCB::sys_reset()
}

/// The deepest the stack has reached since reset, in octets: cortex-m-rt painted the free RAM
/// between `_stack_end` and `_stack_start` before `main`; everything above the lowest
/// overwritten word has been used.
pub fn stack_high_water() -> usize {
    unsafe extern "C" {
        static _stack_end: u32;
        static _stack_start: u32;
    }
    let bottom = (&raw const _stack_end) as usize;
    let top = (&raw const _stack_start) as usize;
    let untouched = (bottom..top)
        .step_by(4)
        // SAFETY: every address lies in the RAM between `_stack_end` and `_stack_start`
        // (word-aligned by cortex-m-rt's linker script), which is ours; a volatile read of a
        // word of it has no side effects.
        .take_while(|&address| unsafe { (address as *const u32).read_volatile() } == STACK_PAINT)
        .count();
    top - bottom - untouched * 4
}
