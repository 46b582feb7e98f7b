//! Private network namespaces with veth pairs, for tests that need real interfaces (root).
//!
//! Guarantees: every namespace and interface name includes the test process's PID and a
//! per-process counter, so tests running at the same time (and other people's) never collide;
//! nothing is created outside the namespaces made here (no interface of the host is touched,
//! nothing is sent on one); a [`Namespace`] deletes itself on drop (which deletes the
//! interfaces in it, veth peers included), also when an assertion failed.

use std::io::Write as _;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

/// Why root-only tests cannot run here, or `None` if they can.
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

/// True if a root-only test can run. Otherwise says why on stderr and returns false, or panics
/// when `AOE_REQUIRE_ROOT_TESTS=1` (CI), so that a skipped test never passes silently there.
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

/// Returns from the calling test early when it cannot run (see [`can_run`]).
#[macro_export]
macro_rules! require_root {
    () => {
        if !$crate::netns::can_run(module_path!()) {
            return;
        }
    };
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A name unique to this process and call: `prefix` (cut to fit), the PID and a counter, at
/// most `max` octets.
pub fn unique_name(prefix: &str, max: usize) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let suffix = format!("{}x{n}", std::process::id());
    let keep = max.saturating_sub(suffix.len()).min(prefix.len());
    format!("{}{suffix}", &prefix[..keep])
}

/// Runs `ip ARGS` and returns its output.
pub fn ip(args: &[&str]) -> Output {
    Command::new("ip").args(args).output().expect("run ip")
}

/// Runs `ip ARGS` and asserts that it succeeded.
pub fn ip_ok(args: &[&str]) {
    let out = ip(args);
    assert!(
        out.status.success(),
        "ip {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A network namespace of this test, deleted on drop.
#[derive(Debug)]
pub struct Namespace {
    /// Its name (for `ip netns exec`).
    pub name: String,
}

impl Namespace {
    /// A new namespace named after `tag`, with its loopback up.
    pub fn new(tag: &str) -> Namespace {
        let name = unique_name(&format!("aoe-{tag}-"), 40);
        ip_ok(&["netns", "add", &name]);
        let ns = Namespace { name };
        ns.ip_ok(&["link", "set", "lo", "up"]);
        ns
    }

    /// Runs `ip ARGS` inside the namespace and asserts it succeeded.
    pub fn ip_ok(&self, args: &[&str]) {
        let mut full = vec!["-n", self.name.as_str()];
        full.extend_from_slice(args);
        ip_ok(&full);
    }

    /// Runs a command inside the namespace and asserts it succeeded.
    pub fn exec(&self, args: &[&str]) {
        let status = self.command(args).status().expect("run ip netns exec");
        assert!(status.success(), "{args:?} in {} failed", self.name);
    }

    /// A command that runs `args` inside the namespace (`ip netns exec` execs the program, so
    /// a spawned child's PID is the program's own).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name]).args(args);
        command
    }

    /// Moves the calling thread into the namespace (network namespaces are per thread).
    pub fn enter(&self) {
        enter(&self.name);
    }

    /// The MAC of `interface` in this namespace, as `ip link` prints it.
    pub fn mac_of(&self, interface: &str) -> String {
        let out = ip(&["-n", &self.name, "-o", "link", "show", interface]);
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        text.split_whitespace()
            .skip_while(|word| *word != "link/ether")
            .nth(1)
            .expect("link/ether in ip link show")
            .to_string()
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        // Deleting a namespace deletes the interfaces in it, and veth pairs with them.
        let _ = ip(&["netns", "del", &self.name]);
    }
}

/// Moves the calling thread into the network namespace named `name` (per thread).
pub fn enter(name: &str) {
    let path = std::ffi::CString::new(format!("/var/run/netns/{name}"))
        .expect("a namespace name has no NUL");
    // SAFETY: a valid NUL-terminated path; the result is checked.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    assert!(fd >= 0, "open {path:?}");
    // SAFETY: fd is a namespace file we opened; setns affects only this thread.
    let rc = unsafe { libc::setns(fd, libc::CLONE_NEWNET) };
    // SAFETY: fd is ours and not used after this.
    unsafe { libc::close(fd) };
    assert_eq!(rc, 0, "setns into {name}");
}

/// A veth pair of MTU `mtu` inside one namespace, both ends up: `(a, b)` interface names.
pub fn veth_in(ns: &Namespace, mtu: u32) -> (String, String) {
    let a = unique_name("va", 15);
    let b = unique_name("vb", 15);
    let mtu = mtu.to_string();
    ns.ip_ok(&[
        "link", "add", &a, "mtu", &mtu, "type", "veth", "peer", "name", &b, "mtu", &mtu,
    ]);
    ns.ip_ok(&["link", "set", &a, "up"]);
    ns.ip_ok(&["link", "set", &b, "up"]);
    (a, b)
}

/// Two namespaces joined by a veth pair: the target's end and the initiator's end.
#[derive(Debug)]
pub struct Pair {
    /// The target's namespace.
    pub target: Namespace,
    /// The initiator's namespace.
    pub initiator: Namespace,
    /// The target's end of the veth pair.
    pub target_if: String,
    /// The initiator's end.
    pub init_if: String,
}

impl Pair {
    /// Both namespaces and a veth pair of `mtu` between them, both ends up.
    pub fn new(test: &str, mtu: u32) -> Pair {
        let short: String = test
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(12)
            .collect();
        let target = Namespace::new(&format!("t-{short}"));
        let initiator = Namespace::new(&format!("i-{short}"));
        let target_if = unique_name("at", 15);
        let init_if = unique_name("ai", 15);
        let mtu = mtu.to_string();
        target.ip_ok(&[
            "link",
            "add",
            &target_if,
            "mtu",
            &mtu,
            "type",
            "veth",
            "peer",
            "name",
            &init_if,
            "netns",
            &initiator.name,
            "mtu",
            &mtu,
        ]);
        target.ip_ok(&["link", "set", &target_if, "up"]);
        initiator.ip_ok(&["link", "set", &init_if, "up"]);
        Pair {
            target,
            initiator,
            target_if,
            init_if,
        }
    }

    /// The MAC of the initiator's interface.
    pub fn init_mac(&self) -> String {
        self.initiator.mac_of(&self.init_if)
    }
}

/// One namespace holding a veth pair `a`/`b`, both ends up: for tests that run both ends (a
/// target process and a raw socket) in one namespace.
#[derive(Debug)]
pub struct Veth {
    /// The namespace.
    pub ns: Namespace,
    /// First end.
    pub a: String,
    /// Second end.
    pub b: String,
}

impl Veth {
    /// A new namespace named after `tag` with a veth pair of MTU `mtu`.
    pub fn new(tag: &str, mtu: u32) -> Veth {
        let ns = Namespace::new(tag);
        let (a, b) = veth_in(&ns, mtu);
        Veth { ns, a, b }
    }

    /// Runs a command inside the namespace and asserts it succeeded.
    pub fn exec(&self, args: &[&str]) {
        self.ns.exec(args);
    }

    /// Moves the calling thread into the namespace.
    pub fn enter(&self) {
        self.ns.enter();
    }
}

/// A LAN: a bridge in a namespace of its own (a switch that forwards broadcasts to every port),
/// to which other namespaces attach by veth. For tests with more than two parties: two
/// targets and an initiator, failover gateways and, over IP, a storage cluster. The bridge's
/// namespace (and so the bridge and every veth) and the hosts made with it are deleted on drop.
#[derive(Debug)]
pub struct Lan {
    /// The bridge's namespace.
    pub ns: Namespace,
    /// The bridge's name.
    pub bridge: String,
    /// Hosts made by [`Lan::with_hosts`], in order, each with one interface [`Lan::IFACE`].
    pub hosts: Vec<Namespace>,
    mtu: u32,
}

impl Lan {
    /// The name of the interface of every host made by [`Lan::with_hosts`].
    pub const IFACE: &'static str = "lan0";

    /// A new bridge of MTU `mtu`, up, in a new namespace named after `tag`.
    pub fn new(tag: &str, mtu: u32) -> Lan {
        let ns = Namespace::new(tag);
        let bridge = unique_name("br", 15);
        let mtu_text = mtu.to_string();
        ns.ip_ok(&["link", "add", &bridge, "mtu", &mtu_text, "type", "bridge"]);
        // No IPv6 chatter on the test LAN; forward at once (no STP listening delay).
        let _ = ns
            .command(&["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"])
            .output();
        ns.ip_ok(&[
            "link",
            "set",
            &bridge,
            "type",
            "bridge",
            "forward_delay",
            "0",
        ]);
        ns.ip_ok(&["link", "set", &bridge, "up"]);
        Lan {
            ns,
            bridge,
            hosts: Vec::new(),
            mtu,
        }
    }

    /// A LAN of `hosts` new namespaces, each attached by an interface named [`Lan::IFACE`].
    pub fn with_hosts(tag: &str, hosts: usize, mtu: u32) -> Lan {
        let short: String = tag
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(10)
            .collect();
        let mut lan = Lan::new(&format!("sw-{short}"), mtu);
        for index in 0..hosts {
            let host = Namespace::new(&format!("h{index}-{short}"));
            lan.attach_named(&host, Lan::IFACE, None);
            lan.hosts.push(host);
        }
        lan
    }

    /// The MAC of host `index`'s interface (a host of [`Lan::with_hosts`]).
    pub fn mac_of(&self, index: usize) -> String {
        self.hosts[index].mac_of(Lan::IFACE)
    }

    /// Gives the bridge itself an address (`10.15.0.1/24`): a host on the LAN in the bridge's
    /// namespace.
    pub fn address_bridge(&self, cidr: &str) {
        self.ns.ip_ok(&["addr", "add", cidr, "dev", &self.bridge]);
    }

    /// Attaches `other` to the LAN with a new veth pair, its end up (with address `cidr` if
    /// given); returns the name of the interface in `other`.
    pub fn attach(&self, other: &Namespace, cidr: Option<&str>) -> String {
        let inside = unique_name("ln", 15);
        self.attach_named(other, &inside, cidr);
        inside
    }

    /// As [`attach`](Self::attach), with the interface in `other` named `inside`.
    pub fn attach_named(&self, other: &Namespace, inside: &str, cidr: Option<&str>) {
        let port = unique_name("lp", 15);
        let mtu = self.mtu.to_string();
        self.ns.ip_ok(&[
            "link",
            "add",
            &port,
            "mtu",
            &mtu,
            "type",
            "veth",
            "peer",
            "name",
            inside,
            "netns",
            &other.name,
            "mtu",
            &mtu,
        ]);
        self.ns
            .ip_ok(&["link", "set", &port, "master", &self.bridge]);
        self.ns.ip_ok(&["link", "set", &port, "up"]);
        let _ = other
            .command(&["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"])
            .output();
        if let Some(cidr) = cidr {
            other.ip_ok(&["addr", "add", cidr, "dev", inside]);
        }
        other.ip_ok(&["link", "set", inside, "up"]);
    }
}
