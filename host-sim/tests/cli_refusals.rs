//! The host-sim binary's refusals that need no privilege: one line on stderr, exit status 1.

use std::process::Command;

fn refusal(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_host-sim"))
        .args(args)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{args:?}");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr:?}");
    assert!(stderr.starts_with("host-sim: "), "{stderr:?}");
    stderr
}

fn scratch(name: &str, bytes: u64) -> std::path::PathBuf {
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("{name}-{}", std::process::id()));
    std::fs::File::create(&path)
        .unwrap()
        .set_len(bytes)
        .unwrap();
    path
}

#[test]
fn bad_arguments_files_and_interfaces_are_refused() {
    let disk = scratch("cli-disk", 1 << 20);
    let tiny = scratch("cli-tiny", 100);
    let disk = disk.to_str().unwrap();
    let cases: [(Vec<&str>, &str); 8] = [
        (vec!["65535", "0", "lo", disk], "broadcast shelf"),
        (vec!["1", "255", "lo", disk], "broadcast slot"),
        (
            vec!["-m", "nonsense", "1", "0", "lo", disk],
            "not a MAC address",
        ),
        (
            vec!["1", "0", "lo", tiny.to_str().unwrap()],
            "smaller than one 512-byte sector",
        ),
        (
            vec!["-o", "2048", "1", "0", "lo", disk],
            "offset of 2048 sectors is not inside",
        ),
        (
            vec!["-l", "4096", "1", "0", "lo", disk],
            "length of 4096 sectors is more than",
        ),
        (
            // Strict mode (--wait-link=0): refused at once instead of waited for.
            vec!["--wait-link=0", "1", "0", "nosuchif0", disk],
            "no network interface named \"nosuchif0\"",
        ),
        (
            vec!["1", "0", "lo", "/nonexistent/disk"],
            "cannot open /nonexistent/disk",
        ),
    ];
    for (args, expected) in cases {
        let message = refusal(&args);
        assert!(message.contains(expected), "{args:?}: {message:?}");
    }
    std::fs::remove_file(&tiny).unwrap();
}

#[test]
fn help_and_version_succeed() {
    let out = Command::new(env!("CARGO_BIN_EXE_host-sim"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(
        String::from_utf8(out.stdout)
            .unwrap()
            .starts_with("usage: host-sim [-b bufcnt]")
    );
    let out = Command::new(env!("CARGO_BIN_EXE_host-sim"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(
        String::from_utf8(out.stdout)
            .unwrap()
            .starts_with("host-sim 0.")
    );
}
