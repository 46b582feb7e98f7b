//! Property test: random sequences of AoE requests against a shadow model, with disk faults.
//!
//! Each case exports a small `FaultyDisk<MemDisk>` and drives it only through request frames
//! built by [`Initiator`]: LBA28 and LBA48 reads and writes (in and out of range, with short
//! payloads and bad sector counts), flushes, IDENTIFY, Query Config, MAC mask edits (which can
//! lock the sender out), reservations, malformed and misaddressed frames, and "arm a fault"
//! steps that give the disk a new [`FaultPlan`].
//!
//! The model predicts, for every frame, silence or the exact reply octets. Its disk part is
//! the shared [`ShadowDisk`] of `aoe-testkit` (also behind the `target_ops` fuzzer): per
//! sector the set of contents it may hold, one normally, several after a failed (possibly
//! torn) write, which a later successful read collapses; and its own copy of the disk's fault
//! schedule, so the model also checks that the target calls the disk exactly once per valid
//! transfer and never for a refused one.

use aoe_core::disk::{FaultPlan, FaultyDisk, MemDisk};
use aoe_core::target::{MASK_CAPACITY, RESERVE_CAPACITY};
use aoe_core::wire::EthernetAddress;
use aoe_core::{Config, ErrorKind, Port, Target};
use aoe_testkit::sectors::{sector_image, write_images};
use aoe_testkit::shadow::{ABRT, DiskCalls, Outcome, ShadowDisk};
use aoe_tests::{
    INITIATOR_MAC, Initiator, OTHER_MAC, Reply, SHELF, SLOT, TARGET_MAC, aflags, ata_cmd,
};
use proptest::prelude::*;
use proptest::test_runner::{FileFailurePersistence, TestCaseError};

type TestDisk = FaultyDisk<MemDisk<Vec<u8>>>;

/// A third initiator, so that mask and reserve lists can shut some senders out.
const THIRD_MAC: EthernetAddress = EthernetAddress([0x02, 0x00, 0x00, 0x00, 0x00, 0x77]);
/// The initiators steps are sent from.
const INITIATORS: [EthernetAddress; 3] = [INITIATOR_MAC, OTHER_MAC, THIRD_MAC];
/// Entries of the MAC pool that mask and reserve lists draw from.
const POOL: u8 = 40;
/// Frame buffer size of the export.
const MAX_FRAME: usize = 9014;

const STATUS_OK: u8 = 0x40;
const STATUS_ERR: u8 = 0x41;
const LBA48_MASK: u64 = (1 << 48) - 1;
const LBA28_MASK: u64 = 0x0FFF_FFFF;

/// MAC number `index` of the pool: the three initiators first.
fn pool_mac(index: u8) -> EthernetAddress {
    match INITIATORS.get(usize::from(index)) {
        Some(mac) => *mac,
        None => EthernetAddress([0x02, 0x00, 0x00, 0x00, 0x01, index]),
    }
}

// ----- steps ------------------------------------------------------------------------------------

/// How a step's frame is addressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Addr {
    Exact,
    BroadcastDst,
    WildShelf,
    WildSlot,
    WildBoth,
    OtherShelf,
    OtherSlot,
    OtherDst,
    MulticastSrc,
    OwnSrc,
}

impl Addr {
    fn initiator(self, mac: EthernetAddress) -> Initiator {
        let mut initiator = Initiator {
            mac,
            ..Initiator::default()
        };
        match self {
            Addr::Exact => {}
            Addr::BroadcastDst => initiator.dst = EthernetAddress([0xff; 6]),
            Addr::WildShelf => initiator.shelf = 0xFFFF,
            Addr::WildSlot => initiator.slot = 0xFF,
            Addr::WildBoth => (initiator.shelf, initiator.slot) = (0xFFFF, 0xFF),
            Addr::OtherShelf => initiator.shelf = SHELF + 1,
            Addr::OtherSlot => initiator.slot = SLOT + 1,
            Addr::OtherDst => initiator.dst = EthernetAddress([0x02, 0, 0, 0, 0, 0x02]),
            Addr::MulticastSrc => initiator.mac = EthernetAddress([0x03, 0, 0, 0, 0, 0x99]),
            Addr::OwnSrc => initiator.mac = TARGET_MAC,
        }
        initiator
    }

    /// True if a frame so addressed is for this export, from a source it may answer.
    fn reaches_target(self) -> bool {
        matches!(
            self,
            Addr::Exact | Addr::BroadcastDst | Addr::WildShelf | Addr::WildSlot | Addr::WildBoth
        )
    }
}

#[derive(Debug, Clone)]
enum Op {
    /// WRITE SECTORS (EXT when `ext`); `short` cuts the payload below `count` sectors.
    Write {
        ext: bool,
        lba: u64,
        count: u8,
        short: Option<u16>,
    },
    /// READ SECTORS (EXT when `ext`), with `trailing` octets of payload (Linux probes).
    Read {
        ext: bool,
        lba: u64,
        count: u8,
        trailing: u16,
    },
    Flush {
        ext: bool,
    },
    Identify,
    CheckPowerMode,
    UnknownAta(u8),
    /// Query Config; `extra_len` makes the String Length field overstate the string.
    Config {
        ccmd: u8,
        string: Vec<u8>,
        extra_len: Option<u16>,
    },
    /// MAC Mask List with MCmd `mcmd` and (DCmd, pool index) directives; `extra_count` makes
    /// Dir Count overstate them.
    Mask {
        mcmd: u8,
        directives: Vec<(u8, u8)>,
        extra_count: u8,
    },
    /// Adds the sender, then every pool MAC beyond the initiators: overflows the mask list.
    FillMask,
    /// Reserve/Release with RCmd `rcmd`, pool indices; `extra_count` overstates NMacs.
    Reserve {
        rcmd: u8,
        macs: Vec<u8>,
        extra_count: u8,
    },
    /// A READ with Ver nibble `version` (not 1).
    BadVersion(u8),
    /// A header-only request with an unknown command.
    UnknownCommand(u8),
    /// A request of command `command` cut below its fixed header.
    Truncated {
        command: u8,
        len: usize,
    },
    /// A WRITE with the R flag set.
    Response,
    /// A WRITE with another EtherType.
    WrongEthertype,
    /// Octets addressed to nobody here.
    Garbage(Vec<u8>),
    ArmFault(FaultPlan),
}

#[derive(Debug, Clone)]
struct Step {
    from: usize,
    addr: Addr,
    tag: u32,
    pad: bool,
    op: Op,
}

#[derive(Debug, Clone)]
struct Case {
    sectors: u64,
    mtu: usize,
    steps: Vec<Step>,
}

fn sectors_per_frame(mtu: usize) -> u8 {
    u8::try_from(((mtu - 36) / 512).min(255)).unwrap()
}

fn lba_strategy(sectors: u64, spf: u8) -> impl Strategy<Value = u64> {
    let span = u64::from(spf) + 3;
    prop_oneof![
        6 => 0..sectors,
        3 => sectors.saturating_sub(span)..sectors + 3,
        1 => any::<u64>(),
    ]
}

fn count_strategy(spf: u8) -> impl Strategy<Value = u8> {
    prop_oneof![
        8 => 1..=spf,
        1 => Just(0u8),
        1 => (spf + 1)..=spf.saturating_add(3),
    ]
}

/// Mostly the main initiator, so that mask and reserve lists shut it out only now and then.
fn pool_strategy() -> impl Strategy<Value = u8> {
    prop_oneof![5 => Just(0u8), 2 => 1..3u8, 1 => 3..POOL]
}

fn fault_strategy(sectors: u64) -> impl Strategy<Value = FaultPlan> {
    let kind = prop_oneof![
        4 => Just(ErrorKind::Media),
        1 => Just(ErrorKind::NotReady),
        1 => Just(ErrorKind::WriteProtected),
        1 => Just(ErrorKind::Other),
        1 => Just(ErrorKind::OutOfRange),
    ];
    let bad = prop::option::weighted(0.4, (0..sectors, 1..8u64).prop_map(|(s, n)| (s, s + n)));
    (
        prop::option::weighted(0.7, 0..6u32),
        any::<bool>(),
        prop_oneof![2 => Just(0usize), 1 => 1..=4usize],
        bad,
        kind,
    )
        .prop_map(
            |(fail_after, sticky, torn_sectors, bad_sectors, kind)| FaultPlan {
                fail_after,
                sticky,
                torn_sectors,
                bad_sectors,
                kind,
            },
        )
}

fn op_strategy(sectors: u64, spf: u8) -> impl Strategy<Value = Op> {
    let string = prop_oneof![
        Just(Vec::new()),
        Just(b"a".to_vec()),
        Just(b"ab".to_vec()),
        Just(b"abc".to_vec()),
        Just(b"b".to_vec()),
        prop::collection::vec(any::<u8>(), 0..=24),
        Just(vec![b'x'; 1024]),
    ];
    let dcmd = prop_oneof![3 => Just(1u8), 2 => Just(2u8), 1 => Just(0u8), 1 => 3..=255u8];
    let over = prop_oneof![6 => Just(0u8), 1 => 1..=3u8];
    let short = prop::option::weighted(0.15, any::<u16>());
    let trailing = prop_oneof![5 => Just(0u16), 1 => 1..1100u16];
    prop_oneof![
        12 => (any::<bool>(), lba_strategy(sectors, spf), count_strategy(spf), short)
            .prop_map(|(ext, lba, count, short)| Op::Write { ext, lba, count, short }),
        12 => (any::<bool>(), lba_strategy(sectors, spf), count_strategy(spf), trailing)
            .prop_map(|(ext, lba, count, trailing)| Op::Read { ext, lba, count, trailing }),
        2 => any::<bool>().prop_map(|ext| Op::Flush { ext }),
        2 => Just(Op::Identify),
        1 => Just(Op::CheckPowerMode),
        1 => prop::sample::select(vec![0x00u8, 0x25, 0x35, 0x40, 0xC8, 0xCA, 0xFF])
            .prop_map(Op::UnknownAta),
        5 => (prop_oneof![3 => 0..=4u8, 1 => 5..=15u8], string, prop::option::weighted(0.1, 1..=1100u16))
            .prop_map(|(ccmd, string, extra_len)| Op::Config { ccmd, string, extra_len }),
        3 => (
            prop_oneof![2 => Just(0u8), 6 => Just(1u8), 1 => 2..=255u8],
            prop::collection::vec((dcmd, pool_strategy()), 0..=6),
            over.clone(),
        )
            .prop_map(|(mcmd, directives, extra_count)| Op::Mask { mcmd, directives, extra_count }),
        1 => Just(Op::FillMask),
        3 => (
            prop_oneof![2 => Just(0u8), 3 => Just(1u8), 3 => Just(2u8), 1 => 3..=255u8],
            prop_oneof![
                8 => prop::collection::vec(pool_strategy(), 0..=3),
                1 => prop::collection::vec(pool_strategy(), 33..=34),
            ],
            over,
        )
            .prop_map(|(rcmd, macs, extra_count)| Op::Reserve { rcmd, macs, extra_count }),
        1 => (0..=15u8).prop_filter("not version 1", |v| *v != 1).prop_map(Op::BadVersion),
        1 => (4..=255u8).prop_map(Op::UnknownCommand),
        2 => (0..=3u8, 0..36usize)
            .prop_map(|(command, len)| {
                let min = [36, 32, 28, 26][usize::from(command)];
                Op::Truncated { command, len: len % min }
            }),
        1 => Just(Op::Response),
        1 => Just(Op::WrongEthertype),
        1 => prop::collection::vec(any::<u8>(), 0..80).prop_map(Op::Garbage),
        4 => fault_strategy(sectors).prop_map(Op::ArmFault),
    ]
}

fn addr_strategy() -> impl Strategy<Value = Addr> {
    prop_oneof![
        30 => Just(Addr::Exact),
        2 => Just(Addr::BroadcastDst),
        1 => Just(Addr::WildShelf),
        1 => Just(Addr::WildSlot),
        1 => Just(Addr::WildBoth),
        1 => Just(Addr::OtherShelf),
        1 => Just(Addr::OtherSlot),
        1 => Just(Addr::OtherDst),
        1 => Just(Addr::MulticastSrc),
        1 => Just(Addr::OwnSrc),
    ]
}

fn case_strategy() -> impl Strategy<Value = Case> {
    (
        64u64..=256,
        prop::sample::select(vec![1500usize, 2100, 9000]),
    )
        .prop_flat_map(|(sectors, mtu)| {
            let spf = sectors_per_frame(mtu);
            let step = (
                prop_oneof![6 => Just(0usize), 1 => 1..3usize],
                addr_strategy(),
                any::<u32>(),
                prop::bool::weighted(0.2),
                op_strategy(sectors, spf),
            )
                .prop_map(|(from, addr, tag, pad, op)| Step {
                    from,
                    addr,
                    tag,
                    pad,
                    op,
                });
            prop::collection::vec(step, 1..=60).prop_map(move |steps| Case {
                sectors,
                mtu,
                steps,
            })
        })
}

// ----- the model --------------------------------------------------------------------------------

/// What the model predicts for one frame.
enum Expect {
    Silence,
    /// These exact octets.
    Exact(Vec<u8>),
    /// A successful read: these 36 header octets, then `count` sectors from `lba`.
    ReadData {
        head: Vec<u8>,
        lba: u64,
        count: u8,
    },
    /// IDENTIFY data after these 36 header octets.
    Identify(Vec<u8>),
}

struct Model {
    /// The sectors, the fault schedule and the disk calls.
    disk: ShadowDisk,
    config_string: Vec<u8>,
    mask: Vec<EthernetAddress>,
    reservations: Vec<EthernetAddress>,
}

/// The 24 header octets of a reply to `req`, with the E flag and `error` when given.
fn reply_header(req: &[u8], error: Option<u8>) -> Vec<u8> {
    let mut head = Vec::with_capacity(64);
    head.extend_from_slice(&req[6..12]);
    head.extend_from_slice(&TARGET_MAC.0);
    head.extend_from_slice(&[0x88, 0xA2]);
    head.push(if error.is_some() { 0x1C } else { 0x18 });
    head.push(error.unwrap_or(0));
    head.extend_from_slice(&SHELF.to_be_bytes());
    head.push(SLOT);
    head.extend_from_slice(&req[19..24]);
    head
}

fn padded(mut bytes: Vec<u8>) -> Vec<u8> {
    if bytes.len() < 60 {
        bytes.resize(60, 0);
    }
    bytes
}

/// An AoE error reply: header only.
fn aoe_error(req: &[u8], code: u8) -> Expect {
    Expect::Exact(padded(reply_header(req, Some(code))))
}

/// The 36 octets of an ATA reply: registers echoed but for Error, Sector Count and Status.
fn ata_head(req: &[u8], error: u8, count: u8, status: u8) -> Vec<u8> {
    let mut head = reply_header(req, None);
    head.extend_from_slice(&[req[24], error, count, status]);
    head.extend_from_slice(&req[28..34]);
    head.extend_from_slice(&[0, 0]);
    head
}

fn ata_status(req: &[u8], error: u8, count: u8, status: u8) -> Expect {
    Expect::Exact(padded(ata_head(req, error, count, status)))
}

impl Model {
    fn new(sectors: u64, mtu: usize) -> Model {
        Model {
            disk: ShadowDisk::new(sectors, sectors_per_frame(mtu)),
            config_string: Vec::new(),
            mask: Vec::new(),
            reservations: Vec::new(),
        }
    }

    fn mask_allows(&self, mac: &EthernetAddress) -> bool {
        self.mask.is_empty() || self.mask.contains(mac)
    }

    fn reservation_allows(&self, mac: &EthernetAddress) -> bool {
        self.reservations.is_empty() || self.reservations.contains(mac)
    }

    /// Builds the frame for `step`; a write also gets its write number.
    fn build(&mut self, initiator: &Initiator, step: &Step) -> (Vec<u8>, Option<u32>) {
        let tag = step.tag;
        let mut id = None;
        let frame = match &step.op {
            Op::Write {
                ext,
                lba,
                count,
                short,
            } => {
                let write = self.disk.next_write_id();
                id = Some(write);
                let lba = if *ext {
                    lba & LBA48_MASK
                } else {
                    lba & LBA28_MASK
                };
                let mut data = write_images(lba, *count, write);
                match short {
                    None => {
                        if *ext {
                            initiator.write48(tag, lba, &data)
                        } else {
                            initiator.write28(tag, u32::try_from(lba).unwrap(), &data)
                        }
                    }
                    Some(cut) => {
                        let cut = 1 + usize::from(*cut) % data.len().max(1);
                        data.truncate(data.len().saturating_sub(cut));
                        if *ext {
                            initiator.ata(
                                tag,
                                aflags::EXT | aflags::WRITE,
                                ata_cmd::WRITE_EXT,
                                *count,
                                lba,
                                &data,
                            )
                        } else {
                            initiator.ata(
                                tag,
                                aflags::WRITE,
                                ata_cmd::WRITE,
                                *count,
                                lba | 0xE000_0000,
                                &data,
                            )
                        }
                    }
                }
            }
            Op::Read {
                ext,
                lba,
                count,
                trailing,
            } => {
                let frame = if *ext {
                    initiator.read48(tag, *lba, *count)
                } else {
                    initiator.read28(tag, u32::try_from(lba & LBA28_MASK).unwrap(), *count)
                };
                frame.pad(&vec![0xEE; usize::from(*trailing)])
            }
            Op::Flush { ext } => {
                if *ext {
                    initiator.ata(tag, aflags::EXT, ata_cmd::FLUSH_EXT, 0, 0, &[])
                } else {
                    initiator.ata(tag, 0, ata_cmd::FLUSH, 0, 0xE0 << 24, &[])
                }
            }
            Op::Identify => initiator.identify(tag),
            Op::CheckPowerMode => initiator.ata(tag, 0, ata_cmd::CHECK_POWER_MODE, 0, 0, &[]),
            Op::UnknownAta(code) => initiator.ata(tag, 0, *code, 1, 0, &[]),
            Op::Config {
                ccmd,
                string,
                extra_len,
            } => match extra_len {
                None => initiator.config(tag, *ccmd, string),
                Some(extra) => {
                    let len = u16::try_from(string.len()).unwrap() + extra;
                    initiator.config_with_len(tag, *ccmd, len, string)
                }
            },
            Op::Mask {
                mcmd,
                directives,
                extra_count,
            } => {
                let directives: Vec<_> = directives
                    .iter()
                    .map(|(dcmd, index)| (*dcmd, pool_mac(*index)))
                    .collect();
                let frame = initiator.mask(tag, *mcmd, &directives);
                let count = frame.bytes[27] + extra_count;
                frame.set(27, count)
            }
            Op::FillMask => {
                let mut directives = vec![(1, initiator.mac)];
                directives.extend((3..POOL).map(|index| (1, pool_mac(index))));
                initiator.mask(tag, 1, &directives)
            }
            Op::Reserve {
                rcmd,
                macs,
                extra_count,
            } => {
                let macs: Vec<_> = macs.iter().map(|index| pool_mac(*index)).collect();
                let frame = initiator.reserve(tag, *rcmd, &macs);
                let count = frame.bytes[25] + extra_count;
                frame.set(25, count)
            }
            Op::BadVersion(version) => initiator.read48(tag, 0, 1).set(14, version << 4),
            Op::UnknownCommand(command) => initiator.request(*command, tag, &[]),
            Op::Truncated { command, len } => {
                let frame = match command {
                    0 => initiator.read48(tag, 0, 1),
                    1 => initiator.config(tag, 0, b""),
                    2 => initiator.mask(tag, 0, &[]),
                    _ => initiator.reserve(tag, 0, &[]),
                };
                return (frame.truncate(*len).bytes, None);
            }
            Op::Response => initiator
                .write48(tag, 0, &sector_image(0, u32::MAX))
                .set(14, 0x18),
            Op::WrongEthertype => initiator
                .write48(tag, 0, &sector_image(0, u32::MAX))
                .set(12, 0x08)
                .set(13, 0x00),
            Op::Garbage(bytes) => {
                let mut bytes = bytes.clone();
                if let Some(first) = bytes.first_mut() {
                    // A unicast destination that is neither the target's nor broadcast.
                    *first = 0x0A;
                }
                return (bytes, None);
            }
            Op::ArmFault(_) => unreachable!("fault steps send no frame"),
        };
        let frame = if step.pad { frame.pad_to(60) } else { frame };
        (frame.bytes, id)
    }

    /// Applies a frame that reached the export from `source` and predicts the reply.
    fn apply(&mut self, source: EthernetAddress, op: &Op, req: &[u8], id: Option<u32>) -> Expect {
        match op {
            Op::Write {
                ext, lba, count, ..
            }
            | Op::Read {
                ext, lba, count, ..
            } => {
                if !self.reservation_allows(&source) {
                    return aoe_error(req, 6);
                }
                let write = matches!(op, Op::Write { .. });
                let lba = if *ext {
                    lba & LBA48_MASK
                } else {
                    lba & LBA28_MASK
                };
                self.transfer(req, write, lba, *count, id)
            }
            Op::Flush { .. } => {
                if !self.reservation_allows(&source) {
                    return aoe_error(req, 6);
                }
                match self.disk.flush() {
                    Outcome::Failed(error) => ata_status(req, error, req[26], STATUS_ERR),
                    Outcome::Done => ata_status(req, 0, 0, STATUS_OK),
                }
            }
            Op::Identify => Expect::Identify(ata_head(req, 0, 0, STATUS_OK)),
            Op::CheckPowerMode => {
                if !self.reservation_allows(&source) {
                    return aoe_error(req, 6);
                }
                ata_status(req, 0, 0xFF, STATUS_OK)
            }
            Op::UnknownAta(_) => {
                if !self.reservation_allows(&source) {
                    return aoe_error(req, 6);
                }
                ata_status(req, ABRT, req[26], STATUS_ERR)
            }
            Op::Config { .. } => self.config(req),
            Op::Mask { .. } | Op::FillMask => self.mask_command(req),
            Op::Reserve { .. } => self.reserve_command(req, source),
            Op::BadVersion(_) => aoe_error(req, 5),
            Op::UnknownCommand(_) => aoe_error(req, 1),
            Op::Truncated { .. }
            | Op::Response
            | Op::WrongEthertype
            | Op::Garbage(_)
            | Op::ArmFault(_) => Expect::Silence,
        }
    }

    fn transfer(
        &mut self,
        req: &[u8],
        write: bool,
        lba: u64,
        count: u8,
        id: Option<u32>,
    ) -> Expect {
        let outcome = if write {
            let data_len = req.len() - 36;
            self.disk.write(lba, count, data_len, id.unwrap())
        } else {
            self.disk.read(lba, count)
        };
        match outcome {
            Outcome::Failed(error) => ata_status(req, error, count, STATUS_ERR),
            Outcome::Done if write => ata_status(req, 0, 0, STATUS_OK),
            Outcome::Done => Expect::ReadData {
                head: ata_head(req, 0, 0, STATUS_OK),
                lba,
                count,
            },
        }
    }

    fn config_reply(&self, req: &[u8], error: Option<u8>) -> Expect {
        let mut reply = reply_header(req, error);
        let spf = self.disk.sectors_per_frame();
        reply.extend_from_slice(&[0x00, 0x10, 0x00, 0x01, spf, 0x10 | (req[29] & 0x0F)]);
        let len = u16::try_from(self.config_string.len()).unwrap();
        reply.extend_from_slice(&len.to_be_bytes());
        reply.extend_from_slice(&self.config_string);
        Expect::Exact(padded(reply))
    }

    /// Query Config, read from the frame: the String Length may overstate the string, or be
    /// covered by padding.
    fn config(&mut self, req: &[u8]) -> Expect {
        let ccmd = req[29] & 0x0F;
        if ccmd == 0 {
            return self.config_reply(req, None);
        }
        let len = usize::from(u16::from_be_bytes([req[30], req[31]]));
        if ccmd > 4 || len > 1024 || len > req.len() - 32 {
            return aoe_error(req, 2);
        }
        let string = &req[32..32 + len];
        match ccmd {
            1 if string == self.config_string => self.config_reply(req, None),
            2 if self.config_string.starts_with(string) => self.config_reply(req, None),
            1 | 2 => Expect::Silence,
            3 if !self.config_string.is_empty() && self.config_string != string => {
                self.config_reply(req, Some(4))
            }
            _ => {
                self.config_string = string.to_vec();
                self.config_reply(req, None)
            }
        }
    }

    fn mask_command(&mut self, req: &[u8]) -> Expect {
        let mcmd = req[25];
        let count = usize::from(req[27]);
        let list_reply = |mask: &[EthernetAddress]| {
            let mut reply = reply_header(req, None);
            reply.extend_from_slice(&[0, mcmd, 0, u8::try_from(mask.len()).unwrap()]);
            for mac in mask {
                reply.extend_from_slice(&[0, 0]);
                reply.extend_from_slice(&mac.0);
            }
            Expect::Exact(padded(reply))
        };
        match mcmd {
            0 => list_reply(&self.mask),
            1 => {
                if 28 + count * 8 > req.len() {
                    return aoe_error(req, 2);
                }
                let mut error = 0u8;
                let mut applied = 0usize;
                for directive in req[28..28 + count * 8].chunks_exact(8) {
                    let mac = EthernetAddress(directive[2..8].try_into().unwrap());
                    match directive[1] {
                        0 => {}
                        1 => {
                            if !self.mask.contains(&mac) {
                                if self.mask.len() == MASK_CAPACITY {
                                    error = 3;
                                } else {
                                    self.mask.push(mac);
                                }
                            }
                        }
                        2 => self.mask.retain(|m| *m != mac),
                        _ => error = 2,
                    }
                    if error != 0 {
                        break;
                    }
                    applied += 1;
                }
                if error == 0 {
                    return list_reply(&self.mask);
                }
                let mut reply = reply_header(req, None);
                reply.extend_from_slice(&[0, 1, error, u8::try_from(applied).unwrap()]);
                for directive in req[28..28 + applied * 8].chunks_exact(8) {
                    reply.push(0);
                    reply.extend_from_slice(&directive[1..]);
                }
                Expect::Exact(padded(reply))
            }
            _ => aoe_error(req, 2),
        }
    }

    fn reserve_command(&mut self, req: &[u8], source: EthernetAddress) -> Expect {
        let rcmd = req[24];
        let count = usize::from(req[25]);
        let list_reply = |list: &[EthernetAddress], error: Option<u8>| {
            let mut reply = reply_header(req, error);
            reply.extend_from_slice(&[rcmd, u8::try_from(list.len()).unwrap()]);
            for mac in list {
                reply.extend_from_slice(&mac.0);
            }
            Expect::Exact(padded(reply))
        };
        match rcmd {
            0 => list_reply(&self.reservations, None),
            1 | 2 => {
                if 26 + count * 6 > req.len() || count > RESERVE_CAPACITY {
                    return aoe_error(req, 2);
                }
                if rcmd == 1 && !self.reservation_allows(&source) {
                    return list_reply(&self.reservations, Some(6));
                }
                let mut next = Vec::new();
                for mac in req[26..26 + count * 6].chunks_exact(6) {
                    let mac = EthernetAddress(mac.try_into().unwrap());
                    if !next.contains(&mac) {
                        next.push(mac);
                    }
                }
                self.reservations = next;
                list_reply(&self.reservations, None)
            }
            _ => aoe_error(req, 2),
        }
    }
}

// ----- the runner -------------------------------------------------------------------------------

struct Rig {
    target: Target<TestDisk>,
    port: Port,
}

impl Rig {
    fn new(sectors: u64, mtu: usize) -> Rig {
        let mut config = Config::new(SHELF, SLOT);
        config.max_frame_len = MAX_FRAME;
        let bytes = vec![0u8; usize::try_from(sectors).unwrap() * 512];
        let disk = FaultyDisk::new(MemDisk::new(bytes), FaultPlan::none());
        Rig {
            target: Target::new(config, disk).unwrap(),
            port: Port::new(TARGET_MAC, mtu),
        }
    }

    /// Accepts `rx`, then responds into a buffer of exactly the planned length, poisoned so
    /// that an octet the target failed to write shows.
    fn send(&mut self, rx: &[u8]) -> Result<Option<Reply>, TestCaseError> {
        let Some(plan) = self.target.accept(&self.port, rx) else {
            return Ok(None);
        };
        let planned = plan.reply_len();
        prop_assert!(
            (60..=self.port.max_frame_len()).contains(&planned),
            "planned reply of {} octets on MTU {}",
            planned,
            self.port.mtu
        );
        let mut tx = vec![0xA5u8; planned];
        let Some(len) = self.target.respond(&plan, rx, &mut tx) else {
            return Err(TestCaseError::fail("respond refused a reply_len() buffer"));
        };
        prop_assert!((60..=planned).contains(&len), "reply of {} octets", len);
        tx.truncate(len);
        Ok(Some(Reply { bytes: tx }))
    }

    fn calls(&self) -> DiskCalls {
        let stats = self.target.disk().stats();
        DiskCalls {
            reads: stats.reads,
            writes: stats.writes,
            flushes: stats.flushes,
            injected: stats.injected,
        }
    }
}

/// Invariants of every reply, whatever the model says.
fn check_envelope(reply: &Reply, req: &[u8]) -> Result<(), TestCaseError> {
    prop_assert!(reply.bytes.len() >= 60);
    prop_assert_eq!(
        &reply.bytes[0..6],
        &req[6..12],
        "destination is the requester"
    );
    prop_assert_eq!(reply.src(), TARGET_MAC);
    prop_assert_eq!(reply.ethertype(), 0x88A2);
    prop_assert!(reply.is_response(), "R flag");
    prop_assert_eq!(reply.version(), 1);
    prop_assert_eq!(reply.major(), SHELF);
    prop_assert_eq!(reply.minor(), SLOT);
    prop_assert_eq!(&reply.bytes[19..24], &req[19..24], "command and tag");
    if req[19] == 0 && reply.is_error() {
        // Only refusals of the whole command (reservation, version) may carry E on ATA.
        prop_assert!(
            matches!(reply.error(), 5 | 6),
            "ATA reply with AoE error {}",
            reply.error()
        );
    }
    Ok(())
}

fn run(case: &Case) -> Result<(), TestCaseError> {
    let mut rig = Rig::new(case.sectors, case.mtu);
    let mut model = Model::new(case.sectors, case.mtu);
    for (index, step) in case.steps.iter().enumerate() {
        let context = |e: TestCaseError| match e {
            TestCaseError::Fail(why) => TestCaseError::fail(format!("step {index}: {why}")),
            other => other,
        };
        run_step(&mut rig, &mut model, step).map_err(context)?;
        prop_assert_eq!(
            rig.calls(),
            model.disk.calls(),
            "step {}: disk calls",
            index
        );
    }
    model
        .disk
        .check_disk(rig.target.disk().inner().as_bytes())
        .map_err(TestCaseError::fail)
}

fn run_step(rig: &mut Rig, model: &mut Model, step: &Step) -> Result<(), TestCaseError> {
    if let Op::ArmFault(fault) = &step.op {
        let plan = *fault;
        rig.target.disk_mut().set_plan(plan);
        model.disk.set_fault_plan(plan);
        return Ok(());
    }
    let initiator = step.addr.initiator(INITIATORS[step.from]);
    let (req, id) = model.build(&initiator, step);
    let reply = rig.send(&req)?;
    let reaches = step.addr.reaches_target() && model.mask_allows(&initiator.mac);
    let expect = if reaches {
        model.apply(initiator.mac, &step.op, &req, id)
    } else {
        Expect::Silence
    };
    let reply = match (expect, reply) {
        (Expect::Silence, None) => None,
        (Expect::Silence, Some(reply)) => {
            return Err(TestCaseError::fail(format!(
                "expected silence, got {:02x?}",
                &reply.bytes[..reply.bytes.len().min(64)]
            )));
        }
        (_, None) => return Err(TestCaseError::fail("expected a reply, got silence")),
        (Expect::Exact(bytes), Some(reply)) => {
            check_envelope(&reply, &req)?;
            prop_assert_eq!(&reply.bytes, &bytes);
            Some(reply)
        }
        (Expect::ReadData { head, lba, count }, Some(reply)) => {
            check_envelope(&reply, &req)?;
            prop_assert_eq!(reply.bytes.len(), 36 + usize::from(count) * 512);
            prop_assert_eq!(&reply.bytes[..36], &head[..]);
            model
                .disk
                .check_read(lba, reply.ata_data())
                .map_err(TestCaseError::fail)?;
            Some(reply)
        }
        (Expect::Identify(head), Some(reply)) => {
            check_envelope(&reply, &req)?;
            prop_assert_eq!(reply.bytes.len(), 36 + 512);
            prop_assert_eq!(&reply.bytes[..36], &head[..]);
            let data = reply.ata_data();
            let lba28 = u32::from_le_bytes(data[120..124].try_into().unwrap());
            let lba48 = u64::from_le_bytes(data[200..208].try_into().unwrap());
            prop_assert_eq!(u64::from(lba28), model.disk.sectors().min(LBA28_MASK));
            prop_assert_eq!(lba48, model.disk.sectors());
            Some(reply)
        }
    };
    // A write that did not succeed, and any frame that was not a valid write, must leave every
    // sector as the model has it (out-of-range requests never touch the disk).
    let write_succeeded = reply.as_ref().is_some_and(|r| {
        matches!(step.op, Op::Write { .. }) && !r.is_error() && r.ata_status() == STATUS_OK
    });
    if !write_succeeded && !matches!(step.op, Op::Read { .. }) {
        model
            .disk
            .check_disk(rig.target.disk().inner().as_bytes())
            .map_err(TestCaseError::fail)?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        max_shrink_iters: 4096,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("proptest-regressions"))),
        ..ProptestConfig::default()
    })]

    /// Random request sequences with injected faults agree with the shadow model.
    #[test]
    fn target_agrees_with_model(case in case_strategy()) {
        run(&case)?;
    }
}
