//! Minimal AoE request builders and reply readers for the daemon tests, written from the
//! protocol's byte layout (independent of aoe-core's emitters).
#![allow(dead_code)]

use aoe_net::Link;
use std::time::Duration;

/// Builds requests from one MAC to one shelf.slot.
pub struct Client {
    pub mac: [u8; 6],
    pub dst: [u8; 6],
    pub shelf: u16,
    pub slot: u8,
}

impl Client {
    pub fn header(&self, command: u8, tag: u32) -> Vec<u8> {
        let mut f = Vec::with_capacity(1100);
        f.extend_from_slice(&self.dst);
        f.extend_from_slice(&self.mac);
        f.extend_from_slice(&0x88a2u16.to_be_bytes());
        f.extend_from_slice(&[0x10, 0]);
        f.extend_from_slice(&self.shelf.to_be_bytes());
        f.push(self.slot);
        f.push(command);
        f.extend_from_slice(&tag.to_be_bytes());
        f
    }

    pub fn query_config(&self, tag: u32) -> Vec<u8> {
        let mut f = self.header(1, tag);
        f.extend_from_slice(&[0; 8]);
        f
    }

    /// An ATA command with LBA48 registers.
    pub fn ata(&self, tag: u32, aflags: u8, cmd: u8, lba: u64, count: u8, data: &[u8]) -> Vec<u8> {
        let mut f = self.header(0, tag);
        f.extend_from_slice(&[aflags, 0, count, cmd]);
        f.extend_from_slice(&lba.to_le_bytes()[..6]);
        f.extend_from_slice(&[0, 0]);
        f.extend_from_slice(data);
        f
    }

    pub fn read(&self, tag: u32, lba: u64, count: u8) -> Vec<u8> {
        self.ata(tag, 0x40, 0x24, lba, count, &[])
    }

    pub fn write(&self, tag: u32, lba: u64, data: &[u8]) -> Vec<u8> {
        let count = u8::try_from(data.len() / 512).unwrap();
        self.ata(tag, 0x41, 0x34, lba, count, data)
    }

    pub fn identify(&self, tag: u32) -> Vec<u8> {
        self.ata(tag, 0, 0xEC, 0, 1, &[])
    }

    pub fn flush(&self, tag: u32) -> Vec<u8> {
        self.ata(tag, 0x40, 0xEA, 0, 0, &[])
    }
}

/// A received reply.
#[derive(Clone, Debug)]
pub struct Reply(pub Vec<u8>);

impl Reply {
    pub fn src(&self) -> [u8; 6] {
        self.0[6..12].try_into().unwrap()
    }
    pub fn is_response(&self) -> bool {
        self.0[14] & 0x08 != 0
    }
    pub fn is_error(&self) -> bool {
        self.0[14] & 0x04 != 0
    }
    pub fn major(&self) -> u16 {
        u16::from_be_bytes([self.0[16], self.0[17]])
    }
    pub fn minor(&self) -> u8 {
        self.0[18]
    }
    pub fn command(&self) -> u8 {
        self.0[19]
    }
    pub fn tag(&self) -> u32 {
        u32::from_be_bytes(self.0[20..24].try_into().unwrap())
    }
    pub fn buffer_count(&self) -> u16 {
        u16::from_be_bytes([self.0[24], self.0[25]])
    }
    pub fn sectors_per_frame(&self) -> u8 {
        self.0[28]
    }
    pub fn ata_status(&self) -> u8 {
        self.0[27]
    }
    pub fn ata_error(&self) -> u8 {
        self.0[25]
    }
    pub fn data(&self) -> &[u8] {
        &self.0[36..]
    }
}

/// Receives replies (R set) until `want` arrived or `timeout` passed.
pub fn collect(link: &mut dyn Link, want: usize, timeout: Duration) -> Vec<Reply> {
    aoe_testkit::link::collect(link, want, timeout)
        .into_iter()
        .map(Reply)
        .collect()
}

/// Sends `frames` as one batch.
pub fn send_all(link: &mut dyn Link, frames: &[Vec<u8>]) {
    aoe_testkit::link::send_all(link, frames);
}

/// Sends one request and waits for the reply with the same tag.
pub fn exchange(link: &mut dyn Link, frame: &[u8], timeout: Duration) -> Option<Reply> {
    aoe_testkit::link::exchange(link, frame, timeout).map(Reply)
}

pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()[0]
        })
        .collect()
}
