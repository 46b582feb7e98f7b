//! The committed fuzz seeds, and how they are made.
//!
//! `fuzz/seeds/target_frame/*.bin` are request frames as the Linux initiator, iPXE and the
//! aoetools send them, built with the shared `Initiator`; one seed chains several frames (see
//! the `target_frame` docs). `fuzz/seeds/wire_roundtrip/*.bin` are the AoE headers and
//! arguments of the same frames. The test fails when a committed seed differs from what the
//! builders make now; regenerate with
//!
//! ```sh
//! cd fuzz && AOE_WRITE_SEEDS=1 cargo test --test seeds
//! ```

use aoe_fuzz::FRAME_SEPARATOR;
use aoe_testkit::frame::{BROADCAST_MAC, Initiator, OTHER_MAC};
use aoe_testkit::sectors::pattern;
use std::path::PathBuf;

/// (name, frame) pairs for `target_frame`.
fn frames() -> Vec<(&'static str, Vec<u8>)> {
    let linux = Initiator::default();
    let discovery = Initiator {
        dst: BROADCAST_MAC,
        shelf: 0xFFFF,
        slot: 0xFF,
        ..linux
    };
    vec![
        ("config_discovery", discovery.config(0, 0, b"").bytes),
        ("config_set", linux.config(1, 3, b"vblade-rs").bytes),
        ("identify", linux.identify(0x0000_1002).bytes),
        ("read48", linux.read48(0x0000_1003, 4, 2).bytes),
        (
            "write48",
            linux.write48(0x0000_1004, 6, &pattern(6, 1, 7)).bytes,
        ),
        ("read28_ipxe", linux.read28(0x0000_1005, 62, 2).bytes),
        (
            "write28",
            linux.write28(0x0000_1006, 1, &pattern(1, 1, 9)).bytes,
        ),
        (
            "flush_ext",
            linux.ata(0x0000_1007, 0x40, 0xEA, 0, 0, &[]).bytes,
        ),
        (
            "mask_edit",
            linux.mask(0x8000_0001, 1, &[(1, linux.mac)]).bytes,
        ),
        (
            "reserve_set",
            linux.reserve(0x8000_0002, 1, &[linux.mac, OTHER_MAC]).bytes,
        ),
    ]
}

/// A chain: config set at MTU 1500, then a write and a read-back at MTU 9000 (17 sectors per
/// frame), then a mask edit that shuts the sender out and a read that must go unanswered.
fn chain() -> Vec<u8> {
    let linux = Initiator::default();
    let mut input = linux.config(1, 4, b"chain").bytes;
    let jumbo = 9000u16 - 576;
    for frame in [
        linux.write48(2, 40, &pattern(40, 3, 1)).bytes,
        linux.read48(3, 40, 3).bytes,
        linux.mask(4, 1, &[(1, OTHER_MAC)]).bytes,
        linux.read48(5, 40, 1).bytes,
    ] {
        input.extend_from_slice(FRAME_SEPARATOR);
        input.extend_from_slice(&jumbo.to_le_bytes());
        input.extend_from_slice(&frame);
    }
    input
}

fn seeds() -> Vec<(String, Vec<u8>)> {
    let mut seeds = Vec::new();
    for (name, frame) in frames() {
        seeds.push((
            format!("wire_roundtrip/{name}_aoe.bin"),
            frame[14..].to_vec(),
        ));
        seeds.push((
            format!("wire_roundtrip/{name}_arg.bin"),
            frame[24..].to_vec(),
        ));
        seeds.push((format!("target_frame/{name}.bin"), frame));
    }
    seeds.push(("target_frame/chain.bin".into(), chain()));
    seeds
}

#[test]
fn committed_seeds_are_current() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("seeds");
    let write = std::env::var_os("AOE_WRITE_SEEDS").is_some();
    let mut stale = Vec::new();
    for (name, bytes) in seeds() {
        let path = root.join(&name);
        if write {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &bytes).unwrap();
        } else if std::fs::read(&path).ok().as_deref() != Some(&bytes[..]) {
            stale.push(name);
        }
    }
    assert!(
        stale.is_empty(),
        "seeds differ from the builders: {stale:?}; run `AOE_WRITE_SEEDS=1 cargo test --test seeds`"
    );
}
