//! One-shot exchanges with targets: discovery, Query Config, IDENTIFY, MAC mask, reserve and
//! release, FLUSH CACHE.
//!
//! Each exchange sends one request and waits for the matching reply (sender, shelf.slot,
//! command and tag), retransmitting it with a new tag every [`Retry::rto`] until
//! [`Retry::give_up`]. Replies with the AoE error flag become [`Error::Aoe`]. Control tags have
//! bit 31 set, so they never collide with the I/O engine's.

use super::frame::{
    ATA_FLUSH, ATA_FLUSH_EXT, ATA_IDENTIFY, ATA_SMART, Address, AtaReply, BROADCAST, Reply,
    SMART_RETURN_STATUS, SMART_SIGNATURE, SMART_THRESHOLD_EXCEEDED, pad, write_ata, write_header,
    write_smart,
};
use super::{Error, Transport};
use aoe_core::wire::aoe::Command;
use aoe_core::wire::cfg::{self, ConfigCommand};
use aoe_core::wire::mask::{self, Directive, DirectiveCommand, MaskCommand, MaskError};
use aoe_core::wire::reserve::{self, ReserveCommand};
use aoe_core::wire::{AOE_ARG_OFFSET, EthernetAddress};
use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// How often and how long to ask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// Time between retransmissions.
    pub rto: Duration,
    /// Time after which the exchange fails with [`Error::NoAnswer`].
    pub give_up: Duration,
}

impl Default for Retry {
    /// Every 250 ms for 3 s.
    fn default() -> Retry {
        Retry {
            rto: Duration::from_millis(250),
            give_up: Duration::from_secs(3),
        }
    }
}

static CONTROL_TAG: AtomicU32 = AtomicU32::new(0);

fn control_tag() -> u32 {
    0x8000_0000 | (CONTROL_TAG.fetch_add(1, Ordering::Relaxed) & 0x7fff_ffff)
}

/// What a target says about itself in a Query Config reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetInfo {
    /// The MAC it answered from.
    pub mac: EthernetAddress,
    /// Shelf.
    pub shelf: u16,
    /// Slot.
    pub slot: u8,
    /// Buffer Count: frames it queues.
    pub buffer_count: u16,
    /// Firmware Version.
    pub firmware_version: u16,
    /// Sector Count: most sectors per ATA request (0 means 2).
    pub sector_count: u8,
    /// The AoE protocol version it speaks.
    pub aoe_version: u8,
    /// The config string.
    pub config_string: Vec<u8>,
}

impl TargetInfo {
    /// The address of this target for unicast requests.
    pub fn address(&self) -> Address {
        Address {
            mac: self.mac,
            shelf: self.shelf,
            slot: self.slot,
        }
    }

    fn from_reply(reply: &Reply<'_>) -> Result<TargetInfo, Error> {
        let packet = cfg::Packet::new_checked(reply.arg)
            .map_err(|_| Error::BadReply("Query Config reply too short".to_string()))?;
        let repr = cfg::Repr::parse(&packet)
            .map_err(|_| Error::BadReply("config string length beyond the frame".to_string()))?;
        Ok(TargetInfo {
            mac: reply.src,
            shelf: reply.header.major,
            slot: reply.header.minor,
            buffer_count: repr.buffer_count,
            firmware_version: repr.firmware_version,
            sector_count: repr.sector_count,
            aoe_version: repr.aoe_version,
            config_string: repr.config_string.to_vec(),
        })
    }
}

/// What IDENTIFY DEVICE says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentifyInfo {
    /// Capacity in 512-octet sectors.
    pub sectors: u64,
    /// True if the device supports 48-bit LBA.
    pub lba48: bool,
    /// Model string.
    pub model: String,
    /// Serial number.
    pub serial: String,
    /// Firmware revision.
    pub firmware: String,
    /// True if FLUSH CACHE is supported (word 83 bit 12).
    pub flush: bool,
    /// True if FLUSH CACHE EXT is supported (word 83 bit 13).
    pub flush_ext: bool,
}

impl IdentifyInfo {
    /// Decodes the 512 octets of IDENTIFY DEVICE data.
    pub fn parse(data: &[u8]) -> Result<IdentifyInfo, Error> {
        let Some(data) = data.get(..512) else {
            return Err(Error::BadReply(format!(
                "IDENTIFY returned {} octets, not 512",
                data.len()
            )));
        };
        let word = |n: usize| u16::from_le_bytes([data[2 * n], data[2 * n + 1]]);
        // ATA strings put the first character of each pair in the high octet of the word.
        let string = |first: usize, last: usize| {
            let bytes: Vec<u8> = (first..=last).flat_map(|n| word(n).to_be_bytes()).collect();
            String::from_utf8_lossy(&bytes).trim().to_string()
        };
        let lba48 = (word(83) | word(86)) & (1 << 10) != 0;
        let sectors = if lba48 {
            (0..4).fold(0u64, |acc, k| acc | u64::from(word(100 + k)) << (16 * k))
        } else {
            u64::from(word(60)) | u64::from(word(61)) << 16
        };
        Ok(IdentifyInfo {
            sectors,
            lba48,
            model: string(27, 46),
            serial: string(10, 19),
            firmware: string(23, 26),
            flush: word(83) & (1 << 12) != 0,
            flush_ext: word(83) & (1 << 13) != 0,
        })
    }
}

/// Sends the request `frame` (its exact length) to `to` and waits for the reply `accept` takes.
/// `accept` sees every reply with the right sender, command and tag; it returns `None` to keep
/// waiting.
fn exchange<L, T>(
    link: &mut L,
    frame: &mut [u8],
    to: Address,
    command: Command,
    retry: Retry,
    what: &str,
    mut accept: impl FnMut(&Reply<'_>) -> Option<Result<T, Error>>,
) -> Result<T, Error>
where
    L: Transport + ?Sized,
{
    let us = link.mac();
    let start = link.now();
    loop {
        let tag = control_tag();
        super::frame::set_tag(frame, tag);
        link.send(&[frame])?;
        let sent = link.now();
        let mut result = None;
        while result.is_none() {
            let now = link.now();
            let waited = now.saturating_sub(sent);
            if waited >= retry.rto || now.saturating_sub(start) >= retry.give_up {
                break;
            }
            let timeout = (retry.rto - waited).min(retry.give_up - now.saturating_sub(start));
            link.recv(timeout, &mut |bytes, _| {
                if result.is_some() {
                    return;
                }
                if let Some(reply) = Reply::parse(bytes, us)
                    && reply.answers(to, command, tag)
                {
                    result = accept(&reply);
                }
            })?;
        }
        if let Some(result) = result {
            return result;
        }
        if link.now().saturating_sub(start) >= retry.give_up {
            return Err(Error::NoAnswer {
                what: what.to_string(),
                waited: retry.give_up,
            });
        }
    }
}

fn aoe_error(reply: &Reply<'_>) -> Option<Error> {
    reply.aoe_error().map(|code| Error::Aoe {
        command: reply.header.command,
        code,
    })
}

/// Writes a Query Config request into `frame` and returns its length.
fn build_config(
    frame: &mut [u8],
    us: EthernetAddress,
    to: Address,
    command: ConfigCommand,
    string: &[u8],
) -> Result<usize, Error> {
    if string.len() > cfg::MAX_CONFIG_STRING_LEN {
        return Err(Error::Invalid(format!(
            "config string of {} octets: AoE allows at most {}",
            string.len(),
            cfg::MAX_CONFIG_STRING_LEN
        )));
    }
    let repr = cfg::Repr {
        buffer_count: 0,
        firmware_version: 0,
        sector_count: 0,
        aoe_version: 0,
        command,
        config_string: string,
    };
    let len = AOE_ARG_OFFSET + repr.buffer_len();
    if len > frame.len() {
        return Err(Error::Invalid(format!(
            "a config string of {} octets does not fit this port's MTU",
            string.len()
        )));
    }
    write_header(frame, us, to, Command::QueryConfig, 0);
    repr.emit(&mut cfg::Packet::new_unchecked(
        &mut frame[AOE_ARG_OFFSET..],
    ));
    Ok(pad(frame, len))
}

fn frame_buffer<L: Transport + ?Sized>(link: &L) -> Vec<u8> {
    vec![0u8; link.mtu().max(aoe_core::wire::MIN_FRAME_LEN) + 14]
}

/// Sends Query Config with `command` and `string` to `to` and returns the first answer.
///
/// # Errors
/// No answer (also what a failed test or test-prefix gets), or an AoE error (error 4 for a
/// conditional set that found another string).
pub fn query_config<L: Transport + ?Sized>(
    link: &mut L,
    to: Address,
    command: ConfigCommand,
    string: &[u8],
    retry: Retry,
) -> Result<TargetInfo, Error> {
    let mut frame = frame_buffer(link);
    let len = build_config(&mut frame, link.mac(), to, command, string)?;
    let what = format!("Query Config ({command:?}) to {}", describe(to));
    exchange(
        link,
        &mut frame[..len],
        to,
        Command::QueryConfig,
        retry,
        &what,
        |reply| Some(aoe_error(reply).map_or_else(|| TargetInfo::from_reply(reply), Err)),
    )
}

/// Broadcasts a Query Config read to `to` (shelf and slot may be wildcards) and collects the
/// distinct answers (by MAC, shelf and slot) for `wait`, asking twice in case one is lost.
///
/// # Errors
/// Only when the port fails: no answer is an empty list.
pub fn discover<L: Transport + ?Sized>(
    link: &mut L,
    to: Address,
    wait: Duration,
) -> Result<Vec<TargetInfo>, Error> {
    Ok(collect_answers(link, to, ConfigCommand::Read, b"", wait)?
        .into_iter()
        .map(|answer| answer.info)
        .collect())
}

/// One target's answers to a broadcast Query Config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// What it said (its first answer).
    pub info: TargetInfo,
    /// The most answers one request got from this MAC for this shelf.slot: more than 1 means
    /// two targets share the MAC and the address (two processes on one host and interface).
    pub answers_per_request: u32,
}

/// Broadcasts Query Config `command` with `string` to `to` (shelf and slot may be wildcards)
/// for `wait`, asking twice in case one is lost, and collects every answer: discovery
/// ([`ConfigCommand::Read`]), or the targets whose config string matches (`Test`,
/// `TestPrefix`: the others stay silent). Answers with the AoE error flag are ignored.
///
/// # Errors
/// Only when the port fails or the string is too long: no answer is an empty list.
pub fn collect_answers<L: Transport + ?Sized>(
    link: &mut L,
    to: Address,
    command: ConfigCommand,
    string: &[u8],
    wait: Duration,
) -> Result<Vec<Answer>, Error> {
    let mut frame = frame_buffer(link);
    let to = Address {
        mac: BROADCAST,
        ..to
    };
    let len = build_config(&mut frame, link.mac(), to, command, string)?;
    let us = link.mac();
    let start = link.now();
    let mut found: Vec<Answer> = Vec::new();
    // Answers per (request tag, MAC, shelf, slot).
    let mut counts: Vec<(u32, EthernetAddress, u16, u8, u32)> = Vec::new();
    let mut tags = Vec::new();
    let mut asked = 0;
    loop {
        let elapsed = link.now().saturating_sub(start);
        if elapsed >= wait {
            break;
        }
        if asked < 2 && elapsed >= wait / 2 * asked {
            let tag = control_tag();
            super::frame::set_tag(&mut frame, tag);
            link.send(&[&frame[..len]])?;
            tags.push(tag);
            asked += 1;
        }
        let until = if asked < 2 { wait / 2 } else { wait };
        let timeout = until.saturating_sub(elapsed).max(Duration::from_millis(1));
        link.recv(timeout, &mut |bytes, _| {
            let Some(reply) = Reply::parse(bytes, us) else {
                return;
            };
            let Some(&tag) = tags
                .iter()
                .find(|&&tag| reply.answers(to, Command::QueryConfig, tag))
            else {
                return;
            };
            if reply.aoe_error().is_some() {
                return;
            }
            let Ok(info) = TargetInfo::from_reply(&reply) else {
                return;
            };
            let key = (tag, info.mac, info.shelf, info.slot);
            let count = match counts.iter_mut().find(|c| (c.0, c.1, c.2, c.3) == key) {
                Some(entry) => {
                    entry.4 += 1;
                    entry.4
                }
                None => {
                    counts.push((key.0, key.1, key.2, key.3, 1));
                    1
                }
            };
            match found.iter_mut().find(|f| {
                f.info.mac == info.mac && f.info.shelf == info.shelf && f.info.slot == info.slot
            }) {
                Some(answer) => {
                    answer.answers_per_request = answer.answers_per_request.max(count);
                }
                None => found.push(Answer {
                    info,
                    answers_per_request: count,
                }),
            }
        })?;
    }
    found.sort_by_key(|answer| (answer.info.shelf, answer.info.slot, answer.info.mac.0));
    Ok(found)
}

/// What SMART RETURN STATUS says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmartStatus {
    /// No threshold exceeded (LBA mid/high 4F/C2).
    Healthy,
    /// A threshold is exceeded (F4/2C): the device predicts its own failure.
    ThresholdExceeded,
    /// Some other LBA mid/high.
    Unknown([u8; 2]),
}

/// Sends SMART RETURN STATUS to `to` (what `aoeping -S return_status` asks).
///
/// # Errors
/// No answer, an AoE error, or an ATA error (a target without SMART aborts it: ABRT).
pub fn smart_status<L: Transport + ?Sized>(
    link: &mut L,
    to: Address,
    retry: Retry,
) -> Result<SmartStatus, Error> {
    let mut frame = frame_buffer(link);
    let len = write_smart(&mut frame, link.mac(), to, 0, SMART_RETURN_STATUS);
    let what = format!("SMART RETURN STATUS to {}", describe(to));
    exchange(
        link,
        &mut frame[..len],
        to,
        Command::IssueAta,
        retry,
        &what,
        |reply| {
            if let Some(err) = aoe_error(reply) {
                return Some(Err(err));
            }
            let Some(ata) = AtaReply::parse(reply.arg) else {
                return Some(Err(Error::BadReply(
                    "ATA reply shorter than its registers".to_string(),
                )));
            };
            if ata.failed() {
                return Some(Err(Error::Ata {
                    command: ATA_SMART,
                    lba: 0,
                    status: ata.status,
                    error: ata.error,
                }));
            }
            let signature = [ata.lba[1], ata.lba[2]];
            Some(Ok(if signature == SMART_SIGNATURE {
                SmartStatus::Healthy
            } else if signature == SMART_THRESHOLD_EXCEEDED {
                SmartStatus::ThresholdExceeded
            } else {
                SmartStatus::Unknown(signature)
            }))
        },
    )
}

/// Sends IDENTIFY DEVICE to `to`.
///
/// # Errors
/// No answer, an AoE error, an ATA error, or data that is not 512 octets.
pub fn identify<L: Transport + ?Sized>(
    link: &mut L,
    to: Address,
    retry: Retry,
) -> Result<IdentifyInfo, Error> {
    let mut frame = frame_buffer(link);
    let len = write_ata(&mut frame, link.mac(), to, 0, ATA_IDENTIFY, 0, 1);
    let what = format!("IDENTIFY to {}", describe(to));
    exchange(
        link,
        &mut frame[..len],
        to,
        Command::IssueAta,
        retry,
        &what,
        |reply| Some(ata_result(reply, ATA_IDENTIFY).and_then(IdentifyInfo::parse)),
    )
}

/// Which flush command a target got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flushed {
    /// FLUSH CACHE EXT (0xEA).
    Ext,
    /// FLUSH CACHE (0xE7), for targets that advertise only that (vblade).
    Standard,
    /// The target advertises neither, so none was sent.
    NotSupported,
}

/// Makes every write `to` acknowledged durable: FLUSH CACHE EXT if IDENTIFY advertises it,
/// else FLUSH CACHE if that is advertised (vblade aborts 0xEA), else nothing.
///
/// # Errors
/// No answer, an AoE error or an ATA error.
pub fn flush<L: Transport + ?Sized>(
    link: &mut L,
    to: Address,
    identity: &IdentifyInfo,
    retry: Retry,
) -> Result<Flushed, Error> {
    let (command, flushed, name) = if identity.flush_ext {
        (ATA_FLUSH_EXT, Flushed::Ext, "FLUSH CACHE EXT")
    } else if identity.flush {
        (ATA_FLUSH, Flushed::Standard, "FLUSH CACHE")
    } else {
        return Ok(Flushed::NotSupported);
    };
    let mut frame = frame_buffer(link);
    let len = write_ata(&mut frame, link.mac(), to, 0, command, 0, 0);
    let what = format!("{name} to {}", describe(to));
    exchange(
        link,
        &mut frame[..len],
        to,
        Command::IssueAta,
        retry,
        &what,
        |reply| Some(ata_result(reply, command).map(|_| flushed)),
    )
}

fn ata_result<'a>(reply: &Reply<'a>, command: u8) -> Result<&'a [u8], Error> {
    if let Some(err) = aoe_error(reply) {
        return Err(err);
    }
    let ata = AtaReply::parse(reply.arg)
        .ok_or_else(|| Error::BadReply("ATA reply shorter than its registers".to_string()))?;
    if ata.failed() {
        return Err(Error::Ata {
            command,
            lba: 0,
            status: ata.status,
            error: ata.error,
        });
    }
    Ok(ata.data)
}

/// A change to the MAC mask list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaskEdit {
    /// Let this MAC in.
    Add(EthernetAddress),
    /// Remove this MAC.
    Delete(EthernetAddress),
}

/// Reads the MAC mask list of `to`, or edits it with `edits` and returns the list after them.
///
/// # Errors
/// No answer, an AoE error, or a mask error (bad directive, list full).
pub fn mask<L: Transport + ?Sized>(
    link: &mut L,
    to: Address,
    edits: &[MaskEdit],
    retry: Retry,
) -> Result<Vec<EthernetAddress>, Error> {
    let count = u8::try_from(edits.len())
        .map_err(|_| Error::Invalid("at most 255 mask edits at once".to_string()))?;
    let mut frame = frame_buffer(link);
    let len = AOE_ARG_OFFSET + mask::HEADER_LEN + edits.len() * mask::DIRECTIVE_LEN;
    if len > frame.len() {
        return Err(Error::Invalid(
            "too many mask edits for one frame".to_string(),
        ));
    }
    write_header(&mut frame, link.mac(), to, Command::MacMaskList, 0);
    {
        let mut packet = mask::Packet::new_unchecked(&mut frame[AOE_ARG_OFFSET..]);
        let command = if edits.is_empty() {
            MaskCommand::Read
        } else {
            MaskCommand::Edit
        };
        packet.set_header(command, MaskError::NoError, count);
        for (index, edit) in edits.iter().enumerate() {
            let directive = match *edit {
                MaskEdit::Add(mac) => Directive {
                    command: DirectiveCommand::Add,
                    mac,
                },
                MaskEdit::Delete(mac) => Directive {
                    command: DirectiveCommand::Delete,
                    mac,
                },
            };
            packet.set_directive(index, directive);
        }
    }
    let len = pad(&mut frame, len);
    let what = format!("MAC Mask List to {}", describe(to));
    exchange(
        link,
        &mut frame[..len],
        to,
        Command::MacMaskList,
        retry,
        &what,
        |reply| {
            if let Some(err) = aoe_error(reply) {
                return Some(Err(err));
            }
            let Ok(packet) = mask::Packet::new_checked(reply.arg) else {
                return Some(Err(Error::BadReply("mask reply too short".to_string())));
            };
            if packet.error() != MaskError::NoError {
                let applied = packet.dir_count();
                return Some(Err(Error::Invalid(format!(
                    "the target refused mask edit {} of {}: {:?} (the {applied} before it \
                     were applied)",
                    usize::from(applied) + 1,
                    edits.len(),
                    packet.error()
                ))));
            }
            let Ok(directives) = packet.directives_ref() else {
                return Some(Err(Error::BadReply(
                    "mask list beyond the frame".to_string(),
                )));
            };
            Some(Ok(directives.iter().map(|d| d.mac).collect()))
        },
    )
}

/// Reads the reserve list of `to` (`set` = `None`) or sets it (an empty list releases);
/// `force` overrides another initiator's reservation. Returns the list the target reports.
///
/// # Errors
/// No answer, or AoE error 6 when another initiator holds the reservation and `force` is off.
pub fn reserve<L: Transport + ?Sized>(
    link: &mut L,
    to: Address,
    set: Option<&[EthernetAddress]>,
    force: bool,
    retry: Retry,
) -> Result<Vec<EthernetAddress>, Error> {
    let macs = set.unwrap_or(&[]);
    let count = u8::try_from(macs.len())
        .map_err(|_| Error::Invalid("at most 255 MACs in a reserve list".to_string()))?;
    let command = match (set, force) {
        (None, _) => ReserveCommand::Read,
        (Some(_), false) => ReserveCommand::Set,
        (Some(_), true) => ReserveCommand::ForceSet,
    };
    let mut frame = frame_buffer(link);
    let len = AOE_ARG_OFFSET + reserve::HEADER_LEN + macs.len() * reserve::MAC_LEN;
    if len > frame.len() {
        return Err(Error::Invalid("too many MACs for one frame".to_string()));
    }
    write_header(&mut frame, link.mac(), to, Command::ReserveRelease, 0);
    {
        let mut packet = reserve::Packet::new_unchecked(&mut frame[AOE_ARG_OFFSET..]);
        packet.set_header(command, count);
        for (index, mac) in macs.iter().enumerate() {
            packet.set_mac(index, *mac);
        }
    }
    let len = pad(&mut frame, len);
    let what = format!("Reserve/Release to {}", describe(to));
    exchange(
        link,
        &mut frame[..len],
        to,
        Command::ReserveRelease,
        retry,
        &what,
        |reply| {
            if let Some(err) = aoe_error(reply) {
                return Some(Err(err));
            }
            let Ok(packet) = reserve::Packet::new_checked(reply.arg) else {
                return Some(Err(Error::BadReply("reserve reply too short".to_string())));
            };
            let Ok(list) = packet.macs() else {
                return Some(Err(Error::BadReply(
                    "reserve list beyond the frame".to_string(),
                )));
            };
            Some(Ok(list.iter().collect()))
        },
    )
}

/// A target found and identified, ready for I/O.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Its Query Config answer.
    pub info: TargetInfo,
    /// Its IDENTIFY answer.
    pub identity: IdentifyInfo,
    /// Sectors per frame on this port.
    pub sectors_per_frame: u8,
}

impl Session {
    /// Finds `shelf.slot` with a Query Config (broadcast MAC, specific shelf and slot), then
    /// asks it IDENTIFY DEVICE from the MAC that answered first.
    ///
    /// # Errors
    /// No answer, an error reply, or a port whose MTU carries no sector.
    pub fn open<L: Transport + ?Sized>(
        link: &mut L,
        shelf: u16,
        slot: u8,
        retry: Retry,
    ) -> Result<Session, Error> {
        let to = Address {
            mac: BROADCAST,
            shelf,
            slot,
        };
        let info = query_config(link, to, ConfigCommand::Read, b"", retry)?;
        let sectors_per_frame = super::sectors_per_frame(link.mtu(), info.sector_count)
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "MTU {} cannot carry a 512-octet sector (needs 548)",
                    link.mtu()
                ))
            })?;
        let identity = identify(link, info.address(), retry)?;
        Ok(Session {
            info,
            identity,
            sectors_per_frame,
        })
    }

    /// The target's unicast address.
    pub fn address(&self) -> Address {
        self.info.address()
    }
}

/// `e<shelf>.<slot>` with wildcards shown as `*`.
pub fn describe(to: Address) -> String {
    struct Part<T>(Option<T>);
    impl<T: fmt::Display> fmt::Display for Part<T> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match &self.0 {
                Some(v) => write!(f, "{v}"),
                None => f.write_str("*"),
            }
        }
    }
    let shelf = Part((to.shelf != 0xffff).then_some(to.shelf));
    let slot = Part((to.slot != 0xff).then_some(to.slot));
    format!("e{shelf}.{slot}")
}
