//! The initiator's [`Link`] over a real interface: the shared raw-frame layer
//! ([`crate::net`]), an `AF_PACKET` socket or a TAP device.
//!
//! Frames are received in batches with one `recvmmsg` into preallocated slots and sent in
//! batches with one `sendmmsg`. Sending copies each frame once into a staging slot, because
//! the engine keeps its frames for retransmission in its own buffers; next to the system call
//! that copy is small. Nothing is allocated per frame.

use super::Link;
use crate::net::{self, FrameBufs, LinkSpec, NetError};
use aoe_core::wire::EthernetAddress;
use std::io;
use std::time::{Duration, Instant};

/// Frames taken per receive call.
const RX_BATCH: usize = 64;
/// Frames staged per send call.
const TX_BATCH: usize = 64;
/// Frames the socket buffers should hold: more than any window the engine uses.
const SOCKET_FRAMES: usize = 1024;
/// Slots need no `O_DIRECT` alignment here; a cache line is enough.
const SLOT_ALIGN: usize = 64;

/// A raw Ethernet port for the initiator.
pub struct NetPort {
    link: Box<dyn net::Link>,
    mtu: usize,
    rx: FrameBufs,
    tx: FrameBufs,
    start: Instant,
}

impl NetPort {
    /// Opens `spec` and sizes its socket buffers for a large window.
    ///
    /// # Errors
    /// When the interface is missing, down, or raw sockets are not permitted.
    pub fn open(spec: &LinkSpec) -> Result<NetPort, NetError> {
        // No receive ring: on a veth pair the target would pay for filling it (see open_queued).
        let mut link = net::open_queued(spec)?;
        let mtu = link.mtu()?;
        let bytes = net::buffer_bytes_for(SOCKET_FRAMES, mtu);
        // Best effort: smaller buffers only mean drops, which retransmission covers.
        let _ = link.set_buffer_bytes(bytes, bytes);
        let capacity = mtu + net::ETHERNET_HEADER_LEN;
        Ok(NetPort {
            link,
            mtu,
            rx: FrameBufs::with_alignment(RX_BATCH, capacity, SLOT_ALIGN),
            tx: FrameBufs::with_alignment(TX_BATCH, capacity, SLOT_ALIGN),
            start: Instant::now(),
        })
    }

    /// The interface name.
    pub fn name(&self) -> &str {
        self.link.name()
    }
}

fn to_io(err: NetError) -> io::Error {
    io::Error::other(err)
}

impl Link for NetPort {
    fn mac(&self) -> EthernetAddress {
        EthernetAddress(self.link.mac())
    }

    fn mtu(&self) -> usize {
        self.mtu
    }

    fn now(&self) -> Duration {
        self.start.elapsed()
    }

    fn send(&mut self, frames: &[&[u8]]) -> io::Result<()> {
        if let [frame] = frames {
            return self.link.send_frame(frame).map_err(to_io);
        }
        for chunk in frames.chunks(TX_BATCH) {
            for (slot, frame) in chunk.iter().enumerate() {
                let len = frame.len().min(self.tx.capacity());
                self.tx.slot_mut(slot)[..len].copy_from_slice(&frame[..len]);
                self.tx.set_len(slot, len);
            }
            self.link.send(&self.tx, chunk.len()).map_err(to_io)?;
        }
        Ok(())
    }

    fn recv(
        &mut self,
        timeout: Duration,
        on_frame: &mut dyn FnMut(&[u8], Duration),
    ) -> io::Result<usize> {
        let count = self.link.recv(&mut self.rx, Some(timeout)).map_err(to_io)?;
        let at = self.start.elapsed();
        let mut delivered = 0;
        for slot in 0..count {
            let frame = self.rx.frame(slot);
            if !frame.is_empty() {
                on_frame(frame, at);
                delivered += 1;
            }
        }
        Ok(delivered)
    }
}
