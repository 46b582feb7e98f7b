//! Request frames the initiator sends and the checks on the replies it accepts.
//!
//! Requests are written into caller-owned buffers with `aoe_core::wire` emitters, so building
//! a frame allocates nothing. [`Reply::parse`] accepts only AoE responses (R set, version 1)
//! addressed to us, and never panics on a short or malformed frame: it returns `None`.

use aoe_core::wire::aoe::{self, Command, ErrorCode};
use aoe_core::wire::ata::{self, AtaFlags};
use aoe_core::wire::{
    AOE_ARG_OFFSET, ATA_DATA_OFFSET, ETHERNET_HEADER_LEN, ETHERTYPE_AOE, EthernetAddress,
    EthernetFrame, EthernetProtocol, MIN_FRAME_LEN,
};

/// The Ethernet broadcast address, used only for discovery.
pub const BROADCAST: EthernetAddress = EthernetAddress([0xff; 6]);

/// ATA READ SECTORS EXT.
pub const ATA_READ_EXT: u8 = 0x24;
/// ATA WRITE SECTORS EXT.
pub const ATA_WRITE_EXT: u8 = 0x34;
/// ATA IDENTIFY DEVICE.
pub const ATA_IDENTIFY: u8 = 0xEC;
/// ATA FLUSH CACHE.
pub const ATA_FLUSH: u8 = 0xE7;
/// ATA FLUSH CACHE EXT.
pub const ATA_FLUSH_EXT: u8 = 0xEA;

/// Where a request goes: the target's MAC (or broadcast) and its shelf.slot (or wildcards).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Address {
    /// Destination MAC.
    pub mac: EthernetAddress,
    /// Shelf (Major).
    pub shelf: u16,
    /// Slot (Minor).
    pub slot: u8,
}

impl Address {
    /// Every target on the segment (broadcast MAC, shelf 0xFFFF, slot 0xFF).
    pub const EVERYONE: Address = Address {
        mac: BROADCAST,
        shelf: aoe::BROADCAST_MAJOR,
        slot: aoe::BROADCAST_MINOR,
    };
}

/// Writes the Ethernet and AoE headers of a request into `buf` (at least 24 octets).
pub fn write_header(buf: &mut [u8], src: EthernetAddress, to: Address, command: Command, tag: u32) {
    let mut eth = EthernetFrame::new_unchecked(&mut buf[..]);
    eth.set_dst_addr(to.mac);
    eth.set_src_addr(src);
    eth.set_ethertype(EthernetProtocol::Unknown(ETHERTYPE_AOE));
    aoe::Repr {
        version: aoe::VERSION,
        response: false,
        error: None,
        major: to.shelf,
        minor: to.slot,
        command,
        tag,
    }
    .emit(&mut aoe::Packet::new_unchecked(
        &mut buf[ETHERNET_HEADER_LEN..],
    ));
}

/// Rewrites the tag of a request already in `buf` (a retransmission gets a new tag).
pub fn set_tag(buf: &mut [u8], tag: u32) {
    aoe::Packet::new_unchecked(&mut buf[ETHERNET_HEADER_LEN..]).set_tag(tag);
}

/// Writes an ATA request (LBA48 form) and returns the frame length: 36 octets plus the write
/// data, padded to 60. For a write the caller puts the data at `36..36 + sectors * 512`; `buf`
/// must hold that much.
pub fn write_ata(
    buf: &mut [u8],
    src: EthernetAddress,
    to: Address,
    tag: u32,
    command: u8,
    lba: u64,
    sectors: u8,
) -> usize {
    write_header(buf, src, to, Command::IssueAta, tag);
    let writes = command == ATA_WRITE_EXT;
    let mut flags = AtaFlags::EXTENDED;
    if writes {
        flags |= AtaFlags::WRITE;
    }
    ata::Repr {
        flags: AtaFlags(flags),
        err_feature: 0,
        sector_count: sectors,
        cmd_status: command,
        lba,
    }
    .emit(&mut ata::Packet::new_unchecked(&mut buf[AOE_ARG_OFFSET..]));
    let data = if writes {
        usize::from(sectors) * 512
    } else {
        0
    };
    pad(buf, ATA_DATA_OFFSET + data)
}

/// ATA SMART.
pub const ATA_SMART: u8 = 0xB0;
/// SMART RETURN STATUS (the Features register of [`ATA_SMART`]).
pub const SMART_RETURN_STATUS: u8 = 0xDA;
/// LBA mid/high of every SMART command, and of a RETURN STATUS reply with no threshold
/// exceeded.
pub const SMART_SIGNATURE: [u8; 2] = [0x4F, 0xC2];
/// LBA mid/high of a RETURN STATUS reply when a threshold is exceeded.
pub const SMART_THRESHOLD_EXCEEDED: [u8; 2] = [0xF4, 0x2C];

/// Writes a SMART request with sub-command `feature` (no data) and returns the frame length.
pub fn write_smart(
    buf: &mut [u8],
    src: EthernetAddress,
    to: Address,
    tag: u32,
    feature: u8,
) -> usize {
    write_header(buf, src, to, Command::IssueAta, tag);
    let [mid, high] = SMART_SIGNATURE;
    ata::Repr {
        flags: AtaFlags(0),
        err_feature: feature,
        sector_count: 0,
        cmd_status: ATA_SMART,
        lba: u64::from(mid) << 8 | u64::from(high) << 16,
    }
    .emit(&mut ata::Packet::new_unchecked(&mut buf[AOE_ARG_OFFSET..]));
    pad(buf, ATA_DATA_OFFSET)
}

/// Zero-pads a request of `len` octets to the Ethernet minimum and returns its length.
pub fn pad(buf: &mut [u8], len: usize) -> usize {
    if len < MIN_FRAME_LEN {
        buf[len..MIN_FRAME_LEN].fill(0);
        MIN_FRAME_LEN
    } else {
        len
    }
}

/// A received AoE response, checked to be addressed to us.
#[derive(Debug, Clone, Copy)]
pub struct Reply<'a> {
    /// The sender's MAC.
    pub src: EthernetAddress,
    /// The AoE header.
    pub header: aoe::Repr,
    /// The command argument and what follows it (padding included).
    pub arg: &'a [u8],
}

impl<'a> Reply<'a> {
    /// Parses `frame` as an AoE version-1 response sent to `us` (or broadcast, as a target's
    /// start-up announcement is). Anything else is `None`.
    pub fn parse(frame: &'a [u8], us: EthernetAddress) -> Option<Reply<'a>> {
        let eth = EthernetFrame::new_checked(frame).ok()?;
        if eth.ethertype() != EthernetProtocol::Unknown(ETHERTYPE_AOE) {
            return None;
        }
        let dst = eth.dst_addr();
        if dst != us && dst != BROADCAST {
            return None;
        }
        let packet = aoe::Packet::new_checked(&frame[ETHERNET_HEADER_LEN..]).ok()?;
        let header = aoe::Repr::parse(&packet).ok()?;
        if !header.response || header.version != aoe::VERSION {
            return None;
        }
        Some(Reply {
            src: eth.src_addr(),
            header,
            arg: packet.arg(),
        })
    }

    /// True if this reply comes from `from` (MAC and, unless wildcards, shelf.slot) for
    /// `command` with `tag`.
    pub fn answers(&self, from: Address, command: Command, tag: u32) -> bool {
        self.header.tag == tag
            && self.header.command == command
            && (from.mac == BROADCAST || self.src == from.mac)
            && (from.shelf == aoe::BROADCAST_MAJOR || self.header.major == from.shelf)
            && (from.slot == aoe::BROADCAST_MINOR || self.header.minor == from.slot)
    }

    /// The AoE error code, if the E flag is set.
    pub fn aoe_error(&self) -> Option<ErrorCode> {
        self.header.error
    }
}

/// An ATA reply's registers and data.
#[derive(Debug, Clone, Copy)]
pub struct AtaReply<'a> {
    /// Status register.
    pub status: u8,
    /// Error register.
    pub error: u8,
    /// LBA registers lba0..lba5 (SMART RETURN STATUS reports in lba1/lba2).
    pub lba: [u8; 6],
    /// Data after the registers (read data, IDENTIFY data, or padding).
    pub data: &'a [u8],
}

impl<'a> AtaReply<'a> {
    /// The ATA registers of an ATA reply's argument, or `None` if it is too short.
    pub fn parse(arg: &'a [u8]) -> Option<AtaReply<'a>> {
        let packet = ata::Packet::new_checked(arg).ok()?;
        Some(AtaReply {
            status: packet.cmd_status(),
            error: packet.err_feature(),
            lba: packet.lba_bytes(),
            data: &arg[ata::HEADER_LEN..],
        })
    }

    /// True if the status reports an error or fault (ERR, DF) or the device is still busy.
    pub fn failed(&self) -> bool {
        self.status & (ata::status::ERR | ata::status::DF | ata::status::BSY) != 0
    }
}

#[cfg(test)]
mod test {
    use super::*;

    const US: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 0x10]);
    const THEM: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 0x20]);

    #[test]
    fn ata_request_layout() {
        let mut buf = [0xAAu8; 1514];
        let to = Address {
            mac: THEM,
            shelf: 0x0102,
            slot: 3,
        };
        let len = write_ata(
            &mut buf,
            US,
            to,
            0xdead_beef,
            ATA_WRITE_EXT,
            0x0102_0304_0506,
            2,
        );
        assert_eq!(len, 36 + 1024);
        assert_eq!(&buf[0..6], &THEM.0);
        assert_eq!(&buf[6..12], &US.0);
        assert_eq!(&buf[12..14], &[0x88, 0xa2]);
        assert_eq!(&buf[14..24], &[0x10, 0, 1, 2, 3, 0, 0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(&buf[24..36], &[0x41, 0, 2, 0x34, 6, 5, 4, 3, 2, 1, 0, 0]);
        set_tag(&mut buf, 7);
        assert_eq!(&buf[20..24], &[0, 0, 0, 7]);
        let len = write_ata(&mut buf, US, to, 1, ATA_READ_EXT, 9, 2);
        assert_eq!(len, 60, "a read request is padded to the Ethernet minimum");
        assert!(buf[36..60].iter().all(|&b| b == 0));
    }

    #[test]
    fn reply_parse_rejects_what_is_not_ours() {
        let mut frame = [0u8; 60];
        frame[0..6].copy_from_slice(&US.0);
        frame[6..12].copy_from_slice(&THEM.0);
        frame[12..14].copy_from_slice(&[0x88, 0xa2]);
        frame[14..24].copy_from_slice(&[0x18, 0, 0, 7, 1, 1, 0, 0, 0, 9]);
        let reply = Reply::parse(&frame, US).expect("a response to us");
        let from = Address {
            mac: THEM,
            shelf: 7,
            slot: 1,
        };
        assert!(reply.answers(from, Command::QueryConfig, 9));
        assert!(!reply.answers(from, Command::QueryConfig, 8));
        assert!(!reply.answers(Address { slot: 2, ..from }, Command::QueryConfig, 9));
        assert!(Reply::parse(&frame, THEM).is_none(), "not addressed to us");
        let mut request = frame;
        request[14] = 0x10;
        assert!(
            Reply::parse(&request, US).is_none(),
            "a request, not a reply"
        );
        assert!(Reply::parse(&frame[..20], US).is_none(), "truncated");
        let mut other = frame;
        other[12] = 0x08;
        assert!(Reply::parse(&other, US).is_none(), "not AoE");
    }
}
