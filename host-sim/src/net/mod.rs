//! Raw Ethernet frames on Linux: the layer under the host-sim target and the `aoe` initiator.
//!
//! A [`Link`] moves whole Ethernet frames (destination MAC first, no FCS) of EtherType 0x88A2
//! (AoE) in and out of one interface, in batches. Two backends implement it:
//!
//! * [`PacketLink`]: an `AF_PACKET`/`SOCK_RAW` socket bound to an existing interface by name
//!   (needs `CAP_NET_RAW`). It receives only EtherType 0x88A2, never the frames this host sends
//!   (`PACKET_IGNORE_OUTGOING`, with a per-frame check as a fallback on older kernels), and
//!   never frames the NIC accepted only because it is promiscuous (`PACKET_OTHERHOST`).
//! * [`TapLink`]: a TAP device (through the `tun-tap` crate). The program is the far end of the
//!   virtual cable, so it has a MAC of its own, distinct from the kernel interface's MAC.
//!
//! Both are opened through [`open`] with a [`LinkSpec`].
//!
//! # Buffers
//!
//! Frames live in a [`FrameBufs`]: `count` slots of equal capacity in one allocation, laid out so
//! that octet 36 of every frame (where AoE sector data starts) is aligned to a chosen power of
//! two (4096 by default). So a READ can `pread` straight into a reply slot and a WRITE can
//! `pwrite` straight from a request slot, even with `O_DIRECT`, and no sector data is ever
//! copied in user space. The slots are allocated once; receiving and sending allocate nothing.
//!
//! # Batches
//!
//! [`Link::recv`] fills slots `0..n` of a [`FrameBufs`], waiting at most the given timeout for
//! the first frame, then taking whatever else is already queued, and [`Link::send`] sends slots
//! `0..n`. Two ways:
//!
//! * [`RingLink`] (what the target uses, through [`open_target`]) maps `PACKET_MMAP` receive
//!   and transmit rings: the kernel writes arriving frames into the receive ring as they come,
//!   `recv` lends the ready ring frames to the slots (no system call while frames wait, no copy
//!   in user space), and [`Link::prepare_send`] lends free transmit frames, so replies are
//!   built, and READ data read from disk, where the kernel sends them from; one `send(2)` hands
//!   a batch to the kernel. Frame octet 36 of a lent frame is 4096-aligned too, so `O_DIRECT`
//!   still needs no bounce buffer.
//! * [`PacketLink`] (what [`open`] and [`open_queued`] give, and the target's fallback when
//!   the kernel refuses the mapped rings or `AOE_PACKET_RINGS=0`) receives the frames queued
//!   on the socket with one `recvmmsg(2)` per batch, straight into the slots, and sends with
//!   one `sendmmsg(2)` per batch.
//!
//! A slot whose length is 0 after [`Link::recv`] held a frame that the link filtered out (too
//! long for the slot, or sent by this host); skip it. [`Link::send`] skips slots of length 0.
//!
//! # Example (the initiator's view)
//!
//! ```no_run
//! use aoe_host_sim::net::{self, FrameBufs, LinkSpec};
//! use std::time::Duration;
//!
//! let mut link = net::open(&LinkSpec::packet("veth0"))?;
//! let mtu = link.mtu()?;
//! let mut tx = FrameBufs::new(1, mtu + 14);
//! let frame = tx.slot_mut(0);
//! frame[..6].fill(0xff); // broadcast
//! frame[6..12].copy_from_slice(&link.mac());
//! frame[12..14].copy_from_slice(&0x88a2u16.to_be_bytes());
//! frame[14..20].copy_from_slice(&[0x10, 0, 0xff, 0xff, 0xff, 1]); // Query Config to all
//! tx.set_len(0, 60);
//! link.send(&tx, 1)?;
//!
//! let mut rx = FrameBufs::new(64, link.max_frame_len()?);
//! let n = link.recv(&mut rx, Some(Duration::from_millis(500)))?;
//! for i in 0..n {
//!     println!("{} octets", rx.frame(i).len());
//! }
//! # Ok::<(), net::NetError>(())
//! ```

mod bufs;
mod error;
mod ifreq;
mod mmap_ring;
mod packet;
mod tap;

pub use bufs::{DEFAULT_DATA_ALIGN, FrameBufs};
pub use error::NetError;
pub use mmap_ring::{RING_DATA_ALIGN, RING_FRAME_SIZE, RING_FRAMES, RingLink};
pub use packet::PacketLink;
pub use tap::TapLink;

use std::time::Duration;

/// EtherType of ATA over Ethernet.
pub const ETHERTYPE_AOE: u16 = 0x88A2;

/// Octets of the Ethernet header (two MACs and the EtherType) in front of the MTU's payload.
pub const ETHERNET_HEADER_LEN: usize = 14;

/// A MAC address.
pub type Mac = [u8; 6];

/// A bidirectional Ethernet link for AoE frames; see the [module docs](self).
pub trait Link: Send {
    /// The interface name (for logs and errors).
    fn name(&self) -> &str;

    /// The MAC address replies come from and requests are addressed to.
    fn mac(&self) -> Mac;

    /// The interface's current MTU (Ethernet payload octets), read from the kernel on every
    /// call, so a changed MTU is seen at once.
    ///
    /// # Errors
    /// When the interface vanished or the ioctl fails.
    fn mtu(&self) -> Result<usize, NetError>;

    /// The longest frame the interface currently carries: MTU plus the Ethernet header.
    ///
    /// # Errors
    /// As [`mtu`](Self::mtu).
    fn max_frame_len(&self) -> Result<usize, NetError> {
        Ok(self.mtu()? + ETHERNET_HEADER_LEN)
    }

    /// Receives up to `bufs.count()` frames into slots `0..n` and returns `n`.
    ///
    /// Waits at most `timeout` (forever with `None`) for the first frame, then takes only what
    /// is already queued. Returns `Ok(0)` on timeout or when interrupted by a signal, so a loop
    /// can check for shutdown. Slots with length 0 hold filtered frames.
    ///
    /// # Errors
    /// When the socket fails (interface removed, ...).
    fn recv(&mut self, bufs: &mut FrameBufs, timeout: Option<Duration>) -> Result<usize, NetError>;

    /// Sends slots `0..count` of `bufs` (skipping those of length 0), blocking until the kernel
    /// took all of them, and returns how many were sent.
    ///
    /// # Errors
    /// When the kernel refuses a frame for a reason other than a momentarily full queue.
    fn send(&mut self, bufs: &FrameBufs, count: usize) -> Result<usize, NetError>;

    /// Readies slots of `bufs` for building the frames of the next [`send`](Self::send).
    ///
    /// A ring-backed link lends its free transmit frames to the slots, so frames are built
    /// (and READ data is read from disk) where the kernel sends them from, with no copy. The
    /// lend lasts until the next `send` or `send_frame` on this link; after it the slots show
    /// their own memory again, so call this before building each batch. Other links need
    /// nothing (the default does nothing); frames built without it are copied as usual.
    fn prepare_send(&mut self, bufs: &mut FrameBufs) {
        let _ = bufs;
    }

    /// Sends one frame from any buffer (announcements, tools). Slower than [`send`](Self::send)
    /// for many frames.
    ///
    /// # Errors
    /// As [`send`](Self::send).
    fn send_frame(&mut self, frame: &[u8]) -> Result<(), NetError>;

    /// Asks the kernel to queue at least `rx_bytes` of received and `tx_bytes` of outgoing frames
    /// for this link, beyond the system's default limits where privileges allow, and returns
    /// what the kernel granted (`rx`, `tx`). See [`buffer_bytes_for`].
    ///
    /// # Errors
    /// When the kernel refuses both the privileged and the ordinary setting.
    fn set_buffer_bytes(
        &mut self,
        rx_bytes: usize,
        tx_bytes: usize,
    ) -> Result<(usize, usize), NetError>;

    /// Received frames the kernel dropped (receive buffer full) since the last call; 0 where
    /// the backend cannot tell.
    fn take_drops(&mut self) -> u64 {
        0
    }
}

/// Which link to open.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LinkSpec {
    /// An `AF_PACKET` socket on an existing, up interface.
    Packet {
        /// Interface name, e.g. `eth1`.
        interface: String,
    },
    /// A TAP device, created if it does not exist (needs `CAP_NET_ADMIN`) or attached to if it
    /// is a persistent TAP device (`ip tuntap add NAME mode tap`).
    Tap {
        /// TAP device name.
        interface: String,
        /// Our own MAC on the virtual cable; `None` derives one from the kernel side's MAC
        /// (see [`TapLink::open`]).
        mac: Option<Mac>,
    },
}

impl LinkSpec {
    /// An `AF_PACKET` link on `interface`.
    pub fn packet(interface: &str) -> LinkSpec {
        LinkSpec::Packet {
            interface: interface.to_owned(),
        }
    }

    /// A TAP link on device `interface`, with a derived MAC.
    pub fn tap(interface: &str) -> LinkSpec {
        LinkSpec::Tap {
            interface: interface.to_owned(),
            mac: None,
        }
    }

    /// The interface name.
    pub fn interface(&self) -> &str {
        match self {
            LinkSpec::Packet { interface } | LinkSpec::Tap { interface, .. } => interface,
        }
    }
}

/// Opens the link `spec` describes.
///
/// # Errors
/// [`NetError::NoSuchInterface`], [`NetError::InterfaceDown`], [`NetError::NoPermission`], or
/// another [`NetError`] with the failing step named.
pub fn open(spec: &LinkSpec) -> Result<Box<dyn Link>, NetError> {
    Ok(match spec {
        LinkSpec::Packet { interface } => Box::new(PacketLink::open(interface)?),
        LinkSpec::Tap { interface, mac } => Box::new(TapLink::open(interface, *mac)?),
    })
}

/// Opens the link `spec` describes for a target: an `AF_PACKET` interface gets a
/// [`RingLink`] (`PACKET_MMAP` rings: no receive call while frames wait, no copy in user
/// space), falling back to [`PacketLink`] when the kernel refuses the rings or when the
/// environment variable `AOE_PACKET_RINGS=0` asks for the plain socket. TAP devices as in
/// [`open`].
///
/// Two more environment variables exist for measurements: `AOE_TX_RING=0` sends with
/// `sendmmsg` (on a second, send-only socket) instead of the transmit ring, and
/// `AOE_TX_LINEAR_MAX=N` sends frames longer than `N` octets by page reference
/// ([`RingLink::set_linear_max`]).
///
/// # Errors
/// As [`open`].
pub fn open_target(spec: &LinkSpec) -> Result<Box<dyn Link>, NetError> {
    let LinkSpec::Packet { interface } = spec else {
        return open(spec);
    };
    if std::env::var_os("AOE_PACKET_RINGS").is_some_and(|value| value == "0") {
        return open(spec);
    }
    match RingLink::open(interface) {
        Ok(link) => Ok(Box::new(link)),
        Err(error @ NetError::Io { .. }) => {
            log::info!("{error}; using a plain packet socket");
            open(spec)
        }
        Err(error) => Err(error),
    }
}

/// The link for the `aoe` initiator: as [`open`], and guaranteed to receive from the socket
/// queue (`recvmmsg`), never through a receive ring. On a veth pair the kernel delivers a frame
/// into the receiver's ring in the *sender's* context, so a ring at the initiator would make
/// the target pay (in its measured CPU time) for the initiator's copy; with the socket queue
/// that copy happens in the initiator's own `recvmmsg`.
///
/// # Errors
/// As [`open`].
pub fn open_queued(spec: &LinkSpec) -> Result<Box<dyn Link>, NetError> {
    open(spec)
}

/// Socket buffer octets that hold `frames` frames of an interface with MTU `mtu` without a drop.
///
/// The kernel charges each queued frame its buffer's true size, not its length: the payload
/// rounded up to a power of two plus the `sk_buff` overhead. We assume twice the rounded frame,
/// plus 1 KiB, which covers drivers that allocate full pages.
pub fn buffer_bytes_for(frames: usize, mtu: usize) -> usize {
    let frame = (mtu + ETHERNET_HEADER_LEN).next_power_of_two();
    frames.saturating_mul(2 * frame + 1024)
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn buffer_bytes_cover_the_true_size_of_frames() {
        // 64 standard frames: each at least 2 KiB of skb data plus overhead.
        assert!(buffer_bytes_for(64, 1500) >= 64 * 2048 + 64 * 512);
        // Jumbo frames round up to 16 KiB of data each.
        assert!(buffer_bytes_for(16, 9000) >= 16 * 16384);
        assert_eq!(buffer_bytes_for(usize::MAX, 1500), usize::MAX);
    }

    #[test]
    fn spec_names_its_interface() {
        assert_eq!(LinkSpec::packet("veth7").interface(), "veth7");
        assert_eq!(LinkSpec::tap("tap3").interface(), "tap3");
    }
}
