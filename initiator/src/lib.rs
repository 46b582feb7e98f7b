//! A userspace AoE initiator: what the `aoe` command runs, and what the integration tests use.
//!
//! It talks to targets through a [`Transport`]: whole frames sent and received in batches,
//! each received frame with the time it arrived, and the clock those times come from. The
//! protocol logic is pure code over that trait, so it is unit-tested in-process against an
//! `aoe_core::Target` with dropped, duplicated, delayed and reordered frames and a virtual clock
//! ([`sim::SimTransport`]), without root and without a network. On a real network the
//! transport is [`port::NetPort`], over the project's one link seam (`aoe_net::Link`): the
//! transport adds only the clock and the batching the engine wants, not another way to reach
//! an interface.
//!
//! * [`frame`]: request builders into caller-owned buffers, and reply checks.
//! * [`control`]: one-shot exchanges: discovery, Query Config, IDENTIFY, mask, reserve, flush.
//! * [`engine`]: the I/O engine: a window of outstanding ATA frames bounded by the target's
//!   buffer count, tag allocation, retransmission with a new tag and an adaptive timeout.
//! * [`work`]: workloads the engine runs: sector ranges to or from memory, and the benchmark.
//! * [`writelog`]: the power-cut workload (random writes with unique content, one log line
//!   per acknowledged write) and its checker.
//! * [`port`]: the [`Transport`] over a real interface (an `aoe_net::Link`).
//! * [`cli`]: the `aoe` command.
//!
//! Guarantees: a reply is accepted only if it comes from the target's MAC with its shelf.slot,
//! the command and the tag of a request still outstanding; anything else (stale tags after a
//! retransmission, duplicates, other targets' traffic, malformed frames) is counted and
//! ignored. A read completes only with the full data, a write only with an ATA status that
//! reports success. Errors name what failed: no answer within the time limit, an AoE error
//! code, or the ATA status and error registers with the LBA.

pub mod cli;
pub mod control;
pub mod engine;
pub mod frame;
pub mod port;
pub mod sim;
pub mod work;
pub mod writelog;

use aoe_core::wire::EthernetAddress;
use aoe_core::wire::aoe::{Command, ErrorCode};
use std::fmt;
use std::time::Duration;

/// Frames in and out with arrival times and a clock: the initiator's view of the network (see
/// the [crate docs](crate)).
pub trait Transport {
    /// The port's own MAC: the source of every request, and where replies come to.
    fn mac(&self) -> EthernetAddress;

    /// The port's MTU (Ethernet payload octets).
    fn mtu(&self) -> usize;

    /// Monotonic time since the link was made.
    fn now(&self) -> Duration;

    /// Sends every frame of `frames` (Ethernet header included, no FCS), in order.
    ///
    /// # Errors
    /// When the port fails; a frame the network drops later is not an error.
    fn send(&mut self, frames: &[&[u8]]) -> std::io::Result<()>;

    /// Waits up to `timeout` for frames, and hands each one received, with the time it was
    /// received, to `on_frame`. Returns the number of frames handed over (0 on timeout).
    ///
    /// # Errors
    /// When the port fails.
    fn recv(
        &mut self,
        timeout: Duration,
        on_frame: &mut dyn FnMut(&[u8], Duration),
    ) -> std::io::Result<usize>;
}

/// Why an initiator operation failed.
#[derive(Debug)]
pub enum Error {
    /// The network port failed.
    Io(std::io::Error),
    /// Nothing answered within the time limit.
    NoAnswer {
        /// What was asked.
        what: String,
        /// How long we tried.
        waited: Duration,
    },
    /// The target answered with the AoE error flag.
    Aoe {
        /// The command refused.
        command: Command,
        /// The error code.
        code: ErrorCode,
    },
    /// The target reported an ATA error.
    Ata {
        /// The ATA command.
        command: u8,
        /// The first sector of the request.
        lba: u64,
        /// Status register.
        status: u8,
        /// Error register.
        error: u8,
    },
    /// The target's reply did not make sense.
    BadReply(String),
    /// Read data differed from what was expected.
    Mismatch {
        /// The first sector that differed.
        lba: u64,
    },
    /// A request the target or the port cannot carry, or a bad argument.
    Invalid(String),
    /// An error and what the person can do about it.
    Hint {
        /// What failed.
        error: Box<Error>,
        /// What to do next.
        hint: &'static str,
    },
}

impl Error {
    /// A human-readable name for an AoE error code.
    pub fn aoe_code_name(code: ErrorCode) -> &'static str {
        match code {
            ErrorCode::UnrecognizedCommand => "unrecognized command code",
            ErrorCode::BadArgument => "bad argument parameter",
            ErrorCode::DeviceUnavailable => "device unavailable",
            ErrorCode::ConfigStringPresent => "config string present",
            ErrorCode::UnsupportedVersion => "unsupported version",
            ErrorCode::TargetReserved => "target is reserved by another initiator",
            ErrorCode::Unknown(_) => "unknown error code",
        }
    }
}

/// Names the bits set in an ATA error register.
fn ata_error_bits(error: u8) -> String {
    let names = [
        (0x80, "ICRC"),
        (0x40, "UNC"),
        (0x10, "IDNF"),
        (0x04, "ABRT"),
        (0x02, "EOM"),
        (0x01, "AMNF"),
    ];
    let set: Vec<&str> = names
        .iter()
        .filter(|(bit, _)| error & bit != 0)
        .map(|(_, name)| *name)
        .collect();
    if set.is_empty() {
        "none".to_string()
    } else {
        set.join("|")
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io(err) => write!(f, "network port: {err}"),
            Error::NoAnswer { what, waited } => write!(
                f,
                "no answer to {what} within {:.1} s (is the target up, on this interface, and \
                 not masked against our MAC?)",
                waited.as_secs_f64()
            ),
            Error::Aoe { command, code } => write!(
                f,
                "target refused {command:?}: AoE error {} ({})",
                u8::from(*code),
                Error::aoe_code_name(*code)
            ),
            Error::Ata {
                command,
                lba,
                status,
                error,
            } => {
                let hint = if *error & 0x10 != 0 {
                    " (sector beyond the end of the export)"
                } else if *error & 0x04 != 0 && *command == frame::ATA_WRITE_EXT {
                    " (the export may be read-only)"
                } else {
                    ""
                };
                write!(
                    f,
                    "ATA command {command:#04x} at LBA {lba} failed: status {status:#04x}, \
                     error {error:#04x} ({}){hint}",
                    ata_error_bits(*error)
                )
            }
            Error::BadReply(what) => write!(f, "malformed reply from the target: {what}"),
            Error::Mismatch { lba } => write!(f, "data mismatch at LBA {lba}"),
            Error::Invalid(what) => f.write_str(what),
            Error::Hint { error, hint } => write!(f, "{error}; {hint}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(err) => Some(err),
            Error::Hint { error, .. } => Some(error),
            _ => None,
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(err: std::io::Error) -> Error {
        Error::Io(err)
    }
}

/// Sectors per frame for a port of `mtu` and a target advertising `target_limit` in its Query
/// Config reply: `min((MTU − 36) / 512, limit)`, where a limit of 0 means 2 (AoE r11 §3.2).
/// `None` when the MTU cannot carry one sector.
pub fn sectors_per_frame(mtu: usize, target_limit: u8) -> Option<u8> {
    let by_mtu = mtu.saturating_sub(aoe_core::wire::ATA_DATA_OFFSET) / aoe_core::SECTOR_SIZE;
    let limit = if target_limit == 0 { 2 } else { target_limit };
    let spf = u8::try_from(by_mtu.min(usize::from(limit))).unwrap_or(limit);
    (spf > 0).then_some(spf)
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn sectors_per_frame_follows_mtu_and_target() {
        assert_eq!(sectors_per_frame(1500, 2), Some(2));
        assert_eq!(sectors_per_frame(9000, 17), Some(17));
        assert_eq!(
            sectors_per_frame(9000, 2),
            Some(2),
            "the target's limit wins"
        );
        assert_eq!(sectors_per_frame(1500, 17), Some(2), "the MTU wins");
        assert_eq!(sectors_per_frame(9000, 0), Some(2), "0 means 2");
        assert_eq!(sectors_per_frame(65536, 255), Some(127));
        assert_eq!(sectors_per_frame(500, 2), None);
    }

    #[test]
    fn errors_read_well() {
        let err = Error::Ata {
            command: frame::ATA_WRITE_EXT,
            lba: 9,
            status: 0x41,
            error: 0x04,
        };
        let text = err.to_string();
        assert!(
            text.contains("ABRT") && text.contains("read-only"),
            "{text}"
        );
        let err = Error::Aoe {
            command: Command::IssueAta,
            code: ErrorCode::TargetReserved,
        };
        assert!(err.to_string().contains("AoE error 6"));
    }
}

#[cfg(test)]
mod tests;
