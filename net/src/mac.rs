//! MAC addresses as text: the one format every program and file of the project reads and
//! writes.
//!
//! Printed as six lower-case two-digit hex octets joined by `:` (`02:00:5e:10:00:01`).
//! Read from six groups of one or two hex digits joined by `:` or by `-` (one separator
//! throughout: `0:1:2:3:4:5`, `00-11-22-aa-bb-cc`), or from twelve hex digits without
//! separators (`001122aabbcc`), case-insensitively. Anything else is refused with a message
//! that shows the expected form.

use aoe_core::wire::EthernetAddress;
use std::fmt;

/// Why a text is not a MAC address; its `Display` is a sentence for a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MacError(String);

impl fmt::Display for MacError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} is not a MAC address (like 00:11:22:aa:bb:cc)",
            self.0
        )
    }
}

impl std::error::Error for MacError {}

/// Reads a MAC address in any of the forms of the [module docs](self).
///
/// # Errors
/// When `text` is not one of them.
pub fn parse_mac(text: &str) -> Result<EthernetAddress, MacError> {
    let bad = || MacError(text.to_owned());
    let separator = [':', '-'].into_iter().find(|&c| text.contains(c));
    let mut mac = [0u8; 6];
    match separator {
        Some(separator) => {
            let groups: Vec<&str> = text.split(separator).collect();
            if groups.len() != 6 {
                return Err(bad());
            }
            for (octet, group) in mac.iter_mut().zip(groups) {
                if group.is_empty()
                    || group.len() > 2
                    || !group.chars().all(|c| c.is_ascii_hexdigit())
                {
                    return Err(bad());
                }
                *octet = u8::from_str_radix(group, 16).map_err(|_| bad())?;
            }
        }
        None => {
            if text.len() != 12 || !text.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(bad());
            }
            for (index, octet) in mac.iter_mut().enumerate() {
                *octet =
                    u8::from_str_radix(&text[2 * index..2 * index + 2], 16).map_err(|_| bad())?;
            }
        }
    }
    Ok(EthernetAddress(mac))
}

/// Prints a MAC address in the project's form: `format!("{}", MacText(mac))`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MacText(pub EthernetAddress);

impl fmt::Display for MacText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn every_accepted_form_reads_the_same_address() {
        let want = EthernetAddress([0x00, 0x11, 0x22, 0xaa, 0xbb, 0xcc]);
        for text in [
            "00:11:22:aa:bb:cc",
            "00-11-22-AA-BB-CC",
            "001122aabbcc",
            "0:11:22:aa:bb:cc",
        ] {
            assert_eq!(parse_mac(text), Ok(want), "{text}");
        }
        assert_eq!(
            parse_mac("0:1:2:3:4:5"),
            Ok(EthernetAddress([0, 1, 2, 3, 4, 5]))
        );
    }

    #[test]
    fn malformed_text_is_refused_with_the_expected_form() {
        for text in [
            "",
            "00:11:22:aa:bb",
            "00:11:22:aa:bb:cc:dd",
            "00:11-22:aa:bb:cc",
            "001:1:22:aa:bb:cc",
            "00:11:22:aa:bb:gg",
            "001122aabbc",
            "+0:11:22:aa:bb:cc",
            "00::22:aa:bb:cc",
        ] {
            let error = parse_mac(text).expect_err(text);
            assert!(
                error.to_string().contains("like 00:11:22:aa:bb:cc"),
                "{error}"
            );
        }
    }

    #[test]
    fn printing_and_reading_round_trip() {
        let mac = EthernetAddress([0x02, 0, 0x5e, 0x10, 0, 0x01]);
        let text = MacText(mac).to_string();
        assert_eq!(text, "02:00:5e:10:00:01");
        assert_eq!(parse_mac(&text), Ok(mac));
    }
}
