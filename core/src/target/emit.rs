//! Emitting: the reply to a completed plan, and the start-up announcement.
//!
//! Guarantees: every octet of a reply is written here (headers, arguments, data or echoed
//! directives), replies carry R, version 1, this export's shelf.slot and the request's
//! Command and Tag, and per-I/O failures become ATA status, never AoE errors.

use super::Target;
use super::plan::{Action, AtaOutcome, IoOp, Plan};
use crate::disk::{Disk, ErrorKind};
use crate::identify::{IDENTIFY_LEN, identify_data};
use crate::wire::aoe::{self, Command, ErrorCode};
use crate::wire::ata::{self, error as ata_error};
use crate::wire::cfg::{self, ConfigCommand};
use crate::wire::mask::{self, DirectiveCommand, MaskCommand, MaskError};
use crate::wire::reserve;
use crate::wire::{
    AOE_ARG_OFFSET, ATA_DATA_OFFSET, ETHERNET_HEADER_LEN, ETHERTYPE_AOE, EthernetAddress,
};

impl<D: Disk> Target<D> {
    /// Writes Ethernet and AoE headers with this export's address.
    pub(super) fn emit_header(
        &self,
        tx: &mut [u8],
        destination: EthernetAddress,
        source: EthernetAddress,
        command: u8,
        tag: [u8; 4],
        error: Option<ErrorCode>,
    ) {
        tx[0..6].copy_from_slice(&destination.0);
        tx[6..12].copy_from_slice(&source.0);
        tx[12..14].copy_from_slice(&ETHERTYPE_AOE.to_be_bytes());
        let mut header = aoe::Packet::new_unchecked(&mut tx[ETHERNET_HEADER_LEN..AOE_ARG_OFFSET]);
        header.set_version_flags(aoe::VERSION, true, error.is_some());
        header.set_error(error.unwrap_or(ErrorCode::Unknown(0)));
        header.set_major(self.config.shelf);
        header.set_minor(self.config.slot);
        header.set_command(Command::from(command));
        let tag = u32::from_be_bytes(tag);
        header.set_tag(tag);
    }

    /// Writes a Query Config argument describing this export; returns the frame length so far.
    pub(super) fn emit_config_arg(
        &self,
        sectors_per_frame: u8,
        command: ConfigCommand,
        arg: &mut [u8],
    ) -> usize {
        let repr = cfg::Repr {
            buffer_count: self.config.buffer_count,
            firmware_version: self.config.firmware_version,
            sector_count: sectors_per_frame,
            aoe_version: aoe::VERSION,
            command,
            config_string: &self.state.config_string,
        };
        repr.emit(&mut cfg::Packet::new_unchecked(
            &mut arg[..repr.buffer_len()],
        ));
        AOE_ARG_OFFSET + repr.buffer_len()
    }

    /// Writes the reply; returns the octets written before padding.
    pub(super) fn emit_reply(
        &mut self,
        plan: &Plan,
        io: Result<(), ErrorKind>,
        rx: &[u8],
        tx: &mut [u8],
    ) -> Option<usize> {
        let requester = plan.requester;
        let command = rx[ETHERNET_HEADER_LEN + 5];
        let tag = plan.tag.to_be_bytes();
        let error = match plan.action {
            Action::AoeError(code) => Some(code),
            Action::Config {
                string_present: true,
                ..
            } => Some(ErrorCode::ConfigStringPresent),
            Action::Reserve { refused: true, .. } => Some(ErrorCode::TargetReserved),
            _ => None,
        };
        if error.is_some() {
            self.stats.aoe_errors = self.stats.aoe_errors.wrapping_add(1);
        }

        match plan.action {
            Action::AoeError(_) => {
                self.emit_header(tx, requester, plan.local_mac, command, tag, error);
                Some(AOE_ARG_OFFSET)
            }
            Action::Config { command: ccmd, .. } => {
                self.emit_header(tx, requester, plan.local_mac, command, tag, error);
                Some(self.emit_config_arg(plan.sectors_per_frame, ccmd, &mut tx[AOE_ARG_OFFSET..]))
            }
            Action::Mask {
                command: mcmd,
                error: merror,
                applied,
            } => {
                let directives = if merror == MaskError::NoError {
                    None
                } else {
                    let request = mask::Packet::new_checked(rx.get(AOE_ARG_OFFSET..)?).ok()?;
                    Some(
                        request
                            .directives_ref()
                            .ok()?
                            .raw_prefix(usize::from(applied)),
                    )
                };
                self.emit_header(tx, requester, plan.local_mac, command, tag, error);
                Some(self.emit_mask_arg(mcmd, merror, directives, &mut tx[AOE_ARG_OFFSET..]))
            }
            Action::Reserve { command: rcmd, .. } => {
                self.emit_header(tx, requester, plan.local_mac, command, tag, error);
                let list = &self.state.reservations;
                let count = u8::try_from(list.len()).unwrap_or(u8::MAX);
                let mut arg = reserve::Packet::new_unchecked(&mut tx[AOE_ARG_OFFSET..]);
                arg.set_header(rcmd, count);
                for (index, mac) in list.iter().enumerate() {
                    arg.set_mac(index, *mac);
                }
                Some(AOE_ARG_OFFSET + reserve::HEADER_LEN + list.len() * reserve::MAC_LEN)
            }
            Action::AtaStatus(outcome) => {
                self.emit_ata(tx, rx, plan, command, outcome)?;
                if outcome.is_error() {
                    self.stats.ata_errors = self.stats.ata_errors.wrapping_add(1);
                }
                Some(ATA_DATA_OFFSET)
            }
            Action::Identify => {
                self.emit_ata(tx, rx, plan, command, AtaOutcome::DONE)?;
                let data = tx.get_mut(ATA_DATA_OFFSET..ATA_DATA_OFFSET + IDENTIFY_LEN)?;
                let data: &mut [u8; IDENTIFY_LEN] = data.try_into().ok()?;
                identify_data(&self.config.identity, self.sectors, data);
                Some(ATA_DATA_OFFSET + IDENTIFY_LEN)
            }
            Action::AtaIo(disk_io) => {
                let Err(kind) = io else {
                    self.emit_ata(tx, rx, plan, command, AtaOutcome::DONE)?;
                    let sectors = u64::from(disk_io.sectors);
                    let stats = &mut self.stats;
                    return Some(match disk_io.op {
                        IoOp::Read => {
                            stats.sectors_read = stats.sectors_read.wrapping_add(sectors);
                            ATA_DATA_OFFSET + disk_io.byte_len()
                        }
                        IoOp::Write => {
                            stats.sectors_written = stats.sectors_written.wrapping_add(sectors);
                            ATA_DATA_OFFSET
                        }
                        IoOp::Flush => {
                            stats.flushes = stats.flushes.wrapping_add(1);
                            ATA_DATA_OFFSET
                        }
                    });
                };
                let error = if kind == ErrorKind::OutOfRange {
                    ata_error::IDNF
                } else {
                    ata_error::ABRT
                };
                let sector_count = rx.get(AOE_ARG_OFFSET + 2).copied()?;
                self.emit_ata(
                    tx,
                    rx,
                    plan,
                    command,
                    AtaOutcome::failed(error, sector_count),
                )?;
                self.stats.disk_errors = self.stats.disk_errors.wrapping_add(1);
                self.stats.ata_errors = self.stats.ata_errors.wrapping_add(1);
                Some(ATA_DATA_OFFSET)
            }
        }
    }

    /// Writes headers and the ATA registers: AFlags and LBA echoed, reserved octets zero.
    fn emit_ata(
        &self,
        tx: &mut [u8],
        rx: &[u8],
        plan: &Plan,
        command: u8,
        outcome: AtaOutcome,
    ) -> Option<()> {
        let request = ata::Packet::new_checked(rx.get(AOE_ARG_OFFSET..)?).ok()?;
        let tag = plan.tag.to_be_bytes();
        self.emit_header(tx, plan.requester, plan.local_mac, command, tag, None);
        let mut reply = ata::Packet::new_unchecked(&mut tx[AOE_ARG_OFFSET..ATA_DATA_OFFSET]);
        reply.set_ata_flags(request.ata_flags());
        reply.set_err_feature(outcome.error);
        reply.set_sector_count(outcome.sector_count);
        reply.set_cmd_status(outcome.status);
        reply.set_lba_bytes(request.lba_bytes());
        reply.clear_reserved();
        Some(())
    }

    /// Writes a MAC Mask List argument: the list, or the applied directives after an error.
    fn emit_mask_arg(
        &self,
        command: MaskCommand,
        error: MaskError,
        applied_directives: Option<&[u8]>,
        arg: &mut [u8],
    ) -> usize {
        let mut packet = mask::Packet::new_unchecked(&mut *arg);
        let entries = match applied_directives {
            Some(raw) => {
                let count = raw.len() / mask::DIRECTIVE_LEN;
                packet.set_header(command, error, u8::try_from(count).unwrap_or(u8::MAX));
                packet.directives_mut()[..raw.len()].copy_from_slice(raw);
                // Reserved octets of echoed directives are zeroed, as r11 asks of senders.
                for directive in packet.directives_mut()[..raw.len()].as_chunks_mut::<8>().0 {
                    directive[0] = 0;
                }
                count
            }
            None => {
                let list = &self.state.mask;
                packet.set_header(command, error, u8::try_from(list.len()).unwrap_or(u8::MAX));
                for (index, mac) in list.iter().enumerate() {
                    packet.set_directive(
                        index,
                        mask::Directive {
                            command: DirectiveCommand::None,
                            mac: *mac,
                        },
                    );
                }
                list.len()
            }
        };
        AOE_ARG_OFFSET + mask::HEADER_LEN + entries * mask::DIRECTIVE_LEN
    }
}
