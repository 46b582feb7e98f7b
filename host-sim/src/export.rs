//! One export: shelf.slot, its engine and its storage.
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
//!   the image's lock.

use crate::ha::{self, Gate};
use crate::spec::{Backing, ExportSpec, Ha, SpecError};
use aoe_core::disk::{Disk, ErrorKind, Sector};
use aoe_core::identify::Identity;
use aoe_core::{Config, Target};
use aoe_storage::Storage;
use aoe_storage::file::{FileStorage, OpenError};
use aoe_storage::nbd::{NbdOptions, NbdStorage};
use aoe_storage::rbd::{RbdOptions, RbdStorage};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

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
    /// Network storage (RBD, NBD) could not be opened.
    Remote(String),
    /// The engine refused the configuration.
    Config(aoe_core::ConfigError),
    /// The spec was refused.
    Spec(SpecError),
}

impl std::fmt::Display for ExportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExportError::Disk(error) => error.fmt(f),
            ExportError::Remote(error) => f.write_str(error),
            ExportError::Config(error) => error.fmt(f),
            ExportError::Spec(error) => error.fmt(f),
        }
    }
}

impl std::error::Error for ExportError {}

/// One export; see the [module docs](self).
#[derive(Debug)]
pub struct Export {
    spec: ExportSpec,
    /// The file is a block device (for the start-up log).
    block_device: bool,
    /// The engine's configuration (a copy, to match addresses without taking the lock).
    config: Config,
    storage: Arc<dyn Storage>,
    target: Mutex<Target<Capacity>>,
    gate: Gate,
    /// The RBD image of a failover export (its lock, heartbeat and metadata).
    failover: Option<Arc<RbdStorage>>,
    /// The engine's state generation last written to the image (failover exports).
    saved_generation: AtomicU32,
}

impl Export {
    /// Opens the file and builds the engine for `spec`.
    ///
    /// # Errors
    /// When the spec, the file or the engine configuration is refused.
    pub fn open(spec: ExportSpec) -> Result<Export, ExportError> {
        spec.validate().map_err(ExportError::Spec)?;
        let read_only = spec.disk.read_only;
        match Backing::of(&spec.file).map_err(ExportError::Spec)? {
            Backing::File(path) => {
                let storage = FileStorage::open(&path, spec.disk).map_err(ExportError::Disk)?;
                let block_device = storage.disk().is_block_device();
                let mut export = Export::with_storage(spec, Arc::new(storage))?;
                export.block_device = block_device;
                Ok(export)
            }
            Backing::Rbd(rbd) => {
                let storage = Arc::new(
                    RbdStorage::open(&rbd, RbdOptions { read_only })
                        .map_err(ExportError::Remote)?,
                );
                let failover = spec.ha == Ha::RbdLock;
                let mut export =
                    Export::with_storage(spec, Arc::clone(&storage) as Arc<dyn Storage>)?;
                if failover {
                    export.failover = Some(storage);
                }
                Ok(export)
            }
            Backing::Nbd(address) => {
                let storage = NbdStorage::open(&address, NbdOptions { read_only })
                    .map_err(ExportError::Remote)?;
                Export::with_storage(spec, Arc::new(storage))
            }
        }
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

    /// Called after a control command was applied and before its reply leaves: a failover
    /// export writes a changed config string, mask or reserve list into the image's metadata,
    /// so that it follows the image to another gateway. False if the reply must not leave (the
    /// state could not be saved: this gateway may have lost the image, and is fenced).
    pub fn after_control(&self, target: &Target<Capacity>) -> bool {
        let Some(storage) = &self.failover else {
            return true;
        };
        let generation = target.generation();
        if self.saved_generation.load(Ordering::Acquire) == generation {
            return true;
        }
        match ha::save_state(storage, target) {
            Ok(()) => {
                self.saved_generation.store(generation, Ordering::Release);
                true
            }
            Err(error) => {
                log::error!(
                    "{}: state not saved in the image: {error}",
                    self.spec.name()
                );
                self.gate.close_fenced();
                false
            }
        }
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

    /// Builds the engine for `spec` over an opened `storage` (the spec's file is only named).
    ///
    /// # Errors
    /// When the spec or the engine configuration is refused.
    pub fn with_storage(
        spec: ExportSpec,
        storage: Arc<dyn Storage>,
    ) -> Result<Export, ExportError> {
        spec.validate().map_err(ExportError::Spec)?;
        let mut config = Config::new(spec.shelf, spec.slot);
        config.buffer_count = spec.buffer_count;
        config.max_frame_len = FRAME_CAPACITY;
        config.identity = Identity::new(
            Identity::DEFAULT_MODEL,
            &serial_for(spec.shelf, spec.slot),
            Identity::DEFAULT_FIRMWARE,
        );
        let sectors = storage.capabilities().sectors;
        let mut target = Target::new(config, Capacity(sectors)).map_err(ExportError::Config)?;
        let gate = Gate::new(spec.ha == Ha::None);
        for mac in &spec.mac_mask {
            // validate() bounded the list by the mask capacity.
            let _ = target.mask_add(*mac);
        }
        Ok(Export {
            spec,
            block_device: false,
            config,
            storage,
            saved_generation: AtomicU32::new(target.generation()),
            target: Mutex::new(target),
            gate,
            failover: None,
        })
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

    /// Exported sectors (the engine's capacity: a reload may have updated it).
    pub fn sectors(&self) -> u64 {
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
