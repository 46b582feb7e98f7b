//! The AF_XDP back end: an XDP program that hands the interface's AoE frames for this host to
//! AF_XDP sockets and passes everything else on to the kernel, and [`XdpLink`], one such socket
//! whose UMEM is the arena its frames live in.
//!
//! Why our own small code and not a crate: the program is 22 instructions, loaded with one
//! `bpf(BPF_PROG_LOAD)` (aya would need a BPF toolchain to build it, libxdp a C library and its
//! own program dispatcher), and attached with `bpf(BPF_LINK_CREATE)`, an attachment the kernel
//! removes as soon as the last descriptor of it closes: on every exit, `SIGKILL` included, with
//! nothing pinned and nothing to clean up. The XSK rings are four shared-memory queues of a
//! few lines each; xsk-rs would add its own frame type, where ours must be the seam's
//! [`Frame`].
//!
//! What it guarantees, beyond [`Link`]:
//!
//! * **Only our frames leave the kernel's path.** The program redirects a frame to the socket
//!   of its receive queue only if it is EtherType 0x88A2 and addressed to the interface's MAC
//!   or to broadcast; every other frame (IP, ARP, AoE for other hosts) goes on to the kernel
//!   (`XDP_PASS`), so host-sim can share an interface with IP traffic. An AoE frame for us that
//!   arrives on a queue without a socket is dropped (no one else would take it).
//! * **No copy in user space, either way.** The UMEM is an [`Arena`]: a received frame is
//!   handed out as a [`Frame`] of the UMEM slot the kernel wrote it into (octet 36 page-aligned,
//!   for `O_DIRECT`), the reply is built in that frame, and it is sent from that same slot; a
//!   frame from another arena is copied into a UMEM slot once, on send. In copy mode (veth, and
//!   drivers without zero-copy) the kernel copies between its buffers and the UMEM; in
//!   zero-copy mode the NIC does DMA into it.
//! * **Zero-copy only where it is safe**: frames start 3804 octets into their 16 KiB slot, so a
//!   frame may cross a page; the kernel accepts that for DMA only on physically contiguous
//!   memory, so zero-copy is asked for only when the UMEM got huge pages, copy mode otherwise.
//! * **Jumbo frames: a fallback, not multi-buffer.** Each slot has room for a whole MTU-9000
//!   frame, and the kernel is offered one aligned 16 KiB chunk per slot first (Linux 6.6 and
//!   later take chunks above a page, on huge pages only); where it refuses (no huge pages
//!   reserved, or an older kernel: the 6.18 kernel of our CI refused it even on huge pages) it
//!   gets 4 KiB chunks, and then [`Link::mtu`] reports at most what a chunk holds (3826 octets
//!   of payload): the target advertises only frames it can take whole, and no frame is ever
//!   cut. The automatic choice ([`crate::open_target_member`]) therefore takes AF_XDP only
//!   when its chunks carry MTU-9000 frames ([`XdpLink::carries_jumbo_frames`]), so that a
//!   later MTU change never makes the target advertise less than the ring would; `--link=xdp`
//!   takes it with smaller frames. XDP multi-buffer (`XDP_USE_SG`) would hand a jumbo frame
//!   over in several chunks, which a `Frame` (one contiguous buffer, read and written in place
//!   by `O_DIRECT`) cannot be; the program is loaded multi-buffer aware only so that veth lets
//!   the MTU grow while it is attached in driver mode. The program is attached in driver mode
//!   where the driver allows, else in generic (`SKB`) mode, which gives it linear frames.
//! * **Detached on every exit**: see above; the attachment lives exactly as long as the
//!   [`XdpLink`]s of the interface (they share it).
//! * Wake-ups follow the `need_wakeup` flags: a receive kick only when the fill ring asks for
//!   one, a transmit kick per batch where the kernel asks (always, in copy mode).

use crate::frame::{Arena, Frame, UMEM_HEAD, UMEM_STRIDE};
use crate::ifreq;
use crate::{EthernetAddress, Link, NetError};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

// ---- Kernel ABI (linux/bpf.h, linux/if_xdp.h) --------------------------------------------

const BPF_MAP_CREATE: libc::c_int = 0;
const BPF_MAP_UPDATE_ELEM: libc::c_int = 2;
const BPF_PROG_LOAD: libc::c_int = 5;
const BPF_PROG_TEST_RUN: libc::c_int = 10;
const BPF_LINK_CREATE: libc::c_int = 28;
const BPF_MAP_TYPE_XSKMAP: u32 = 17;
const BPF_PROG_TYPE_XDP: u32 = 6;
/// `expected_attach_type` / `attach_type` of an XDP program.
const BPF_XDP: u32 = 37;
const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
/// `prog_flags`: the program copes with frames of several buffers.
const BPF_F_XDP_HAS_FRAGS: u32 = 1 << 5;
const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;

const AF_XDP: libc::c_int = 44;
/// `AF_XDP` as the `sa_family_t` of a socket address.
const AF_XDP_FAMILY: u16 = 44;
const SOL_XDP: libc::c_int = 283;
const XDP_MMAP_OFFSETS: libc::c_int = 1;
const XDP_RX_RING: libc::c_int = 2;
const XDP_TX_RING: libc::c_int = 3;
const XDP_UMEM_REG: libc::c_int = 4;
const XDP_UMEM_FILL_RING: libc::c_int = 5;
const XDP_UMEM_COMPLETION_RING: libc::c_int = 6;
const XDP_STATISTICS: libc::c_int = 7;
const XDP_OPTIONS: libc::c_int = 8;
const XDP_OPTIONS_ZEROCOPY: u32 = 1;
const XDP_COPY: u16 = 1 << 1;
const XDP_USE_NEED_WAKEUP: u16 = 1 << 3;
const XDP_UMEM_UNALIGNED_CHUNK_FLAG: u32 = 1;
const XDP_RING_NEED_WAKEUP: u32 = 1;
const XDP_PGOFF_RX_RING: libc::off_t = 0;
const XDP_PGOFF_TX_RING: libc::off_t = 0x8000_0000;
const XDP_UMEM_PGOFF_FILL_RING: libc::off_t = 0x1_0000_0000;
const XDP_UMEM_PGOFF_COMPLETION_RING: libc::off_t = 0x1_8000_0000;
/// Headroom the kernel leaves in front of a received frame in its chunk.
const XDP_PACKET_HEADROOM: usize = 256;
/// In unaligned mode a receive descriptor's address carries an offset in its top 16 bits.
const UNALIGNED_OFFSET_SHIFT: u32 = 48;

const XDP_DROP: i32 = 1;
const XDP_PASS: i32 = 2;
/// `bpf_redirect_map` helper number.
const HELPER_REDIRECT_MAP: i32 = 51;

#[repr(C)]
#[derive(Default)]
struct XdpUmemReg {
    addr: u64,
    len: u64,
    chunk_size: u32,
    headroom: u32,
    flags: u32,
    tx_metadata_len: u32,
}

#[repr(C)]
#[derive(Default, Clone, Copy)]
struct RingOffset {
    producer: u64,
    consumer: u64,
    desc: u64,
    flags: u64,
}

#[repr(C)]
#[derive(Default)]
struct MmapOffsets {
    rx: RingOffset,
    tx: RingOffset,
    fill: RingOffset,
    completion: RingOffset,
}

#[repr(C)]
#[derive(Default, Clone, Copy)]
struct XdpDesc {
    addr: u64,
    len: u32,
    options: u32,
}

#[repr(C)]
struct SockaddrXdp {
    family: u16,
    flags: u16,
    ifindex: u32,
    queue_id: u32,
    shared_umem_fd: u32,
}

#[repr(C)]
#[derive(Default)]
struct XdpStatistics {
    rx_dropped: u64,
    rx_invalid_descs: u64,
    tx_invalid_descs: u64,
    rx_ring_full: u64,
    rx_fill_ring_empty_descs: u64,
    tx_ring_empty_descs: u64,
}

/// `union bpf_attr`, as plain octets: every command's fields are written at their offsets and
/// the rest stays zero, as the kernel requires.
#[repr(C, align(8))]
struct BpfAttr([u8; 128]);

impl BpfAttr {
    fn new() -> BpfAttr {
        BpfAttr([0; 128])
    }

    fn u32_at(&mut self, offset: usize, value: u32) -> &mut BpfAttr {
        self.0[offset..offset + 4].copy_from_slice(&value.to_ne_bytes());
        self
    }

    fn u64_at(&mut self, offset: usize, value: u64) -> &mut BpfAttr {
        self.0[offset..offset + 8].copy_from_slice(&value.to_ne_bytes());
        self
    }

    fn read_u32(&self, offset: usize) -> u32 {
        let mut bytes = [0; 4];
        bytes.copy_from_slice(&self.0[offset..offset + 4]);
        u32::from_ne_bytes(bytes)
    }
}

/// `bpf(cmd, attr)`; the result (a descriptor for some commands) or the error.
fn bpf(cmd: libc::c_int, attr: &mut BpfAttr) -> std::io::Result<libc::c_long> {
    // SAFETY: `attr` is a live, writable 128-octet `union bpf_attr` whose pointer fields, where
    // set, point at buffers the caller keeps alive for the call; its size is passed.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            std::ptr::from_mut(attr),
            size_of::<BpfAttr>(),
        )
    };
    if rc < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn fd_from(rc: libc::c_long) -> OwnedFd {
    let raw = libc::c_int::try_from(rc).unwrap_or(-1);
    // SAFETY: `rc` is a descriptor the kernel just returned to us and nothing else owns.
    unsafe { OwnedFd::from_raw_fd(raw) }
}

// ---- The program -------------------------------------------------------------------------

/// One eBPF instruction (`struct bpf_insn`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Insn {
    code: u8,
    /// Destination register in the low nibble, source in the high one.
    regs: u8,
    off: i16,
    imm: i32,
}

const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (src << 4) | dst,
        off,
        imm,
    }
}

// Opcodes used below.
const LDX_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const LDX_H: u8 = 0x69; // BPF_LDX | BPF_MEM | BPF_H
const MOV64_X: u8 = 0xbf;
const MOV64_K: u8 = 0xb7;
const ADD64_K: u8 = 0x07;
const JGT_X: u8 = 0x2d;
const JNE_K: u8 = 0x55;
const JA: u8 = 0x05;
const JNE32_K: u8 = 0x56; // BPF_JMP32 | BPF_JNE | BPF_K
const JEQ32_K: u8 = 0x16; // BPF_JMP32 | BPF_JEQ | BPF_K
const LD_IMM64: u8 = 0x18;
const CALL: u8 = 0x85;
const EXIT: u8 = 0x95;
/// `src` of a `LD_IMM64` whose immediate is a map's descriptor.
const PSEUDO_MAP_FD: u8 = 1;

/// The XDP program for an interface whose MAC is `mac`, redirecting into XSK map `map_fd`
/// (a frame for us with no socket on its queue is dropped).
fn program(mac: EthernetAddress, map_fd: i32) -> [Insn; 22] {
    let m = mac.0;
    // Loads are little-endian on the machines this runs on: compare with the octets as loaded.
    let head = i32::from_le_bytes([m[0], m[1], m[2], m[3]]);
    let tail = i32::from(u16::from_le_bytes([m[4], m[5]]));
    let ethertype = i32::from(u16::from_le_bytes(crate::ETHERTYPE_AOE.to_be_bytes()));
    // r1: struct xdp_md { u32 data, data_end, data_meta, ingress_ifindex, rx_queue_index }.
    // Jump offsets count instructions after the jump; `pass` is instruction 20.
    [
        /* 0 */ insn(LDX_W, 2, 1, 0, 0), // r2 = data
        /* 1 */ insn(LDX_W, 3, 1, 4, 0), // r3 = data_end
        /* 2 */ insn(MOV64_X, 4, 2, 0, 0), // r4 = data
        /* 3 */ insn(ADD64_K, 4, 0, 0, 14), // r4 += Ethernet header
        /* 4 */ insn(JGT_X, 4, 3, 15, 0), // runt: pass
        /* 5 */ insn(LDX_H, 4, 2, 12, 0), // r4 = EtherType
        /* 6 */ insn(JNE_K, 4, 0, 13, ethertype), // not AoE: pass
        /* 7 */ insn(LDX_W, 4, 2, 0, 0), // r4 = destination octets 0..4
        /* 8 */ insn(LDX_H, 5, 2, 4, 0), // r5 = destination octets 4..6
        /* 9 */ insn(JNE32_K, 4, 0, 2, head), // not ours: broadcast? (12)
        /* 10 */ insn(JEQ32_K, 5, 0, 3, tail), // ours: redirect (14)
        /* 11 */ insn(JA, 0, 0, 8, 0), // pass
        /* 12 */ insn(JNE32_K, 4, 0, 7, -1), // not broadcast: pass
        /* 13 */ insn(JNE_K, 5, 0, 6, 0xFFFF), // not broadcast: pass
        /* 14 */ insn(LDX_W, 2, 1, 16, 0), // r2 = rx_queue_index
        /* 15 */ insn(LD_IMM64, 1, PSEUDO_MAP_FD, 0, map_fd), // r1 = the XSK map
        /* 16 */ insn(0, 0, 0, 0, 0),
        /* 17 */ insn(MOV64_K, 3, 0, 0, XDP_DROP), // no socket on the queue: drop
        /* 18 */ insn(CALL, 0, 0, 0, HELPER_REDIRECT_MAP),
        /* 19 */ insn(EXIT, 0, 0, 0, 0),
        /* 20 */ insn(MOV64_K, 0, 0, 0, XDP_PASS),
        /* 21 */ insn(EXIT, 0, 0, 0, 0),
    ]
}

/// The XDP program of one interface, its XSK map and its attachment; detached when dropped
/// (the last [`XdpLink`] of the interface goes) or when the process ends in any way.
#[derive(Debug)]
pub struct XdpProgram {
    map: OwnedFd,
    prog: OwnedFd,
    /// The `bpf_link`: the attachment lives exactly as long as this descriptor.
    _attachment: OwnedFd,
    ifindex: u32,
    /// Driver (native) mode rather than generic (`SKB`) mode.
    pub native: bool,
}

/// Loads the program for `mac` with a map of `queues` entries; returns (map, program).
fn load(mac: EthernetAddress, queues: u32) -> std::io::Result<(OwnedFd, OwnedFd)> {
    // Declared multi-buffer aware first: veth then lets the MTU grow in driver mode (the
    // program reads only the first buffer's Ethernet header; frames of several buffers never
    // reach a socket, which takes whole frames only). Kernels before 5.18 do not know the flag.
    match load_with(mac, queues, BPF_F_XDP_HAS_FRAGS) {
        Err(error) if error.raw_os_error() == Some(libc::EINVAL) => load_with(mac, queues, 0),
        other => other,
    }
}

fn load_with(
    mac: EthernetAddress,
    queues: u32,
    prog_flags: u32,
) -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut attr = BpfAttr::new();
    attr.u32_at(0, BPF_MAP_TYPE_XSKMAP)
        .u32_at(4, 4)
        .u32_at(8, 4)
        .u32_at(12, queues.max(1));
    let map = fd_from(bpf(BPF_MAP_CREATE, &mut attr)?);
    let insns = program(mac, map.as_raw_fd());
    let license = c"Dual MIT/GPL";
    let mut log = vec![0u8; 64 * 1024];
    let mut attr = BpfAttr::new();
    attr.u32_at(0, BPF_PROG_TYPE_XDP)
        .u32_at(4, u32::try_from(insns.len()).unwrap_or(0))
        .u64_at(8, insns.as_ptr() as u64)
        .u64_at(16, license.as_ptr() as u64)
        .u32_at(24, 1)
        .u32_at(28, u32::try_from(log.len()).unwrap_or(0))
        .u64_at(32, log.as_mut_ptr() as u64)
        .u32_at(44, prog_flags)
        .u32_at(68, BPF_XDP);
    attr.0[48..48 + 7].copy_from_slice(b"aoe_xsk");
    match bpf(BPF_PROG_LOAD, &mut attr) {
        Ok(fd) => Ok((map, fd_from(fd))),
        Err(error) => {
            let text = String::from_utf8_lossy(&log);
            log::debug!("the verifier said: {}", text.trim_end_matches('\0'));
            Err(error)
        }
    }
}

impl XdpProgram {
    /// Loads the program for `interface` (index `ifindex`, MAC `mac`, `queues` receive queues)
    /// and attaches it, in driver mode if the driver allows, else in generic mode.
    ///
    /// # Errors
    /// [`NetError::NoPermission`] without `CAP_BPF`/`CAP_NET_ADMIN`, else [`NetError::Io`]
    /// naming the step the kernel refused (no BPF, an XDP program already attached, ...).
    pub fn attach(
        interface: &str,
        ifindex: u32,
        mac: EthernetAddress,
        queues: u32,
    ) -> Result<XdpProgram, NetError> {
        let (map, prog) = load(mac, queues)
            .map_err(|error| NetError::os(interface, "load the XDP program", error))?;
        let mut last = None;
        for (flags, native) in [(XDP_FLAGS_DRV_MODE, true), (XDP_FLAGS_SKB_MODE, false)] {
            let mut attr = BpfAttr::new();
            attr.u32_at(0, u32::try_from(prog.as_raw_fd()).unwrap_or(0))
                .u32_at(4, ifindex)
                .u32_at(8, BPF_XDP)
                .u32_at(12, flags);
            match bpf(BPF_LINK_CREATE, &mut attr) {
                Ok(fd) => {
                    return Ok(XdpProgram {
                        map,
                        prog,
                        _attachment: fd_from(fd),
                        ifindex,
                        native,
                    });
                }
                Err(error) => last = Some(error),
            }
        }
        Err(NetError::os(
            interface,
            "attach the XDP program",
            last.unwrap_or_else(|| std::io::Error::from_raw_os_error(libc::EINVAL)),
        ))
    }

    /// Points receive queue `queue`'s entry of the map at socket `xsk`.
    fn register(&self, interface: &str, queue: u32, xsk: &OwnedFd) -> Result<(), NetError> {
        let key = queue;
        let value = u32::try_from(xsk.as_raw_fd()).unwrap_or(0);
        let mut attr = BpfAttr::new();
        attr.u32_at(0, u32::try_from(self.map.as_raw_fd()).unwrap_or(0))
            .u64_at(8, std::ptr::from_ref(&key) as u64)
            .u64_at(16, std::ptr::from_ref(&value) as u64);
        bpf(BPF_MAP_UPDATE_ELEM, &mut attr)
            .map(|_| ())
            .map_err(|error| NetError::os(interface, "register the XDP socket", error))
    }

    /// Runs the program once on `frame` (`BPF_PROG_TEST_RUN`) and returns its verdict
    /// (`XDP_PASS` 2, `XDP_DROP` 1, `XDP_REDIRECT` 4). For tests.
    ///
    /// # Errors
    /// When the kernel refuses the test run.
    pub fn test_run(&self, frame: &[u8]) -> std::io::Result<u32> {
        run_program(&self.prog, frame)
    }
}

fn run_program(prog: &OwnedFd, frame: &[u8]) -> std::io::Result<u32> {
    let mut attr = BpfAttr::new();
    attr.u32_at(0, u32::try_from(prog.as_raw_fd()).unwrap_or(0))
        .u32_at(8, u32::try_from(frame.len()).unwrap_or(0))
        .u64_at(16, frame.as_ptr() as u64)
        .u32_at(32, 1);
    bpf(BPF_PROG_TEST_RUN, &mut attr)?;
    Ok(attr.read_u32(4))
}

/// Loads (without attaching) the program for `mac` and runs it once on `frame`: its verdict.
/// For tests of what the program lets through.
///
/// # Errors
/// When the kernel refuses to load or run it (no BPF, no privilege).
pub fn verdict(mac: EthernetAddress, frame: &[u8]) -> std::io::Result<u32> {
    let (_map, prog) = load(mac, 1)?;
    run_program(&prog, frame)
}

// ---- Rings -------------------------------------------------------------------------------

/// One of the four shared rings of an XDP socket: indices and entries in a mapping of the
/// socket, which this value unmaps when dropped.
struct Ring<T> {
    mapping: *mut libc::c_void,
    mapping_len: usize,
    producer: *const AtomicU32,
    consumer: *const AtomicU32,
    flags: *const AtomicU32,
    entries: *mut T,
    mask: u32,
    /// Our copy of the index we advance (producer for fill/tx, consumer for rx/completion).
    cached: u32,
}

impl<T: Copy> Ring<T> {
    /// Maps ring `offset` of socket `fd` (`entries` entries, laid out as `layout` says).
    fn map(
        fd: &OwnedFd,
        interface: &str,
        offset: libc::off_t,
        layout: RingOffset,
        entries: u32,
    ) -> Result<Ring<T>, NetError> {
        let len =
            usize::try_from(layout.desc).unwrap_or(usize::MAX) + entries as usize * size_of::<T>();
        // The size comes from the kernel's own offsets for this ring.
        let mapping = crate::sys::map_ring(fd, len, offset, interface, "map an XDP ring")?
            .as_ptr()
            .cast::<libc::c_void>();
        let at = |offset: u64| {
            mapping
                .cast::<u8>()
                .wrapping_add(usize::try_from(offset).unwrap_or(0))
        };
        let ring = Ring {
            mapping,
            mapping_len: len,
            producer: at(layout.producer).cast(),
            consumer: at(layout.consumer).cast(),
            flags: at(layout.flags).cast(),
            entries: at(layout.desc).cast(),
            mask: entries - 1,
            cached: 0,
        };
        Ok(ring)
    }

    fn producer(&self) -> &AtomicU32 {
        // SAFETY: the index lies in the live mapping (kernel's offsets), 4-aligned, and is only
        // accessed atomically by the kernel and by us.
        unsafe { &*self.producer }
    }

    fn consumer(&self) -> &AtomicU32 {
        // SAFETY: as in `producer`.
        unsafe { &*self.consumer }
    }

    fn needs_wakeup(&self) -> bool {
        // SAFETY: as in `producer`.
        unsafe { &*self.flags }.load(Ordering::Relaxed) & XDP_RING_NEED_WAKEUP != 0
    }

    fn size(&self) -> u32 {
        self.mask + 1
    }

    /// Producer side: entries free to fill now.
    fn free_entries(&self) -> u32 {
        // Acquire: the kernel's reads of entries it consumed happen before we overwrite them.
        let consumer = self.consumer().load(Ordering::Acquire);
        self.size() - self.cached.wrapping_sub(consumer)
    }

    /// Producer side: writes `value` at the next free entry (the caller checked there is one).
    fn push(&mut self, value: T) {
        let index = (self.cached & self.mask) as usize;
        // SAFETY: `index` is within the ring's entries (masked), in the live mapping; the entry
        // is free (the caller checked `free_entries`), so the kernel does not read it now.
        unsafe { self.entries.add(index).write(value) };
        self.cached = self.cached.wrapping_add(1);
    }

    /// Producer side: makes the pushed entries visible to the kernel.
    fn publish(&self) {
        // Release: our entry writes happen before the kernel sees the new producer index.
        self.producer().store(self.cached, Ordering::Release);
    }

    /// Consumer side: entries ready now.
    fn ready(&self) -> u32 {
        // Acquire: the kernel's entry writes are visible once we see its producer index.
        self.producer()
            .load(Ordering::Acquire)
            .wrapping_sub(self.cached)
    }

    /// Consumer side: the next ready entry (the caller checked there is one).
    fn pop(&mut self) -> T {
        let index = (self.cached & self.mask) as usize;
        // SAFETY: `index` is within the ring (masked) and the entry is ready (the caller checked
        // `ready`): the kernel wrote it and does not touch it until we release it.
        let value = unsafe { self.entries.add(index).read() };
        self.cached = self.cached.wrapping_add(1);
        value
    }

    /// Consumer side: gives the popped entries back to the kernel.
    fn release(&self) {
        // Release: our reads of the entries happen before the kernel may overwrite them.
        self.consumer().store(self.cached, Ordering::Release);
    }
}

impl<T> Drop for Ring<T> {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping `map` made; nothing refers into it after this.
        unsafe { libc::munmap(self.mapping, self.mapping_len) };
    }
}

// ---- The link ----------------------------------------------------------------------------

/// Slots of the UMEM of each socket (32 MiB): the fill ring's worth, frames held by the
/// worker and its storage queues, replies in flight, and a pool for frames built apart.
pub const UMEM_SLOTS: usize = 2048;
/// Entries of each ring.
const RING_ENTRIES: u32 = 512;
/// How the UMEM is cut into chunks, best first.
///
/// * Huge pages: one aligned 16 KiB chunk per slot (Linux 6.6 and later take chunks above a
///   page only on huge pages), with a headroom that puts frame octet 0 at [`UMEM_HEAD`]: room
///   for an MTU-9000 frame and more, inside the slot.
/// * Otherwise: one 4 KiB chunk per slot in unaligned mode, starting 256 octets (the kernel's
///   own headroom) before frame octet 0, so it ends inside the slot's second page: frames of
///   up to 3840 octets.
///
/// Either way the kernel writes only inside the slot's frame, and frames longer than a `Frame`
/// of the arena holds are dropped on receipt, never cut.
// Both constants are a few thousand: no truncation.
#[allow(clippy::cast_possible_truncation)]
const CHUNKINGS: [Chunking; 2] = [
    Chunking {
        size: UMEM_STRIDE as u32,
        headroom: (UMEM_HEAD - XDP_PACKET_HEADROOM) as u32,
        unaligned: false,
    },
    Chunking {
        size: 4096,
        headroom: 0,
        unaligned: true,
    },
];

/// One way of cutting the UMEM into chunks; see [`CHUNKINGS`].
#[derive(Debug, Clone, Copy)]
struct Chunking {
    size: u32,
    /// The UMEM headroom: octets the kernel leaves in front of its own headroom.
    headroom: u32,
    unaligned: bool,
}

impl Chunking {
    /// Largest frame the kernel puts in one chunk.
    fn max_frame(self) -> usize {
        (self.size - self.headroom) as usize - XDP_PACKET_HEADROOM
    }
}

/// An AF_XDP socket on one receive queue of an interface; see the [module docs](self).
pub struct XdpLink {
    name: String,
    mac: EthernetAddress,
    control: OwnedFd,
    xsk: OwnedFd,
    umem: Arc<Arena>,
    /// Largest frame a chunk takes (Ethernet header included).
    max_frame: usize,
    /// Octets from a fill address to frame octet 0 (both headrooms).
    fill_offset: usize,
    fill: Ring<u64>,
    completion: Ring<u64>,
    rx: Ring<XdpDesc>,
    tx: Ring<XdpDesc>,
    /// Frames sent and not yet completed.
    tx_in_flight: u32,
    zero_copy: bool,
    /// Drop counters already reported.
    drops_seen: u64,
    /// Frames of other arenas copied into the UMEM to be sent.
    copied: u64,
    /// Kept last: the program stays attached while any socket of the interface is open.
    program: Arc<XdpProgram>,
}

impl std::fmt::Debug for XdpLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XdpLink")
            .field("name", &self.name)
            .field("zero_copy", &self.zero_copy)
            .field("native", &self.program.native)
            .finish_non_exhaustive()
    }
}

// SAFETY: the raw pointers are into mappings this link owns (its rings) and are used only
// through `&mut self`; the arena and program are `Send + Sync`.
unsafe impl Send for XdpLink {}

/// Receive queues of `interface` (from sysfs), at least 1.
pub fn rx_queues(interface: &str) -> u32 {
    std::fs::read_dir(format!("/sys/class/net/{interface}/queues"))
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|entry| entry.file_name().to_string_lossy().starts_with("rx-"))
                .count()
        })
        .map_or(1, |count| u32::try_from(count.max(1)).unwrap_or(1))
}

fn set_int(fd: &OwnedFd, option: libc::c_int, value: u32) -> bool {
    crate::sys::set_option(fd, SOL_XDP, option, &value)
}

impl XdpLink {
    /// Opens an XDP socket on receive queue `queue` of `interface`, with its own UMEM, and
    /// registers it with `program` (attached to the same interface).
    ///
    /// # Errors
    /// [`NetError::NoPermission`], or [`NetError::Io`] naming the step the kernel refused (no
    /// AF_XDP, a UMEM it will not take, a queue that does not exist).
    pub fn open(
        interface: &str,
        queue: u32,
        program: Arc<XdpProgram>,
    ) -> Result<XdpLink, NetError> {
        let control = ifreq::control_socket(interface)?;
        let mac = ifreq::mac(&control, interface)?;
        // SAFETY: plain socket(2) call; the result is checked before use.
        let raw = unsafe { libc::socket(AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(NetError::last(interface, "open an AF_XDP socket"));
        }
        // SAFETY: `raw` is a fresh descriptor that nothing else owns.
        let xsk = unsafe { OwnedFd::from_raw_fd(raw) };
        let (umem, chunking, huge) = register_umem(&xsk, interface)?;
        let max_frame = chunking.max_frame().min(UMEM_STRIDE - UMEM_HEAD);
        for (option, what) in [
            (XDP_UMEM_FILL_RING, "size the fill ring"),
            (XDP_UMEM_COMPLETION_RING, "size the completion ring"),
            (XDP_RX_RING, "size the XDP receive ring"),
            (XDP_TX_RING, "size the XDP transmit ring"),
        ] {
            if !set_int(&xsk, option, RING_ENTRIES) {
                return Err(NetError::last(interface, what));
            }
        }
        let mut offsets = MmapOffsets::default();
        let mut len = crate::sys::socklen_of::<MmapOffsets>();
        // SAFETY: `offsets` and `len` are live and writable; the kernel writes at most `len`.
        let rc = unsafe {
            libc::getsockopt(
                xsk.as_raw_fd(),
                SOL_XDP,
                XDP_MMAP_OFFSETS,
                std::ptr::from_mut(&mut offsets).cast(),
                &mut len,
            )
        };
        if rc < 0 {
            return Err(NetError::last(interface, "read the XDP ring offsets"));
        }
        let fill = Ring::map(
            &xsk,
            interface,
            XDP_UMEM_PGOFF_FILL_RING,
            offsets.fill,
            RING_ENTRIES,
        )?;
        let completion = Ring::map(
            &xsk,
            interface,
            XDP_UMEM_PGOFF_COMPLETION_RING,
            offsets.completion,
            RING_ENTRIES,
        )?;
        let rx = Ring::map(&xsk, interface, XDP_PGOFF_RX_RING, offsets.rx, RING_ENTRIES)?;
        let tx = Ring::map(&xsk, interface, XDP_PGOFF_TX_RING, offsets.tx, RING_ENTRIES)?;
        let mut link = XdpLink {
            name: interface.to_owned(),
            mac,
            control,
            xsk,
            umem,
            max_frame,
            fill_offset: chunking.headroom as usize + XDP_PACKET_HEADROOM,
            fill,
            completion,
            rx,
            tx,
            tx_in_flight: 0,
            zero_copy: false,
            drops_seen: 0,
            copied: 0,
            program,
        };
        link.refill();
        link.bind(queue, huge)?;
        link.program.register(interface, queue, &link.xsk)?;
        Ok(link)
    }

    /// Binds to `queue`: zero-copy (left to the kernel) only on huge pages, else copy mode.
    fn bind(&mut self, queue: u32, huge: bool) -> Result<(), NetError> {
        let ifindex = self.program.ifindex;
        let mut last = None;
        let modes: &[u16] = if huge {
            &[XDP_USE_NEED_WAKEUP, XDP_USE_NEED_WAKEUP | XDP_COPY]
        } else {
            &[XDP_USE_NEED_WAKEUP | XDP_COPY]
        };
        for &flags in modes {
            let address = SockaddrXdp {
                family: AF_XDP_FAMILY,
                flags,
                ifindex,
                queue_id: queue,
                shared_umem_fd: 0,
            };
            // SAFETY: `address` is a valid sockaddr_xdp and its exact size is passed.
            let rc = unsafe {
                libc::bind(
                    self.xsk.as_raw_fd(),
                    std::ptr::from_ref(&address).cast(),
                    crate::sys::socklen_of::<SockaddrXdp>(),
                )
            };
            if rc == 0 {
                let mut options = 0u32;
                let mut len = crate::sys::socklen_of::<u32>();
                // SAFETY: `options` and `len` are live and writable.
                let rc = unsafe {
                    libc::getsockopt(
                        self.xsk.as_raw_fd(),
                        SOL_XDP,
                        XDP_OPTIONS,
                        std::ptr::from_mut(&mut options).cast(),
                        &mut len,
                    )
                };
                self.zero_copy = rc == 0 && options & XDP_OPTIONS_ZEROCOPY != 0;
                return Ok(());
            }
            last = Some(std::io::Error::last_os_error());
        }
        Err(NetError::os(
            &self.name,
            "bind the AF_XDP socket",
            last.unwrap_or_else(|| std::io::Error::from_raw_os_error(libc::EINVAL)),
        ))
    }

    /// True when a UMEM chunk takes a whole MTU-9000 frame, so that the link serves any MTU a
    /// later `ip link set mtu` may give the interface as the ring would; false with 4 KiB
    /// chunks, where [`Link::mtu`] reports at most 3826.
    pub fn carries_jumbo_frames(&self) -> bool {
        self.max_frame >= crate::frame::POOL_FRAME_CAPACITY
    }

    /// Frames sent so far that had to be copied into the UMEM first (they came from another
    /// arena); replies built in received frames never are.
    pub fn copied_on_send(&self) -> u64 {
        self.copied
    }

    /// True in zero-copy mode (the NIC writes into the UMEM), false in copy mode.
    pub fn is_zero_copy(&self) -> bool {
        self.zero_copy
    }

    /// True if the program runs in the driver (native mode), false in generic mode.
    pub fn is_native(&self) -> bool {
        self.program.native
    }

    /// The UMEM address the kernel fills for slot `slot`: its frame octet 0 less the
    /// headrooms the kernel keeps in front of a received frame (the chunk's start).
    fn fill_address(&self, slot: u32) -> u64 {
        (self.umem.frame_offset(slot) - self.fill_offset) as u64
    }

    /// Gives free UMEM slots to the kernel's fill ring, as many as it has room for.
    fn refill(&mut self) {
        let mut free = self.fill.free_entries();
        let mut pushed = false;
        while free > 0 {
            let Some(slot) = self.umem.lend_slot() else {
                break;
            };
            let address = self.fill_address(slot);
            self.fill.push(address);
            free -= 1;
            pushed = true;
        }
        if pushed {
            self.fill.publish();
        }
    }

    /// Takes back the slots of frames the kernel has finished sending.
    fn reap_completions(&mut self) {
        let ready = self.completion.ready();
        for _ in 0..ready {
            let address = self.completion.pop();
            match usize::try_from(address)
                .ok()
                .and_then(|offset| self.umem.slot_at(offset))
            {
                Some(slot) => self.umem.return_slot(slot),
                None => log::warn!("{}: completion of unknown address {address:#x}", self.name),
            }
        }
        if ready > 0 {
            self.completion.release();
            self.tx_in_flight = self.tx_in_flight.saturating_sub(ready);
        }
    }

    /// `recvfrom` of nothing: the receive kick the kernel asks for with `need_wakeup`.
    fn kick_receive(&self) -> Result<(), NetError> {
        // SAFETY: a zero-length call with null buffers; the kernel only uses it as a wake-up.
        let rc = unsafe {
            libc::recvfrom(
                self.xsk.as_raw_fd(),
                std::ptr::null_mut(),
                0,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        };
        if rc < 0 {
            let error = std::io::Error::last_os_error();
            return match error.raw_os_error() {
                Some(libc::EAGAIN | libc::EBUSY | libc::ENOBUFS | libc::EINTR) => Ok(()),
                _ => Err(NetError::os(&self.name, "wake the AF_XDP socket", error)),
            };
        }
        Ok(())
    }

    /// Makes the kernel send what the transmit ring holds, where it asks for a kick. In copy
    /// mode one `sendto` sends at most a few dozen frames and says `EAGAIN` when more wait, so
    /// it is repeated until the ring is empty (or the device queue pushes back).
    fn kick_transmit(&mut self) -> Result<(), NetError> {
        const MAX_KICKS: usize = 64;
        for _ in 0..MAX_KICKS {
            if !self.tx.needs_wakeup() {
                return Ok(());
            }
            // SAFETY: a zero-length send with a null buffer: only a wake-up for the kernel.
            let rc = unsafe {
                libc::sendto(
                    self.xsk.as_raw_fd(),
                    std::ptr::null(),
                    0,
                    libc::MSG_DONTWAIT,
                    std::ptr::null(),
                    0,
                )
            };
            let error = (rc < 0).then(std::io::Error::last_os_error);
            let drained = self.tx.free_entries() == self.tx.size();
            match error.as_ref().and_then(std::io::Error::raw_os_error) {
                None if drained => return Ok(()),
                // More to send (EAGAIN), or the device queue or completions are full for now.
                None | Some(libc::EAGAIN | libc::EBUSY | libc::ENOBUFS | libc::EINTR) => {
                    if drained {
                        return Ok(());
                    }
                    self.reap_completions();
                }
                Some(_) => {
                    return Err(NetError::os(
                        &self.name,
                        "send on the AF_XDP socket",
                        error.unwrap_or_else(|| std::io::Error::from_raw_os_error(libc::EIO)),
                    ));
                }
            }
        }
        log::debug!(
            "{}: transmit ring not drained after {MAX_KICKS} kicks",
            self.name
        );
        Ok(())
    }

    fn statistics(&self) -> XdpStatistics {
        let mut stats = XdpStatistics::default();
        let mut len = crate::sys::socklen_of::<XdpStatistics>();
        // SAFETY: `stats` and `len` are live and writable; the kernel writes at most `len`.
        unsafe {
            libc::getsockopt(
                self.xsk.as_raw_fd(),
                SOL_XDP,
                XDP_STATISTICS,
                std::ptr::from_mut(&mut stats).cast(),
                &mut len,
            )
        };
        stats
    }
}

/// True if the kernel takes a UMEM of huge-page-backed 16 KiB chunks here (so an AF_XDP link
/// would carry MTU-9000 frames): tried on a throw-away socket with a small UMEM, without
/// touching any interface. The automatic link choice asks this before it attaches anything.
pub fn jumbo_chunks_available() -> bool {
    // SAFETY: plain socket(2) call; the result is checked before use.
    let raw = unsafe { libc::socket(AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return false;
    }
    // SAFETY: `raw` is a fresh descriptor that nothing else owns.
    let xsk = unsafe { OwnedFd::from_raw_fd(raw) };
    let chunking = CHUNKINGS[0];
    let capacity = chunking.max_frame().min(UMEM_STRIDE - UMEM_HEAD);
    let Ok((umem, true)) = Arena::umem(64, capacity, true) else {
        return false;
    };
    let (base, len) = umem.region();
    let registration = XdpUmemReg {
        addr: base as u64,
        len: len as u64,
        chunk_size: chunking.size,
        headroom: chunking.headroom,
        flags: 0,
        tx_metadata_len: 0,
    };
    let accepted = crate::sys::set_option(&xsk, SOL_XDP, XDP_UMEM_REG, &registration);
    // The socket goes first: the kernel lets go of the UMEM's pages before they are unmapped.
    drop(xsk);
    drop(umem);
    accepted
}

/// Allocates a UMEM and registers it with socket `xsk`, cut the best way the kernel and the
/// memory allow. Returns the arena, the chunking and whether it is on huge pages.
fn register_umem(xsk: &OwnedFd, interface: &str) -> Result<(Arc<Arena>, Chunking, bool), NetError> {
    let mut last = None;
    for chunking in CHUNKINGS {
        let capacity = chunking.max_frame().min(UMEM_STRIDE - UMEM_HEAD);
        let big = chunking.size as usize > 4096;
        let (umem, huge) = Arena::umem(UMEM_SLOTS, capacity, big)
            .map_err(|error| NetError::os(interface, "allocate the UMEM", error))?;
        if big && !huge {
            // No huge pages reserved (vm.nr_hugepages): the kernel would refuse the chunk.
            continue;
        }
        let (base, len) = umem.region();
        let registration = XdpUmemReg {
            addr: base as u64,
            len: len as u64,
            chunk_size: chunking.size,
            headroom: chunking.headroom,
            flags: if chunking.unaligned {
                XDP_UMEM_UNALIGNED_CHUNK_FLAG
            } else {
                0
            },
            tx_metadata_len: 0,
        };
        if crate::sys::set_option(xsk, SOL_XDP, XDP_UMEM_REG, &registration) {
            return Ok((umem, chunking, huge));
        }
        let error = std::io::Error::last_os_error();
        log::debug!(
            "{interface}: the kernel refused UMEM chunks of {} octets on {} pages: {error}",
            chunking.size,
            if huge { "huge" } else { "ordinary" }
        );
        last = Some(error);
    }
    Err(NetError::os(
        interface,
        "register the UMEM",
        last.unwrap_or_else(|| std::io::Error::from_raw_os_error(libc::EINVAL)),
    ))
}

impl Link for XdpLink {
    fn name(&self) -> &str {
        &self.name
    }

    fn mac(&self) -> EthernetAddress {
        self.mac
    }

    fn mtu(&self) -> Result<usize, NetError> {
        // Never advertise frames a chunk cannot take whole.
        let mtu = ifreq::mtu(&self.control, &self.name)?;
        Ok(mtu.min(self.max_frame - crate::ETHERNET_HEADER_LEN))
    }

    fn recv(&mut self, frames: &mut Vec<Frame>, max: usize) -> Result<usize, NetError> {
        let ready = self.rx.ready().min(u32::try_from(max).unwrap_or(u32::MAX));
        let mut taken = 0;
        for _ in 0..ready {
            let desc = self.rx.pop();
            // Unaligned mode: the base address, plus the offset in the top 16 bits.
            let offset = (desc.addr & ((1 << UNALIGNED_OFFSET_SHIFT) - 1))
                + (desc.addr >> UNALIGNED_OFFSET_SHIFT);
            let Some(slot) = usize::try_from(offset)
                .ok()
                .and_then(|offset| self.umem.slot_at(offset))
            else {
                // Not where we asked the kernel to put frames: give the chunk back.
                let base = usize::try_from(desc.addr & ((1 << UNALIGNED_OFFSET_SHIFT) - 1))
                    .unwrap_or(0)
                    + self.fill_offset;
                match self.umem.slot_at(base) {
                    Some(slot) => self.umem.return_slot(slot),
                    None => log::warn!("{}: received unknown address {offset:#x}", self.name),
                }
                continue;
            };
            if desc.len as usize > self.umem.capacity() {
                // Longer than a frame of the arena holds (an MTU above 12310): never cut it.
                self.umem.return_slot(slot);
                continue;
            }
            frames.push(self.umem.reclaim(slot, desc.len as usize));
            taken += 1;
        }
        if ready > 0 {
            self.rx.release();
        }
        self.reap_completions();
        self.refill();
        if self.fill.needs_wakeup() {
            self.kick_receive()?;
        }
        if taken == 0
            && let Some(error) = crate::packet::socket_error(&self.xsk, &self.name)
        {
            // The interface went away (the kernel unbinds the socket and says ENETDOWN).
            return Err(error);
        }
        Ok(taken)
    }

    fn wait(&mut self, timeout: Option<Duration>) -> Result<bool, NetError> {
        if self.rx.ready() > 0 {
            return Ok(true);
        }
        crate::packet::wait_readable(self.xsk.as_raw_fd(), timeout)
            .map_err(|error| NetError::os(&self.name, "wait for frames", error))
    }

    fn readiness_fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.xsk.as_fd())
    }

    fn alloc(&mut self) -> Option<Frame> {
        self.umem.take()
    }

    fn send(&mut self, frames: &mut Vec<Frame>) -> Result<usize, NetError> {
        self.reap_completions();
        let mut sent = 0;
        let mut pushed = false;
        let mut dropped = 0;
        for frame in frames.drain(..) {
            if frame.is_empty() {
                continue;
            }
            if frame.len() > self.max_frame {
                dropped += 1;
                continue;
            }
            if self.tx.free_entries() == 0 {
                // Full: hand over what we have and take back what completed.
                if pushed {
                    self.tx.publish();
                    self.kick_transmit()?;
                    pushed = false;
                }
                self.reap_completions();
                if self.tx.free_entries() == 0 {
                    dropped += 1;
                    continue;
                }
            }
            // The frame must live in our UMEM: a frame of another arena is copied in once.
            let frame = if Arc::ptr_eq(frame.arena(), &self.umem) {
                frame
            } else {
                let Some(mut copy) = self.umem.take() else {
                    dropped += 1;
                    continue;
                };
                copy.fill(frame.as_slice());
                self.copied += 1;
                copy
            };
            let len = u32::try_from(frame.len()).unwrap_or(0);
            let slot = frame.into_slot();
            let address = self.umem.frame_offset(slot) as u64;
            self.tx.push(XdpDesc {
                addr: address,
                len,
                options: 0,
            });
            self.tx_in_flight += 1;
            pushed = true;
            sent += 1;
        }
        if pushed {
            self.tx.publish();
            self.kick_transmit()?;
        }
        if dropped > 0 {
            log::warn!(
                "{}: dropped {dropped} frames (transmit ring full)",
                self.name
            );
        }
        Ok(sent)
    }

    fn set_buffer_bytes(
        &mut self,
        _rx_bytes: usize,
        _tx_bytes: usize,
    ) -> Result<(usize, usize), NetError> {
        // Frames wait in the rings, whose size is fixed at open.
        let bytes = RING_ENTRIES as usize * self.max_frame;
        Ok((bytes, bytes))
    }

    fn take_drops(&mut self) -> u64 {
        let stats = self.statistics();
        let total = stats.rx_dropped + stats.rx_ring_full;
        let new = total.saturating_sub(self.drops_seen);
        self.drops_seen = total;
        new
    }

    fn frames_known_ready(&mut self) -> bool {
        self.rx.ready() > 0
    }

    fn has_frames(&mut self) -> bool {
        self.rx.ready() > 0
    }
}

impl Drop for XdpLink {
    fn drop(&mut self) {
        // Frames the kernel still holds stay lent (their slots are never reused) until the
        // socket closes; the arena is unmapped only when the last `Frame` of it is gone too.
        log::debug!("{}: AF_XDP socket closed", self.name);
    }
}

/// Opens `workers` XDP links on `interface`, one per receive queue, with one program for all.
/// The interface must have exactly `workers` receive queues (each needs a socket, or its AoE
/// frames would be lost).
///
/// # Errors
/// [`NetError::Io`] when the queues and workers differ, or as [`XdpProgram::attach`] and
/// [`XdpLink::open`].
pub fn open_queues(interface: &str, workers: usize) -> Result<Vec<XdpLink>, NetError> {
    let queues = rx_queues(interface);
    if queues as usize != workers {
        return Err(NetError::Io {
            interface: interface.to_owned(),
            step: if workers < queues as usize {
                "use AF_XDP with fewer workers than receive queues (use --workers to match)"
            } else {
                "use AF_XDP with more workers than receive queues (use --workers to match)"
            },
            source: std::io::Error::from_raw_os_error(libc::EINVAL),
        });
    }
    let control = ifreq::control_socket(interface)?;
    let ifindex = u32::try_from(ifreq::index(&control, interface)?).unwrap_or(0);
    if !ifreq::is_up(&control, interface)? {
        return Err(NetError::InterfaceDown(interface.to_owned()));
    }
    let mac = ifreq::mac(&control, interface)?;
    let program = Arc::new(XdpProgram::attach(interface, ifindex, mac, queues)?);
    (0..queues)
        .map(|queue| XdpLink::open(interface, queue, Arc::clone(&program)))
        .collect()
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn every_jump_of_the_program_lands_inside_it() {
        let insns = program(EthernetAddress([2, 0, 0, 0, 0, 1]), 7);
        for (index, insn) in insns.iter().enumerate() {
            if matches!(insn.code, JGT_X | JNE_K | JA | JNE32_K | JEQ32_K) {
                let target = i64::try_from(index).unwrap() + 1 + i64::from(insn.off);
                let target = usize::try_from(target).unwrap();
                assert!(target > index && target < insns.len(), "insn {index}");
            }
        }
        assert_eq!(insns[19].code, EXIT);
        assert_eq!(insns[21].code, EXIT);
        // The map's descriptor goes into the 64-bit load, marked as a map.
        assert_eq!((insns[15].imm, insns[15].regs >> 4), (7, PSEUDO_MAP_FD));
    }

    #[test]
    fn ring_entry_layouts_match_the_kernel() {
        assert_eq!(size_of::<XdpDesc>(), 16);
        assert_eq!(size_of::<XdpUmemReg>(), 32);
        assert_eq!(size_of::<MmapOffsets>(), 128);
        assert_eq!(size_of::<SockaddrXdp>(), 16);
        assert_eq!(size_of::<Insn>(), 8);
    }
}
