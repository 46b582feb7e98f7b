//! The target's fast path: one thread per link, batches of frames through the engine's split
//! path, sector data moved by the kernel straight between frame buffers and the file.
//!
//! Per batch a [`LinkWorker`]:
//!
//! 1. receives up to 64 frames with one `recvmmsg` ([`Link::recv`]);
//! 2. hands each frame to every export whose shelf.slot it names (wildcards included) through
//!    [`Target::accept`]. Control commands, IDENTIFY and refusals are completed at once (the
//!    engine requires that for control plans); READ, WRITE and FLUSH become jobs, each with its
//!    own reply slot;
//! 3. runs the jobs in arrival order, merging consecutive jobs of one export that continue each
//!    other's LBA range into one `preadv`/`pwritev` (up to [`MAX_MERGE`] frames), reading
//!    straight into the reply frames at octet 36 and writing straight from the request frames;
//!    a FLUSH is one `fdatasync`. If a merged transfer fails, its jobs are redone one by one so
//!    each reply reports its own outcome;
//! 4. completes each job's reply with [`Target::complete_into`] and sends all replies with one
//!    `sendmmsg`.
//!
//! Guarantees: a WRITE's reply is built only after its `pwrite` returned all octets (and with
//! `-s`, after they are durable); jobs run in arrival order, so a READ after a WRITE of the
//! same sectors in one batch sees the new data and a FLUSH covers every WRITE before it;
//! nothing is allocated per frame; the worker finishes and answers its current batch before it
//! stops.
//!
//! The MTU is re-read from the kernel for every Query Config (so the advertised sectors per
//! frame follow an MTU change) and once a second otherwise. A link that fails (interface
//! deleted, or down and reported so by the kernel) is reopened by name once a second until it
//! works again; then every export on it is announced again.

use crate::disk::{FileDisk, OpenError, SharedDisk};
use crate::net::{self, FrameBufs, Link, LinkSpec};
use crate::spec::{ExportSpec, format_mac};
use aoe_core::identify::Identity;
use aoe_core::wire::EthernetAddress;
use aoe_core::{Config, DiskIo, ErrorKind, IoOp, Plan, Port, Target};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Largest frame the buffers hold: MTU 9000 plus the Ethernet header. The engine advertises at
/// most `(9014 − 36) / 512 = 17` sectors per frame, also on interfaces with a larger MTU.
pub const FRAME_CAPACITY: usize = 9014;

/// Frames received per system call.
pub const RECV_BATCH: usize = 64;

/// Reply slots per batch: broadcasts to several exports make more replies than requests; when
/// the slots run out mid-batch, the replies so far are sent and the slots reused.
const REPLY_SLOTS: usize = RECV_BATCH + 32;

/// Most frames merged into one vectored transfer.
pub const MAX_MERGE: usize = 64;

/// How long a receive waits before the worker checks for stop requests and new routes.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// How often a failed link is reopened.
const REOPEN_INTERVAL: Duration = Duration::from_secs(1);

/// How often the MTU is re-read when no Query Config asks for it.
const MTU_REFRESH: Duration = Duration::from_secs(1);

/// How often receive-buffer drops are checked and reported.
const DROP_REPORT: Duration = Duration::from_secs(10);

/// AoE command code of Query Config (frame octet 19).
const QUERY_CONFIG: u8 = 1;

/// The IDENTIFY serial vblade uses, `shelf.slot:hostname` (cut to 20 characters by the
/// engine), so that exports of the same address on different hosts can be told apart.
pub fn serial_for(shelf: u16, slot: u8) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    format!("{shelf}.{slot}:{}", host.trim())
}

/// One export: the engine for shelf.slot and its file.
#[derive(Debug)]
pub struct Export {
    spec: ExportSpec,
    disk: Arc<FileDisk>,
    target: Mutex<Target<SharedDisk>>,
}

/// Why an export could not be started.
#[derive(Debug)]
pub enum ExportError {
    /// The file.
    Disk(OpenError),
    /// The engine refused the configuration.
    Config(aoe_core::ConfigError),
    /// The spec was refused.
    Spec(crate::spec::SpecError),
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

impl Export {
    /// Opens the file and builds the engine for `spec`.
    ///
    /// # Errors
    /// When the spec, the file or the engine configuration is refused.
    pub fn open(spec: ExportSpec) -> Result<Export, ExportError> {
        spec.validate().map_err(ExportError::Spec)?;
        let disk = Arc::new(FileDisk::open(&spec.file, spec.disk).map_err(ExportError::Disk)?);
        let mut config = Config::new(spec.shelf, spec.slot);
        config.buffer_count = spec.buffer_count;
        config.max_frame_len = FRAME_CAPACITY;
        config.identity = Identity::new(
            Identity::DEFAULT_MODEL,
            &serial_for(spec.shelf, spec.slot),
            Identity::DEFAULT_FIRMWARE,
        );
        let mut target =
            Target::new(config, SharedDisk(Arc::clone(&disk))).map_err(ExportError::Config)?;
        for mac in &spec.mac_mask {
            // validate() bounded the list by the mask capacity.
            let _ = target.mask_add(EthernetAddress(*mac));
        }
        Ok(Export {
            spec,
            disk,
            target: Mutex::new(target),
        })
    }

    /// What it was made from.
    pub fn spec(&self) -> &ExportSpec {
        &self.spec
    }

    /// The file.
    pub fn disk(&self) -> &FileDisk {
        &self.disk
    }

    /// The engine, locked. A worker that panicked while holding it left nothing half-done that
    /// matters (the engine's state changes are single assignments), so poisoning is ignored.
    pub fn target(&self) -> MutexGuard<'_, Target<SharedDisk>> {
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
            self.disk.sectors(),
            if self.spec.disk.read_only {
                "O_RDONLY"
            } else {
                "O_RDWR"
            }
        )
    }

    fn answers(&self, major: u16, minor: u8) -> bool {
        (major == self.spec.shelf || major == 0xFFFF) && (minor == self.spec.slot || minor == 0xFF)
    }
}

impl Drop for Export {
    fn drop(&mut self) {
        // The last holder is gone (shutdown or reload): make every acknowledged write durable.
        if let Err(kind) = self.disk.flush() {
            log::error!(
                "{}: flush of {} failed: {kind}",
                self.spec.name(),
                self.spec.file.display()
            );
        }
    }
}

/// The exports one link serves; the supervisor swaps the list, workers pick it up per batch.
#[derive(Debug, Default)]
pub struct Routes(Mutex<Arc<Vec<Arc<Export>>>>);

impl Routes {
    /// Replaces the list.
    pub fn set(&self, exports: Vec<Arc<Export>>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Arc::new(exports);
    }

    /// The current list.
    pub fn get(&self) -> Arc<Vec<Arc<Export>>> {
        Arc::clone(&self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// A disk job waiting for its I/O: which export, which request and reply slots.
#[derive(Debug, Clone, Copy)]
struct Job {
    export: usize,
    plan: Plan,
    io: DiskIo,
    rx_slot: usize,
    tx_slot: usize,
    result: Result<(), ErrorKind>,
}

/// Counters a worker reports when it stops.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WorkerStats {
    /// Frames received.
    pub frames: u64,
    /// Replies sent.
    pub replies: u64,
    /// Disk transfers (system calls) after merging.
    pub transfers: u64,
    /// Frames the kernel dropped for lack of receive buffer.
    pub kernel_drops: u64,
}

/// Serves the exports in `routes` on one link until `stop` or `shutdown` is set.
pub struct LinkWorker {
    spec: LinkSpec,
    link: Box<dyn Link>,
    routes: Arc<Routes>,
    stop: Arc<AtomicBool>,
    shutdown: &'static AtomicBool,
    rx: FrameBufs,
    tx: FrameBufs,
    jobs: Vec<Job>,
    current: Arc<Vec<Arc<Export>>>,
    mtu: usize,
    mtu_read: Instant,
    stats: WorkerStats,
}

impl LinkWorker {
    /// A worker for `link`, opened from `spec` (which reopens it after a failure); call
    /// [`run`](Self::run) on its own thread.
    pub fn new(
        spec: LinkSpec,
        link: Box<dyn Link>,
        routes: Arc<Routes>,
        stop: Arc<AtomicBool>,
        shutdown: &'static AtomicBool,
    ) -> LinkWorker {
        let mtu = link.mtu().unwrap_or(1500);
        LinkWorker {
            spec,
            link,
            routes,
            stop,
            shutdown,
            rx: FrameBufs::new(RECV_BATCH, FRAME_CAPACITY),
            tx: FrameBufs::new(REPLY_SLOTS, FRAME_CAPACITY),
            jobs: Vec::with_capacity(REPLY_SLOTS),
            current: Arc::new(Vec::new()),
            mtu,
            mtu_read: Instant::now(),
            stats: WorkerStats::default(),
        }
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed) || self.shutdown.load(Ordering::Relaxed)
    }

    fn refresh_mtu(&mut self) {
        match self.link.mtu() {
            Ok(mtu) => {
                if mtu != self.mtu {
                    log::info!("{}: MTU is now {mtu}", self.link.name());
                }
                self.mtu = mtu;
            }
            Err(error) => log::warn!("{}: {error}", self.link.name()),
        }
        self.mtu_read = Instant::now();
    }

    fn port(&self) -> Port {
        Port::new(EthernetAddress(self.link.mac()), self.mtu)
    }

    /// Runs until told to stop; returns the counters.
    pub fn run(mut self) -> WorkerStats {
        let mut drops_checked = Instant::now();
        // Since when the link has been failing, and when a reopen was last tried.
        let mut broken: Option<Instant> = None;
        let mut reopen_tried = Instant::now();
        while !self.stopping() {
            if broken.is_some() && reopen_tried.elapsed() >= REOPEN_INTERVAL {
                reopen_tried = Instant::now();
                if self.reopen() {
                    broken = None;
                }
            }
            if broken.is_some() {
                std::thread::sleep(POLL_INTERVAL);
                continue;
            }
            self.pick_up_routes();
            if self.mtu_read.elapsed() > MTU_REFRESH {
                self.refresh_mtu();
            }
            if drops_checked.elapsed() > DROP_REPORT {
                self.report_drops();
                drops_checked = Instant::now();
            }
            match self.link.recv(&mut self.rx, Some(POLL_INTERVAL)) {
                Ok(received) => {
                    self.stats.frames += received as u64;
                    self.process(received);
                }
                Err(error) => {
                    // The interface went down or away (the socket reports it once). Not fatal:
                    // reopen it by name once a second until it is back, then announce again.
                    log::error!("{error}; reopening it once a second until it is back");
                    broken = Some(Instant::now());
                    reopen_tried = Instant::now();
                }
            }
        }
        self.report_drops();
        self.stats
    }

    /// Opens the link again by name (after it failed); true on success. A new link starts
    /// with no exports picked up, so every export is announced again.
    fn reopen(&mut self) -> bool {
        match net::open_target(&self.spec) {
            Ok(link) => {
                log::info!(
                    "{}: reopened ({})",
                    self.spec.interface(),
                    format_mac(&link.mac())
                );
                self.link = link;
                // Frames lent by the old link's rings go back with its mapping.
                self.rx.unlend();
                self.tx.unlend();
                self.current = Arc::new(Vec::new());
                true
            }
            Err(error) => {
                log::debug!("{}: not yet: {error}", self.spec.interface());
                false
            }
        }
    }

    fn report_drops(&mut self) {
        let drops = self.link.take_drops();
        if drops > 0 {
            self.stats.kernel_drops += drops;
            log::warn!(
                "{}: the kernel dropped {drops} frames for lack of receive buffer",
                self.link.name()
            );
        }
    }

    /// Takes a new export list: sizes the socket buffers for it and announces new exports.
    fn pick_up_routes(&mut self) {
        let routes = self.routes.get();
        if Arc::ptr_eq(&routes, &self.current) {
            return;
        }
        let frames: usize = routes
            .iter()
            .map(|export| usize::from(export.spec.buffer_count))
            .sum();
        let bytes = net::buffer_bytes_for(frames.max(RECV_BATCH), self.mtu.max(1500));
        match self.link.set_buffer_bytes(bytes, bytes) {
            Ok((rx, _)) if rx > 0 && rx < bytes => log::warn!(
                "{}: receive buffer is {rx} bytes, {bytes} wanted for {frames} frames; \
                 raise net.core.rmem_max or run with CAP_NET_ADMIN",
                self.link.name()
            ),
            Ok((rx, tx)) => log::debug!(
                "{}: socket buffers rx {rx} tx {tx} bytes for {frames} frames",
                self.link.name()
            ),
            Err(error) => log::warn!("{error}"),
        }
        self.refresh_mtu();
        for export in routes.iter() {
            if !self.current.iter().any(|old| Arc::ptr_eq(old, export)) {
                self.announce(export);
            }
        }
        self.current = routes;
    }

    /// Sends the start-up Query Config reply (broadcast, or to each mask MAC).
    fn announce(&mut self, export: &Export) {
        let port = self.port();
        let target = export.target();
        let destinations: Vec<EthernetAddress> = target.announcement_destinations().collect();
        let mut sent = Vec::new();
        for destination in destinations {
            let slot = self.tx.slot_mut(0);
            let Some(len) = target.announce(&port, destination, slot) else {
                log::warn!(
                    "{} on {}: MTU {} is too small to announce or serve",
                    export.spec.name(),
                    self.link.name(),
                    self.mtu
                );
                return;
            };
            match self.link.send_frame(&self.tx.slot(0)[..len]) {
                Ok(()) => sent.push(format_mac(&destination.0)),
                Err(error) => log::warn!("{error}"),
            }
        }
        log::info!(
            "{} on {} ({}, MTU {}, {} sectors per frame): announced to {}",
            export.spec.name(),
            self.link.name(),
            format_mac(&self.link.mac()),
            self.mtu,
            target.sectors_per_frame(&port),
            sent.join(", ")
        );
    }

    /// Accepts, runs and answers `received` frames from `self.rx`.
    fn process(&mut self, received: usize) {
        // Reply slots become transmit ring frames where the link has rings (no copy on send).
        self.link.prepare_send(&mut self.tx);
        let mut port = self.port();
        let mut replies = 0;
        let routes = Arc::clone(&self.current);
        for rx_slot in 0..received {
            let frame = self.rx.frame(rx_slot);
            if frame.len() < 24 {
                continue;
            }
            let major = u16::from_be_bytes([frame[16], frame[17]]);
            let minor = frame[18];
            if frame[19] == QUERY_CONFIG {
                self.refresh_mtu();
                port = self.port();
            }
            for (index, export) in routes.iter().enumerate() {
                if !export.answers(major, minor) {
                    continue;
                }
                if replies == self.tx.count() {
                    self.finish(&routes, replies);
                    self.link.prepare_send(&mut self.tx);
                    replies = 0;
                }
                let frame = self.rx.frame(rx_slot);
                let mut target = export.target();
                let Some(plan) = target.accept(&port, frame) else {
                    continue;
                };
                match plan.io() {
                    None => {
                        let len =
                            target.complete_into(&plan, Ok(()), frame, self.tx.slot_mut(replies));
                        if let Some(len) = len {
                            self.tx.set_len(replies, len);
                            replies += 1;
                        }
                    }
                    Some(io) => {
                        self.tx.set_len(replies, 0);
                        self.jobs.push(Job {
                            export: index,
                            plan,
                            io,
                            rx_slot,
                            tx_slot: replies,
                            result: Ok(()),
                        });
                        replies += 1;
                    }
                }
            }
        }
        self.finish(&routes, replies);
    }

    /// Runs the pending jobs, completes their replies and sends reply slots `0..replies`.
    fn finish(&mut self, routes: &[Arc<Export>], replies: usize) {
        self.run_jobs(routes);
        for job in &self.jobs {
            let export = &routes[job.export];
            let mut target = export.target();
            let len = target.complete_into(
                &job.plan,
                job.result,
                self.rx.frame(job.rx_slot),
                self.tx.slot_mut(job.tx_slot),
            );
            self.tx.set_len(job.tx_slot, len.unwrap_or(0));
        }
        self.jobs.clear();
        if replies > 0 {
            match self.link.send(&self.tx, replies) {
                Ok(sent) => self.stats.replies += sent as u64,
                Err(error) => log::warn!("{error}"),
            }
        }
    }

    /// Runs every job's disk I/O in order, merging runs of contiguous transfers.
    fn run_jobs(&mut self, routes: &[Arc<Export>]) {
        let mut start = 0;
        while start < self.jobs.len() {
            let first = self.jobs[start];
            let mut end = start + 1;
            if first.io.op != IoOp::Flush {
                while end < self.jobs.len() && end - start < MAX_MERGE {
                    let (previous, next) = (&self.jobs[end - 1], &self.jobs[end]);
                    let continues = next.export == first.export
                        && next.io.op == first.io.op
                        && previous.io.lba + u64::from(previous.io.sectors) == next.io.lba;
                    if !continues {
                        break;
                    }
                    end += 1;
                }
            }
            let disk = &routes[first.export].disk;
            let result = self.transfer(disk, start..end);
            self.stats.transfers += 1;
            if result.is_err() && end - start > 1 {
                for single in start..end {
                    self.jobs[single].result = self.transfer(disk, single..single + 1);
                    self.stats.transfers += 1;
                }
            } else {
                for job in &mut self.jobs[start..end] {
                    job.result = result;
                }
            }
            start = end;
        }
    }

    /// One system call for jobs `range`, which are all reads or all writes of consecutive
    /// sectors of `disk`, or a single flush.
    fn transfer(
        &mut self,
        disk: &FileDisk,
        range: std::ops::Range<usize>,
    ) -> Result<(), ErrorKind> {
        let first = self.jobs[range.start].io;
        let empty = libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        };
        let mut iov = [empty; MAX_MERGE];
        let count = range.len();
        match first.op {
            IoOp::Flush => disk.flush(),
            // One frame: plain pread/pwrite (cheaper than the vectored calls, and safe code).
            IoOp::Read if count == 1 => {
                let job = &self.jobs[range.start];
                // The engine keeps data within max_frame_len (the slot size); checked anyway.
                match self.tx.slot_mut(job.tx_slot).get_mut(job.io.data_range()) {
                    Some(data) => disk.read_at(first.lba, data),
                    None => Err(ErrorKind::Other),
                }
            }
            IoOp::Write if count == 1 => {
                let job = &self.jobs[range.start];
                match self.rx.slot(job.rx_slot).get(job.io.data_range()) {
                    Some(data) => disk.write_at(first.lba, data),
                    None => Err(ErrorKind::Other),
                }
            }
            IoOp::Read => {
                for (entry, job) in iov.iter_mut().zip(&self.jobs[range]) {
                    *entry = self.tx.iovec_mut(job.tx_slot, job.io.data_range());
                }
                // SAFETY: each iovec covers the data range of a distinct reply slot of
                // `self.tx` (every job has its own slot), derived from one base pointer; `self.tx`
                // is not touched until the call returns.
                unsafe { disk.read_vectored_at(first.lba, &iov[..count]) }
            }
            IoOp::Write => {
                for (entry, job) in iov.iter_mut().zip(&self.jobs[range]) {
                    *entry = self.rx.iovec(job.rx_slot, job.io.data_range());
                }
                // SAFETY: each iovec covers the data range of a request slot of `self.rx`,
                // which the kernel only reads and nothing writes during the call.
                unsafe { disk.write_vectored_at(first.lba, &iov[..count]) }
            }
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::disk::DiskOptions;
    use crate::net::{Mac, NetError};
    use std::collections::VecDeque;

    const TARGET: Mac = [0x02, 0, 0, 0, 0, 0x01];
    const INITIATOR: Mac = [0x02, 0, 0, 0, 0, 0x99];

    /// An in-memory link: frames pushed into `inbox` are received, sent frames land in `outbox`.
    struct MemLink {
        inbox: Arc<Mutex<VecDeque<Vec<u8>>>>,
        outbox: Arc<Mutex<Vec<Vec<u8>>>>,
    }

    impl Link for MemLink {
        fn name(&self) -> &str {
            "mem0"
        }
        fn mac(&self) -> Mac {
            TARGET
        }
        fn mtu(&self) -> Result<usize, NetError> {
            Ok(1500)
        }
        fn recv(
            &mut self,
            bufs: &mut FrameBufs,
            timeout: Option<Duration>,
        ) -> Result<usize, NetError> {
            let mut inbox = self.inbox.lock().unwrap();
            if inbox.is_empty() {
                drop(inbox);
                std::thread::sleep(
                    timeout
                        .unwrap_or(POLL_INTERVAL)
                        .min(Duration::from_millis(5)),
                );
                return Ok(0);
            }
            let mut received = 0;
            while received < bufs.count() {
                let Some(frame) = inbox.pop_front() else {
                    break;
                };
                bufs.slot_mut(received)[..frame.len()].copy_from_slice(&frame);
                bufs.set_len(received, frame.len());
                received += 1;
            }
            Ok(received)
        }
        fn send(&mut self, bufs: &FrameBufs, count: usize) -> Result<usize, NetError> {
            let mut outbox = self.outbox.lock().unwrap();
            let mut sent = 0;
            for slot in 0..count {
                if bufs.len(slot) > 0 {
                    outbox.push(bufs.frame(slot).to_vec());
                    sent += 1;
                }
            }
            Ok(sent)
        }
        fn send_frame(&mut self, frame: &[u8]) -> Result<(), NetError> {
            self.outbox.lock().unwrap().push(frame.to_vec());
            Ok(())
        }
        fn set_buffer_bytes(&mut self, _: usize, _: usize) -> Result<(usize, usize), NetError> {
            Ok((0, 0))
        }
    }

    fn request(command: u8, tag: u32, arg: &[u8]) -> Vec<u8> {
        let mut frame = Vec::new();
        frame.extend_from_slice(&TARGET);
        frame.extend_from_slice(&INITIATOR);
        frame.extend_from_slice(&[0x88, 0xa2, 0x10, 0, 0, 9, 4, command]);
        frame.extend_from_slice(&tag.to_be_bytes());
        frame.extend_from_slice(arg);
        frame
    }

    fn ata(tag: u32, cmd: u8, lba: u64, count: u8, data: &[u8]) -> Vec<u8> {
        let write = u8::from(cmd == 0x34);
        let mut arg = vec![0x40 | write, 0, count, cmd];
        arg.extend_from_slice(&lba.to_le_bytes()[..6]);
        arg.extend_from_slice(&[0, 0]);
        arg.extend_from_slice(data);
        request(0, tag, &arg)
    }

    fn fill(tag: u32) -> Vec<u8> {
        (0..1024u32)
            .map(|i| u8::try_from((i * 7 + tag) % 251).unwrap())
            .collect()
    }

    #[test]
    fn a_batch_runs_in_order_merged_and_zero_copy_over_a_file() {
        let dir = std::env::current_exe().unwrap();
        let path = dir
            .parent()
            .unwrap()
            .join(format!("server-{}.img", std::process::id()));
        std::fs::File::create(&path)
            .unwrap()
            .set_len(1 << 20)
            .unwrap();
        let spec = ExportSpec {
            shelf: 9,
            slot: 4,
            links: vec![LinkSpec::packet("mem0")],
            file: path.clone(),
            buffer_count: 64,
            disk: DiskOptions::default(),
            mac_mask: vec![],
        };
        let export = Arc::new(Export::open(spec).unwrap());
        let routes = Arc::new(Routes::default());
        routes.set(vec![Arc::clone(&export)]);
        let inbox = Arc::new(Mutex::new(VecDeque::new()));
        let outbox = Arc::new(Mutex::new(Vec::new()));
        let link = MemLink {
            inbox: Arc::clone(&inbox),
            outbox: Arc::clone(&outbox),
        };
        let stop = Arc::new(AtomicBool::new(false));
        static NEVER: AtomicBool = AtomicBool::new(false);
        let worker = LinkWorker::new(
            LinkSpec::packet("mem0"),
            Box::new(link),
            Arc::clone(&routes),
            Arc::clone(&stop),
            &NEVER,
        );
        // One batch: 40 sequential writes, a read of sectors written earlier in the same batch,
        // a flush, a config query, and 20 sequential reads.
        {
            let mut inbox = inbox.lock().unwrap();
            for tag in 0..40u32 {
                inbox.push_back(ata(tag, 0x34, u64::from(tag) * 2, 2, &fill(tag)));
            }
            inbox.push_back(ata(100, 0x24, 10, 2, &[]));
            inbox.push_back(ata(101, 0xEA, 0, 0, &[]));
            inbox.push_back(request(1, 102, &[0; 8]));
            for tag in 200..220u32 {
                inbox.push_back(ata(tag, 0x24, u64::from(tag - 200) * 2, 2, &[]));
            }
        }
        let thread = std::thread::spawn(move || worker.run());
        let deadline = Instant::now() + Duration::from_secs(5);
        // The announcement plus one reply per request.
        while outbox.lock().unwrap().len() < 1 + 63 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        stop.store(true, Ordering::SeqCst);
        let stats = thread.join().unwrap();
        let replies = outbox.lock().unwrap().clone();
        assert_eq!(replies.len(), 64, "announcement + 63 replies");
        assert_eq!(replies[0][19], 1, "the announcement comes first");
        for reply in &replies[1..] {
            let tag = u32::from_be_bytes(reply[20..24].try_into().unwrap());
            assert_eq!(reply[14], 0x18, "tag {tag}: response, no AoE error");
            if reply[19] == 0 {
                assert_eq!(reply[27], 0x40, "tag {tag}: ATA status DRDY");
            }
            match tag {
                100 => assert_eq!(
                    reply[36..36 + 1024],
                    fill(5)[..],
                    "read after write in one batch"
                ),
                200..220 => assert_eq!(reply[36..36 + 1024], fill(tag - 200)[..]),
                _ => {}
            }
        }
        let disk = std::fs::read(&path).unwrap();
        for tag in 0..40u32 {
            let at = tag as usize * 1024;
            assert_eq!(disk[at..at + 1024], fill(tag)[..]);
        }
        // 40 writes -> 1 pwritev; the read of LBA 10 -> 1; flush -> 1; 20 reads -> 1 preadv.
        assert_eq!(stats.frames, 63);
        assert_eq!(stats.transfers, 4, "contiguous transfers merged");
        std::fs::remove_file(&path).unwrap();
    }
}
