//! One export: shelf.slot, its engine, its storage, its target state and its lock.
//!
//! An [`Export`] is shared by every link worker that serves it: the engine
//! ([`aoe_core::Target`], with the config string, mask and reservations) sits behind a mutex,
//! and each worker has its own queue to the storage (see [`aoe_storage`]). Guarantees:
//!
//! * The engine is told the storage's capacity once, at open; it never runs disk work itself
//!   (the workers run each `DiskIo` through their storage queue), see [`Capacity`].
//! * When the last holder drops an export (shutdown, or a reload that removed or changed it),
//!   its storage is flushed, so every acknowledged write is durable before the process exits
//!   (and a failover gateway releases the image's lock, so that a standby takes over at once).
//! * [`Export::open`] chooses the back end from the spec's `file` ([`Backing`]): a file or
//!   block device, a Ceph RBD image (`rbd:`), or an NBD export (`nbd://`, `nbd+unix://`).
//! * An export answers only while its [`Gate`] is open: always, except for a failover export
//!   (`ha = "rbd-lock"`), whose gate the manager of [`crate::ha`] opens while this gateway holds
//!   the image's lock. A failover export's config string, mask and reservations live in the
//!   image's metadata (they follow the image to the gateway that takes over), not in the state
//!   directory.
//! * **Target state survives**: with a state directory, a change of the config string, mask or
//!   reserve list is saved ([`Export::persist`]) before the reply that acknowledges it; an
//!   export starts from its saved state, and a reload that changes an export's settings but not
//!   its shelf.slot and file hands the live state over ([`Export::handover_from`]). Presets of
//!   the configuration apply when nothing was saved, or when the preset changed since; pinned
//!   parts always start from their preset ([`initial_state`]).
//! * **One exporter per file**: an export holds a lock on its file while it lives (see
//!   `guard`), shared with the other exports of this process that serve the same file.
//! * IDENTIFY tells the initiator the truth about durability: a volatile write cache exactly
//!   when the storage acknowledges writes before they are stable (`--writeback`).
//! * Disk errors are counted per export and kind, whichever worker met them
//!   ([`Export::disk_errors`]).

use crate::guard::{FileLock, FileLocks};
use crate::ha::{self, Gate};
use crate::metrics::ExportMetrics;
use crate::spec::{Backing, ExportSpec, Ha, SpecError};
use crate::state::{Identity, Record, StateStore, TargetState};
use aoe_core::disk::{Disk, ErrorKind, Sector};
use aoe_core::identify;
use aoe_core::target::Pinned;
use aoe_core::{Config, Target};
use aoe_storage::durable::Commit;
use aoe_storage::file::OpenError;
use aoe_storage::nbd::{NbdOptions, NbdStorage};
use aoe_storage::rbd::{RbdOptions, RbdStorage};
use aoe_storage::{Durability, Engine, Storage};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The locks of this process's exported files (one lock per file, shared by its exports).
pub static FILE_LOCKS: LazyLock<FileLocks> = LazyLock::new(FileLocks::default);

/// How often a failing state save is logged per export.
const SAVE_ERROR_LOG_INTERVAL: Duration = Duration::from_secs(1);

/// Largest frame the host target handles: MTU 9000 plus the Ethernet header. The engine
/// advertises at most `(9014 − 36) / 512 = 17` sectors per frame, also on interfaces with a
/// larger MTU.
pub const FRAME_CAPACITY: usize = 9014;

/// The IDENTIFY serial vblade uses, `shelf.slot:hostname` (cut to 20 characters by the
/// engine), so that exports of the same address on different hosts can be told apart.
pub fn serial_for(shelf: u16, slot: u8) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    format!("{shelf}.{slot}:{}", host.trim())
}

/// The engine's view of the disk on the host: only its size.
///
/// The host target uses the engine's split path (`Target::accept` → storage queue →
/// `Target::complete`), never `Target::handle`, so the engine never calls `read`, `write` or
/// `flush` here; if it ever did, they fail with [`ErrorKind::NotReady`] (the initiator sees an
/// ATA error, nothing is touched) rather than bypass the storage queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capacity(pub u64);

impl Disk for Capacity {
    type Error = ErrorKind;

    fn sector_count(&self) -> u64 {
        self.0
    }

    fn read(&mut self, _lba: u64, _buf: &mut [Sector]) -> Result<(), ErrorKind> {
        Err(ErrorKind::NotReady)
    }

    fn write(&mut self, _lba: u64, _buf: &[Sector]) -> Result<(), ErrorKind> {
        Err(ErrorKind::NotReady)
    }

    fn flush(&mut self) -> Result<(), ErrorKind> {
        Err(ErrorKind::NotReady)
    }
}

/// Why an export could not be started.
#[derive(Debug)]
pub enum ExportError {
    /// The file.
    Disk(OpenError),
    /// The engine refused the configuration.
    Config(aoe_core::ConfigError),
    /// The spec was refused.
    Spec(SpecError),
    /// The file is exported elsewhere (the lock is held), or in use.
    Guard(String),
    /// The saved state cannot be read or does not fit.
    State(String),
    /// Network storage (RBD, NBD) could not be opened.
    Remote(String),
}

impl std::fmt::Display for ExportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExportError::Disk(error) => error.fmt(f),
            ExportError::Config(error) => error.fmt(f),
            ExportError::Spec(error) => error.fmt(f),
            ExportError::Guard(error) | ExportError::State(error) | ExportError::Remote(error) => {
                f.write_str(error)
            }
        }
    }
}

impl std::error::Error for ExportError {}

/// The state an export starts from (see the [module docs](self)): per part, the preset if it
/// is pinned; else the earlier state (saved, or the live one of the export it replaces) unless
/// the preset changed since that state was saved; else the preset.
pub fn initial_state(
    presets: &TargetState,
    pinned: &Pinned,
    earlier: Option<(&TargetState, &TargetState)>,
) -> TargetState {
    fn pick<T: Clone + PartialEq>(pinned: bool, preset: &T, earlier: Option<(&T, &T)>) -> T {
        match earlier {
            Some((state, its_preset)) if !pinned && its_preset == preset => state.clone(),
            _ => preset.clone(),
        }
    }
    TargetState {
        config_string: pick(
            pinned.config_string,
            &presets.config_string,
            earlier.map(|(s, p)| (&s.config_string, &p.config_string)),
        ),
        mask: pick(
            pinned.mask,
            &presets.mask,
            earlier.map(|(s, p)| (&s.mask, &p.mask)),
        ),
        reserve: pick(
            pinned.reservations,
            &presets.reserve,
            earlier.map(|(s, p)| (&s.reserve, &p.reserve)),
        ),
    }
}

/// One export; see the [module docs](self).
#[derive(Debug)]
pub struct Export {
    spec: ExportSpec,
    /// The file is a block device (for the start-up log).
    block_device: bool,
    /// The engine and durability policy the storage runs (for the start-up log).
    engine: Option<(Engine, Commit)>,
    /// The file is on tmpfs or ramfs (nothing to sync; nothing survives a power cut).
    in_memory: bool,
    /// Disk errors by kind (`media error (Input/output error ...)`).
    disk_errors: Mutex<BTreeMap<String, u64>>,
    /// The engine's configuration (a copy, to match addresses without taking the lock).
    config: Config,
    storage: Arc<dyn Storage>,
    target: Mutex<Target<Capacity>>,
    identity: Identity,
    store: Option<StateStore>,
    /// The presets of the spec, as the state records keep them.
    presets: TargetState,
    /// The engine's generation when the state was last saved (or restored).
    saved_generation: AtomicU32,
    save_error_logged: Mutex<Option<Instant>>,
    /// Set when a reload replaced this export: it answers no more frames.
    retired: AtomicBool,
    _lock: Option<Arc<FileLock>>,
    metrics: ExportMetrics,
    /// The state restored from a saved record at open, if any.
    restored: Option<TargetState>,
    /// Whether and when the export answers (see [`Gate`]).
    gate: Gate,
    /// The RBD image of a failover export (its lock, heartbeat and metadata).
    failover: Option<Arc<RbdStorage>>,
}

impl Export {
    /// Locks and opens the file on `engine` and builds the engine for `spec`, starting from
    /// the state saved in `store` (if any; see [`initial_state`]).
    ///
    /// # Errors
    /// When the spec, the lock, the file, the saved state or the engine configuration is
    /// refused.
    pub fn open(
        spec: ExportSpec,
        engine: Engine,
        store: Option<&StateStore>,
    ) -> Result<Export, ExportError> {
        spec.validate().map_err(ExportError::Spec)?;
        let read_only = spec.disk.read_only;
        let backing = Backing::of(&spec.file).map_err(ExportError::Spec)?;
        let lock = match &backing {
            Backing::File(path) => Some(
                FILE_LOCKS
                    .lock(path, !read_only)
                    .map_err(ExportError::Guard)?,
            ),
            Backing::Rbd(_) | Backing::Nbd(_) => None,
        };
        let mut engine_and_commit = None;
        let mut block_device = false;
        let mut in_memory = false;
        let mut failover = None;
        let storage: Arc<dyn Storage> = match backing {
            Backing::File(path) => {
                let opened =
                    aoe_storage::open(&path, spec.disk, engine).map_err(ExportError::Disk)?;
                engine_and_commit = Some((opened.engine, opened.commit));
                block_device = opened.block_device;
                in_memory = opened.backing == aoe_storage::durable::Backing::Memory;
                opened.storage
            }
            Backing::Rbd(rbd) => {
                let storage = Arc::new(
                    RbdStorage::open(&rbd, RbdOptions { read_only })
                        .map_err(ExportError::Remote)?,
                );
                if spec.ha == Ha::RbdLock {
                    failover = Some(Arc::clone(&storage));
                }
                storage
            }
            Backing::Nbd(address) => Arc::new(
                NbdStorage::open(&address, NbdOptions { read_only })
                    .map_err(ExportError::Remote)?,
            ),
        };
        let identity = Identity::of(spec.shelf, spec.slot, &spec.file);
        // A failover export keeps its state in the image (see `crate::ha`), not here.
        let store = store.filter(|_| failover.is_none());
        let saved = match store {
            Some(store) => store.load(&identity).map_err(ExportError::State)?,
            None => None,
        };
        let mut export = Export::build(spec, storage, identity, store.cloned(), saved.as_ref())?;
        export.block_device = block_device;
        export.in_memory = in_memory;
        export.engine = engine_and_commit;
        export._lock = lock;
        export.failover = failover;
        Ok(export)
    }

    /// Starts what runs beside the workers: the failover manager of an `rbd-lock` export
    /// (see [`crate::ha`]). Call once, after the export is shared.
    ///
    /// # Errors
    /// When a thread cannot be started.
    pub fn start(self: &Arc<Export>) -> Result<(), String> {
        match &self.failover {
            Some(storage) => ha::start(self, Arc::clone(storage)),
            None => Ok(()),
        }
    }

    /// Whether and when the export answers.
    pub fn gate(&self) -> &Gate {
        &self.gate
    }

    /// True while the export answers frames (see [`Gate`]).
    pub fn serving(&self) -> bool {
        self.gate.is_open()
    }

    /// True for a failover export.
    pub fn is_failover(&self) -> bool {
        self.failover.is_some()
    }

    /// Reads the storage's size again (a reload): a resized RBD image gets an engine of the new
    /// capacity, with the same config string, mask and reservations. Returns the new size when
    /// it changed.
    pub fn refresh_capacity(&self) -> Option<u64> {
        let now = self.storage.capacity_now()?;
        let mut target = self.target();
        let old = target.sector_count();
        if now == old || now == 0 {
            return None;
        }
        let mut resized = Target::new(*target.config(), Capacity(now)).ok()?;
        let _ = resized.set_config_string(target.config_string());
        for mac in target.mask() {
            let _ = resized.mask_add(*mac);
        }
        let _ = resized.set_reservations(target.reservations());
        *target = resized;
        log::info!(
            "{}: capacity is now {now} sectors (was {old})",
            self.spec.name()
        );
        Some(now)
    }

    /// Builds the engine for `spec` over an opened `storage` (the spec's file is only named; no
    /// lock, no saved state).
    ///
    /// # Errors
    /// When the spec or the engine configuration is refused.
    pub fn with_storage(
        spec: ExportSpec,
        storage: Arc<dyn Storage>,
    ) -> Result<Export, ExportError> {
        spec.validate().map_err(ExportError::Spec)?;
        let identity = Identity::of(spec.shelf, spec.slot, &spec.file);
        Export::build(spec, storage, identity, None, None)
    }

    fn build(
        spec: ExportSpec,
        storage: Arc<dyn Storage>,
        identity: Identity,
        store: Option<StateStore>,
        saved: Option<&Record>,
    ) -> Result<Export, ExportError> {
        let spec_ha_none = spec.ha == Ha::None;
        let mut config = Config::new(spec.shelf, spec.slot);
        config.buffer_count = spec.buffer_count;
        config.max_frame_len = FRAME_CAPACITY;
        config.identity = identify::Identity::new(
            identify::Identity::DEFAULT_MODEL,
            &serial_for(spec.shelf, spec.slot),
            identify::Identity::DEFAULT_FIRMWARE,
        );
        config.pinned = spec.state.pinned;
        // IDENTIFY reports a volatile write cache exactly when acknowledged writes are not yet
        // stable.
        config.volatile_write_cache = storage.capabilities().durability == Durability::Volatile
            && !storage.capabilities().read_only;
        let sectors = storage.capabilities().sectors;
        let mut target = Target::new(config, Capacity(sectors)).map_err(ExportError::Config)?;
        let presets = TargetState {
            config_string: spec.state.config_string.clone(),
            mask: spec.mac_mask.clone(),
            reserve: spec.state.reserve.clone(),
        };
        let state = initial_state(
            &presets,
            &spec.state.pinned,
            saved.map(|record| (&record.state, &record.presets)),
        );
        state.apply_to(&mut target).map_err(|error| {
            ExportError::State(format!("the saved state does not fit: {error}"))
        })?;
        let restored = saved.map(|_| state.clone());
        let generation = target.generation();
        Ok(Export {
            spec,
            block_device: false,
            engine: None,
            in_memory: false,
            disk_errors: Mutex::new(BTreeMap::new()),
            config,
            storage,
            target: Mutex::new(target),
            identity,
            store,
            presets,
            saved_generation: AtomicU32::new(generation),
            save_error_logged: Mutex::new(None),
            retired: AtomicBool::new(false),
            _lock: None,
            metrics: ExportMetrics::default(),
            restored,
            gate: Gate::new(spec_ha_none),
            failover: None,
        })
    }

    /// The state this export started from, if it came from a saved record.
    pub fn restored(&self) -> Option<&TargetState> {
        self.restored.as_ref()
    }

    /// Whose state this export keeps: shelf, slot and the canonical file.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The counters of this export.
    pub fn metrics(&self) -> &ExportMetrics {
        &self.metrics
    }

    /// True once a reload replaced this export: its channels drop new frames (initiators
    /// retry, and reach the new export).
    pub fn is_retired(&self) -> bool {
        self.retired.load(Ordering::Relaxed)
    }

    /// Takes over the live state of `old`, the export a reload replaces with this one (same
    /// shelf.slot and file), and retires `old`, under its lock: every change `old` acknowledged
    /// is in this export, and `old` acknowledges nothing more. Returns the state taken.
    pub fn handover_from(&self, old: &Export) -> TargetState {
        let live = {
            let old_target = old.target();
            old.retired.store(true, Ordering::Relaxed);
            TargetState::of(&old_target)
        };
        let state = initial_state(
            &self.presets,
            &self.spec.state.pinned,
            Some((&live, &old.presets)),
        );
        let mut target = self.target();
        if let Err(error) = state.apply_to(&mut target) {
            // Both engines have the same limits, so this does not happen.
            log::error!("{}: state handover failed: {error}", self.spec.name());
        }
        state
    }

    /// Saves the target state if it changed since it was last saved (`target` is this export's
    /// engine, locked by the caller): in the image's metadata for a failover export, else in
    /// the state directory. True when the state is saved (or there is nowhere to save it): the
    /// reply may go. False when the save failed: the caller withholds the reply, so the
    /// initiator retries, and the save is tried again then (a failover export that cannot write
    /// its image may have lost it: its gate closes, fenced).
    pub fn persist(&self, target: &Target<Capacity>) -> bool {
        if let Some(storage) = &self.failover {
            return self.persist_in_image(storage, target);
        }
        let Some(store) = &self.store else {
            return true;
        };
        let generation = target.generation();
        if generation == self.saved_generation.load(Ordering::Relaxed) {
            return true;
        }
        let record = Record {
            identity: self.identity.clone(),
            state: TargetState::of(target),
            presets: self.presets.clone(),
        };
        match store.save(&record) {
            Ok(()) => {
                self.saved_generation.store(generation, Ordering::Relaxed);
                self.metrics.state_saves.add(1);
                log::debug!(
                    "{}: state saved: {}",
                    self.spec.name(),
                    record.state.describe()
                );
                true
            }
            Err(error) => {
                self.metrics.state_save_failures.add(1);
                let mut logged = self
                    .save_error_logged
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                if logged.is_none_or(|at| at.elapsed() >= SAVE_ERROR_LOG_INTERVAL) {
                    log::error!(
                        "{}: cannot save its state to {}: {error}; the reply is withheld \
                         (the initiator retries) until a save succeeds ({} failed so far)",
                        self.spec.name(),
                        store.path_for(&self.identity).display(),
                        self.metrics.state_save_failures.get()
                    );
                    *logged = Some(Instant::now());
                }
                false
            }
        }
    }

    fn persist_in_image(&self, storage: &RbdStorage, target: &Target<Capacity>) -> bool {
        let generation = target.generation();
        if self.saved_generation.load(Ordering::Acquire) == generation {
            return true;
        }
        match ha::save_state(storage, target) {
            Ok(()) => {
                self.saved_generation.store(generation, Ordering::Release);
                self.metrics.state_saves.add(1);
                true
            }
            Err(error) => {
                self.metrics.state_save_failures.add(1);
                log::error!(
                    "{}: state not saved in the image: {error}",
                    self.spec.name()
                );
                self.gate.close_fenced();
                false
            }
        }
    }

    /// What it was made from.
    pub fn spec(&self) -> &ExportSpec {
        &self.spec
    }

    /// The storage.
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    /// True if the storage is a block device.
    pub fn is_block_device(&self) -> bool {
        self.block_device
    }

    /// Exported sectors.
    pub fn sectors(&self) -> u64 {
        // The engine's capacity: a reload may have updated it (a resized RBD image).
        self.target().sector_count()
    }

    /// The engine, locked. A worker that panicked while holding it left nothing half-done that
    /// matters (the engine's state changes are single assignments), so poisoning is ignored.
    pub fn target(&self) -> MutexGuard<'_, Target<Capacity>> {
        self.target
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// vblade's start-up line: `pid N: eS.L, N sectors O_RDWR` (or `O_RDONLY`).
    pub fn startup_line(&self) -> String {
        format!(
            "pid {}: {}, {} sectors {}",
            std::process::id(),
            self.spec.name(),
            self.sectors(),
            if self.spec.disk.read_only {
                "O_RDONLY"
            } else {
                "O_RDWR"
            }
        )
    }

    /// What the start-up log says about the storage: `io_uring, 256 in flight per queue;
    /// writes durable before acknowledged (per-write RWF_DSYNC)`, or the `--writeback` warning.
    pub fn storage_line(&self) -> String {
        let engine = self
            .engine
            .map(|(engine, _)| engine.describe())
            .unwrap_or_else(|| self.storage.describe());
        let durability = if self.spec.disk.read_only {
            "read-only".to_string()
        } else if self.storage.capabilities().durability == Durability::Volatile {
            "WRITEBACK: writes are acknowledged from the page cache and an acknowledged write \
             is lost if this host loses power or crashes (the Linux aoe initiator never \
             flushes)"
                .to_string()
        } else if self.in_memory && matches!(self.engine, Some((_, Commit::None))) {
            "the file is in memory (tmpfs): writes are acknowledged without a sync, and \
             nothing in it survives a power cut or reboot of this host"
                .to_string()
        } else if self.spec.disk.sync {
            "writes durable before acknowledged (O_SYNC)".to_string()
        } else {
            let commit = self.engine.map_or(Commit::Group, |(_, commit)| commit);
            format!("writes durable before acknowledged ({})", commit.describe())
        };
        format!("{engine}; {durability}")
    }

    /// Counts one disk error of `kind` (a [`aoe_storage::IoError`]'s text); returns the count
    /// so far.
    pub fn count_disk_error(&self, kind: &str) -> u64 {
        let mut errors = self
            .disk_errors
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let count = errors.entry(kind.to_owned()).or_insert(0);
        *count += 1;
        *count
    }

    /// The disk errors met so far, by kind.
    pub fn disk_errors(&self) -> BTreeMap<String, u64> {
        self.disk_errors
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// True if this export answers requests to `major.minor` (wildcards included).
    pub fn answers(&self, major: u16, minor: u8) -> bool {
        self.config.answers(major, minor)
    }
}

impl Drop for Export {
    fn drop(&mut self) {
        if let Some(storage) = &self.failover {
            ha::release(storage, &self.gate);
        }
        // The last holder is gone (shutdown or reload): make every acknowledged write durable.
        if let Err(error) = self.storage.flush() {
            log::error!(
                "{}: flush of {} failed: {error}",
                self.spec.name(),
                self.storage.describe()
            );
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::spec::StatePresets;
    use aoe_net::{EthernetAddress, LinkSpec};
    use aoe_storage::file::DiskOptions;
    use aoe_testkit::scratch::Scratch;

    const A: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 0xA]);
    const B: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 0xB]);

    fn state(config: &str, mask: &[EthernetAddress], reserve: &[EthernetAddress]) -> TargetState {
        TargetState {
            config_string: config.as_bytes().to_vec(),
            mask: mask.to_vec(),
            reserve: reserve.to_vec(),
        }
    }

    #[test]
    fn the_newest_word_wins_and_pins_always_do() {
        let presets = state("preset", &[A], &[]);
        let none = Pinned::default();
        // Nothing saved: the presets.
        assert_eq!(initial_state(&presets, &none, None), presets);
        // Saved from the same presets: the saved state.
        let saved = state("changed", &[A, B], &[B]);
        assert_eq!(
            initial_state(&presets, &none, Some((&saved, &presets))),
            saved
        );
        // A preset changed since: that part takes the new preset, the others stay saved.
        let older = state("older preset", &[A], &[]);
        assert_eq!(
            initial_state(&presets, &none, Some((&saved, &older))),
            state("preset", &[A, B], &[B])
        );
        // Pinned parts always start from the preset.
        let pinned = Pinned {
            config_string: false,
            mask: true,
            reservations: true,
        };
        assert_eq!(
            initial_state(&presets, &pinned, Some((&saved, &presets))),
            state("changed", &[A], &[])
        );
    }

    fn spec(file: &std::path::Path, buffer_count: u16) -> ExportSpec {
        ExportSpec {
            shelf: 3,
            slot: 4,
            links: vec![LinkSpec::packet("eth9")],
            file: file.to_path_buf(),
            buffer_count,
            disk: DiskOptions::default(),
            mac_mask: vec![],
            state: StatePresets::default(),
            ha: crate::spec::Ha::None,
        }
    }

    #[test]
    fn state_is_saved_restored_and_handed_over() {
        let scratch = Scratch::new("export-state");
        let file = scratch.sparse("disk.img", 1 << 20);
        let store = StateStore::open(&scratch.dir.join("state")).unwrap();
        let export =
            Export::open(spec(&file, 16), aoe_storage::Engine::Threads, Some(&store)).unwrap();
        {
            let mut target = export.target();
            assert!(export.persist(&target), "nothing changed: nothing to save");
            assert_eq!(export.metrics().state_saves.get(), 0);
            target.set_config_string(b"kept").unwrap();
            target.mask_add(A).unwrap();
            target.set_reservations(&[B]).unwrap();
            assert!(export.persist(&target));
            assert!(export.persist(&target), "saved once per change");
        }
        assert_eq!(export.metrics().state_saves.get(), 1);
        drop(export);
        // A restart: the state comes back.
        let export =
            Export::open(spec(&file, 16), aoe_storage::Engine::Threads, Some(&store)).unwrap();
        assert_eq!(TargetState::of(&export.target()), state("kept", &[A], &[B]));
        // A reload that changes the buffer count: the new export takes the live state over,
        // also a change made after it was opened, and the old one stops answering.
        let replacement =
            Export::open(spec(&file, 32), aoe_storage::Engine::Threads, Some(&store)).unwrap();
        export.target().set_reservations(&[]).unwrap();
        let taken = replacement.handover_from(&export);
        assert_eq!(taken, state("kept", &[A], &[]));
        assert_eq!(TargetState::of(&replacement.target()), taken);
        assert!(export.is_retired() && !replacement.is_retired());
        // A failed save is reported, counted and retried: the reply waits for it.
        std::fs::remove_dir_all(store.dir()).unwrap();
        let mut target = replacement.target();
        target.set_config_string(b"new").unwrap();
        assert!(!replacement.persist(&target));
        assert!(
            !replacement.persist(&target),
            "still unsaved: still withheld"
        );
        assert_eq!(replacement.metrics().state_save_failures.get(), 2);
        std::fs::create_dir(store.dir()).unwrap();
        assert!(replacement.persist(&target));
        drop(target);
        drop((export, replacement));
        let export =
            Export::open(spec(&file, 16), aoe_storage::Engine::Threads, Some(&store)).unwrap();
        assert_eq!(export.target().config_string(), b"new");
    }

    #[test]
    fn a_damaged_state_file_refuses_the_export() {
        let scratch = Scratch::new("export-damaged");
        let file = scratch.sparse("disk.img", 1 << 20);
        let store = StateStore::open(&scratch.dir.join("state")).unwrap();
        let identity = Identity::of(3, 4, &file);
        std::fs::write(store.path_for(&identity), "format = 1\n").unwrap();
        let error =
            Export::open(spec(&file, 16), aoe_storage::Engine::Threads, Some(&store)).unwrap_err();
        assert!(error.to_string().contains("is damaged"), "{error}");
    }
}
