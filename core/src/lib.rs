//! # aoe-core: the ATA over Ethernet target engine
//!
//! `aoe-core` answers AoE r11 frames for one exported disk. It is `no_std`, allocates nothing,
//! contains no `unsafe`, and has no clock and no I/O of its own: the platform hands it frames
//! and a [`Disk`], and sends what it writes back. The same code runs in the EtherDrive blade
//! firmware, in the Linux host target, in the tests and in the fuzzers.
//!
//! ## Layers
//!
//! * [`wire`]: checked, zero-copy views and plain representations of the AoE header and the
//!   four command arguments (ATA, Query Config, MAC Mask List, Reserve/Release). Total
//!   parsing; no accessor panics once the length check passed.
//! * [`disk`]: the [`Disk`] trait (512-octet sectors, `u64` LBA, read/write/flush), its error
//!   kinds, the [`ReadOnly`](disk::ReadOnly) and [`Window`](disk::Window) adapters, an
//!   in-memory [`MemDisk`](disk::MemDisk) and a fault-injecting
//!   [`FaultyDisk`](disk::FaultyDisk).
//! * [`identify`]: the IDENTIFY DEVICE data an initiator reads for capacity and features.
//! * [`target`]: the [`Target`] state machine, which decides, for every frame, silence or the
//!   reply the protocol asks for, and plans the disk operation.
//!
//! ## Processing frames
//!
//! One frame at a time with a blocking disk (a microcontroller):
//!
//! ```
//! use aoe_core::{Config, Port, Target, disk::MemDisk, wire::EthernetAddress};
//!
//! let disk = MemDisk::new([0u8; 64 * 512]);
//! let mut target = Target::new(Config::new(7, 1), disk).unwrap();
//! let port = Port::new(EthernetAddress([0x02, 0, 0, 0, 0, 0x01]), 1500);
//!
//! // A broadcast Query Config from the Linux initiator's discovery.
//! let mut rx = [0u8; 60];
//! rx[..6].copy_from_slice(&[0xff; 6]);
//! rx[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x99]);
//! rx[12..14].copy_from_slice(&0x88a2u16.to_be_bytes());
//! rx[14..20].copy_from_slice(&[0x10, 0, 0xff, 0xff, 0xff, 1]);
//!
//! let mut tx = [0u8; 1514];
//! let len = target.handle(&port, &rx, &mut tx).expect("a reply");
//! assert_eq!(len, 60);
//! assert_eq!(&tx[16..18], &7u16.to_be_bytes()); // our shelf, not the wildcard
//! assert_eq!(tx[28], 2); // sectors per frame at MTU 1500
//! ```
//!
//! With a smoltcp `phy::Device`, [`Target::poll`] does the token dance,
//! [`Target::poll_with`] runs a platform step (saving state) before each reply leaves, and
//! [`Target::announce_on`] sends the start-up announcement.
//!
//! A host fast path splits the work in two to batch frames: [`Target::accept`] returns a
//! [`Plan`]; the platform runs [`Plan::io`] itself in the frame's own buffer, reading straight
//! into the reply or writing straight from the request at [`DiskIo::data_range`]; then
//! [`Target::complete`] writes the headers and status over the request, in place. The core
//! never copies sector data.
//!
//! ## Features
//!
//! * `log`: log through the `log` facade (host).
//! * `defmt`: log through `defmt` and derive `defmt::Format` (firmware).
//!
//! Neither is on by default, and they are mutually exclusive.
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

// Declared first so that every module sees the logging macros.
mod fmt;

pub mod disk;
pub mod identify;
pub mod target;
pub mod wire;

pub use disk::{Disk, ErrorKind, SECTOR_SIZE, Sector};
pub use target::{Config, ConfigError, DiskIo, IoOp, Plan, Port, Stats, Target};
