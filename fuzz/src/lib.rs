//! Shared pieces of the vblade-rs fuzz targets: the export under test and the reply oracle.
//!
//! The targets live in `fuzz_targets/`; `smoke.sh` builds and runs them. Everything here
//! panics on a broken invariant, which is how libFuzzer learns of a finding.

use aoe_core::disk::Disk;
use aoe_core::wire::{EthernetAddress, aoe};
use aoe_core::{Config, Plan, Port, Target};
pub use aoe_testkit::frame::{INITIATOR_MAC, SHELF, SLOT, TARGET_MAC};

/// The frame buffer every fuzzed export is configured with (a jumbo frame).
pub const MAX_FRAME: usize = 9014;

/// Separates frames in a `target_frame` input; see that target's docs.
pub const FRAME_SEPARATOR: &[u8] = b"=FRAME=";

/// The smallest and largest port MTU the fuzzers use.
pub const MTU_RANGE: core::ops::RangeInclusive<usize> = 576..=9000;

/// Maps any number into [`MTU_RANGE`].
pub fn mtu_from(raw: u16) -> usize {
    let span = MTU_RANGE.end() - MTU_RANGE.start() + 1;
    MTU_RANGE.start() + usize::from(raw) % span
}

/// Exports `SHELF.SLOT` of `disk` with a jumbo frame buffer.
pub fn export<D: Disk>(disk: D) -> Target<D> {
    let mut config = Config::new(SHELF, SLOT);
    config.max_frame_len = MAX_FRAME;
    Target::new(config, disk).expect("a valid export")
}

/// Completes `plan` (already accepted from `rx`) with [`Target::respond`] into a buffer of
/// exactly [`Plan::reply_len`] octets, poisoned with 0xA5. Returns the reply.
///
/// # Panics
/// If the plan's length breaks its bounds, or `respond` refuses a buffer of that length.
pub fn respond<D: Disk>(target: &mut Target<D>, port: &Port, plan: &Plan, rx: &[u8]) -> Vec<u8> {
    let planned = plan.reply_len();
    assert!(planned >= 60, "planned reply of {planned} octets");
    assert!(
        planned <= port.max_frame_len() && planned <= MAX_FRAME,
        "planned reply of {planned} octets on MTU {}",
        port.mtu
    );
    let mut tx = vec![0xA5u8; planned];
    let len = target
        .respond(plan, rx, &mut tx)
        .expect("respond refused a buffer of reply_len() octets");
    assert!((60..=planned).contains(&len), "reply of {len} octets");
    tx.truncate(len);
    tx
}

/// Checks what every reply to `rx` must be: at least 60 octets, to the requester from the
/// port, EtherType AoE, R set, version 1, this export's address, the request's command and tag,
/// and no AoE error for an ATA command other than a refusal of the whole command.
///
/// # Panics
/// On any violation.
pub fn check_envelope(reply: &[u8], rx: &[u8], port: &Port) {
    assert!(reply.len() >= 60, "reply of {} octets", reply.len());
    assert!(
        reply.len() <= port.max_frame_len(),
        "reply of {} octets on MTU {}",
        reply.len(),
        port.mtu
    );
    assert_eq!(reply[0..6], rx[6..12], "reply not sent to the requester");
    assert_eq!(reply[6..12], port.mac.0, "reply not sent from the port");
    assert_eq!(reply[12..14], [0x88, 0xA2], "reply EtherType");
    let header = aoe::Packet::new_checked(&reply[14..]).expect("reply AoE header");
    let repr = aoe::Repr::parse(&header).expect("reply AoE header");
    let request = aoe::Packet::new_checked(&rx[14..]).expect("request AoE header");
    assert!(repr.response, "reply without R");
    assert_eq!(repr.version, 1, "reply version");
    assert_eq!(repr.major, SHELF, "reply shelf");
    assert_eq!(repr.minor, SLOT, "reply slot");
    assert_eq!(repr.command, request.command(), "reply command");
    assert_eq!(repr.tag, request.tag(), "reply tag");
    if request.command() == aoe::Command::IssueAta
        && let Some(code) = repr.error
    {
        assert!(
            matches!(
                code,
                aoe::ErrorCode::UnsupportedVersion | aoe::ErrorCode::TargetReserved
            ),
            "ATA reply with AoE error {code:?}: per-I/O failures must be ATA status"
        );
    }
}

/// True if `mac` is neither multicast nor broadcast.
pub fn is_unicast(mac: &[u8]) -> bool {
    mac.len() == 6 && mac[0] & 0x01 == 0
}

/// The address of a frame's source, if the frame has one.
pub fn source_of(rx: &[u8]) -> Option<EthernetAddress> {
    rx.get(6..12)
        .map(|mac| EthernetAddress(mac.try_into().expect("six octets")))
}
