//! Frame memory: owned buffers of one Ethernet frame each, shared by links, the target's engine
//! and the storage back ends.
//!
//! A [`Frame`] is a handle to one buffer in an [`Arena`] (a heap pool, the memory-mapped
//! receive ring of a socket, or the UMEM of an AF_XDP socket). It is what moves between the seams: a link hands received frames
//! out, the target builds the reply in the same frame, a storage back end reads sector data
//! into it or writes from it, and the link sends it; dropping it gives the buffer back.
//!
//! What this module guarantees, and what every `unsafe` user of a frame's address relies on
//! (this is the one place that proves it):
//!
//! * **Exclusive.** A `Frame` is not `Clone`: while it lives, no other `Frame` names the same
//!   octets, the arena never hands them out again, and the kernel does not write them (a
//!   receive-ring frame is the program's while its status says so; the arena sets that status
//!   back only when the frame is dropped).
//! * **Stable.** The octets never move while the `Frame` lives, wherever the handle is moved
//!   (across threads, into a storage back end's table of operations in flight): every `Frame`
//!   holds an [`Arc`] of its arena, and an arena is never resized and is freed (or unmapped)
//!   only when the last handle to it is gone. So a pointer from [`Frame::io_ptr`] or
//!   [`Frame::io_ptr_mut`] stays valid for as long as the `Frame` it came from is kept alive
//!   and not used otherwise.
//! * **Aligned.** Frame octet 36, where AoE sector data starts, lies on a [`DATA_ALIGN`]
//!   (4096-octet) boundary in every arena, so `O_DIRECT` transfers need no bounce buffer.
//! * **Given back.** Dropping a frame returns it to its arena's free list, or hands a ring
//!   frame back to the kernel. Nothing is allocated per frame; arenas are allocated once.
//! * **Lent to the kernel by slot.** A UMEM arena's owner (the AF_XDP link) may take a free
//!   slot without making a `Frame` (`Arena::lend_slot`) or turn a `Frame` back into its slot
//!   (`Frame::into_slot`) to put it in a fill or transmit ring; while the kernel holds the
//!   slot no `Frame` names it (exclusive), and the link makes a `Frame` of it again
//!   (`Arena::reclaim`) only when the kernel hands it back through the receive or completion
//!   ring, or returns it to the free list (`Arena::return_slot`).

// The receive-ring and UMEM parts serve Linux back ends only.
#![cfg_attr(not(target_os = "linux"), allow(dead_code))]

use std::alloc::Layout;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

/// Alignment of frame octet 36 (AoE data) in every arena: a page, enough for `O_DIRECT` on
/// disks with 512- and 4096-octet logical sectors.
pub const DATA_ALIGN: usize = 4096;

/// Where AoE ATA data starts in a frame (Ethernet 14 + AoE 10 + ATA 12).
pub const DATA_OFFSET: usize = 36;

/// Octets every pool slot holds: an MTU-9000 frame with its Ethernet header.
pub const POOL_FRAME_CAPACITY: usize = 9014;

/// Offset of frame octet 0 within a slot of a pool or ring arena, so that octet 36 is aligned.
pub(crate) const HEAD: usize = DATA_ALIGN - DATA_OFFSET;

/// `TP_STATUS_KERNEL`: the status of a receive-ring frame the kernel may fill.
pub(crate) const TP_STATUS_KERNEL: u32 = 0;

/// Octets per slot of a UMEM arena: four pages, so that frame octet 0 at [`UMEM_HEAD`] leaves
/// room for an MTU-9000 frame and octet 36 is page-aligned.
pub(crate) const UMEM_STRIDE: usize = 16384;
/// Offset of frame octet 0 within a UMEM slot: octet 36 lands on the slot's second page.
pub(crate) const UMEM_HEAD: usize = DATA_ALIGN - DATA_OFFSET;

/// What happens to a slot when its frame is dropped.
#[derive(Debug)]
enum Recycle {
    /// Back on the free list, for [`Arena::take`].
    FreeList(Mutex<Vec<u32>>),
    /// Slot `i` is frame `i` of a `TPACKET_V2` receive ring whose header (status word first)
    /// starts `stride × i` octets into the mapping: set its status back to "kernel".
    RxRing,
}

/// How the arena's memory was obtained, so that it is released the same way.
#[derive(Debug)]
enum Backing {
    /// `std::alloc` with this layout.
    Heap(Layout),
    /// An `mmap` of this many octets (unmapped on drop).
    Mapped(usize),
}

/// One block of frame memory, cut into equal slots; see the [module docs](self).
#[derive(Debug)]
pub struct Arena {
    base: NonNull<u8>,
    backing: Backing,
    stride: usize,
    slots: usize,
    /// Offset of frame octet 0 in each slot.
    head: usize,
    capacity: usize,
    recycle: Recycle,
}

// SAFETY: the arena is plain memory plus a mutex-protected free list. Which thread touches
// which slot is decided by `Frame` ownership (one handle per slot, see the module docs), and
// ring status words are only accessed atomically.
unsafe impl Send for Arena {}
// SAFETY: as above; shared access through `&Arena` only takes or returns slots under the
// mutex or stores a status word atomically.
unsafe impl Sync for Arena {}

impl Drop for Arena {
    fn drop(&mut self) {
        match self.backing {
            // SAFETY: `base` came from `alloc_zeroed` with exactly this layout (see `pool`),
            // and no `Frame` is left (each holds an `Arc` of this arena).
            Backing::Heap(layout) => unsafe { std::alloc::dealloc(self.base.as_ptr(), layout) },
            // SAFETY: `base`/`len` are a mapping this arena was given ownership of in
            // `mapped_rx_ring`, and no `Frame` is left to point into it.
            Backing::Mapped(len) => unsafe {
                libc::munmap(self.base.as_ptr().cast(), len);
            },
        }
    }
}

impl Arena {
    /// A heap pool of `slots` frames of [`POOL_FRAME_CAPACITY`] octets, all free.
    ///
    /// # Panics
    /// If the allocation fails (as `Vec` does), or `slots` is 0 or above `u32::MAX`.
    pub fn pool(slots: usize) -> Arc<Arena> {
        assert!(
            slots > 0 && u32::try_from(slots).is_ok(),
            "{slots} pool slots"
        );
        // Slot i's octet 0 sits at HEAD + i × stride, so its octet 36 is page-aligned; the slot
        // runs up to the next slot's octet 0.
        let stride = (POOL_FRAME_CAPACITY + DATA_OFFSET).next_multiple_of(DATA_ALIGN);
        let len = HEAD + slots * stride;
        let Ok(layout) = Layout::from_size_align(len, DATA_ALIGN) else {
            panic!("a frame pool of {slots} slots is too large");
        };
        // SAFETY: the layout has a non-zero size.
        let raw = unsafe { std::alloc::alloc_zeroed(layout) };
        let Some(base) = NonNull::new(raw) else {
            std::alloc::handle_alloc_error(layout);
        };
        let free = (0..u32::try_from(slots).unwrap_or(u32::MAX))
            .rev()
            .collect();
        Arc::new(Arena {
            base,
            backing: Backing::Heap(layout),
            stride,
            slots,
            head: HEAD,
            capacity: stride,
            recycle: Recycle::FreeList(Mutex::new(free)),
        })
    }

    /// Takes ownership of a `TPACKET_V2` receive ring of `slots` frames of `stride` octets
    /// mapped at `base` (`len` octets in all, unmapped when the arena goes), whose frame octet 0
    /// lies `head` octets into each ring frame and may span `capacity` octets.
    ///
    /// # Safety
    /// `base..base + len` must be a live shared mapping that nothing else unmaps; the ring
    /// frames must start every `stride` octets from `base` with the kernel's status word; and
    /// `head + capacity <= stride` with `(base + head + 36)` aligned to [`DATA_ALIGN`] (caller
    /// checked). Slots start out owned by the kernel; the ring module hands them out with
    /// [`Arena::adopt`] once their status says they are the program's.
    pub(crate) unsafe fn mapped_rx_ring(
        base: NonNull<u8>,
        len: usize,
        slots: usize,
        stride: usize,
        head: usize,
        capacity: usize,
    ) -> Arc<Arena> {
        Arc::new(Arena {
            base,
            backing: Backing::Mapped(len),
            stride,
            slots,
            head,
            capacity,
            recycle: Recycle::RxRing,
        })
    }

    /// A UMEM for AF_XDP: `slots` slots of [`UMEM_STRIDE`] octets in one anonymous mapping
    /// (on huge pages if `huge` and the system has them reserved; else ordinary pages), each
    /// frame at [`UMEM_HEAD`] in its slot and spanning `capacity` octets, all free. Returns
    /// the arena and whether it got huge pages.
    ///
    /// # Errors
    /// When the mapping fails.
    #[cfg(target_os = "linux")]
    pub(crate) fn umem(
        slots: usize,
        capacity: usize,
        huge: bool,
    ) -> std::io::Result<(Arc<Arena>, bool)> {
        assert!(
            slots > 0 && u32::try_from(slots).is_ok() && UMEM_HEAD + capacity <= UMEM_STRIDE,
            "UMEM of {slots} slots, {capacity} octets each"
        );
        // One page more than the slots (a 16 KiB chunk of the last slot starts 3804 octets
        // into it and must end inside the mapping), rounded up to whole 2 MiB huge pages.
        let len = (slots * UMEM_STRIDE + DATA_ALIGN).next_multiple_of(2 << 20);
        let map = |extra| {
            // SAFETY: a fresh private anonymous mapping at an address the kernel picks; the
            // result is checked before use.
            let base = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE | extra,
                    -1,
                    0,
                )
            };
            (base != libc::MAP_FAILED).then_some(base)
        };
        let (base, got_huge) = match huge.then(|| map(libc::MAP_HUGETLB)).flatten() {
            Some(base) => (base, true),
            None => (map(0).ok_or_else(std::io::Error::last_os_error)?, false),
        };
        let Some(base) = NonNull::new(base.cast::<u8>()) else {
            return Err(std::io::Error::from_raw_os_error(libc::ENOMEM));
        };
        let free = (0..u32::try_from(slots).unwrap_or(u32::MAX))
            .rev()
            .collect();
        let arena = Arena {
            base,
            backing: Backing::Mapped(len),
            stride: UMEM_STRIDE,
            slots,
            head: UMEM_HEAD,
            capacity,
            recycle: Recycle::FreeList(Mutex::new(free)),
        };
        Ok((Arc::new(arena), got_huge))
    }

    /// Takes a free slot for the kernel (an AF_XDP fill or transmit ring) without making a
    /// `Frame` of it; see the module docs (lent to the kernel by slot).
    pub(crate) fn lend_slot(&self) -> Option<u32> {
        match &self.recycle {
            Recycle::FreeList(list) => lock(list).pop(),
            Recycle::RxRing => None,
        }
    }

    /// Puts a slot the kernel handed back (and no `Frame` names) on the free list.
    pub(crate) fn return_slot(&self, slot: u32) {
        debug_assert!((slot as usize) < self.slots);
        self.give_back(slot);
    }

    /// A `Frame` of length `len` for slot `slot`, which the kernel has just handed back and
    /// which no other `Frame` names.
    pub(crate) fn reclaim(self: &Arc<Arena>, slot: u32, len: usize) -> Frame {
        debug_assert!((slot as usize) < self.slots);
        Frame {
            arena: Arc::clone(self),
            slot,
            len: u32::try_from(len.min(self.capacity)).unwrap_or(0),
        }
    }

    /// Offset of slot `slot`'s frame octet 0 from the start of the arena.
    pub(crate) fn frame_offset(&self, slot: u32) -> usize {
        self.frame_start(slot)
    }

    /// The slot whose frame octet 0 lies `offset` octets into the arena, if one does exactly.
    pub(crate) fn slot_at(&self, offset: usize) -> Option<u32> {
        let slot = offset.checked_sub(self.head)? / self.stride;
        (slot < self.slots && offset == self.head + slot * self.stride)
            .then(|| u32::try_from(slot).ok())
            .flatten()
    }

    /// Octets each frame may span.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Frames in the arena.
    pub fn slots(&self) -> usize {
        self.slots
    }

    /// Frames on the free list now (0 for a ring).
    pub fn free(&self) -> usize {
        match &self.recycle {
            Recycle::FreeList(list) => lock(list).len(),
            Recycle::RxRing => 0,
        }
    }

    /// The whole arena's memory, for registering it once with the kernel (io_uring fixed
    /// buffers). Reading or writing through it is only sound for the octets of a `Frame` the
    /// caller holds, as the module docs say.
    pub fn region(&self) -> (*mut u8, usize) {
        let len = match self.backing {
            Backing::Heap(layout) => layout.size(),
            Backing::Mapped(len) => len,
        };
        (self.base.as_ptr(), len)
    }

    /// A free frame of length 0, or `None` when every slot is in use.
    pub fn take(self: &Arc<Arena>) -> Option<Frame> {
        let Recycle::FreeList(list) = &self.recycle else {
            return None;
        };
        let slot = lock(list).pop()?;
        Some(Frame {
            arena: Arc::clone(self),
            slot,
            len: 0,
        })
    }

    /// A frame for ring slot `slot`, which the caller has just seen marked as the program's
    /// (`TP_STATUS_USER`) and hands out exactly once; its length is `len` (capped).
    pub(crate) fn adopt(self: &Arc<Arena>, slot: usize, len: usize) -> Frame {
        debug_assert!(slot < self.slots);
        Frame {
            arena: Arc::clone(self),
            slot: u32::try_from(slot).unwrap_or(u32::MAX),
            len: u32::try_from(len.min(self.capacity)).unwrap_or(0),
        }
    }

    /// Address of octet `offset` of the mapping (ring module: headers and status words).
    pub(crate) fn at(&self, offset: usize) -> *mut u8 {
        self.base.as_ptr().wrapping_add(offset)
    }

    /// The status word of ring frame `slot`.
    pub(crate) fn ring_status(&self, slot: usize) -> &AtomicU32 {
        debug_assert!(matches!(self.recycle, Recycle::RxRing) && slot < self.slots);
        // SAFETY: every ring frame starts with a 4-aligned `tp_status` word inside the mapping,
        // which lives as long as `self`; the kernel and this program only access it atomically.
        unsafe { AtomicU32::from_ptr(self.at(slot * self.stride).cast()) }
    }

    fn frame_start(&self, slot: u32) -> usize {
        self.head + slot as usize * self.stride
    }

    fn give_back(&self, slot: u32) {
        match &self.recycle {
            Recycle::FreeList(list) => lock(list).push(slot),
            // Release: our reads and writes of the frame happen before the kernel refills it.
            Recycle::RxRing => self
                .ring_status(slot as usize)
                .store(TP_STATUS_KERNEL, Ordering::Release),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding the free list leaves a valid list behind (push/pop are atomic in
    // effect), so poisoning is ignored.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One frame's buffer and length; see the [module docs](self) for what it guarantees.
#[derive(Debug)]
pub struct Frame {
    arena: Arc<Arena>,
    slot: u32,
    len: u32,
}

impl Drop for Frame {
    fn drop(&mut self) {
        self.arena.give_back(self.slot);
    }
}

impl Frame {
    /// Octets the frame may hold.
    pub fn capacity(&self) -> usize {
        self.arena.capacity
    }

    /// Length of the frame.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// True for a frame of length 0.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Sets the length, capped at the capacity.
    pub fn set_len(&mut self, len: usize) {
        self.len = u32::try_from(len.min(self.capacity())).unwrap_or(0);
    }

    /// The frame: its first [`len`](Self::len) octets.
    pub fn as_slice(&self) -> &[u8] {
        &self.buffer()[..self.len()]
    }

    /// The whole buffer, whatever the length.
    pub fn buffer(&self) -> &[u8] {
        let start = self.arena.frame_start(self.slot);
        // SAFETY: `capacity` octets from the slot's start lie inside the arena (checked when it
        // was made) and belong to this frame alone (module docs: exclusive, stable); `&self`
        // keeps `&mut` views out while this one lives.
        unsafe { std::slice::from_raw_parts(self.arena.at(start), self.capacity()) }
    }

    /// The whole buffer, mutable, to build a frame in; then [`set_len`](Self::set_len).
    pub fn buffer_mut(&mut self) -> &mut [u8] {
        let start = self.arena.frame_start(self.slot);
        // SAFETY: as in `buffer`; `&mut self` makes this the only view of the octets.
        unsafe { std::slice::from_raw_parts_mut(self.arena.at(start), self.capacity()) }
    }

    /// Copies `bytes` (cut to the capacity) into the frame and sets the length.
    pub fn fill(&mut self, bytes: &[u8]) {
        let len = bytes.len().min(self.capacity());
        self.buffer_mut()[..len].copy_from_slice(&bytes[..len]);
        self.set_len(len);
    }

    /// True for a frame lent from a kernel receive ring: the kernel cannot reuse its place in
    /// the ring while the program holds it, so hold it only briefly (not across I/O that may
    /// wait), or copy it into a pool frame.
    pub fn is_transient(&self) -> bool {
        matches!(self.arena.recycle, Recycle::RxRing)
    }

    /// Address and length of octets `range` of the buffer (clamped to it), for the kernel to
    /// read from. The pointer stays valid while this `Frame` lives; see the module docs.
    pub fn io_ptr(&self, range: std::ops::Range<usize>) -> (*const u8, usize) {
        let end = range.end.min(self.capacity());
        let start = range.start.min(end);
        let base = self.arena.at(self.arena.frame_start(self.slot));
        (base.wrapping_add(start).cast_const(), end - start)
    }

    /// Address and length of octets `range` of the buffer (clamped to it), for the kernel or a
    /// storage library to write into. The pointer stays valid while this `Frame` lives; the
    /// caller must not touch the frame otherwise until the write is over.
    pub fn io_ptr_mut(&mut self, range: std::ops::Range<usize>) -> (*mut u8, usize) {
        let (ptr, len) = self.io_ptr(range);
        (ptr.cast_mut(), len)
    }

    /// Gives up the handle without giving the slot back, for the arena's owner to lend it to
    /// the kernel (see the module docs); returns the slot.
    pub(crate) fn into_slot(self) -> u32 {
        // `Drop` (which gives the slot back) must not run; the arena's Arc is still released.
        let this = std::mem::ManuallyDrop::new(self);
        // SAFETY: `this` is never used or dropped after this read, so the Arc is moved out
        // exactly once and released exactly once (below).
        let arena = unsafe { std::ptr::read(&this.arena) };
        drop(arena);
        this.slot
    }

    /// The arena this frame belongs to (to find its registered region).
    pub fn arena(&self) -> &Arc<Arena> {
        &self.arena
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn data_of_every_pool_frame_is_aligned_and_frames_do_not_overlap() {
        let arena = Arena::pool(5);
        let mut frames: Vec<Frame> = (0..5).map(|_| arena.take().unwrap()).collect();
        assert!(arena.take().is_none(), "all five taken");
        for (value, frame) in frames.iter_mut().enumerate() {
            assert_eq!(
                frame.buffer()[DATA_OFFSET..].as_ptr() as usize % DATA_ALIGN,
                0
            );
            assert!(frame.capacity() >= POOL_FRAME_CAPACITY);
            frame.buffer_mut().fill(u8::try_from(value).unwrap() + 1);
        }
        for (value, frame) in frames.iter().enumerate() {
            let value = u8::try_from(value).unwrap() + 1;
            assert!(frame.buffer().iter().all(|&b| b == value), "frame {value}");
        }
    }

    #[test]
    fn dropped_frames_go_back_and_outlive_nothing() {
        let arena = Arena::pool(2);
        let frame = arena.take().unwrap();
        assert_eq!(arena.free(), 1);
        drop(frame);
        assert_eq!(arena.free(), 2);
        // A frame keeps its arena alive after every other handle is gone.
        let mut frame = arena.take().unwrap();
        drop(arena);
        frame.fill(&[7; 100]);
        assert_eq!(frame.as_slice(), &[7; 100][..]);
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn umem_slots_lent_and_reclaimed_keep_their_place_and_alignment() {
        let (arena, _) = Arena::umem(4, 9100, false).unwrap();
        let slot = arena.lend_slot().unwrap();
        assert_eq!(arena.free(), 3, "a lent slot is not free");
        let offset = arena.frame_offset(slot);
        assert_eq!(arena.slot_at(offset), Some(slot));
        assert_eq!(arena.slot_at(offset + 1), None);
        let mut frame = arena.reclaim(slot, 60);
        assert_eq!(frame.len(), 60);
        assert_eq!(
            frame.buffer()[DATA_OFFSET..].as_ptr() as usize % DATA_ALIGN,
            0
        );
        frame.fill(&[9; 60]);
        // Into the kernel's hands again: not free, and the arena outlives nothing.
        let again = frame.into_slot();
        assert_eq!((again, arena.free()), (slot, 3));
        assert_eq!(Arc::strong_count(&arena), 1, "into_slot released its Arc");
        arena.return_slot(again);
        assert_eq!(arena.free(), 4);
        let frame = arena.take().unwrap();
        drop(frame);
        assert_eq!(arena.free(), 4);
    }

    #[test]
    fn lengths_are_capped_and_io_ranges_clamped() {
        let arena = Arena::pool(1);
        let mut frame = arena.take().unwrap();
        frame.set_len(usize::MAX);
        assert_eq!(frame.len(), frame.capacity());
        let (ptr, len) = frame.io_ptr_mut(DATA_OFFSET..DATA_OFFSET + 1024);
        assert_eq!(len, 1024);
        assert_eq!(ptr.cast_const(), frame.buffer()[DATA_OFFSET..].as_ptr());
        let cap = frame.capacity();
        assert_eq!(frame.io_ptr(cap - 10..cap + 100).1, 10);
        assert_eq!(frame.io_ptr(cap + 5..cap + 100).1, 0);
        assert!(!frame.is_transient());
    }
}
