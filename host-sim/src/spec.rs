//! What one export is, however it was described (command line or config file), and the checks
//! that refuse exports no initiator could use.

use crate::disk::DiskOptions;
use crate::net::{LinkSpec, Mac};
use aoe_core::target::MASK_CAPACITY;
use std::fmt;
use std::path::PathBuf;

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
    /// `-m`: MACs preloaded into the mask list (only they are answered).
    pub mac_mask: Vec<Mac>,
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
        if self.links.is_empty() {
            return Err(SpecError(format!(
                "export {} has no interface or TAP device",
                self.name()
            )));
        }
        Ok(())
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

/// Parses a MAC as vblade's `-m` takes it: 12 hex digits, with or without `:` (or `-`)
/// between octets.
///
/// # Errors
/// When it is not exactly six octets of hex.
pub fn parse_mac(text: &str) -> Result<Mac, SpecError> {
    let bad = || {
        SpecError(format!(
            "{text:?} is not a MAC address (like 00:11:22:aa:bb:cc)"
        ))
    };
    let digits: Vec<u8> = if text.contains([':', '-']) {
        let parts: Vec<&str> = text.split([':', '-']).collect();
        if parts.len() != 6 || parts.iter().any(|p| p.is_empty() || p.len() > 2) {
            return Err(bad());
        }
        let mut out = Vec::with_capacity(12);
        for part in parts {
            if part.len() == 1 {
                out.push(b'0');
            }
            out.extend_from_slice(part.as_bytes());
        }
        out
    } else {
        text.as_bytes().to_vec()
    };
    if digits.len() != 12 {
        return Err(bad());
    }
    let mut mac = [0u8; 6];
    for (octet, pair) in mac.iter_mut().zip(digits.chunks(2)) {
        let pair = std::str::from_utf8(pair).map_err(|_| bad())?;
        *octet = u8::from_str_radix(pair, 16).map_err(|_| bad())?;
    }
    if mac[0] & 1 != 0 || mac == [0; 6] {
        return Err(SpecError(format!(
            "{text:?} is a multicast or all-zero MAC; initiators have unicast addresses"
        )));
    }
    Ok(mac)
}

/// Formats a MAC as `00:11:22:aa:bb:cc`.
pub fn format_mac(mac: &Mac) -> String {
    let parts: Vec<String> = mac.iter().map(|octet| format!("{octet:02x}")).collect();
    parts.join(":")
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
            assert_eq!(parse_mac(text), Ok(expected), "{text}");
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
            assert!(parse_mac(bad).is_err(), "{bad}");
        }
        assert!(
            parse_mac("ff:ff:ff:ff:ff:ff")
                .unwrap_err()
                .0
                .contains("multicast")
        );
        assert!(parse_mac("000000000000").is_err());
        assert_eq!(format_mac(&expected), "00:11:22:aa:bb:cc");
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
        };
        assert!(spec.validate().unwrap_err().0.contains("below 2"));
        spec.buffer_count = 2;
        assert!(spec.validate().is_ok());
        spec.mac_mask = vec![[2, 0, 0, 0, 0, 1]; MASK_CAPACITY + 1];
        assert!(spec.validate().unwrap_err().0.contains("at most"));
        spec.mac_mask.clear();
        spec.links.clear();
        assert!(spec.validate().unwrap_err().0.contains("no interface"));
        assert_eq!(spec.name(), "e1.2");
    }
}
