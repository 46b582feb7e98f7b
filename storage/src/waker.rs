//! One wake-up descriptor per worker, shared by all its storage queues.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::sync::Arc;

/// An `eventfd(2)` that storage queues signal when completions become ready, and that a worker
/// polls (with its link) and clears before it reaps. Cheap to clone; signalling is safe from
/// any thread (a storage library's callback thread, a helper thread).
#[derive(Debug, Clone)]
pub struct Waker {
    fd: Arc<OwnedFd>,
}

impl Waker {
    /// A new, unsignalled waker.
    ///
    /// # Errors
    /// When the system refuses an eventfd.
    pub fn new() -> io::Result<Waker> {
        // SAFETY: plain eventfd(2) call; the result is checked before use.
        let raw = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        Ok(Waker { fd: Arc::new(fd) })
    }

    /// Signals: the descriptor polls readable until [`clear`](Self::clear).
    pub fn wake(&self) {
        let one: u64 = 1;
        // SAFETY: writes the 8 octets of `one` to our eventfd. It can only fail with EAGAIN
        // when the counter is about to overflow, which means it is signalled anyway.
        let _ = unsafe {
            libc::write(
                self.fd.as_raw_fd(),
                std::ptr::from_ref(&one).cast(),
                size_of::<u64>(),
            )
        };
    }

    /// Clears the signal (call before reaping, so that a completion that arrives during the
    /// reap signals again).
    pub fn clear(&self) {
        let mut count: u64 = 0;
        // SAFETY: reads at most 8 octets into `count`; EAGAIN (not signalled) is fine.
        let _ = unsafe {
            libc::read(
                self.fd.as_raw_fd(),
                std::ptr::from_mut(&mut count).cast(),
                size_of::<u64>(),
            )
        };
    }

    /// The descriptor to poll for readability.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod test {
    use super::*;

    fn readable(waker: &Waker) -> bool {
        let mut poll_fd = libc::pollfd {
            fd: waker.fd().as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, count 1, no wait.
        unsafe { libc::poll(&mut poll_fd, 1, 0) == 1 }
    }

    #[test]
    fn wake_signals_until_cleared_from_any_thread() {
        let waker = Waker::new().unwrap();
        assert!(!readable(&waker));
        let other = waker.clone();
        std::thread::spawn(move || other.wake()).join().unwrap();
        assert!(readable(&waker));
        waker.clear();
        assert!(!readable(&waker));
    }
}
