//! Guards against double exports: two exporters writing one file, and two targets answering
//! one shelf.slot on a LAN. Either would corrupt an initiator's data silently.
//!
//! * [`check_shared_files`]: one config exporting one file (or device) twice, where a writable
//!   export's sectors overlap the other's, is refused (read-only exports, and disjoint `-o`/`-l`
//!   windows of one disk, may share).
//! * [`FileLock`]: every exported file or device is locked while it is served, exclusively for a
//!   writable export and shared for a read-only one (`flock(2)`, which `host-sim` processes
//!   respect); a block device served writable is also held open with `O_EXCL`, which the kernel
//!   refuses while the device is mounted or claimed (md, LVM, another `O_EXCL` opener). Exporters
//!   that take no lock (Debian's vblade) are found by scanning `/proc/*/fd` for a process that
//!   has the file open for writing. A refusal names the holder (PID and command line) when
//!   `/proc` tells it.
//! * [`AddressClaim`]: a shelf.slot served on an interface is claimed host-wide (an abstract unix
//!   socket named after the interface and address, per network namespace, released when the
//!   process dies), so a second `host-sim` on the same host and interface is refused; its
//!   holder is named from `/proc/net/unix`.
//! * [`Probe`]: a target elsewhere on the LAN answering our shelf.slot is found by a broadcast
//!   Query Config to that shelf.slot when an export starts on a link and whenever the link is
//!   reopened; the worker refuses to announce or serve the export there while one answers (see
//!   `worker`), unless duplicates are allowed.
//!
//! What cannot be seen: a vblade on this same host and interface exporting another file under
//! the same shelf.slot (a raw socket never sees frames its own host sends, and vblade takes no
//! lock); it is caught only when it exports the same file.

use crate::spec::{ExportSpec, SpecError};
use aoe_net::{EthernetAddress, MacText};
use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

/// What makes two paths the same storage: the device number of a block device (whatever node
/// names it), or the file system's device and inode of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StorageId {
    /// A block device: its `st_rdev`.
    Device(u64),
    /// A file: `st_dev` and `st_ino`.
    File(u64, u64),
}

impl StorageId {
    /// The storage `path` names, if it exists.
    pub fn of(path: &Path) -> Option<StorageId> {
        let meta = std::fs::metadata(path).ok()?;
        Some(if meta.file_type().is_block_device() {
            StorageId::Device(meta.rdev())
        } else {
            StorageId::File(meta.dev(), meta.ino())
        })
    }
}

/// The sectors `[offset, offset + length)` an export uses of its file (`None`: to the end).
fn window(spec: &ExportSpec) -> (u64, Option<u64>) {
    (
        spec.disk.offset,
        spec.disk
            .length
            .map(|length| spec.disk.offset.saturating_add(length)),
    )
}

fn overlap(a: (u64, Option<u64>), b: (u64, Option<u64>)) -> bool {
    let before = |end: Option<u64>, start: u64| end.is_some_and(|end| end <= start);
    !before(a.1, b.0) && !before(b.1, a.0)
}

fn window_text((start, end): (u64, Option<u64>)) -> String {
    match end {
        Some(end) => format!("sectors {start}..{end}"),
        None => format!("sectors {start}.."),
    }
}

/// Refuses a configuration that exports one file or device twice where the sectors overlap and
/// at least one of the two exports is writable. Files that do not exist are left to the open,
/// which refuses them with its own message.
///
/// # Errors
/// One line naming the file, both exports and their windows, and what to change.
pub fn check_shared_files(specs: &[ExportSpec]) -> Result<(), SpecError> {
    let ids: Vec<Option<StorageId>> = specs.iter().map(|spec| StorageId::of(&spec.file)).collect();
    for (j, later) in specs.iter().enumerate() {
        for (i, earlier) in specs[..j].iter().enumerate() {
            if ids[i].is_none() || ids[i] != ids[j] {
                continue;
            }
            if earlier.disk.read_only && later.disk.read_only {
                continue;
            }
            let (a, b) = (window(earlier), window(later));
            if !overlap(a, b) {
                continue;
            }
            let hint = if (earlier.shelf, earlier.slot) == (later.shelf, later.slot) {
                "to serve one export on several interfaces, list them in one [[export]]"
            } else {
                "make both read-only, or give them disjoint offset/length windows"
            };
            return Err(SpecError(format!(
                "{} is exported as {} ({}) and as {} ({}); a writable export must have its \
                 sectors to itself: {hint}",
                later.file.display(),
                earlier.name(),
                window_text(a),
                later.name(),
                window_text(b)
            )));
        }
    }
    Ok(())
}

/// The command line of process `pid`, for naming a holder.
fn command_line(pid: u32) -> Option<String> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let words: Vec<String> = raw
        .split(|&b| b == 0)
        .filter(|word| !word.is_empty())
        .map(|word| String::from_utf8_lossy(word).into_owned())
        .collect();
    (!words.is_empty()).then(|| words.join(" "))
}

/// `pid N (command line)`.
fn describe_process(pid: u32) -> String {
    match command_line(pid) {
        Some(line) => format!("pid {pid} ({line})"),
        None => format!("pid {pid}"),
    }
}

/// The PIDs holding a `flock` on the file with device `dev` and inode `ino`, from `/proc/locks`.
fn flock_holders(dev: u64, ino: u64) -> Vec<u32> {
    let Ok(text) = std::fs::read_to_string("/proc/locks") else {
        return Vec::new();
    };
    // "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF" (major:minor in hex).
    let major = libc::major(dev);
    let minor = libc::minor(dev);
    let wanted = format!("{major:02x}:{minor:02x}:{ino}");
    let mut pids: Vec<u32> = text
        .lines()
        .filter(|line| line.contains("FLOCK"))
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let at = fields.iter().position(|f| *f == "FLOCK")?;
            let pid = fields.get(at + 3)?.parse().ok()?;
            let id = fields.get(at + 4)?;
            id.eq_ignore_ascii_case(&wanted).then_some(pid)
        })
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids
}

/// Other processes that have `id` open for writing, by scanning `/proc/*/fd` (what can be read
/// of it: without `CAP_SYS_PTRACE`, only processes of our own user and privileges).
pub fn writers_of(id: StorageId) -> Vec<u32> {
    let me = std::process::id();
    let Ok(processes) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for process in processes.flatten() {
        let Some(pid) = process
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(process.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let Ok(meta) = std::fs::metadata(fd.path()) else {
                continue;
            };
            let same = match id {
                StorageId::Device(rdev) => {
                    meta.file_type().is_block_device() && meta.rdev() == rdev
                }
                StorageId::File(dev, ino) => meta.dev() == dev && meta.ino() == ino,
            };
            if !same {
                continue;
            }
            let info = process.path().join("fdinfo").join(fd.file_name());
            let flags = std::fs::read_to_string(info)
                .ok()
                .and_then(|text| {
                    text.lines()
                        .find_map(|line| line.strip_prefix("flags:"))
                        .and_then(|octal| u32::from_str_radix(octal.trim(), 8).ok())
                })
                .unwrap_or(0);
            let access = flags & 0o3;
            if access == 0o1 || access == 0o2 {
                found.push(pid);
                break;
            }
        }
    }
    found
}

/// A lock on one exported file or device, held while any export of this process serves it.
#[derive(Debug)]
pub struct FileLock {
    path: PathBuf,
    /// The descriptor the `flock` is on (and, for a writable block device, opened `O_EXCL`).
    fd: OwnedFd,
    exclusive: bool,
}

impl FileLock {
    /// Whether this lock is exclusive (a writable export).
    pub fn is_exclusive(&self) -> bool {
        self.exclusive
    }

    /// The path it was taken on.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn open(path: &Path, id: StorageId, exclusive: bool) -> Result<FileLock, String> {
        use std::os::unix::fs::OpenOptionsExt as _;
        let device = matches!(id, StorageId::Device(_));
        let mut options = std::fs::OpenOptions::new();
        options.read(true);
        if device && exclusive {
            options.custom_flags(libc::O_EXCL);
        }
        let file = options.open(path).map_err(|error| {
            if error.raw_os_error() == Some(libc::EBUSY) {
                format!(
                    "{} is in use (mounted, part of md/LVM, or opened exclusively by another \
                     program); refusing to export it writable",
                    path.display()
                )
            } else {
                format!("cannot open {}: {error}", path.display())
            }
        })?;
        let lock = FileLock {
            path: path.to_path_buf(),
            fd: OwnedFd::from(file),
            exclusive,
        };
        lock.take()?;
        if exclusive {
            let writers = writers_of(id);
            if let Some(&pid) = writers.first() {
                return Err(format!(
                    "{} is open for writing by {}; refusing to export it writable (stop that \
                     exporter first)",
                    path.display(),
                    describe_process(pid)
                ));
            }
        }
        Ok(lock)
    }

    /// Takes (or converts to) this lock's kind, without waiting.
    fn take(&self) -> Result<(), String> {
        let operation = if self.exclusive {
            libc::LOCK_EX
        } else {
            libc::LOCK_SH
        };
        // SAFETY: flock on a descriptor we own; no memory is passed.
        let rc = unsafe { libc::flock(self.fd.as_raw_fd(), operation | libc::LOCK_NB) };
        if rc == 0 {
            return Ok(());
        }
        let error = std::io::Error::last_os_error();
        if error.raw_os_error() != Some(libc::EWOULDBLOCK) {
            return Err(format!("cannot lock {}: {error}", self.path.display()));
        }
        let holders = match std::fs::metadata(&self.path) {
            Ok(meta) => flock_holders(meta.dev(), meta.ino()),
            Err(_) => Vec::new(),
        };
        let holder = match holders.iter().find(|&&pid| pid != std::process::id()) {
            Some(&pid) => format!(" by {}", describe_process(pid)),
            None => String::new(),
        };
        Err(format!(
            "{} is already exported{holder}; {}",
            self.path.display(),
            if self.exclusive {
                "a writable export needs it to itself"
            } else {
                "it is exported writable there"
            }
        ))
    }
}

/// The locks this process holds, by storage, shared by every export of one file (also across a
/// reload, where the new export takes over the old one's lock).
#[derive(Debug, Default)]
pub struct FileLocks {
    held: Mutex<HashMap<StorageId, Weak<FileLock>>>,
}

impl FileLocks {
    /// The lock for `path`: the one this process already holds for that storage (converted to
    /// exclusive if a writable export now needs it), or a new one.
    ///
    /// # Errors
    /// When another process holds a conflicting lock or has the file open for writing, or the
    /// device is in use; the message names the holder when `/proc` tells it.
    pub fn lock(&self, path: &Path, exclusive: bool) -> Result<Arc<FileLock>, String> {
        let id = StorageId::of(path)
            .ok_or_else(|| format!("cannot open {}: no such file or device", path.display()))?;
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        held.retain(|_, lock| lock.strong_count() > 0);
        if let Some(lock) = held.get(&id).and_then(Weak::upgrade) {
            if exclusive && !lock.exclusive {
                // A read-only export of ours has it; a writable one joins: a new exclusive lock
                // (flock converts on the old descriptor only, which others still use).
                let upgraded = Arc::new(FileLock {
                    path: path.to_path_buf(),
                    fd: lock
                        .fd
                        .try_clone()
                        .map_err(|error| format!("cannot lock {}: {error}", path.display()))?,
                    exclusive: true,
                });
                upgraded.take()?;
                held.insert(id, Arc::downgrade(&upgraded));
                return Ok(upgraded);
            }
            return Ok(lock);
        }
        let lock = Arc::new(FileLock::open(path, id, exclusive)?);
        held.insert(id, Arc::downgrade(&lock));
        Ok(lock)
    }
}

/// A host-wide claim of one shelf.slot on one interface (see the [module docs](self)).
#[derive(Debug)]
pub struct AddressClaim {
    _socket: std::os::unix::net::UnixListener,
    /// `interface/eS.L`.
    pub name: String,
}

/// The abstract socket name of a claim.
fn claim_name(interface: &str, shelf: u16, slot: u8) -> String {
    format!("vblade-rs/aoe/{interface}/e{shelf}.{slot}")
}

/// PIDs that hold the abstract unix socket `name`, from `/proc/net/unix` and `/proc/*/fd`.
fn abstract_socket_holders(name: &str) -> Vec<u32> {
    let Ok(text) = std::fs::read_to_string("/proc/net/unix") else {
        return Vec::new();
    };
    let wanted = format!("@{name}");
    let inodes: Vec<String> = text
        .lines()
        .filter(|line| line.split_whitespace().nth(7) == Some(wanted.as_str()))
        .filter_map(|line| line.split_whitespace().nth(6).map(str::to_owned))
        .collect();
    if inodes.is_empty() {
        return Vec::new();
    }
    let Ok(processes) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids = Vec::new();
    for process in processes.flatten() {
        let Some(pid) = process
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(process.path().join("fd")) else {
            continue;
        };
        let holds = fds.flatten().any(|fd| {
            std::fs::read_link(fd.path()).is_ok_and(|target| {
                let target = target.to_string_lossy();
                inodes
                    .iter()
                    .any(|inode| target == format!("socket:[{inode}]").as_str())
            })
        });
        if holds {
            pids.push(pid);
        }
    }
    pids
}

/// The claim's socket address: an abstract name on Linux (it goes with the process), a path
/// under the runtime directory elsewhere.
#[cfg(target_os = "linux")]
fn claim_address(name: &str) -> std::io::Result<std::os::unix::net::SocketAddr> {
    use std::os::linux::net::SocketAddrExt as _;
    std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
}

#[cfg(not(target_os = "linux"))]
fn claim_address(name: &str) -> std::io::Result<std::os::unix::net::SocketAddr> {
    let path = std::env::temp_dir().join(name.replace('/', "_"));
    // A claim left by a process that died: the path exists, but nobody listens on it.
    if std::os::unix::net::UnixStream::connect(&path).is_err() {
        let _ = std::fs::remove_file(&path);
    }
    std::os::unix::net::SocketAddr::from_pathname(path)
}

impl AddressClaim {
    /// Claims `shelf.slot` on `interface` for this process.
    ///
    /// # Errors
    /// When another process of this host (and network namespace) has claimed it; the message
    /// names it when `/proc` tells.
    pub fn take(interface: &str, shelf: u16, slot: u8) -> Result<AddressClaim, String> {
        let name = claim_name(interface, shelf, slot);
        let address = claim_address(&name)
            .map_err(|error| format!("cannot claim e{shelf}.{slot} on {interface}: {error}"))?;
        match std::os::unix::net::UnixListener::bind_addr(&address) {
            Ok(socket) => Ok(AddressClaim {
                _socket: socket,
                name: format!("{interface}/e{shelf}.{slot}"),
            }),
            Err(error) if error.kind() == std::io::ErrorKind::AddrInUse => {
                let holder = match abstract_socket_holders(&name).first() {
                    Some(&pid) => format!(" by {}", describe_process(pid)),
                    None => String::new(),
                };
                Err(format!(
                    "e{shelf}.{slot} is already served on {interface} by another host-sim on \
                     this host{holder}; two targets with one address corrupt initiators' data \
                     (--allow-duplicate to serve anyway)"
                ))
            }
            Err(error) => Err(format!(
                "cannot claim e{shelf}.{slot} on {interface}: {error}"
            )),
        }
    }
}

/// The claims of this process, shared by exports of one address on one interface (and across a
/// reload).
#[derive(Debug, Default)]
pub struct AddressClaims {
    held: Mutex<HashMap<String, Weak<AddressClaim>>>,
}

impl AddressClaims {
    /// The claim of `shelf.slot` on `interface`, held already or taken now.
    ///
    /// # Errors
    /// As [`AddressClaim::take`].
    pub fn claim(
        &self,
        interface: &str,
        shelf: u16,
        slot: u8,
    ) -> Result<Arc<AddressClaim>, String> {
        let key = claim_name(interface, shelf, slot);
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        held.retain(|_, claim| claim.strong_count() > 0);
        if let Some(claim) = held.get(&key).and_then(Weak::upgrade) {
            return Ok(claim);
        }
        let claim = Arc::new(AddressClaim::take(interface, shelf, slot)?);
        held.insert(key, Arc::downgrade(&claim));
        Ok(claim)
    }
}

/// The MACs of this process's links: a probe's answer from one of them is our own.
static OWN_MACS: Mutex<Vec<EthernetAddress>> = Mutex::new(Vec::new());

/// Records a MAC of one of this process's links.
pub fn register_own_mac(mac: EthernetAddress) {
    let mut macs = OWN_MACS.lock().unwrap_or_else(|p| p.into_inner());
    if !macs.contains(&mac) {
        macs.push(mac);
    }
}

/// The MACs of this process's links.
pub fn own_macs() -> Vec<EthernetAddress> {
    OWN_MACS.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

/// How long a probe listens for other targets after its first query.
pub const PROBE_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

/// A probe for another target answering one shelf.slot on one link: a broadcast Query Config
/// to that shelf.slot (sent twice, in case one is lost), and the answers from MACs that are not
/// ours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// Shelf.
    pub shelf: u16,
    /// Slot.
    pub slot: u8,
    /// The tag of the queries.
    pub tag: u32,
    /// MACs that answered, other than ours.
    pub others: Vec<EthernetAddress>,
}

static PROBE_TAG: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

impl Probe {
    /// A probe for `shelf.slot` with a tag of its own (bit 31 set, like control requests).
    pub fn new(shelf: u16, slot: u8) -> Probe {
        let tag = 0x8000_0000
            | (std::process::id() & 0x7fff) << 16
            | (PROBE_TAG.fetch_add(1, std::sync::atomic::Ordering::Relaxed) & 0xffff);
        Probe {
            shelf,
            slot,
            tag,
            others: Vec::new(),
        }
    }

    /// Writes the query from `source` into `frame` (at least 60 octets) and returns its length.
    pub fn query(&self, source: EthernetAddress, frame: &mut [u8]) -> usize {
        frame[..60].fill(0);
        frame[0..6].copy_from_slice(&[0xff; 6]);
        frame[6..12].copy_from_slice(&source.0);
        frame[12..14].copy_from_slice(&aoe_net::ETHERTYPE_AOE.to_be_bytes());
        frame[14] = 0x10; // version 1, a request
        frame[16..18].copy_from_slice(&self.shelf.to_be_bytes());
        frame[18] = self.slot;
        frame[19] = 1; // Query Config, read (the argument stays zero)
        frame[20..24].copy_from_slice(&self.tag.to_be_bytes());
        60
    }

    /// Looks at a received frame: a Query Config response to this probe from a MAC that is not
    /// one of `ours` is recorded. Returns true if the frame was an answer to this probe.
    pub fn observe(&mut self, frame: &[u8], ours: &[EthernetAddress]) -> bool {
        let Ok(header) = aoe_core::wire::aoe_header(frame) else {
            return false;
        };
        if !header.is_response()
            || header.command() != aoe_core::wire::aoe::Command::QueryConfig
            || header.tag() != self.tag
            || (header.major(), header.minor()) != (self.shelf, self.slot)
        {
            return false;
        }
        let mut source = [0u8; 6];
        source.copy_from_slice(&frame[6..12]);
        let source = EthernetAddress(source);
        if !ours.contains(&source) && !self.others.contains(&source) {
            self.others.push(source);
        }
        true
    }

    /// The MACs that answered, for a message.
    pub fn others_text(&self) -> String {
        let macs: Vec<String> = self
            .others
            .iter()
            .map(|mac| MacText(*mac).to_string())
            .collect();
        macs.join(", ")
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::spec::{DEFAULT_BUFFER_COUNT, StatePresets};
    use aoe_net::LinkSpec;
    use aoe_storage::file::DiskOptions;
    use aoe_testkit::scratch::Scratch;

    fn spec(
        slot: u8,
        file: &Path,
        read_only: bool,
        offset: u64,
        length: Option<u64>,
    ) -> ExportSpec {
        ExportSpec {
            shelf: 1,
            slot,
            links: vec![LinkSpec::packet("eth1")],
            file: file.to_path_buf(),
            buffer_count: DEFAULT_BUFFER_COUNT,
            disk: DiskOptions {
                read_only,
                offset,
                length,
                ..DiskOptions::default()
            },
            mac_mask: vec![],
            state: StatePresets::default(),
            ha: crate::spec::Ha::None,
        }
    }

    #[test]
    fn one_file_under_two_addresses_is_refused_unless_read_only_or_disjoint() {
        let scratch = Scratch::new("guard-shared");
        let a = scratch.sparse("a.img", 1 << 20);
        let b = scratch.sparse("b.img", 1 << 20);
        let link = scratch.dir.join("alias.img");
        std::os::unix::fs::symlink(&a, &link).unwrap();
        let hard = scratch.dir.join("hard.img");
        std::fs::hard_link(&a, &hard).unwrap();
        // Two files: fine.
        check_shared_files(&[spec(0, &a, false, 0, None), spec(1, &b, false, 0, None)]).unwrap();
        // One file by three names, writable: refused, naming both exports.
        for other in [&a, &link, &hard] {
            let error =
                check_shared_files(&[spec(0, &a, false, 0, None), spec(1, other, false, 0, None)])
                    .unwrap_err();
            assert!(
                error
                    .0
                    .contains("as e1.0 (sectors 0..) and as e1.1 (sectors 0..)")
                    && error.0.contains("read-only"),
                "{error}"
            );
        }
        // One writable, one read-only: still refused (the reader sees torn writes).
        assert!(
            check_shared_files(&[spec(0, &a, false, 0, None), spec(1, &a, true, 0, None)]).is_err()
        );
        // Both read-only: shared.
        check_shared_files(&[spec(0, &a, true, 0, None), spec(1, &a, true, 0, None)]).unwrap();
        // Disjoint windows of one disk: each has its sectors to itself.
        check_shared_files(&[
            spec(0, &a, false, 0, Some(1000)),
            spec(1, &a, false, 1000, None),
        ])
        .unwrap();
        let error = check_shared_files(&[
            spec(0, &a, false, 0, Some(1001)),
            spec(1, &a, false, 1000, Some(10)),
        ])
        .unwrap_err();
        assert!(error.0.contains("sectors 0..1001") && error.0.contains("sectors 1000..1010"));
        // The same address twice on one file: the hint says how to use two interfaces.
        let error = check_shared_files(&[spec(0, &a, false, 0, None), spec(0, &a, false, 0, None)])
            .unwrap_err();
        assert!(error.0.contains("list them in one [[export]]"), "{error}");
        // A missing file is left to the open.
        let missing = scratch.dir.join("missing.img");
        check_shared_files(&[
            spec(0, &missing, false, 0, None),
            spec(1, &missing, false, 0, None),
        ])
        .unwrap();
    }

    #[test]
    fn locks_are_shared_within_a_process_and_refused_across() {
        let scratch = Scratch::new("guard-lock");
        let a = scratch.sparse("a.img", 1 << 20);
        let ours = FileLocks::default();
        let first = ours.lock(&a, false).unwrap();
        let second = ours.lock(&a, false).unwrap();
        assert!(
            Arc::ptr_eq(&first, &second),
            "one lock per file in a process"
        );
        let writable = ours.lock(&a, true).unwrap();
        assert!(writable.is_exclusive());
        // Another "process" (another lock table, another descriptor) is refused while we hold it.
        let theirs = FileLocks::default();
        let error = theirs.lock(&a, false).unwrap_err();
        assert!(
            error.contains("is already exported") && error.contains("writable there"),
            "{error}"
        );
        drop((first, second, writable));
        let theirs_lock = theirs.lock(&a, true).unwrap();
        let error = ours.lock(&a, true).unwrap_err();
        assert!(error.contains("needs it to itself"), "{error}");
        drop(theirs_lock);
        ours.lock(&a, true).unwrap();
    }

    #[test]
    fn address_claims_are_exclusive_per_interface() {
        let interface = format!("gtest{}", std::process::id());
        let ours = AddressClaims::default();
        let claim = ours.claim(&interface, 7, 1).unwrap();
        assert!(Arc::ptr_eq(&claim, &ours.claim(&interface, 7, 1).unwrap()));
        let theirs = AddressClaims::default();
        let error = theirs.claim(&interface, 7, 1).unwrap_err();
        assert!(
            error.contains("already served on")
                && error.contains(&format!("pid {}", std::process::id())),
            "{error}"
        );
        theirs.claim(&interface, 7, 2).unwrap();
        theirs.claim("other0", 7, 1).unwrap();
        drop(claim);
        theirs.claim(&interface, 7, 1).unwrap();
    }

    #[test]
    fn a_probe_counts_answers_from_other_macs_only() {
        let ours = EthernetAddress([2, 0, 0, 0, 0, 1]);
        let mut probe = Probe::new(3, 4);
        let mut query = [0u8; 64];
        assert_eq!(probe.query(ours, &mut query), 60);
        assert_eq!(&query[..6], &[0xff; 6]);
        assert_eq!(query[14..20], [0x10, 0, 0, 3, 4, 1]);
        let answer = |from: u8, tag: u32, slot: u8, flags: u8| {
            let mut frame = query;
            frame[0..6].copy_from_slice(&ours.0);
            frame[6..12].copy_from_slice(&[2, 0, 0, 0, 0, from]);
            frame[14] = flags;
            frame[18] = slot;
            frame[20..24].copy_from_slice(&tag.to_be_bytes());
            frame
        };
        assert!(probe.observe(&answer(9, probe.tag, 4, 0x18), &[ours]));
        assert!(
            probe.observe(&answer(9, probe.tag, 4, 0x18), &[ours]),
            "once per MAC"
        );
        assert!(
            probe.observe(&answer(1, probe.tag, 4, 0x18), &[ours]),
            "ours: not counted"
        );
        assert!(
            !probe.observe(&answer(8, probe.tag + 1, 4, 0x18), &[ours]),
            "another tag"
        );
        assert!(
            !probe.observe(&answer(8, probe.tag, 5, 0x18), &[ours]),
            "another slot"
        );
        assert!(
            !probe.observe(&answer(8, probe.tag, 4, 0x10), &[ours]),
            "a request"
        );
        assert_eq!(probe.others, [EthernetAddress([2, 0, 0, 0, 0, 9])]);
        assert_eq!(probe.others_text(), "02:00:00:00:00:09");
    }
}
