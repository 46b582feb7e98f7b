//! Failover between gateways of one RBD image (`ha = "rbd-lock"`): every gateway runs, only the
//! holder of the image's exclusive lock answers.
//!
//! Each export has a [`Gate`]. Without failover it is always open. With it, the gate starts
//! closed: the worker hands the export no frame (it is silent to everything, broadcast
//! discovery included) and sends none of its replies. A manager thread per export
//! ([`start`]) drives three states:
//!
//! * **Standby.** Every [`TICK`] it looks at the lock's owner and at the heartbeat object the
//!   active gateway rewrites every [`HEARTBEAT_INTERVAL`]. Nobody holds the lock: it takes it.
//!   The heartbeat has not changed for [`TAKEOVER_AFTER`]: the owner is dead or cut off, so it
//!   breaks the owner's lock (librbd blocklists that client in the cluster first: a partitioned
//!   old gateway can no longer write anything) and takes it.
//! * **Active.** On taking the lock it loads the export's state (config string, mask list,
//!   reserve list) from the image's metadata, writes a heartbeat, opens the gate (the worker
//!   then announces the shelf.slot) and serves. Control commands that change the state are
//!   written to the image's metadata before their reply leaves ([`Export::persist`]).
//! * **Fenced.** The moment it may no longer be the owner, the gate closes, before anything
//!   else: when librbd refuses an I/O as "not the owner / blocklisted" (the channel reports
//!   it, and that request gets no reply), when it finds it no longer owns the lock, or when no
//!   heartbeat was stored for [`SELF_FENCE_AFTER`] (it is cut off from the cluster). Then it
//!   reconnects with a new client and becomes a standby.
//!
//! Why these times: [`SELF_FENCE_AFTER`] (3 s) < [`TAKEOVER_AFTER`] (5 s), so a cut-off active
//! gateway falls silent before the standby starts answering; the blocklist makes the old
//! gateway's writes fail even if it did not. Both are well inside the Linux initiator's own
//! timers, which move to another path after 10 s of silence and fail a request after 180 s.

use crate::export::Export;
use aoe_storage::rbd::RbdStorage;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How often the manager looks at the lock and the heartbeat.
pub const TICK: Duration = Duration::from_millis(250);
/// How often the active gateway rewrites its heartbeat.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(1);
/// An active gateway whose heartbeat was not stored for this long falls silent.
pub const SELF_FENCE_AFTER: Duration = Duration::from_secs(3);
/// A standby takes over when the heartbeat did not change for this long.
pub const TAKEOVER_AFTER: Duration = Duration::from_secs(5);

/// Whether an export answers; see the [module docs](self).
#[derive(Debug)]
pub struct Gate {
    active: AtomicBool,
    /// Counts openings, so that workers announce each one once.
    epoch: AtomicU32,
    /// Set by a channel that saw librbd refuse an I/O as no longer ours.
    fenced: AtomicBool,
}

impl Gate {
    /// A gate that is open, or closed until the manager opens it.
    pub fn new(open: bool) -> Gate {
        Gate {
            active: AtomicBool::new(open),
            epoch: AtomicU32::new(u32::from(open)),
            fenced: AtomicBool::new(false),
        }
    }

    /// True while the export answers.
    pub fn is_open(&self) -> bool {
        self.active.load(Ordering::Acquire)
    }

    /// How many times it was opened (workers announce when it changes).
    pub fn epoch(&self) -> u32 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Opens (this gateway holds the image now); workers announce the new epoch.
    pub(crate) fn open(&self) {
        self.fenced.store(false, Ordering::Release);
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.active.store(true, Ordering::Release);
    }

    /// Closes at once (this gateway may no longer own the image); the manager then fences.
    pub fn close_fenced(&self) {
        self.active.store(false, Ordering::Release);
        self.fenced.store(true, Ordering::Release);
    }

    fn close(&self) {
        self.active.store(false, Ordering::Release);
    }
}

/// Metadata keys of the export's state in the image.
const KEY_CONFIG: &str = "aoe.config_string";
const KEY_MASK: &str = "aoe.mask";
const KEY_RESERVE: &str = "aoe.reserve";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

fn macs(text: &str) -> Vec<aoe_core::wire::EthernetAddress> {
    text.split(',')
        .filter(|m| !m.is_empty())
        .filter_map(|m| aoe_net::parse_mac(m).ok())
        .collect()
}

fn mac_list(list: &[aoe_core::wire::EthernetAddress]) -> String {
    list.iter()
        .map(|mac| aoe_net::MacText(*mac).to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// Writes the export's state into the image's metadata (blocking).
///
/// # Errors
/// librbd's error (this client may have lost the image).
pub fn save_state(
    storage: &RbdStorage,
    target: &aoe_core::Target<crate::export::Capacity>,
) -> Result<(), String> {
    storage.set_metadata(KEY_CONFIG, &hex(target.config_string()))?;
    storage.set_metadata(KEY_MASK, &mac_list(target.mask()))?;
    storage.set_metadata(KEY_RESERVE, &mac_list(target.reservations()))
}

/// Loads the state saved by [`save_state`] into `target` (keys that were never saved keep the
/// target's own values, e.g. a `-m` mask).
fn load_state(
    storage: &RbdStorage,
    target: &mut aoe_core::Target<crate::export::Capacity>,
) -> Result<(), String> {
    if let Some(config) = storage.metadata(KEY_CONFIG)? {
        let bytes = unhex(&config).ok_or("the saved config string is not hex")?;
        target
            .set_config_string(&bytes)
            .map_err(|e| e.to_string())?;
    }
    if let Some(mask) = storage.metadata(KEY_MASK)? {
        for mac in target.mask().to_vec() {
            target.mask_remove(&mac);
        }
        for mac in macs(&mask) {
            target.mask_add(mac).map_err(|e| e.to_string())?;
        }
    }
    if let Some(reserve) = storage.metadata(KEY_RESERVE)? {
        target
            .set_reservations(&macs(&reserve))
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The manager's view shared with its heartbeat thread.
#[derive(Debug, Default)]
struct Heartbeat {
    /// Write heartbeats (only while active).
    writing: AtomicBool,
    /// Which activation the writes belong to (a write that returns late from an old client
    /// must not count for a new activation).
    incarnation: AtomicU64,
    /// Wall-clock time of the last heartbeat of the current incarnation that was stored
    /// while this client still owned the lock, in ms.
    last_stored_ms: AtomicU64,
    /// The cluster said the lock is not ours (or refused the heartbeat) in this incarnation.
    lost: AtomicBool,
}

/// Starts the manager of `export` (which must be a `rbd-lock` export) on its own thread. It
/// stops when the export is dropped.
///
/// # Errors
/// When a thread cannot be started.
pub fn start(export: &Arc<Export>, storage: Arc<RbdStorage>) -> Result<(), String> {
    let weak = Arc::downgrade(export);
    let name = export.spec().name();
    let heartbeat = Arc::new(Heartbeat::default());
    let writer_storage = Arc::clone(&storage);
    let writer_heartbeat = Arc::clone(&heartbeat);
    let writer_weak = weak.clone();
    std::thread::Builder::new()
        .name(format!("{name} heartbeat"))
        .spawn(move || heartbeat_writer(&writer_weak, &writer_storage, &writer_heartbeat))
        .map_err(|e| format!("cannot start a thread: {e}"))?;
    std::thread::Builder::new()
        .name(format!("{name} failover"))
        .spawn(move || Manager::new(weak, storage, heartbeat, name).run())
        .map_err(|e| format!("cannot start a thread: {e}"))?;
    Ok(())
}

fn heartbeat_writer(export: &Weak<Export>, storage: &RbdStorage, heartbeat: &Heartbeat) {
    let mut seq = 0u64;
    let me = std::process::id();
    loop {
        if export.strong_count() == 0 {
            return;
        }
        if heartbeat.writing.load(Ordering::Acquire) {
            // Both calls may block while the cluster is unreachable; the manager never does
            // them itself, so that it can fall silent on time (it watches `last_stored_ms`).
            let incarnation = heartbeat.incarnation.load(Ordering::Acquire);
            seq += 1;
            let content = format!("pid {me} seq {seq} at {}", now_ms());
            let stored = storage.write_heartbeat(content.as_bytes());
            let owner = storage.owns_lock();
            if heartbeat.incarnation.load(Ordering::Acquire) == incarnation {
                match (stored, owner) {
                    (Ok(()), Ok(true)) => {
                        heartbeat.last_stored_ms.store(now_ms(), Ordering::Release);
                    }
                    (stored, owner) => {
                        log::warn!(
                            "{}: heartbeat {stored:?}, lock owner {owner:?}",
                            storage.spec()
                        );
                        heartbeat.lost.store(true, Ordering::Release);
                    }
                }
            }
        }
        std::thread::sleep(HEARTBEAT_INTERVAL);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Standby,
    Active,
    Fenced,
}

struct Manager {
    export: Weak<Export>,
    storage: Arc<RbdStorage>,
    heartbeat: Arc<Heartbeat>,
    name: String,
    state: State,
    /// The last heartbeat content seen as a standby, and when it changed.
    seen: Option<Vec<u8>>,
    seen_changed: Instant,
}

impl Manager {
    fn new(
        export: Weak<Export>,
        storage: Arc<RbdStorage>,
        heartbeat: Arc<Heartbeat>,
        name: String,
    ) -> Manager {
        Manager {
            export,
            storage,
            heartbeat,
            name,
            state: State::Standby,
            seen: None,
            seen_changed: Instant::now(),
        }
    }

    fn run(mut self) {
        log::info!(
            "{}: failover gateway {} for {}: standby until it holds the image's lock",
            self.name,
            self.storage.client_name(),
            self.storage.spec()
        );
        loop {
            let Some(export) = self.export.upgrade() else {
                return;
            };
            match self.state {
                State::Standby => self.standby(&export),
                State::Active => self.active(&export),
                State::Fenced => self.fenced(),
            }
            drop(export);
            std::thread::sleep(TICK);
        }
    }

    fn standby(&mut self, export: &Export) {
        let owners = match self.storage.lock_owners() {
            Ok(owners) => owners,
            Err(error) => {
                log::debug!("{}: lock owners: {error}", self.name);
                return;
            }
        };
        let me = self.storage.client_name();
        if owners.contains(&me) {
            self.activate(export, "already holds the lock");
            return;
        }
        let Some(owner) = owners.first() else {
            match self.storage.try_acquire_lock() {
                Ok(()) => self.activate(export, "took the free lock"),
                Err(error) => log::debug!("{}: lock not taken: {error}", self.name),
            }
            return;
        };
        let heartbeat = self.storage.read_heartbeat().ok().flatten();
        if heartbeat != self.seen {
            self.seen = heartbeat;
            self.seen_changed = Instant::now();
            return;
        }
        let silent = self.seen_changed.elapsed();
        if silent < TAKEOVER_AFTER {
            return;
        }
        log::warn!(
            "{}: the active gateway ({owner}) stored no heartbeat for {:.1} s: breaking its \
             lock (it is blocklisted) and taking over",
            self.name,
            silent.as_secs_f64()
        );
        if let Err(error) = self.storage.break_lock(owner) {
            log::error!("{}: breaking {owner}'s lock failed: {error}", self.name);
            return;
        }
        match self.storage.try_acquire_lock() {
            Ok(()) => self.activate(export, "took over the lock"),
            Err(error) => log::error!("{}: lock not taken after the break: {error}", self.name),
        }
    }

    fn activate(&mut self, export: &Export, how: &str) {
        if let Err(error) = load_state(&self.storage, &mut export.target()) {
            log::error!("{}: cannot load the export's state: {error}", self.name);
            self.fence(export, "state not loaded");
            return;
        }
        let incarnation = self.heartbeat.incarnation.fetch_add(1, Ordering::AcqRel) + 1;
        let content = format!(
            "pid {} activation {incarnation} at {}",
            std::process::id(),
            now_ms()
        );
        if let Err(error) = self.storage.write_heartbeat(content.as_bytes()) {
            log::error!("{}: first heartbeat not stored: {error}", self.name);
            self.fence(export, "heartbeat not stored");
            return;
        }
        self.heartbeat
            .last_stored_ms
            .store(now_ms(), Ordering::Release);
        self.heartbeat.lost.store(false, Ordering::Release);
        self.heartbeat.writing.store(true, Ordering::Release);
        self.state = State::Active;
        export.gate().open();
        log::warn!(
            "{}: ACTIVE ({how}) as {}; announcing and serving",
            self.name,
            self.storage.client_name()
        );
    }

    /// Only atomics here: a cut-off gateway's cluster calls block, and it must still fall
    /// silent on time.
    fn active(&mut self, export: &Export) {
        if export.gate().fenced.load(Ordering::Acquire) {
            self.fence(export, "librbd refused an I/O: the image is no longer ours");
            return;
        }
        if self.heartbeat.lost.load(Ordering::Acquire) {
            self.fence(export, "the lock is no longer ours");
            return;
        }
        let stored = self.heartbeat.last_stored_ms.load(Ordering::Acquire);
        let since = now_ms().saturating_sub(stored);
        if since > u64::try_from(SELF_FENCE_AFTER.as_millis()).unwrap_or(u64::MAX) {
            self.fence(
                export,
                &format!("no heartbeat stored for {:.1} s", since as f64 / 1000.0),
            );
        }
    }

    fn fence(&mut self, export: &Export, why: &str) {
        // Silent first: nothing may answer for this image from here.
        export.gate().close();
        self.heartbeat.writing.store(false, Ordering::Release);
        self.heartbeat.incarnation.fetch_add(1, Ordering::AcqRel);
        log::warn!("{}: FENCED ({why}); silent from now on", self.name);
        self.state = State::Fenced;
    }

    fn fenced(&mut self) {
        match self.storage.reconnect() {
            Ok(()) => {
                log::warn!(
                    "{}: reconnected as {}; standby",
                    self.name,
                    self.storage.client_name()
                );
                self.state = State::Standby;
                self.seen = None;
                self.seen_changed = Instant::now();
            }
            Err(error) => log::debug!("{}: reconnect: {error}", self.name),
        }
    }
}

/// Releases the lock at a clean shutdown, so that a standby takes over at once.
pub fn release(storage: &RbdStorage, gate: &Gate) {
    if gate.is_open() {
        gate.close();
        match storage.release_lock() {
            Ok(()) => log::info!("{}: lock released", storage.spec()),
            Err(error) => log::warn!("{}: releasing the lock: {error}", storage.spec()),
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn state_encodings_round_trip() {
        assert_eq!(unhex(&hex(b"\x00abc\xff")), Some(b"\x00abc\xff".to_vec()));
        assert_eq!(unhex("0"), None);
        assert_eq!(unhex("zz"), None);
        let list = [
            aoe_core::wire::EthernetAddress([2, 0, 0, 0, 0, 1]),
            aoe_core::wire::EthernetAddress([2, 0, 0, 0, 0, 0xab]),
        ];
        assert_eq!(macs(&mac_list(&list)), list.to_vec());
        assert!(macs("").is_empty());
    }

    #[test]
    fn a_gate_opens_with_a_new_epoch_and_fences_shut() {
        let gate = Gate::new(false);
        assert!(!gate.is_open());
        gate.open();
        assert!(gate.is_open());
        assert_eq!(gate.epoch(), 1);
        gate.close_fenced();
        assert!(!gate.is_open() && gate.fenced.load(Ordering::Acquire));
        gate.open();
        assert_eq!(gate.epoch(), 2);
        assert!(Gate::new(true).is_open());
    }
}
