//! The initiator's [`Transport`] over a real interface: an `aoe_net::Link` (an `AF_PACKET`
//! socket or a TAP device) and the monotonic clock.
//!
//! Frames are received in batches with one `recvmmsg` into the link's pool frames and sent in
//! batches through the link's transmit ring (one `send`). Sending copies each frame once into a pool frame, because the
//! engine keeps its frames for retransmission in its own buffers; next to the system call that
//! copy is small. Nothing is allocated per frame.

use super::Transport;
use aoe_core::wire::EthernetAddress;
#[cfg(target_os = "linux")]
use aoe_net::PacketLink;
use aoe_net::{self as net, Frame, LinkSpec, NetError};
use std::io;
use std::time::{Duration, Instant};

/// Frames taken per receive call.
const RX_BATCH: usize = 64;
/// Frames the socket buffers should hold: more than any window the engine uses.
const SOCKET_FRAMES: usize = 1024;
/// Frames in the link's pool: a receive batch and a send batch, with room to spare.
#[cfg(target_os = "linux")]
const POOL_FRAMES: usize = 256;

/// The link under a [`NetPort`]: a packet socket (which can wait and receive in one call) or
/// any other link.
enum Port {
    #[cfg(target_os = "linux")]
    Packet(Box<PacketLink>),
    Other(Box<dyn net::Link>),
}

/// A raw Ethernet port for the initiator.
pub struct NetPort {
    port: Port,
    mtu: usize,
    rx: Vec<Frame>,
    tx: Vec<Frame>,
    start: Instant,
}

impl NetPort {
    /// Opens `spec` and sizes its socket buffers for a large window. A packet interface gets a
    /// [`PacketLink`]: it receives from the socket queue, never through a receive ring, so on a
    /// veth pair the target is not billed for the initiator's copies (see
    /// `aoe_net::open_queued`).
    ///
    /// # Errors
    /// When the interface is missing, down, or raw sockets are not permitted.
    pub fn open(spec: &LinkSpec) -> Result<NetPort, NetError> {
        let port = match spec {
            #[cfg(target_os = "linux")]
            LinkSpec::Packet { interface } => {
                Port::Packet(Box::new(PacketLink::open(interface, POOL_FRAMES)?))
            }
            // FreeBSD: a BPF device; anywhere: a TAP device.
            _ => Port::Other(net::open_queued(spec)?),
        };
        NetPort::with(port)
    }

    /// A port over a link opened elsewhere (an in-memory cable in tests, say).
    ///
    /// # Errors
    /// When the link cannot tell its MTU.
    pub fn with_link(link: Box<dyn net::Link>) -> Result<NetPort, NetError> {
        NetPort::with(Port::Other(link))
    }

    fn with(mut port: Port) -> Result<NetPort, NetError> {
        let link = port.link();
        let mtu = link.mtu()?;
        let bytes = net::buffer_bytes_for(SOCKET_FRAMES, mtu);
        // Best effort: smaller buffers only mean drops, which retransmission covers.
        let _ = link.set_buffer_bytes(bytes, bytes);
        Ok(NetPort {
            port,
            mtu,
            rx: Vec::with_capacity(RX_BATCH),
            tx: Vec::with_capacity(RX_BATCH),
            start: Instant::now(),
        })
    }

    /// The interface name.
    pub fn name(&self) -> &str {
        match &self.port {
            #[cfg(target_os = "linux")]
            Port::Packet(link) => net::Link::name(&**link),
            Port::Other(link) => link.name(),
        }
    }
}

impl Port {
    fn link(&mut self) -> &mut dyn net::Link {
        match self {
            #[cfg(target_os = "linux")]
            Port::Packet(link) => &mut **link,
            Port::Other(link) => &mut **link,
        }
    }
}

fn to_io(err: NetError) -> io::Error {
    io::Error::other(err)
}

impl Transport for NetPort {
    fn mac(&self) -> EthernetAddress {
        match &self.port {
            #[cfg(target_os = "linux")]
            Port::Packet(link) => net::Link::mac(&**link),
            Port::Other(link) => link.mac(),
        }
    }

    fn mtu(&self) -> usize {
        self.mtu
    }

    fn now(&self) -> Duration {
        self.start.elapsed()
    }

    fn send(&mut self, frames: &[&[u8]]) -> io::Result<()> {
        let link = self.port.link();
        for chunk in frames.chunks(RX_BATCH) {
            for bytes in chunk {
                let Some(mut frame) = link.alloc() else {
                    return Err(io::Error::from_raw_os_error(libc::ENOBUFS));
                };
                frame.fill(bytes);
                self.tx.push(frame);
            }
            link.send(&mut self.tx).map_err(to_io)?;
        }
        Ok(())
    }

    fn recv(
        &mut self,
        timeout: Duration,
        on_frame: &mut dyn FnMut(&[u8], Duration),
    ) -> io::Result<usize> {
        let count = match &mut self.port {
            // Wait and receive in one system call.
            #[cfg(target_os = "linux")]
            Port::Packet(link) => link.recv_wait(&mut self.rx, RX_BATCH, Some(timeout)),
            Port::Other(link) => match link.wait(Some(timeout)) {
                Ok(true) => link.recv(&mut self.rx, RX_BATCH),
                Ok(false) => Ok(0),
                Err(error) => Err(error),
            },
        }
        .map_err(to_io)?;
        let at = self.start.elapsed();
        for frame in self.rx.drain(..) {
            on_frame(frame.as_slice(), at);
        }
        Ok(count)
    }
}
