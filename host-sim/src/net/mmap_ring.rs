//! The `PACKET_MMAP` backend: an `AF_PACKET` socket with a receive and a transmit ring
//! (`TPACKET_V2`) mapped into the process.
//!
//! See [`RingLink`] for what it guarantees.

use super::bufs::FrameBufs;
use super::packet;
use super::{Link, Mac, NetError, PacketLink};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// `TPACKET_V2` (`PACKET_VERSION` value).
const TPACKET_V2: libc::c_int = 1;
const PACKET_RX_RING: libc::c_int = 5;
const PACKET_VERSION: libc::c_int = 10;
const PACKET_RESERVE: libc::c_int = 12;
const PACKET_TX_RING: libc::c_int = 13;
const PACKET_LOSS: libc::c_int = 14;
const PACKET_TX_HAS_OFF: libc::c_int = 19;
const PACKET_VNET_HDR: libc::c_int = 15;
/// `struct virtio_net_hdr`, which `PACKET_VNET_HDR` puts in front of every frame in both rings.
const VNET_HDR_LEN: usize = 10;
/// Receive frame status: the kernel may fill it / the frame is ready for us.
const TP_STATUS_KERNEL: u32 = 0;
const TP_STATUS_USER: u32 = 1;
/// Transmit frame status: free / queued for the kernel.
const TP_STATUS_AVAILABLE: u32 = 0;
const TP_STATUS_SEND_REQUEST: u32 = 1;

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

/// `struct tpacket_req` for `PACKET_RX_RING`/`PACKET_TX_RING`.
#[repr(C)]
struct TpacketReq {
    tp_block_size: u32,
    tp_block_nr: u32,
    tp_frame_size: u32,
    tp_frame_nr: u32,
}

/// Octets per ring frame (and per block: one frame per block keeps allocations at 4 pages).
/// Holds a 9014-octet frame whose octet 36 sits at 4096.
pub const RING_FRAME_SIZE: usize = 16384;
/// Frames in each ring: several batches of 64 requests and 96 replies.
pub const RING_FRAMES: usize = 256;
/// Alignment of frame octet 36 in every lent frame.
pub const RING_DATA_ALIGN: usize = 4096;
/// Where AoE data starts in a frame.
const DATA_OFFSET: usize = 36;
/// Offset of frame octet 0 in a ring frame, for both rings: octet 36 lands on 4096.
const MAC_OFFSET: usize = RING_DATA_ALIGN - DATA_OFFSET;
/// `tp_hdrlen` of `TPACKET_V2`: the header aligned to 16 plus a `sockaddr_ll`.
const TPACKET2_HDRLEN: usize = 32 + size_of::<libc::sockaddr_ll>();
/// The kernel puts a received frame's octet 0 at `align16(tp_hdrlen + 16) − 14 + reserve`
/// (`tpacket_rcv`, for a 14-octet MAC header), plus the virtio header; this reserve makes that
/// `MAC_OFFSET`.
const RX_RESERVE: usize =
    MAC_OFFSET - ((TPACKET2_HDRLEN + 16).next_multiple_of(16) + VNET_HDR_LEN - 14);
/// Where the kernel puts the `sockaddr_ll` of a received frame, and its `sll_pkttype` octet.
const PKTTYPE_OFFSET: usize = 32 + 10;
/// Largest frame the slots of a lent frame may span.
const LENDABLE: usize = RING_FRAME_SIZE - MAC_OFFSET;

// A full MTU-9000 frame fits a lent frame; frames are whole pages.
const _: () = assert!(LENDABLE >= 9014 && RING_FRAME_SIZE.is_multiple_of(4096));

/// Transmit frames up to this long are copied into the kernel's packet whole; longer ones
/// travel as references to the ring page (zero-copy where the driver sends from the page).
///
/// Default: every frame is copied. Measured on veth (the benchmark's link), page references
/// cost more than the copy they save: veth must own the data, so it allocates pages and copies
/// them anyway (`skb_copy_ubufs`), and for short frames the reference itself costs more than
/// the copy. `AOE_TX_LINEAR_MAX=N` sends frames longer than `N` octets by page reference, for
/// NICs that transmit straight from the page (not measured here).
const LINEAR_MAX: usize = usize::MAX;

/// How long [`Link::send`] waits for a busy transmit frame before it drops the rest.
const SEND_RETRY_LIMIT: Duration = Duration::from_millis(200);

/// Which ring of a [`RingMap`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RingSide {
    /// The receive ring.
    Rx,
    /// The transmit ring.
    Tx,
}

/// The mapped rings of one socket: `RING_FRAMES` receive frames, then as many transmit frames.
#[derive(Debug)]
pub(crate) struct RingMap {
    base: *mut u8,
    len: usize,
    /// Bumped by every send: transmit frames lent before it are recalled.
    tx_generation: AtomicU64,
}

// SAFETY: the mapping is plain shared memory that lives until drop; every access to a frame goes
// through its status word (atomics) or through slots whose ownership rules `FrameBufs` enforces.
unsafe impl Send for RingMap {}
// SAFETY: as above; the shared methods only compute addresses and use atomics.
unsafe impl Sync for RingMap {}

impl Drop for RingMap {
    fn drop(&mut self) {
        // SAFETY: `base`/`len` are the mapping made in `RingLink::open`; every `FrameBufs`
        // that points into it holds an `Arc` of this map, so none is left.
        unsafe { libc::munmap(self.base.cast(), self.len) };
    }
}

impl RingMap {
    /// Address of map offset `offset` (in bounds by construction of the callers).
    pub(crate) fn at(&self, offset: usize) -> *mut u8 {
        debug_assert!(offset < self.len);
        self.base.wrapping_add(offset)
    }

    pub(crate) fn tx_generation(&self) -> u64 {
        self.tx_generation.load(Ordering::Relaxed)
    }

    fn frame_offset(side: RingSide, frame: usize) -> usize {
        let ring = match side {
            RingSide::Rx => 0,
            RingSide::Tx => RING_FRAMES,
        };
        (ring + frame % RING_FRAMES) * RING_FRAME_SIZE
    }

    /// Map offset of frame octet 0 in a lent frame (the same place in both rings).
    pub(crate) fn data_frame_offset(side: RingSide, frame: usize) -> usize {
        Self::frame_offset(side, frame) + MAC_OFFSET
    }

    fn header(&self, side: RingSide, frame: usize) -> *mut Tpacket2Hdr {
        self.at(Self::frame_offset(side, frame)).cast()
    }

    fn status(&self, side: RingSide, frame: usize) -> &AtomicU32 {
        // SAFETY: every frame starts with a 4-aligned `tp_status` word inside the mapping,
        // which lives as long as `self`; the kernel and we only access it atomically.
        unsafe { AtomicU32::from_ptr(self.header(side, frame).cast()) }
    }

    /// Gives receive frame `frame` back to the kernel.
    pub(crate) fn release_rx(&self, frame: usize) {
        // Release: our reads of the frame happen before the kernel may refill it.
        self.status(RingSide::Rx, frame)
            .store(TP_STATUS_KERNEL, Ordering::Release);
    }
}

/// An `AF_PACKET` socket with `PACKET_MMAP` rings (`TPACKET_V2`).
///
/// What it guarantees, beyond [`Link`]:
///
/// * **No receive system call under load.** The kernel copies each arriving frame into the next
///   free receive frame (in the softirq that delivers it); [`Link::recv`] takes every frame
///   already marked ready and calls `poll(2)` only when there is none.
/// * **No copy of a received frame in user space.** Ready frames are lent to the caller's
///   [`FrameBufs`] (see [its docs](super::FrameBufs)); they go back to the kernel when the same
///   `FrameBufs` receives again or is dropped. `PACKET_RESERVE` places frame octet 36 (where
///   AoE data starts) on a 4096-aligned address, so `pwrite` from a lent slot works with
///   `O_DIRECT`; a frame that would not be aligned or would not fit the slots is copied instead.
/// * **Replies built in the transmit ring.** [`Link::prepare_send`] lends the next free
///   transmit frames to the caller's slots (octet 36 again 4096-aligned, through
///   `PACKET_TX_HAS_OFF`), so a READ's `pread` lands in the frame the kernel sends, and one
///   `send(2)` hands the whole batch to the kernel. The kernel copies each frame into its
///   packet once (cheapest on veth, measured); with [`set_linear_max`](Self::set_linear_max)
///   long frames go out as references to the ring page instead (zero-copy on drivers that
///   send from the page). Frames from anywhere else are copied into the ring; frames of
///   length 0 are skipped.
/// * Frames sent by this host and frames for other hosts' MACs are never returned, as with
///   [`PacketLink`](super::PacketLink).
///
/// Used by the target ([`open_target`](super::open_target)); the plain socket backend stays the
/// fallback where rings cannot be set up. Each ring has [`RING_FRAMES`] frames of
/// [`RING_FRAME_SIZE`] octets (8 MiB per link).
pub struct RingLink {
    fd: OwnedFd,
    name: String,
    mac: Mac,
    map: Arc<RingMap>,
    /// Next receive frame the kernel fills (in ring order).
    rx_head: usize,
    /// Next transmit frame to queue (in ring order; the kernel sends in the same order).
    tx_head: usize,
    /// How many frames from `tx_head` on were seen free (only we make a free frame busy).
    tx_known_free: usize,
    /// With `AOE_TX_RING=0`: a second, send-only socket that sends every frame with
    /// `sendmmsg` instead of the transmit ring (for comparison).
    sender: Option<PacketLink>,
    /// Frames copied into the transmit ring (not built in place) so far.
    tx_copies: u64,
    /// Received frames copied into a slot (not lent) so far.
    rx_copies: u64,
    /// Frames up to this long are copied whole into the kernel's packet (see `LINEAR_MAX`).
    linear_max: usize,
}

impl std::fmt::Debug for RingLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RingLink")
            .field("fd", &self.fd)
            .field("name", &self.name)
            .field("mac", &self.mac)
            .finish_non_exhaustive()
    }
}

fn set_option<T>(fd: &OwnedFd, option: libc::c_int, value: &T) -> bool {
    packet::set_option(fd, libc::SOL_PACKET, option, value)
}

impl RingLink {
    /// Opens a raw socket on `interface` for EtherType 0x88A2 with `TPACKET_V2` receive and
    /// transmit rings of [`RING_FRAMES`] frames each.
    ///
    /// # Errors
    /// As [`PacketLink::open`](super::PacketLink::open), or [`NetError::Io`] when the kernel
    /// refuses the rings (then the plain socket still works).
    pub fn open(interface: &str) -> Result<RingLink, NetError> {
        let bound = packet::open_bound(interface, true, |fd| {
            let int = |option, value: libc::c_int, what| {
                if set_option(fd, option, &value) {
                    Ok(())
                } else {
                    Err(NetError::last(interface, what))
                }
            };
            int(PACKET_VERSION, TPACKET_V2, "select TPACKET_V2")?;
            // A virtio header per frame lets us tell the kernel, frame by frame, how much to
            // copy into the packet instead of referencing the ring page (see `LINEAR_MAX`).
            int(PACKET_VNET_HDR, 1, "enable virtio headers")?;
            let reserve = libc::c_int::try_from(RX_RESERVE).unwrap_or(0);
            int(PACKET_RESERVE, reserve, "reserve ring frame headroom")?;
            int(PACKET_TX_HAS_OFF, 1, "place transmit data in ring frames")?;
            // A malformed transmit frame is dropped instead of stopping the ring.
            int(PACKET_LOSS, 1, "skip malformed transmit frames")?;
            let frames = u32::try_from(RING_FRAMES).unwrap_or(u32::MAX);
            let size = u32::try_from(RING_FRAME_SIZE).unwrap_or(u32::MAX);
            let request = TpacketReq {
                tp_block_size: size,
                tp_block_nr: frames,
                tp_frame_size: size,
                tp_frame_nr: frames,
            };
            for (option, what) in [
                (PACKET_RX_RING, "set up the receive ring"),
                (PACKET_TX_RING, "set up the transmit ring"),
            ] {
                if !set_option(fd, option, &request) {
                    return Err(NetError::last(interface, what));
                }
            }
            Ok(())
        })?;
        let sender = if std::env::var_os("AOE_TX_RING").is_some_and(|v| v == "0") {
            Some(PacketLink::open_sender(interface)?)
        } else {
            None
        };
        let len = 2 * RING_FRAMES * RING_FRAME_SIZE;
        // SAFETY: maps the socket's rings (set up above) shared, at an address the kernel picks;
        // the result is checked before use.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                bound.fd.as_raw_fd(),
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(NetError::last(interface, "map the packet rings"));
        }
        Ok(RingLink {
            fd: bound.fd,
            name: interface.to_owned(),
            mac: bound.mac,
            map: Arc::new(RingMap {
                base: base.cast(),
                len,
                tx_generation: AtomicU64::new(0),
            }),
            rx_head: 0,
            tx_head: 0,
            tx_known_free: 0,
            sender,
            tx_copies: 0,
            rx_copies: 0,
            linear_max: std::env::var("AOE_TX_LINEAR_MAX")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(LINEAR_MAX),
        })
    }

    /// How many frames [`Link::send`] and [`Link::send_frame`] copied into the transmit ring
    /// (the rest were built in frames lent by [`Link::prepare_send`]).
    pub fn transmit_copies(&self) -> u64 {
        self.tx_copies
    }

    /// Sends frames longer than `octets` by reference to their ring page instead of copying
    /// them into the kernel's packet (default: copy all; see the `AOE_TX_LINEAR_MAX`
    /// environment variable in [`open_target`](super::open_target)).
    pub fn set_linear_max(&mut self, octets: usize) {
        self.linear_max = octets;
    }

    /// How many received frames [`Link::recv`] copied into the caller's slots (the rest were
    /// lent), e.g. because the slots were too large to lend.
    pub fn receive_copies(&self) -> u64 {
        self.rx_copies
    }

    /// Takes ready receive frames into slots `0..` of `bufs`; returns how many.
    fn take_ready(&mut self, bufs: &mut FrameBufs) -> usize {
        let map = Arc::clone(&self.map);
        let lendable =
            bufs.capacity() <= LENDABLE && RING_DATA_ALIGN.is_multiple_of(bufs.data_align());
        let mut taken = 0;
        while taken < bufs.count() {
            let frame = self.rx_head;
            // Acquire: the kernel's writes of the frame are visible once we see USER.
            if map.status(RingSide::Rx, frame).load(Ordering::Acquire) & TP_STATUS_USER == 0 {
                break;
            }
            let header = map.header(RingSide::Rx, frame);
            // SAFETY: the frame is ours (status USER); its header and `sockaddr_ll` lie at the
            // start of the frame, inside the mapping.
            let (len, snaplen, mac, kind) = unsafe {
                (
                    (*header).tp_len,
                    (*header).tp_snaplen,
                    usize::from((*header).tp_mac),
                    *header.cast::<u8>().add(PKTTYPE_OFFSET),
                )
            };
            let len = usize::try_from(len).unwrap_or(usize::MAX);
            let foreign = kind == packet::PACKET_OUTGOING || kind == packet::PACKET_OTHERHOST;
            let usable = !foreign && snaplen as usize == len && len <= bufs.capacity();
            self.rx_head = (frame + 1) % RING_FRAMES;
            let start = RingMap::frame_offset(RingSide::Rx, frame) + mac;
            if usable && lendable && mac == MAC_OFFSET {
                bufs.lend_rx(&map, taken, frame);
                bufs.set_len(taken, len);
            } else {
                if usable && mac + len <= RING_FRAME_SIZE {
                    // SAFETY: `len` octets at `start` lie in this frame (checked), which is ours.
                    let data = unsafe { std::slice::from_raw_parts(map.at(start), len) };
                    bufs.slot_mut(taken)[..len].copy_from_slice(data);
                    bufs.set_len(taken, len);
                    self.rx_copies += 1;
                } else {
                    bufs.set_len(taken, 0);
                }
                map.release_rx(frame);
            }
            taken += 1;
        }
        taken
    }

    /// Sleeps in poll(2) until the receive ring has a frame (true), the timeout passes or a
    /// signal comes (false), or the socket reports an error (interface down or gone).
    fn wait_ready(&mut self, timeout: Option<Duration>) -> Result<bool, NetError> {
        let events = packet::poll_in(self.fd.as_raw_fd(), timeout)
            .map_err(|error| NetError::os(&self.name, "wait for frames", error))?;
        if events & libc::POLLERR != 0
            && let Some(error) = packet::socket_error(&self.fd, &self.name)
        {
            return Err(error);
        }
        Ok(events != 0)
    }

    /// Asks the kernel to send every queued transmit frame, retrying while its queue is full,
    /// until transmit frame `last` is no longer waiting.
    fn kick(&mut self, last: usize) -> Result<(), NetError> {
        let started = Instant::now();
        loop {
            // SAFETY: a send(2) with no buffer: the kernel takes the data from the ring.
            let rc =
                unsafe { libc::send(self.fd.as_raw_fd(), std::ptr::null(), 0, libc::MSG_DONTWAIT) };
            if rc < 0 {
                let error = io::Error::last_os_error();
                if !packet::is_queue_full(&error) {
                    return Err(NetError::os(&self.name, "send frames", error));
                }
            }
            let status = self.map.status(RingSide::Tx, last).load(Ordering::Acquire);
            if status != TP_STATUS_SEND_REQUEST {
                return Ok(());
            }
            if started.elapsed() > SEND_RETRY_LIMIT {
                log::warn!(
                    "{}: device queue full for {SEND_RETRY_LIMIT:?}; frames wait for the next send",
                    self.name
                );
                return Ok(());
            }
            std::thread::sleep(Duration::from_micros(50));
        }
    }

    /// Waits (kicking the kernel) until transmit frame `frame` is free; false after the limit.
    fn wait_tx_free(&mut self, frame: usize) -> bool {
        let started = Instant::now();
        loop {
            let status = self.map.status(RingSide::Tx, frame).load(Ordering::Acquire);
            if status == TP_STATUS_AVAILABLE {
                return true;
            }
            if status == TP_STATUS_SEND_REQUEST && self.kick(frame).is_err() {
                return false;
            }
            if started.elapsed() > SEND_RETRY_LIMIT {
                return false;
            }
            std::thread::sleep(Duration::from_micros(50));
        }
    }

    /// Fills in the header of transmit frame `frame` (the one at `tx_head`) for `len` octets
    /// at `MAC_OFFSET`, queues it and moves `tx_head` on.
    fn queue(&mut self, frame: usize, len: usize) {
        let header = self.map.header(RingSide::Tx, frame);
        // Short frames are copied whole into the packet; longer ones only their Ethernet
        // header, the rest travels as references to the ring page.
        let linear = if len <= self.linear_max { len } else { 14 };
        let vnet = RingMap::frame_offset(RingSide::Tx, frame) + MAC_OFFSET - VNET_HDR_LEN;
        // SAFETY: the frame is ours (AVAILABLE) until its status says SEND_REQUEST below; the
        // header lies at its start and the virtio header right before the frame's octet 0,
        // both inside it (MAC_OFFSET > 32 + VNET_HDR_LEN). `len` is at most the slot capacity.
        unsafe {
            (*header).tp_len = u32::try_from(len + VNET_HDR_LEN).unwrap_or(0);
            (*header).tp_snaplen = u32::try_from(len + VNET_HDR_LEN).unwrap_or(0);
            (*header).tp_mac = u16::try_from(MAC_OFFSET - VNET_HDR_LEN).unwrap_or(0);
            (*header).tp_net = u16::try_from(MAC_OFFSET + 14).unwrap_or(0);
            // virtio_net_hdr: flags 0, gso_type NONE, hdr_len, gso_size, csum_start,
            // csum_offset (little-endian u16 each).
            let mut bytes = [0u8; VNET_HDR_LEN];
            bytes[2..4].copy_from_slice(&u16::try_from(linear).unwrap_or(14).to_le_bytes());
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.map.at(vnet), VNET_HDR_LEN);
        }
        // Release: the frame's octets are written before the kernel may read them.
        self.map
            .status(RingSide::Tx, frame)
            .store(TP_STATUS_SEND_REQUEST, Ordering::Release);
        self.tx_head = (frame + 1) % RING_FRAMES;
        self.tx_known_free = self.tx_known_free.saturating_sub(1);
    }

    /// Copies `frame` into the next transmit frame and queues it; false if none came free.
    fn queue_copy(&mut self, source: *const u8, len: usize) -> bool {
        let frame = self.tx_head;
        if len > LENDABLE || !self.wait_tx_free(frame) {
            return false;
        }
        let start = RingMap::frame_offset(RingSide::Tx, frame) + MAC_OFFSET;
        // SAFETY: the destination is `len` octets of a free transmit frame (checked above);
        // the source is `len` readable octets the caller holds, possibly another ring frame,
        // possibly this very one (a lent slot), hence `copy` (overlap allowed).
        unsafe { std::ptr::copy(source, self.map.at(start), len) };
        self.tx_copies += 1;
        self.queue(frame, len);
        true
    }
}

impl Link for RingLink {
    fn name(&self) -> &str {
        &self.name
    }

    fn mac(&self) -> Mac {
        self.mac
    }

    fn mtu(&self) -> Result<usize, NetError> {
        super::ifreq::mtu(&self.fd, &self.name)
    }

    fn recv(&mut self, bufs: &mut FrameBufs, timeout: Option<Duration>) -> Result<usize, NetError> {
        // The frames this FrameBufs held from the last batch go back to the kernel.
        bufs.unlend();
        let taken = self.take_ready(bufs);
        if taken == 0 && timeout != Some(Duration::ZERO) {
            if !self.wait_ready(timeout)? {
                return Ok(0);
            }
            return Ok(self.take_ready(bufs));
        }
        Ok(taken)
    }

    fn prepare_send(&mut self, bufs: &mut FrameBufs) {
        if self.sender.is_some() {
            return;
        }
        let count = bufs.count();
        if count > RING_FRAMES / 2 || bufs.capacity() > LENDABLE {
            return;
        }
        while self.tx_known_free < count {
            let status = self
                .map
                .status(RingSide::Tx, self.tx_head + self.tx_known_free);
            // Acquire: the kernel is done reading a frame it marked free.
            if status.load(Ordering::Acquire) != TP_STATUS_AVAILABLE {
                // Send will copy into frames as they come free.
                return;
            }
            self.tx_known_free += 1;
        }
        let generation = self.map.tx_generation.fetch_add(1, Ordering::Relaxed) + 1;
        bufs.lend_tx(&self.map, self.tx_head, generation);
    }

    fn send(&mut self, bufs: &FrameBufs, count: usize) -> Result<usize, NetError> {
        if let Some(sender) = &mut self.sender {
            return sender.send(bufs, count);
        }
        let count = count.min(bufs.count());
        let mut queued = 0;
        let mut last = None;
        for slot in 0..count {
            let len = bufs.len(slot);
            if len == 0 {
                continue;
            }
            let frame = self.tx_head;
            if bufs.lent_tx_frame(&self.map, slot) == Some(frame) {
                // Built in place: no copy.
                self.queue(frame, len);
            } else if !self.queue_copy(bufs.slot_ptr(slot), len) {
                log::warn!(
                    "{}: transmit ring full for {SEND_RETRY_LIMIT:?}; dropped {} frames",
                    self.name,
                    count - slot
                );
                break;
            }
            last = Some(frame);
            queued += 1;
        }
        // Every lent transmit frame is recalled: the slots must not change what is queued.
        self.map.tx_generation.fetch_add(1, Ordering::Relaxed);
        if let Some(last) = last {
            self.kick(last)?;
        }
        Ok(queued)
    }

    fn send_frame(&mut self, frame: &[u8]) -> Result<(), NetError> {
        if let Some(sender) = &mut self.sender {
            return sender.send_frame(frame);
        }
        self.map.tx_generation.fetch_add(1, Ordering::Relaxed);
        let slot = self.tx_head;
        if !self.queue_copy(frame.as_ptr(), frame.len()) {
            return Err(NetError::Io {
                interface: self.name.clone(),
                step: "send a frame",
                source: io::Error::from_raw_os_error(libc::ENOBUFS),
            });
        }
        self.kick(slot)
    }

    fn set_buffer_bytes(
        &mut self,
        rx_bytes: usize,
        tx_bytes: usize,
    ) -> Result<(usize, usize), NetError> {
        // Received frames wait in the ring, not the socket buffer; the send buffer still bounds
        // the packets in flight.
        packet::set_buffer_bytes(&self.fd, &self.name, rx_bytes, tx_bytes)
    }

    fn take_drops(&mut self) -> u64 {
        packet::take_drops(&self.fd)
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn received_and_sent_data_land_on_aligned_addresses() {
        // tpacket_rcv: netoff = align16(tp_hdrlen + max(maclen, 16)) + reserve; macoff = netoff − 14.
        let macoff = (TPACKET2_HDRLEN + 16).next_multiple_of(16) + RX_RESERVE + VNET_HDR_LEN - 14;
        assert_eq!(macoff, MAC_OFFSET);
        assert_eq!((MAC_OFFSET + DATA_OFFSET) % RING_DATA_ALIGN, 0);
    }
}
