//! The project's programs in tests: `aoe` in the initiator's namespace, `host-sim` in the
//! target's, and their output checked the same way everywhere.
//!
//! Binaries are found with [`workspace_binary`] (built first if missing), so any crate's tests
//! can drive both programs.

use crate::netns::{Lan, Pair};
use crate::process::{Proc, workspace_binary};
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

impl Pair {
    /// The command `aoe ARGS... -i IFACE` in the initiator's namespace.
    pub fn aoe_command(&self, args: &[&str]) -> Command {
        let binary = workspace_binary("aoe");
        let mut command = self.initiator.command(&[]);
        command.arg(binary).args(args).args(["-i", &self.init_if]);
        command
    }

    /// Runs `aoe ARGS... -i IFACE` and returns its output.
    pub fn aoe(&self, args: &[&str]) -> Output {
        self.aoe_command(args).output().expect("run aoe")
    }

    /// Runs `aoe` and asserts it succeeded; returns stdout.
    pub fn aoe_ok(&self, args: &[&str]) -> String {
        let out = self.aoe(args);
        assert!(
            out.status.success(),
            "aoe {args:?} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs `aoe`, asserts it failed with status 1, and returns stderr.
    pub fn aoe_fails(&self, args: &[&str]) -> String {
        let out = self.aoe(args);
        assert_eq!(
            out.status.code(),
            Some(1),
            "aoe {args:?} should fail:\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// Starts `host-sim FLAGS... shelf slot IFACE file` in the target's namespace.
    pub fn start_host_sim(&self, flags: &[&str], shelf: u16, slot: u8, file: &Path) -> Proc {
        let binary = workspace_binary("host-sim");
        let mut command = self.target.command(&[]);
        command
            .arg(binary)
            .args(flags)
            .arg(shelf.to_string())
            .arg(slot.to_string())
            .arg(&self.target_if)
            .arg(file);
        Proc::spawn(command, "host-sim")
    }

    /// Starts `host-sim ARGS...` in the target's namespace, its log watched
    /// ([`Proc::spawn_watched`]).
    pub fn host_sim(&self, args: &[&str]) -> Proc {
        let binary = workspace_binary("host-sim");
        let mut command = self.target.command(&[]);
        command.arg(binary).args(args);
        Proc::spawn_watched(command, "host-sim")
    }

    /// Waits until `shelf.slot` answers IDENTIFY (at most 10 s), failing with the target's
    /// output if it exits first.
    pub fn wait_for_target(&self, target: &str, proc: &mut Proc) {
        let start = Instant::now();
        loop {
            let out = self.aoe(&["identify", "-t", target, "--timeout", "0.5"]);
            if out.status.success() {
                return;
            }
            if let Some(status) = proc.try_exit() {
                panic!(
                    "the target exited with {status} before answering:\n{}",
                    proc.output()
                );
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "target {target} never answered: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

impl Lan {
    /// Starts `host-sim ARGS...` on host `host`, its log watched.
    pub fn host_sim(&self, host: usize, args: &[&str]) -> Proc {
        let mut command = self.hosts[host].command(&[]);
        command.arg(workspace_binary("host-sim")).args(args);
        Proc::spawn_watched(command, &format!("host-sim on host {host}"))
    }

    /// Starts Debian's `vblade ARGS...` on host `host`, its output watched.
    pub fn vblade(&self, host: usize, args: &[&str]) -> Proc {
        let mut command = self.hosts[host].command(&["vblade"]);
        command.args(args);
        Proc::spawn_watched(command, &format!("vblade on host {host}"))
    }

    /// Runs `aoe ARGS... -i lan0` on host `host`.
    pub fn aoe(&self, host: usize, args: &[&str]) -> Output {
        let mut command = self.hosts[host].command(&[]);
        command
            .arg(workspace_binary("aoe"))
            .args(args)
            .args(["-i", Lan::IFACE]);
        command.output().expect("run aoe")
    }

    /// Runs `aoe` on host `host` and asserts it succeeded; returns stdout.
    pub fn aoe_ok(&self, host: usize, args: &[&str]) -> String {
        let out = self.aoe(host, args);
        assert!(
            out.status.success(),
            "aoe {args:?} on host {host} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until `target` answers IDENTIFY from host `host` (at most 10 s).
    pub fn wait_for_target(&self, host: usize, target: &str, proc: &mut Proc) {
        let start = Instant::now();
        loop {
            let out = self.aoe(host, &["identify", "-t", target, "--timeout", "0.5"]);
            if out.status.success() {
                return;
            }
            if let Some(status) = proc.try_exit() {
                panic!(
                    "the target exited with {status} before answering:\n{}",
                    proc.output()
                );
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "target {target} never answered: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

/// Whether Debian's `vblade` can be used here. When it cannot, says so on stderr and returns
/// false, or panics when `AOE_REQUIRE_VBLADE=1` (CI), so that a skip never passes silently there.
pub fn vblade_available(test: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", "command -v vblade"])
        .output()
        .is_ok_and(|out| out.status.success());
    if !found {
        assert!(
            std::env::var("AOE_REQUIRE_VBLADE").as_deref() != Ok("1"),
            "{test}: vblade is not installed and AOE_REQUIRE_VBLADE=1"
        );
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED {test}: needs vblade (apt-get install -y vblade)"
        );
    }
    found
}
