//! What one export is, however it was described (command line or config file), and the checks
//! that refuse exports no initiator could use.

use aoe_core::target::{MASK_CAPACITY, Pinned, RESERVE_CAPACITY};
use aoe_core::wire::cfg::MAX_CONFIG_STRING_LEN;
use aoe_net::{EthernetAddress, LinkSpec};
use aoe_storage::file::DiskOptions;
use aoe_storage::nbd::NbdAddress;
use aoe_storage::rbd::RbdSpec;
use std::fmt;
use std::path::{Path, PathBuf};

/// Buffer Count advertised unless `-b` says otherwise. The Linux initiator keeps up to
/// min(Buffer Count, 64) frames in flight per target; vblade's 16 leaves throughput unused, and
/// our receive batches and socket buffers are sized for 64.
pub const DEFAULT_BUFFER_COUNT: u16 = 64;

/// One export: shelf.slot, the links it answers on, its file and vblade's flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportSpec {
    /// Shelf (AoE major).
    pub shelf: u16,
    /// Slot (AoE minor).
    pub slot: u8,
    /// Interfaces (raw sockets) and TAP devices it answers on.
    pub links: Vec<LinkSpec>,
    /// The backing file or block device.
    pub file: PathBuf,
    /// `-b`: Buffer Count advertised.
    pub buffer_count: u16,
    /// `-d -s -r -o -l`.
    pub disk: DiskOptions,
    /// `-m`: MACs preloaded into the mask list (only they are answered); a preset of the
    /// target state like those in [`state`](Self::state).
    pub mac_mask: Vec<EthernetAddress>,
    /// Presets and pins of the target state (config file only).
    pub state: StatePresets,
    /// Failover between gateways (`ha = "rbd-lock"`, `--ha rbd-lock`).
    pub ha: Ha,
}

/// What the configuration says about an export's target state (`config_string`, `reserve`
/// and `pin` in the config file; the mask's preset is [`ExportSpec::mac_mask`]).
///
/// A preset is the state an export starts with when nothing is saved for it, and also when
/// the preset changed since the state was saved (the administrator's newer word wins); a pinned
/// part always starts from its preset and initiators cannot change it (`aoe_core::Pinned`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StatePresets {
    /// The config string's preset.
    pub config_string: Vec<u8>,
    /// The reserve list's preset.
    pub reserve: Vec<EthernetAddress>,
    /// The parts initiators may not change.
    pub pinned: Pinned,
}

/// How an export shares its storage with other gateways.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Ha {
    /// It does not: this process serves it alone.
    #[default]
    None,
    /// Several gateways run for one RBD image; only the holder of the image's exclusive lock
    /// answers, the others stay silent until they take it over (see `crate::ha`).
    RbdLock,
}

impl Ha {
    /// Parses `rbd-lock` (or `none`).
    ///
    /// # Errors
    /// For anything else.
    pub fn parse(text: &str) -> Result<Ha, SpecError> {
        match text {
            "rbd-lock" => Ok(Ha::RbdLock),
            "none" => Ok(Ha::None),
            other => Err(SpecError(format!(
                "ha {other:?} is not one of rbd-lock, none"
            ))),
        }
    }
}

/// What an export's `file` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backing {
    /// A file or block device.
    File(PathBuf),
    /// A Ceph RBD image (`rbd:pool/image...`).
    Rbd(RbdSpec),
    /// An NBD export (`nbd://...`, `nbd+unix://...`).
    Nbd(NbdAddress),
}

impl Backing {
    /// True if `file` names network storage (RBD or NBD), which is never relative to a
    /// config file's directory.
    pub fn is_remote(file: &Path) -> bool {
        file.to_str()
            .is_some_and(|text| RbdSpec::is_rbd(text) || NbdAddress::is_nbd(text))
    }

    /// Classifies and parses `file`.
    ///
    /// # Errors
    /// When an `rbd:` or NBD URI is malformed.
    pub fn of(file: &Path) -> Result<Backing, SpecError> {
        let Some(text) = file.to_str().filter(|_| Backing::is_remote(file)) else {
            return Ok(Backing::File(file.to_owned()));
        };
        if RbdSpec::is_rbd(text) {
            RbdSpec::parse(text).map(Backing::Rbd).map_err(SpecError)
        } else {
            NbdAddress::parse(text).map(Backing::Nbd).map_err(SpecError)
        }
    }
}

impl ExportSpec {
    /// `eS.L`, as the Linux initiator names the device.
    pub fn name(&self) -> String {
        format!("e{}.{}", self.shelf, self.slot)
    }

    /// Checks what does not need the file or the network: addresses, buffer count, mask size,
    /// at least one link.
    ///
    /// # Errors
    /// A message for a person.
    pub fn validate(&self) -> Result<(), SpecError> {
        check_shelf(self.shelf)?;
        check_slot(self.slot)?;
        if self.buffer_count < 2 {
            return Err(SpecError(format!(
                "buffer count {} is below 2; the Linux initiator cannot use such a target",
                self.buffer_count
            )));
        }
        if self.mac_mask.len() > MASK_CAPACITY {
            return Err(SpecError(format!(
                "{} MACs given; the mask list holds at most {MASK_CAPACITY}",
                self.mac_mask.len()
            )));
        }
        if self.state.config_string.len() > MAX_CONFIG_STRING_LEN {
            return Err(SpecError(format!(
                "a config string of {} bytes; AoE allows at most {MAX_CONFIG_STRING_LEN}",
                self.state.config_string.len()
            )));
        }
        if self.state.reserve.len() > RESERVE_CAPACITY {
            return Err(SpecError(format!(
                "{} MACs to reserve; the reserve list holds at most {RESERVE_CAPACITY}",
                self.state.reserve.len()
            )));
        }
        if self.links.is_empty() {
            return Err(SpecError(format!(
                "export {} has no interface or TAP device",
                self.name()
            )));
        }
        let backing = Backing::of(&self.file)?;
        let disk = self.disk;
        if !matches!(backing, Backing::File(_))
            && (disk.direct || disk.sync || disk.offset != 0 || disk.length.is_some())
        {
            return Err(SpecError(format!(
                "{}: -d, -s, -o and -l apply to files; {} is network storage",
                self.name(),
                self.file.display()
            )));
        }
        if self.ha == Ha::RbdLock {
            match backing {
                Backing::Rbd(rbd) if rbd.snapshot.is_none() && !disk.read_only => {}
                _ => {
                    return Err(SpecError(format!(
                        "{}: ha = \"rbd-lock\" needs a writable rbd:POOL/IMAGE export",
                        self.name()
                    )));
                }
            }
        }
        Ok(())
    }
}

/// How the process serves its links, for every export (command line `--link`, `--workers`,
/// `--busy-poll`; config file keys `link`, `workers`, `busy_poll_us`). Each is `None` when not
/// given; the command line wins over the file. Read at start; a reload keeps the running ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NetOptions {
    /// The link back end on network interfaces (default: automatic).
    pub link: Option<aoe_net::LinkKind>,
    /// Workers (threads, each with its own socket or ring) per interface (default 1).
    pub workers: Option<u16>,
    /// Microseconds a worker spins on its link before it sleeps (default 0: never).
    pub busy_poll_us: Option<u32>,
}

/// The most workers one link may have.
pub const MAX_WORKERS: u16 = 64;

impl NetOptions {
    /// `self`, with what it leaves open taken from `fallback`.
    #[must_use]
    pub fn or(self, fallback: NetOptions) -> NetOptions {
        NetOptions {
            link: self.link.or(fallback.link),
            workers: self.workers.or(fallback.workers),
            busy_poll_us: self.busy_poll_us.or(fallback.busy_poll_us),
        }
    }

    /// Checks the worker count.
    ///
    /// # Errors
    /// For 0 workers or more than [`MAX_WORKERS`].
    pub fn validate(&self) -> Result<(), SpecError> {
        match self.workers {
            Some(workers) if workers == 0 || workers > MAX_WORKERS => Err(SpecError(format!(
                "{workers} workers per link: use 1 to {MAX_WORKERS}"
            ))),
            _ => Ok(()),
        }
    }
}

/// A refused export or argument, worded for a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError(pub String);

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SpecError {}

/// Refuses the shelves the Linux initiator rejects: 65535 (broadcast) and 4095.
///
/// # Errors
/// For those two.
pub fn check_shelf(shelf: u16) -> Result<(), SpecError> {
    match shelf {
        0xFFFF => Err(SpecError(
            "shelf 65535 is the broadcast shelf; use 0 to 65534 except 4095".into(),
        )),
        0x0FFF => Err(SpecError(
            "shelf 4095 is refused by the Linux initiator; use 0 to 65534 except 4095".into(),
        )),
        _ => Ok(()),
    }
}

/// Refuses slot 255 (broadcast).
///
/// # Errors
/// For 255.
pub fn check_slot(slot: u8) -> Result<(), SpecError> {
    if slot == 0xFF {
        return Err(SpecError(
            "slot 255 is the broadcast slot; use 0 to 254".into(),
        ));
    }
    Ok(())
}

/// Reads an initiator's MAC as vblade's `-m` takes it (in the project's one MAC text format,
/// `aoe_net::mac`), refusing multicast and all-zero addresses: initiators have unicast ones.
///
/// # Errors
/// When it is not a MAC address, or not a unicast one.
pub fn parse_initiator_mac(text: &str) -> Result<EthernetAddress, SpecError> {
    let mac = aoe_net::parse_mac(text).map_err(|error| SpecError(error.to_string()))?;
    if mac.0[0] & 1 != 0 || mac.0 == [0; 6] {
        return Err(SpecError(format!(
            "{text:?} is a multicast or all-zero MAC; initiators have unicast addresses"
        )));
    }
    Ok(mac)
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn macs_parse_with_and_without_separators() {
        let expected = [0x00, 0x11, 0x22, 0xaa, 0xbb, 0xcc];
        for text in [
            "001122aabbcc",
            "00:11:22:AA:bb:cc",
            "00-11-22-aa-bb-cc",
            "0:11:22:aa:bb:cc",
        ] {
            assert_eq!(
                parse_initiator_mac(text),
                Ok(EthernetAddress(expected)),
                "{text}"
            );
        }
        for bad in [
            "",
            "0011",
            "00:11:22:aa:bb",
            "00:11:22:aa:bb:cc:dd",
            "zz1122aabbcc",
            "00::11:22:aa:bb",
            "001122aabbccdd",
        ] {
            assert!(parse_initiator_mac(bad).is_err(), "{bad}");
        }
        assert!(
            parse_initiator_mac("ff:ff:ff:ff:ff:ff")
                .unwrap_err()
                .0
                .contains("multicast")
        );
        assert!(parse_initiator_mac("000000000000").is_err());
        assert_eq!(
            aoe_net::MacText(EthernetAddress(expected)).to_string(),
            "00:11:22:aa:bb:cc"
        );
    }

    #[test]
    fn reserved_addresses_and_counts_are_refused() {
        assert!(check_shelf(65535).is_err());
        assert!(check_shelf(4095).is_err());
        assert!(check_shelf(65534).is_ok());
        assert!(check_slot(255).is_err());
        assert!(check_slot(254).is_ok());
        let mut spec = ExportSpec {
            shelf: 1,
            slot: 2,
            links: vec![LinkSpec::packet("eth1")],
            file: "disk".into(),
            buffer_count: 1,
            disk: DiskOptions::default(),
            mac_mask: vec![],
            state: StatePresets::default(),
            ha: Ha::None,
        };
        assert!(spec.validate().unwrap_err().0.contains("below 2"));
        spec.buffer_count = 2;
        assert!(spec.validate().is_ok());
        spec.mac_mask = vec![EthernetAddress([2, 0, 0, 0, 0, 1]); MASK_CAPACITY + 1];
        assert!(spec.validate().unwrap_err().0.contains("at most"));
        spec.mac_mask.clear();
        spec.state.config_string = vec![b'x'; 1025];
        assert!(spec.validate().unwrap_err().0.contains("at most 1024"));
        spec.state.config_string.clear();
        spec.state.reserve = vec![EthernetAddress([2, 0, 0, 0, 0, 1]); RESERVE_CAPACITY + 1];
        assert!(
            spec.validate()
                .unwrap_err()
                .0
                .contains("reserve list holds at most")
        );
        spec.state.reserve.clear();
        spec.links.clear();
        assert!(spec.validate().unwrap_err().0.contains("no interface"));
        assert_eq!(spec.name(), "e1.2");
    }

    #[test]
    fn network_storage_is_recognised_and_checked() {
        let mut spec = ExportSpec {
            shelf: 1,
            slot: 2,
            links: vec![LinkSpec::packet("eth1")],
            file: "rbd:rbd/disk:id=aoe".into(),
            buffer_count: 16,
            disk: DiskOptions::default(),
            mac_mask: vec![],
            state: StatePresets::default(),
            ha: Ha::RbdLock,
        };
        assert!(spec.validate().is_ok());
        assert!(matches!(Backing::of(&spec.file), Ok(Backing::Rbd(r)) if r.image == "disk"));
        spec.file = "rbd:rbd/disk@snap".into();
        assert!(spec.validate().unwrap_err().0.contains("writable rbd:"));
        spec.ha = Ha::None;
        assert!(spec.validate().is_ok());
        spec.disk.offset = 8;
        assert!(spec.validate().unwrap_err().0.contains("apply to files"));
        spec.disk.offset = 0;
        spec.file = "rbd:nopool".into();
        assert!(spec.validate().unwrap_err().0.contains("POOL/IMAGE"));
        spec.file = "nbd+unix:///e?socket=/run/s".into();
        assert!(matches!(Backing::of(&spec.file), Ok(Backing::Nbd(_))));
        assert!(spec.validate().is_ok());
        spec.ha = Ha::RbdLock;
        assert!(spec.validate().is_err());
        spec.ha = Ha::None;
        spec.file = "nbd://".into();
        assert!(spec.validate().is_err());
        spec.file = "/srv/rbd:x".into();
        assert!(!Backing::is_remote(&spec.file));
        assert_eq!(
            Backing::of(&spec.file),
            Ok(Backing::File("/srv/rbd:x".into()))
        );
        assert_eq!(Ha::parse("rbd-lock"), Ok(Ha::RbdLock));
        assert!(Ha::parse("paxos").is_err());
    }
}
