//! Interface facts from the kernel by name on FreeBSD: index (`if_nametoindex`), flags and MTU
//! (`SIOCGIFFLAGS`, `SIOCGIFMTU`), MAC (`getifaddrs`, the interface's `AF_LINK` address). The
//! same functions as the Linux module, so the back ends need not care.

use super::{EthernetAddress, NetError};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// Interface names are at most 15 octets plus the NUL (`IFNAMSIZ`).
const NAME_MAX: usize = 15;

/// `SIOCGIFFLAGS`: `_IOWR('i', 17, struct ifreq)`.
const SIOCGIFFLAGS: libc::c_ulong = 0xc020_6911;
/// `SIOCGIFMTU`: `_IOWR('i', 51, struct ifreq)`.
const SIOCGIFMTU: libc::c_ulong = 0xc020_6933;

/// FreeBSD's `struct ifreq`: the name, then a 16-octet union (flags as two shorts, or the MTU
/// as an int, at its start).
#[repr(C)]
pub(crate) struct IfReq {
    pub(crate) name: [u8; 16],
    data: [u8; 16],
}

/// An `ifreq` naming `interface`, all other fields zero.
pub(crate) fn ifreq_named(interface: &str) -> Result<IfReq, NetError> {
    let bytes = interface.as_bytes();
    if bytes.is_empty() || bytes.len() > NAME_MAX || bytes.contains(&0) || bytes.contains(&b'/') {
        return Err(NetError::BadInterfaceName(interface.to_owned()));
    }
    let mut request = IfReq {
        name: [0; 16],
        data: [0; 16],
    };
    request.name[..bytes.len()].copy_from_slice(bytes);
    Ok(request)
}

fn query(
    fd: &OwnedFd,
    interface: &str,
    request_code: libc::c_ulong,
    step: &'static str,
) -> Result<IfReq, NetError> {
    let mut request = ifreq_named(interface)?;
    // SAFETY: `request` is a valid, writable ifreq with a NUL-terminated name; the SIOCGIF*
    // ioctls read the name and write only inside the struct.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), request_code, &mut request) };
    if rc < 0 {
        return Err(match io::Error::last_os_error().raw_os_error() {
            Some(libc::ENXIO) => NetError::NoSuchInterface(interface.to_owned()),
            _ => NetError::last(interface, step),
        });
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
pub(crate) fn index(_fd: &OwnedFd, interface: &str) -> Result<i32, NetError> {
    let request = ifreq_named(interface)?;
    // SAFETY: the name is NUL-terminated (the array is one longer than any accepted name).
    let index = unsafe { libc::if_nametoindex(request.name.as_ptr().cast()) };
    match i32::try_from(index) {
        Ok(0) | Err(_) => Err(NetError::NoSuchInterface(interface.to_owned())),
        Ok(index) => Ok(index),
    }
}

/// True if the interface is administratively up (`IFF_UP`).
pub(crate) fn is_up(fd: &OwnedFd, interface: &str) -> Result<bool, NetError> {
    let request = query(fd, interface, SIOCGIFFLAGS, "read the interface flags")?;
    let flags = i16::from_ne_bytes([request.data[0], request.data[1]]);
    Ok(i32::from(flags) & libc::IFF_UP != 0)
}

/// The interface's MTU.
pub(crate) fn mtu(fd: &OwnedFd, interface: &str) -> Result<usize, NetError> {
    let request = query(fd, interface, SIOCGIFMTU, "read the MTU")?;
    let mtu = i32::from_ne_bytes([
        request.data[0],
        request.data[1],
        request.data[2],
        request.data[3],
    ]);
    Ok(usize::try_from(mtu).unwrap_or(0))
}

/// The interface's MAC: the link-layer (`AF_LINK`) address `getifaddrs` lists for it.
pub(crate) fn mac(_fd: &OwnedFd, interface: &str) -> Result<EthernetAddress, NetError> {
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs writes a list head we free below.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return Err(NetError::last(interface, "list the interface addresses"));
    }
    let mut found = None;
    let mut entry = list;
    while !entry.is_null() {
        // SAFETY: `entry` is a node of the list getifaddrs made, alive until freeifaddrs.
        let node = unsafe { &*entry };
        entry = node.ifa_next;
        if node.ifa_addr.is_null() || node.ifa_name.is_null() {
            continue;
        }
        // SAFETY: a NUL-terminated name owned by the list.
        let name = unsafe { std::ffi::CStr::from_ptr(node.ifa_name) };
        // SAFETY: `ifa_addr` is non-null and points at a sockaddr of the list.
        let family = i32::from(unsafe { (*node.ifa_addr).sa_family });
        if name.to_bytes() != interface.as_bytes() || family != libc::AF_LINK {
            continue;
        }
        // SAFETY: an AF_LINK address is a sockaddr_dl.
        let link = unsafe { &*node.ifa_addr.cast::<libc::sockaddr_dl>() };
        let start = usize::from(link.sdl_nlen);
        if link.sdl_alen == 6 && start + 6 <= link.sdl_data.len() {
            let mut mac = [0u8; 6];
            for (octet, &byte) in mac.iter_mut().zip(&link.sdl_data[start..start + 6]) {
                *octet = byte.cast_unsigned();
            }
            found = Some(EthernetAddress(mac));
        }
    }
    // SAFETY: frees the list getifaddrs made, once; no reference into it is used after this.
    unsafe { libc::freeifaddrs(list) };
    found.ok_or_else(|| NetError::NoSuchInterface(interface.to_owned()))
}
