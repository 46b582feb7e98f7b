//! The `PACKET_MMAP` backend: an `AF_PACKET` socket with a `TPACKET_V2` receive ring mapped
//! into the process; sends go out like [`PacketLink`](super::PacketLink)'s (through a transmit
//! ring on a send-only socket, see `tx_ring`).
//!
//! See [`RingLink`] for what it guarantees.

use super::frame::{Arena, Frame, HEAD};
use super::packet::{self, Socket};
use super::sys::{self, PACKET_VERSION, TPACKET_V2, TpacketReq};
use super::{EthernetAddress, Link, NetError};
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

const PACKET_RX_RING: libc::c_int = 5;
const PACKET_RESERVE: libc::c_int = 12;
/// Receive frame status bit: the frame is ready for us.
const TP_STATUS_USER: u32 = 1;
/// Our own status for a ring frame handed out as a [`Frame`]: not 0, so the kernel does not
/// refill it, and without the USER bit, so it is not taken a second time when the ring wraps.
/// Bit 28 is used by no `TP_STATUS_*` flag.
const TP_STATUS_HELD: u32 = 1 << 28;

/// The kernel's `struct tpacket2_hdr` at the start of every frame.
#[repr(C)]
struct Tpacket2Hdr {
    tp_status: u32,
    tp_len: u32,
    tp_snaplen: u32,
    tp_mac: u16,
    tp_net: u16,
    tp_sec: u32,
    tp_nsec: u32,
    tp_vlan_tci: u16,
    tp_vlan_tpid: u16,
    tp_padding: [u8; 4],
}
const _: () = assert!(size_of::<Tpacket2Hdr>() == 32);

/// Octets per ring frame (and per block: one frame per block keeps allocations at 4 pages).
/// Holds a 9014-octet frame whose octet 36 sits at 4096.
pub const RING_FRAME_SIZE: usize = 16384;
/// Frames in the receive ring (8 MiB): room for many batches while replies wait to be sent.
pub const RING_FRAMES: usize = 512;
/// `tp_hdrlen` of `TPACKET_V2`: the header aligned to 16 plus a `sockaddr_ll`.
const TPACKET2_HDRLEN: usize = 32 + size_of::<libc::sockaddr_ll>();
/// The kernel puts a received frame's octet 0 at `align16(tp_hdrlen + 16) − 14 + reserve`
/// (`tpacket_rcv`, for a 14-octet MAC header); this reserve makes that `HEAD`, where octet 36
/// lands on a page boundary.
const RX_RESERVE: usize = HEAD - ((TPACKET2_HDRLEN + 16).next_multiple_of(16) - 14);
/// Where the kernel puts the `sockaddr_ll` of a received frame, and its `sll_pkttype` octet.
const PKTTYPE_OFFSET: usize = 32 + 10;
/// Largest frame a ring frame holds from `HEAD` on.
const LENDABLE: usize = RING_FRAME_SIZE - HEAD;

// A full MTU-9000 frame fits; frames are whole pages.
const _: () = assert!(LENDABLE >= 9014 && RING_FRAME_SIZE.is_multiple_of(4096));

/// An `AF_PACKET` socket with a `PACKET_MMAP` receive ring (`TPACKET_V2`).
///
/// What it guarantees, beyond [`Link`]:
///
/// * **No receive system call under load.** The kernel copies each arriving frame into the next
///   free ring frame (in the softirq that delivers it); [`Link::recv`] takes every frame
///   already marked ready and [`Link::wait`] calls `poll(2)` only when there is none.
/// * **No copy of a received frame in user space.** Ready ring frames are handed out as
///   [`Frame`]s of the ring's own arena ([`Frame::is_transient`] is true for them); a frame
///   goes back to the kernel when it is dropped (after it was sent as a reply, for instance).
///   `PACKET_RESERVE` places frame octet 36 (where AoE data starts) on a 4096-aligned address,
///   so `pwrite` from it works with `O_DIRECT`, and it has room for a reply of up to 9014
///   octets, so a READ's data can be read into the request's own frame and sent from there.
/// * The ring refills in order: a frame held for long stops the kernel at its place in the
///   ring after [`RING_FRAMES`] more frames (they are dropped and counted by
///   [`Link::take_drops`]). Callers that hold frames across slow I/O copy them first.
/// * Frames sent by this host and frames for other hosts' MACs are never returned, as with
///   [`PacketLink`](super::PacketLink). Sending copies each frame into the next slot of a
///   transmit ring (on a second, send-only socket) and has the kernel send the batch with one
///   `send(2)`, each frame as one linear packet; frames the ring has no free slot for, or all
///   of them where the kernel refuses a transmit ring, go out with `sendmmsg(2)`.
pub struct RingLink {
    socket: Socket,
    ring: Arc<Arena>,
    pool: Arc<Arena>,
    /// Next receive frame the kernel fills (in ring order).
    rx_head: usize,
    /// Kernel timestamp of the first frame of the last batch taken.
    last_arrival: Option<std::time::SystemTime>,
}

impl std::fmt::Debug for RingLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RingLink")
            .field("socket", &self.socket)
            .field("rx_head", &self.rx_head)
            .finish_non_exhaustive()
    }
}

impl RingLink {
    /// True when sends go through a transmit ring (the kernel allowed one), not `sendmmsg(2)`.
    pub fn has_transmit_ring(&self) -> bool {
        self.socket.has_transmit_ring()
    }

    /// Opens a raw socket on `interface` for EtherType 0x88A2 with a `TPACKET_V2` receive ring
    /// of [`RING_FRAMES`] frames, and a pool of `pool_frames` frames for replies built apart
    /// from their requests and for announcements.
    ///
    /// # Errors
    /// As [`PacketLink::open`](super::PacketLink::open), or [`NetError::Io`] when the kernel
    /// refuses the ring (then the plain socket still works).
    pub fn open(interface: &str, pool_frames: usize) -> Result<RingLink, NetError> {
        Self::open_with(interface, pool_frames, None).map(|(link, _)| link)
    }

    /// Opens like [`open`](Self::open), as a member of a fan-out group that steers each
    /// initiator (source MAC) to one member, as
    /// [`PacketLink::open_in_group`](super::PacketLink::open_in_group) does.
    ///
    /// # Errors
    /// As [`open`](Self::open), or [`NetError::Io`] when the kernel refuses the group.
    pub fn open_in_group(
        interface: &str,
        pool_frames: usize,
        group: Option<u16>,
    ) -> Result<(RingLink, u16), NetError> {
        let (link, id) = Self::open_with(interface, pool_frames, Some(group))?;
        Ok((link, id.unwrap_or(0)))
    }

    fn open_with(
        interface: &str,
        pool_frames: usize,
        fanout: Option<Option<u16>>,
    ) -> Result<(RingLink, Option<u16>), NetError> {
        let bound = packet::open_bound(interface, true, |fd| {
            let int = |option, value: libc::c_int, what| {
                if sys::set_option(fd, libc::SOL_PACKET, option, &value) {
                    Ok(())
                } else {
                    Err(NetError::last(interface, what))
                }
            };
            int(PACKET_VERSION, TPACKET_V2, "select TPACKET_V2")?;
            let reserve = libc::c_int::try_from(RX_RESERVE).unwrap_or(0);
            int(PACKET_RESERVE, reserve, "reserve ring frame headroom")?;
            let request = TpacketReq::one_frame_per_block(RING_FRAME_SIZE, RING_FRAMES);
            if !sys::set_option(fd, libc::SOL_PACKET, PACKET_RX_RING, &request) {
                return Err(NetError::last(interface, "set up the receive ring"));
            }
            Ok(())
        })?;
        let len = RING_FRAMES * RING_FRAME_SIZE;
        let base = sys::map_ring(&bound.fd, len, 0, interface, "map the packet ring")?;
        // SAFETY: `base..base + len` is the mapping just made, owned by nothing else; ring
        // frames start every RING_FRAME_SIZE octets with their status word; HEAD + LENDABLE =
        // RING_FRAME_SIZE; the mapping is page-aligned, so octet 36 of each frame (at
        // HEAD + 36 = 4096 into it) is aligned.
        let ring = unsafe {
            Arena::mapped_rx_ring(base, len, RING_FRAMES, RING_FRAME_SIZE, HEAD, LENDABLE)
        };
        let group = fanout
            .map(|group| packet::join_fanout(&bound.fd, interface, group))
            .transpose()?;
        let link = RingLink {
            socket: Socket::new(bound, interface).with_transmit_ring(),
            ring,
            pool: Arena::pool(pool_frames.max(1)),
            rx_head: 0,
            last_arrival: None,
        };
        Ok((link, group))
    }

    /// Hands out up to `max` ready ring frames, in ring order; returns how many were usable.
    fn take_ready(&mut self, frames: &mut Vec<Frame>, max: usize) -> usize {
        let mut taken = 0;
        while taken < max {
            let slot = self.rx_head;
            let status = self.ring.ring_status(slot);
            // Acquire: the kernel's writes of the frame are visible once we see USER.
            if status.load(Ordering::Acquire) & TP_STATUS_USER == 0 {
                break;
            }
            // The frame is ours now; mark it held so that it is not taken again when the ring
            // wraps before it is dropped.
            status.store(TP_STATUS_HELD, Ordering::Relaxed);
            self.rx_head = (slot + 1) % RING_FRAMES;
            let header = self.ring.at(slot * RING_FRAME_SIZE).cast::<Tpacket2Hdr>();
            // SAFETY: the frame is ours (it was USER, now HELD); its header and `sockaddr_ll`
            // lie at the start of the frame, inside the mapping.
            let (len, snaplen, mac, kind, sec, nsec) = unsafe {
                (
                    (*header).tp_len,
                    (*header).tp_snaplen,
                    usize::from((*header).tp_mac),
                    *header.cast::<u8>().add(PKTTYPE_OFFSET),
                    (*header).tp_sec,
                    (*header).tp_nsec,
                )
            };
            if taken == 0 {
                self.last_arrival = std::time::UNIX_EPOCH
                    .checked_add(Duration::new(u64::from(sec), nsec.min(999_999_999)));
            }
            let len = usize::try_from(len).unwrap_or(usize::MAX);
            let foreign = kind == packet::PACKET_OUTGOING || kind == packet::PACKET_OTHERHOST;
            // Adopting it as a Frame makes dropping it give it back to the kernel.
            let frame = self.ring.adopt(slot, len);
            if !foreign && snaplen as usize == len && len <= LENDABLE && mac == HEAD {
                frames.push(frame);
                taken += 1;
            }
        }
        taken
    }
}

impl Link for RingLink {
    fn name(&self) -> &str {
        &self.socket.name
    }

    fn mac(&self) -> EthernetAddress {
        self.socket.mac
    }

    fn mtu(&self) -> Result<usize, NetError> {
        super::ifreq::mtu(&self.socket.fd, &self.socket.name)
    }

    fn recv(&mut self, frames: &mut Vec<Frame>, max: usize) -> Result<usize, NetError> {
        let taken = self.take_ready(frames, max);
        if taken == 0 {
            // Nothing in the ring: a woken caller may have been woken by a socket error (the
            // interface went down or away), which only `SO_ERROR` shows here.
            if let Some(error) = packet::socket_error(&self.socket.fd, &self.socket.name) {
                return Err(error);
            }
        }
        Ok(taken)
    }

    fn wait(&mut self, timeout: Option<Duration>) -> Result<bool, NetError> {
        let status = self.ring.ring_status(self.rx_head);
        if status.load(Ordering::Acquire) & TP_STATUS_USER != 0 {
            return Ok(true);
        }
        self.socket.wait(timeout)
    }

    fn readiness_fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.socket.fd.as_fd())
    }

    fn alloc(&mut self) -> Option<Frame> {
        self.pool.take()
    }

    fn send(&mut self, frames: &mut Vec<Frame>) -> Result<usize, NetError> {
        self.socket.send(frames)
    }

    fn set_buffer_bytes(
        &mut self,
        rx_bytes: usize,
        tx_bytes: usize,
    ) -> Result<(usize, usize), NetError> {
        // Received frames wait in the ring, not the socket buffer; the send buffer still bounds
        // the packets in flight.
        packet::set_buffer_bytes(&self.socket.fd, &self.socket.name, rx_bytes, tx_bytes)
    }

    fn take_drops(&mut self) -> u64 {
        packet::take_drops(&self.socket.fd)
    }

    fn last_arrival(&self) -> Option<std::time::SystemTime> {
        self.last_arrival
    }

    fn frames_known_ready(&mut self) -> bool {
        self.has_frames()
    }

    fn has_frames(&mut self) -> bool {
        // Acquire, as in `take_ready`.
        self.ring.ring_status(self.rx_head).load(Ordering::Acquire) & TP_STATUS_USER != 0
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::frame::{DATA_ALIGN, DATA_OFFSET, TP_STATUS_KERNEL};

    #[test]
    fn received_data_lands_on_aligned_addresses() {
        // tpacket_rcv: netoff = align16(tp_hdrlen + max(maclen, 16)) + reserve; macoff = netoff − 14.
        let macoff = (TPACKET2_HDRLEN + 16).next_multiple_of(16) + RX_RESERVE - 14;
        assert_eq!(macoff, HEAD);
        assert_eq!((HEAD + DATA_OFFSET) % DATA_ALIGN, 0);
    }

    #[test]
    fn the_held_status_is_neither_free_for_the_kernel_nor_ready_for_us() {
        assert_ne!(TP_STATUS_HELD, TP_STATUS_KERNEL);
        assert_eq!(TP_STATUS_HELD & TP_STATUS_USER, 0);
    }
}
