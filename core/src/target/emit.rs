//! Emitting: the reply to a completed plan, written over its request, and the start-up
//! announcement.
//!
//! Guarantees: a reply is built from the [`Plan`] and the export alone. It never parses the
//! request again: the only request octets it keeps are the directives a failed MAC mask edit
//! echoes, which lie at the same offsets in request and reply ([`Plan::echoed_request_range`])
//! and are already in place. Every other octet of the reply (headers, arguments, IDENTIFY
//! data) is written here; READ data is put in place by the disk I/O before. Replies carry R,
//! version 1, this export's shelf.slot and the request's Command and Tag, and per-I/O failures
//! become ATA status, never AoE errors.

use super::Target;
use super::plan::{Action, AtaOutcome, IoOp, Plan};
use crate::disk::{Disk, ErrorKind};
use crate::identify::{IDENTIFY_LEN, identify_data};
use crate::wire::aoe::{self, ErrorCode};
use crate::wire::ata::{self, error as ata_error};
use crate::wire::cfg::{self, ConfigCommand};
use crate::wire::mask::{self, DirectiveCommand, MaskCommand, MaskError};
use crate::wire::reserve;
use crate::wire::{
    AOE_ARG_OFFSET, ATA_DATA_OFFSET, ETHERNET_HEADER_LEN, ETHERTYPE_AOE, EthernetAddress,
    EthernetFrame, EthernetProtocol,
};

/// The fields of the Ethernet and AoE headers that differ between replies.
pub(super) struct Header {
    pub(super) destination: EthernetAddress,
    pub(super) source: EthernetAddress,
    pub(super) command: u8,
    pub(super) tag: u32,
    pub(super) error: Option<ErrorCode>,
}

impl<D: Disk> Target<D> {
    /// Writes the Ethernet and AoE headers (the first 24 octets of `frame`) with this export's
    /// address.
    pub(super) fn emit_header(&self, frame: &mut [u8], fields: &Header) {
        let mut ethernet = EthernetFrame::new_unchecked(&mut frame[..ETHERNET_HEADER_LEN]);
        ethernet.set_dst_addr(fields.destination);
        ethernet.set_src_addr(fields.source);
        ethernet.set_ethertype(EthernetProtocol::from(ETHERTYPE_AOE));
        let mut header =
            aoe::Packet::new_unchecked(&mut frame[ETHERNET_HEADER_LEN..AOE_ARG_OFFSET]);
        header.set_version_flags(aoe::VERSION, true, fields.error.is_some());
        header.set_error(fields.error.unwrap_or(ErrorCode::Unknown(0)));
        header.set_major(self.config.shelf);
        header.set_minor(self.config.slot);
        header.set_command(aoe::Command::from(fields.command));
        header.set_tag(fields.tag);
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

    /// Writes the reply to `plan` over its request in `frame` (at least
    /// [`Plan::reply_len`] octets); returns the octets written before padding.
    pub(super) fn emit_reply(
        &mut self,
        plan: &Plan,
        io: Result<(), ErrorKind>,
        frame: &mut [u8],
    ) -> Option<usize> {
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
        let header = Header {
            destination: plan.requester,
            source: plan.local_mac,
            command: plan.command,
            tag: plan.tag,
            error,
        };

        match plan.action {
            Action::AoeError(_) => {
                self.emit_header(frame, &header);
                Some(AOE_ARG_OFFSET)
            }
            Action::Config { command, .. } => {
                self.emit_header(frame, &header);
                let arg = &mut frame[AOE_ARG_OFFSET..];
                Some(self.emit_config_arg(plan.sectors_per_frame, command, arg))
            }
            Action::Mask {
                command,
                error,
                applied,
            } => {
                self.emit_header(frame, &header);
                let arg = &mut frame[AOE_ARG_OFFSET..];
                Some(self.emit_mask_arg(command, error, applied, arg))
            }
            Action::Reserve { command, .. } => {
                self.emit_header(frame, &header);
                let list = &self.state.reservations;
                let count = u8::try_from(list.len()).unwrap_or(u8::MAX);
                let mut arg = reserve::Packet::new_unchecked(&mut frame[AOE_ARG_OFFSET..]);
                arg.set_header(command, count);
                for (index, mac) in list.iter().enumerate() {
                    arg.set_mac(index, *mac);
                }
                Some(AOE_ARG_OFFSET + reserve::HEADER_LEN + list.len() * reserve::MAC_LEN)
            }
            Action::AtaStatus(outcome) => {
                self.emit_ata(frame, plan, &header, outcome);
                if outcome.is_error() {
                    self.stats.ata_errors = self.stats.ata_errors.wrapping_add(1);
                }
                Some(ATA_DATA_OFFSET)
            }
            Action::Identify => {
                self.emit_ata(frame, plan, &header, AtaOutcome::DONE);
                let data = frame.get_mut(ATA_DATA_OFFSET..ATA_DATA_OFFSET + IDENTIFY_LEN)?;
                let data: &mut [u8; IDENTIFY_LEN] = data.try_into().ok()?;
                identify_data(
                    &self.config.identity,
                    self.sectors,
                    self.config.volatile_write_cache,
                    data,
                );
                Some(ATA_DATA_OFFSET + IDENTIFY_LEN)
            }
            Action::AtaIo(disk_io) => {
                let Err(kind) = io else {
                    self.emit_ata(frame, plan, &header, AtaOutcome::DONE);
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
                let outcome = AtaOutcome::failed(error, plan.ata.sector_count);
                self.emit_ata(frame, plan, &header, outcome);
                self.stats.disk_errors = self.stats.disk_errors.wrapping_add(1);
                self.stats.ata_errors = self.stats.ata_errors.wrapping_add(1);
                Some(ATA_DATA_OFFSET)
            }
        }
    }

    /// Writes headers and the ATA registers: AFlags and LBA echoed from the plan, reserved
    /// octets zero.
    fn emit_ata(&self, frame: &mut [u8], plan: &Plan, header: &Header, outcome: AtaOutcome) {
        self.emit_header(frame, header);
        let mut reply = ata::Packet::new_unchecked(&mut frame[AOE_ARG_OFFSET..ATA_DATA_OFFSET]);
        reply.set_ata_flags(plan.ata.flags);
        reply.set_err_feature(outcome.error);
        reply.set_sector_count(outcome.sector_count);
        reply.set_cmd_status(outcome.status);
        reply.set_lba_bytes(plan.ata.lba);
        reply.clear_reserved();
    }

    /// Writes a MAC Mask List argument: the list, or after an edit error the `applied`
    /// directives, which the request left in place at the offsets the reply echoes them.
    fn emit_mask_arg(
        &self,
        command: MaskCommand,
        error: MaskError,
        applied: u8,
        arg: &mut [u8],
    ) -> usize {
        let mut packet = mask::Packet::new_unchecked(&mut *arg);
        let entries = if error == MaskError::NoError {
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
        } else {
            packet.set_header(command, error, applied);
            let echoed = usize::from(applied) * mask::DIRECTIVE_LEN;
            // Reserved octets of echoed directives are zeroed, as r11 asks of senders.
            for directive in packet.directives_mut()[..echoed].as_chunks_mut::<8>().0 {
                directive[0] = 0;
            }
            usize::from(applied)
        };
        AOE_ARG_OFFSET + mask::HEADER_LEN + entries * mask::DIRECTIVE_LEN
    }
}
