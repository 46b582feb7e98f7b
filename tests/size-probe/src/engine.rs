//! The whole engine, as firmware would use it: an export over a RAM disk announcing itself and
//! answering every frame through `Target::handle`. Frame contents and lengths pass through
//! `black_box`, so the optimizer must keep every path of the engine.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use aoe_core::disk::MemDisk;
use aoe_core::wire::EthernetAddress;
use aoe_core::{Config, Port, Target};
use core::hint::black_box;
use cortex_m_rt::entry;

/// Sectors of the RAM disk; the disk's size is not the engine's, and is subtracted anyway.
const DISK_BYTES: usize = 16 * 512;
/// A standard Ethernet frame without FCS.
const FRAME: usize = 1514;

type Engine = Target<MemDisk<&'static mut [u8]>>;

#[entry]
fn main() -> ! {
    // cortex-m-rt turns these into `&'static mut` without `unsafe` in this crate.
    static mut DISK: [u8; DISK_BYTES] = [0; DISK_BYTES];
    static mut RX: [u8; FRAME] = [0; FRAME];
    static mut TX: [u8; FRAME] = [0; FRAME];
    static mut TARGET: Option<Engine> = None;

    let port = Port::new(EthernetAddress([0x02, 0, 0, 0, 0, 0x01]), 1500);
    let Ok(target) = Target::new(Config::new(1, 0), MemDisk::new(&mut DISK[..])) else {
        halt()
    };
    let target = TARGET.insert(target);
    if let Some(len) = target.announce(&port, EthernetAddress::BROADCAST, &mut TX[..]) {
        black_box(&TX[..len]);
    }
    loop {
        // A frame arrives: contents and length unknown to the compiler.
        black_box(&mut *RX);
        let len = black_box(FRAME).min(FRAME);
        if let Some(reply) = target.handle(&port, &RX[..len], &mut TX[..]) {
            black_box(&TX[..reply]);
        }
    }
}

fn halt() -> ! {
    loop {
        black_box(());
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    halt()
}
