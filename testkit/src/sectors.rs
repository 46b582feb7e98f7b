//! Sector contents that say where they belong, so that misplaced or stale data is detected.

/// A sector-sized buffer where every octet encodes its sector and position, so misplaced data
/// is detected.
pub fn pattern(first_lba: u64, sectors: usize, seed: u8) -> Vec<u8> {
    let mut data = vec![0u8; sectors * 512];
    for (lba, chunk) in (first_lba..).zip(data.chunks_mut(512)) {
        let l = lba.to_le_bytes();
        for (j, b) in (0u8..=255).cycle().zip(chunk.iter_mut()) {
            *b = l[0] ^ l[1].rotate_left(3) ^ l[2].rotate_left(5) ^ j.wrapping_mul(31) ^ seed;
        }
    }
    data
}

/// Contents of sector `lba` after write number `id` (0 is the zeroed disk), for shadow-model
/// tests. Every 8-octet word encodes the LBA and the write, so misplaced or stale data never
/// matches.
pub fn sector_image(lba: u64, id: u32) -> [u8; 512] {
    let mut sector = [0u8; 512];
    if id == 0 {
        return sector;
    }
    let seed = (lba << 32) | u64::from(id);
    for (k, word) in (0u32..).zip(sector.chunks_exact_mut(8)) {
        let value = seed.rotate_left(k.wrapping_mul(7) % 64) ^ u64::from(k) << 56;
        word.copy_from_slice(&value.to_le_bytes());
    }
    sector
}

/// The payload of write number `id` to `count` sectors from `lba`: each sector's
/// [`sector_image`].
pub fn write_images(lba: u64, count: u8, id: u32) -> Vec<u8> {
    let mut data = Vec::with_capacity(usize::from(count) * 512);
    for sector in lba..lba + u64::from(count) {
        data.extend_from_slice(&sector_image(sector, id));
    }
    data
}

/// What a sector's octets are, for failure messages: zeros, a [`sector_image`] (and for which
/// LBA it was meant), or foreign octets.
pub fn describe(sector: &[u8]) -> String {
    if sector.iter().all(|&b| b == 0) {
        return "zeros (write 0)".into();
    }
    let Some(first) = sector.first_chunk::<8>() else {
        return format!("{} octets, not a sector", sector.len());
    };
    let word = u64::from_le_bytes(*first);
    let (lba, id) = (word >> 32, (word & 0xFFFF_FFFF) as u32);
    if sector_image(lba, id) == sector {
        format!("write {id} as meant for LBA {lba}")
    } else {
        format!("foreign octets starting {:02x?}", &sector[..8])
    }
}
