//! A disk wrapper that injects failures, for tests, fuzzing and fault drills.
//!
//! Failures are deterministic: "fuel" (operations that succeed before failures start), a range
//! of bad sectors, and torn writes (a failing write that first lands a prefix of its sectors).
//! Every injected failure respects the [`Disk`] contract: an out-of-range request still fails
//! as out of range, and a torn write leaves each sector wholly old or wholly new.

use super::{Disk, Error, ErrorKind, Sector};

/// When and how a [`FaultyDisk`] fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct FaultPlan {
    /// Operations (read, write or flush) that succeed before failures start; `None` = never.
    pub fail_after: Option<u32>,
    /// After the first injected failure, keep failing every operation (`true`), or fail just
    /// that one and carry on (`false`).
    pub sticky: bool,
    /// A write that fails first writes this many of its leading sectors (a torn write).
    pub torn_sectors: usize,
    /// Sectors `start..end` whose reads and writes always fail (bad blocks).
    pub bad_sectors: Option<(u64, u64)>,
    /// The kind every injected failure reports.
    pub kind: ErrorKind,
}

impl FaultPlan {
    /// A plan that never fails.
    pub const fn none() -> FaultPlan {
        FaultPlan {
            fail_after: None,
            sticky: false,
            torn_sectors: 0,
            bad_sectors: None,
            kind: ErrorKind::Media,
        }
    }
}

impl Default for FaultPlan {
    fn default() -> Self {
        Self::none()
    }
}

/// A [`FaultPlan`] in progress: decides, operation by operation, which ones fail.
///
/// [`FaultyDisk`] consults one for every operation; a test model can run its own copy with the
/// same plan to predict exactly which requests fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct FaultSchedule {
    plan: FaultPlan,
    failing: bool,
}

impl FaultSchedule {
    /// Starts `plan` with its full fuel.
    pub const fn new(plan: FaultPlan) -> FaultSchedule {
        FaultSchedule {
            plan,
            failing: false,
        }
    }

    /// The plan, with the fuel left.
    pub fn plan(&self) -> &FaultPlan {
        &self.plan
    }

    /// Spends one unit of fuel; true if this operation fails. [`FaultyDisk`] calls it once per
    /// flush and once per in-range read or write.
    pub fn next_fails(&mut self) -> bool {
        if self.failing {
            return true;
        }
        match &mut self.plan.fail_after {
            Some(0) => {
                self.failing = self.plan.sticky;
                if !self.plan.sticky {
                    self.plan.fail_after = None;
                }
                true
            }
            Some(fuel) => {
                *fuel -= 1;
                false
            }
            None => false,
        }
    }

    /// True if sectors `lba..lba + count` overlap the plan's bad sectors.
    pub fn hits_bad_sectors(&self, lba: u64, count: u64) -> bool {
        self.plan
            .bad_sectors
            .is_some_and(|(start, end)| lba < end && lba.saturating_add(count) > start)
    }

    /// Whether an in-range transfer of `count` sectors at `lba` fails: it spends fuel first,
    /// then checks the bad sectors.
    pub fn transfer_fails(&mut self, lba: u64, count: u64) -> bool {
        let out_of_fuel = self.next_fails();
        out_of_fuel || self.hits_bad_sectors(lba, count)
    }
}

/// Counters of what a [`FaultyDisk`] was asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct FaultStats {
    /// Read calls.
    pub reads: u64,
    /// Write calls.
    pub writes: u64,
    /// Flush calls.
    pub flushes: u64,
    /// Flush calls that reached the inner disk and succeeded.
    pub flushes_ok: u64,
    /// Sectors read successfully.
    pub sectors_read: u64,
    /// Sectors written successfully (torn prefixes included).
    pub sectors_written: u64,
    /// Failures injected.
    pub injected: u64,
}

/// The error of a [`FaultyDisk`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum FaultError<E> {
    /// A failure the plan injected.
    Injected(ErrorKind),
    /// The inner disk failed by itself.
    Disk(E),
}

impl<E: Error> Error for FaultError<E> {
    fn kind(&self) -> ErrorKind {
        match self {
            FaultError::Injected(kind) => *kind,
            FaultError::Disk(inner) => inner.kind(),
        }
    }
}

fn count_u64(sectors: usize) -> u64 {
    u64::try_from(sectors).unwrap_or(u64::MAX)
}

/// Wraps a disk and fails according to a [`FaultPlan`].
#[derive(Debug)]
pub struct FaultyDisk<D> {
    inner: D,
    schedule: FaultSchedule,
    stats: FaultStats,
}

impl<D: Disk> FaultyDisk<D> {
    /// Wraps `inner` with `plan`.
    pub fn new(inner: D, plan: FaultPlan) -> FaultyDisk<D> {
        FaultyDisk {
            inner,
            schedule: FaultSchedule::new(plan),
            stats: FaultStats::default(),
        }
    }

    /// Replaces the plan and clears a sticky failure.
    pub fn set_plan(&mut self, plan: FaultPlan) {
        self.schedule = FaultSchedule::new(plan);
    }

    /// The counters so far.
    pub fn stats(&self) -> FaultStats {
        self.stats
    }

    /// The inner disk.
    pub fn inner(&self) -> &D {
        &self.inner
    }

    /// The inner disk, mutable.
    pub fn inner_mut(&mut self) -> &mut D {
        &mut self.inner
    }

    /// Returns the inner disk.
    pub fn into_inner(self) -> D {
        self.inner
    }

    /// Out-of-range requests are the inner disk's to refuse, never an injected media error.
    fn in_range(&self, lba: u64, count: usize) -> bool {
        super::range_fits(lba, count, self.inner.sector_count())
    }

    fn inject(&mut self) -> FaultError<D::Error> {
        self.stats.injected += 1;
        FaultError::Injected(self.schedule.plan().kind)
    }
}

impl<D: Disk> Disk for FaultyDisk<D> {
    type Error = FaultError<D::Error>;

    fn sector_count(&self) -> u64 {
        self.inner.sector_count()
    }

    fn read(&mut self, lba: u64, buf: &mut [Sector]) -> Result<(), Self::Error> {
        self.stats.reads += 1;
        if self.in_range(lba, buf.len()) && self.schedule.transfer_fails(lba, count_u64(buf.len()))
        {
            return Err(self.inject());
        }
        self.inner.read(lba, buf).map_err(FaultError::Disk)?;
        self.stats.sectors_read += count_u64(buf.len());
        Ok(())
    }

    fn write(&mut self, lba: u64, buf: &[Sector]) -> Result<(), Self::Error> {
        self.stats.writes += 1;
        if self.in_range(lba, buf.len()) && self.schedule.transfer_fails(lba, count_u64(buf.len()))
        {
            let torn = self.schedule.plan().torn_sectors.min(buf.len());
            if torn > 0 && self.inner.write(lba, &buf[..torn]).is_ok() {
                self.stats.sectors_written += count_u64(torn);
            }
            return Err(self.inject());
        }
        self.inner.write(lba, buf).map_err(FaultError::Disk)?;
        self.stats.sectors_written += count_u64(buf.len());
        Ok(())
    }

    fn flush(&mut self) -> Result<(), Self::Error> {
        self.stats.flushes += 1;
        if self.schedule.next_fails() {
            return Err(self.inject());
        }
        self.inner.flush().map_err(FaultError::Disk)?;
        self.stats.flushes_ok += 1;
        Ok(())
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::disk::{MemDisk, SECTOR_SIZE};

    fn mem() -> MemDisk<[u8; 4 * SECTOR_SIZE]> {
        MemDisk::new([0u8; 4 * SECTOR_SIZE])
    }

    #[test]
    fn fuel_then_one_failure() {
        let plan = FaultPlan {
            fail_after: Some(1),
            ..FaultPlan::none()
        };
        let mut disk = FaultyDisk::new(mem(), plan);
        let mut buf = [[0u8; SECTOR_SIZE]; 1];
        assert!(disk.read(0, &mut buf).is_ok());
        assert_eq!(
            disk.read(0, &mut buf),
            Err(FaultError::Injected(ErrorKind::Media))
        );
        assert!(disk.read(0, &mut buf).is_ok());
        assert_eq!(disk.stats().injected, 1);
    }

    #[test]
    fn sticky_failure_and_torn_write() {
        let plan = FaultPlan {
            fail_after: Some(0),
            sticky: true,
            torn_sectors: 1,
            ..FaultPlan::none()
        };
        let mut disk = FaultyDisk::new(mem(), plan);
        let data = [[5u8; SECTOR_SIZE]; 2];
        assert!(disk.write(1, &data).is_err());
        assert!(disk.flush().is_err());
        let bytes = disk.inner().as_bytes();
        assert!(bytes[SECTOR_SIZE..2 * SECTOR_SIZE].iter().all(|&b| b == 5));
        assert!(bytes[2 * SECTOR_SIZE..].iter().all(|&b| b == 0));
        assert_eq!(disk.stats().flushes_ok, 0);
    }

    #[test]
    fn bad_sectors_and_range_errors() {
        let plan = FaultPlan {
            bad_sectors: Some((2, 3)),
            ..FaultPlan::none()
        };
        let mut disk = FaultyDisk::new(mem(), plan);
        let mut buf = [[0u8; SECTOR_SIZE]; 2];
        assert!(disk.read(0, &mut buf).is_ok());
        assert!(disk.read(1, &mut buf).is_err());
        assert_eq!(
            disk.read(3, &mut buf).unwrap_err().kind(),
            ErrorKind::OutOfRange
        );
    }
}
