//! The `AF_PACKET` backend: a raw socket bound to one interface for EtherType 0x88A2, receiving
//! with `recvmmsg(2)` and sending with `sendmmsg(2)`, one call per batch.
//!
//! It also holds the socket plumbing the ring backend ([`super::RingLink`]) shares: opening and
//! binding the socket, socket options, waiting in `poll(2)`, `SO_ERROR`, drop counts and buffer
//! sizes.

use super::ifreq;
use super::{ETHERTYPE_AOE, FrameBufs, Link, Mac, NetError};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
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

/// The size of a C struct as the kernel's length type; every such struct is far below 4 GiB.
#[allow(clippy::cast_possible_truncation)]
pub(super) const fn socklen_of<T>() -> libc::socklen_t {
    size_of::<T>() as libc::socklen_t
}

/// How long [`Link::send`] keeps retrying while the device queue is full before it drops frames.
const SEND_RETRY_LIMIT: Duration = Duration::from_millis(200);

/// An `AF_PACKET`/`SOCK_RAW` socket bound to one interface; see the [module docs](super).
pub struct PacketLink {
    fd: OwnedFd,
    name: String,
    mac: Mac,
    ignores_outgoing: bool,
    /// The `SO_RCVTIMEO` last set, to skip redundant setsockopt calls.
    receive_timeout: Option<Duration>,
    // Scratch for recvmmsg/sendmmsg, sized on first use and reused so that no call allocates.
    // The raw pointers in them are written at the start of each call and not used after it.
    msgs: Vec<libc::mmsghdr>,
    iovs: Vec<libc::iovec>,
    addrs: Vec<libc::sockaddr_ll>,
}

// SAFETY: the only non-Send fields are the raw pointers inside the scratch vectors. They are
// rewritten at the start of every recv/send call from buffers borrowed for that call and never
// dereferenced outside it, so moving the link to another thread cannot leave one dangling.
unsafe impl Send for PacketLink {}

impl std::fmt::Debug for PacketLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PacketLink")
            .field("fd", &self.fd)
            .field("name", &self.name)
            .field("mac", &self.mac)
            .field("ignores_outgoing", &self.ignores_outgoing)
            .finish_non_exhaustive()
    }
}

/// `setsockopt(fd, level, option, value)` for a plain C value; false when the kernel refuses.
pub(super) fn set_option<T>(
    fd: &OwnedFd,
    level: libc::c_int,
    option: libc::c_int,
    value: &T,
) -> bool {
    // SAFETY: `value` is a live, initialised `T` and its exact size is passed; setsockopt only
    // reads it.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            option,
            std::ptr::from_ref(value).cast(),
            socklen_of::<T>(),
        )
    };
    rc == 0
}

fn set_int_option(fd: &OwnedFd, level: libc::c_int, option: libc::c_int, value: i32) -> bool {
    set_option(fd, level, option, &value)
}

fn get_int_option(fd: &OwnedFd, level: libc::c_int, option: libc::c_int) -> Option<i32> {
    let mut value: libc::c_int = 0;
    let mut len = socklen_of::<libc::c_int>();
    // SAFETY: `value` and `len` are live and writable; the kernel writes at most `len` octets.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            level,
            option,
            std::ptr::from_mut(&mut value).cast(),
            &mut len,
        )
    };
    (rc == 0).then_some(value)
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
    pub(super) mac: Mac,
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

impl PacketLink {
    /// Opens a raw socket on `interface` for EtherType 0x88A2.
    ///
    /// Checks, in this order, so that the first message is the useful one: the name is valid,
    /// the interface exists, it is up, and the process may open a raw socket.
    ///
    /// # Errors
    /// [`NetError::BadInterfaceName`], [`NetError::NoSuchInterface`],
    /// [`NetError::InterfaceDown`], [`NetError::NoPermission`] (no `CAP_NET_RAW`), or
    /// [`NetError::Io`].
    pub fn open(interface: &str) -> Result<PacketLink, NetError> {
        let bound = open_bound(interface, true, |_| Ok(()))?;
        let mut link = PacketLink {
            fd: bound.fd,
            name: interface.to_owned(),
            mac: bound.mac,
            ignores_outgoing: bound.ignores_outgoing,
            receive_timeout: None,
            msgs: Vec::new(),
            iovs: Vec::new(),
            addrs: Vec::new(),
        };
        link.discard_queued();
        Ok(link)
    }

    /// A socket on `interface` that only sends (it is bound with protocol 0, so the kernel
    /// hands it no frames); [`Link::recv`] on it never returns a frame.
    ///
    /// # Errors
    /// As [`open`](Self::open).
    pub fn open_sender(interface: &str) -> Result<PacketLink, NetError> {
        let bound = open_bound(interface, false, |_| Ok(()))?;
        Ok(PacketLink {
            fd: bound.fd,
            name: interface.to_owned(),
            mac: bound.mac,
            ignores_outgoing: true,
            receive_timeout: None,
            msgs: Vec::new(),
            iovs: Vec::new(),
            addrs: Vec::new(),
        })
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

    /// One recvmmsg into slots `0..count`: with `MSG_DONTWAIT`, or blocking (up to the
    /// socket's receive timeout) for the first frame only (`MSG_WAITFORONE`). `Ok(0)` when
    /// nothing came.
    fn recv_now(&mut self, bufs: &mut FrameBufs, wait: bool) -> Result<usize, NetError> {
        let count = bufs.count();
        self.reserve_scratch(count);
        let capacity = bufs.capacity();
        for slot in 0..count {
            self.iovs[slot] = libc::iovec {
                iov_base: bufs.slot_ptr_mut(slot).cast(),
                iov_len: capacity,
            };
            let header = &mut self.msgs[slot].msg_hdr;
            header.msg_name = std::ptr::from_mut(&mut self.addrs[slot]).cast();
            header.msg_namelen = socklen_of::<libc::sockaddr_ll>();
            header.msg_iov = &mut self.iovs[slot];
            header.msg_iovlen = 1;
            header.msg_control = std::ptr::null_mut();
            header.msg_controllen = 0;
            header.msg_flags = 0;
            self.msgs[slot].msg_len = 0;
        }
        let batch = libc::c_uint::try_from(count).unwrap_or(libc::c_uint::MAX);
        // SAFETY: msgs[0..count] point at iovs/addrs entries that live in `self`, and each iovec
        // covers exactly one slot of `bufs`, which is mutably borrowed for this call; the kernel
        // writes at most iov_len octets per message and at most msg_namelen octets of address.
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
        for slot in 0..received {
            let message = &self.msgs[slot];
            let truncated = message.msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
            let kind = self.addrs[slot].sll_pkttype;
            let foreign = kind == PACKET_OUTGOING || kind == PACKET_OTHERHOST;
            let len = if truncated || foreign {
                0
            } else {
                message.msg_len as usize
            };
            bufs.set_len(slot, len);
        }
        Ok(received)
    }

    /// sendmmsg of the prepared messages `0..count`, retrying while the queue is full.
    fn send_prepared(&mut self, count: usize) -> Result<usize, NetError> {
        let mut sent = 0;
        let mut full_since: Option<std::time::Instant> = None;
        while sent < count {
            let batch = libc::c_uint::try_from(count - sent).unwrap_or(libc::c_uint::MAX);
            let rc = if batch == 1 {
                // One frame: send(2) is cheaper than sendmmsg(2) (no message header to copy in).
                let iov = self.iovs[sent];
                // SAFETY: the iovec was prepared by the caller from a buffer it borrows for this
                // call; the kernel only reads `iov_len` octets from it.
                let rc = unsafe { libc::send(self.fd.as_raw_fd(), iov.iov_base, iov.iov_len, 0) };
                if rc < 0 { -1 } else { 1 }
            } else {
                // SAFETY: msgs[sent..count] were prepared by the caller from buffers it borrows
                // for this call; the kernel only reads them.
                unsafe {
                    libc::sendmmsg(
                        self.fd.as_raw_fd(),
                        self.msgs[sent..].as_mut_ptr(),
                        batch,
                        0,
                    )
                }
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

    /// Frames the kernel dropped because the receive buffer was full, since the last call
    /// (`PACKET_STATISTICS`, which resets on read).
    pub fn take_drops(&mut self) -> u64 {
        take_drops(&self.fd)
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
        &self.name
    }

    fn mac(&self) -> Mac {
        self.mac
    }

    fn mtu(&self) -> Result<usize, NetError> {
        ifreq::mtu(&self.fd, &self.name)
    }

    fn recv(&mut self, bufs: &mut FrameBufs, timeout: Option<Duration>) -> Result<usize, NetError> {
        // One system call per batch: block for the first frame (SO_RCVTIMEO bounds the wait),
        // then take what is queued. A zero timeout polls.
        match timeout {
            Some(Duration::ZERO) => self.recv_now(bufs, false),
            Some(timeout) => {
                // SO_RCVTIMEO reads a zero as "forever": wait at least a microsecond.
                self.set_receive_timeout(timeout.max(Duration::from_micros(1)))?;
                self.recv_now(bufs, true)
            }
            None => {
                self.set_receive_timeout(Duration::ZERO)?;
                self.recv_now(bufs, true)
            }
        }
    }

    fn send(&mut self, bufs: &FrameBufs, count: usize) -> Result<usize, NetError> {
        let count = count.min(bufs.count());
        self.reserve_scratch(count);
        let mut prepared = 0;
        for slot in 0..count {
            let len = bufs.len(slot);
            if len == 0 {
                continue;
            }
            self.iovs[prepared] = libc::iovec {
                // The kernel only reads through this pointer (sendmmsg).
                iov_base: bufs.slot_ptr(slot).cast_mut().cast(),
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
        self.send_prepared(prepared)
    }

    fn send_frame(&mut self, frame: &[u8]) -> Result<(), NetError> {
        self.reserve_scratch(1);
        self.iovs[0] = libc::iovec {
            // The kernel only reads through this pointer (sendmmsg).
            iov_base: frame.as_ptr().cast_mut().cast(),
            iov_len: frame.len(),
        };
        let header = &mut self.msgs[0].msg_hdr;
        header.msg_name = std::ptr::null_mut();
        header.msg_namelen = 0;
        header.msg_iov = &mut self.iovs[0];
        header.msg_iovlen = 1;
        header.msg_control = std::ptr::null_mut();
        header.msg_controllen = 0;
        header.msg_flags = 0;
        match self.send_prepared(1)? {
            1 => Ok(()),
            _ => Err(NetError::Io {
                interface: self.name.clone(),
                step: "send a frame",
                source: io::Error::from_raw_os_error(libc::ENOBUFS),
            }),
        }
    }

    fn set_buffer_bytes(
        &mut self,
        rx_bytes: usize,
        tx_bytes: usize,
    ) -> Result<(usize, usize), NetError> {
        set_buffer_bytes(&self.fd, &self.name, rx_bytes, tx_bytes)
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
