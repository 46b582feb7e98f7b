//! Shared helpers for the vblade-rs engine tests: a harness around
//! `Target<MemDisk<Vec<u8>>>`, and the test support layer of `aoe-testkit` (the raw-offset
//! frame builder, the reply view, sector images), re-exported under the names the tests use.
//!
//! Frames are built from raw offsets, not with `aoe_core::wire` emitters, so the tests check
//! the core against an independent encoding (see `aoe_testkit::frame`).

pub use aoe_testkit::frame::{
    BROADCAST_MAC, Frame, INITIATOR_MAC, Initiator, OTHER_MAC, SHELF, SLOT, TARGET_MAC, aflags,
    ata_cmd,
};
pub use aoe_testkit::reply::Reply;
pub use aoe_testkit::sectors::{pattern, sector_image};

use aoe_core::disk::{Disk, MemDisk};
use aoe_core::{Config, Port, Target};

/// A target over an in-memory disk, with the port it listens on.
pub struct Harness {
    /// The engine under test.
    pub target: Target<MemDisk<Vec<u8>>>,
    /// The port frames arrive on.
    pub port: Port,
}

impl Harness {
    /// Export `SHELF.SLOT` of a zeroed disk of `sectors` sectors on a port with `mtu`.
    pub fn new(sectors: usize, mtu: usize) -> Harness {
        let mut config = Config::new(SHELF, SLOT);
        config.max_frame_len = 9014;
        Harness::with_config(config, sectors, mtu)
    }

    /// Like [`Harness::new`] with a given configuration.
    pub fn with_config(config: Config, sectors: usize, mtu: usize) -> Harness {
        let disk = MemDisk::new(vec![0u8; sectors * 512]);
        Harness {
            target: Target::new(config, disk).expect("valid test config"),
            port: Port::new(TARGET_MAC, mtu),
        }
    }

    /// Hands one frame to the target; returns the reply, if any. The transmit buffer is
    /// poisoned with 0xA5 first, so an octet the target failed to write shows up in the reply.
    pub fn send(&mut self, frame: &Frame) -> Option<Reply> {
        let mut tx = vec![0xA5u8; 9014];
        let len = self.target.handle(&self.port, &frame.bytes, &mut tx)?;
        tx.truncate(len);
        Some(Reply { bytes: tx })
    }

    /// The disk's bytes.
    pub fn disk_bytes(&self) -> &[u8] {
        self.target.disk().as_bytes()
    }

    /// Fills sector `lba` of the disk with `value`.
    pub fn fill_sector(&mut self, lba: usize, value: u8) {
        self.target.disk_mut().as_bytes_mut()[lba * 512..(lba + 1) * 512].fill(value);
    }

    /// Exported sectors.
    pub fn sectors(&self) -> u64 {
        self.target.disk().sector_count()
    }
}
