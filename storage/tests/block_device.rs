//! A block device export: size from BLKGETSIZE64, transfers, O_DIRECT (needs root for a loop
//! device).

use aoe_storage::file::{DiskOptions, FileDisk};
use aoe_testkit::require_root;
use std::process::Command;

#[test]
fn loop_device_is_sized_by_ioctl_and_transfers() {
    require_root!();
    let backing = std::env::temp_dir().join(format!("hs-loop-{}.img", std::process::id()));
    std::fs::File::create(&backing)
        .unwrap()
        .set_len(3 << 20)
        .unwrap();
    let out = Command::new("losetup")
        .args(["-f", "--show"])
        .arg(&backing)
        .output();
    let device = match out {
        Ok(out) if out.status.success() => String::from_utf8(out.stdout).unwrap().trim().to_owned(),
        other => {
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED block device test: no loop device ({other:?})"
            );
            std::fs::remove_file(&backing).unwrap();
            return;
        }
    };
    let result = std::panic::catch_unwind(|| {
        let disk = FileDisk::open(device.as_ref(), DiskOptions::default()).unwrap();
        assert!(disk.is_block_device());
        assert_eq!(disk.sectors(), (3 << 20) / 512);
        disk.write_at(7, &[0xC3; 1024]).unwrap();
        disk.flush().unwrap();
        let direct = FileDisk::open(
            device.as_ref(),
            DiskOptions {
                direct: true,
                ..DiskOptions::default()
            },
        );
        if let Ok(direct) = direct {
            // A pool frame puts its data (octet 36) on a page boundary, as O_DIRECT needs.
            let mut frame = aoe_net::Arena::pool(1).take().unwrap();
            direct
                .read_at(7, &mut frame.buffer_mut()[36..36 + 1024])
                .unwrap();
            assert!(frame.buffer()[36..36 + 1024].iter().all(|&b| b == 0xC3));
        }
        let window = FileDisk::open(
            device.as_ref(),
            DiskOptions {
                offset: 6,
                length: Some(2),
                ..DiskOptions::default()
            },
        )
        .unwrap();
        let mut sector = [0u8; 512];
        window.read_at(1, &mut sector).unwrap();
        assert!(sector.iter().all(|&b| b == 0xC3));
    });
    let _ = Command::new("losetup").args(["-d", &device]).status();
    std::fs::remove_file(&backing).unwrap();
    result.unwrap();
}
