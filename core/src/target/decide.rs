//! Deciding: what a received frame gets, and the state changes of control commands.
//!
//! Guarantees: every check of the module docs of [`target`](super) (addressing, source MAC,
//! mask list, header lengths, sector ranges, reservations) happens here, before a [`Plan`]
//! exists; a plan's reply fits the port and the frame buffer.

use super::plan::{Action, AtaEcho, AtaOutcome, DiskIo, IoOp, Plan};
use super::{Port, RESERVE_CAPACITY, Target};
use crate::disk::{Disk, SECTOR_SIZE, range_fits};
use crate::identify::IDENTIFY_LEN;
use crate::wire::aoe::{self, Command, ErrorCode};
use crate::wire::ata::{self, AtaCommand, error as ata_error};
use crate::wire::cfg::{self, ConfigCommand};
use crate::wire::mask::{self, DirectiveCommand, MaskCommand, MaskError};
use crate::wire::reserve::{self, ReserveCommand};
use crate::wire::{
    AOE_ARG_OFFSET, ATA_DATA_OFFSET, EthernetAddress, EthernetFrame, MIN_FRAME_LEN, aoe_header,
};

/// SMART sub-commands (Features register) the target answers.
const SMART_RETURN_STATUS: u8 = 0xDA;
const SMART_ENABLE_OPERATIONS: u8 = 0xD8;
/// LBA mid/high signature every SMART command carries, and a healthy RETURN STATUS echoes.
const SMART_SIGNATURE: [u8; 2] = [0x4F, 0xC2];

impl<D: Disk> Target<D> {
    pub(super) fn decide(&mut self, port: &Port, rx: &[u8]) -> Option<Plan> {
        let header = aoe_header(rx).ok()?;
        // `aoe_header` checked that the Ethernet header is present.
        let ethernet = EthernetFrame::new_unchecked(rx);
        let destination = ethernet.dst_addr();
        let source = ethernet.src_addr();
        if destination != port.mac && !destination.is_broadcast() {
            trace!("drop: for another MAC");
            return None;
        }
        if !source.is_unicast() || source == port.mac || source.0 == [0; 6] {
            debug!("drop: source MAC is multicast, zero or our own");
            return None;
        }
        if header.is_response() {
            trace!("drop: a response");
            return None;
        }
        if !self.config.answers(header.major(), header.minor()) {
            trace!("drop: for e{}.{}", header.major(), header.minor());
            return None;
        }
        if !self.state.mask_allows(&source) {
            debug!("drop: source not on the MAC mask list");
            return None;
        }
        trace!("rx: tag {:x} command {:?}", header.tag(), header.command());

        let sectors_per_frame = self.sectors_per_frame(port);
        let arg = header.arg();
        let mut ata = AtaEcho::default();
        let action = if header.version() != aoe::VERSION {
            Action::AoeError(ErrorCode::UnsupportedVersion)
        } else {
            match header.command() {
                Command::IssueAta => {
                    let registers = ata::Packet::new_checked(arg).ok()?;
                    ata = AtaEcho::of(&registers);
                    self.decide_ata(&source, sectors_per_frame, &registers)
                }
                // A Sector Count of 0 would read as 2 to an initiator (AoE r11 §3.2): a port
                // that cannot carry one sector stays silent to discovery instead.
                Command::QueryConfig if sectors_per_frame == 0 => {
                    debug!("drop: port MTU {} carries no sector", port.mtu);
                    return None;
                }
                Command::QueryConfig => {
                    let frame_limit = port.max_frame_len().min(self.config.max_frame_len);
                    self.decide_config(arg, frame_limit)?
                }
                Command::MacMaskList => self.decide_mask(arg)?,
                Command::ReserveRelease => self.decide_reserve(&source, arg)?,
                Command::Unknown(_) => Action::AoeError(ErrorCode::UnrecognizedCommand),
            }
        };
        let reply_len = self.reply_len(&action);
        if reply_len > port.max_frame_len() || reply_len > self.config.max_frame_len {
            debug!(
                "drop: a reply of {} octets would not fit the port",
                reply_len
            );
            return None;
        }
        Some(Plan {
            action,
            reply_len,
            requester: source,
            tag: header.tag(),
            command: header.command().into(),
            ata,
            local_mac: port.mac,
            sectors_per_frame,
            generation: self.state.generation,
        })
    }

    fn decide_ata(
        &mut self,
        source: &EthernetAddress,
        sectors_per_frame: u8,
        registers: &ata::Packet<&[u8]>,
    ) -> Action {
        let command = AtaCommand::from(registers.cmd_status());
        if command != AtaCommand::IdentifyDevice && !self.state.reservation_allows(source) {
            debug!("ATA from a MAC without the reservation: error 6");
            return Action::AoeError(ErrorCode::TargetReserved);
        }
        let count = registers.sector_count();
        let aborted = Action::AtaStatus(AtaOutcome::failed(ata_error::ABRT, count));
        let transfer =
            |op, lba| self.decide_transfer(op, lba, count, sectors_per_frame, registers.data());
        match command {
            AtaCommand::ReadSectors => transfer(IoOp::Read, registers.lba28()),
            AtaCommand::WriteSectors => transfer(IoOp::Write, registers.lba28()),
            AtaCommand::ReadSectorsExt => transfer(IoOp::Read, registers.lba48()),
            AtaCommand::WriteSectorsExt => transfer(IoOp::Write, registers.lba48()),
            AtaCommand::IdentifyDevice => Action::Identify,
            AtaCommand::FlushCache | AtaCommand::FlushCacheExt => Action::AtaIo(DiskIo {
                op: IoOp::Flush,
                lba: 0,
                sectors: 0,
            }),
            AtaCommand::CheckPowerMode => Action::AtaStatus(AtaOutcome {
                sector_count: 0xFF, // active or idle
                ..AtaOutcome::DONE
            }),
            AtaCommand::Smart => {
                let lba = registers.lba_bytes();
                let signed = [lba[1], lba[2]] == SMART_SIGNATURE;
                match registers.err_feature() {
                    SMART_RETURN_STATUS | SMART_ENABLE_OPERATIONS if signed => {
                        // The LBA mid/high octets are echoed: 4F/C2 means no threshold exceeded.
                        Action::AtaStatus(AtaOutcome::DONE)
                    }
                    _ => aborted,
                }
            }
            AtaCommand::Unknown(code) => {
                debug!("ATA command {:02x} not supported: ABRT", code);
                aborted
            }
        }
    }

    fn decide_transfer(
        &self,
        op: IoOp,
        lba: u64,
        count: u8,
        sectors_per_frame: u8,
        data: &[u8],
    ) -> Action {
        let failed = |error| Action::AtaStatus(AtaOutcome::failed(error, count));
        // Count 0 would mean 256 (or 65536) sectors to ATA, more than any frame carries.
        if count == 0 || count > sectors_per_frame {
            debug!(
                "sector count {} outside 1..={}: ABRT",
                count, sectors_per_frame
            );
            return failed(ata_error::ABRT);
        }
        if !range_fits(lba, usize::from(count), self.sectors) {
            debug!(
                "LBA {} + {} beyond {} sectors: IDNF",
                lba, count, self.sectors
            );
            return failed(ata_error::IDNF);
        }
        if op == IoOp::Write && data.len() < usize::from(count) * SECTOR_SIZE {
            debug!(
                "write of {} sectors carries {} octets: ABRT",
                count,
                data.len()
            );
            return failed(ata_error::ABRT);
        }
        Action::AtaIo(DiskIo {
            op,
            lba,
            sectors: count,
        })
    }

    fn decide_config(&mut self, arg: &[u8], frame_limit: usize) -> Option<Action> {
        let request = cfg::Packet::new_checked(arg).ok()?;
        let command = request.command();
        let reply = |string_present| {
            Some(Action::Config {
                command,
                string_present,
            })
        };
        if command == ConfigCommand::Read {
            // Answered whatever the request's string length says (aoeping sends 1024 + filler).
            return reply(false);
        }
        if let ConfigCommand::Unknown(code) = command {
            debug!("config sub-command {} unknown: error 2", code);
            return Some(Action::AoeError(ErrorCode::BadArgument));
        }
        let Ok(string) = request.config_string() else {
            debug!("config string length beyond 1024 or the frame: error 2");
            return Some(Action::AoeError(ErrorCode::BadArgument));
        };
        let ours = self.state.config_string.as_slice();
        match command {
            ConfigCommand::Test if string == ours => reply(false),
            ConfigCommand::TestPrefix if ours.starts_with(string) => reply(false),
            ConfigCommand::Test | ConfigCommand::TestPrefix => None,
            ConfigCommand::Set if !ours.is_empty() && ours != string => reply(true),
            ConfigCommand::Set | ConfigCommand::ForceSet
                if self.config.pinned.config_string && ours != string =>
            {
                debug!("config string is pinned: error 4");
                reply(true)
            }
            _ if AOE_ARG_OFFSET + cfg::HEADER_LEN + string.len() > frame_limit => {
                // Storing it would make every later config reply too long for this port.
                debug!(
                    "config string of {} octets would not fit a reply: error 2",
                    string.len()
                );
                Some(Action::AoeError(ErrorCode::BadArgument))
            }
            _ => {
                // Set on an empty (or identical) string, or ForceSet. The length was bounded
                // by `config_string`, so this cannot fail.
                self.state.set_config_string(string).ok()?;
                reply(false)
            }
        }
    }

    fn decide_mask(&mut self, arg: &[u8]) -> Option<Action> {
        let request = mask::Packet::new_checked(arg).ok()?;
        let command = request.command();
        let mut error = MaskError::NoError;
        let mut applied = 0u8;
        match command {
            MaskCommand::Read => {}
            MaskCommand::Edit => {
                let Ok(directives) = request.directives() else {
                    debug!("mask Dir Count beyond the frame: error 2");
                    return Some(Action::AoeError(ErrorCode::BadArgument));
                };
                let edits = directives.iter().any(|directive| {
                    matches!(
                        directive.command,
                        DirectiveCommand::Add | DirectiveCommand::Delete
                    )
                });
                if self.config.pinned.mask && edits {
                    debug!("mask list is pinned: MError 1");
                    return Some(Action::Mask {
                        command,
                        error: MaskError::Unspecified,
                        applied: 0,
                    });
                }
                for directive in directives.iter() {
                    match directive.command {
                        DirectiveCommand::None => {}
                        DirectiveCommand::Add => {
                            if self.state.mask_add(directive.mac).is_err() {
                                error = MaskError::ListFull;
                            }
                        }
                        DirectiveCommand::Delete => {
                            self.state.mask_remove(&directive.mac);
                        }
                        DirectiveCommand::Unknown(_) => error = MaskError::BadDirective,
                    }
                    if error != MaskError::NoError {
                        break;
                    }
                    applied = applied.saturating_add(1);
                }
            }
            MaskCommand::Unknown(code) => {
                debug!("mask MCmd {} unknown: error 2", code);
                return Some(Action::AoeError(ErrorCode::BadArgument));
            }
        }
        Some(Action::Mask {
            command,
            error,
            applied,
        })
    }

    fn decide_reserve(&mut self, source: &EthernetAddress, arg: &[u8]) -> Option<Action> {
        let request = reserve::Packet::new_checked(arg).ok()?;
        let command = request.command();
        let reply = |refused| Some(Action::Reserve { command, refused });
        match command {
            ReserveCommand::Read => reply(false),
            ReserveCommand::Set | ReserveCommand::ForceSet => {
                let macs = match request.macs() {
                    Ok(macs) if macs.len() <= RESERVE_CAPACITY => macs,
                    _ => {
                        debug!("reserve NMacs beyond the frame or the list: error 2");
                        return Some(Action::AoeError(ErrorCode::BadArgument));
                    }
                };
                if command == ReserveCommand::Set && !self.state.reservation_allows(source) {
                    debug!("reserve set by a MAC without the reservation: error 6");
                    return reply(true);
                }
                let unchanged = macs
                    .iter()
                    .all(|mac| self.state.reservations.contains(&mac))
                    && self
                        .state
                        .reservations
                        .iter()
                        .all(|kept| macs.iter().any(|mac| mac == *kept));
                if self.config.pinned.reservations && !unchanged {
                    debug!("reserve list is pinned: error 6");
                    return reply(true);
                }
                self.state.set_reservations(macs.iter()).ok()?;
                reply(false)
            }
            ReserveCommand::Unknown(code) => {
                debug!("reserve RCmd {} unknown: error 2", code);
                Some(Action::AoeError(ErrorCode::BadArgument))
            }
        }
    }

    /// Octets of the reply to `action`, before padding to 60.
    fn reply_len(&self, action: &Action) -> usize {
        let len = match action {
            Action::AoeError(_) | Action::AtaStatus(_) => AOE_ARG_OFFSET,
            Action::Config { .. } => {
                AOE_ARG_OFFSET + cfg::HEADER_LEN + self.state.config_string.len()
            }
            Action::Mask { error, applied, .. } => {
                let entries = if *error == MaskError::NoError {
                    self.state.mask.len()
                } else {
                    usize::from(*applied)
                };
                AOE_ARG_OFFSET + mask::HEADER_LEN + entries * mask::DIRECTIVE_LEN
            }
            Action::Reserve { .. } => {
                AOE_ARG_OFFSET
                    + reserve::HEADER_LEN
                    + self.state.reservations.len() * reserve::MAC_LEN
            }
            Action::Identify => ATA_DATA_OFFSET + IDENTIFY_LEN,
            Action::AtaIo(io) => match io.op {
                IoOp::Read => ATA_DATA_OFFSET + io.byte_len(),
                IoOp::Write | IoOp::Flush => ATA_DATA_OFFSET,
            },
        };
        len.max(MIN_FRAME_LEN)
    }
}
