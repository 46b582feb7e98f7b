//! The two checksums of the SD protocol: CRC7 for commands, CRC16-CCITT (XMODEM) for data.
//!
//! Both are bitwise or nibble-table implementations: a few dozen octets of flash instead of
//! a 256-entry table, fast enough for one 512-octet block per SPI transfer.

/// CRC7 (polynomial x^7 + x^3 + 1) of `bytes`, in the low 7 bits.
pub fn crc7(bytes: &[u8]) -> u8 {
    let mut crc = 0u8;
    for &byte in bytes {
        let mut byte = byte;
        for _ in 0..8 {
            crc <<= 1;
            if (byte ^ crc) & 0x80 != 0 {
                crc ^= 0x09;
            }
            byte <<= 1;
        }
    }
    crc & 0x7F
}

/// CRC16-CCITT (polynomial 0x1021, initial value 0), as SD data blocks carry it.
pub fn crc16(bytes: &[u8]) -> u16 {
    // crc16 of each 4-bit value shifted into the top nibble.
    const NIBBLE: [u16; 16] = [
        0x0000, 0x1021, 0x2042, 0x3063, 0x4084, 0x50A5, 0x60C6, 0x70E7, 0x8108, 0x9129, 0xA14A,
        0xB16B, 0xC18C, 0xD1AD, 0xE1CE, 0xF1EF,
    ];
    let mut crc = 0u16;
    for &byte in bytes {
        crc = (crc << 4) ^ NIBBLE[usize::from((crc >> 12) ^ u16::from(byte >> 4))];
        crc = (crc << 4) ^ NIBBLE[usize::from((crc >> 12) ^ u16::from(byte & 0x0F))];
    }
    crc
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn test_crc7_known_commands() {
        // CMD0 arg 0 is sent as 0x95 and CMD8 arg 0x1AA as 0x87: (crc7 << 1) | 1.
        assert_eq!((crc7(&[0x40, 0, 0, 0, 0]) << 1) | 1, 0x95);
        assert_eq!((crc7(&[0x48, 0, 0, 0x01, 0xAA]) << 1) | 1, 0x87);
    }

    #[test]
    fn test_crc16_known_values() {
        // The SD specification's example: 512 octets of 0xFF give 0x7FA1.
        assert_eq!(crc16(&[0xFF; 512]), 0x7FA1);
        // XMODEM check value of "123456789".
        assert_eq!(crc16(b"123456789"), 0x31C3);
    }
}
