//! Classic BPF programs: the receive filter of the BPF back end (FreeBSD `BIOCSETF`, tested on
//! Linux with `SO_ATTACH_FILTER`) and the steering program of a fan-out group of packet
//! sockets (Linux `PACKET_FANOUT_CBPF`).
//!
//! An [`Insn`] has the layout of both Linux's `struct sock_filter` and the BSDs'
//! `struct bpf_insn` (`u16 code, u8 jt, u8 jf, u32 k`), so one program serves both kernels.
//!
//! Guarantees: [`aoe_filter`] accepts exactly the frames of EtherType 0x88A2 whose destination
//! is the given MAC or broadcast, whole (its accept value is larger than any frame), and
//! rejects every other frame, including runts too short to hold an Ethernet header (a classic
//! BPF load beyond the frame ends the program with 0). [`steer_by_source`] maps every frame of
//! one source MAC to the same member of a fan-out group.

use crate::{ETHERTYPE_AOE, EthernetAddress};

/// One classic BPF instruction (`struct sock_filter` / `struct bpf_insn`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    /// Operation.
    pub code: u16,
    /// Jump offset when the condition holds.
    pub jt: u8,
    /// Jump offset when it does not.
    pub jf: u8,
    /// Operand.
    pub k: u32,
}

// Opcodes (the same numbers on Linux and the BSDs): class | size | mode.
const BPF_LD: u16 = 0x00;
const BPF_JMP: u16 = 0x05;
const BPF_RET: u16 = 0x06;
const BPF_W: u16 = 0x00;
const BPF_H: u16 = 0x08;
const BPF_ABS: u16 = 0x20;
const BPF_JEQ: u16 = 0x10;
const BPF_K: u16 = 0x00;
const BPF_A: u16 = 0x10;
const LD_W_ABS: u16 = BPF_LD | BPF_W | BPF_ABS;
const LD_H_ABS: u16 = BPF_LD | BPF_H | BPF_ABS;
const JEQ_K: u16 = BPF_JMP | BPF_JEQ | BPF_K;
const RET_K: u16 = BPF_RET | BPF_K;
const RET_A: u16 = BPF_RET | BPF_A;

/// What [`aoe_filter`] returns for an accepted frame: the number of octets to keep, more than
/// any frame has.
pub const ACCEPT_WHOLE: u32 = 0x0004_0000;

/// Linux's offset base for loads relative to the link-layer (MAC) header (`SKF_LL_OFF`): a
/// fan-out program runs with the packet's data at the network header.
const LINUX_LL_OFF: i32 = -0x0020_0000;

const fn stmt(code: u16, k: u32) -> Insn {
    Insn {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

const fn jump(code: u16, k: u32, jt: u8, jf: u8) -> Insn {
    Insn { code, jt, jf, k }
}

/// The receive filter for a target at `mac`: EtherType 0x88A2 addressed to `mac` or to
/// broadcast, nothing else; for a socket or BPF device that sees frames from the Ethernet
/// header on.
pub fn aoe_filter(mac: EthernetAddress) -> [Insn; 11] {
    let m = mac.0;
    let head = u32::from_be_bytes([m[0], m[1], m[2], m[3]]);
    let tail = u32::from(u16::from_be_bytes([m[4], m[5]]));
    // Jump offsets count the instructions skipped after the jump.
    [
        /* 0 */ stmt(LD_H_ABS, 12),
        /* 1 */ jump(JEQ_K, u32::from(ETHERTYPE_AOE), 0, 8), // else 10 (drop)
        /* 2 */ stmt(LD_W_ABS, 0),
        /* 3 */ jump(JEQ_K, head, 0, 2), // else 6 (broadcast?)
        /* 4 */ stmt(LD_H_ABS, 4),
        /* 5 */ jump(JEQ_K, tail, 3, 4), // 9 (accept) else 10 (drop)
        /* 6 */ jump(JEQ_K, 0xFFFF_FFFF, 0, 3), // else 10
        /* 7 */ stmt(LD_H_ABS, 4),
        /* 8 */ jump(JEQ_K, 0xFFFF, 0, 1), // 9 else 10
        /* 9 */ stmt(RET_K, ACCEPT_WHOLE),
        /* 10 */ stmt(RET_K, 0),
    ]
}

/// The steering program of a Linux `PACKET_FANOUT_CBPF` group: returns the last four octets
/// of the source MAC, which the kernel takes modulo the group's size, so every frame of one
/// initiator goes to the same member (and its requests keep their order).
pub fn steer_by_source() -> [Insn; 2] {
    // The load offset is a negative number in two's complement, as the kernel reads `k`.
    let source_tail = (LINUX_LL_OFF + 8).cast_unsigned();
    [stmt(LD_W_ABS, source_tail), stmt(RET_A, 0)]
}

/// Runs `program` on `frame` the way a classic BPF interpreter does for the instructions this
/// module emits (absolute loads, `jeq`, `ret`); for tests on machines without the kernel's
/// interpreter at hand, and as the executable definition of what a filter accepts. Returns
/// what the program returns (0: reject).
pub fn run(program: &[Insn], frame: &[u8]) -> u32 {
    let mut accumulator = 0u32;
    let mut pc = 0usize;
    while let Some(insn) = program.get(pc) {
        pc += 1;
        match insn.code {
            LD_W_ABS | LD_H_ABS => {
                let at = insn.k as usize;
                let width = if insn.code == LD_W_ABS { 4 } else { 2 };
                let Some(bytes) = frame.get(at..at + width) else {
                    return 0;
                };
                accumulator = bytes
                    .iter()
                    .fold(0u32, |value, &byte| (value << 8) | u32::from(byte));
            }
            JEQ_K => {
                pc += usize::from(if accumulator == insn.k {
                    insn.jt
                } else {
                    insn.jf
                });
            }
            RET_K => return insn.k,
            RET_A => return accumulator,
            _ => return 0,
        }
    }
    0
}

#[cfg(test)]
mod test {
    use super::*;

    const US: EthernetAddress = EthernetAddress([0x02, 0x10, 0x20, 0x30, 0x40, 0x50]);

    fn frame(destination: [u8; 6], ethertype: u16) -> Vec<u8> {
        let mut frame = vec![0u8; 60];
        frame[..6].copy_from_slice(&destination);
        frame[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x99]);
        frame[12..14].copy_from_slice(&ethertype.to_be_bytes());
        frame
    }

    #[test]
    fn the_filter_takes_aoe_to_us_or_broadcast_and_nothing_else() {
        let filter = aoe_filter(US);
        assert_eq!(run(&filter, &frame(US.0, 0x88A2)), ACCEPT_WHOLE);
        assert_eq!(run(&filter, &frame([0xFF; 6], 0x88A2)), ACCEPT_WHOLE);
        // Another host's MAC, one octet off at either end, and half-broadcast.
        let mut other = US.0;
        other[5] ^= 1;
        assert_eq!(run(&filter, &frame(other, 0x88A2)), 0);
        let mut other = US.0;
        other[0] ^= 0x80;
        assert_eq!(run(&filter, &frame(other, 0x88A2)), 0);
        assert_eq!(
            run(
                &filter,
                &frame([0xFF, 0xFF, 0xFF, 0xFF, 0x50, 0x50], 0x88A2)
            ),
            0
        );
        assert_eq!(
            run(
                &filter,
                &frame([0x02, 0x10, 0x20, 0x30, 0xFF, 0xFF], 0x88A2)
            ),
            0
        );
        // Other EtherTypes to us.
        for ethertype in [0x0800, 0x86DD, 0x0806, 0x88A3, 0xA288] {
            assert_eq!(run(&filter, &frame(US.0, ethertype)), 0, "{ethertype:#x}");
        }
        // Runts.
        assert_eq!(run(&filter, &frame(US.0, 0x88A2)[..13]), 0);
    }

    #[test]
    fn every_jump_lands_inside_the_program() {
        let filter = aoe_filter(US);
        for (index, insn) in filter.iter().enumerate() {
            if insn.code == JEQ_K {
                for offset in [insn.jt, insn.jf] {
                    assert!(
                        index + 1 + usize::from(offset) < filter.len(),
                        "insn {index}"
                    );
                }
            }
        }
        assert_eq!(filter.last().unwrap().code, RET_K);
    }

    #[test]
    fn the_steering_program_reads_the_source_mac_below_the_network_header() {
        let program = steer_by_source();
        assert_eq!(program[0].k.cast_signed(), -0x0020_0000 + 8);
        assert_eq!(program[1].code, RET_A);
    }
}
