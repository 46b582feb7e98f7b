//! A `PACKET_RX_RING` (TPACKET_V2) receive ring for an `AF_PACKET` socket.
//!
//! The kernel writes each received frame into the next free slot of a ring shared with us and
//! flips the slot's status word to "user"; we copy the frame into a [`FrameBufs`] slot (so AoE
//! data stays at an aligned address for `O_DIRECT`) and hand the ring slot back. Compared with
//! `recvmmsg`, this removes the per-frame message-header copies, iovec imports, socket queue
//! and `sk_buff` handling from the receiving thread, and the system call itself whenever frames
//! are already waiting: under load the target receives without entering the kernel. A frame is
//! still copied once by the kernel (into the ring) and once by us (a cache-hot `memcpy` of at
//! most one frame).
//!
//! Guarantees: slots are consumed strictly in ring order and each is handed back (status set
//! to `TP_STATUS_KERNEL` with release ordering) only after its octets were copied out; a frame
//! longer than the ring slot or the buffer slot is reported with length 0 (filtered), as are
//! frames this host sent and frames for another host's MAC. Nothing is allocated per frame.

use super::FrameBufs;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering};

/// `SOL_PACKET` options and constants of `<linux/if_packet.h>`, spelled out so that the code
/// does not depend on which `libc` release carries them.
const PACKET_RX_RING: libc::c_int = 5;
const PACKET_VERSION: libc::c_int = 10;
const TPACKET_V2: libc::c_int = 1;
const TP_STATUS_KERNEL: u32 = 0;
const TP_STATUS_USER: u32 = 1;
/// `sll_pkttype` values filtered out, as in the `recvmmsg` path.
const PACKET_OTHERHOST: u8 = 3;
const PACKET_OUTGOING: u8 = 4;

/// Octets per ring slot: a 9014-octet frame plus the TPACKET_V2 header, the `sockaddr_ll` and
/// the kernel's alignment padding, rounded to a power of two so one slot is one block.
pub const RING_SLOT: usize = 16384;

/// `struct tpacket_req` (`<linux/if_packet.h>`).
#[repr(C)]
struct TpacketReq {
    block_size: libc::c_uint,
    block_nr: libc::c_uint,
    frame_size: libc::c_uint,
    frame_nr: libc::c_uint,
}

/// `struct tpacket2_hdr`: the header the kernel writes at the start of each slot.
#[repr(C)]
struct Tpacket2Hdr {
    status: u32,
    len: u32,
    snaplen: u32,
    mac: u16,
    net: u16,
    sec: u32,
    nsec: u32,
    vlan_tci: u16,
    vlan_tpid: u16,
    padding: [u8; 4],
}

/// Where the `sockaddr_ll` sits in a slot: after the header, aligned to 16.
const ADDR_OFFSET: usize = size_of::<Tpacket2Hdr>().next_multiple_of(16);
/// Offset of `sll_pkttype` in `struct sockaddr_ll` (family 2, protocol 2, ifindex 4, hatype 2).
const PKTTYPE_OFFSET: usize = 10;

/// The mapped ring; unmapped on drop.
pub struct RxRing {
    base: *mut u8,
    slots: usize,
    next: usize,
}

// SAFETY: the mapping belongs to this value alone (no aliases are handed out beyond a call),
// so it may move to another thread with its owner.
unsafe impl Send for RxRing {}

impl std::fmt::Debug for RxRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RxRing")
            .field("slots", &self.slots)
            .field("next", &self.next)
            .finish_non_exhaustive()
    }
}

fn set_option<T>(fd: &OwnedFd, option: libc::c_int, value: &T) -> io::Result<()> {
    let len = libc::socklen_t::try_from(size_of::<T>()).unwrap_or(libc::socklen_t::MAX);
    // SAFETY: `value` is a live, initialised T and its exact size is passed; the kernel only
    // reads it.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
            option,
            std::ptr::from_ref(value).cast(),
            len,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

impl RxRing {
    /// Attaches a ring of `slots` frames to the bound packet socket `fd` and maps it. Frames
    /// queued on the socket before this call are discarded by the kernel.
    ///
    /// # Errors
    /// When the kernel refuses TPACKET_V2, the ring, or the mapping (the caller then keeps
    /// receiving with `recvmmsg`).
    pub fn attach(fd: &OwnedFd, slots: usize) -> io::Result<RxRing> {
        let slots = slots.max(1);
        set_option(fd, PACKET_VERSION, &TPACKET_V2)?;
        let as_uint = |n: usize| libc::c_uint::try_from(n).unwrap_or(libc::c_uint::MAX);
        let request = TpacketReq {
            block_size: as_uint(RING_SLOT),
            block_nr: as_uint(slots),
            frame_size: as_uint(RING_SLOT),
            frame_nr: as_uint(slots),
        };
        set_option(fd, PACKET_RX_RING, &request)?;
        // SAFETY: maps the ring the kernel just allocated for this socket, at a place of the
        // kernel's choosing; the result is checked before use.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                slots * RING_SLOT,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if base == libc::MAP_FAILED {
            let error = io::Error::last_os_error();
            // Detach the ring again so the socket goes back to its receive queue.
            let none = TpacketReq {
                block_size: 0,
                block_nr: 0,
                frame_size: 0,
                frame_nr: 0,
            };
            let _ = set_option(fd, PACKET_RX_RING, &none);
            return Err(error);
        }
        Ok(RxRing {
            base: base.cast(),
            slots,
            next: 0,
        })
    }

    fn status(&self, slot: usize) -> &AtomicU32 {
        // SAFETY: `slot < self.slots`, so the header lies inside the mapping; the status word
        // is 4-aligned (slots are page-aligned) and shared with the kernel, which is why it is
        // only accessed atomically.
        unsafe { &*self.base.add(slot * RING_SLOT).cast::<AtomicU32>() }
    }

    /// True when the next slot holds a frame for us.
    pub fn ready(&self) -> bool {
        self.status(self.next).load(Ordering::Acquire) & TP_STATUS_USER != 0
    }

    /// Copies the frames waiting in the ring, in order, into slots `0..n` of `bufs` (at most
    /// `bufs.count()`), hands their ring slots back and returns `n`.
    pub fn drain(&mut self, bufs: &mut FrameBufs) -> usize {
        let mut taken = 0;
        while taken < bufs.count() && self.ready() {
            let slot_base = self.next * RING_SLOT;
            // SAFETY: the slot is ours (status USER, read with acquire ordering) until we hand
            // it back below; the header and address lie inside the slot.
            let (len, snaplen, mac, pkttype) = unsafe {
                let header = &*self.base.add(slot_base).cast::<Tpacket2Hdr>();
                let pkttype = *self.base.add(slot_base + ADDR_OFFSET + PKTTYPE_OFFSET);
                (
                    header.len as usize,
                    header.snaplen as usize,
                    usize::from(header.mac),
                    pkttype,
                )
            };
            let fits = len == snaplen && len <= bufs.capacity() && mac + len <= RING_SLOT;
            let foreign = pkttype == PACKET_OUTGOING || pkttype == PACKET_OTHERHOST;
            if fits && !foreign {
                // SAFETY: `mac + len <= RING_SLOT`, so the frame lies inside our slot; the
                // destination slot of `bufs` holds at least `len` octets (checked above) and
                // does not overlap the ring.
                let frame =
                    unsafe { std::slice::from_raw_parts(self.base.add(slot_base + mac), len) };
                bufs.slot_mut(taken)[..len].copy_from_slice(frame);
                bufs.set_len(taken, len);
            } else {
                bufs.set_len(taken, 0);
            }
            self.status(self.next)
                .store(TP_STATUS_KERNEL, Ordering::Release);
            self.next = (self.next + 1) % self.slots;
            taken += 1;
        }
        taken
    }
}

impl Drop for RxRing {
    fn drop(&mut self) {
        // SAFETY: `base` and the length are exactly what mmap returned and was given; nothing
        // refers to the mapping after this.
        unsafe {
            libc::munmap(self.base.cast(), self.slots * RING_SLOT);
        }
    }
}
