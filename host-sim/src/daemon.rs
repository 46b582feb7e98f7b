//! The process: start exports and link workers, reload on SIGHUP, stop cleanly on
//! SIGINT/SIGTERM.
//!
//! Guarantees:
//!
//! * **Start-up refuses, it does not limp**: every export's file is locked and opened, its
//!   saved state read, its address claimed on each interface, and each interface that exists
//!   and is up opened, before any frame is answered; then every export is probed for on the
//!   LAN. The first failure (a refused file, a damaged state file, a lock held elsewhere,
//!   another target answering the same shelf.slot) is returned as one line and nothing runs.
//! * **Interfaces may come late**: an interface that is missing or down at start is waited
//!   for, by the worker that will serve it (logged; its exports are announced when it comes
//!   up), unless `--wait-link` bounds the wait, after which start-up refuses.
//! * **Reload keeps what did not change**: on SIGHUP the config file is read again; exports
//!   whose settings are identical keep running untouched; an export whose settings changed but
//!   whose shelf.slot and file did not is reopened and takes over the old one's target state
//!   (config string, mask, reservations: `Export::handover_from`); new files and links are
//!   opened before anything is swapped, so a bad file, a missing disk, a held lock leaves the
//!   running config untouched (and is logged).
//! * **systemd**: with `NOTIFY_SOCKET` set (`Type=notify`), READY=1 is sent once start-up
//!   passed, RELOADING=1 and READY=1 around a reload, STOPPING=1 at shutdown, and STATUS= says
//!   what runs.
//! * **SIGUSR1** logs every export's counters (frames, replies, errors, sectors moved).
//! * **Shutdown loses no acknowledged write**: SIGINT/SIGTERM stop intake; each worker answers
//!   the batch it holds and stops; then every file is flushed (`fdatasync`) before exit 0.

use crate::cli::{DaemonOptions, Exports, Settings};
use crate::config::{self, DaemonKeys};
use crate::control::{self, Registry};
use crate::export::{Export, ExportError};
use crate::guard::{AddressClaim, AddressClaims, PROBE_WAIT};
use crate::latency::WorkerLatency;
use crate::logger;
use crate::metrics::{ExportOnLink, LinkMetrics};
use crate::notify;
use crate::spec::{ExportSpec, NetOptions};
use crate::state::StateStore;
use crate::worker::{FanoutGroup, LinkShared, LinkWorker, Routes, WorkerStats};
use aoe_net::{self as net, LinkSpec, NetError};
use aoe_storage::Waker;
use log::LevelFilter;
use std::collections::HashMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Set by SIGINT/SIGTERM: stop intake and exit.
pub static SHUTDOWN: AtomicBool = AtomicBool::new(false);
/// Set by SIGHUP: reload the config file.
static RELOAD: AtomicBool = AtomicBool::new(false);
/// Set by SIGUSR1: log every export's counters.
static REPORT: AtomicBool = AtomicBool::new(false);

/// The claims of this process's addresses on its interfaces.
static CLAIMS: LazyLock<AddressClaims> = LazyLock::new(AddressClaims::default);

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

/// The daemon's settings once the command line and the config file are merged (the command
/// line wins).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Options {
    /// Where target state is kept.
    pub state_dir: Option<PathBuf>,
    /// Where metrics are served.
    pub metrics: Option<std::net::SocketAddr>,
    /// The control socket for `host-sim stats`.
    pub control: Option<PathBuf>,
    /// Serve despite another target with the same address.
    pub allow_duplicate: bool,
    /// How long start-up waits for a missing or down interface (`None`: as long as it takes).
    pub wait_link: Option<Duration>,
}

impl Options {
    fn merge(cli: &DaemonOptions, file: &DaemonKeys) -> Options {
        Options {
            state_dir: cli.state_dir.clone().or_else(|| file.state_dir.clone()),
            metrics: cli.metrics.or(file.metrics),
            control: cli.control.clone().or_else(|| file.control_socket.clone()),
            allow_duplicate: cli.allow_duplicate || file.allow_duplicate.unwrap_or(false),
            wait_link: cli.wait_link.or(file.wait_link),
        }
    }
}

struct WorkerHandle {
    stop: Arc<AtomicBool>,
    /// Signalled after `stop` or the routes change: the worker may sleep without a timeout.
    waker: Waker,
    latency: Arc<WorkerLatency>,
    thread: JoinHandle<WorkerStats>,
}

/// The workers of one link (one, or `--workers` in a fan-out group), their routes and the
/// link's counters.
struct LinkHandle {
    routes: Arc<Routes>,
    metrics: Arc<LinkMetrics>,
    workers: Vec<WorkerHandle>,
}

impl LinkHandle {
    fn stop(&self) {
        for worker in &self.workers {
            worker.stop.store(true, Ordering::SeqCst);
            worker.waker.wake();
        }
    }

    fn wake(&self) {
        for worker in &self.workers {
            worker.waker.wake();
        }
    }

    /// Joins every worker; their counters added up, or `None` if one panicked.
    fn join(self) -> Option<WorkerStats> {
        let mut total = WorkerStats::default();
        let mut panicked = false;
        for worker in self.workers {
            match worker.thread.join() {
                Ok(stats) => {
                    total.frames += stats.frames;
                    total.replies += stats.replies;
                    total.kernel_drops += stats.kernel_drops;
                    total.pool_drops += stats.pool_drops;
                }
                Err(_) => panicked = true,
            }
        }
        (!panicked).then_some(total)
    }

    fn latency_lines(&self) -> Vec<String> {
        self.workers
            .iter()
            .enumerate()
            .map(|(index, worker)| {
                format!(
                    "worker {index}: wake-up {}; turn {}",
                    worker.latency.wake_up.summary(),
                    worker.latency.turn.summary()
                )
            })
            .collect()
    }
}

/// Whether `apply` runs at start-up (where `--wait-link` applies) or for a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Start,
    Reload,
}

/// The running exports and link workers.
pub struct Supervisor {
    level: LevelFilter,
    /// The storage engine every export's file is opened on.
    engine: aoe_storage::Engine,
    /// `--link`, `--workers`, `--busy-poll`.
    net: NetOptions,
    options: Options,
    store: Option<StateStore>,
    registry: Arc<Registry>,
    exports: Vec<Arc<Export>>,
    links: HashMap<LinkSpec, LinkHandle>,
    claims: HashMap<(String, u16, u8), Arc<AddressClaim>>,
}

/// What changed between two specs of one export, for the log.
fn changes(old: &ExportSpec, new: &ExportSpec) -> String {
    let mut what = Vec::new();
    if old.links != new.links {
        what.push("interfaces");
    }
    if old.buffer_count != new.buffer_count {
        what.push("buffer count");
    }
    if old.disk != new.disk {
        what.push("disk options");
    }
    if old.mac_mask != new.mac_mask {
        what.push("mac_mask preset");
    }
    if old.state != new.state {
        what.push("state presets or pins");
    }
    what.join(", ")
}

/// True when a link failure is one start-up waits for: the interface is missing or down.
fn waitable(error: &NetError) -> bool {
    matches!(
        error,
        NetError::NoSuchInterface(_) | NetError::InterfaceDown(_)
    )
}

impl Supervisor {
    fn new(
        level: LevelFilter,
        engine: aoe_storage::Engine,
        net: NetOptions,
        options: Options,
        store: Option<StateStore>,
        registry: Arc<Registry>,
    ) -> Supervisor {
        Supervisor {
            level,
            engine,
            net,
            options,
            store,
            registry,
            exports: Vec::new(),
            links: HashMap::new(),
            claims: HashMap::new(),
        }
    }

    /// Makes `specs` the running configuration. Everything new is opened first; on error
    /// nothing changes.
    ///
    /// Files are opened before links (as vblade does). The log stays at `warn` while they are
    /// opened, so that a refusal is the only line a failed start prints.
    fn apply(&mut self, specs: Vec<ExportSpec>, phase: Phase) -> Result<(), String> {
        logger::set_level(self.level.min(LevelFilter::Warn));
        let result = self.open_and_commit(specs, phase);
        logger::set_level(self.level);
        result
    }

    fn open_export(&self, spec: ExportSpec) -> Result<Arc<Export>, String> {
        let name = spec.name();
        match Export::open(spec, self.engine, self.store.as_ref()) {
            Ok(export) => Ok(Arc::new(export)),
            Err(error) => {
                if let ExportError::Guard(_) = error {
                    self.registry.guards.refused("file_lock");
                }
                Err(format!("{name}: {error}"))
            }
        }
    }

    /// Opens `spec` for every worker it gets (`--workers`, with the back end `--link` asks
    /// for), waiting for it at start-up as `--wait-link` says. `Ok(None)`: it is missing or
    /// down; a worker waits for it.
    fn open_link(
        &self,
        spec: &LinkSpec,
        phase: Phase,
    ) -> Result<Option<Vec<net::TargetLink>>, String> {
        let started = Instant::now();
        let kind = self.net.link.unwrap_or_default();
        let workers = usize::from(self.net.workers.unwrap_or(1));
        loop {
            match net::open_target_group(spec, kind, workers) {
                Ok(links) => return Ok(Some(links)),
                Err(error) if waitable(&error) => {
                    let limit = match (phase, self.options.wait_link) {
                        (Phase::Start, Some(limit)) => limit,
                        _ => {
                            log::warn!(
                                "{error}: waiting for it; its exports are served when it comes up"
                            );
                            return Ok(None);
                        }
                    };
                    if started.elapsed() >= limit || SHUTDOWN.load(Ordering::SeqCst) {
                        return Err(if limit.is_zero() {
                            error.to_string()
                        } else {
                            format!("{error}, still after {} s (--wait-link)", limit.as_secs())
                        });
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(error) => return Err(error.to_string()),
            }
        }
    }

    fn open_and_commit(&mut self, specs: Vec<ExportSpec>, phase: Phase) -> Result<(), String> {
        let mut next = Vec::with_capacity(specs.len());
        let mut opened = Vec::new();
        for spec in specs {
            match self.exports.iter().find(|export| *export.spec() == spec) {
                Some(running) => next.push(Arc::clone(running)),
                None => {
                    let export = self.open_export(spec)?;
                    opened.push(Arc::clone(&export));
                    next.push(export);
                }
            }
        }
        // Claim every address on every interface of this host (see `guard`).
        let mut claims = HashMap::new();
        for export in &next {
            let spec = export.spec();
            for link in &spec.links {
                let key = (link.interface().to_owned(), spec.shelf, spec.slot);
                if claims.contains_key(&key) {
                    continue;
                }
                match CLAIMS.claim(link.interface(), spec.shelf, spec.slot) {
                    Ok(claim) => {
                        claims.insert(key, claim);
                    }
                    Err(error) if self.options.allow_duplicate => {
                        log::warn!("{error}; serving anyway (--allow-duplicate)");
                    }
                    Err(error) => {
                        self.registry.guards.refused("address_claim");
                        return Err(format!("{}: {error}", spec.name()));
                    }
                }
            }
        }
        let mut new_links = Vec::new();
        for spec in next
            .iter()
            .flat_map(|export: &Arc<Export>| &export.spec().links)
        {
            if !self.links.contains_key(spec) && !new_links.iter().any(|(s, _)| s == spec) {
                let links = self.open_link(spec, phase)?;
                new_links.push((spec.clone(), links));
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
            let spec = export.spec();
            let replaced = self.exports.iter().find(|old| {
                !next.iter().any(|kept| Arc::ptr_eq(kept, old))
                    && old.identity() == export.identity()
            });
            if let (Some(state), None) = (export.restored(), replaced) {
                log::info!("{}: state restored: {}", spec.name(), state.describe());
            }
            if let Some(old) = replaced {
                let state = export.handover_from(old);
                log::info!(
                    "{}: settings changed ({}); reopened, keeping its state: {}",
                    spec.name(),
                    changes(old.spec(), spec),
                    state.describe()
                );
            }
            let line = format!(
                "{}: {} {} ({} sectors{}{}{}): {}",
                spec.name(),
                if export.is_failover() {
                    "failover gateway for"
                } else {
                    "serving"
                },
                spec.file.display(),
                export.sectors(),
                if spec.disk.read_only {
                    ", read-only"
                } else {
                    ""
                },
                if spec.disk.direct { ", O_DIRECT" } else { "" },
                if export.is_block_device() {
                    ", block device"
                } else {
                    ""
                },
                export.storage_line()
            );
            if export.storage().capabilities().durability == aoe_storage::Durability::Volatile
                && !spec.disk.read_only
            {
                log::warn!("{line}");
            } else {
                log::info!("{line}");
            }
        }
        for (spec, links) in new_links {
            let handle = self.start_workers(&spec, links)?;
            self.links.insert(spec, handle);
        }
        for (spec, handle) in &self.links {
            let serving: Vec<Arc<Export>> = next
                .iter()
                .filter(|export| export.spec().links.contains(spec))
                .cloned()
                .collect();
            handle.routes.set(serving);
            handle.wake();
        }
        for export in &self.exports {
            let kept = next.iter().any(|other| Arc::ptr_eq(other, export));
            let replaced = next
                .iter()
                .any(|other| !Arc::ptr_eq(other, export) && other.identity() == export.identity());
            if !kept && !replaced {
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
                handle.stop();
                let _ = handle.join();
                log::info!("{}: closed", spec.interface());
            }
        }
        self.exports = next;
        self.claims = claims;
        self.registry.set(
            self.exports.clone(),
            self.links
                .values()
                .map(|handle| Arc::clone(&handle.metrics))
                .collect(),
        );
        Ok(())
    }

    /// At start-up: waits until every export on every link that is up has finished its probe,
    /// and refuses (one line) if another target answered one (unless duplicates are allowed).
    fn await_probes(&self) -> Result<(), String> {
        let deadline = Instant::now() + PROBE_WAIT + Duration::from_secs(3);
        loop {
            let mut pending = false;
            let mut conflict = None;
            for (spec, handle) in &self.links {
                let states = handle.metrics.states();
                for export in handle.routes.get().iter() {
                    let name = export.spec().name();
                    match states.get(&name) {
                        None | Some(ExportOnLink::Probing) => pending = true,
                        Some(ExportOnLink::Conflict(others)) => {
                            conflict = Some(format!(
                                "{name} on {}: another target answers {name} from {others}; two \
                                 targets with one address corrupt initiators' data (give one \
                                 another shelf.slot, or --allow-duplicate)",
                                spec.interface()
                            ));
                        }
                        Some(ExportOnLink::Serving | ExportOnLink::Waiting) => {}
                    }
                }
            }
            if let Some(conflict) = conflict {
                self.registry.guards.refused("duplicate");
                return Err(conflict);
            }
            if !pending || Instant::now() >= deadline || SHUTDOWN.load(Ordering::SeqCst) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops every worker after its current batch, then flushes every file.
    fn shut_down(self) -> Result<(), String> {
        SHUTDOWN.store(true, Ordering::SeqCst);
        let mut failed = false;
        for handle in self.links.values() {
            handle.stop();
        }
        for (spec, handle) in self.links {
            let latency = handle.latency_lines().join("; ");
            match handle.join() {
                Some(stats) => log::info!(
                    "{}: {} frames in, {} replies out, {} kernel drops, {} requests dropped \
                     for lack of frame buffers; {latency}",
                    spec.interface(),
                    stats.frames,
                    stats.replies,
                    stats.kernel_drops,
                    stats.pool_drops
                ),
                None => failed = true,
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

    /// Logs each export's counters and each worker's latency histograms (SIGUSR1).
    fn report(&self) {
        for (spec, handle) in &self.links {
            for line in handle.latency_lines() {
                log::info!("{}: {line}", spec.interface());
            }
        }
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
            let errors = export.disk_errors();
            if !errors.is_empty() {
                let text: Vec<String> = errors
                    .iter()
                    .map(|(kind, count)| format!("{count} x {kind}"))
                    .collect();
                log::warn!(
                    "{}: disk errors by kind: {}",
                    export.spec().name(),
                    text.join(", ")
                );
            }
        }
    }

    fn all_workers_died(&self) -> bool {
        !self.links.is_empty()
            && self
                .links
                .values()
                .flat_map(|handle| &handle.workers)
                .all(|worker| worker.thread.is_finished())
    }

    /// Starts one worker thread per link of `links` (all on the interface `spec` names), or,
    /// for a link that is missing or down (`None`), one worker that waits for it and then
    /// serves alone (a restart brings the other workers back).
    fn start_workers(
        &self,
        spec: &LinkSpec,
        links: Option<Vec<net::TargetLink>>,
    ) -> Result<LinkHandle, String> {
        let routes = Arc::new(Routes::default());
        let metrics = Arc::new(LinkMetrics::new(spec.interface()));
        let busy_poll = Duration::from_micros(u64::from(self.net.busy_poll_us.unwrap_or(0)));
        let kind = self.net.link.unwrap_or_default();
        let probe_answers = Arc::default();
        let shared = |first: bool| LinkShared {
            metrics: Arc::clone(&metrics),
            // The first worker probes for duplicates and announces; the others follow it.
            probe: first,
            allow_duplicate: self.options.allow_duplicate,
            leader: first,
            probe_answers: Arc::clone(&probe_answers),
        };
        let mut workers = Vec::new();
        let mut start = |worker: LinkWorker, index: usize| -> Result<(), String> {
            let stop = worker.stop_flag();
            let waker = worker.waker();
            let latency = worker.latency();
            let thread = std::thread::Builder::new()
                .name(format!("link {} #{index}", spec.interface()))
                .spawn(move || worker.run())
                .map_err(|error| format!("cannot start a thread: {error}"))?;
            workers.push(WorkerHandle {
                stop,
                waker,
                latency,
                thread,
            });
            Ok(())
        };
        match links {
            None => {
                let worker = LinkWorker::waiting(
                    spec.clone(),
                    Arc::clone(&routes),
                    Arc::new(AtomicBool::new(false)),
                    &SHUTDOWN,
                )
                .map_err(|error| format!("cannot make a wake-up descriptor: {error}"))?
                .with_busy_poll(busy_poll)
                .with_kind(kind)
                .with_shared(shared(true));
                start(worker, 0)?;
            }
            Some(links) => {
                let grouped = links.len() > 1;
                let group = Arc::new(FanoutGroup::new(
                    links.first().and_then(|link| link.group).unwrap_or(0),
                ));
                for (index, opened) in links.into_iter().enumerate() {
                    log::info!(
                        "{}: worker {index} on a {} link{}",
                        spec.interface(),
                        opened.kind.name(),
                        opened
                            .group
                            .map_or(String::new(), |id| format!(" (fan-out group {id})"))
                    );
                    let mut worker = LinkWorker::new(
                        spec.clone(),
                        opened.link,
                        Arc::clone(&routes),
                        Arc::new(AtomicBool::new(false)),
                        &SHUTDOWN,
                    )
                    .map_err(|error| format!("cannot make a wake-up descriptor: {error}"))?
                    .with_busy_poll(busy_poll)
                    .with_kind(opened.kind)
                    .with_shared(shared(index == 0));
                    if grouped {
                        worker = worker.in_group(opened.kind, Arc::clone(&group), index == 0);
                    }
                    start(worker, index)?;
                }
            }
        }
        Ok(LinkHandle {
            routes,
            metrics,
            workers,
        })
    }

    /// One line for systemd's STATUS=.
    fn status(&self) -> String {
        let mut waiting = Vec::new();
        for handle in self.links.values() {
            if !handle.metrics.up.load(Ordering::Relaxed) {
                waiting.push(handle.metrics.name.clone());
            }
        }
        waiting.sort();
        let mut line = format!("serving {} export(s)", self.exports.len());
        if !waiting.is_empty() {
            line.push_str(&format!("; waiting for {}", waiting.join(", ")));
        }
        line
    }
}

/// What a config source says: the exports, the log level and the daemon keys.
struct Loaded {
    specs: Vec<ExportSpec>,
    level: Option<LevelFilter>,
    daemon: DaemonKeys,
    net: NetOptions,
}

fn load(exports: &Exports) -> Result<Loaded, String> {
    match exports {
        Exports::Single(spec) => Ok(Loaded {
            specs: vec![spec.clone()],
            level: None,
            daemon: DaemonKeys::default(),
            net: NetOptions::default(),
        }),
        Exports::ConfigFile(path) => {
            let config = config::load(path).map_err(|error| error.to_string())?;
            Ok(Loaded {
                specs: config.exports,
                level: config.log_level,
                daemon: config.daemon,
                net: config.net,
            })
        }
    }
}

/// Runs the daemon until SIGINT/SIGTERM. `Err` is a start-up refusal or an unclean stop,
/// worded for a person.
///
/// # Errors
/// See above.
pub fn run(settings: Settings) -> Result<(), String> {
    let loaded = load(&settings.exports)?;
    let level = settings
        .log_level
        .or(loaded.level)
        .unwrap_or(LevelFilter::Info);
    logger::init(level);
    install_signal_handlers()
        .map_err(|error| format!("cannot install signal handlers: {error}"))?;
    let options = Options::merge(&settings.daemon, &loaded.daemon);
    let store = options
        .state_dir
        .as_deref()
        .map(StateStore::open)
        .transpose()?;
    let registry = Arc::new(Registry::new());
    let (engine, why_not_uring) = aoe_storage::Engine::detect();
    let mut supervisor = Supervisor::new(
        level,
        engine,
        settings.net.or(loaded.net),
        options.clone(),
        store,
        Arc::clone(&registry),
    );
    supervisor.apply(loaded.specs, Phase::Start)?;
    // Said after the exports opened, so that a refusal stays the only line of a failed start.
    match why_not_uring {
        None => log::info!("storage engine: {}", engine.describe()),
        Some(why) => log::warn!(
            "storage engine: {} instead of io_uring: {why}",
            engine.describe()
        ),
    }
    if let Err(error) = supervisor.await_probes() {
        let _ = supervisor.shut_down();
        return Err(error);
    }
    let servers = match control::start(&options, &registry) {
        Ok(servers) => servers,
        Err(error) => {
            let _ = supervisor.shut_down();
            return Err(error);
        }
    };
    match &supervisor.store {
        Some(store) => log::info!("target state kept in {}", store.dir().display()),
        None => log::info!(
            "no --state-dir: config strings, masks and reservations last until the process ends"
        ),
    }
    log::info!(
        "host-sim {} running, pid {}",
        env!("CARGO_PKG_VERSION"),
        std::process::id()
    );
    notify::notify(&format!("READY=1\nSTATUS={}", supervisor.status()));
    let mut sampled = Instant::now();
    let mut status = supervisor.status();
    while !SHUTDOWN.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(50));
        if RELOAD.swap(false, Ordering::SeqCst) {
            notify::notify("RELOADING=1");
            reload(&mut supervisor, &settings);
            notify::notify(&format!("READY=1\nSTATUS={}", supervisor.status()));
        }
        if REPORT.swap(false, Ordering::SeqCst) {
            supervisor.report();
        }
        if sampled.elapsed() >= Duration::from_secs(1) {
            for export in &supervisor.exports {
                export.metrics().sample(sampled.elapsed());
            }
            sampled = Instant::now();
            let now = supervisor.status();
            if now != status {
                notify::notify(&format!("STATUS={now}"));
                status = now;
            }
        }
        if supervisor.all_workers_died() && !SHUTDOWN.load(Ordering::SeqCst) {
            let _ = supervisor.shut_down();
            return Err("every link worker stopped unexpectedly".into());
        }
    }
    notify::notify("STOPPING=1");
    log::info!("signal received: finishing in-flight requests");
    supervisor.report();
    drop(servers);
    supervisor.shut_down()
}

fn reload(supervisor: &mut Supervisor, settings: &Settings) {
    let Exports::ConfigFile(path) = &settings.exports else {
        log::info!("SIGHUP: no --config file to reload");
        return;
    };
    log::info!("SIGHUP: reloading {}", path.display());
    match load(&settings.exports) {
        Ok(loaded) => {
            if settings.log_level.is_none() {
                supervisor.level = loaded.level.unwrap_or(LevelFilter::Info);
                logger::set_level(supervisor.level);
            }
            let options = Options::merge(&settings.daemon, &loaded.daemon);
            if options != supervisor.options {
                log::warn!(
                    "SIGHUP: state_dir, metrics, control_socket, allow_duplicate and wait_link \
                     take effect on restart; the running values are kept"
                );
            }
            match supervisor.apply(loaded.specs, Phase::Reload) {
                Ok(()) => log::info!("reloaded: {} exports", supervisor.exports.len()),
                Err(error) => log::error!("reload refused, old config kept: {error}"),
            }
        }
        Err(error) => log::error!("reload refused, old config kept: {error}"),
    }
}

/// `host-sim --check-config FILE`: everything start-up checks that needs no network and no
/// lock: the file's syntax and values, the exports' files (size, window, `O_DIRECT`),
/// overlapping exports of one file, the state directory and each export's saved state.
/// Returns the report for a person.
///
/// # Errors
/// The first problem, in one line.
pub fn check_config(path: &std::path::Path) -> Result<String, String> {
    use aoe_storage::Storage as _;
    let config = config::load(path).map_err(|error| error.to_string())?;
    let mut report = format!("{}: {} export(s)\n", path.display(), config.exports.len());
    let store = match &config.daemon.state_dir {
        Some(dir) if dir.is_dir() => {
            let probe = dir.join(format!(".check-{}", std::process::id()));
            std::fs::write(&probe, b"")
                .and_then(|()| std::fs::remove_file(&probe))
                .map_err(|error| {
                    format!("cannot write to state directory {}: {error}", dir.display())
                })?;
            Some(StateStore::open(dir)?)
        }
        Some(dir) => {
            report.push_str(&format!(
                "state directory {} does not exist yet; host-sim makes it at start\n",
                dir.display()
            ));
            None
        }
        None => None,
    };
    for spec in &config.exports {
        let name = spec.name();
        let mut options = spec.disk;
        options.read_only = true;
        let storage = aoe_storage::file::FileStorage::open(&spec.file, options)
            .map_err(|error| format!("{name}: {error}"))?;
        let identity = crate::state::Identity::of(spec.shelf, spec.slot, &spec.file);
        let saved = match &store {
            Some(store) => match store
                .load(&identity)
                .map_err(|error| format!("{name}: {error}"))?
            {
                Some(record) => format!("saved state: {}", record.state.describe()),
                None => "no saved state".to_owned(),
            },
            None => "no state directory".to_owned(),
        };
        let interfaces: Vec<String> = spec
            .links
            .iter()
            .map(|link| {
                let name = link.interface();
                let present = std::path::Path::new("/sys/class/net").join(name).exists();
                match link {
                    LinkSpec::Tap { .. } => format!("{name} (TAP)"),
                    LinkSpec::Packet { .. } if present => name.to_owned(),
                    LinkSpec::Packet { .. } => format!("{name} (missing: waited for)"),
                }
            })
            .collect();
        report.push_str(&format!(
            "{name} on {}: {}, {} sectors, {}; {saved}\n",
            interfaces.join(", "),
            spec.file.display(),
            storage.capabilities().sectors,
            if spec.disk.read_only {
                "read-only"
            } else {
                "read-write"
            },
        ));
    }
    report.push_str("OK\n");
    Ok(report)
}
