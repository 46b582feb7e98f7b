//! Raw Ethernet frames on Linux and FreeBSD: the link seam of the host target and the `aoe`
//! initiator.
//!
//! A [`Link`] moves whole Ethernet frames (destination MAC first, no FCS) of EtherType 0x88A2
//! (AoE) in and out of one interface, in batches, as owned [`Frame`]s. Back ends:
//!
//! * `XdpLink` (Linux, [`xdp`]): an AF_XDP socket per receive queue behind an XDP program that
//!   takes only AoE frames for this host out of the kernel's path; its UMEM is the arena,
//!   received frames are the reply buffers. `--link=xdp`, or automatic where its chunks carry
//!   MTU-9000 frames.
//! * [`RingLink`]: an `AF_PACKET` socket with a `PACKET_MMAP` receive ring: the kernel writes
//!   arriving frames into the ring as they come, [`Link::recv`] hands ready ring frames out as
//!   `Frame`s without a system call or a copy, and sends go out through a transmit ring with
//!   one `send(2)` per batch (`sendmmsg(2)` where the kernel refuses the ring). What the host
//!   target uses ([`open_target`]).
//! * [`PacketLink`]: the same socket without the receive ring, `recvmmsg(2)` straight into
//!   pool frames, sending as `RingLink` does: the fallback where the kernel refuses the ring (or
//!   `AOE_PACKET_RINGS=0`), and what the initiator uses ([`open_queued`]).
//! * [`TapLink`]: a TAP device (through the `tun-tap` crate); the program is the far end of the
//!   virtual cable, with a MAC of its own.
//! * [`MemLink`]: two ends of a cable in memory ([`mem::pair`]), for tests without root.
//! * `BpfLink` (FreeBSD, [`bpf_dev`]): a `/dev/bpf` device with the classic filter of
//!   [`cbpf::aoe_filter`]; the only back end there. Linux-only modules are behind
//!   `cfg(target_os = "linux")`.
//!
//! Every back end receives only EtherType 0x88A2, never the frames this host sends, and never
//! frames the NIC accepted only because it is promiscuous.
//!
//! # The seam: what a link guarantees
//!
//! * **Ownership.** Frames move, they are never borrowed across calls: [`Link::recv`] hands
//!   out received frames, [`Link::send`] takes frames (from any link or arena) and gives them
//!   back to their arena once the kernel has copied them. A frame in between belongs to the
//!   caller alone, with the guarantees of [`frame`] (exclusive, stable address, data at
//!   octet 36 aligned for `O_DIRECT`), so it can sit in a storage back end's queue for as long
//!   as its I/O takes. Frames for which [`Frame::is_transient`] is true (kernel ring frames)
//!   should not be held across I/O that may wait: the ring cannot refill their place.
//! * **Ordering.** Frames are received in the order the kernel queued them, and sent in the
//!   order given; nothing is reordered within a link.
//! * **Batches.** `recv` takes everything already queued (up to the limit) without blocking;
//!   [`Link::wait`] (or `poll(2)` on [`Link::readiness_fd`], with other descriptors) sleeps
//!   until there is something. `send` hands a whole batch to the kernel with one call where
//!   the back end can.
//! * **Errors.** A link that fails (interface removed, taken down) reports it once from
//!   `recv`/`wait`/`send` as a [`NetError`]; the caller reopens it by name. A full device queue
//!   is retried for a short while, then the rest of the batch is dropped with a warning (AoE
//!   initiators retransmit).
//! * **Shutdown.** Dropping a link closes its socket; frames it handed out stay valid (they
//!   keep their arena alive) until they are dropped.
//!
//! Back ends implement [`Link`] and hand out frames of an [`Arena`] of their own (the UMEM for
//! AF_XDP, a ring, a pool).

pub mod bpf_dev;
pub mod cbpf;
mod error;
pub mod frame;
#[cfg(target_os = "linux")]
mod ifreq;
#[cfg(target_os = "freebsd")]
#[path = "ifreq_bsd.rs"]
mod ifreq;
pub mod mac;
pub mod mem;
#[cfg(target_os = "linux")]
mod mmap_ring;
#[cfg(target_os = "linux")]
mod packet;
#[cfg(target_os = "linux")]
mod sys;
#[cfg(target_os = "linux")]
mod tap;
#[cfg(target_os = "linux")]
mod tx_ring;
mod waiter;
#[cfg(target_os = "linux")]
pub mod xdp;

#[cfg(target_os = "freebsd")]
pub use bpf_dev::BpfLink;
pub use error::NetError;
pub use frame::{Arena, DATA_ALIGN, DATA_OFFSET, Frame};
pub use mac::{MacText, parse_mac};
pub use mem::MemLink;
#[cfg(target_os = "linux")]
pub use mmap_ring::{RING_FRAME_SIZE, RING_FRAMES, RingLink};
#[cfg(target_os = "linux")]
pub use packet::PacketLink;
#[cfg(target_os = "linux")]
pub use tap::TapLink;
pub use waiter::Waiter;
#[cfg(target_os = "linux")]
pub use xdp::XdpLink;

pub use aoe_core::wire::EthernetAddress;
use std::os::fd::BorrowedFd;
use std::time::Duration;

/// EtherType of ATA over Ethernet.
pub const ETHERTYPE_AOE: u16 = 0x88A2;

/// Octets of the Ethernet header (two MACs and the EtherType) in front of the MTU's payload.
pub const ETHERNET_HEADER_LEN: usize = 14;

/// Frames in the pool of every link unless asked otherwise: receive batches, replies waiting
/// for their I/O, and announcements.
pub const DEFAULT_POOL_FRAMES: usize = 1024;

/// A bidirectional Ethernet link for AoE frames; see the [crate docs](crate).
pub trait Link: Send {
    /// The interface name (for logs and errors).
    fn name(&self) -> &str;

    /// The MAC address replies come from and requests are addressed to.
    fn mac(&self) -> EthernetAddress;

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

    /// Appends up to `max` frames that are already queued to `frames`, without waiting, and
    /// returns how many. Frames too long for the buffers, or sent by this host, are dropped
    /// here and not counted.
    ///
    /// # Errors
    /// When the link failed (interface removed or down).
    fn recv(&mut self, frames: &mut Vec<Frame>, max: usize) -> Result<usize, NetError>;

    /// Waits until [`recv`](Self::recv) has frames to give, at most `timeout` (forever with
    /// `None`). False on timeout or when a signal interrupted the wait.
    ///
    /// # Errors
    /// When the link failed.
    fn wait(&mut self, timeout: Option<Duration>) -> Result<bool, NetError>;

    /// A descriptor that polls readable when frames may be waiting, for callers that wait on
    /// several things at once (a link and a storage back end); `None` if the link cannot offer
    /// one (then use [`wait`](Self::wait)).
    fn readiness_fd(&self) -> Option<BorrowedFd<'_>>;

    /// An empty frame from the link's pool, to build a frame in; `None` when the pool is used up
    /// (drop or send frames to give them back).
    fn alloc(&mut self) -> Option<Frame>;

    /// Sends every frame of `frames`, in order, and empties it; frames of length 0 are skipped.
    /// Returns how many went out. The frames go back to their arenas.
    ///
    /// # Errors
    /// When the kernel refuses a frame for a reason other than a momentarily full queue (the
    /// frames are given back all the same).
    fn send(&mut self, frames: &mut Vec<Frame>) -> Result<usize, NetError>;

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

    /// Received frames the kernel dropped (buffer or ring full) since the last call; 0 where
    /// the backend cannot tell.
    fn take_drops(&mut self) -> u64 {
        0
    }

    /// When the kernel took in the first frame of the last [`recv`](Self::recv) batch (its
    /// receive timestamp, wall clock), where the back end learns it without extra cost (the
    /// `PACKET_MMAP` ring's frame header); `None` otherwise. For latency accounting.
    fn last_arrival(&self) -> Option<std::time::SystemTime> {
        None
    }

    /// True when the back end knows, without a system call, that [`recv`](Self::recv) has
    /// frames to give (a ring's status word or index says so); false when it does not know or
    /// there are none. A worker skips its `poll(2)` when this is true.
    fn frames_known_ready(&mut self) -> bool {
        false
    }

    /// True when [`recv`](Self::recv) would give frames now, checked as cheaply as the back
    /// end can (a look at a ring's status word, without a system call, for the ring and
    /// AF_XDP back ends; a `poll(2)` of no wait otherwise). For bounded busy polling.
    fn has_frames(&mut self) -> bool {
        self.readiness_fd()
            .is_some_and(|fd| wait_readable_mask(&[fd], Some(Duration::ZERO)).unwrap_or(0) != 0)
    }
}

/// Sends one frame of `bytes` on `link` through a pool frame (announcements, tools).
///
/// # Errors
/// [`NetError::Io`] with `ENOBUFS` when the pool is used up; otherwise as [`Link::send`].
pub fn send_bytes(link: &mut dyn Link, bytes: &[u8]) -> Result<(), NetError> {
    let Some(mut frame) = link.alloc() else {
        return Err(NetError::Io {
            interface: link.name().to_owned(),
            step: "find a free frame buffer",
            source: std::io::Error::from_raw_os_error(libc::ENOBUFS),
        });
    };
    frame.fill(bytes);
    let mut batch = vec![frame];
    link.send(&mut batch)?;
    Ok(())
}

/// Waits until one of `fds` (at most 8) polls readable, or `timeout` passes (forever with
/// `None`). Returns true if one is readable; false on timeout or when a signal interrupted the
/// wait. See [`wait_readable_mask`], which also says which.
///
/// # Errors
/// When `poll(2)` fails, or more than 8 descriptors are given.
pub fn wait_readable_any(
    fds: &[BorrowedFd<'_>],
    timeout: Option<Duration>,
) -> std::io::Result<bool> {
    Ok(wait_readable_mask(fds, timeout)? != 0)
}

/// Waits until one of `fds` (at most 8) polls readable (or reports an error), or `timeout`
/// passes (forever with `None`), and returns a mask with bit `i` set for each `fds[i]` that
/// did: 0 on timeout or when a signal interrupted the wait. A target's worker waits for its
/// link and its storage queues' waker (`aoe_storage::Waker`) this way, and clears the waker
/// only when its bit says it was signalled (a system call saved per turn).
///
/// # Errors
/// When `poll(2)` fails, or more than 8 descriptors are given.
pub fn wait_readable_mask(
    fds: &[BorrowedFd<'_>],
    timeout: Option<Duration>,
) -> std::io::Result<u32> {
    use std::os::fd::AsRawFd;
    const MAX: usize = 8;
    if fds.len() > MAX {
        return Err(std::io::Error::from_raw_os_error(libc::EINVAL));
    }
    let mut polled = [libc::pollfd {
        fd: -1,
        events: libc::POLLIN,
        revents: 0,
    }; MAX];
    for (entry, fd) in polled.iter_mut().zip(fds) {
        entry.fd = fd.as_raw_fd();
    }
    let millis = match timeout {
        None => -1,
        // Round up so that a 0.5 ms timeout waits instead of spinning.
        Some(t) => i32::try_from(t.as_micros().div_ceil(1000)).unwrap_or(i32::MAX),
    };
    let count = libc::nfds_t::try_from(fds.len()).unwrap_or(0);
    // SAFETY: `polled` holds `count` (at most MAX) valid pollfd entries for descriptors the
    // caller keeps open (borrowed) during the call.
    let rc = unsafe { libc::poll(polled.as_mut_ptr(), count, millis) };
    if rc < 0 {
        let error = std::io::Error::last_os_error();
        return if error.kind() == std::io::ErrorKind::Interrupted {
            Ok(0)
        } else {
            Err(error)
        };
    }
    let mut mask = 0;
    for (index, entry) in polled.iter().take(fds.len()).enumerate() {
        if entry.revents != 0 {
            mask |= 1 << index;
        }
    }
    Ok(mask)
}

/// Which back end a target uses on an `AF_PACKET` interface ([`open_target_member`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LinkKind {
    /// The fastest the kernel and the interface allow: AF_XDP, else the ring, else the socket.
    #[default]
    Auto,
    /// AF_XDP only ([`XdpLink`]); refuse to start without it.
    Xdp,
    /// The `PACKET_MMAP` receive ring only ([`RingLink`]).
    Ring,
    /// The plain packet socket only ([`PacketLink`]).
    Socket,
}

impl LinkKind {
    /// The name the command line and the config file use.
    pub fn name(self) -> &'static str {
        match self {
            LinkKind::Auto => "auto",
            LinkKind::Xdp => "xdp",
            LinkKind::Ring => "ring",
            LinkKind::Socket => "socket",
        }
    }
}

impl std::str::FromStr for LinkKind {
    type Err = String;

    fn from_str(text: &str) -> Result<LinkKind, String> {
        [
            LinkKind::Auto,
            LinkKind::Xdp,
            LinkKind::Ring,
            LinkKind::Socket,
        ]
        .into_iter()
        .find(|kind| kind.name() == text)
        .ok_or_else(|| format!("link {text:?} is not one of auto, xdp, ring, socket"))
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
        mac: Option<EthernetAddress>,
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

#[cfg(target_os = "linux")]
/// Opens the link `spec` describes.
///
/// # Errors
/// [`NetError::NoSuchInterface`], [`NetError::InterfaceDown`], [`NetError::NoPermission`], or
/// another [`NetError`] with the failing step named.
pub fn open(spec: &LinkSpec) -> Result<Box<dyn Link>, NetError> {
    Ok(match spec {
        LinkSpec::Packet { interface } => {
            Box::new(PacketLink::open(interface, DEFAULT_POOL_FRAMES)?)
        }
        LinkSpec::Tap { interface, mac } => {
            Box::new(TapLink::open(interface, *mac, DEFAULT_POOL_FRAMES)?)
        }
    })
}

/// Opens the link `spec` describes for a target: [`open_target_group`] with
/// [`LinkKind::Auto`] and one worker.
///
/// # Errors
/// As [`open`].
pub fn open_target(spec: &LinkSpec) -> Result<Box<dyn Link>, NetError> {
    Ok(open_target_member(spec, LinkKind::Auto, Membership::Alone)?.link)
}

/// How a target's link shares its interface with the links of the other workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Membership {
    /// The only link of this target on the interface.
    Alone,
    /// The first of several: start a new fan-out group (its id is returned).
    NewGroup,
    /// Join the fan-out group with this id.
    Join(u16),
}

/// An opened target link: the link, the back end chosen, and the fan-out group it is in.
pub struct TargetLink {
    /// The link.
    pub link: Box<dyn Link>,
    /// The back end it is ([`LinkKind::Auto`] resolved).
    pub kind: LinkKind,
    /// The fan-out group's id, unless [`Membership::Alone`].
    pub group: Option<u16>,
}

#[cfg(target_os = "linux")]
/// Opens one target link on the interface `spec` names, with the back end `kind` asks for:
///
/// * [`LinkKind::Auto`]: [`XdpLink`] (AF_XDP: frames for us only leave the kernel's path, in
///   UMEM frames used as receive and reply buffers) where the kernel, the privileges and the
///   interface allow it (one worker per receive queue) and its chunks carry MTU-9000 frames
///   (huge pages; see [`xdp`]); else [`RingLink`] (a `PACKET_MMAP`
///   receive ring: no receive call while frames wait, no copy in user space); else
///   [`PacketLink`]. The environment variable `AOE_PACKET_RINGS=0` asks for the plain socket.
/// * [`LinkKind::Xdp`], [`LinkKind::Ring`], [`LinkKind::Socket`]: that back end or an error.
///
/// Several links of one target share the interface through a `PACKET_FANOUT` group
/// (`membership`) that sends every frame of one source MAC to the same link, so the requests
/// of one initiator stay in order ([`cbpf::steer_by_source`]). TAP devices are always alone.
///
/// # Errors
/// As [`open`]; for a forced kind, why the kernel refused it.
pub fn open_target_member(
    spec: &LinkSpec,
    kind: LinkKind,
    membership: Membership,
) -> Result<TargetLink, NetError> {
    let LinkSpec::Packet { interface } = spec else {
        return Ok(TargetLink {
            link: open(spec)?,
            kind: LinkKind::Socket,
            group: None,
        });
    };
    let rings_refused = std::env::var_os("AOE_PACKET_RINGS").is_some_and(|value| value == "0");
    // Automatic: AF_XDP only where its chunks carry jumbo frames, asked before attaching
    // anything to the interface.
    let auto_xdp = kind == LinkKind::Auto && !rings_refused && xdp::jumbo_chunks_available();
    if kind == LinkKind::Xdp || auto_xdp {
        // AF_XDP serves every receive queue at once; one alone here (a reopened link).
        let xdp = if membership == Membership::Alone {
            xdp::open_queues(interface, 1).map(|mut links| links.remove(0))
        } else {
            Err(NetError::Io {
                interface: interface.clone(),
                step: "reopen one queue of a multi-queue AF_XDP link (restart host-sim)",
                source: std::io::Error::from_raw_os_error(libc::EOPNOTSUPP),
            })
        };
        let xdp = xdp.and_then(|link| {
            if kind == LinkKind::Auto && !link.carries_jumbo_frames() {
                // The ring carries MTU-9000 frames whole; so must the automatic choice.
                return Err(NetError::Io {
                    interface: interface.clone(),
                    step: "get AF_XDP chunks for MTU-9000 frames (no huge pages)",
                    source: std::io::Error::from_raw_os_error(libc::EMSGSIZE),
                });
            }
            Ok(link)
        });
        match xdp {
            Ok(link) => {
                return Ok(TargetLink {
                    link: Box::new(link),
                    kind: LinkKind::Xdp,
                    group: None,
                });
            }
            Err(error) if kind == LinkKind::Auto => {
                log::info!("{error}; using a packet ring");
            }
            Err(error) => return Err(error),
        }
    }
    if kind == LinkKind::Ring || (kind == LinkKind::Auto && !rings_refused) {
        match open_member(
            interface,
            membership,
            RingLink::open,
            RingLink::open_in_group,
        ) {
            Ok((link, group)) => {
                return Ok(TargetLink {
                    link,
                    kind: LinkKind::Ring,
                    group,
                });
            }
            Err(error @ NetError::Io { .. }) if kind == LinkKind::Auto => {
                log::info!("{error}; using a plain packet socket");
            }
            Err(error) => return Err(error),
        }
    }
    let (link, group) = open_member(
        interface,
        membership,
        PacketLink::open,
        PacketLink::open_in_group,
    )?;
    Ok(TargetLink {
        link,
        kind: LinkKind::Socket,
        group,
    })
}

#[cfg(target_os = "linux")]
/// Opens `workers` target links (at least one) on `spec`'s interface: the first decides the
/// back end (see [`open_target_member`]), the others join its fan-out group with the same one.
///
/// # Errors
/// As [`open_target_member`].
pub fn open_target_group(
    spec: &LinkSpec,
    kind: LinkKind,
    workers: usize,
) -> Result<Vec<TargetLink>, NetError> {
    let rings_refused = std::env::var_os("AOE_PACKET_RINGS").is_some_and(|value| value == "0");
    if let LinkSpec::Packet { interface } = spec
        && workers > 1
        && (kind == LinkKind::Xdp
            || (kind == LinkKind::Auto && !rings_refused && xdp::jumbo_chunks_available()))
    {
        let opened = xdp::open_queues(interface, workers).and_then(|links| {
            if kind == LinkKind::Auto && !links[0].carries_jumbo_frames() {
                return Err(NetError::Io {
                    interface: interface.clone(),
                    step: "get AF_XDP chunks for MTU-9000 frames (no huge pages)",
                    source: std::io::Error::from_raw_os_error(libc::EMSGSIZE),
                });
            }
            Ok(links)
        });
        match opened {
            Ok(links) => {
                return Ok(links
                    .into_iter()
                    .map(|link| TargetLink {
                        link: Box::new(link),
                        kind: LinkKind::Xdp,
                        group: None,
                    })
                    .collect());
            }
            Err(error) if kind == LinkKind::Auto => log::info!("{error}; using packet rings"),
            Err(error) => return Err(error),
        }
    }
    let kind = if kind == LinkKind::Auto && workers > 1 {
        // AF_XDP was not to be had for all of them; the first one must not take it alone.
        if rings_refused {
            LinkKind::Socket
        } else {
            LinkKind::Ring
        }
    } else {
        kind
    };
    if workers <= 1 || !matches!(spec, LinkSpec::Packet { .. }) {
        if workers > 1 {
            log::info!("{}: a TAP device is served by one worker", spec.interface());
        }
        return Ok(vec![open_target_member(spec, kind, Membership::Alone)?]);
    }
    let first = open_target_member(spec, kind, Membership::NewGroup)?;
    let (kind, group) = (first.kind, first.group.unwrap_or(0));
    let mut links = vec![first];
    for _ in 1..workers {
        links.push(open_target_member(spec, kind, Membership::Join(group))?);
    }
    Ok(links)
}

#[cfg(target_os = "linux")]
type GroupOpen<L> = fn(&str, usize, Option<u16>) -> Result<(L, u16), NetError>;

#[cfg(target_os = "linux")]
/// One link of one back end, alone or in a fan-out group.
fn open_member<L: Link + 'static>(
    interface: &str,
    membership: Membership,
    open: fn(&str, usize) -> Result<L, NetError>,
    open_in_group: GroupOpen<L>,
) -> Result<(Box<dyn Link>, Option<u16>), NetError> {
    let group = match membership {
        Membership::Alone => return Ok((Box::new(open(interface, DEFAULT_POOL_FRAMES)?), None)),
        Membership::NewGroup => None,
        Membership::Join(id) => Some(id),
    };
    let (link, id) = open_in_group(interface, DEFAULT_POOL_FRAMES, group)?;
    Ok((Box::new(link), Some(id)))
}

/// Opens the link `spec` describes: on FreeBSD a [`BpfLink`] (TAP devices are served on Linux
/// only).
///
/// # Errors
/// As [`BpfLink::open`]; [`NetError::Io`] for a TAP device.
#[cfg(target_os = "freebsd")]
pub fn open(spec: &LinkSpec) -> Result<Box<dyn Link>, NetError> {
    match spec {
        LinkSpec::Packet { interface } => {
            Ok(Box::new(BpfLink::open(interface, DEFAULT_POOL_FRAMES)?))
        }
        LinkSpec::Tap { interface, .. } => Err(NetError::Io {
            interface: interface.clone(),
            step: "open a TAP device (served on Linux only)",
            source: std::io::Error::from_raw_os_error(libc::EOPNOTSUPP),
        }),
    }
}

/// Opens one target link: on FreeBSD a [`BpfLink`] whatever `kind` asks for, unless it asks
/// for a Linux-only back end (AF_XDP, the ring). A BPF device sees every frame of its
/// interface, so a second one would answer every request twice: one link only.
///
/// # Errors
/// As [`open`]; [`NetError::Io`] for a Linux-only back end or a fan-out group.
#[cfg(target_os = "freebsd")]
pub fn open_target_member(
    spec: &LinkSpec,
    kind: LinkKind,
    membership: Membership,
) -> Result<TargetLink, NetError> {
    let refusal = match (kind, membership) {
        (LinkKind::Xdp | LinkKind::Ring, _) => Some("use AF_XDP or a packet ring (Linux only)"),
        (_, Membership::Alone) => None,
        _ => Some("serve one interface with several workers (Linux only)"),
    };
    if let Some(step) = refusal {
        return Err(NetError::Io {
            interface: spec.interface().to_owned(),
            step,
            source: std::io::Error::from_raw_os_error(libc::EOPNOTSUPP),
        });
    }
    Ok(TargetLink {
        link: open(spec)?,
        kind: LinkKind::Socket,
        group: None,
    })
}

/// Opens the target links of one interface: on FreeBSD always one (see
/// [`open_target_member`]).
///
/// # Errors
/// As [`open_target_member`].
#[cfg(target_os = "freebsd")]
pub fn open_target_group(
    spec: &LinkSpec,
    kind: LinkKind,
    workers: usize,
) -> Result<Vec<TargetLink>, NetError> {
    if workers > 1 {
        log::warn!(
            "{}: one worker per interface on FreeBSD (a BPF device sees every frame)",
            spec.interface()
        );
    }
    Ok(vec![open_target_member(spec, kind, Membership::Alone)?])
}

/// The link for the `aoe` initiator: a [`PacketLink`] (or TAP), guaranteed to receive from the
/// socket queue (`recvmmsg`), never through a receive ring. On a veth pair the kernel delivers
/// a frame into the receiver's ring in the *sender's* context, so a ring at the initiator would
/// make the target pay (in its measured CPU time) for the initiator's copy; with the socket
/// queue that copy happens in the initiator's own `recvmmsg`.
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
