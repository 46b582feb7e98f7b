//! Private network namespaces with veth pairs for tests that need real interfaces (root only).
#![allow(dead_code)]

pub mod aoe;

use std::process::Command;

/// The root check (and the `AOE_REQUIRE_ROOT_TESTS=1` rule) shared with the end-to-end tests.
#[path = "../netns/mod.rs"]
pub mod netns;

/// Returns early from a test, saying so on stderr, when it cannot run; fails instead when
/// `AOE_REQUIRE_ROOT_TESTS=1` (see [`netns::can_run`]).
#[macro_export]
macro_rules! require_root {
    () => {
        if !common::netns::can_run(module_path!()) {
            return;
        }
    };
}

fn ip(args: &[&str]) {
    let status = Command::new("ip").args(args).status().expect("run ip");
    assert!(status.success(), "ip {args:?} failed");
}

/// A network namespace holding a veth pair `a`/`b`, both up; deleted on drop.
pub struct VethNs {
    /// Namespace name.
    pub ns: String,
    /// First end.
    pub a: String,
    /// Second end.
    pub b: String,
}

impl VethNs {
    /// A namespace `hs<tag><pid>` with veth ends `<tag>a`/`<tag>b` at MTU `mtu`.
    pub fn new(tag: &str, mtu: u32) -> VethNs {
        let pid = std::process::id();
        let ns = format!("hs{tag}{pid}");
        let (a, b) = (format!("{tag}a{pid}"), format!("{tag}b{pid}"));
        let (a, b) = (
            a[..a.len().min(15)].to_owned(),
            b[..b.len().min(15)].to_owned(),
        );
        ip(&["netns", "add", &ns]);
        let made = VethNs { ns, a, b };
        let mtu = mtu.to_string();
        made.exec(&[
            "ip", "link", "add", &made.a, "mtu", &mtu, "type", "veth", "peer", "name", &made.b,
            "mtu", &mtu,
        ]);
        made.exec(&["ip", "link", "set", &made.a, "up"]);
        made.exec(&["ip", "link", "set", &made.b, "up"]);
        made.exec(&["ip", "link", "set", "lo", "up"]);
        made
    }

    /// Runs a command inside the namespace and asserts it succeeded.
    pub fn exec(&self, args: &[&str]) {
        let status = Command::new("ip")
            .args(["netns", "exec", &self.ns])
            .args(args)
            .status()
            .expect("run ip netns exec");
        assert!(status.success(), "{args:?} in {} failed", self.ns);
    }

    /// Moves the calling thread into the namespace (network namespaces are per thread).
    pub fn enter(&self) {
        let path = std::ffi::CString::new(format!("/var/run/netns/{}", self.ns)).unwrap();
        // SAFETY: valid NUL-terminated path; the result is checked.
        let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
        assert!(fd >= 0, "open {path:?}");
        // SAFETY: fd is a namespace file we just opened; setns only affects this thread.
        let rc = unsafe { libc::setns(fd, libc::CLONE_NEWNET) };
        // SAFETY: fd is ours.
        unsafe { libc::close(fd) };
        assert_eq!(rc, 0, "setns into {}", self.ns);
    }
}

impl Drop for VethNs {
    fn drop(&mut self) {
        // Deleting the namespace deletes the veth pair with it.
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
    }
}
