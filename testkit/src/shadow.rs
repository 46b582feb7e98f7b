//! The shadow disk: a reference model of what each sector of a disk under test may hold, and
//! of the replies its transfers must get.
//!
//! Each sector keeps the set of writes whose contents it may hold (write 0 is the zeroed disk;
//! the data of write `id` is [`sector_image`]`(lba, id)`): one write normally, several after a
//! failed write, because a torn write lands any subset of its sectors, each wholly old or
//! wholly new. A successful read must return one of them and narrows the sector to it.
//!
//! The model also predicts the target's checks and the disk's faults exactly as `aoe-core`
//! defines them: a sector count of 0 or above the sectors per frame is ABRT, a range beyond
//! the disk IDNF, a write payload shorter than its count ABRT, all without a disk call; a
//! transfer or flush that reaches the disk runs the same [`FaultSchedule`] as the
//! `FaultyDisk` under test, and an injected failure is ABRT (IDNF for
//! [`ErrorKind::OutOfRange`]). It counts the disk calls it expects ([`DiskCalls`]).
//!
//! Used by the proptest model (`tests/tests/model.rs`) and the `target_ops` fuzzer.

use crate::sectors::{describe, sector_image};
use aoe_core::ErrorKind;
use aoe_core::disk::{FaultPlan, FaultSchedule};

/// ATA Error register: command aborted.
pub const ABRT: u8 = 0x04;
/// ATA Error register: ID not found (out of range).
pub const IDNF: u8 = 0x10;

/// What a transfer or flush must answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Status DRDY, no error, Sector Count 0; a read returns the data.
    Done,
    /// Status DRDY|ERR with this Error register, Sector Count as the request sent it.
    Failed(u8),
}

/// Disk calls the target should have made so far.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DiskCalls {
    /// `Disk::read` calls.
    pub reads: u64,
    /// `Disk::write` calls.
    pub writes: u64,
    /// `Disk::flush` calls.
    pub flushes: u64,
    /// Calls that failed by an injected fault.
    pub injected: u64,
}

/// The reference model of one exported disk.
#[derive(Debug, Clone)]
pub struct ShadowDisk {
    sectors_per_frame: u8,
    /// Per sector, the writes whose contents it may hold.
    candidates: Vec<Vec<u32>>,
    next_write: u32,
    fault: FaultSchedule,
    calls: DiskCalls,
}

impl ShadowDisk {
    /// A zeroed disk of `sectors` sectors, exported with `sectors_per_frame`, without faults.
    pub fn new(sectors: u64, sectors_per_frame: u8) -> ShadowDisk {
        let sectors = usize::try_from(sectors).expect("a disk that fits in memory");
        ShadowDisk {
            sectors_per_frame,
            candidates: vec![vec![0]; sectors],
            next_write: 1,
            fault: FaultSchedule::new(FaultPlan::none()),
            calls: DiskCalls::default(),
        }
    }

    /// Sectors of the disk.
    pub fn sectors(&self) -> u64 {
        self.candidates.len() as u64
    }

    /// Sectors per frame of the export.
    pub fn sectors_per_frame(&self) -> u8 {
        self.sectors_per_frame
    }

    /// The disk calls expected so far.
    pub fn calls(&self) -> DiskCalls {
        self.calls
    }

    /// Gives the disk a new fault plan, as `FaultyDisk::set_plan` does.
    pub fn set_fault_plan(&mut self, plan: FaultPlan) {
        self.fault = FaultSchedule::new(plan);
    }

    /// A number for the next write, whose data is [`write_images`](crate::sectors::write_images)
    /// of it. Every write frame built takes one, sent or not.
    pub fn next_write_id(&mut self) -> u32 {
        let id = self.next_write;
        self.next_write += 1;
        id
    }

    /// A READ of `count` sectors from `lba` that reached the target.
    pub fn read(&mut self, lba: u64, count: u8) -> Outcome {
        self.transfer(false, lba, count, 0, 0)
    }

    /// A WRITE of `count` sectors from `lba` carrying `data_len` octets of write `id`.
    pub fn write(&mut self, lba: u64, count: u8, data_len: usize, id: u32) -> Outcome {
        self.transfer(true, lba, count, data_len, id)
    }

    /// A FLUSH CACHE that reached the target.
    pub fn flush(&mut self) -> Outcome {
        self.calls.flushes += 1;
        if self.fault.next_fails() {
            self.calls.injected += 1;
            Outcome::Failed(self.fault_error())
        } else {
            Outcome::Done
        }
    }

    fn transfer(&mut self, write: bool, lba: u64, count: u8, data_len: usize, id: u32) -> Outcome {
        if count == 0 || count > self.sectors_per_frame {
            return Outcome::Failed(ABRT);
        }
        let fits = lba
            .checked_add(u64::from(count))
            .is_some_and(|end| end <= self.sectors());
        if !fits {
            return Outcome::Failed(IDNF);
        }
        if write && data_len < usize::from(count) * 512 {
            return Outcome::Failed(ABRT);
        }
        if write {
            self.calls.writes += 1;
        } else {
            self.calls.reads += 1;
        }
        let start = usize::try_from(lba).expect("checked against the disk");
        let range = start..start + usize::from(count);
        if self.fault.transfer_fails(lba, u64::from(count)) {
            self.calls.injected += 1;
            if write {
                // Any subset of the sectors may have been written (a torn write).
                for candidates in &mut self.candidates[range] {
                    if !candidates.contains(&id) {
                        candidates.push(id);
                    }
                }
            }
            return Outcome::Failed(self.fault_error());
        }
        if write {
            for candidates in &mut self.candidates[range] {
                *candidates = vec![id];
            }
        }
        Outcome::Done
    }

    /// The ATA Error bits of an injected failure.
    fn fault_error(&self) -> u8 {
        if self.fault.plan().kind == ErrorKind::OutOfRange {
            IDNF
        } else {
            ABRT
        }
    }

    /// Checks a successful read's data against the candidates, narrowing each sector to the
    /// write it returned.
    ///
    /// # Errors
    /// Names the first sector that matches none of its candidates.
    pub fn check_read(&mut self, lba: u64, data: &[u8]) -> Result<(), String> {
        for (l, sector) in (lba..).zip(data.chunks_exact(512)) {
            let candidates = &mut self.candidates[usize::try_from(l).expect("in the disk")];
            let Some(id) = candidates
                .iter()
                .copied()
                .find(|&id| sector_image(l, id) == sector)
            else {
                return Err(format!(
                    "READ of LBA {l} returned {}, expected one of writes {candidates:?}",
                    describe(sector)
                ));
            };
            *candidates = vec![id];
        }
        Ok(())
    }

    /// Checks every sector of the disk's bytes against the model, without narrowing.
    ///
    /// # Errors
    /// Names the first sector that matches none of its candidates.
    pub fn check_disk(&self, disk: &[u8]) -> Result<(), String> {
        for ((l, sector), candidates) in (0u64..).zip(disk.chunks_exact(512)).zip(&self.candidates)
        {
            if !candidates.iter().any(|&id| sector_image(l, id) == sector) {
                return Err(format!(
                    "sector {l} holds {}, expected one of writes {candidates:?}",
                    describe(sector)
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::sectors::write_images;

    #[test]
    fn a_torn_write_leaves_old_or_new_until_a_read_decides() {
        let mut disk = ShadowDisk::new(8, 2);
        let first = disk.next_write_id();
        assert_eq!(disk.write(2, 2, 1024, first), Outcome::Done);
        disk.set_fault_plan(FaultPlan {
            fail_after: Some(0),
            ..FaultPlan::none()
        });
        let second = disk.next_write_id();
        assert_eq!(disk.write(2, 2, 1024, second), Outcome::Failed(ABRT));
        // Sector 2 torn to the new data, sector 3 still old: both allowed.
        let mut bytes = vec![0u8; 8 * 512];
        bytes[1024..1536].copy_from_slice(&write_images(2, 1, second));
        bytes[1536..2048].copy_from_slice(&write_images(3, 1, first));
        disk.check_disk(&bytes).unwrap();
        disk.check_read(2, &bytes[1024..2048]).unwrap();
        // The read decided: sector 2 now holds the second write only.
        let stale = write_images(2, 1, first);
        assert!(disk.check_read(2, &stale).is_err());
        assert_eq!(
            disk.calls(),
            DiskCalls {
                reads: 0,
                writes: 2,
                flushes: 0,
                injected: 1
            }
        );
    }

    #[test]
    fn refusals_make_no_disk_call() {
        let mut disk = ShadowDisk::new(8, 2);
        assert_eq!(disk.read(0, 0), Outcome::Failed(ABRT));
        assert_eq!(disk.read(0, 3), Outcome::Failed(ABRT));
        assert_eq!(disk.read(7, 2), Outcome::Failed(IDNF));
        assert_eq!(disk.read(u64::MAX, 1), Outcome::Failed(IDNF));
        let id = disk.next_write_id();
        assert_eq!(disk.write(0, 2, 1023, id), Outcome::Failed(ABRT));
        assert_eq!(disk.calls(), DiskCalls::default());
        assert_eq!(disk.read(6, 2), Outcome::Done);
        assert_eq!(disk.flush(), Outcome::Done);
        assert_eq!(disk.calls().reads, 1);
        assert_eq!(disk.calls().flushes, 1);
    }
}
