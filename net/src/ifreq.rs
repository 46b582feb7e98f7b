//! Interface facts from the kernel by name: index, flags, MTU, MAC (`SIOCGIF*` ioctls).

use super::{EthernetAddress, NetError};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// Interface names are at most 15 octets plus the NUL (`IFNAMSIZ`).
const NAME_MAX: usize = libc::IFNAMSIZ - 1;

/// An `ifreq` naming `interface`, all other fields zero.
pub(crate) fn ifreq_named(interface: &str) -> Result<libc::ifreq, NetError> {
    let bytes = interface.as_bytes();
    if bytes.is_empty() || bytes.len() > NAME_MAX || bytes.contains(&0) || bytes.contains(&b'/') {
        return Err(NetError::BadInterfaceName(interface.to_owned()));
    }
    // SAFETY: ifreq is a plain C struct (a name array and a union of integers, sockaddrs and a
    // pointer); all-zero octets are a valid value of every field.
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, &src) in request.ifr_name.iter_mut().zip(bytes) {
        *dst = src as libc::c_char;
    }
    Ok(request)
}

/// Runs one `SIOCGIF*` ioctl on `fd` for `interface` and returns the filled request.
fn query(
    fd: &OwnedFd,
    interface: &str,
    request_code: libc::Ioctl,
    step: &'static str,
) -> Result<libc::ifreq, NetError> {
    let mut request = ifreq_named(interface)?;
    // SAFETY: `request` is a valid, writable ifreq with a NUL-terminated name; the SIOCGIF*
    // ioctls read the name and write only inside the struct.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), request_code, &mut request) };
    if rc < 0 {
        return Err(NetError::last(interface, step));
    }
    Ok(request)
}

/// A datagram socket used only to ask the kernel about interfaces; needs no privilege.
pub(crate) fn control_socket(interface: &str) -> Result<OwnedFd, NetError> {
    // SAFETY: plain socket(2) call; the result is checked before use.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(NetError::last(interface, "open a control socket"));
    }
    // SAFETY: `fd` is a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The interface index, or [`NetError::NoSuchInterface`].
pub(crate) fn index(fd: &OwnedFd, interface: &str) -> Result<i32, NetError> {
    let request = query(fd, interface, libc::SIOCGIFINDEX, "look up the interface")?;
    // SAFETY: SIOCGIFINDEX succeeded, so the kernel wrote the index member of the union.
    Ok(unsafe { request.ifr_ifru.ifru_ifindex })
}

/// True if the interface is administratively up (`IFF_UP`).
pub(crate) fn is_up(fd: &OwnedFd, interface: &str) -> Result<bool, NetError> {
    let request = query(
        fd,
        interface,
        libc::SIOCGIFFLAGS,
        "read the interface flags",
    )?;
    // SAFETY: SIOCGIFFLAGS succeeded, so the kernel wrote the flags member of the union.
    let flags = unsafe { request.ifr_ifru.ifru_flags };
    Ok(i32::from(flags) & libc::IFF_UP != 0)
}

/// The current MTU.
pub(crate) fn mtu(fd: &OwnedFd, interface: &str) -> Result<usize, NetError> {
    let request = query(fd, interface, libc::SIOCGIFMTU, "read the MTU")?;
    // SAFETY: SIOCGIFMTU succeeded, so the kernel wrote the mtu member of the union.
    let mtu = unsafe { request.ifr_ifru.ifru_mtu };
    usize::try_from(mtu).map_err(|_| NetError::Io {
        interface: interface.to_owned(),
        step: "read the MTU",
        source: io::Error::new(io::ErrorKind::InvalidData, format!("negative MTU {mtu}")),
    })
}

/// The hardware (MAC) address.
pub(crate) fn mac(fd: &OwnedFd, interface: &str) -> Result<EthernetAddress, NetError> {
    let request = query(fd, interface, libc::SIOCGIFHWADDR, "read the MAC address")?;
    // SAFETY: SIOCGIFHWADDR succeeded, so the kernel wrote the hwaddr member of the union.
    let address = unsafe { request.ifr_ifru.ifru_hwaddr };
    let mut mac = [0u8; 6];
    for (dst, &src) in mac.iter_mut().zip(address.sa_data.iter()) {
        *dst = src as u8;
    }
    Ok(EthernetAddress(mac))
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn names_are_checked_before_any_syscall() {
        for bad in ["", "a-name-of-16-oct", "nul\0", "a/b"] {
            assert!(
                matches!(ifreq_named(bad), Err(NetError::BadInterfaceName(_))),
                "{bad:?}"
            );
        }
        assert!(ifreq_named("veth-123456789a").is_ok());
    }

    #[test]
    fn loopback_is_visible_without_privilege() {
        let fd = control_socket("lo").unwrap();
        assert!(index(&fd, "lo").unwrap() > 0);
        assert!(is_up(&fd, "lo").unwrap());
        assert!(mtu(&fd, "lo").unwrap() >= 1500);
        assert_eq!(mac(&fd, "lo").unwrap(), EthernetAddress([0; 6]));
        assert!(matches!(
            index(&fd, "no-such-if0"),
            Err(NetError::NoSuchInterface(_))
        ));
    }
}
