//! AoE request frames built byte by byte, and the addresses every test uses.
//!
//! Frames are built from raw offsets (AoE r11 as laid out in the `aoe_core::wire` module docs),
//! never with the `aoe_core::wire` emitters, so that tests check the core against an
//! independent encoding. Keep it that way: a mistake shared by the builder and the core would
//! pass every test. (`EthernetAddress` is used only as the type of a MAC address.)
//!
//! Every builder returns the whole frame, Ethernet header included, unpadded (as veth, TAP and
//! QEMU deliver them); [`Frame::pad_to`] pads where a test needs it.

use aoe_core::wire::EthernetAddress;

/// The target port's MAC in every test.
pub const TARGET_MAC: EthernetAddress = EthernetAddress([0x02, 0x00, 0x00, 0x00, 0x00, 0x01]);
/// The default initiator's MAC.
pub const INITIATOR_MAC: EthernetAddress = EthernetAddress([0x02, 0x00, 0x00, 0x00, 0x00, 0x99]);
/// Another initiator's MAC.
pub const OTHER_MAC: EthernetAddress = EthernetAddress([0x02, 0x00, 0x00, 0x00, 0x00, 0x42]);
/// The broadcast MAC.
pub const BROADCAST_MAC: EthernetAddress = EthernetAddress([0xff; 6]);

/// Shelf of the export under test.
pub const SHELF: u16 = 7;
/// Slot of the export under test.
pub const SLOT: u8 = 3;

/// ATA command codes.
pub mod ata_cmd {
    /// READ SECTORS.
    pub const READ: u8 = 0x20;
    /// READ SECTORS EXT.
    pub const READ_EXT: u8 = 0x24;
    /// WRITE SECTORS.
    pub const WRITE: u8 = 0x30;
    /// WRITE SECTORS EXT.
    pub const WRITE_EXT: u8 = 0x34;
    /// SMART.
    pub const SMART: u8 = 0xB0;
    /// CHECK POWER MODE.
    pub const CHECK_POWER_MODE: u8 = 0xE5;
    /// FLUSH CACHE.
    pub const FLUSH: u8 = 0xE7;
    /// FLUSH CACHE EXT.
    pub const FLUSH_EXT: u8 = 0xEA;
    /// IDENTIFY DEVICE.
    pub const IDENTIFY: u8 = 0xEC;
}

/// AFlags bits.
pub mod aflags {
    /// E: LBA48.
    pub const EXT: u8 = 0x40;
    /// W: write.
    pub const WRITE: u8 = 0x01;
}

/// A request frame under construction. Every builder returns the whole frame, Ethernet header
/// included, unpadded (as veth, TAP and QEMU deliver them).
#[derive(Debug, Clone)]
pub struct Frame {
    /// The frame's octets.
    pub bytes: Vec<u8>,
}

impl Frame {
    /// An AoE frame with the given header fields and argument octets.
    #[allow(clippy::too_many_arguments)]
    pub fn aoe(
        dst: EthernetAddress,
        src: EthernetAddress,
        ver_flags: u8,
        major: u16,
        minor: u8,
        command: u8,
        tag: u32,
        arg: &[u8],
    ) -> Frame {
        let mut bytes = Vec::with_capacity(24 + arg.len());
        bytes.extend_from_slice(&dst.0);
        bytes.extend_from_slice(&src.0);
        bytes.extend_from_slice(&0x88A2u16.to_be_bytes());
        bytes.push(ver_flags);
        bytes.push(0);
        bytes.extend_from_slice(&major.to_be_bytes());
        bytes.push(minor);
        bytes.push(command);
        bytes.extend_from_slice(&tag.to_be_bytes());
        bytes.extend_from_slice(arg);
        Frame { bytes }
    }

    /// Appends octets (padding, filler, probe payloads).
    pub fn pad(mut self, octets: &[u8]) -> Frame {
        self.bytes.extend_from_slice(octets);
        self
    }

    /// Pads with zeros to at least `len` octets.
    pub fn pad_to(mut self, len: usize) -> Frame {
        if self.bytes.len() < len {
            self.bytes.resize(len, 0);
        }
        self
    }

    /// Cuts the frame to `len` octets.
    pub fn truncate(mut self, len: usize) -> Frame {
        self.bytes.truncate(len);
        self
    }

    /// Overwrites one octet.
    pub fn set(mut self, offset: usize, value: u8) -> Frame {
        self.bytes[offset] = value;
        self
    }
}

/// Builds requests from one initiator MAC to one shelf.slot.
#[derive(Debug, Clone, Copy)]
pub struct Initiator {
    /// Source MAC of every request.
    pub mac: EthernetAddress,
    /// Destination MAC of every request.
    pub dst: EthernetAddress,
    /// Major address requests carry.
    pub shelf: u16,
    /// Minor address requests carry.
    pub slot: u8,
}

impl Default for Initiator {
    fn default() -> Self {
        Initiator {
            mac: INITIATOR_MAC,
            dst: TARGET_MAC,
            shelf: SHELF,
            slot: SLOT,
        }
    }
}

impl Initiator {
    /// A frame with this initiator's addresses, version 1, no flags.
    pub fn request(&self, command: u8, tag: u32, arg: &[u8]) -> Frame {
        Frame::aoe(
            self.dst, self.mac, 0x10, self.shelf, self.slot, command, tag, arg,
        )
    }

    /// An ATA request: registers in wire order, then `data`.
    pub fn ata(
        &self,
        tag: u32,
        aflags: u8,
        command: u8,
        count: u8,
        lba: u64,
        data: &[u8],
    ) -> Frame {
        self.ata_with_feature(tag, aflags, 0, command, count, lba, data)
    }

    /// An ATA request with a Features register value.
    #[allow(clippy::too_many_arguments)]
    pub fn ata_with_feature(
        &self,
        tag: u32,
        aflags: u8,
        feature: u8,
        command: u8,
        count: u8,
        lba: u64,
        data: &[u8],
    ) -> Frame {
        let l = lba.to_le_bytes();
        let mut arg = vec![
            aflags, feature, count, command, l[0], l[1], l[2], l[3], l[4], l[5], 0, 0,
        ];
        arg.extend_from_slice(data);
        self.request(0, tag, &arg)
    }

    /// READ SECTORS EXT of `count` sectors at `lba`, as Linux sends it.
    pub fn read48(&self, tag: u32, lba: u64, count: u8) -> Frame {
        self.ata(tag, aflags::EXT, ata_cmd::READ_EXT, count, lba, &[])
    }

    /// WRITE SECTORS EXT of `data` (a whole number of sectors) at `lba`, as Linux sends it.
    pub fn write48(&self, tag: u32, lba: u64, data: &[u8]) -> Frame {
        let count = u8::try_from(data.len() / 512).expect("at most 255 sectors");
        self.ata(
            tag,
            aflags::EXT | aflags::WRITE,
            ata_cmd::WRITE_EXT,
            count,
            lba,
            data,
        )
    }

    /// READ SECTORS (LBA28), with 0xE0 in the top nibble of lba3 as Linux and iPXE send it.
    pub fn read28(&self, tag: u32, lba: u32, count: u8) -> Frame {
        let lba = u64::from(lba & 0x0FFF_FFFF) | (0xE0u64 << 24);
        self.ata(tag, 0, ata_cmd::READ, count, lba, &[])
    }

    /// WRITE SECTORS (LBA28), with 0xE0 in the top nibble of lba3.
    pub fn write28(&self, tag: u32, lba: u32, data: &[u8]) -> Frame {
        let count = u8::try_from(data.len() / 512).expect("at most 255 sectors");
        let lba = u64::from(lba & 0x0FFF_FFFF) | (0xE0u64 << 24);
        self.ata(tag, aflags::WRITE, ata_cmd::WRITE, count, lba, data)
    }

    /// IDENTIFY DEVICE as Linux sends it (count 1, lba3 0xA0).
    pub fn identify(&self, tag: u32) -> Frame {
        self.ata(tag, 0, ata_cmd::IDENTIFY, 1, 0xA0 << 24, &[])
    }

    /// FLUSH CACHE EXT.
    pub fn flush_ext(&self, tag: u32) -> Frame {
        self.ata(tag, aflags::EXT, ata_cmd::FLUSH_EXT, 0, 0, &[])
    }

    /// A Query Config read (what discovery sends).
    pub fn query_config(&self, tag: u32) -> Frame {
        self.config(tag, 0, b"")
    }

    /// A header-only request for `command` (no argument).
    pub fn header(&self, command: u8, tag: u32) -> Frame {
        self.request(command, tag, &[])
    }

    /// A Query Config request with sub-command `ccmd` and `string`.
    pub fn config(&self, tag: u32, ccmd: u8, string: &[u8]) -> Frame {
        let len = u16::try_from(string.len()).expect("short string");
        let mut arg = vec![0, 0, 0, 0, 0, 0x10 | (ccmd & 0x0F)];
        arg.extend_from_slice(&len.to_be_bytes());
        arg.extend_from_slice(string);
        self.request(1, tag, &arg)
    }

    /// A Query Config request with an explicit string length field.
    pub fn config_with_len(&self, tag: u32, ccmd: u8, len: u16, string: &[u8]) -> Frame {
        let mut arg = vec![0, 0, 0, 0, 0, 0x10 | (ccmd & 0x0F)];
        arg.extend_from_slice(&len.to_be_bytes());
        arg.extend_from_slice(string);
        self.request(1, tag, &arg)
    }

    /// A MAC Mask List request: `directives` are (DCmd, MAC) pairs.
    pub fn mask(&self, tag: u32, mcmd: u8, directives: &[(u8, EthernetAddress)]) -> Frame {
        let count = u8::try_from(directives.len()).expect("at most 255 directives");
        let mut arg = vec![0, mcmd, 0, count];
        for (dcmd, mac) in directives {
            arg.push(0);
            arg.push(*dcmd);
            arg.extend_from_slice(&mac.0);
        }
        self.request(2, tag, &arg)
    }

    /// A Reserve/Release request.
    pub fn reserve(&self, tag: u32, rcmd: u8, macs: &[EthernetAddress]) -> Frame {
        let count = u8::try_from(macs.len()).expect("at most 255 MACs");
        let mut arg = vec![rcmd, count];
        for mac in macs {
            arg.extend_from_slice(&mac.0);
        }
        self.request(3, tag, &arg)
    }
}
