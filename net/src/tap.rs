//! The TAP backend: the program is the far end of a virtual Ethernet cable (`tun-tap` crate).

use super::frame::{Arena, Frame};
use super::ifreq;
use super::packet::wait_readable;
use super::{EthernetAddress, Link, NetError};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

/// A TAP device; see the [module docs](super).
///
/// TAP hands us every frame the kernel sends into the device, of any EtherType and to any
/// MAC; [`Link::recv`] gives 0x88A2 frames only (one `read(2)` each, into pool frames) and
/// drops the rest. Sending is one `write(2)` per frame.
#[derive(Debug)]
pub struct TapLink {
    iface: tun_tap::Iface,
    // For interface ioctls (MTU), which need a socket, not the TAP file descriptor.
    control: OwnedFd,
    name: String,
    mac: EthernetAddress,
    pool: Arc<Arena>,
}

/// Our MAC when none is given: the kernel side's MAC with the locally administered bit set, the
/// multicast bit clear and the last octet's low bit flipped, so it differs from the kernel side.
pub(crate) fn derived_mac(kernel_side: EthernetAddress) -> EthernetAddress {
    let mut mac = kernel_side.0;
    mac[0] = (mac[0] | 0x02) & !0x01;
    mac[5] ^= 0x01;
    EthernetAddress(mac)
}

impl TapLink {
    /// Opens (or creates) TAP device `interface`, brings it up if it is down, and uses `mac` as
    /// our address, or one derived from the kernel side's MAC (locally administered, unicast,
    /// last bit flipped). Frames are received into a pool of `pool_frames` frames.
    ///
    /// # Errors
    /// [`NetError::NoPermission`] without `CAP_NET_ADMIN` (creating, or attaching to a TAP
    /// device owned by another user), [`NetError::BadInterfaceName`], [`NetError::Io`].
    pub fn open(
        interface: &str,
        mac: Option<EthernetAddress>,
        pool_frames: usize,
    ) -> Result<TapLink, NetError> {
        ifreq::ifreq_named(interface)?;
        let iface = tun_tap::Iface::without_packet_info(interface, tun_tap::Mode::Tap).map_err(
            |error| match error.raw_os_error() {
                Some(libc::EPERM | libc::EACCES) => NetError::NoPermission {
                    interface: interface.to_owned(),
                    what: "open a TAP device",
                    capability: "CAP_NET_ADMIN",
                },
                _ => NetError::os(interface, "open the TAP device", error),
            },
        )?;
        let name = iface.name().to_owned();
        let control = ifreq::control_socket(&name)?;
        set_nonblocking(iface.as_raw_fd())
            .map_err(|error| NetError::os(&name, "make the TAP device non-blocking", error))?;
        if !ifreq::is_up(&control, &name)? {
            bring_up(&control, &name)?;
        }
        let mac = match mac {
            Some(mac) => mac,
            None => derived_mac(ifreq::mac(&control, &name)?),
        };
        Ok(TapLink {
            iface,
            control,
            name,
            mac,
            pool: Arena::pool(pool_frames.max(1)),
        })
    }

    fn read_one(&self, slot: &mut [u8]) -> io::Result<Option<usize>> {
        match self.iface.recv(slot) {
            Ok(len) => Ok(Some(len)),
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(error) if error.kind() == io::ErrorKind::Interrupted => Ok(None),
            Err(error) => Err(error),
        }
    }

    fn write_one(&self, frame: &[u8]) -> Result<(), NetError> {
        loop {
            match self.iface.send(frame) {
                Ok(_) => return Ok(()),
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_micros(50));
                }
                Err(error) => {
                    return Err(NetError::os(&self.name, "write to the TAP device", error));
                }
            }
        }
    }
}

/// `IFF_UP` (1) in the width of `ifr_flags`.
const IFF_UP_FLAG: libc::c_short = 1;
const _: () = assert!(IFF_UP_FLAG as libc::c_int == libc::IFF_UP);

fn set_nonblocking(fd: libc::c_int) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor we own, with integer arguments only.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    // SAFETY: as above.
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Sets `IFF_UP` on the kernel side, which a new TAP device lacks (writes to it fail until then).
fn bring_up(control: &OwnedFd, name: &str) -> Result<(), NetError> {
    let mut request = ifreq::ifreq_named(name)?;
    // SAFETY: valid ifreq with a NUL-terminated name; SIOCGIFFLAGS writes only inside it.
    if unsafe { libc::ioctl(control.as_raw_fd(), libc::SIOCGIFFLAGS, &mut request) } < 0 {
        return Err(NetError::last(name, "read the TAP device flags"));
    }
    // SAFETY: SIOCGIFFLAGS succeeded, so the flags member of the union is the one written.
    unsafe {
        request.ifr_ifru.ifru_flags |= IFF_UP_FLAG;
    }
    // SAFETY: valid ifreq; SIOCSIFFLAGS only reads it.
    if unsafe { libc::ioctl(control.as_raw_fd(), libc::SIOCSIFFLAGS, &mut request) } < 0 {
        return Err(match NetError::last(name, "bring the TAP device up") {
            NetError::NoPermission {
                interface, what, ..
            } => NetError::NoPermission {
                interface,
                what,
                capability: "CAP_NET_ADMIN",
            },
            other => other,
        });
    }
    Ok(())
}

impl Link for TapLink {
    fn name(&self) -> &str {
        &self.name
    }

    fn mac(&self) -> EthernetAddress {
        self.mac
    }

    fn mtu(&self) -> Result<usize, NetError> {
        ifreq::mtu(&self.control, &self.name)
    }

    fn recv(&mut self, frames: &mut Vec<Frame>, max: usize) -> Result<usize, NetError> {
        let mut received = 0;
        while received < max {
            let Some(mut frame) = self.pool.take() else {
                break;
            };
            let read = self
                .read_one(frame.buffer_mut())
                .map_err(|error| NetError::os(&self.name, "read from the TAP device", error))?;
            let Some(len) = read else {
                break;
            };
            frame.set_len(len);
            let is_aoe = aoe_core::wire::EthernetFrame::new_checked(frame.as_slice())
                .is_ok_and(|ethernet| u16::from(ethernet.ethertype()) == super::ETHERTYPE_AOE);
            // A read that fills the buffer may have been cut short: drop it.
            if is_aoe && len < frame.capacity() {
                frames.push(frame);
                received += 1;
            }
        }
        Ok(received)
    }

    fn wait(&mut self, timeout: Option<Duration>) -> Result<bool, NetError> {
        wait_readable(self.iface.as_raw_fd(), timeout)
            .map_err(|error| NetError::os(&self.name, "wait for frames", error))
    }

    fn readiness_fd(&self) -> Option<BorrowedFd<'_>> {
        // SAFETY: the descriptor belongs to `self.iface`, which outlives the borrow of `self`.
        Some(unsafe { BorrowedFd::borrow_raw(self.iface.as_raw_fd()) })
    }

    fn alloc(&mut self) -> Option<Frame> {
        self.pool.take()
    }

    fn send(&mut self, frames: &mut Vec<Frame>) -> Result<usize, NetError> {
        let mut sent = 0;
        let mut result = Ok(());
        for frame in frames.drain(..) {
            if frame.is_empty() || result.is_err() {
                continue;
            }
            match self.write_one(frame.as_slice()) {
                Ok(()) => sent += 1,
                Err(error) => result = Err(error),
            }
        }
        result.map(|()| sent)
    }

    fn set_buffer_bytes(
        &mut self,
        _rx_bytes: usize,
        _tx_bytes: usize,
    ) -> Result<(usize, usize), NetError> {
        // A TAP device queues frames by count (its txqueuelen), not in socket buffers.
        Ok((0, 0))
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn derived_mac_is_local_unicast_and_differs() {
        for kernel in [
            [0x00, 0x11, 0x22, 0x33, 0x44, 0x55],
            [0x03, 0, 0, 0, 0, 0xff],
        ] {
            let ours = derived_mac(EthernetAddress(kernel)).0;
            assert_ne!(ours, kernel);
            assert_eq!(ours[0] & 0x02, 0x02, "locally administered");
            assert_eq!(ours[0] & 0x01, 0, "unicast");
        }
    }
}
