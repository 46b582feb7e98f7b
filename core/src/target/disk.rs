//! The blocking path: running a plan's [`DiskIo`] on the target's own [`Disk`].
//!
//! Guarantees: only the sectors the plan names are read or written, straight between the
//! frame buffers and the disk; a disk failure becomes an [`ErrorKind`], logged once here.

use super::Target;
use super::plan::{DiskIo, IoOp};
use crate::disk::{Disk, Error as _, ErrorKind, SECTOR_SIZE};

impl<D: Disk> Target<D> {
    /// Runs `io` on the target's disk. `None` if the frames cannot hold the data.
    pub(super) fn run_io(
        &mut self,
        io: &DiskIo,
        rx: &[u8],
        tx: &mut [u8],
    ) -> Option<Result<(), ErrorKind>> {
        let result = match io.op {
            IoOp::Read => {
                let sectors = tx
                    .get_mut(io.data_range())?
                    .as_chunks_mut::<SECTOR_SIZE>()
                    .0;
                self.disk.read(io.lba, sectors)
            }
            IoOp::Write => {
                let sectors = rx.get(io.data_range())?.as_chunks::<SECTOR_SIZE>().0;
                self.disk.write(io.lba, sectors)
            }
            IoOp::Flush => self.disk.flush(),
        };
        Some(result.map_err(|error| {
            let kind = error.kind();
            warn!("disk {:?} at LBA {} failed: {:?}", io.op, io.lba, kind);
            kind
        }))
    }
}
