//! IDENTIFY DEVICE data: the 512 octets an initiator reads to learn capacity and features.
//!
//! The words follow what the Linux `aoe` driver parses (`ataid_complete`) and what vblade
//! sends, plus honest feature bits: LBA48 (so Linux uses 48-bit commands and the full capacity),
//! FLUSH CACHE and FLUSH CACHE EXT (both really flush), and SMART with RETURN STATUS (so
//! `aoeping -S` asks). Word 255 carries the ATA integrity signature and checksum.
//!
//! The volatile write cache (word 82 bit 5 supported, word 85 bit 5 enabled) is reported
//! exactly when the platform acknowledges writes before they are on stable storage
//! ([`Config::volatile_write_cache`](crate::Config::volatile_write_cache)): then FLUSH CACHE is
//! what makes them stable. Without it, every acknowledged write is already stable, and FLUSH
//! CACHE (still supported, as ATA-6 requires) only orders.

/// Octets of IDENTIFY DEVICE data.
pub const IDENTIFY_LEN: usize = 512;

/// LBA28 capacity ceiling reported in words 60–61.
const LBA28_MAX: u64 = 0x0FFF_FFFF;

/// The strings an export reports in IDENTIFY DEVICE, stored as space-padded ASCII.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Identity {
    model: [u8; 40],
    serial: [u8; 20],
    firmware: [u8; 8],
}

/// Copies printable ASCII from `text` into `field`, replacing anything else by `?`, cutting
/// what does not fit, and padding with spaces as ATA strings are.
fn fill_ascii(field: &mut [u8], text: &str) {
    field.fill(b' ');
    for (slot, ch) in field.iter_mut().zip(text.chars()) {
        *slot = if ch.is_ascii_graphic() || ch == ' ' {
            u8::try_from(ch).unwrap_or(b'?')
        } else {
            b'?'
        };
    }
}

/// Writes `value` in decimal at the start of `out`; returns the digits written (at most 5).
/// Hand-rolled because `core::fmt` costs about 4 KiB of flash on a microcontroller.
fn write_decimal(value: u16, out: &mut [u8]) -> usize {
    let mut digits = [0u8; 5];
    let mut rest = value;
    let mut count = 0;
    loop {
        digits[count] = b'0' + u8::try_from(rest % 10).unwrap_or(0);
        count += 1;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    let written = count.min(out.len());
    for (slot, digit) in out.iter_mut().zip(digits[..count].iter().rev()) {
        *slot = *digit;
    }
    written
}

impl Identity {
    /// The model string vblade-rs reports unless told otherwise.
    pub const DEFAULT_MODEL: &'static str = "vblade-rs EtherDrive";
    /// The firmware revision string: the crate version.
    pub const DEFAULT_FIRMWARE: &'static str = env!("CARGO_PKG_VERSION");

    /// An identity from the three strings; each is cut to its ATA field (40, 20 and 8
    /// characters) and non-printable or non-ASCII characters become `?`.
    pub fn new(model: &str, serial: &str, firmware: &str) -> Identity {
        let mut identity = Identity {
            model: [b' '; 40],
            serial: [b' '; 20],
            firmware: [b' '; 8],
        };
        fill_ascii(&mut identity.model, model);
        fill_ascii(&mut identity.serial, serial);
        fill_ascii(&mut identity.firmware, firmware);
        identity
    }

    /// The default identity of export `shelf.slot`: serial `"shelf.slot"`.
    pub fn default_for(shelf: u16, slot: u8) -> Identity {
        let mut serial = [0u8; 11]; // "65535.255"
        let mut len = write_decimal(shelf, &mut serial);
        serial[len] = b'.';
        len += 1;
        len += write_decimal(u16::from(slot), &mut serial[len..]);
        let serial = core::str::from_utf8(&serial[..len]).unwrap_or("");
        Identity::new(Self::DEFAULT_MODEL, serial, Self::DEFAULT_FIRMWARE)
    }

    /// Model number (words 27–46), space-padded.
    pub fn model(&self) -> &[u8; 40] {
        &self.model
    }

    /// Serial number (words 10–19), space-padded.
    pub fn serial(&self) -> &[u8; 20] {
        &self.serial
    }

    /// Firmware revision (words 23–26), space-padded.
    pub fn firmware(&self) -> &[u8; 8] {
        &self.firmware
    }
}

fn set_word(data: &mut [u8; IDENTIFY_LEN], word: usize, value: u16) {
    data[word * 2..word * 2 + 2].copy_from_slice(&value.to_le_bytes());
}

/// Writes an ATA string: the first character of each pair goes in the high octet of the
/// little-endian word.
fn set_string(data: &mut [u8; IDENTIFY_LEN], first_word: usize, text: &[u8]) {
    let start = first_word * 2;
    for (i, pair) in text.as_chunks::<2>().0.iter().enumerate() {
        data[start + 2 * i] = pair[1];
        data[start + 2 * i + 1] = pair[0];
    }
}

/// Low 16 bits of a value, for packing a wider number into IDENTIFY words.
fn low16(value: u64) -> u16 {
    u16::try_from(value & 0xFFFF).unwrap_or(0)
}

/// IDENTIFY word 82 and 85 bit: volatile write cache supported (82) and enabled (85).
pub const WRITE_CACHE_BIT: u16 = 1 << 5;

/// Fills `data` with IDENTIFY DEVICE data for a disk of `sectors` sectors (clamped to 48 bits)
/// that has a volatile write cache if `write_cache` (see the [module docs](self)).
pub fn identify_data(
    identity: &Identity,
    sectors: u64,
    write_cache: bool,
    data: &mut [u8; IDENTIFY_LEN],
) {
    let sectors = sectors.min(crate::wire::ata::LBA48_LIMIT - 1);
    data.fill(0);

    // Legacy CHS geometry (16 heads, 63 sectors/track), only read without LBA support.
    // 32-bit division: a 64-bit one is a library call on Cortex-M3.
    const CHS_MAX_SECTORS: u64 = 16383 * 16 * 63;
    let cylinders = u64::from(u32::try_from(sectors.min(CHS_MAX_SECTORS)).unwrap_or(0) / (16 * 63));
    set_word(data, 0, 0x0040); // fixed device
    set_word(data, 1, low16(cylinders));
    set_word(data, 3, 16);
    set_word(data, 6, 63);
    set_string(data, 10, &identity.serial);
    set_string(data, 23, &identity.firmware);
    set_string(data, 27, &identity.model);
    set_word(data, 47, 0x8000); // READ/WRITE MULTIPLE not supported
    set_word(data, 49, 0x0200); // LBA supported
    set_word(data, 50, 0x4000);
    set_word(data, 53, 0x0001); // words 54–58 valid
    set_word(data, 54, low16(cylinders));
    set_word(data, 55, 16);
    set_word(data, 56, 63);
    let chs_capacity = cylinders * 16 * 63;
    set_word(data, 57, low16(chs_capacity));
    set_word(data, 58, low16(chs_capacity >> 16));
    let lba28 = sectors.min(LBA28_MAX);
    set_word(data, 60, low16(lba28));
    set_word(data, 61, low16(lba28 >> 16));
    set_word(data, 80, 0x007E); // ATA-1 through ATA/ATAPI-6
    let cache = if write_cache { WRITE_CACHE_BIT } else { 0 };
    set_word(data, 82, 0x0001 | cache); // SMART (and the write cache) supported
    set_word(data, 83, 0x7400); // valid, FLUSH CACHE EXT, FLUSH CACHE, 48-bit addressing
    set_word(data, 84, 0x4000);
    set_word(data, 85, 0x0001 | cache); // SMART (and the write cache) enabled
    set_word(data, 86, 0x3400); // FLUSH CACHE EXT, FLUSH CACHE, 48-bit addressing enabled
    set_word(data, 87, 0x4000);
    set_word(data, 93, 0x400B);
    set_word(data, 100, low16(sectors));
    set_word(data, 101, low16(sectors >> 16));
    set_word(data, 102, low16(sectors >> 32));
    set_word(data, 103, 0);

    // Word 255: signature 0xA5, then the checksum that makes all 512 octets sum to 0 mod 256.
    data[510] = 0xA5;
    let sum = data[..511].iter().fold(0u8, |acc, &b| acc.wrapping_add(b));
    data[511] = sum.wrapping_neg();
}

#[cfg(test)]
mod test {
    use super::*;

    fn word(data: &[u8; IDENTIFY_LEN], w: usize) -> u16 {
        u16::from_le_bytes([data[2 * w], data[2 * w + 1]])
    }

    #[test]
    fn capacity_words_and_lba48() {
        let mut data = [0xFFu8; IDENTIFY_LEN];
        let sectors = 0x1_2345_6789u64;
        identify_data(&Identity::default_for(1, 2), sectors, false, &mut data);
        assert_eq!(word(&data, 60), 0xFFFF);
        assert_eq!(word(&data, 61), 0x0FFF);
        assert_eq!(word(&data, 100), 0x6789);
        assert_eq!(word(&data, 101), 0x2345);
        assert_eq!(word(&data, 102), 0x0001);
        assert_eq!(word(&data, 103), 0);
        assert_ne!((word(&data, 83) | word(&data, 86)) & (1 << 10), 0);
        assert_ne!(word(&data, 49) & (1 << 9), 0);
        assert_eq!(data.iter().fold(0u8, |a, &b| a.wrapping_add(b)), 0);
        assert_eq!(data[510], 0xA5);
    }

    #[test]
    fn the_write_cache_words_follow_the_setting_and_flush_stays_supported() {
        for write_cache in [false, true] {
            let mut data = [0u8; IDENTIFY_LEN];
            identify_data(&Identity::default_for(1, 2), 1000, write_cache, &mut data);
            let expected = if write_cache { WRITE_CACHE_BIT } else { 0 };
            assert_eq!(word(&data, 82) & WRITE_CACHE_BIT, expected, "82: supported");
            assert_eq!(word(&data, 85) & WRITE_CACHE_BIT, expected, "85: enabled");
            // FLUSH CACHE (bit 12) and FLUSH CACHE EXT (bit 13), supported and enabled, and
            // SMART, whatever the cache.
            assert_eq!(word(&data, 83) & 0x3000, 0x3000);
            assert_eq!(word(&data, 86) & 0x3000, 0x3000);
            assert_eq!(word(&data, 82) & 1, 1);
            assert_eq!(word(&data, 85) & 1, 1);
            assert_eq!(data.iter().fold(0u8, |a, &b| a.wrapping_add(b)), 0);
        }
    }

    #[test]
    fn strings_are_byte_swapped() {
        let mut data = [0u8; IDENTIFY_LEN];
        identify_data(&Identity::new("AB", "7.3", "V1"), 100, false, &mut data);
        assert_eq!(&data[54..58], b"BA  ");
        assert_eq!(&data[20..24], b".7 3");
        assert_eq!(&data[46..48], b"1V");
    }

    #[test]
    fn identity_sanitises_and_truncates() {
        let id = Identity::new("é\u{7}x", "012345678901234567890123", "12345678901");
        assert_eq!(&id.model()[..3], b"??x");
        assert_eq!(id.serial(), b"01234567890123456789");
        assert_eq!(id.firmware(), b"12345678");
        assert_eq!(
            &Identity::default_for(65534, 254).serial()[..10],
            b"65534.254 "
        );
    }
}
