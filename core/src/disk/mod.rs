//! Block storage as the AoE target sees it: 512-octet sectors addressed by a `u64` LBA.
//!
//! Contract for implementors:
//!
//! * [`Disk::sector_count`] is fixed for the lifetime of the value.
//! * `read`/`write` transfer whole sectors. A call that names sectors beyond the end must fail
//!   with an error whose kind is [`ErrorKind::OutOfRange`] and touch nothing; the target checks
//!   ranges first, so this is defence in depth, not the primary check.
//! * `write` returns `Ok` only once the disk has *accepted* the data: a later `read` returns it,
//!   and a later successful [`Disk::flush`] makes it durable. `flush` must not return `Ok` until
//!   everything written before it is on stable storage. The target acknowledges a WRITE only
//!   after `write` returned `Ok`, and a FLUSH CACHE only after `flush` returned `Ok`.
//! * A failed `write` may have written any subset of its sectors, each either wholly old or
//!   wholly new (sector atomicity, as with real disks).
//!
//! Adapters: [`ReadOnly`] refuses writes, [`Window`] exposes an offset/length slice of another
//! disk (vblade's `-o`/`-l`). [`MemDisk`] keeps sectors in memory; [`FaultyDisk`] injects
//! failures for tests.

mod fault;
mod mem;

pub use fault::{FaultError, FaultPlan, FaultSchedule, FaultStats, FaultyDisk};
pub use mem::MemDisk;

use core::fmt;

/// Octets per sector. AoE counts ATA transfers in 512-octet sectors.
pub const SECTOR_SIZE: usize = 512;

/// One sector. Frame payloads convert with `<[u8]>::as_chunks::<SECTOR_SIZE>()`, without a copy.
pub type Sector = [u8; SECTOR_SIZE];

/// What went wrong, in the terms the ATA layer can report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum ErrorKind {
    /// The sectors are beyond the end of the disk. Reported as ATA IDNF.
    OutOfRange,
    /// The medium failed to read or write. Reported as ATA ABRT; the initiator may retry.
    Media,
    /// The device is not ready (card removed, not initialised). Reported as ATA ABRT.
    NotReady,
    /// The disk refuses writes. Reported as ATA ABRT.
    WriteProtected,
    /// Anything else. Reported as ATA ABRT.
    Other,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::OutOfRange => "sector out of range",
            ErrorKind::Media => "media error",
            ErrorKind::NotReady => "device not ready",
            ErrorKind::WriteProtected => "write protected",
            ErrorKind::Other => "disk error",
        })
    }
}

impl core::error::Error for ErrorKind {}

/// A disk error that maps onto an [`ErrorKind`].
pub trait Error: fmt::Debug {
    /// The kind, which decides the ATA error bits of the reply.
    fn kind(&self) -> ErrorKind;
}

impl Error for ErrorKind {
    fn kind(&self) -> ErrorKind {
        *self
    }
}

impl Error for core::convert::Infallible {
    fn kind(&self) -> ErrorKind {
        match *self {}
    }
}

/// A block device of 512-octet sectors.
///
/// Methods take `&mut self` so that borrows are checked at compile time; a HAL with shared
/// hardware wraps it in its own mutex.
pub trait Disk {
    /// The error type of this disk.
    type Error: Error;

    /// Addressable sectors; fixed for the lifetime of the value.
    fn sector_count(&self) -> u64;

    /// Reads `buf.len()` sectors starting at `lba` into `buf`.
    ///
    /// # Errors
    /// [`ErrorKind::OutOfRange`] if `lba + buf.len()` passes the end; any kind on failure.
    fn read(&mut self, lba: u64, buf: &mut [Sector]) -> Result<(), Self::Error>;

    /// Writes `buf.len()` sectors starting at `lba`. `Ok` means the disk accepted the data.
    ///
    /// # Errors
    /// [`ErrorKind::OutOfRange`] if `lba + buf.len()` passes the end; any kind on failure.
    fn write(&mut self, lba: u64, buf: &[Sector]) -> Result<(), Self::Error>;

    /// Makes every accepted write durable (ATA FLUSH CACHE). A disk without a volatile cache
    /// returns `Ok(())` at once.
    ///
    /// # Errors
    /// Any kind when the data could not be made durable.
    fn flush(&mut self) -> Result<(), Self::Error>;
}

impl<D: Disk + ?Sized> Disk for &mut D {
    type Error = D::Error;

    fn sector_count(&self) -> u64 {
        (**self).sector_count()
    }

    fn read(&mut self, lba: u64, buf: &mut [Sector]) -> Result<(), Self::Error> {
        (**self).read(lba, buf)
    }

    fn write(&mut self, lba: u64, buf: &[Sector]) -> Result<(), Self::Error> {
        (**self).write(lba, buf)
    }

    fn flush(&mut self) -> Result<(), Self::Error> {
        (**self).flush()
    }
}

/// True if `count` sectors from `lba` lie within a disk of `sectors` sectors.
pub fn range_fits(lba: u64, count: usize, sectors: u64) -> bool {
    u64::try_from(count)
        .ok()
        .and_then(|count| lba.checked_add(count))
        .is_some_and(|end| end <= sectors)
}

/// The error of an adapter: its own refusal, or the inner disk's error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum AdapterError<E> {
    /// The adapter refused: out of its window, or a write to a read-only disk.
    Refused(ErrorKind),
    /// The inner disk failed.
    Disk(E),
}

impl<E: Error> Error for AdapterError<E> {
    fn kind(&self) -> ErrorKind {
        match self {
            AdapterError::Refused(kind) => *kind,
            AdapterError::Disk(inner) => inner.kind(),
        }
    }
}

/// A disk that refuses writes (vblade `-r`). Reads and flushes pass through.
#[derive(Debug)]
pub struct ReadOnly<D>(pub D);

impl<D: Disk> Disk for ReadOnly<D> {
    type Error = AdapterError<D::Error>;

    fn sector_count(&self) -> u64 {
        self.0.sector_count()
    }

    fn read(&mut self, lba: u64, buf: &mut [Sector]) -> Result<(), Self::Error> {
        self.0.read(lba, buf).map_err(AdapterError::Disk)
    }

    fn write(&mut self, _lba: u64, _buf: &[Sector]) -> Result<(), Self::Error> {
        Err(AdapterError::Refused(ErrorKind::WriteProtected))
    }

    fn flush(&mut self) -> Result<(), Self::Error> {
        self.0.flush().map_err(AdapterError::Disk)
    }
}

/// Why a [`Window`] could not be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum WindowError {
    /// The offset is at or past the end of the disk: choose a smaller offset.
    OffsetBeyondEnd {
        /// Requested offset, in sectors.
        offset: u64,
        /// Sectors of the underlying disk.
        sectors: u64,
    },
    /// Offset plus length passes the end of the disk: choose a smaller length.
    LengthBeyondEnd {
        /// Requested length, in sectors.
        length: u64,
        /// Sectors available after the offset.
        available: u64,
    },
    /// A window of zero sectors cannot be exported.
    Empty,
}

impl fmt::Display for WindowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WindowError::OffsetBeyondEnd { offset, sectors } => write!(
                f,
                "offset of {offset} sectors is not inside the disk of {sectors} sectors"
            ),
            WindowError::LengthBeyondEnd { length, available } => write!(
                f,
                "length of {length} sectors is more than the {available} sectors after the offset"
            ),
            WindowError::Empty => f.write_str("the window holds no sectors"),
        }
    }
}

impl core::error::Error for WindowError {}

/// An offset/length slice of another disk (vblade `-o` and `-l`, in sectors).
#[derive(Debug)]
pub struct Window<D> {
    inner: D,
    offset: u64,
    length: u64,
}

impl<D: Disk> Window<D> {
    /// Exposes `length` sectors (all after `offset` when `None`) starting at `offset`.
    ///
    /// # Errors
    /// When the window does not lie inside the disk, or is empty.
    pub fn new(inner: D, offset: u64, length: Option<u64>) -> Result<Window<D>, WindowError> {
        let sectors = inner.sector_count();
        if offset >= sectors {
            return Err(WindowError::OffsetBeyondEnd { offset, sectors });
        }
        let available = sectors - offset;
        let length = length.unwrap_or(available);
        if length > available {
            return Err(WindowError::LengthBeyondEnd { length, available });
        }
        if length == 0 {
            return Err(WindowError::Empty);
        }
        Ok(Window {
            inner,
            offset,
            length,
        })
    }

    /// Returns the inner disk.
    pub fn into_inner(self) -> D {
        self.inner
    }

    /// The inner disk.
    pub fn inner(&self) -> &D {
        &self.inner
    }

    /// The inner disk, mutable: for what a platform keeps outside the window on the same
    /// medium (the blade firmware's state record behind the exported sectors). Reads and
    /// writes through it use the inner disk's LBAs and are not bounded by the window.
    pub fn inner_mut(&mut self) -> &mut D {
        &mut self.inner
    }

    /// First sector of the window on the inner disk.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    fn translate(&self, lba: u64, count: usize) -> Result<u64, AdapterError<D::Error>> {
        if range_fits(lba, count, self.length) {
            Ok(self.offset + lba)
        } else {
            Err(AdapterError::Refused(ErrorKind::OutOfRange))
        }
    }
}

impl<D: Disk> Disk for Window<D> {
    type Error = AdapterError<D::Error>;

    fn sector_count(&self) -> u64 {
        self.length
    }

    fn read(&mut self, lba: u64, buf: &mut [Sector]) -> Result<(), Self::Error> {
        let lba = self.translate(lba, buf.len())?;
        self.inner.read(lba, buf).map_err(AdapterError::Disk)
    }

    fn write(&mut self, lba: u64, buf: &[Sector]) -> Result<(), Self::Error> {
        let lba = self.translate(lba, buf.len())?;
        self.inner.write(lba, buf).map_err(AdapterError::Disk)
    }

    fn flush(&mut self) -> Result<(), Self::Error> {
        self.inner.flush().map_err(AdapterError::Disk)
    }
}

#[cfg(test)]
mod test {
    use super::*;

    fn disk_of(sectors: usize) -> MemDisk<[u8; 8 * SECTOR_SIZE]> {
        assert!(sectors <= 8);
        let mut bytes = [0u8; 8 * SECTOR_SIZE];
        for (i, sector) in bytes
            .as_chunks_mut::<SECTOR_SIZE>()
            .0
            .iter_mut()
            .enumerate()
        {
            sector.fill(u8::try_from(i).unwrap());
        }
        MemDisk::new(bytes)
    }

    #[test]
    fn window_translates_and_bounds() {
        let mut window = Window::new(disk_of(8), 2, Some(3)).unwrap();
        assert_eq!(window.sector_count(), 3);
        let mut buf = [[0u8; SECTOR_SIZE]; 2];
        window.read(1, &mut buf).unwrap();
        assert_eq!(buf[0][0], 3);
        assert_eq!(buf[1][0], 4);
        assert_eq!(
            window.read(2, &mut buf).unwrap_err().kind(),
            ErrorKind::OutOfRange
        );
        assert_eq!(
            window.write(u64::MAX, &buf).unwrap_err().kind(),
            ErrorKind::OutOfRange
        );
        window.write(0, &buf[..1]).unwrap();
        assert_eq!(window.offset(), 2);
        // The inner disk is reachable beyond the window, in its own LBAs.
        window.inner_mut().write(7, &buf[1..]).unwrap();
        assert_eq!(window.inner().as_bytes()[7 * SECTOR_SIZE], 4);
        let inner = window.into_inner();
        assert_eq!(inner.as_bytes()[2 * SECTOR_SIZE], 3);
    }

    #[test]
    fn window_rejects_bad_geometry() {
        assert_eq!(
            Window::new(disk_of(8), 8, None).err(),
            Some(WindowError::OffsetBeyondEnd {
                offset: 8,
                sectors: 8
            })
        );
        assert_eq!(
            Window::new(disk_of(8), 2, Some(7)).err(),
            Some(WindowError::LengthBeyondEnd {
                length: 7,
                available: 6
            })
        );
        assert_eq!(
            Window::new(disk_of(8), 2, Some(0)).err(),
            Some(WindowError::Empty)
        );
    }

    #[test]
    fn read_only_refuses_writes() {
        let mut disk = ReadOnly(disk_of(8));
        let buf = [[9u8; SECTOR_SIZE]; 1];
        assert_eq!(
            disk.write(0, &buf).unwrap_err().kind(),
            ErrorKind::WriteProtected
        );
        let mut out = [[0u8; SECTOR_SIZE]; 1];
        disk.read(0, &mut out).unwrap();
        assert_eq!(out[0][0], 0);
        disk.flush().unwrap();
    }

    #[test]
    fn range_fits_never_overflows() {
        assert!(range_fits(0, 8, 8));
        assert!(!range_fits(1, 8, 8));
        assert!(!range_fits(u64::MAX, 1, u64::MAX));
        assert!(range_fits(u64::MAX - 1, 1, u64::MAX));
    }
}
