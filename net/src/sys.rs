//! Checked wrappers of the socket calls the Linux back ends share: `setsockopt`/`getsockopt`
//! of plain C values, the `TPACKET_V2` ring request of the `PACKET_MMAP` receive and transmit
//! rings, and the shared mapping of a socket's ring.
//!
//! What this module guarantees: every call passes the exact size of the value it points at,
//! and a mapping is returned only when the kernel made it; it imports nothing of this crate
//! but [`NetError`], so every back end can use it without import cycles.

use super::NetError;
use std::os::fd::{AsRawFd, OwnedFd};
use std::ptr::NonNull;

/// `setsockopt(SOL_PACKET, PACKET_VERSION)`.
pub(crate) const PACKET_VERSION: libc::c_int = 10;
/// `TPACKET_V2` (`PACKET_VERSION` value).
pub(crate) const TPACKET_V2: libc::c_int = 1;

/// The size of a C struct as the kernel's length type; every such struct is far below 4 GiB.
#[allow(clippy::cast_possible_truncation)]
pub(crate) const fn socklen_of<T>() -> libc::socklen_t {
    size_of::<T>() as libc::socklen_t
}

/// `setsockopt(fd, level, option, value)` for a plain C value; false when the kernel refuses.
pub(crate) fn set_option<T>(
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

/// `setsockopt` of a C `int`.
pub(crate) fn set_int_option(
    fd: &OwnedFd,
    level: libc::c_int,
    option: libc::c_int,
    value: i32,
) -> bool {
    set_option(fd, level, option, &value)
}

/// `getsockopt` of a C `int`; `None` when the kernel refuses.
pub(crate) fn get_int_option(fd: &OwnedFd, level: libc::c_int, option: libc::c_int) -> Option<i32> {
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

/// `struct tpacket_req`: a `PACKET_RX_RING` or `PACKET_TX_RING` request.
#[repr(C)]
pub(crate) struct TpacketReq {
    tp_block_size: u32,
    tp_block_nr: u32,
    tp_frame_size: u32,
    tp_frame_nr: u32,
}

impl TpacketReq {
    /// A ring of `frames` frames of `frame_size` octets, one frame per block (so that each
    /// allocation is one frame).
    pub(crate) fn one_frame_per_block(frame_size: usize, frames: usize) -> TpacketReq {
        let size = u32::try_from(frame_size).unwrap_or(u32::MAX);
        let count = u32::try_from(frames).unwrap_or(u32::MAX);
        TpacketReq {
            tp_block_size: size,
            tp_block_nr: count,
            tp_frame_size: size,
            tp_frame_nr: count,
        }
    }
}

/// Maps `len` octets of the ring at `offset` of socket `fd` shared and populated, at an address
/// the kernel picks; `what` names the step in the error.
///
/// # Errors
/// [`NetError::Io`] when the kernel refuses the mapping.
pub(crate) fn map_ring(
    fd: &OwnedFd,
    len: usize,
    offset: libc::off_t,
    interface: &str,
    what: &'static str,
) -> Result<NonNull<u8>, NetError> {
    // SAFETY: asks for a new shared mapping of the socket's ring at an address the kernel
    // picks (no existing memory is touched); the result is checked before use.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_POPULATE,
            fd.as_raw_fd(),
            offset,
        )
    };
    if base == libc::MAP_FAILED {
        return Err(NetError::last(interface, what));
    }
    NonNull::new(base.cast::<u8>()).ok_or_else(|| NetError::last(interface, what))
}
