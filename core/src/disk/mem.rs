//! A disk held in memory: a borrowed slice, a static array or (on the host) a `Vec`.

use super::{Disk, ErrorKind, SECTOR_SIZE, Sector, range_fits};

/// A disk whose sectors live in any byte buffer. A tail shorter than a sector is not exposed.
/// It has no volatile cache, so [`Disk::flush`] succeeds at once.
#[derive(Debug, Clone)]
pub struct MemDisk<T> {
    bytes: T,
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> MemDisk<T> {
    /// Wraps a buffer.
    pub fn new(bytes: T) -> MemDisk<T> {
        MemDisk { bytes }
    }

    /// The whole buffer.
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.as_ref()
    }

    /// The whole buffer, mutable (to seed contents in tests).
    pub fn as_bytes_mut(&mut self) -> &mut [u8] {
        self.bytes.as_mut()
    }

    /// Returns the buffer.
    pub fn into_inner(self) -> T {
        self.bytes
    }

    fn sectors(&self) -> &[Sector] {
        self.bytes.as_ref().as_chunks::<SECTOR_SIZE>().0
    }

    fn sectors_mut(&mut self) -> &mut [Sector] {
        self.bytes.as_mut().as_chunks_mut::<SECTOR_SIZE>().0
    }

    fn span(&self, lba: u64, count: usize) -> Result<core::ops::Range<usize>, ErrorKind> {
        let total = self.sectors().len();
        let sectors = u64::try_from(total).map_err(|_| ErrorKind::Other)?;
        if !range_fits(lba, count, sectors) {
            return Err(ErrorKind::OutOfRange);
        }
        // `lba < sectors <= usize::MAX` after the range check.
        let start = usize::try_from(lba).map_err(|_| ErrorKind::OutOfRange)?;
        Ok(start..start + count)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Disk for MemDisk<T> {
    type Error = ErrorKind;

    fn sector_count(&self) -> u64 {
        u64::try_from(self.sectors().len()).unwrap_or(u64::MAX)
    }

    fn read(&mut self, lba: u64, buf: &mut [Sector]) -> Result<(), ErrorKind> {
        let span = self.span(lba, buf.len())?;
        buf.copy_from_slice(&self.sectors()[span]);
        Ok(())
    }

    fn write(&mut self, lba: u64, buf: &[Sector]) -> Result<(), ErrorKind> {
        let span = self.span(lba, buf.len())?;
        self.sectors_mut()[span].copy_from_slice(buf);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), ErrorKind> {
        Ok(())
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn reads_back_what_was_written() {
        let mut disk = MemDisk::new([0u8; 4 * SECTOR_SIZE + 100]);
        assert_eq!(disk.sector_count(), 4);
        let data = [[7u8; SECTOR_SIZE], [8u8; SECTOR_SIZE]];
        disk.write(2, &data).unwrap();
        let mut out = [[0u8; SECTOR_SIZE]; 2];
        disk.read(2, &mut out).unwrap();
        assert_eq!(out, data);
        assert_eq!(disk.read(3, &mut out), Err(ErrorKind::OutOfRange));
        assert_eq!(disk.write(u64::MAX, &data), Err(ErrorKind::OutOfRange));
        assert!(disk.as_bytes()[..2 * SECTOR_SIZE].iter().all(|&b| b == 0));
    }
}
