//! Two private network namespaces joined by a veth pair, for end-to-end tests of `host-sim`
//! and `aoe` (root only).
//!
//! Every name includes the test's PID and a per-process counter, so tests running at the same
//! time (and other people's tests) never collide. [`Pair`], [`Proc`] and [`Scratch`] clean up
//! on drop, so a failing assertion still deletes the namespaces (which deletes the veth pair),
//! kills the processes it started (by PID) and removes its files.
#![allow(dead_code)]

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Why these tests cannot run here, or `None` if they can.
pub fn cannot_run_reason() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("needs root (network namespaces and raw sockets)".into());
    }
    match Command::new("ip").arg("-V").output() {
        Ok(out) if out.status.success() => None,
        _ => Some("needs the `ip` command (iproute2)".into()),
    }
}

/// True if the test can run. Otherwise says why on stderr and returns false, or panics when
/// `AOE_REQUIRE_ROOT_TESTS=1` (CI), so a skipped test can never pass silently there.
pub fn can_run(test: &str) -> bool {
    let Some(reason) = cannot_run_reason() else {
        return true;
    };
    if std::env::var("AOE_REQUIRE_ROOT_TESTS").as_deref() == Ok("1") {
        panic!("{test} cannot run: {reason}, and AOE_REQUIRE_ROOT_TESTS=1");
    }
    // Straight to the stderr handle, not `eprintln!`: the test harness hides what passing
    // tests print with the macros, and this must be seen.
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {test}: {reason} (set AOE_REQUIRE_ROOT_TESTS=1 to make this a failure)"
    );
    false
}

/// Returns from the test early when it cannot run (see [`can_run`]).
#[macro_export]
macro_rules! need_root {
    ($test:expr) => {
        if !netns::can_run($test) {
            return;
        }
    };
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn ip(args: &[&str]) -> Output {
    Command::new("ip").args(args).output().expect("run ip")
}

fn ip_ok(args: &[&str]) {
    let out = ip(args);
    assert!(
        out.status.success(),
        "ip {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A target namespace and an initiator namespace joined by a veth pair.
pub struct Pair {
    /// Namespace of the target.
    pub target_ns: String,
    /// Namespace of the initiator.
    pub init_ns: String,
    /// The target's end of the veth pair.
    pub target_if: String,
    /// The initiator's end.
    pub init_if: String,
    namespaces: Vec<String>,
}

impl Pair {
    /// Makes both namespaces and a veth pair of `mtu` between them, both ends up.
    pub fn new(test: &str, mtu: u32) -> Pair {
        let pid = std::process::id();
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let short: String = test
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(12)
            .collect();
        let target_ns = format!("aoe-t-{short}-{pid}-{n}");
        let init_ns = format!("aoe-i-{short}-{pid}-{n}");
        // Interface names are at most 15 octets.
        let target_if = format!("at{pid}x{n}");
        let init_if = format!("ai{pid}x{n}");
        let mut pair = Pair {
            target_ns,
            init_ns,
            target_if,
            init_if,
            namespaces: Vec::new(),
        };
        for ns in [pair.target_ns.clone(), pair.init_ns.clone()] {
            ip_ok(&["netns", "add", &ns]);
            pair.namespaces.push(ns);
        }
        let mtu = mtu.to_string();
        ip_ok(&[
            "-n",
            &pair.target_ns,
            "link",
            "add",
            &pair.target_if,
            "mtu",
            &mtu,
            "type",
            "veth",
            "peer",
            "name",
            &pair.init_if,
            "netns",
            &pair.init_ns,
            "mtu",
            &mtu,
        ]);
        ip_ok(&["-n", &pair.target_ns, "link", "set", &pair.target_if, "up"]);
        ip_ok(&["-n", &pair.init_ns, "link", "set", &pair.init_if, "up"]);
        pair
    }

    /// The MAC of the initiator's interface.
    pub fn init_mac(&self) -> String {
        let out = ip(&["-n", &self.init_ns, "-o", "link", "show", &self.init_if]);
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let mac = text
            .split_whitespace()
            .skip_while(|word| *word != "link/ether")
            .nth(1)
            .expect("link/ether in ip link show");
        mac.to_string()
    }

    /// Starts `host-sim ARGS... shelf slot IFACE file` in the target namespace.
    pub fn start_target(&self, flags: &[&str], shelf: u16, slot: u8, file: &Path) -> Proc {
        // `option_env!`: this file also builds before the host-sim binary exists.
        let Some(binary) = option_env!("CARGO_BIN_EXE_host-sim") else {
            panic!("the host-sim binary is not part of this build");
        };
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &self.target_ns, binary])
            .args(flags)
            .arg(shelf.to_string())
            .arg(slot.to_string())
            .arg(&self.target_if)
            .arg(file)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        Proc::spawn(command, "host-sim")
    }

    /// Runs `aoe ARGS... -i IFACE` in the initiator namespace and returns its output.
    pub fn aoe(&self, args: &[&str]) -> Output {
        self.aoe_command(args).output().expect("run aoe")
    }

    /// The `aoe ARGS... -i IFACE` command, for running it in the background.
    pub fn aoe_command(&self, args: &[&str]) -> Command {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &self.init_ns, env!("CARGO_BIN_EXE_aoe")])
            .args(args)
            .args(["-i", &self.init_if])
            .stdin(Stdio::null());
        command
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

    /// Waits until `shelf.slot` answers IDENTIFY (at most 10 s).
    pub fn wait_for_target(&self, target: &str, proc: &mut Proc) {
        let start = Instant::now();
        loop {
            let out = self.aoe(&["identify", "-t", target, "--timeout", "0.5"]);
            if out.status.success() {
                return;
            }
            if let Some(status) = proc.try_exit() {
                panic!(
                    "host-sim exited with {status} before answering:\n{}",
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

    /// Moves the calling thread into the initiator namespace (per thread).
    pub fn enter_initiator(&self) {
        enter(&self.init_ns);
    }
}

/// Moves the calling thread into network namespace `ns`.
pub fn enter(ns: &str) {
    let path = std::ffi::CString::new(format!("/var/run/netns/{ns}")).unwrap();
    // SAFETY: a valid NUL-terminated path; the result is checked.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    assert!(fd >= 0, "open {path:?}");
    // SAFETY: fd is a namespace file we opened; setns affects only this thread.
    let rc = unsafe { libc::setns(fd, libc::CLONE_NEWNET) };
    // SAFETY: fd is ours.
    unsafe { libc::close(fd) };
    assert_eq!(rc, 0, "setns into {ns}");
}

impl Drop for Pair {
    fn drop(&mut self) {
        // Deleting a namespace deletes the veth end in it, and with it the pair.
        for ns in &self.namespaces {
            let _ = ip(&["netns", "del", ns]);
        }
    }
}

/// A child process killed (by its PID) and reaped on drop.
pub struct Proc {
    child: Option<Child>,
    name: &'static str,
    output: String,
}

impl Proc {
    /// Spawns `command`. `ip netns exec` execs the program, so the PID is the program's.
    pub fn spawn(mut command: Command, name: &'static str) -> Proc {
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("start {name}: {e}"));
        Proc {
            child: Some(child),
            name,
            output: String::new(),
        }
    }

    /// The process ID.
    pub fn pid(&self) -> i32 {
        let id = self.child.as_ref().map_or(0, Child::id);
        i32::try_from(id).unwrap_or(0)
    }

    /// Sends `signal` to the process.
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill has no memory preconditions; the PID is our own child, not yet reaped.
        let rc = unsafe { libc::kill(self.pid(), signal) };
        assert_eq!(rc, 0, "kill {} {}", signal, self.name);
    }

    /// The exit status if it has exited.
    pub fn try_exit(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut()?.try_wait().ok().flatten()
    }

    /// Waits up to `limit` for the process to exit and returns its status and output.
    pub fn wait_exit(&mut self, limit: Duration) -> (std::process::ExitStatus, String) {
        let start = Instant::now();
        loop {
            if let Some(status) = self.try_exit() {
                let child = self.child.take().expect("a child");
                let out = child.wait_with_output().expect("collect output");
                self.output = format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
                return (status, self.output.clone());
            }
            assert!(
                start.elapsed() < limit,
                "{} did not exit within {limit:?}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the process, then returns what it printed.
    pub fn output(&mut self) -> String {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            if let Ok(out) = child.wait_with_output() {
                self.output = format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        self.output.clone()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A scratch directory removed on drop.
pub struct Scratch {
    /// Its path.
    pub dir: PathBuf,
}

impl Scratch {
    /// A new directory under the system's temporary directory.
    pub fn new(test: &str) -> Scratch {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("aoe-e2e-{test}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("make scratch directory");
        Scratch { dir }
    }

    /// A sparse file of `bytes` in the directory.
    pub fn sparse(&self, name: &str, bytes: u64) -> PathBuf {
        let path = self.dir.join(name);
        let file = std::fs::File::create(&path).expect("create sparse file");
        file.set_len(bytes).expect("size sparse file");
        path
    }

    /// A file holding `data`.
    pub fn file(&self, name: &str, data: &[u8]) -> PathBuf {
        let path = self.dir.join(name);
        std::fs::write(&path, data).expect("write file");
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Deterministic pseudo-random bytes.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}
