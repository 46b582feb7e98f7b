//! Wire round trip: for the AoE header and each argument (ATA, Query Config, MAC Mask List,
//! Reserve/Release), arbitrary octets → `Packet::new_checked` → `Repr::parse` → `emit` into a
//! `buffer_len()` buffer → parse again; the two reprs must be equal, and emitting the second
//! must give the same octets (reserved fields zero, nothing left over).
//!
//! The same input, read as raw field values, also builds an AoE and an ATA repr to emit and
//! parse back (the construct direction).
#![no_main]

use aoe_core::wire::{aoe, ata, cfg, mask, reserve};
use libfuzzer_sys::fuzz_target;

/// Parses `data` with one header type, emits, parses again, and compares.
macro_rules! roundtrip {
    ($module:ident, $data:expr) => {{
        if let Ok(packet) = $module::Packet::new_checked($data) {
            if let Ok(first) = $module::Repr::parse(&packet) {
                let len = first.buffer_len();
                let mut emitted = vec![0xA5u8; len];
                first.emit(&mut $module::Packet::new_unchecked(&mut emitted[..]));
                let reparsed = $module::Packet::new_checked(&emitted[..])
                    .expect(concat!(stringify!($module), ": emitted buffer too short"));
                let second = $module::Repr::parse(&reparsed).expect(concat!(
                    stringify!($module),
                    ": emitted header does not parse"
                ));
                assert_eq!(first, second, concat!(stringify!($module), ": round trip"));
                assert_eq!(second.buffer_len(), len);
                let mut again = vec![0x5Au8; len];
                second.emit(&mut $module::Packet::new_unchecked(&mut again[..]));
                assert_eq!(
                    emitted, again,
                    concat!(stringify!($module), ": emit wrote octets not in the repr")
                );
                Some(emitted)
            } else {
                None
            }
        } else {
            None
        }
    }};
}

fuzz_target!(|data: &[u8]| {
    if let Some(header) = roundtrip!(aoe, data) {
        // Reserved flag bits are zero; the Error field is zero unless E is set.
        assert_eq!(header[0] & 0x03, 0, "aoe: reserved flags emitted");
        if header[0] & 0x04 == 0 {
            assert_eq!(header[1], 0, "aoe: Error without E");
        }
    }
    if let Some(registers) = roundtrip!(ata, data) {
        assert_eq!(registers[10..12], [0, 0], "ata: reserved octets emitted");
    }
    if let Some(arg) = roundtrip!(cfg, data) {
        let len = usize::from(u16::from_be_bytes([arg[6], arg[7]]));
        assert_eq!(arg.len(), cfg::HEADER_LEN + len, "cfg: string length");
        assert!(len <= cfg::MAX_CONFIG_STRING_LEN);
    }
    if let Some(arg) = roundtrip!(mask, data) {
        assert_eq!(arg[0], 0, "mask: reserved octet emitted");
        let directives = &arg[mask::HEADER_LEN..];
        assert_eq!(directives.len(), usize::from(arg[3]) * mask::DIRECTIVE_LEN);
        for directive in directives.chunks_exact(mask::DIRECTIVE_LEN) {
            assert_eq!(directive[0], 0, "mask: directive reserved octet emitted");
        }
    }
    if let Some(arg) = roundtrip!(reserve, data) {
        assert_eq!(
            arg.len(),
            reserve::HEADER_LEN + usize::from(arg[1]) * reserve::MAC_LEN
        );
    }

    // Construct direction: raw field values → repr → emit → parse.
    if data.len() >= 16 {
        let error = (data[1] & 0x01 != 0).then(|| aoe::ErrorCode::from(data[2]));
        let repr = aoe::Repr {
            version: data[0] & 0x0F,
            response: data[1] & 0x02 != 0,
            error,
            major: u16::from_be_bytes([data[3], data[4]]),
            minor: data[5],
            command: aoe::Command::from(data[6]),
            tag: u32::from_be_bytes([data[7], data[8], data[9], data[10]]),
        };
        let mut buffer = vec![0u8; repr.buffer_len()];
        repr.emit(&mut aoe::Packet::new_unchecked(&mut buffer[..]));
        let parsed = aoe::Repr::parse(&aoe::Packet::new_checked(&buffer[..]).unwrap()).unwrap();
        assert_eq!(parsed, repr, "aoe: construct");

        let lba = u64::from_le_bytes(data[8..16].try_into().unwrap());
        let repr = ata::Repr {
            flags: ata::AtaFlags(data[0]),
            err_feature: data[1],
            sector_count: data[2],
            cmd_status: data[3],
            lba,
        };
        let mut buffer = vec![0u8; repr.buffer_len()];
        repr.emit(&mut ata::Packet::new_unchecked(&mut buffer[..]));
        let parsed = ata::Repr::parse(&ata::Packet::new_checked(&buffer[..]).unwrap()).unwrap();
        assert_eq!(
            parsed,
            ata::Repr {
                lba: lba & ((1 << 48) - 1),
                ..repr
            },
            "ata: construct"
        );
    }
});
