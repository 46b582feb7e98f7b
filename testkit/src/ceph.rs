//! A single-node Ceph cluster for tests (the project's `tests/ceph/cluster.sh`), optionally
//! inside one of the test's network namespaces.
//!
//! Guarantees: at most one cluster of this process runs at a time (a [`Cluster`] holds a
//! process-wide lock, so tests of one binary that each bring one up take turns: the machine
//! has two cores); the cluster's daemons are stopped by their own PIDs and its directory is
//! removed when the `Cluster` is dropped, also when an assertion failed. [`can_run`] skips a
//! Ceph test when the machine has no Ceph, or fails it when `AOE_REQUIRE_CEPH=1` (CI).

use crate::netns::Namespace;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// The object store of the test cluster's OSD.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    /// In memory: starts in about a second; RAM grows with data written (small tests).
    Mem,
    /// A block file in the cluster's directory: for tests that write a lot.
    Blue,
}

/// Why Ceph tests cannot run here, or `None` if they can.
pub fn cannot_run_reason() -> Option<String> {
    if let Some(reason) = crate::netns::cannot_run_reason() {
        return Some(reason);
    }
    let missing: Vec<&str> = ["ceph-mon", "ceph-osd", "ceph", "rbd"]
        .into_iter()
        .filter(|tool| {
            !Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .output()
                .is_ok_and(|out| out.status.success())
        })
        .collect();
    if !missing.is_empty() {
        return Some(format!(
            "needs Ceph ({} missing: apt-get install ceph-mon ceph-osd ceph-common)",
            missing.join(", ")
        ));
    }
    aoe_storage_libraries().err()
}

/// librbd/librados present (the RBD back end loads them at run time).
fn aoe_storage_libraries() -> Result<(), String> {
    for library in ["librbd.so.1", "librados.so.2"] {
        let found = [
            "/usr/lib/x86_64-linux-gnu",
            "/usr/lib/aarch64-linux-gnu",
            "/usr/lib",
        ]
        .iter()
        .any(|dir| Path::new(dir).join(library).exists());
        if !found {
            return Err(format!("needs {library} (apt-get install librbd1)"));
        }
    }
    Ok(())
}

/// True if a Ceph test can run. Otherwise says why on stderr and returns false, or panics when
/// `AOE_REQUIRE_CEPH=1` (CI), so that a skipped test never passes silently there.
pub fn can_run(test: &str) -> bool {
    let Some(reason) = cannot_run_reason() else {
        return true;
    };
    if std::env::var("AOE_REQUIRE_CEPH").as_deref() == Ok("1") {
        panic!("{test} cannot run: {reason}, and AOE_REQUIRE_CEPH=1");
    }
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {test}: {reason} (set AOE_REQUIRE_CEPH=1 to make this a failure)"
    );
    false
}

/// Returns from the calling test early when it cannot run (see [`can_run`]).
#[macro_export]
macro_rules! require_ceph {
    () => {
        if !$crate::ceph::can_run(module_path!()) {
            return;
        }
    };
}

/// The project's bring-up script.
pub fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/ceph/cluster.sh")
}

/// A running test cluster with pool `rbd`; stopped and removed on drop.
#[derive(Debug)]
pub struct Cluster {
    dir: PathBuf,
    netns: Option<String>,
    _turn: MutexGuard<'static, ()>,
}

impl Cluster {
    /// Brings a cluster up in `dir` (which must not be on tmpfs for [`Store::Blue`]), inside
    /// `netns` bound to `addr` when given (else on 127.0.0.1 of this namespace).
    ///
    /// # Panics
    /// When the cluster does not come up (with the script's output).
    pub fn up(dir: &Path, store: Store, netns: Option<(&Namespace, &str)>) -> Cluster {
        let turn = ONE_AT_A_TIME
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut command = match netns {
            Some((ns, _)) => ns.command(&[]),
            None => Command::new("env"),
        };
        command.arg("bash").arg(script()).arg("up").arg(dir);
        command.args([
            "--store",
            match store {
                Store::Mem => "memstore",
                Store::Blue => "bluestore",
            },
        ]);
        if let Some((_, addr)) = netns {
            command.args(["--addr", addr]);
        }
        let cluster = Cluster {
            dir: dir.to_owned(),
            netns: netns.map(|(ns, _)| ns.name.clone()),
            _turn: turn,
        };
        let out = command.output().expect("run tests/ceph/cluster.sh");
        assert!(
            out.status.success(),
            "the test cluster did not come up:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        cluster
    }

    /// `CEPH_CONF` of the cluster.
    pub fn conf(&self) -> PathBuf {
        self.dir.join("ceph.conf")
    }

    /// A command `program ARGS` with `CEPH_CONF` set, in the cluster's namespace.
    pub fn command(&self, program: &str, args: &[&str]) -> Command {
        let mut command = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]);
                c.arg(program);
                c
            }
            None => Command::new(program),
        };
        command.args(args).env("CEPH_CONF", self.conf());
        command
    }

    /// Runs `program ARGS` (rbd, ceph, rados) against the cluster; asserts success, returns
    /// stdout.
    pub fn run(&self, program: &str, args: &[&str]) -> String {
        let out = self
            .command(program, args)
            .output()
            .unwrap_or_else(|e| panic!("run {program}: {e}"));
        assert!(
            out.status.success(),
            "{program} {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Creates image `rbd/NAME` of `mib` MiB.
    pub fn create_image(&self, name: &str, mib: u64) {
        self.run(
            "rbd",
            &[
                "create",
                "--size",
                &format!("{mib}M"),
                &format!("rbd/{name}"),
            ],
        );
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // `down` stops the daemons by their pid files and removes the directory.
        let _ = Command::new("bash")
            .arg(script())
            .arg("down")
            .arg(&self.dir)
            .output();
    }
}
