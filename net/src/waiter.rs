//! [`Waiter`]: one wait for several descriptors (a link and a storage waker) that costs one
//! system call per wait and nothing per descriptor.
//!
//! `poll(2)` adds the caller to every descriptor's wait queue and removes it again on each
//! call; on Linux a `Waiter` registers the descriptors once with an `epoll` instance, so a
//! wait is one `epoll_wait(2)` whatever the number of descriptors (measured on the depth-1
//! path of a target, where every request costs one wait). Elsewhere it is `poll(2)`.
//!
//! Guarantees: [`Waiter::wait`] returns the same mask [`crate::wait_readable_mask`] would for
//! the same descriptors (bit `i` for descriptor `i` readable or in error; 0 on timeout or
//! signal); the descriptors must stay open as long as the `Waiter` (the caller makes a new one
//! when it replaces one of them, a reopened link for instance).

use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::time::Duration;

/// One wait for up to 8 descriptors (a link and a storage waker): registered once with an
/// `epoll` instance on Linux, so a wait costs one `epoll_wait(2)` whatever their number;
/// `poll(2)` elsewhere. [`wait`](Self::wait) returns the mask [`crate::wait_readable_mask`]
/// would; the descriptors must stay open as long as the `Waiter`.
#[derive(Debug)]
pub struct Waiter {
    #[cfg(target_os = "linux")]
    epoll: std::os::fd::OwnedFd,
    fds: Vec<RawFd>,
}

impl Waiter {
    /// A waiter for `fds` (at most 8), which must outlive it.
    ///
    /// # Errors
    /// When the kernel refuses the `epoll` instance or a registration, or more than 8
    /// descriptors are given.
    pub fn new(fds: &[BorrowedFd<'_>]) -> std::io::Result<Waiter> {
        if fds.len() > 8 {
            return Err(std::io::Error::from_raw_os_error(libc::EINVAL));
        }
        let raw: Vec<RawFd> = fds.iter().map(AsRawFd::as_raw_fd).collect();
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::FromRawFd;
            // SAFETY: plain epoll_create1(2); the result is checked before use.
            let epoll = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
            if epoll < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // SAFETY: a fresh descriptor nothing else owns.
            let epoll = unsafe { std::os::fd::OwnedFd::from_raw_fd(epoll) };
            for (index, &fd) in raw.iter().enumerate() {
                let mut event = libc::epoll_event {
                    events: libc::EPOLLIN as u32,
                    u64: index as u64,
                };
                // SAFETY: `event` is a valid epoll_event; `fd` is open (the caller's borrow).
                let rc = unsafe {
                    libc::epoll_ctl(epoll.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut event)
                };
                if rc < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(Waiter { epoll, fds: raw })
        }
        #[cfg(not(target_os = "linux"))]
        Ok(Waiter { fds: raw })
    }

    /// Waits until a descriptor is readable (or in error) or `timeout` passes (forever with
    /// `None`); the mask of those that are, 0 on timeout or signal.
    ///
    /// # Errors
    /// When the wait itself fails.
    pub fn wait(&self, timeout: Option<Duration>) -> std::io::Result<u32> {
        let millis = match timeout {
            None => -1,
            // Round up so that a 0.5 ms timeout waits instead of spinning.
            Some(t) => i32::try_from(t.as_micros().div_ceil(1000)).unwrap_or(i32::MAX),
        };
        #[cfg(target_os = "linux")]
        {
            let mut events = [libc::epoll_event { events: 0, u64: 0 }; 8];
            let max = i32::try_from(self.fds.len().max(1)).unwrap_or(1);
            // SAFETY: `events` has room for `max` entries; the epoll descriptor is ours.
            let rc = unsafe {
                libc::epoll_wait(self.epoll.as_raw_fd(), events.as_mut_ptr(), max, millis)
            };
            if rc < 0 {
                let error = std::io::Error::last_os_error();
                return if error.kind() == std::io::ErrorKind::Interrupted {
                    Ok(0)
                } else {
                    Err(error)
                };
            }
            let ready = usize::try_from(rc).unwrap_or(0);
            Ok(events[..ready]
                .iter()
                .filter(|event| event.u64 < 32)
                .fold(0, |mask, event| mask | 1 << event.u64))
        }
        #[cfg(not(target_os = "linux"))]
        {
            // SAFETY: the caller keeps the descriptors open for the waiter's life.
            let fds: Vec<BorrowedFd<'_>> = self
                .fds
                .iter()
                .map(|&fd| unsafe { BorrowedFd::borrow_raw(fd) })
                .collect();
            let _ = millis;
            crate::wait_readable_mask(&fds, timeout)
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use std::os::fd::{AsFd, FromRawFd, OwnedFd};

    fn pipe() -> (OwnedFd, OwnedFd) {
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two descriptors pipe(2) writes.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: two fresh descriptors we own.
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
    }

    #[test]
    fn the_mask_names_the_readable_descriptors() {
        let (a_read, a_write) = pipe();
        let (b_read, b_write) = pipe();
        let waiter = Waiter::new(&[a_read.as_fd(), b_read.as_fd()]).unwrap();
        assert_eq!(waiter.wait(Some(Duration::from_millis(5))).unwrap(), 0);
        let poke = |fd: &OwnedFd| {
            // SAFETY: writes one octet from a live buffer to a pipe we own.
            unsafe { libc::write(fd.as_raw_fd(), [1u8].as_ptr().cast(), 1) }
        };
        assert_eq!(poke(&b_write), 1);
        assert_eq!(waiter.wait(None).unwrap(), 0b10);
        assert_eq!(poke(&a_write), 1);
        assert_eq!(waiter.wait(Some(Duration::ZERO)).unwrap(), 0b11);
        assert_eq!(
            crate::wait_readable_mask(&[a_read.as_fd(), b_read.as_fd()], Some(Duration::ZERO))
                .unwrap(),
            0b11,
            "the same mask as poll(2)"
        );
    }
}
