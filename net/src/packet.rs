//! The `AF_PACKET` backend: a raw socket bound to one interface for EtherType 0x88A2, receiving
//! with `recvmmsg(2)` straight into pool frames and sending with `sendmmsg(2)`, one call per
//! batch.
//!
//! It also holds the socket plumbing the ring backend ([`super::RingLink`]) shares: opening and
//! binding the socket, socket options, waiting in `poll(2)`, `SO_ERROR`, drop counts, buffer
//! sizes, and [`Socket::send`], with which both send.

use super::frame::{Arena, Frame};
use super::ifreq;
use super::sys::{get_int_option, set_int_option, set_option, socklen_of};
use super::tx_ring::{self, TxRing};
use super::{ETHERTYPE_AOE, EthernetAddress, Link, NetError};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

/// `setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING)` (Linux 4.20): do not show this socket the
/// frames the host itself sends. Not in every `libc` release, so spelled out here.
const PACKET_IGNORE_OUTGOING: libc::c_int = 23;
/// `sll_pkttype` of a frame the host sent (seen when `PACKET_IGNORE_OUTGOING` is unavailable).
pub(super) const PACKET_OUTGOING: u8 = 4;
/// `sll_pkttype` of a frame for another host's unicast MAC (promiscuous mode).
pub(super) const PACKET_OTHERHOST: u8 = 3;
/// `SO_RCVBUFFORCE`/`SO_SNDBUFFORCE`: set buffer sizes above `net.core.[rw]mem_max`; needs
/// `CAP_NET_ADMIN`. Same value on every architecture that uses the generic socket numbers.
const SO_RCVBUFFORCE: libc::c_int = 33;
const SO_SNDBUFFORCE: libc::c_int = 32;
/// `AF_PACKET` (17) as the `sa_family_t` of a socket address.
const AF_PACKET_FAMILY: libc::sa_family_t = 17;
const _: () = assert!(AF_PACKET_FAMILY as libc::c_int == libc::AF_PACKET);

/// `setsockopt(SOL_PACKET, PACKET_FANOUT)`: join a fan-out group (Linux 3.1).
const PACKET_FANOUT: libc::c_int = 18;
/// `setsockopt(SOL_PACKET, PACKET_FANOUT_DATA)`: the group's steering program (Linux 4.3).
const PACKET_FANOUT_DATA: libc::c_int = 22;
/// Fan-out mode: a classic BPF program picks the member.
const PACKET_FANOUT_CBPF: u32 = 6;
/// Fan-out flag: the kernel picks a group id no one uses (Linux 4.20).
const PACKET_FANOUT_FLAG_UNIQUEID: u32 = 0x2000;

/// How long [`Link::send`] keeps retrying while the device queue is full before it drops frames.
const SEND_RETRY_LIMIT: Duration = Duration::from_millis(200);

/// Frames taken per `recvmmsg(2)`.
const RECV_BATCH: usize = 64;

/// A bound packet socket and the scratch its batch calls need; shared by both socket backends.
pub(super) struct Socket {
    pub(super) fd: OwnedFd,
    pub(super) name: String,
    pub(super) mac: EthernetAddress,
    ignores_outgoing: bool,
    /// The `SO_RCVTIMEO` last set, to skip redundant setsockopt calls.
    receive_timeout: Option<Duration>,
    // Scratch for recvmmsg/sendmmsg, sized on first use and reused so that no call allocates.
    // The raw pointers in them are written at the start of each call and not used after it.
    msgs: Vec<libc::mmsghdr>,
    iovs: Vec<libc::iovec>,
    addrs: Vec<libc::sockaddr_ll>,
    /// How frames leave ([`Socket::with_transmit_ring`]).
    sender: Sender,
}

/// How a [`Socket`] sends.
enum Sender {
    /// `sendmmsg(2)` on the socket itself.
    Plain,
    /// A transmit ring on a send-only socket ([`tx_ring`]); frames the ring has no free slot
    /// for go out as with `Plain`.
    Ring(OwnedFd, TxRing),
}

// SAFETY: the only non-Send fields are the raw pointers inside the scratch vectors. They are
// rewritten at the start of every recv/send call from frames held for that call and never
// dereferenced outside it, so moving the socket to another thread cannot leave one dangling.
unsafe impl Send for Socket {}

impl std::fmt::Debug for Socket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Socket")
            .field("fd", &self.fd)
            .field("name", &self.name)
            .field("mac", &self.mac)
            .field("ignores_outgoing", &self.ignores_outgoing)
            .finish_non_exhaustive()
    }
}

/// An `AF_PACKET`/`SOCK_RAW` socket bound to one interface, receiving into pool frames; see the
/// [crate docs](crate).
#[derive(Debug)]
pub struct PacketLink {
    socket: Socket,
    pool: Arc<Arena>,
    /// Frames a receive call fills; kept between calls so that receiving allocates nothing.
    staging: Vec<Frame>,
    pool_empty_warned: bool,
}

/// Waits until `fd` is readable or `timeout` passes; false on timeout or signal.
pub(crate) fn wait_readable(fd: libc::c_int, timeout: Option<Duration>) -> io::Result<bool> {
    Ok(poll_in(fd, timeout)? != 0)
}

/// Waits in `poll(2)` until `fd` is readable (or reports an error) or `timeout` passes, and
/// returns the events seen (`POLLIN`, `POLLERR`, ...): 0 on timeout or signal.
pub(super) fn poll_in(fd: libc::c_int, timeout: Option<Duration>) -> io::Result<libc::c_short> {
    let millis = match timeout {
        None => -1,
        // Round up so that a 0.5 ms timeout waits instead of spinning.
        Some(t) => i32::try_from(t.as_micros().div_ceil(1000)).unwrap_or(i32::MAX),
    };
    let mut poll_fd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, count 1.
    let rc = unsafe { libc::poll(&mut poll_fd, 1, millis) };
    if rc < 0 {
        let error = io::Error::last_os_error();
        return if error.kind() == io::ErrorKind::Interrupted {
            Ok(0)
        } else {
            Err(error)
        };
    }
    Ok(if rc > 0 { poll_fd.revents } else { 0 })
}

/// The error pending on socket `fd` (interface down or gone), if any, as the error of a
/// receive on `name`; reading it (`SO_ERROR`) clears it.
pub(super) fn socket_error(fd: &OwnedFd, name: &str) -> Option<NetError> {
    match get_int_option(fd, libc::SOL_SOCKET, libc::SO_ERROR) {
        Some(code) if code != 0 => Some(NetError::os(
            name,
            "receive frames",
            io::Error::from_raw_os_error(code),
        )),
        _ => None,
    }
}

/// True for errors that mean "the device queue is full right now; try again shortly".
pub(super) fn is_queue_full(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::ENOBUFS | libc::EAGAIN | libc::EINTR)
    )
}

/// A packet socket bound to one interface for EtherType 0x88A2.
pub(super) struct Bound {
    pub(super) fd: OwnedFd,
    pub(super) mac: EthernetAddress,
    pub(super) ignores_outgoing: bool,
}

/// Checks `interface` (name valid, exists, up), opens a raw packet socket, lets `configure`
/// set options on it while it receives nothing yet (rings must be set up before frames
/// arrive), then binds it to `interface` for EtherType 0x88A2 (`receive`) or for sending only.
pub(super) fn open_bound(
    interface: &str,
    receive: bool,
    configure: impl FnOnce(&OwnedFd) -> Result<(), NetError>,
) -> Result<Bound, NetError> {
    let control = ifreq::control_socket(interface)?;
    let index = ifreq::index(&control, interface)?;
    if !ifreq::is_up(&control, interface)? {
        return Err(NetError::InterfaceDown(interface.to_owned()));
    }
    let protocol = if receive { ETHERTYPE_AOE.to_be() } else { 0 };
    // Protocol 0: the socket receives nothing until bind(2) names the EtherType and the
    // interface, so no frame of another interface slips in (or into a ring) before.
    // SAFETY: plain socket(2) call; the result is checked before use.
    let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        let error = io::Error::last_os_error();
        return Err(match error.raw_os_error() {
            Some(libc::EPERM | libc::EACCES) => NetError::NoPermission {
                interface: interface.to_owned(),
                what: "open a raw packet socket",
                capability: "CAP_NET_RAW",
            },
            _ => NetError::os(interface, "open a raw packet socket", error),
        });
    }
    // SAFETY: `raw` is a fresh descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };

    configure(&fd)?;

    // SAFETY: sockaddr_ll is a plain C struct; all-zero is valid before we fill it.
    let mut address: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    address.sll_family = AF_PACKET_FAMILY;
    address.sll_protocol = protocol;
    address.sll_ifindex = index;
    // SAFETY: `address` is a valid sockaddr_ll and its exact size is passed.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            std::ptr::from_ref(&address).cast(),
            socklen_of::<libc::sockaddr_ll>(),
        )
    };
    if rc < 0 {
        return Err(NetError::last(interface, "bind the packet socket"));
    }
    let ignores_outgoing = set_int_option(&fd, libc::SOL_PACKET, PACKET_IGNORE_OUTGOING, 1);
    let mac = ifreq::mac(&fd, interface)?;
    Ok(Bound {
        fd,
        mac,
        ignores_outgoing,
    })
}

/// Makes bound socket `fd` a member of a fan-out group that steers each source MAC to one
/// member ([`crate::cbpf::steer_by_source`]): a new group when `group` is `None` (the kernel
/// picks an id no other socket uses, and this socket sets the program), else group `group`.
/// Returns the group's id, for the other members.
pub(super) fn join_fanout(fd: &OwnedFd, name: &str, group: Option<u16>) -> Result<u16, NetError> {
    let value = match group {
        None => (PACKET_FANOUT_CBPF | PACKET_FANOUT_FLAG_UNIQUEID) << 16,
        Some(id) => PACKET_FANOUT_CBPF << 16 | u32::from(id),
    };
    if !set_option(fd, libc::SOL_PACKET, PACKET_FANOUT, &value) {
        return Err(NetError::last(name, "join the packet fan-out group"));
    }
    if let Some(id) = group {
        return Ok(id);
    }
    let joined = get_int_option(fd, libc::SOL_PACKET, PACKET_FANOUT)
        .ok_or_else(|| NetError::last(name, "read the packet fan-out group"))?;
    let program = crate::cbpf::steer_by_source();
    let fprog = libc::sock_fprog {
        len: u16::try_from(program.len()).unwrap_or(0),
        // The kernel only reads the program; `Insn` has `sock_filter`'s layout.
        filter: program.as_ptr().cast_mut().cast(),
    };
    if !set_option(fd, libc::SOL_PACKET, PACKET_FANOUT_DATA, &fprog) {
        return Err(NetError::last(name, "set the fan-out steering program"));
    }
    Ok(u16::try_from(joined & 0xFFFF).unwrap_or(0))
}

impl Socket {
    /// Wraps a bound socket; drops what it queued before it was bound.
    pub(super) fn new(bound: Bound, interface: &str) -> Socket {
        let mut socket = Socket {
            fd: bound.fd,
            name: interface.to_owned(),
            mac: bound.mac,
            ignores_outgoing: bound.ignores_outgoing,
            receive_timeout: None,
            msgs: Vec::new(),
            iovs: Vec::new(),
            addrs: Vec::new(),
            sender: Sender::Plain,
        };
        socket.discard_queued();
        socket
    }

    /// Sends through a transmit ring ([`tx_ring`]) on a second, send-only socket of the
    /// interface (bound to no EtherType, so it receives nothing), if the kernel allows one:
    /// the kernel copies each frame into one linear packet, where from this socket a frame
    /// longer than a page (a 4 KiB READ reply and up) is copied into page fragments it
    /// allocates one by one. Measured on this project's veth pair at MTU 9000, a 4 KiB READ
    /// costs the target about 20 % less CPU through the ring. If the kernel refuses the ring,
    /// sends stay on this socket.
    pub(super) fn with_transmit_ring(mut self) -> Socket {
        let ring = open_bound(&self.name, false, |fd| {
            if tx_ring::configure(fd) {
                Ok(())
            } else {
                Err(NetError::last(&self.name, "set up a transmit ring"))
            }
        })
        .and_then(|bound| TxRing::map(&bound.fd, &self.name).map(|ring| (bound.fd, ring)));
        match ring {
            Ok((fd, ring)) => self.sender = Sender::Ring(fd, ring),
            Err(error) => log::debug!("{error}; frames are sent from the receiving socket"),
        }
        self
    }

    /// True when frames leave through a transmit ring ([`Socket::with_transmit_ring`]).
    pub(super) fn has_transmit_ring(&self) -> bool {
        matches!(self.sender, Sender::Ring(..))
    }

    /// Copies frames into the transmit ring, from the first on, until one finds no free slot;
    /// has the kernel send them. Returns how many frames it took (empty ones included) and how
    /// many of those it queued; (0, 0) without a ring.
    fn send_through_ring(&mut self, frames: &[Frame]) -> Result<(usize, usize), NetError> {
        let Sender::Ring(fd, ring) = &mut self.sender else {
            return Ok((0, 0));
        };
        let mut taken = 0;
        let mut queued = 0;
        for frame in frames {
            if !frame.is_empty() {
                if !ring.queue(frame.as_slice()) {
                    break;
                }
                queued += 1;
            }
            taken += 1;
        }
        if queued == 0 {
            return Ok((taken, 0));
        }
        let mut full_since: Option<std::time::Instant> = None;
        loop {
            // SAFETY: send(2) with no buffer: the kernel takes the frames from the ring.
            let rc = unsafe { libc::send(fd.as_raw_fd(), std::ptr::null(), 0, libc::MSG_DONTWAIT) };
            if rc < 0 {
                let error = io::Error::last_os_error();
                if !is_queue_full(&error) {
                    return Err(NetError::os(&self.name, "send frames", error));
                }
            }
            if !ring.last_waiting() {
                return Ok((taken, queued));
            }
            // The device queue is full: the slots stay queued; try again shortly.
            let started = *full_since.get_or_insert_with(std::time::Instant::now);
            if started.elapsed() > SEND_RETRY_LIMIT {
                log::warn!(
                    "{}: device queue full for {SEND_RETRY_LIMIT:?}; frames wait in the \
                     transmit ring for the next send",
                    self.name
                );
                return Ok((taken, queued));
            }
            std::thread::sleep(Duration::from_micros(50));
        }
    }

    /// Drops what the socket queued between socket(2) and bind(2), when it still listened on
    /// every interface.
    fn discard_queued(&mut self) {
        let mut scratch = [0u8; 64];
        loop {
            // SAFETY: `scratch` is writable for its length; MSG_TRUNC makes oversized frames
            // harmless (they are cut, and we throw them away anyway).
            let rc = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    scratch.as_mut_ptr().cast(),
                    scratch.len(),
                    libc::MSG_DONTWAIT | libc::MSG_TRUNC,
                )
            };
            if rc < 0 {
                break;
            }
        }
    }

    /// Sizes the scratch arrays for `count` messages (allocates only when a batch grows).
    fn reserve_scratch(&mut self, count: usize) {
        if self.msgs.len() < count {
            // SAFETY: mmsghdr, iovec and sockaddr_ll are plain C structs of integers and raw
            // pointers; all-zero octets are valid values (null pointers, zero lengths).
            let (msg, iov, addr) =
                unsafe { (std::mem::zeroed(), std::mem::zeroed(), std::mem::zeroed()) };
            self.msgs.resize(count, msg);
            self.iovs.resize(count, iov);
            self.addrs.resize(count, addr);
        }
    }

    /// Sets `SO_RCVTIMEO` to `timeout` (0 = forever) unless it already is.
    fn set_receive_timeout(&mut self, timeout: Duration) -> Result<(), NetError> {
        if self.receive_timeout == Some(timeout) {
            return Ok(());
        }
        let value = libc::timeval {
            tv_sec: libc::time_t::try_from(timeout.as_secs()).unwrap_or(libc::time_t::MAX),
            tv_usec: libc::suseconds_t::from(timeout.subsec_micros()),
        };
        // SAFETY: `value` is a live timeval and its size is passed; setsockopt only reads it.
        let rc = unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                std::ptr::from_ref(&value).cast(),
                socklen_of::<libc::timeval>(),
            )
        };
        if rc < 0 {
            return Err(NetError::last(&self.name, "set the receive timeout"));
        }
        self.receive_timeout = Some(timeout);
        Ok(())
    }

    /// One recvmmsg into `frames` (each received into from octet 0 over its whole capacity):
    /// with `MSG_DONTWAIT`, or blocking (up to the socket's receive timeout) for the first
    /// frame only (`MSG_WAITFORONE`). Sets the length of each frame received (0 for one cut
    /// short or sent by this host) and returns how many messages came.
    fn recv_into(&mut self, frames: &mut [Frame], wait: bool) -> Result<usize, NetError> {
        let count = frames.len();
        self.reserve_scratch(count);
        for (index, frame) in frames.iter_mut().enumerate() {
            let capacity = frame.capacity();
            let (base, len) = frame.io_ptr_mut(0..capacity);
            self.iovs[index] = libc::iovec {
                iov_base: base.cast(),
                iov_len: len,
            };
            let header = &mut self.msgs[index].msg_hdr;
            header.msg_name = std::ptr::from_mut(&mut self.addrs[index]).cast();
            header.msg_namelen = socklen_of::<libc::sockaddr_ll>();
            header.msg_iov = &mut self.iovs[index];
            header.msg_iovlen = 1;
            header.msg_control = std::ptr::null_mut();
            header.msg_controllen = 0;
            header.msg_flags = 0;
            self.msgs[index].msg_len = 0;
        }
        let batch = libc::c_uint::try_from(count).unwrap_or(libc::c_uint::MAX);
        // SAFETY: msgs[0..count] point at iovs/addrs entries that live in `self`, and each iovec
        // covers the buffer of one frame of `frames`, which this call borrows mutably (frames
        // are exclusive and stable: see `frame`); the kernel writes at most iov_len octets per
        // message and at most msg_namelen octets of address.
        let rc = unsafe {
            libc::recvmmsg(
                self.fd.as_raw_fd(),
                self.msgs.as_mut_ptr(),
                batch,
                if wait {
                    libc::MSG_WAITFORONE
                } else {
                    libc::MSG_DONTWAIT
                },
                std::ptr::null_mut(),
            )
        };
        if rc < 0 {
            let error = io::Error::last_os_error();
            return match error.raw_os_error() {
                Some(libc::EAGAIN | libc::EINTR) => Ok(0),
                _ => Err(NetError::os(&self.name, "receive frames", error)),
            };
        }
        let received = usize::try_from(rc).unwrap_or(0);
        for (index, frame) in frames.iter_mut().enumerate().take(received) {
            let message = &self.msgs[index];
            let truncated = message.msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
            let kind = self.addrs[index].sll_pkttype;
            let foreign = kind == PACKET_OUTGOING || kind == PACKET_OTHERHOST;
            let len = if truncated || foreign {
                0
            } else {
                message.msg_len as usize
            };
            frame.set_len(len);
        }
        Ok(received)
    }

    /// Waits in `poll(2)` until frames are queued; false on timeout or signal.
    pub(super) fn wait(&mut self, timeout: Option<Duration>) -> Result<bool, NetError> {
        let events = poll_in(self.fd.as_raw_fd(), timeout)
            .map_err(|error| NetError::os(&self.name, "wait for frames", error))?;
        if events & libc::POLLERR != 0
            && let Some(error) = socket_error(&self.fd, &self.name)
        {
            return Err(error);
        }
        Ok(events & libc::POLLIN != 0)
    }

    /// Sends every frame of `frames` (skipping those of length 0): through the transmit ring
    /// while it has free slots, the rest with `sendmmsg`, one call per batch, retrying while
    /// the device queue is full; empties `frames` and returns how many went out.
    pub(super) fn send(&mut self, frames: &mut Vec<Frame>) -> Result<usize, NetError> {
        let (in_ring, queued) = match self.send_through_ring(frames) {
            Ok(counts) => counts,
            Err(error) => {
                frames.clear();
                return Err(error);
            }
        };
        let count = frames.len();
        self.reserve_scratch(count);
        let mut prepared = 0;
        for frame in frames[in_ring..].iter().filter(|frame| !frame.is_empty()) {
            let (base, len) = frame.io_ptr(0..frame.len());
            // The kernel only reads through this pointer (sendmmsg).
            self.iovs[prepared] = libc::iovec {
                iov_base: base.cast_mut().cast(),
                iov_len: len,
            };
            let header = &mut self.msgs[prepared].msg_hdr;
            header.msg_name = std::ptr::null_mut();
            header.msg_namelen = 0;
            header.msg_iov = &mut self.iovs[prepared];
            header.msg_iovlen = 1;
            header.msg_control = std::ptr::null_mut();
            header.msg_controllen = 0;
            header.msg_flags = 0;
            prepared += 1;
        }
        let sent = self.send_prepared(prepared);
        // The kernel copied what it sent; every frame goes back to its arena.
        frames.clear();
        Ok(queued + sent?)
    }

    /// sendmmsg of the prepared messages `0..count`, retrying while the queue is full. The
    /// caller keeps the frames the messages point into alive until this returns.
    fn send_prepared(&mut self, count: usize) -> Result<usize, NetError> {
        let mut sent = 0;
        let mut full_since: Option<std::time::Instant> = None;
        let fd = self.fd.as_raw_fd();
        while sent < count {
            let batch = libc::c_uint::try_from(count - sent).unwrap_or(libc::c_uint::MAX);
            let rc = if batch == 1 {
                // One frame: sendmsg(2) is cheaper than sendmmsg(2) (no array of results).
                // SAFETY: the message was prepared from a frame the caller holds for this call;
                // the kernel only reads it.
                let rc = unsafe { libc::sendmsg(fd, &self.msgs[sent].msg_hdr, 0) };
                if rc < 0 { -1 } else { 1 }
            } else {
                // SAFETY: msgs[sent..count] were prepared from frames the caller holds for this
                // call; the kernel only reads them.
                unsafe { libc::sendmmsg(fd, self.msgs[sent..].as_mut_ptr(), batch, 0) }
            };
            if rc > 0 {
                sent += usize::try_from(rc).unwrap_or(0);
                full_since = None;
                continue;
            }
            let error = io::Error::last_os_error();
            if !is_queue_full(&error) {
                return Err(NetError::os(&self.name, "send frames", error));
            }
            let started = *full_since.get_or_insert_with(std::time::Instant::now);
            if started.elapsed() > SEND_RETRY_LIMIT {
                log::warn!(
                    "{}: device queue full for {:?}; dropped {} frames",
                    self.name,
                    SEND_RETRY_LIMIT,
                    count - sent
                );
                break;
            }
            std::thread::sleep(Duration::from_micros(50));
        }
        Ok(sent)
    }
}

impl PacketLink {
    /// True when sends go through a transmit ring (the kernel allowed one), not `sendmmsg(2)`.
    pub fn has_transmit_ring(&self) -> bool {
        self.socket.has_transmit_ring()
    }

    /// Opens a raw socket on `interface` for EtherType 0x88A2, with a pool of `pool_frames`
    /// frames ([`DEFAULT_POOL_FRAMES`](super::DEFAULT_POOL_FRAMES) is a good size).
    ///
    /// Checks, in this order, so that the first message is the useful one: the name is valid,
    /// the interface exists, it is up, and the process may open a raw socket.
    ///
    /// # Errors
    /// [`NetError::BadInterfaceName`], [`NetError::NoSuchInterface`],
    /// [`NetError::InterfaceDown`], [`NetError::NoPermission`] (no `CAP_NET_RAW`), or
    /// [`NetError::Io`].
    pub fn open(interface: &str, pool_frames: usize) -> Result<PacketLink, NetError> {
        Self::open_with(interface, pool_frames, None).map(|(link, _)| link)
    }

    /// Opens like [`open`](Self::open), as a member of a fan-out group of sockets on the same
    /// interface that steers each initiator (source MAC) to one member: a new group for
    /// `None`, else group `Some(id)`. Returns the link and the group's id.
    ///
    /// # Errors
    /// As [`open`](Self::open), or [`NetError::Io`] when the kernel refuses the group.
    pub fn open_in_group(
        interface: &str,
        pool_frames: usize,
        group: Option<u16>,
    ) -> Result<(PacketLink, u16), NetError> {
        let (link, id) = Self::open_with(interface, pool_frames, Some(group))?;
        Ok((link, id.unwrap_or(0)))
    }

    fn open_with(
        interface: &str,
        pool_frames: usize,
        fanout: Option<Option<u16>>,
    ) -> Result<(PacketLink, Option<u16>), NetError> {
        let bound = open_bound(interface, true, |_| Ok(()))?;
        let group = fanout
            .map(|group| join_fanout(&bound.fd, interface, group))
            .transpose()?;
        let link = PacketLink {
            socket: Socket::new(bound, interface).with_transmit_ring(),
            pool: Arena::pool(pool_frames.max(1)),
            staging: Vec::with_capacity(RECV_BATCH),
            pool_empty_warned: false,
        };
        Ok((link, group))
    }

    /// Fills `staging` with up to `max` free pool frames; false when the pool is used up.
    fn stage(&mut self, max: usize) -> bool {
        while self.staging.len() < max.min(RECV_BATCH) {
            let Some(frame) = self.pool.take() else { break };
            self.staging.push(frame);
        }
        if self.staging.is_empty() {
            if !self.pool_empty_warned {
                log::warn!(
                    "{}: every one of {} frame buffers is in use; frames wait in the socket",
                    self.socket.name,
                    self.pool.slots()
                );
                self.pool_empty_warned = true;
            }
            return false;
        }
        self.pool_empty_warned = false;
        true
    }

    /// Moves the first `received` staged frames that carry a frame to `frames`.
    fn deliver(&mut self, received: usize, frames: &mut Vec<Frame>) -> usize {
        let mut delivered = 0;
        for frame in self.staging.drain(..received) {
            if !frame.is_empty() {
                frames.push(frame);
                delivered += 1;
            }
        }
        delivered
    }

    /// Receives like [`Link::recv`], but waits up to `timeout` for the first frame within the
    /// same system call (`recvmmsg` with `MSG_WAITFORONE`): the cheapest way for a single
    /// caller that only waits for frames.
    ///
    /// # Errors
    /// As [`Link::recv`].
    pub fn recv_wait(
        &mut self,
        frames: &mut Vec<Frame>,
        max: usize,
        timeout: Option<Duration>,
    ) -> Result<usize, NetError> {
        if !self.stage(max) {
            return Ok(0);
        }
        // SO_RCVTIMEO reads a zero as "forever": wait at least a microsecond.
        let timeout = timeout.map_or(Duration::ZERO, |t| t.max(Duration::from_micros(1)));
        self.socket.set_receive_timeout(timeout)?;
        let received = self.socket.recv_into(&mut self.staging, true)?;
        Ok(self.deliver(received, frames))
    }

    /// Frames the kernel dropped because the receive buffer was full, since the last call
    /// (`PACKET_STATISTICS`, which resets on read).
    pub fn take_drops(&mut self) -> u64 {
        take_drops(&self.socket.fd)
    }
}

/// Frames the kernel dropped on socket `fd` since the last call (`PACKET_STATISTICS`).
pub(super) fn take_drops(fd: &OwnedFd) -> u64 {
    let mut stats = libc::tpacket_stats {
        tp_packets: 0,
        tp_drops: 0,
    };
    let mut len = socklen_of::<libc::tpacket_stats>();
    // SAFETY: `stats` and `len` are live and writable; the kernel writes at most `len` octets.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
            libc::PACKET_STATISTICS,
            std::ptr::from_mut(&mut stats).cast(),
            &mut len,
        )
    };
    if rc == 0 {
        u64::from(stats.tp_drops)
    } else {
        0
    }
}

impl Link for PacketLink {
    fn name(&self) -> &str {
        &self.socket.name
    }

    fn mac(&self) -> EthernetAddress {
        self.socket.mac
    }

    fn mtu(&self) -> Result<usize, NetError> {
        ifreq::mtu(&self.socket.fd, &self.socket.name)
    }

    fn recv(&mut self, frames: &mut Vec<Frame>, max: usize) -> Result<usize, NetError> {
        if !self.stage(max) {
            return Ok(0);
        }
        let received = self.socket.recv_into(&mut self.staging, false)?;
        Ok(self.deliver(received, frames))
    }

    fn wait(&mut self, timeout: Option<Duration>) -> Result<bool, NetError> {
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
        set_buffer_bytes(&self.socket.fd, &self.socket.name, rx_bytes, tx_bytes)
    }

    fn take_drops(&mut self) -> u64 {
        PacketLink::take_drops(self)
    }
}

/// `Link::set_buffer_bytes` for a socket.
pub(super) fn set_buffer_bytes(
    fd: &OwnedFd,
    name: &str,
    rx_bytes: usize,
    tx_bytes: usize,
) -> Result<(usize, usize), NetError> {
    // The kernel doubles what it is given (for its bookkeeping) and reports the doubled value.
    let half = |bytes: usize| i32::try_from(bytes.div_ceil(2)).unwrap_or(i32::MAX / 2);
    for (forced, plain, bytes, what) in [
        (
            SO_RCVBUFFORCE,
            libc::SO_RCVBUF,
            rx_bytes,
            "set the receive buffer size",
        ),
        (
            SO_SNDBUFFORCE,
            libc::SO_SNDBUF,
            tx_bytes,
            "set the send buffer size",
        ),
    ] {
        if !set_int_option(fd, libc::SOL_SOCKET, forced, half(bytes))
            && !set_int_option(fd, libc::SOL_SOCKET, plain, half(bytes))
        {
            return Err(NetError::last(name, what));
        }
    }
    let granted = |option| {
        get_int_option(fd, libc::SOL_SOCKET, option)
            .and_then(|value| usize::try_from(value).ok())
            .unwrap_or(0)
    };
    Ok((granted(libc::SO_RCVBUF), granted(libc::SO_SNDBUF)))
}
