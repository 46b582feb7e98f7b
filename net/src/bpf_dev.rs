//! The BPF back end for FreeBSD: a `/dev/bpf` device bound to one interface (`BIOCSETIF`), with
//! the classic filter of [`crate::cbpf::aoe_filter`] (`BIOCSETF`), immediate delivery
//! (`BIOCIMMEDIATE`), only incoming frames (`BIOCSDIRECTION`), and header-complete writes
//! (`BIOCSHDRCMPLT`: the source MAC is ours to write, as in every reply). The reader of the
//! records a `read(2)` returns ([`records`]) is plain code, tested on every platform.
//!
//! What `BpfLink` guarantees, beyond [`Link`](crate::Link):
//!
//! * it receives only EtherType 0x88A2 frames addressed to the interface's MAC or broadcast
//!   (the kernel runs the filter before copying anything), never the frames this host sends;
//! * one `read(2)` takes every frame the kernel buffered, each copied into a pool frame (BPF
//!   has no shared ring); frames the filter cut short (longer than a pool frame) are dropped;
//! * sends are one `write(2)` per frame, the frame exactly as given.

/// One captured frame inside a BPF read buffer: where its octets are, how many were captured
/// and how long it was on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    /// Offset of the frame's first octet in the buffer.
    pub start: usize,
    /// Octets captured (what the filter kept).
    pub caplen: usize,
    /// The frame's length on the wire.
    pub datalen: usize,
}

/// Octets of `struct bpf_hdr` fields on 64-bit FreeBSD: a 16-octet `struct timeval`, then
/// `bh_caplen` and `bh_datalen` (u32 each) and `bh_hdrlen` (u16).
const CAPLEN_AT: usize = 16;
const DATALEN_AT: usize = 20;
const HDRLEN_AT: usize = 24;
const HEADER_MIN: usize = 26;
/// Records are padded to the size of a `long` (`BPF_WORDALIGN`).
const WORD: usize = 8;

/// The records of one BPF read buffer, in order. Stops at the first malformed header (one that
/// does not fit the buffer), so it never reads outside `buffer`.
pub fn records(buffer: &[u8]) -> Vec<Record> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + HEADER_MIN <= buffer.len() {
        let word = |offset: usize| {
            u32::from_ne_bytes([
                buffer[at + offset],
                buffer[at + offset + 1],
                buffer[at + offset + 2],
                buffer[at + offset + 3],
            ]) as usize
        };
        let caplen = word(CAPLEN_AT);
        let datalen = word(DATALEN_AT);
        let hdrlen = usize::from(u16::from_ne_bytes([
            buffer[at + HDRLEN_AT],
            buffer[at + HDRLEN_AT + 1],
        ]));
        let start = at + hdrlen;
        if hdrlen < HEADER_MIN || start + caplen > buffer.len() {
            break;
        }
        out.push(Record {
            start,
            caplen,
            datalen,
        });
        at = (start + caplen).next_multiple_of(WORD);
    }
    out
}

#[cfg(target_os = "freebsd")]
pub use device::BpfLink;

#[cfg(target_os = "freebsd")]
mod device {
    use super::records;
    use crate::frame::{Arena, Frame};
    use crate::{EthernetAddress, Link, NetError, ifreq};
    use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
    use std::sync::Arc;
    use std::time::Duration;

    const BIOCGBLEN: libc::c_ulong = 0x4004_4266;
    const BIOCSBLEN: libc::c_ulong = 0xc004_4266;
    const BIOCSETF: libc::c_ulong = 0x8010_4267;
    const BIOCSETIF: libc::c_ulong = 0x8020_426c;
    const BIOCGSTATS: libc::c_ulong = 0x4008_426f;
    const BIOCIMMEDIATE: libc::c_ulong = 0x8004_4270;
    const BIOCSHDRCMPLT: libc::c_ulong = 0x8004_4275;
    const BIOCSDIRECTION: libc::c_ulong = 0x8004_4277;
    const FIONBIO: libc::c_ulong = 0x8004_667e;
    /// `BPF_D_IN`: only frames the interface received.
    const BPF_D_IN: libc::c_uint = 0;
    /// The kernel buffer asked for (FreeBSD caps it at `net.bpf.maxbufsize`, 512 KiB by default).
    const BUFFER_BYTES: libc::c_uint = 512 * 1024;

    /// `struct bpf_program`.
    #[repr(C)]
    struct BpfProgram {
        len: libc::c_uint,
        insns: *const crate::cbpf::Insn,
    }

    /// `struct bpf_stat`.
    #[repr(C)]
    #[derive(Default)]
    struct BpfStat {
        received: libc::c_uint,
        dropped: libc::c_uint,
    }

    /// A `/dev/bpf` device on one interface; see the [module docs](super).
    pub struct BpfLink {
        fd: OwnedFd,
        control: OwnedFd,
        name: String,
        mac: EthernetAddress,
        pool: Arc<Arena>,
        /// The read buffer: exactly the kernel's buffer size, as BPF requires.
        buffer: Vec<u8>,
        /// Frames of the last read not handed out yet (`recv` was given a smaller `max`).
        pending: Vec<Frame>,
        drops_seen: u64,
    }

    impl std::fmt::Debug for BpfLink {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("BpfLink")
                .field("name", &self.name)
                .finish_non_exhaustive()
        }
    }

    fn ioctl<T>(fd: &OwnedFd, request: libc::c_ulong, value: &mut T) -> bool {
        // SAFETY: `value` is a live, writable `T` of the size and layout `request` expects
        // (each call site pairs them as the BPF manual does).
        unsafe { libc::ioctl(fd.as_raw_fd(), request, std::ptr::from_mut(value)) == 0 }
    }

    impl BpfLink {
        /// Opens a BPF device on `interface` with the AoE filter for the interface's MAC and a
        /// pool of `pool_frames` frames.
        ///
        /// # Errors
        /// [`NetError::NoSuchInterface`], [`NetError::InterfaceDown`],
        /// [`NetError::NoPermission`] (no access to `/dev/bpf`), or [`NetError::Io`].
        pub fn open(interface: &str, pool_frames: usize) -> Result<BpfLink, NetError> {
            let control = ifreq::control_socket(interface)?;
            ifreq::index(&control, interface)?;
            if !ifreq::is_up(&control, interface)? {
                return Err(NetError::InterfaceDown(interface.to_owned()));
            }
            let mac = ifreq::mac(&control, interface)?;
            // SAFETY: a NUL-terminated path; the result is checked before use.
            let raw = unsafe { libc::open(c"/dev/bpf".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
            if raw < 0 {
                return Err(NetError::last(interface, "open /dev/bpf"));
            }
            // SAFETY: a fresh descriptor nothing else owns.
            let fd = unsafe { OwnedFd::from_raw_fd(raw) };
            let mut size = BUFFER_BYTES;
            // Best effort: the kernel keeps its default when it refuses.
            let _ = ioctl(&fd, BIOCSBLEN, &mut size);
            let mut request = ifreq::ifreq_named(interface)?;
            if !ioctl(&fd, BIOCSETIF, &mut request) {
                return Err(NetError::last(interface, "attach the BPF device"));
            }
            let filter = crate::cbpf::aoe_filter(mac);
            let mut program = BpfProgram {
                len: libc::c_uint::try_from(filter.len()).unwrap_or(0),
                insns: filter.as_ptr(),
            };
            let mut one: libc::c_uint = 1;
            let mut direction = BPF_D_IN;
            let mut nonblocking: libc::c_int = 1;
            for (ok, step) in [
                (ioctl(&fd, BIOCSETF, &mut program), "set the BPF filter"),
                (ioctl(&fd, BIOCIMMEDIATE, &mut one), "set immediate mode"),
                (
                    ioctl(&fd, BIOCSHDRCMPLT, &mut one),
                    "set header-complete writes",
                ),
                (
                    ioctl(&fd, BIOCSDIRECTION, &mut direction),
                    "receive incoming frames only",
                ),
                (
                    ioctl(&fd, FIONBIO, &mut nonblocking),
                    "make reads non-blocking",
                ),
            ] {
                if !ok {
                    return Err(NetError::last(interface, step));
                }
            }
            let mut length: libc::c_uint = 0;
            if !ioctl(&fd, BIOCGBLEN, &mut length) {
                return Err(NetError::last(interface, "read the BPF buffer size"));
            }
            Ok(BpfLink {
                fd,
                control,
                name: interface.to_owned(),
                mac,
                pool: Arena::pool(pool_frames.max(1)),
                buffer: vec![0; length as usize],
                pending: Vec::new(),
                drops_seen: 0,
            })
        }

        /// One `read(2)`: every buffered frame into `pending`; false when there was none.
        fn read_batch(&mut self) -> Result<bool, NetError> {
            // SAFETY: `buffer` is writable for its whole length, which is the kernel's buffer
            // size (BIOCGBLEN), as a BPF read requires.
            let got = unsafe {
                libc::read(
                    self.fd.as_raw_fd(),
                    self.buffer.as_mut_ptr().cast(),
                    self.buffer.len(),
                )
            };
            if got < 0 {
                let error = std::io::Error::last_os_error();
                return match error.raw_os_error() {
                    Some(libc::EAGAIN | libc::EINTR) => Ok(false),
                    _ => Err(NetError::os(&self.name, "receive frames", error)),
                };
            }
            let got = usize::try_from(got).unwrap_or(0);
            for record in records(&self.buffer[..got]) {
                // A frame longer than what was captured was cut by the filter: drop it.
                if record.caplen != record.datalen {
                    continue;
                }
                let Some(mut frame) = self.pool.take() else {
                    break;
                };
                if record.caplen > frame.capacity() {
                    continue;
                }
                frame.fill(&self.buffer[record.start..record.start + record.caplen]);
                self.pending.push(frame);
            }
            Ok(got > 0)
        }
    }

    impl Link for BpfLink {
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
            if self.pending.is_empty() {
                self.read_batch()?;
            }
            let take = self.pending.len().min(max);
            frames.extend(self.pending.drain(..take));
            Ok(take)
        }

        fn wait(&mut self, timeout: Option<Duration>) -> Result<bool, NetError> {
            if !self.pending.is_empty() {
                return Ok(true);
            }
            let fd = self.fd.as_fd();
            crate::wait_readable_any(&[fd], timeout)
                .map_err(|error| NetError::os(&self.name, "wait for frames", error))
        }

        fn readiness_fd(&self) -> Option<BorrowedFd<'_>> {
            Some(self.fd.as_fd())
        }

        fn frames_known_ready(&mut self) -> bool {
            // Frames of the last read not handed out yet: the descriptor does not show them.
            !self.pending.is_empty()
        }

        fn alloc(&mut self) -> Option<Frame> {
            self.pool.take()
        }

        fn send(&mut self, frames: &mut Vec<Frame>) -> Result<usize, NetError> {
            let mut sent = 0;
            for frame in frames.drain(..) {
                if frame.is_empty() {
                    continue;
                }
                let bytes = frame.as_slice();
                // SAFETY: `bytes` is live for the call; the kernel only reads it.
                let rc =
                    unsafe { libc::write(self.fd.as_raw_fd(), bytes.as_ptr().cast(), bytes.len()) };
                if rc < 0 {
                    let error = std::io::Error::last_os_error();
                    if matches!(error.raw_os_error(), Some(libc::ENOBUFS | libc::EAGAIN)) {
                        log::warn!("{}: device queue full; a frame dropped", self.name);
                        continue;
                    }
                    return Err(NetError::os(&self.name, "send frames", error));
                }
                sent += 1;
            }
            Ok(sent)
        }

        fn set_buffer_bytes(
            &mut self,
            _rx_bytes: usize,
            _tx_bytes: usize,
        ) -> Result<(usize, usize), NetError> {
            // The BPF buffer was sized at open; writes go straight to the interface queue.
            Ok((self.buffer.len(), 0))
        }

        fn take_drops(&mut self) -> u64 {
            let mut stats = BpfStat::default();
            if !ioctl(&self.fd, BIOCGSTATS, &mut stats) {
                return 0;
            }
            let total = u64::from(stats.dropped);
            let new = total.saturating_sub(self.drops_seen);
            self.drops_seen = total;
            new
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;

    /// A BPF read buffer as 64-bit FreeBSD lays it out: header, frame, padding to 8.
    fn buffer_of(frames: &[(&[u8], usize)]) -> Vec<u8> {
        let mut buffer = Vec::new();
        for (frame, wire_len) in frames {
            let mut header = vec![0u8; 32];
            header[CAPLEN_AT..CAPLEN_AT + 4]
                .copy_from_slice(&u32::try_from(frame.len()).unwrap().to_ne_bytes());
            header[DATALEN_AT..DATALEN_AT + 4]
                .copy_from_slice(&u32::try_from(*wire_len).unwrap().to_ne_bytes());
            // bh_hdrlen: the header padded to a word (as the kernel aligns the frame).
            header[HDRLEN_AT..HDRLEN_AT + 2].copy_from_slice(&32u16.to_ne_bytes());
            buffer.extend_from_slice(&header);
            buffer.extend_from_slice(frame);
            while buffer.len() % WORD != 0 {
                buffer.push(0xEE);
            }
        }
        buffer
    }

    #[test]
    fn records_are_read_in_order_with_their_padding() {
        let a = vec![1u8; 60];
        let b = vec![2u8; 61];
        let c = vec![3u8; 1514];
        let buffer = buffer_of(&[(&a, 60), (&b, 61), (&c, 9000)]);
        let found = records(&buffer);
        assert_eq!(found.len(), 3);
        assert_eq!(
            &buffer[found[0].start..found[0].start + found[0].caplen],
            &a[..]
        );
        assert_eq!(
            &buffer[found[1].start..found[1].start + found[1].caplen],
            &b[..]
        );
        assert_eq!(found[2].caplen, 1514);
        assert_eq!(found[2].datalen, 9000, "a cut frame says so");
    }

    #[test]
    fn a_malformed_buffer_never_reads_outside_itself() {
        let frame = vec![7u8; 100];
        let mut buffer = buffer_of(&[(&frame, 100)]);
        // Claims more octets than there are.
        buffer[CAPLEN_AT..CAPLEN_AT + 4].copy_from_slice(&5000u32.to_ne_bytes());
        assert!(records(&buffer).is_empty());
        // A header length below the header itself.
        let mut buffer = buffer_of(&[(&frame, 100)]);
        buffer[HDRLEN_AT..HDRLEN_AT + 2].copy_from_slice(&4u16.to_ne_bytes());
        assert!(records(&buffer).is_empty());
        // Truncated anywhere: only whole records come out.
        let buffer = buffer_of(&[(&frame, 100), (&frame, 100)]);
        for cut in 0..buffer.len() {
            let found = records(&buffer[..cut]);
            assert!(found.iter().all(|r| r.start + r.caplen <= cut));
        }
    }
}
