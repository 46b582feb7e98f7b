//! Frame slots whose AoE data (frame octet 36) is aligned for `O_DIRECT`.
//!
//! A [`FrameBufs`] owns its memory, but a ring-backed link ([`RingLink`](super::RingLink)) may
//! *lend* it frames of its memory-mapped rings: then a slot reads and writes the ring frame
//! itself, and no octet is copied between ring and slot. A lent receive frame stays the
//! program's until the same `FrameBufs` is lent new frames or dropped (only then is it handed
//! back to the kernel, so no slice of it can be alive while the kernel writes it); lent transmit
//! frames are recalled when the link sends (a generation count), after which the slots show
//! their own memory again.

use super::mmap_ring::{RING_FRAMES, RingMap, RingSide};
use std::sync::Arc;

/// Default alignment of frame octet 36: a page, which satisfies `O_DIRECT` on disks with 512-
/// and 4096-octet logical sectors.
pub const DEFAULT_DATA_ALIGN: usize = 4096;

/// Where AoE ATA data starts in a frame (Ethernet 14 + AoE 10 + ATA 12).
const DATA_OFFSET: usize = 36;

/// `count` frame slots of `capacity` octets each, plus each slot's current length.
///
/// Slot `i` starts at `pad + i × stride` in one allocation, where `stride` is `capacity`
/// rounded up to the alignment and `pad` puts octet 36 of slot 0 on an aligned address; so
/// octet 36 of every slot is aligned. Allocated once in [`FrameBufs::new`]; nothing else
/// allocates.
#[derive(Debug)]
pub struct FrameBufs {
    raw: Vec<u8>,
    first: usize,
    stride: usize,
    capacity: usize,
    lens: Vec<usize>,
    align: usize,
    lent: Option<Lent>,
}

/// Ring frames lent to the slots of a [`FrameBufs`].
#[derive(Debug)]
pub(crate) struct Lent {
    /// The mapping the frames live in; held so that it outlives every slot pointing into it.
    map: Arc<RingMap>,
    kind: LentKind,
}

#[derive(Debug)]
enum LentKind {
    /// Per slot, the receive frame lent to it, if any (others use their own memory).
    Rx(Vec<Option<usize>>),
    /// Slot `i` is transmit frame `(base + i) mod RING_FRAMES`, while the ring's generation is `generation`.
    Tx { base: usize, generation: u64 },
}

impl Lent {
    /// The ring frame lent to `slot`, if the lend holds.
    fn frame(&self, slot: usize) -> Option<(RingSide, usize)> {
        match &self.kind {
            LentKind::Rx(frames) => Some((RingSide::Rx, (*frames.get(slot)?)?)),
            LentKind::Tx { base, generation } => (self.map.tx_generation() == *generation)
                .then_some((RingSide::Tx, (base + slot) % RING_FRAMES)),
        }
    }

    /// Hands lent receive frames back to the kernel and forgets every lend.
    fn release(&mut self) {
        match &mut self.kind {
            LentKind::Rx(frames) => {
                for entry in frames.iter_mut() {
                    if let Some(frame) = entry.take() {
                        self.map.release_rx(frame);
                    }
                }
            }
            LentKind::Tx { generation, .. } => *generation = u64::MAX,
        }
    }
}

impl Drop for FrameBufs {
    fn drop(&mut self) {
        if let Some(lent) = &mut self.lent {
            lent.release();
        }
    }
}

impl FrameBufs {
    /// `count` slots (at least 1) of `capacity` octets (at least 60), data aligned to
    /// [`DEFAULT_DATA_ALIGN`].
    pub fn new(count: usize, capacity: usize) -> FrameBufs {
        FrameBufs::with_alignment(count, capacity, DEFAULT_DATA_ALIGN)
    }

    /// As [`new`](Self::new), with frame octet 36 aligned to `align`, rounded up to a power of
    /// two of at least 64.
    pub fn with_alignment(count: usize, capacity: usize, align: usize) -> FrameBufs {
        let count = count.max(1);
        let capacity = capacity.max(60);
        let align = align.max(64).next_power_of_two();
        let stride = capacity.next_multiple_of(align);
        let raw = vec![0u8; align + align + count * stride];
        // Octet 36 of slot 0 lands at the first aligned address at least 36 octets in.
        let misalign = raw.as_ptr().align_offset(align);
        let first = misalign + align - DATA_OFFSET;
        FrameBufs {
            raw,
            first,
            stride,
            capacity,
            lens: vec![0; count],
            align,
            lent: None,
        }
    }

    /// Number of slots.
    pub fn count(&self) -> usize {
        self.lens.len()
    }

    /// Octets each slot holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Alignment of frame octet 36 in every slot.
    pub fn data_align(&self) -> usize {
        self.align
    }

    fn range(&self, slot: usize) -> std::ops::Range<usize> {
        assert!(slot < self.count(), "slot {slot} of {}", self.count());
        let start = self.first + slot * self.stride;
        start..start + self.capacity
    }

    /// The map offset of frame octet 0 of `slot` if a ring frame is lent to it (and the lend
    /// is still valid).
    fn lent_offset(&self, slot: usize) -> Option<(&Arc<RingMap>, usize)> {
        let lent = self.lent.as_ref()?;
        let (side, frame) = lent.frame(slot)?;
        Some((&lent.map, RingMap::data_frame_offset(side, frame)))
    }

    /// The whole slot, whatever its length.
    ///
    /// # Panics
    /// If `slot >= count()` (a programming error).
    pub fn slot(&self, slot: usize) -> &[u8] {
        let range = self.range(slot);
        if let Some((map, offset)) = self.lent_offset(slot) {
            // SAFETY: the link lent `capacity` octets at `offset` (checked against the frame
            // size when lent); `map` keeps the mapping alive as long as `self`. The frame is
            // the program's (receive: status USER until this `FrameBufs` releases it; transmit:
            // AVAILABLE, which the kernel does not touch), and `&self` keeps `&mut` access out.
            return unsafe { std::slice::from_raw_parts(map.at(offset), self.capacity) };
        }
        &self.raw[range]
    }

    /// The whole slot, mutable, to build a frame in; then [`set_len`](Self::set_len).
    ///
    /// # Panics
    /// If `slot >= count()`.
    pub fn slot_mut(&mut self, slot: usize) -> &mut [u8] {
        let range = self.range(slot);
        if let Some((map, offset)) = self.lent_offset(slot) {
            // SAFETY: as in `slot`; `&mut self` makes this the only live view of the frame.
            return unsafe { std::slice::from_raw_parts_mut(map.at(offset), self.capacity) };
        }
        &mut self.raw[range]
    }

    /// The frame in `slot`: its first `len(slot)` octets.
    ///
    /// # Panics
    /// If `slot >= count()`.
    pub fn frame(&self, slot: usize) -> &[u8] {
        let len = self.lens[slot];
        &self.slot(slot)[..len]
    }

    /// Length of the frame in `slot`.
    ///
    /// # Panics
    /// If `slot >= count()`.
    pub fn len(&self, slot: usize) -> usize {
        self.lens[slot]
    }

    /// True if every slot has length 0.
    pub fn is_empty(&self) -> bool {
        self.lens.iter().all(|&len| len == 0)
    }

    /// Sets the length of the frame in `slot`, capped at the capacity.
    ///
    /// # Panics
    /// If `slot >= count()`.
    pub fn set_len(&mut self, slot: usize, len: usize) {
        self.lens[slot] = len.min(self.capacity);
    }

    /// Start of `slot` for the kernel to write into.
    ///
    /// Every such pointer is derived from the same base pointer (the owned buffer or the ring
    /// mapping), so pointers to different slots stay valid together (for one vectored call).
    pub(crate) fn slot_ptr_mut(&mut self, slot: usize) -> *mut u8 {
        let start = self.range(slot).start;
        if let Some((map, offset)) = self.lent_offset(slot) {
            return map.at(offset);
        }
        self.raw.as_mut_ptr().wrapping_add(start)
    }

    /// Start of `slot` for the kernel to read from.
    pub(crate) fn slot_ptr(&self, slot: usize) -> *const u8 {
        let start = self.range(slot).start;
        if let Some((map, offset)) = self.lent_offset(slot) {
            return map.at(offset);
        }
        self.raw.as_ptr().wrapping_add(start)
    }

    /// Gives back lent receive frames and forgets every lend: all slots use their own memory.
    pub(crate) fn unlend(&mut self) {
        if let Some(lent) = &mut self.lent {
            lent.release();
        }
    }

    /// Makes this `FrameBufs` lend-able by `map`, dropping lends of another map.
    fn lent_from(&mut self, map: &Arc<RingMap>, kind: impl FnOnce(usize) -> LentKind) -> &mut Lent {
        let same = self
            .lent
            .as_ref()
            .is_some_and(|lent| Arc::ptr_eq(&lent.map, map));
        if !same {
            self.unlend();
            self.lent = Some(Lent {
                map: Arc::clone(map),
                kind: kind(self.count()),
            });
        }
        let Some(lent) = self.lent.as_mut() else {
            unreachable!("set above")
        };
        lent
    }

    /// Lends receive frame `frame` of `map` to `slot`, until [`unlend`](Self::unlend) or drop
    /// hands it back to the kernel. The caller guarantees that the frame was taken from the
    /// kernel for this `FrameBufs` alone and that `capacity()` octets from its
    /// [`RingMap::data_frame_offset`] lie inside it.
    pub(crate) fn lend_rx(&mut self, map: &Arc<RingMap>, slot: usize, frame: usize) {
        let count = self.count();
        let lent = self.lent_from(map, |count| LentKind::Rx(vec![None; count]));
        match &mut lent.kind {
            LentKind::Rx(frames) => {
                if let Some(Some(old)) = frames.get_mut(slot).map(|entry| entry.replace(frame)) {
                    lent.map.release_rx(old);
                }
            }
            LentKind::Tx { .. } => {
                let mut frames = vec![None; count];
                if let Some(entry) = frames.get_mut(slot) {
                    *entry = Some(frame);
                }
                lent.kind = LentKind::Rx(frames);
            }
        }
    }

    /// Lends transmit frames `base..base + count()` of `map` to slots `0..count()` while the
    /// ring's generation is `generation`. The caller guarantees that those frames are free
    /// (the kernel does not touch them) and hold `capacity()` octets from their
    /// [`RingMap::data_frame_offset`].
    pub(crate) fn lend_tx(&mut self, map: &Arc<RingMap>, base: usize, generation: u64) {
        let lent = self.lent_from(map, |_| LentKind::Tx { base, generation });
        if let LentKind::Rx(_) = lent.kind {
            lent.release();
        }
        lent.kind = LentKind::Tx { base, generation };
    }

    /// The transmit ring frame lent to `slot` by `map`, if the lend is still valid.
    pub(crate) fn lent_tx_frame(&self, map: &Arc<RingMap>, slot: usize) -> Option<usize> {
        let lent = self.lent.as_ref()?;
        if !Arc::ptr_eq(&lent.map, map) {
            return None;
        }
        match lent.frame(slot)? {
            (RingSide::Tx, frame) => Some(frame),
            (RingSide::Rx, _) => None,
        }
    }

    /// An `iovec` for octets `range` of `slot` (clamped to the slot), for the kernel to write
    /// into. Pointers from several calls on the same `FrameBufs` may be used together as long
    /// as `self` is not touched in between.
    pub fn iovec_mut(&mut self, slot: usize, range: std::ops::Range<usize>) -> libc::iovec {
        let end = range.end.min(self.capacity);
        let start = range.start.min(end);
        libc::iovec {
            iov_base: self.slot_ptr_mut(slot).wrapping_add(start).cast(),
            iov_len: end - start,
        }
    }

    /// An `iovec` for octets `range` of `slot` (clamped), for the kernel to read from only.
    pub fn iovec(&self, slot: usize, range: std::ops::Range<usize>) -> libc::iovec {
        let end = range.end.min(self.capacity);
        let start = range.start.min(end);
        libc::iovec {
            iov_base: self.slot_ptr(slot).wrapping_add(start).cast_mut().cast(),
            iov_len: end - start,
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn data_of_every_slot_is_aligned() {
        for (capacity, align) in [(1514, 4096), (9014, 4096), (1514, 512), (100, 64)] {
            let mut bufs = FrameBufs::with_alignment(5, capacity, align);
            for slot in 0..5 {
                let data = bufs.slot(slot)[DATA_OFFSET..].as_ptr() as usize;
                assert_eq!(data % align, 0, "slot {slot}, capacity {capacity}");
                assert_eq!(bufs.slot_mut(slot).len(), capacity);
            }
        }
    }

    #[test]
    fn slots_do_not_overlap() {
        let mut bufs = FrameBufs::with_alignment(3, 1514, 512);
        for slot in 0..3 {
            let value = u8::try_from(slot + 1).unwrap();
            bufs.slot_mut(slot).fill(value);
        }
        for slot in 0..3 {
            let value = u8::try_from(slot + 1).unwrap();
            assert!(bufs.slot(slot).iter().all(|&b| b == value));
        }
    }

    #[test]
    fn lengths_are_capped_and_frames_follow_them() {
        let mut bufs = FrameBufs::new(2, 1514);
        assert!(bufs.is_empty());
        bufs.set_len(1, 5000);
        assert_eq!(bufs.len(1), 1514);
        bufs.set_len(0, 60);
        assert_eq!(bufs.frame(0).len(), 60);
        assert!(!bufs.is_empty());
    }

    #[test]
    fn iovecs_point_into_their_slots_and_are_clamped() {
        let mut bufs = FrameBufs::new(2, 1514);
        let iov = bufs.iovec_mut(1, 36..36 + 1024);
        assert_eq!(
            iov.iov_base.cast_const().cast::<u8>(),
            bufs.slot(1)[36..].as_ptr()
        );
        assert_eq!(iov.iov_len, 1024);
        assert_eq!(bufs.iovec(0, 1000..4000).iov_len, 514);
        assert_eq!(bufs.iovec(0, 3000..4000).iov_len, 0);
    }

    #[test]
    fn odd_arguments_are_rounded_not_refused() {
        let bufs = FrameBufs::with_alignment(0, 10, 100);
        assert_eq!(bufs.count(), 1);
        assert_eq!(bufs.capacity(), 60);
        assert_eq!(bufs.data_align(), 128);
    }
}
