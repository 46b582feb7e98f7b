//! The baseline: the same start-up code, buffers and receive loop as `engine.rs`, without the
//! engine. `.ci/size` subtracts its sizes from the engine probe's.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use core::hint::black_box;
use cortex_m_rt::entry;

const DISK_BYTES: usize = 16 * 512;
const FRAME: usize = 1514;

#[entry]
fn main() -> ! {
    static mut DISK: [u8; DISK_BYTES] = [0; DISK_BYTES];
    static mut RX: [u8; FRAME] = [0; FRAME];
    static mut TX: [u8; FRAME] = [0; FRAME];

    black_box(&mut *DISK);
    loop {
        black_box(&mut *RX);
        let len = black_box(FRAME).min(FRAME);
        black_box(&mut TX[..len]);
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    loop {
        black_box(());
    }
}
