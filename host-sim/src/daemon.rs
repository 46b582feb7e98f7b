//! The process: start exports and link workers, reload on SIGHUP, stop cleanly on
//! SIGINT/SIGTERM.
//!
//! Guarantees:
//!
//! * **Start-up refuses, it does not limp**: every export's file and every link are opened
//!   before any frame is answered; the first failure is returned as one line and nothing runs.
//! * **Reload keeps what did not change**: on SIGHUP the config file is read again; exports
//!   whose settings are identical keep their engine (config string, mask, reservations) and
//!   their open file; new files and links are opened before anything is swapped, so a bad
//!   file, a missing disk or interface leaves the running config untouched (and is logged).
//! * **SIGUSR1** logs every export's counters (frames, replies, errors, sectors moved).
//! * **Shutdown loses no acknowledged write**: SIGINT/SIGTERM stop intake; each worker answers
//!   the batch it holds and stops; then every file is flushed (`fdatasync`) before exit 0.

use crate::cli::{Exports, Settings};
use crate::config;
use crate::export::Export;
use crate::logger;
use crate::spec::ExportSpec;
use crate::worker::{LinkWorker, Routes, WorkerStats};
use aoe_net::{self as net, LinkSpec};
use log::LevelFilter;
use std::collections::HashMap;
use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// Set by SIGINT/SIGTERM: stop intake and exit.
pub static SHUTDOWN: AtomicBool = AtomicBool::new(false);
/// Set by SIGHUP: reload the config file.
static RELOAD: AtomicBool = AtomicBool::new(false);
/// Set by SIGUSR1: log every export's counters.
static REPORT: AtomicBool = AtomicBool::new(false);

extern "C" fn on_terminate(_signal: libc::c_int) {
    SHUTDOWN.store(true, Ordering::SeqCst);
}

extern "C" fn on_hangup(_signal: libc::c_int) {
    RELOAD.store(true, Ordering::SeqCst);
}

extern "C" fn on_user1(_signal: libc::c_int) {
    REPORT.store(true, Ordering::SeqCst);
}

/// Installs the signal handlers (they only set atomics, which is async-signal-safe).
fn install_signal_handlers() -> std::io::Result<()> {
    let handlers: [(libc::c_int, extern "C" fn(libc::c_int)); 4] = [
        (libc::SIGINT, on_terminate),
        (libc::SIGTERM, on_terminate),
        (libc::SIGHUP, on_hangup),
        (libc::SIGUSR1, on_user1),
    ];
    for (signal, handler) in handlers {
        // SAFETY: sigaction is a plain C struct; all-zero is a valid empty value before filling.
        let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
        action.sa_sigaction = handler as usize;
        action.sa_flags = libc::SA_RESTART;
        // SAFETY: `action.sa_mask` is a valid sigset_t to initialise.
        unsafe { libc::sigemptyset(&mut action.sa_mask) };
        // SAFETY: valid signal number and action; the handler only stores to an atomic.
        if unsafe { libc::sigaction(signal, &action, std::ptr::null_mut()) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

struct LinkHandle {
    routes: Arc<Routes>,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<WorkerStats>,
}

/// The running exports and link workers.
pub struct Supervisor {
    level: LevelFilter,
    exports: Vec<Arc<Export>>,
    links: HashMap<LinkSpec, LinkHandle>,
}

impl Supervisor {
    fn new(level: LevelFilter) -> Supervisor {
        Supervisor {
            level,
            exports: Vec::new(),
            links: HashMap::new(),
        }
    }

    /// Makes `specs` the running configuration. Everything new is opened first; on error
    /// nothing changes.
    ///
    /// Files are opened before links (as vblade does). The log stays at `warn` while they are
    /// opened, so that a refusal is the only line a failed start prints.
    fn apply(&mut self, specs: Vec<ExportSpec>) -> Result<(), String> {
        logger::set_level(self.level.min(LevelFilter::Warn));
        let result = self.open_and_commit(specs);
        logger::set_level(self.level);
        result
    }

    fn open_and_commit(&mut self, specs: Vec<ExportSpec>) -> Result<(), String> {
        let mut next = Vec::with_capacity(specs.len());
        let mut opened = Vec::new();
        for spec in specs {
            match self.exports.iter().find(|export| *export.spec() == spec) {
                Some(running) => next.push(Arc::clone(running)),
                None => {
                    let name = spec.name();
                    let export = Export::open(spec).map_err(|error| format!("{name}: {error}"))?;
                    let export = Arc::new(export);
                    opened.push(Arc::clone(&export));
                    next.push(export);
                }
            }
        }
        let mut new_links = Vec::new();
        for spec in next
            .iter()
            .flat_map(|export: &Arc<Export>| &export.spec().links)
        {
            if !self.links.contains_key(spec) && !new_links.iter().any(|(s, _)| s == spec) {
                let link = net::open_target(spec).map_err(|error| error.to_string())?;
                new_links.push((spec.clone(), link));
            }
        }
        logger::set_level(self.level);
        for export in &opened {
            export.start()?;
        }
        // A kept export whose storage was resized (an RBD image) shows its new capacity.
        for export in next
            .iter()
            .filter(|e| !opened.iter().any(|o| Arc::ptr_eq(o, e)))
        {
            export.refresh_capacity();
        }
        // Commit: nothing below can fail.
        for export in &opened {
            // vblade's line on stdout; a closed or broken stdout must not stop the daemon.
            let _ = writeln!(std::io::stdout(), "{}", export.startup_line());
            log::info!(
                "{}: {} {} ({} sectors{}{}{}{})",
                export.spec().name(),
                if export.is_failover() {
                    "failover gateway for"
                } else {
                    "serving"
                },
                export.spec().file.display(),
                export.sectors(),
                if export.spec().disk.read_only {
                    ", read-only"
                } else {
                    ""
                },
                if export.spec().disk.direct {
                    ", O_DIRECT"
                } else {
                    ""
                },
                if export.spec().disk.sync {
                    ", O_SYNC"
                } else {
                    ""
                },
                if export.is_block_device() {
                    ", block device"
                } else {
                    ""
                },
            );
        }
        for (spec, link) in new_links {
            let routes = Arc::new(Routes::default());
            let stop = Arc::new(AtomicBool::new(false));
            let worker = LinkWorker::new(
                spec.clone(),
                link,
                Arc::clone(&routes),
                Arc::clone(&stop),
                &SHUTDOWN,
            )
            .map_err(|error| format!("cannot make a wake-up descriptor: {error}"))?;
            let thread = std::thread::Builder::new()
                .name(format!("link {}", spec.interface()))
                .spawn(move || worker.run())
                .map_err(|error| format!("cannot start a thread: {error}"))?;
            self.links.insert(
                spec,
                LinkHandle {
                    routes,
                    stop,
                    thread,
                },
            );
        }
        for (spec, handle) in &self.links {
            let serving: Vec<Arc<Export>> = next
                .iter()
                .filter(|export| export.spec().links.contains(spec))
                .cloned()
                .collect();
            handle.routes.set(serving);
        }
        for export in &self.exports {
            if !next.iter().any(|kept| Arc::ptr_eq(kept, export)) {
                log::info!("{}: no longer served", export.spec().name());
            }
        }
        let unused: Vec<LinkSpec> = self
            .links
            .keys()
            .filter(|spec| !next.iter().any(|export| export.spec().links.contains(spec)))
            .cloned()
            .collect();
        for spec in unused {
            if let Some(handle) = self.links.remove(&spec) {
                handle.stop.store(true, Ordering::SeqCst);
                let _ = handle.thread.join();
                log::info!("{}: closed", spec.interface());
            }
        }
        self.exports = next;
        Ok(())
    }

    /// Stops every worker after its current batch, then flushes every file.
    fn shut_down(self) -> Result<(), String> {
        SHUTDOWN.store(true, Ordering::SeqCst);
        let mut failed = false;
        for (spec, handle) in self.links {
            handle.stop.store(true, Ordering::SeqCst);
            match handle.thread.join() {
                Ok(stats) => log::info!(
                    "{}: {} frames in, {} replies out, {} kernel drops, {} requests dropped \
                     for lack of frame buffers",
                    spec.interface(),
                    stats.frames,
                    stats.replies,
                    stats.kernel_drops,
                    stats.pool_drops
                ),
                Err(_) => failed = true,
            }
        }
        for export in &self.exports {
            if let Err(error) = export.storage().flush() {
                log::error!("{}: final flush failed: {error}", export.spec().name());
                failed = true;
            }
        }
        if failed {
            return Err("shutdown was not clean (see the log)".into());
        }
        log::info!("stopped");
        Ok(())
    }

    /// Logs each export's counters (SIGUSR1).
    fn report(&self) {
        for export in &self.exports {
            let stats = *export.target().stats();
            log::info!(
                "{}: {} frames, {} replies, {} dropped, {} AoE errors, {} ATA errors, \
                 {} disk errors, {} sectors read, {} sectors written, {} flushes",
                export.spec().name(),
                stats.frames,
                stats.replies,
                stats.dropped,
                stats.aoe_errors,
                stats.ata_errors,
                stats.disk_errors,
                stats.sectors_read,
                stats.sectors_written,
                stats.flushes
            );
        }
    }

    fn all_workers_died(&self) -> bool {
        !self.links.is_empty()
            && self
                .links
                .values()
                .all(|handle| handle.thread.is_finished())
    }
}

fn load_specs(exports: &Exports) -> Result<(Vec<ExportSpec>, Option<LevelFilter>), String> {
    match exports {
        Exports::Single(spec) => Ok((vec![spec.clone()], None)),
        Exports::ConfigFile(path) => {
            let config = config::load(path).map_err(|error| error.to_string())?;
            Ok((config.exports, config.log_level))
        }
    }
}

/// Runs the daemon until SIGINT/SIGTERM. `Err` is a start-up refusal or an unclean stop,
/// worded for a person.
///
/// # Errors
/// See above.
pub fn run(settings: Settings) -> Result<(), String> {
    let (specs, file_level) = load_specs(&settings.exports)?;
    let level = settings
        .log_level
        .or(file_level)
        .unwrap_or(LevelFilter::Info);
    logger::init(level);
    install_signal_handlers()
        .map_err(|error| format!("cannot install signal handlers: {error}"))?;
    let mut supervisor = Supervisor::new(level);
    supervisor.apply(specs)?;
    log::info!(
        "host-sim {} running, pid {}",
        env!("CARGO_PKG_VERSION"),
        std::process::id()
    );
    while !SHUTDOWN.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(50));
        if RELOAD.swap(false, Ordering::SeqCst) {
            reload(&mut supervisor, &settings);
        }
        if REPORT.swap(false, Ordering::SeqCst) {
            supervisor.report();
        }
        if supervisor.all_workers_died() && !SHUTDOWN.load(Ordering::SeqCst) {
            let _ = supervisor.shut_down();
            return Err("every link worker stopped unexpectedly".into());
        }
    }
    log::info!("signal received: finishing in-flight requests");
    supervisor.report();
    supervisor.shut_down()
}

fn reload(supervisor: &mut Supervisor, settings: &Settings) {
    let Exports::ConfigFile(path) = &settings.exports else {
        log::info!("SIGHUP: no --config file to reload");
        return;
    };
    log::info!("SIGHUP: reloading {}", path.display());
    match load_specs(&settings.exports) {
        Ok((specs, file_level)) => {
            if settings.log_level.is_none() {
                supervisor.level = file_level.unwrap_or(LevelFilter::Info);
                logger::set_level(supervisor.level);
            }
            match supervisor.apply(specs) {
                Ok(()) => log::info!("reloaded: {} exports", supervisor.exports.len()),
                Err(error) => log::error!("reload refused, old config kept: {error}"),
            }
        }
        Err(error) => log::error!("reload refused, old config kept: {error}"),
    }
}
