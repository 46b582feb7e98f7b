//! The SD card image: made with the test identity in its reserved region, read and written
//! at offsets, and checked for the state record after a power cut (phase 6).

use crate::blade::members;
use crate::{BLADE_SHELF, BLADE_SLOT, Result, SECTOR};
use aoe_firmware::persist::{COPY_LEN, Identity, RESERVED_SECTORS, encode_parts};
use aoe_testkit::frame::TARGET_MAC;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

/// Writes a blank image of `bytes` with the test identity in the reserved region.
pub(crate) fn make_image(path: &Path, bytes: u64) -> Result<()> {
    let file = File::create(path).map_err(|e| format!("create {path:?}: {e}"))?;
    file.set_len(bytes)
        .map_err(|e| format!("size {path:?}: {e}"))?;
    let identity = Identity {
        mac: Some(TARGET_MAC.0),
        address: Some((BLADE_SHELF, BLADE_SLOT)),
    };
    let mut copy = [0u8; COPY_LEN];
    encode_parts(&identity, b"", &[], &[], 1, &mut copy);
    write_at(path, bytes - RESERVED_SECTORS * SECTOR, &copy)
}

pub(crate) fn write_at(path: &Path, offset: u64, data: &[u8]) -> Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| format!("open {path:?}: {e}"))?;
    file.seek(SeekFrom::Start(offset))
        .and_then(|_| file.write_all(data))
        .map_err(|e| format!("write {path:?}: {e}"))
}

pub(crate) fn read_at(path: &Path, offset: u64, len: usize) -> Result<Vec<u8>> {
    let mut file = File::open(path).map_err(|e| format!("open {path:?}: {e}"))?;
    let mut data = vec![0u8; len];
    file.seek(SeekFrom::Start(offset))
        .and_then(|_| file.read_exact(&mut data))
        .map_err(|e| format!("read {path:?}: {e}"))?;
    Ok(data)
}

/// The newest valid record in the image's reserved region holds the identity and the state.
pub(crate) fn check_record_on_card(image: &Path, capacity: u64, config: &[u8]) -> Result<()> {
    let mut newest: Option<(u32, aoe_firmware::persist::Record)> = None;
    for copy in 0..2u64 {
        let offset = (capacity + copy * 4) * SECTOR;
        let bytes: [u8; COPY_LEN] = read_at(image, offset, COPY_LEN)?
            .try_into()
            .map_err(|_| "short copy")?;
        if let Some((record, sequence)) = aoe_firmware::persist::Record::decode(&bytes)
            && newest.as_ref().is_none_or(|(s, _)| sequence > *s)
        {
            newest = Some((sequence, record));
        }
    }
    let (sequence, record) = newest.ok_or("no valid record in the reserved region")?;
    ensure!(
        record.config_string.as_slice() == config,
        "record {sequence} on the card has config string {:?}",
        String::from_utf8_lossy(&record.config_string)
    );
    let mut mask = record.mask.to_vec();
    mask.sort_by_key(|mac| mac.0);
    ensure!(
        mask == members(),
        "record {sequence} on the card has mask {mask:?}"
    );
    ensure!(
        record.identity.mac == Some(TARGET_MAC.0)
            && record.identity.address == Some((BLADE_SHELF, BLADE_SLOT)),
        "record {sequence} lost the identity: {:?}",
        record.identity
    );
    println!(
        "ok  reserved region: record {sequence} on the card holds the identity, config string and mask"
    );
    Ok(())
}
