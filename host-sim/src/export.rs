//! One export: shelf.slot, its engine and its storage.
//!
//! An [`Export`] is shared by every link worker that serves it: the engine
//! ([`aoe_core::Target`], with the config string, mask and reservations) sits behind a mutex,
//! and each worker has its own queue to the storage (see [`aoe_storage`]). Guarantees:
//!
//! * The engine is told the storage's capacity once, at open; it never runs disk work itself
//!   (the workers run each `DiskIo` through their storage queue), see [`Capacity`].
//! * When the last holder drops an export (shutdown, or a reload that removed or changed it),
//!   its storage is flushed, so every acknowledged write is durable before the process exits.
//! * IDENTIFY tells the initiator the truth about durability: a volatile write cache exactly
//!   when the storage acknowledges writes before they are stable (`--writeback`).
//! * Disk errors are counted per export and kind, whichever worker met them
//!   ([`Export::disk_errors`]).

use crate::spec::{ExportSpec, SpecError};
use aoe_core::disk::{Disk, ErrorKind, Sector};
use aoe_core::identify::Identity;
use aoe_core::{Config, Target};
use aoe_storage::durable::Commit;
use aoe_storage::file::OpenError;
use aoe_storage::{Durability, Engine, Storage};
use std::collections::BTreeMap;
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
    /// The engine refused the configuration.
    Config(aoe_core::ConfigError),
    /// The spec was refused.
    Spec(SpecError),
}

impl std::fmt::Display for ExportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExportError::Disk(error) => error.fmt(f),
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
    /// The engine and durability policy the storage runs (for the start-up log).
    engine: Option<(Engine, Commit)>,
    /// Disk errors by kind (`media error (Input/output error ...)`).
    disk_errors: Mutex<BTreeMap<String, u64>>,
    /// The engine's configuration (a copy, to match addresses without taking the lock).
    config: Config,
    storage: Arc<dyn Storage>,
    target: Mutex<Target<Capacity>>,
}

impl Export {
    /// Opens the file on `engine` and builds the engine for `spec`.
    ///
    /// # Errors
    /// When the spec, the file or the engine configuration is refused.
    pub fn open(spec: ExportSpec, engine: Engine) -> Result<Export, ExportError> {
        spec.validate().map_err(ExportError::Spec)?;
        let opened = aoe_storage::open(&spec.file, spec.disk, engine).map_err(ExportError::Disk)?;
        let mut export = Export::with_storage(spec, opened.storage)?;
        export.block_device = opened.block_device;
        export.engine = Some((engine, opened.commit));
        Ok(export)
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
        // IDENTIFY reports a volatile write cache exactly when acknowledged writes are not yet
        // stable.
        config.volatile_write_cache = storage.capabilities().durability == Durability::Volatile
            && !storage.capabilities().read_only;
        let sectors = storage.capabilities().sectors;
        let mut target = Target::new(config, Capacity(sectors)).map_err(ExportError::Config)?;
        for mac in &spec.mac_mask {
            // validate() bounded the list by the mask capacity.
            let _ = target.mask_add(*mac);
        }
        Ok(Export {
            spec,
            block_device: false,
            engine: None,
            disk_errors: Mutex::new(BTreeMap::new()),
            config,
            storage,
            target: Mutex::new(target),
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

    /// Exported sectors.
    pub fn sectors(&self) -> u64 {
        self.storage.capabilities().sectors
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
